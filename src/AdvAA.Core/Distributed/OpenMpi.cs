using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Runtime.InteropServices;

namespace AdvAA.Core.Distributed;

/// <summary>Raised when the ranks cannot be formed or cannot agree; the message says why and what to do.</summary>
public sealed class DistributedException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// A thin binding of the Open MPI C API (libmpi.so.40, Debian's <c>openmpi-bin</c>): only the calls
/// data-parallel training needs, on MPI_COMM_WORLD. Open MPI's handles are addresses of its global
/// objects (<c>ompi_mpi_comm_world</c>, <c>ompi_mpi_float</c>, ...), read from the library's exports.
/// The library is opened RTLD_GLOBAL because Open MPI's plug-ins resolve its symbols from the global scope.
/// </summary>
internal sealed unsafe class OpenMpi
{
    public const string LibraryVariable = "ADVAA_MPI_LIBRARY";
    const int Success = 0, RtldNow = 2, RtldGlobal = 0x100;

    [DllImport("libc.so.6", EntryPoint = "dlopen")] static extern IntPtr DlOpen(string file, int mode);
    [DllImport("libc.so.6", EntryPoint = "dlerror")] static extern IntPtr DlError();

    readonly delegate* unmanaged<int*, IntPtr, int> init;
    readonly delegate* unmanaged<int*, int> initialized;
    readonly delegate* unmanaged<int*, int> finalized;
    readonly delegate* unmanaged<int> finalize;
    readonly delegate* unmanaged<IntPtr, int*, int> commRank, commSize;
    readonly delegate* unmanaged<IntPtr, int, int> abort;
    readonly delegate* unmanaged<IntPtr, int> barrier;
    readonly delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, int> allreduce;
    readonly delegate* unmanaged<void*, int, IntPtr, int, IntPtr, int> bcast;
    readonly delegate* unmanaged<void*, int, IntPtr, void*, int, IntPtr, IntPtr, int> allgather;
    readonly IntPtr world, floatType, doubleType, int64Type, byteType, sum;

    public string LibraryPath { get; }

    OpenMpi(string path, IntPtr library)
    {
        LibraryPath = path;
        IntPtr Export(string name) => NativeLibrary.TryGetExport(library, name, out IntPtr address)
            ? address
            : throw new DistributedException($"{path} has no {name}: AdvAA needs Open MPI 4 or later (libmpi.so.40); MPICH and others are not supported");
        init = (delegate* unmanaged<int*, IntPtr, int>)Export("MPI_Init");
        initialized = (delegate* unmanaged<int*, int>)Export("MPI_Initialized");
        finalized = (delegate* unmanaged<int*, int>)Export("MPI_Finalized");
        finalize = (delegate* unmanaged<int>)Export("MPI_Finalize");
        commRank = (delegate* unmanaged<IntPtr, int*, int>)Export("MPI_Comm_rank");
        commSize = (delegate* unmanaged<IntPtr, int*, int>)Export("MPI_Comm_size");
        abort = (delegate* unmanaged<IntPtr, int, int>)Export("MPI_Abort");
        barrier = (delegate* unmanaged<IntPtr, int>)Export("MPI_Barrier");
        allreduce = (delegate* unmanaged<void*, void*, int, IntPtr, IntPtr, IntPtr, int>)Export("MPI_Allreduce");
        bcast = (delegate* unmanaged<void*, int, IntPtr, int, IntPtr, int>)Export("MPI_Bcast");
        allgather = (delegate* unmanaged<void*, int, IntPtr, void*, int, IntPtr, IntPtr, int>)Export("MPI_Allgather");
        world = Export("ompi_mpi_comm_world");
        floatType = Export("ompi_mpi_float");
        doubleType = Export("ompi_mpi_double");
        int64Type = Export("ompi_mpi_int64_t");
        byteType = Export("ompi_mpi_byte");
        sum = Export("ompi_mpi_op_sum");
    }

    /// <summary>The places looked for libmpi: $ADVAA_MPI_LIBRARY alone where set, else the loader's search path and the usual folders.</summary>
    public static IReadOnlyList<string> Candidates()
    {
        // A library named by the user is the only one tried.
        if (Environment.GetEnvironmentVariable(LibraryVariable) is { Length: > 0 } given) return [given];
        var list = new List<string> { "libmpi.so.40" };
        foreach (string folder in new[] { "/usr/lib/x86_64-linux-gnu", "/usr/lib64/openmpi/lib", "/usr/lib/openmpi/lib", "/opt/openmpi/lib", "/usr/local/lib" })
            list.Add(Path.Combine(folder, "libmpi.so.40"));
        return list;
    }

    /// <summary>Opens libmpi (the first candidate that loads); the error names every place tried.</summary>
    public static OpenMpi Load()
    {
        var tried = new List<string>();
        foreach (string candidate in Candidates())
        {
            IntPtr handle = DlOpen(candidate, RtldNow | RtldGlobal);
            if (handle != IntPtr.Zero) return new OpenMpi(candidate, handle);
            tried.Add($"{candidate} ({Marshal.PtrToStringUTF8(DlError()) ?? "not loadable"})");
        }
        throw new DistributedException(
            $"--distributed needs Open MPI, and it was not found; looked for: {string.Join("; ", tried)}. " +
            $"Install it (Debian/Ubuntu: apt install openmpi-bin) or set {LibraryVariable} to its libmpi.so.40");
    }

    void Check(int code, string call)
    {
        if (code != Success) throw new DistributedException($"{call} failed with MPI error {code}");
    }

    public void Init()
    {
        int flag;
        Check(initialized(&flag), "MPI_Initialized");
        if (flag == 0) Check(init(null, IntPtr.Zero), "MPI_Init");
    }

    public void End()
    {
        int flag;
        Check(finalized(&flag), "MPI_Finalized");
        if (flag == 0) Check(finalize(), "MPI_Finalize");
    }

    public int Rank { get { int r; Check(commRank(world, &r), "MPI_Comm_rank"); return r; } }
    public int Size { get { int s; Check(commSize(world, &s), "MPI_Comm_size"); return s; } }

    public void Abort(int code) => abort(world, code);

    public void Barrier() => Check(barrier(world), "MPI_Barrier");

    /// <summary>In-place sum over the ranks of <paramref name="count"/> float32 values at <paramref name="buffer"/> (host memory).</summary>
    public void AllReduceSum(IntPtr buffer, long count)
    {
        // MPI counts are int: reduce in slices of at most 2^30 values.
        const long slice = 1L << 30;
        for (long offset = 0; offset < count; offset += slice)
            Check(allreduce((void*)1 /* MPI_IN_PLACE */, (float*)buffer + offset, (int)Math.Min(slice, count - offset), floatType, sum, world), "MPI_Allreduce");
    }

    public void AllReduceSum(double[] values)
    {
        fixed (double* p = values)
            Check(allreduce((void*)1, p, values.Length, doubleType, sum, world), "MPI_Allreduce");
    }

    public long[] AllGather(long value)
    {
        var all = new long[Size];
        fixed (long* p = all)
            Check(allgather(&value, 1, int64Type, p, 1, int64Type, world), "MPI_Allgather");
        return all;
    }

    /// <summary>Every rank's <paramref name="bytes"/> bytes at <paramref name="send"/>, in rank order, into <paramref name="receive"/> (Size × bytes).</summary>
    public void AllGather(IntPtr send, int bytes, IntPtr receive) =>
        Check(allgather((void*)send, bytes, byteType, (void*)receive, bytes, byteType, world), "MPI_Allgather");

    public void Broadcast(byte[] bytes, int root)
    {
        fixed (byte* p = bytes)
            Check(bcast(p, bytes.Length, byteType, root, world), "MPI_Bcast");
    }
}
