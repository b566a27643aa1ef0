using System;
using System.Collections.Generic;
using System.IO;
using System.IO.Compression;
using System.Linq;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Models;

/// <summary>A PyTorch weights file that cannot be read or does not fit; the message names the file.</summary>
public sealed class ModelFileException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Reading state dicts in the file format of <c>torch.save</c> (PyTorch ≥ 1.6): a zip archive holding
/// <c>…/data.pkl</c> (a pickle of an OrderedDict of name →
/// <c>torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)</c>), one record
/// <c>…/data/K</c> per tensor's storage and <c>…/version</c>. It accepts what
/// <c>torch.save(model.state_dict())</c> writes (protocols 2 to 5, legacy typed storages,
/// parameters); nothing executes code from the file, and everything is checked against the file
/// and the model before a tensor is allocated. Ours rather than TorchSharp.PyBridge's reader, which
/// writes our exports: measured on crafted files (README, "To and from PyTorch"), PyBridge's loads
/// NaN weights and a deflated record read short without a word, sizes its buffers by what the file
/// claims before checking it, and names neither the file nor the entry when shapes differ.
/// </summary>
public static class PyTorchStateDict
{
    const string Archive = "archive";

    /// <summary>The most bytes data.pkl may take: a state dict's pickle holds about 100 bytes per tensor.</summary>
    const long MaxPickleBytes = 64L << 20;

    /// <summary>
    /// The tensors of the state dict in <paramref name="path"/>, by name, in the file's order (CPU,
    /// contiguous). A tensor with more values than its storage holds (a stride-0 expansion) is
    /// refused: only <see cref="LoadInto"/>, which knows the shapes to expect, takes those.
    /// </summary>
    /// <exception cref="ModelFileException">The file is missing, not a PyTorch zip file, truncated, or holds something other than a dict of tensors.</exception>
    public static IReadOnlyList<(string Name, Tensor Value)> Read(string path) => Open(path, file =>
    {
        foreach (var (name, view) in file.Entries)
            if (view.Elements > view.Storage.Elements)
                throw new ModelFileException($"{path}: the tensor {name} [{string.Join(",", view.Shape)}] has more values than its storage {view.Storage.Key} holds ({view.Storage.Elements})");
        using var storages = new RecordCache(file);
        return file.Entries.Select(e => (e.Name, storages.Materialize(e.View))).ToList();
    });

    /// <summary>
    /// Copies the state dict in <paramref name="path"/> into <paramref name="model"/>; the names and
    /// shapes must be the model's exactly (floating-point values are converted to the model's dtype).
    /// Everything is checked against the file and the model before a tensor is read: names (none
    /// twice), shapes, dtypes, and the records' total size against the model's; then each tensor must
    /// hold finite values.
    /// </summary>
    /// <exception cref="ModelFileException">The file does not load, or what differs: missing, unexpected or misshapen entries, by name; a NaN or infinite value, naming the tensor.</exception>
    public static void LoadInto(nn.Module model, string path, string modelDescription) => Open(path, file =>
    {
        var expected = model.state_dict();
        var given = new Dictionary<string, TensorView>();
        foreach (var (name, view) in file.Entries)
            if (!given.TryAdd(name, view))
                throw new ModelFileException($"{path}: the entry '{name}' appears twice; a state dict names each tensor once");
        var problems = new List<string>();
        string Few(IEnumerable<string> names) { var list = names.ToList(); return string.Join(", ", list.Take(4)) + (list.Count > 4 ? $" and {list.Count - 4} more" : ""); }
        var missing = expected.Keys.Where(k => !given.ContainsKey(k)).ToList();
        var unexpected = given.Keys.Where(k => !expected.ContainsKey(k)).ToList();
        if (missing.Count > 0) problems.Add($"missing {Few(missing)}");
        if (unexpected.Count > 0) problems.Add($"not in the model: {Few(unexpected)}");
        foreach (var (name, target) in expected)
        {
            if (!given.TryGetValue(name, out TensorView? view)) continue;
            if (!view.Shape.SequenceEqual(target.shape))
                problems.Add($"{name} is [{string.Join(",", view.Shape)}] in the file but [{string.Join(",", target.shape)}] in the model");
            else if (view.Storage.Type != target.dtype && !(IsFloating(view.Storage.Type) && target.is_floating_point()))
                problems.Add($"{name} is {view.Storage.Type} in the file but {target.dtype} in the model");
        }
        if (problems.Count > 0)
            throw new ModelFileException($"{path} is not a state dict of {modelDescription}: {string.Join("; ", problems.Take(6))}{(problems.Count > 6 ? $"; and {problems.Count - 6} more differences" : "")}");
        // Storages may be larger than the views of them (a slice saved with its base), but not without bound.
        long modelBytes = expected.Values.Sum(t => t.numel() * t.element_size());
        long recordBytes = given.Values.Select(v => v.Storage).Distinct().Sum(s => s.Elements * s.ElementSize);
        if (recordBytes > 2 * modelBytes + (64L << 20))
            throw new ModelFileException($"{path}: its tensors' storages hold {recordBytes} bytes, far more than the {modelBytes} bytes of {modelDescription}");
        using var storages = new RecordCache(file);
        using var noGrad = no_grad();
        foreach (var (name, target) in expected)
        {
            using var scope = NewDisposeScope();
            Tensor value = storages.Materialize(given[name]);
            if (value.is_floating_point() && value.isfinite().logical_not().sum().item<long>() is var bad and > 0)
                throw new ModelFileException($"{path}: the tensor {name} holds {bad} NaN or infinite value{(bad == 1 ? "" : "s")}; a run cannot start from it");
            target.copy_(value);
        }
        return 0;
    });

    static bool IsFloating(ScalarType t) => t is ScalarType.Float32 or ScalarType.Float64 or ScalarType.Float16 or ScalarType.BFloat16;

    /// <summary>A weights file opened: its zip and the tensors its pickle declares, by name, not yet read.</summary>
    sealed record WeightsFile(string Path, ZipArchive Zip, string Prefix, IReadOnlyList<(string Name, TensorView View)> Entries);

    /// <summary>Opens <paramref name="path"/>, reads its pickle and runs <paramref name="use"/>; every failure of the format becomes a message naming the file.</summary>
    static T Open<T>(string path, Func<WeightsFile, T> use)
    {
        if (Directory.Exists(path)) throw new ModelFileException($"{path} is a folder, not a PyTorch weights file (.pt)");
        if (!File.Exists(path)) throw new ModelFileException($"{path} does not exist");
        FileInfo file = RegularFile.Resolve(path, out string? problem) ?? throw new ModelFileException($"{path}: {problem}; not a PyTorch weights file");
        try
        {
            using var zip = ZipFile.OpenRead(file.FullName);
            ZipArchiveEntry pkl = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1)
                ?? throw new ModelFileException($"{path} is a zip file without data.pkl: not a file written by torch.save");
            string prefix = pkl.FullName[..^"data.pkl".Length];
            if (pkl.Length > MaxPickleBytes)
                throw new ModelFileException($"{path}: its data.pkl is {pkl.Length} bytes, far more than a state dict's pickle (at most {MaxPickleBytes})");
            byte[] pickle = ReadExactly(pkl, pkl.Length, path);
            long RecordBytes(string key) => (zip.GetEntry(prefix + "data/" + key)
                ?? throw new ModelFileException($"{path}: the tensor data record {prefix}data/{key} is missing")).Length;
            object? root = new PickleReader(pickle, path, RecordBytes).Load();
            if (root is not PickleDict dict)
                throw new ModelFileException($"{path} holds a {PickleReader.Describe(root)}, not a state dict (torch.save(model.state_dict(), ...) writes one)");
            var entries = new List<(string, TensorView)>();
            foreach (var (key, value) in dict.Items)
            {
                if (key is not string name || value is not TensorView view)
                    throw new ModelFileException($"{path}: the entry {PickleReader.Describe(key)} is a {PickleReader.Describe(value)}, not a tensor: a state dict maps names to tensors");
                entries.Add((name, view));
            }
            return use(new WeightsFile(path, zip, prefix, entries));
        }
        catch (InvalidDataException e)
        {
            throw new ModelFileException($"{path} is not a PyTorch weights file (not a complete zip archive: {e.Message})", e);
        }
        catch (EndOfStreamException e)
        {
            throw new ModelFileException($"{path} is truncated: its data.pkl ends early", e);
        }
    }

    /// <summary>
    /// The first <paramref name="count"/> bytes of a zip entry, never more: a deflated record that
    /// expands beyond what its tensors need is not expanded further.
    /// </summary>
    static byte[] ReadExactly(ZipArchiveEntry entry, long count, string path)
    {
        if (count > Array.MaxLength) throw new ModelFileException($"{path}: the record {entry.FullName} needs {count} bytes, more than one tensor can hold here");
        var bytes = new byte[count];
        using Stream stream = entry.Open();
        int read = stream.ReadAtLeast(bytes, bytes.Length, throwOnEndOfStream: false);
        return read == count ? bytes : throw new ModelFileException($"{path}: the record {entry.FullName} ends at byte {read} of the {count} its tensors need");
    }

    /// <summary>The storage records read so far (each once, as flat tensors), freed with the cache.</summary>
    sealed class RecordCache(WeightsFile file) : IDisposable
    {
        readonly Dictionary<string, Tensor> flat = [];

        /// <summary>The view's values as a new contiguous CPU tensor.</summary>
        public Tensor Materialize(TensorView view)
        {
            StorageRecord storage = view.Storage;
            if (!flat.TryGetValue(storage.Key, out Tensor? values))
            {
                ZipArchiveEntry entry = file.Zip.GetEntry(file.Prefix + "data/" + storage.Key)!;
                byte[] data = ReadExactly(entry, storage.Elements * storage.ElementSize, file.Path);
                // Kept past the caller's dispose scope: other tensors may view the same storage.
                values = torch.empty(storage.Elements, storage.Type).DetachFromDisposeScope();
                values.bytes = data;
                flat[storage.Key] = values;
            }
            if (view.Elements == 0) return torch.empty(view.Shape, storage.Type);
            return values.as_strided(view.Shape, view.Strides, view.Offset).contiguous();
        }

        public void Dispose()
        {
            foreach (Tensor t in flat.Values) t.Dispose();
        }
    }

    static readonly (string Name, ScalarType Type)[] Storages =
    [
        ("FloatStorage", ScalarType.Float32), ("DoubleStorage", ScalarType.Float64), ("HalfStorage", ScalarType.Float16),
        ("BFloat16Storage", ScalarType.BFloat16), ("LongStorage", ScalarType.Int64), ("IntStorage", ScalarType.Int32),
        ("ShortStorage", ScalarType.Int16), ("CharStorage", ScalarType.Int8), ("ByteStorage", ScalarType.Byte), ("BoolStorage", ScalarType.Bool),
    ];

    internal static ScalarType? StorageType(string name) => Storages.FirstOrDefault(s => s.Name == name) is { Name: not null } s ? s.Type : null;
}
