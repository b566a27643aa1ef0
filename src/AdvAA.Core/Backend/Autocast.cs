using System;
using System.Runtime.InteropServices;
using TorchSharp;

namespace AdvAA.Core.Backend;

/// <summary>
/// Automatic mixed precision (torch.autocast) for TorchSharp, which does not expose it: the calls
/// into the loaded libtorch's own <c>at::autocast</c> functions, as PyTorch's context manager makes
/// them. Inside a region, ops on the autocast lists (convolutions, matrix products) run in the
/// lower precision on this thread; parameters and the optimiser stay in float32. Leave the region
/// before <c>backward()</c>.
/// </summary>
public static unsafe class Autocast
{
    // c10::DeviceType and c10::ScalarType are enum classes of int8_t.
    const sbyte CpuDevice = 0, CudaDevice = 1;
    const sbyte BFloat16 = 15, Float16 = 5;

    sealed class Entries
    {
        public delegate* unmanaged<sbyte, byte> IsEnabled;
        public delegate* unmanaged<sbyte, byte, void> SetEnabled;
        public delegate* unmanaged<sbyte, sbyte> GetDtype;
        public delegate* unmanaged<sbyte, sbyte, void> SetDtype;
        public delegate* unmanaged<int> IncrementNesting;
        public delegate* unmanaged<int> DecrementNesting;
        public delegate* unmanaged<void> ClearCache;
    }

    static readonly Lazy<Entries> entries = new(Bind);

    static Entries Bind()
    {
        IntPtr library = TorchBackend.Handle("libtorch_cpu.so");
        if (library == IntPtr.Zero)
            throw new BackendException("autocast needs libtorch_cpu.so loaded by AdvAA's backend, and it is not");
        IntPtr Export(string mangled, string name) =>
            NativeLibrary.TryGetExport(library, mangled, out IntPtr address)
                ? address
                : throw new BackendException($"the loaded libtorch ({TorchBackend.Current?.LibTorchFolder}) has no {name}: mixed precision needs libtorch 2.4 or newer");
        return new Entries
        {
            IsEnabled = (delegate* unmanaged<sbyte, byte>)Export("_ZN2at8autocast19is_autocast_enabledEN3c1010DeviceTypeE", "at::autocast::is_autocast_enabled"),
            SetEnabled = (delegate* unmanaged<sbyte, byte, void>)Export("_ZN2at8autocast20set_autocast_enabledEN3c1010DeviceTypeEb", "at::autocast::set_autocast_enabled"),
            GetDtype = (delegate* unmanaged<sbyte, sbyte>)Export("_ZN2at8autocast18get_autocast_dtypeEN3c1010DeviceTypeE", "at::autocast::get_autocast_dtype"),
            SetDtype = (delegate* unmanaged<sbyte, sbyte, void>)Export("_ZN2at8autocast18set_autocast_dtypeEN3c1010DeviceTypeENS1_10ScalarTypeE", "at::autocast::set_autocast_dtype"),
            IncrementNesting = (delegate* unmanaged<int>)Export("_ZN2at8autocast17increment_nestingEv", "at::autocast::increment_nesting"),
            DecrementNesting = (delegate* unmanaged<int>)Export("_ZN2at8autocast17decrement_nestingEv", "at::autocast::decrement_nesting"),
            ClearCache = (delegate* unmanaged<void>)Export("_ZN2at8autocast11clear_cacheEv", "at::autocast::clear_cache"),
        };
    }

    static sbyte DeviceCode(DeviceType device) => device switch
    {
        DeviceType.CPU => CpuDevice,
        DeviceType.CUDA => CudaDevice,
        _ => throw new BackendException($"autocast on {device} is not supported: CPU or CUDA"),
    };

    static sbyte DtypeCode(torch.ScalarType dtype) => dtype switch
    {
        torch.ScalarType.BFloat16 => BFloat16,
        torch.ScalarType.Float16 => Float16,
        _ => throw new BackendException($"autocast runs in bfloat16 or float16, not {dtype}"),
    };

    /// <summary>Whether autocast is on for this device on this thread.</summary>
    public static bool IsEnabled(DeviceType device) => entries.Value.IsEnabled(DeviceCode(device)) != 0;

    /// <summary>Enters an autocast region on this thread; disposing the result leaves it (restoring what was before).</summary>
    public static Region Enter(DeviceType device, torch.ScalarType dtype)
    {
        var e = entries.Value;
        sbyte d = DeviceCode(device);
        var region = new Region(d, e.IsEnabled(d) != 0, e.GetDtype(d));
        e.SetDtype(d, DtypeCode(dtype));
        e.SetEnabled(d, 1);
        e.IncrementNesting();
        return region;
    }

    /// <summary>A bfloat16 region for <see cref="Precision.Bf16"/>; for fp32 a region that does nothing.</summary>
    public static Region For(Precision precision, DeviceType device) =>
        precision == Precision.Bf16 ? Enter(device, torch.ScalarType.BFloat16) : default;

    /// <summary>An autocast region; <see cref="Dispose"/> leaves it (the default region is none and does nothing).</summary>
    public readonly struct Region : IDisposable
    {
        readonly sbyte device, previousDtype;
        readonly bool previouslyEnabled, active;

        internal Region(sbyte device, bool previouslyEnabled, sbyte previousDtype) =>
            (this.device, this.previouslyEnabled, this.previousDtype, active) = (device, previouslyEnabled, previousDtype, true);

        public void Dispose()
        {
            if (!active) return;
            var e = entries.Value;
            // The outermost region frees the casts of weights it cached.
            if (e.DecrementNesting() == 0) e.ClearCache();
            e.SetEnabled(device, previouslyEnabled ? (byte)1 : (byte)0);
            e.SetDtype(device, previousDtype);
        }
    }
}
