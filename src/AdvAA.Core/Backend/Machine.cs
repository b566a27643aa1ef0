using System;
using System.IO;
using System.Linq;

namespace AdvAA.Core.Backend;

/// <summary>
/// The host a run trains on, as config.json records it: runs of one study may come from different
/// machines (a study resumed elsewhere), and their speeds compare only within one.
/// </summary>
public static class Machine
{
    const string CpuInfo = "/proc/cpuinfo";

    /// <summary>
    /// The CPU model with its family and model numbers (one marketing name covers several
    /// generations: "AMD EPYC" is Zen 3, 4 and 5), its bf16 support and the cores: "AMD EPYC (family
    /// 26, model 2, AVX-512 BF16), 2 cores". Elsewhere than Linux, the OS and the cores.
    /// </summary>
    public static string Describe()
    {
        string cores = $"{Environment.ProcessorCount} cores";
        if (!File.Exists(CpuInfo)) return $"{System.Runtime.InteropServices.RuntimeInformation.OSDescription}, {cores}";
        string[] flags = CpuFlags();
        var details = new[]
        {
            CpuField("cpu family") is { } family ? $"family {family}" : null,
            CpuField("model") is { } model ? $"model {model}" : null,
            flags.Contains("amx_bf16") ? "AMX" : flags.Contains("avx512_bf16") ? "AVX-512 BF16" : null,
        }.OfType<string>().ToArray();
        string name = CpuField("model name") ?? "unknown CPU";
        return details.Length == 0 ? $"{name}, {cores}" : $"{name} ({string.Join(", ", details)}), {cores}";
    }

    /// <summary>This CPU's feature flags (Linux's /proc/cpuinfo; none elsewhere).</summary>
    public static string[] CpuFlags() =>
        CpuField("flags")?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];

    /// <summary>The first processor's value of a /proc/cpuinfo field ("model" is not "model name").</summary>
    static string? CpuField(string name)
    {
        if (!File.Exists(CpuInfo)) return null;
        foreach (string line in File.ReadLines(CpuInfo))
        {
            int colon = line.IndexOf(':');
            if (colon > 0 && line[..colon].Trim() == name) return line[(colon + 1)..].Trim();
        }
        return null;
    }
}
