using System;
using System.Collections.Generic;
using System.IO;
using System.Runtime.InteropServices;

namespace AdvAA.Core.Distributed;

/// <summary>
/// A thin binding of NCCL (libnccl.so.2, shipped with the CUDA libtorch of an installed PyTorch):
/// one communicator over the ranks, made from a unique id that rank 0 creates and MPI broadcasts,
/// and in-place float32 sums of CUDA memory on the default stream (the one TorchSharp's kernels run
/// on, so no extra synchronisation is needed and nothing is copied to the host).
/// </summary>
public sealed unsafe class Nccl : IDisposable
{
    public const string LibraryVariable = "ADVAA_NCCL_LIBRARY";
    const int UniqueIdBytes = 128, Float32 = 7, Sum = 0;

    readonly delegate* unmanaged<byte*, int> getUniqueId;
    readonly delegate* unmanaged<IntPtr*, int, UniqueId, int, int> commInitRank;
    readonly delegate* unmanaged<IntPtr, int> commDestroy;
    readonly delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int> allReduce;
    readonly delegate* unmanaged<int, IntPtr> errorString;
    IntPtr comm;

    public string LibraryPath { get; }

    Nccl(string path, IntPtr library)
    {
        LibraryPath = path;
        IntPtr Export(string name) => NativeLibrary.TryGetExport(library, name, out IntPtr address)
            ? address : throw new DistributedException($"{path} has no {name}: not a NCCL 2 library");
        getUniqueId = (delegate* unmanaged<byte*, int>)Export("ncclGetUniqueId");
        commInitRank = (delegate* unmanaged<IntPtr*, int, UniqueId, int, int>)Export("ncclCommInitRank");
        commDestroy = (delegate* unmanaged<IntPtr, int>)Export("ncclCommDestroy");
        allReduce = (delegate* unmanaged<void*, void*, nuint, int, int, IntPtr, IntPtr, int>)Export("ncclAllReduce");
        errorString = (delegate* unmanaged<int, IntPtr>)Export("ncclGetErrorString");
    }

    /// <summary>Where libnccl.so.2 is looked for: $ADVAA_NCCL_LIBRARY, the loaded libtorch's folder, the pip wheel's nvidia/nccl/lib beside it, then the loader's path.</summary>
    public static IReadOnlyList<string> Candidates(string? libTorchFolder)
    {
        // A library named by the user is the only one tried.
        if (Environment.GetEnvironmentVariable(LibraryVariable) is { Length: > 0 } given) return [given];
        var list = new List<string>();
        if (libTorchFolder != null)
        {
            list.Add(Path.Combine(libTorchFolder, "libnccl.so.2"));
            // site-packages/torch/lib → site-packages/nvidia/nccl/lib
            list.Add(Path.GetFullPath(Path.Combine(libTorchFolder, "..", "..", "nvidia", "nccl", "lib", "libnccl.so.2")));
        }
        list.Add("libnccl.so.2");
        return list;
    }

    public static Nccl Load(string? libTorchFolder)
    {
        var tried = new List<string>();
        foreach (string candidate in Candidates(libTorchFolder))
        {
            if (NativeLibrary.TryLoad(candidate, out IntPtr handle)) return new Nccl(candidate, handle);
            tried.Add(candidate);
        }
        throw new DistributedException(
            $"--distributed on CUDA needs NCCL (libnccl.so.2), and it was not found; looked in: {string.Join("; ", tried)}. " +
            $"It ships with PyTorch's CUDA wheels (nvidia-nccl-cu12); or set {LibraryVariable} to it");
    }

    void Check(int code, string call)
    {
        if (code != 0)
            throw new DistributedException($"{call} failed: {Marshal.PtrToStringUTF8(errorString(code)) ?? "NCCL error " + code}");
    }

    /// <summary>Rank 0's new unique id (128 bytes), to be broadcast to the others.</summary>
    internal byte[] NewUniqueId()
    {
        var id = new byte[UniqueIdBytes];
        fixed (byte* p = id) Check(getUniqueId(p), "ncclGetUniqueId");
        return id;
    }

    /// <summary>Joins the communicator of <paramref name="size"/> ranks (collective; the CUDA device must be current).</summary>
    internal void Join(byte[] uniqueId, int size, int rank)
    {
        IntPtr c;
        UniqueId id;
        for (int i = 0; i < UniqueIdBytes; i++) id.Bytes[i] = uniqueId[i];
        Check(commInitRank(&c, size, id, rank), "ncclCommInitRank");
        comm = c;
    }

    /// <summary>In-place sum over the ranks of <paramref name="count"/> float32 values of CUDA memory.</summary>
    internal void AllReduceSum(IntPtr buffer, long count) =>
        Check(allReduce((void*)buffer, (void*)buffer, (nuint)count, Float32, Sum, comm, IntPtr.Zero), "ncclAllReduce");

    /// <summary>ncclUniqueId: 128 bytes, passed by value to ncclCommInitRank.</summary>
    [StructLayout(LayoutKind.Sequential, Size = UniqueIdBytes)]
    struct UniqueId { public fixed byte Bytes[UniqueIdBytes]; }

    public void Dispose()
    {
        if (comm != IntPtr.Zero) commDestroy(comm);
        comm = IntPtr.Zero;
    }
}
