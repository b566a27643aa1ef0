using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Backend;

/// <summary>The precision the target trains and evaluates in: float32, or bfloat16 autocast (weights and optimiser stay float32).</summary>
public enum Precision
{
    Fp32,
    Bf16,
}

/// <summary>Choosing a precision for a device.</summary>
public static class Precisions
{
    /// <summary>"auto", "fp32" or "bf16"; null for auto.</summary>
    public static Precision? Parse(string text) => text.Trim().ToLowerInvariant() switch
    {
        "auto" => null,
        "fp32" => Precision.Fp32,
        "bf16" => Precision.Bf16,
        _ => throw new BackendException($"precision '{text}': expected auto, fp32 or bf16"),
    };

    public static string Name(Precision p) => p == Precision.Bf16 ? "bf16" : "fp32";

    /// <summary>
    /// Whether bfloat16 is fast on the device: a CUDA device that runs a bfloat16 matrix product, or a
    /// CPU with AVX-512 BF16 or AMX (elsewhere libtorch emulates bfloat16 on the CPU, many times slower).
    /// </summary>
    public static bool FastBf16(Device device)
    {
        if (device.type == DeviceType.CUDA)
        {
            try
            {
                using var a = torch.ones(8, 8, ScalarType.BFloat16, device);
                using var b = a.matmul(a);
                return HostSync.Item<float>(b[0, 0].to(ScalarType.Float32)) == 8f;
            }
            catch (Exception e) when (e is not OutOfMemoryException)
            {
                return false;
            }
        }
        return Machine.CpuFlags().Any(f => f is "avx512_bf16" or "amx_bf16");
    }

    /// <summary>
    /// The precision for a request on a device, and why. Asked for: that one (bf16 where it is not
    /// fast runs all the same, with a warning: it is exact enough to test with). Auto: fp32 where
    /// bf16 is emulated (a CPU without AVX-512 BF16 or AMX, a GPU without bfloat16), bf16 on a CUDA
    /// GPU that has it, and on a CPU that has the instructions the faster of the two as a timed
    /// probe of the model's training step measures it (<see cref="ChooseByProbe"/>): AVX-512 BF16
    /// alone is slower than fp32 on some CPUs (an Intel Xeon without AMX: 484 vs 607 images/s).
    /// </summary>
    /// <param name="probeKey">What the probe measures (model, classes, image shape, batch, layout); with the machine, its cache key.</param>
    /// <param name="probe">The images/s of the model's training step in a precision.</param>
    public static PrecisionChoice Choose(Precision? requested, Device device, string probeKey, Func<Precision, double> probe, out string? warning)
    {
        bool fast = FastBf16(device);
        warning = requested == Precision.Bf16 && !fast
            ? device.type == DeviceType.CUDA
                ? $"--precision bf16: {device} runs no bfloat16 matrix product; training in bf16 will fail or crawl"
                : "--precision bf16: this CPU has no AVX-512 BF16 or AMX, so libtorch emulates bfloat16 (about 15x slower than fp32 here)"
            : null;
        if (requested is Precision asked) return new PrecisionChoice(asked, "asked for");
        return Rule(device, fast) ?? ChooseByProbe(ProbeCache.DefaultFile, $"{Machine.Describe()}; libtorch {torch.__version__}; {torch.get_num_threads()} threads; {probeKey}", probe);
    }

    /// <summary>What auto decides on this device without a probe, and why; null where it probes each model (a CPU with bf16 instructions).</summary>
    public static PrecisionChoice? AutoRule(Device device) => Rule(device, FastBf16(device));

    static PrecisionChoice? Rule(Device device, bool fastBf16) =>
        !fastBf16 ? new PrecisionChoice(Precision.Fp32, device.type == DeviceType.CUDA ? $"{device} runs no bfloat16 matrix product" : "this CPU has no AVX-512 BF16 or AMX, so bf16 would be emulated")
        : device.type == DeviceType.CUDA ? new PrecisionChoice(Precision.Bf16, $"{device} runs bfloat16 natively")
        : null;

    /// <summary>
    /// The faster precision for <paramref name="key"/> (a machine and a model's step), from the
    /// probes cached in <paramref name="cacheFile"/>, else measured now with <paramref name="probe"/>
    /// (fp32 first, then bf16) and cached. bf16 must be faster by 5% to be chosen: the probe is short,
    /// and a tie should not make a run slower.
    /// </summary>
    public static PrecisionChoice ChooseByProbe(string cacheFile, string key, Func<Precision, double> probe)
    {
        if (ProbeCache.Read(cacheFile, key) is { } cached) return cached;
        double fp32 = probe(Precision.Fp32), bf16 = probe(Precision.Bf16);
        bool faster = bf16 > 1.05 * fp32;
        var choice = new PrecisionChoice(faster ? Precision.Bf16 : Precision.Fp32,
            $"a timed probe of the model's training step on this CPU: bf16 {bf16:F0} vs fp32 {fp32:F0} images/s", fp32, bf16);
        ProbeCache.Write(cacheFile, key, choice);
        return choice;
    }
}

/// <summary>How a run's precision was chosen: the precision, why in words, and the probe's images/s where one ran (config.json's "precision_choice").</summary>
public sealed record PrecisionChoice(Precision Precision, string Reason, double? Fp32ImagesPerSecond = null, double? Bf16ImagesPerSecond = null)
{
    public JsonObject ToJson() => new()
    {
        ["precision"] = Precisions.Name(Precision),
        ["reason"] = Reason,
        ["fp32_images_per_second"] = Fp32ImagesPerSecond,
        ["bf16_images_per_second"] = Bf16ImagesPerSecond,
    };

    /// <summary>The choice a JSON object records, or null when it is not one.</summary>
    public static PrecisionChoice? FromJson(JsonNode? node)
    {
        if (node is not JsonObject o || o["precision"] is not JsonValue p || !p.TryGetValue(out string? name) || o["reason"] is not JsonValue r || !r.TryGetValue(out string? reason))
            return null;
        double? Number(string field) => o[field] is JsonValue v && v.TryGetValue(out double d) ? d : null;
        try { return new PrecisionChoice(Precisions.Parse(name) ?? Precision.Fp32, reason, Number("fp32_images_per_second"), Number("bf16_images_per_second")); }
        catch (BackendException) { return null; }
    }
}

/// <summary>
/// The precision probes measured on this machine, one JSON object of key → choice in a file of the
/// user's cache: a probe costs a few seconds, once per machine and model. A damaged or unwritable
/// file only means probing again.
/// </summary>
public static class ProbeCache
{
    /// <summary>$XDG_CACHE_HOME/advaa/precision-probes.json, else ~/.cache/advaa/precision-probes.json.</summary>
    public static string DefaultFile =>
        Path.Combine(Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg
            : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "advaa", "precision-probes.json");

    /// <summary>Every probe in the file, by key (none when it is missing or damaged).</summary>
    public static IReadOnlyList<(string Key, PrecisionChoice Choice)> All(string file)
    {
        try
        {
            if (!File.Exists(file) || JsonNode.Parse(File.ReadAllText(file)) is not JsonObject probes) return [];
            return probes.Select(p => (p.Key, PrecisionChoice.FromJson(p.Value))).Where(p => p.Item2 != null).Select(p => (p.Key, p.Item2!)).ToArray();
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException) { return []; }
    }

    internal static PrecisionChoice? Read(string file, string key) => All(file).Where(p => p.Key == key).Select(p => p.Choice).FirstOrDefault();

    internal static void Write(string file, string key, PrecisionChoice choice)
    {
        try
        {
            var probes = new JsonObject(All(file).Where(p => p.Key != key).Select(p => KeyValuePair.Create(p.Key, (JsonNode?)p.Choice.ToJson())));
            probes[key] = choice.ToJson();
            Directory.CreateDirectory(Path.GetDirectoryName(file)!);
            string temporary = $"{file}.tmp-{Environment.ProcessId}";
            File.WriteAllText(temporary, probes.ToJsonString(new JsonSerializerOptions { WriteIndented = true }));
            File.Move(temporary, file, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { }
    }
}
