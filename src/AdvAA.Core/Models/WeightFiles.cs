using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using TorchSharp;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace AdvAA.Core.Models;

/// <summary>
/// The weights files a model is written to and started from: PyTorch state dicts (<c>.pt</c>, what
/// <c>torch.save</c> writes) and safetensors (<c>.safetensors</c>, the Hugging Face format). Writing
/// both and loading safetensors is TorchSharp.PyBridge's; a safetensors header is first checked
/// against the file and the model here, and a <c>.pt</c> is read by <see cref="PyTorchStateDict"/>.
/// </summary>
public static class WeightFiles
{
    public static bool IsSafetensors(string path) => path.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase);

    /// <summary>Writes <paramref name="model"/>'s state dict to <paramref name="path"/> (a new file), as safetensors or as torch.save's zip.</summary>
    public static void Write(nn.Module model, string path, bool safetensors)
    {
        if (safetensors) model.save_safetensors(path);
        else model.save_py(path);
    }

    /// <summary>
    /// Copies the state dict in <paramref name="path"/> (.pt or .safetensors) into <paramref name="model"/>;
    /// names, shapes and dtypes must be the model's (floating-point values may change precision), and
    /// every floating-point value must be finite.
    /// </summary>
    /// <exception cref="ModelFileException">What does not load or fit, naming the file and the entries.</exception>
    public static void LoadInto(nn.Module model, string path, string modelDescription)
    {
        if (!IsSafetensors(path))
        {
            PyTorchStateDict.LoadInto(model, path, modelDescription);
            return;
        }
        CheckSafetensors(model, path, modelDescription);
        try
        {
            model.load_safetensors(path, strict: true);
        }
        catch (Exception e) when (e is not ModelFileException)
        {
            throw new ModelFileException($"{path}: {e.Message}", e);
        }
        using var noGrad = no_grad();
        foreach (var (name, value) in model.state_dict())
            if (value.is_floating_point() && value.isfinite().logical_not().sum().item<long>() is var bad and > 0)
                throw new ModelFileException($"{path}: the tensor {name} holds {bad} NaN or infinite value{(bad == 1 ? "" : "s")}; a run cannot start from it");
    }

    /// <summary>The most bytes a safetensors header may take (the format's own reference reader refuses more than 100 MB).</summary>
    const long MaxHeaderBytes = 100L << 20;

    static readonly Dictionary<string, ScalarType> SafetensorsTypes = new()
    {
        ["F64"] = ScalarType.Float64, ["F32"] = ScalarType.Float32, ["F16"] = ScalarType.Float16, ["BF16"] = ScalarType.BFloat16,
        ["I64"] = ScalarType.Int64, ["I32"] = ScalarType.Int32, ["I16"] = ScalarType.Int16, ["I8"] = ScalarType.Int8,
        ["U8"] = ScalarType.Byte, ["BOOL"] = ScalarType.Bool,
    };

    /// <summary>
    /// The header of a safetensors file (8-byte little-endian length, then JSON: name → dtype, shape,
    /// data_offsets) checked against the file's size and the model before anything is allocated:
    /// every tensor's bytes lie inside the file and are exactly its shape's, and the names, shapes and
    /// dtypes are the model's.
    /// </summary>
    static void CheckSafetensors(nn.Module model, string path, string modelDescription)
    {
        if (Directory.Exists(path)) throw new ModelFileException($"{path} is a folder, not a safetensors file");
        if (!File.Exists(path)) throw new ModelFileException($"{path} does not exist");
        FileInfo info = RegularFile.Resolve(path, out string? problem) ?? throw new ModelFileException($"{path}: {problem}; not a safetensors file");
        JsonElement header;
        long dataBytes;
        try
        {
            using var stream = info.OpenRead();
            Span<byte> size = stackalloc byte[8];
            if (stream.Length < 8 || stream.ReadAtLeast(size, 8, throwOnEndOfStream: false) < 8)
                throw new ModelFileException($"{path} is not a safetensors file: shorter than its 8-byte header length");
            ulong headerBytes = BitConverter.ToUInt64(size);
            if (headerBytes > (ulong)Math.Min(MaxHeaderBytes, stream.Length - 8))
                throw new ModelFileException($"{path} is not a safetensors file: its header claims {headerBytes} bytes of a {stream.Length}-byte file (at most {MaxHeaderBytes})");
            byte[] json = new byte[headerBytes];
            stream.ReadExactly(json);
            header = JsonDocument.Parse(json).RootElement.Clone();
            dataBytes = stream.Length - 8 - (long)headerBytes;
        }
        catch (JsonException e)
        {
            throw new ModelFileException($"{path} is not a safetensors file: its header is not JSON ({e.Message})", e);
        }
        catch (IOException e)
        {
            throw new ModelFileException($"{path}: {e.Message}", e);
        }
        if (header.ValueKind != JsonValueKind.Object) throw new ModelFileException($"{path} is not a safetensors file: its header is not a JSON object");

        var expected = model.state_dict();
        var problems = new List<string>();
        var given = new HashSet<string>();
        foreach (JsonProperty entry in header.EnumerateObject())
        {
            if (entry.Name == "__metadata__") continue;
            string name = entry.Name;
            if (!given.Add(name)) throw new ModelFileException($"{path}: the entry '{name}' appears twice; a state dict names each tensor once");
            (ScalarType type, long[] shape, long begin, long end) = Described(entry, path);
            if (begin < 0 || end < begin || end > dataBytes)
                throw new ModelFileException($"{path}: the tensor {name}'s bytes [{begin}, {end}) are not inside the file's {dataBytes} bytes of data");
            long elements = 1;
            foreach (long side in shape)
                elements = side < 0 || (side > 0 && elements > long.MaxValue / side) ? -1 : elements * side;
            long elementBytes = torch.empty(0, type).element_size();
            if (elements < 0 || elements > (end - begin) / Math.Max(elementBytes, 1) || elements * elementBytes != end - begin)
                throw new ModelFileException($"{path}: the tensor {name} [{string.Join(",", shape)}] of {type} does not take its {end - begin} bytes");
            if (!expected.TryGetValue(name, out Tensor? target)) continue;
            if (!shape.SequenceEqual(target.shape))
                problems.Add($"{name} is [{string.Join(",", shape)}] in the file but [{string.Join(",", target.shape)}] in the model");
            else if (type != target.dtype && !(torch.is_floating_point(torch.empty(0, type)) && target.is_floating_point()))
                problems.Add($"{name} is {type} in the file but {target.dtype} in the model");
        }
        string Few(IEnumerable<string> names) { var list = names.ToList(); return string.Join(", ", list.Take(4)) + (list.Count > 4 ? $" and {list.Count - 4} more" : ""); }
        var missing = expected.Keys.Where(k => !given.Contains(k)).ToList();
        var unexpected = given.Where(k => !expected.ContainsKey(k)).ToList();
        if (missing.Count > 0) problems.Insert(0, $"missing {Few(missing)}");
        if (unexpected.Count > 0) problems.Insert(missing.Count > 0 ? 1 : 0, $"not in the model: {Few(unexpected)}");
        if (problems.Count > 0)
            throw new ModelFileException($"{path} is not a state dict of {modelDescription}: {string.Join("; ", problems.Take(6))}{(problems.Count > 6 ? $"; and {problems.Count - 6} more differences" : "")}");
    }

    /// <summary>One header entry's dtype, shape and data offsets; a malformed one is an error naming it.</summary>
    static (ScalarType Type, long[] Shape, long Begin, long End) Described(JsonProperty entry, string path)
    {
        string where = $"{path}: the header's entry '{entry.Name}'";
        JsonElement e = entry.Value;
        if (e.ValueKind != JsonValueKind.Object
            || !e.TryGetProperty("dtype", out JsonElement dtype) || dtype.ValueKind != JsonValueKind.String
            || !e.TryGetProperty("shape", out JsonElement shape) || shape.ValueKind != JsonValueKind.Array
            || !e.TryGetProperty("data_offsets", out JsonElement offsets) || offsets.ValueKind != JsonValueKind.Array || offsets.GetArrayLength() != 2)
            throw new ModelFileException($"{where} is not {{\"dtype\", \"shape\", \"data_offsets\": [begin, end]}}");
        if (!SafetensorsTypes.TryGetValue(dtype.GetString()!, out ScalarType type))
            throw new ModelFileException($"{where} has dtype {dtype.GetString()}; AdvAA reads {string.Join(", ", SafetensorsTypes.Keys)}");
        static long Whole(JsonElement n, string where) =>
            n.ValueKind == JsonValueKind.Number && n.TryGetInt64(out long v) && v >= 0 ? v : throw new ModelFileException($"{where}: {n} is not a size (a whole number ≥ 0)");
        long[] sides = shape.EnumerateArray().Select(n => Whole(n, where)).ToArray();
        return (type, sides, Whole(offsets[0], where), Whole(offsets[1], where));
    }
}
