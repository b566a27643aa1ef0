using System;
using System.Linq;
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
    /// The precision for a request on a device: auto is bf16 where it is fast, else fp32. bf16 asked
    /// for where it is not fast runs all the same (it is exact enough to test with), with a warning.
    /// </summary>
    public static Precision Resolve(Precision? requested, Device device, out string? warning)
    {
        bool fast = FastBf16(device);
        warning = requested == Precision.Bf16 && !fast
            ? device.type == DeviceType.CUDA
                ? $"--precision bf16: {device} runs no bfloat16 matrix product; training in bf16 will fail or crawl"
                : "--precision bf16: this CPU has no AVX-512 BF16 or AMX, so libtorch emulates bfloat16 (about 15x slower than fp32 here)"
            : null;
        return requested ?? (fast ? Precision.Bf16 : Precision.Fp32);
    }
}
