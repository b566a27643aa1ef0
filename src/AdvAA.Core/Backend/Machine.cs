using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;

namespace AdvAA.Core.Backend;

/// <summary>
/// The host a run trains on, as config.json records it: runs of one study may come from different
/// machines (a study resumed elsewhere), and their speeds compare only within one.
/// </summary>
public static class Machine
{
    /// <summary>
    /// The CPU model with its family and model numbers (one marketing name covers several
    /// generations: "AMD EPYC" is Zen 3, 4 and 5), its bf16 support and the cores: "AMD EPYC (family
    /// 26, model 2, AVX-512 BF16), 2 cores". Elsewhere than Linux, the OS and the cores.
    /// </summary>
    public static string Describe()
    {
        string cores = $"{Environment.ProcessorCount} cores";
        var cpu = FirstProcessor();
        if (cpu is null) return $"{System.Runtime.InteropServices.RuntimeInformation.OSDescription}, {cores}";
        string[] flags = Flags(cpu);
        var details = new[]
        {
            cpu.TryGetValue("cpu family", out string? family) ? $"family {family}" : null,
            cpu.TryGetValue("model", out string? model) ? $"model {model}" : null,
            flags.Contains("amx_bf16") ? "AMX" : flags.Contains("avx512_bf16") ? "AVX-512 BF16" : null,
        }.OfType<string>().ToArray();
        string name = cpu.GetValueOrDefault("model name") ?? "unknown CPU";
        return details.Length == 0 ? $"{name}, {cores}" : $"{name} ({string.Join(", ", details)}), {cores}";
    }

    /// <summary>This CPU's feature flags (Linux's /proc/cpuinfo; none elsewhere).</summary>
    public static string[] CpuFlags() => FirstProcessor() is { } cpu ? Flags(cpu) : [];

    static string[] Flags(Dictionary<string, string> cpu) =>
        cpu.GetValueOrDefault("flags")?.Split(' ', StringSplitOptions.RemoveEmptyEntries) ?? [];

    /// <summary>The first processor's /proc/cpuinfo fields (up to its blank line), or null without the file.</summary>
    static Dictionary<string, string>? FirstProcessor()
    {
        const string cpuInfo = "/proc/cpuinfo";
        if (!File.Exists(cpuInfo)) return null;
        var fields = new Dictionary<string, string>();
        foreach (string line in File.ReadLines(cpuInfo).TakeWhile(l => l.Trim().Length > 0))
        {
            int colon = line.IndexOf(':');
            if (colon > 0) fields.TryAdd(line[..colon].Trim(), line[(colon + 1)..].Trim());
        }
        return fields;
    }
}
