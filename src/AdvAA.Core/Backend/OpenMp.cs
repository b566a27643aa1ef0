using System;
using System.Runtime.InteropServices;
using TorchSharp;

namespace AdvAA.Core.Backend;

/// <summary>
/// libtorch's OpenMP, per thread. Threads that .NET starts (the input pipeline's decode workers)
/// would otherwise open an OpenMP team of every core for each larger op (a resize, a copy): teams
/// from many short-lived foreign threads oversubscribe the cores and have hung and crashed libgomp
/// here. A worker that calls <see cref="SerialOnThisThread"/> runs its ops on itself alone; the
/// other threads (the training step) keep their teams.
/// </summary>
public static unsafe class OpenMp
{
    static readonly delegate* unmanaged<int, void> setNumThreads = Resolve();

    static delegate* unmanaged<int, void> Resolve()
    {
        // libgomp comes with libtorch under a hashed name; its symbols are found through libtorch_cpu.
        IntPtr library = TorchBackend.Handle("libtorch_cpu.so");
        return library != IntPtr.Zero && NativeLibrary.TryGetExport(library, "omp_set_num_threads", out IntPtr export)
            ? (delegate* unmanaged<int, void>)export
            : null;
    }

    /// <summary>
    /// Makes libtorch's ops on the calling thread serial. libtorch sets each thread's OpenMP width
    /// once, on the thread's first op, so that is triggered first and then overridden.
    /// </summary>
    public static void SerialOnThisThread()
    {
        torch.get_num_threads();
        if (setNumThreads != null) setNumThreads(1);
    }
}
