using System;
using System.Collections.Generic;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using AdvAA.Core.Backend;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Distributed;

/// <summary>
/// The ranks of a data-parallel job (<c>--distributed</c>): started by an MPI launcher (Open MPI's
/// <c>mpirun</c>, or Slurm's <c>srun</c>), joined through MPI, reducing host tensors with MPI and CUDA
/// tensors with NCCL (Horovod's design). One per process, made by <see cref="Start"/> and handed
/// to whoever needs it (the runner's session, the trainer); without <c>--distributed</c> nothing of
/// MPI is loaded.
/// </summary>
public sealed class ProcessGroup : IDisposable
{
    readonly OpenMpi mpi;
    Nccl? nccl;

    public int Rank { get; }
    public int Size { get; }
    /// <summary>The rank among the ranks on this machine (picks the GPU).</summary>
    public int LocalRank { get; }
    public int LocalSize { get; }
    /// <summary>Who started the ranks, in words (e.g. "mpirun (Open MPI)").</summary>
    public string Launcher { get; }
    public string MpiLibrary => mpi.LibraryPath;

    ProcessGroup(OpenMpi mpi, int rank, int size, int localRank, int localSize, string launcher)
    {
        this.mpi = mpi;
        Rank = rank;
        Size = size;
        LocalRank = localRank;
        LocalSize = localSize;
        Launcher = launcher;
    }

    static string? Variable(string name) => Environment.GetEnvironmentVariable(name) is { Length: > 0 } v ? v : null;

    /// <summary>The launcher that started this process, from its environment, or null when none did.</summary>
    public static string? DetectLauncher() =>
        Variable("OMPI_COMM_WORLD_SIZE") != null ? "mpirun (Open MPI)"
        : Variable("SLURM_PROCID") != null && Variable("SLURM_STEP_ID") != null ? "srun (Slurm)"
        : Variable("PMIX_RANK") != null ? "a PMIx launcher"
        : null;

    /// <summary>
    /// Joins the job this process was launched into: MPI_Init, rank and size from MPI, the local rank
    /// from the launcher's variables, host threads split among the local ranks. Errors name what is
    /// missing (no launcher, no Open MPI).
    /// </summary>
    public static ProcessGroup Start()
    {
        string launcher = DetectLauncher() ?? throw new DistributedException(
            "--distributed: this process was not started by an MPI launcher (none of OMPI_COMM_WORLD_SIZE, SLURM_PROCID, PMIX_RANK is set). " +
            "Start K ranks with: mpirun -np K advaa ... --distributed (or srun inside a Slurm allocation)");
        OpenMpi mpi = OpenMpi.Load();
        mpi.Init();
        int rank = mpi.Rank, size = mpi.Size;
        int Local(string a, string b, int fallback) =>
            int.TryParse(Variable(a) ?? Variable(b), out int v) ? v : fallback;
        int localRank = Local("OMPI_COMM_WORLD_LOCAL_RANK", "SLURM_LOCALID", rank);
        int localSize = Local("OMPI_COMM_WORLD_LOCAL_SIZE", "SLURM_NTASKS_PER_NODE", size);
        // Each rank gets its share of the machine's cores (one thread each on this 2-core machine with K = 2).
        torch.set_num_threads(Math.Max(1, Environment.ProcessorCount / Math.Max(1, localSize)));
        return new ProcessGroup(mpi, rank, size, localRank, localSize, launcher);
    }

    /// <summary>The device this rank trains on: cuda:localRank (modulo the GPUs there are) for CUDA, else the device itself.</summary>
    public Device DeviceFor(Device device) =>
        device.type == DeviceType.CUDA ? new Device(DeviceType.CUDA, LocalRank % Math.Max(1, torch.cuda.device_count())) : device;

    /// <summary>
    /// Every rank must hold the same <paramref name="bytes"/> (e.g. serialised model state): compares
    /// a hash of them across the ranks. On a mismatch every rank throws, rank 0 naming the ranks that differ.
    /// </summary>
    public void EnsureSame(string what, byte[] bytes)
    {
        long hash = BitConverter.ToInt64(SHA256.HashData(bytes), 0);
        long[] all = mpi.AllGather(hash);
        var differing = new System.Collections.Generic.List<int>();
        for (int r = 1; r < all.Length; r++) if (all[r] != all[0]) differing.Add(r);
        if (differing.Count > 0)
            throw new DistributedException(
                $"the ranks disagree on {what}: rank{(differing.Count > 1 ? "s" : "")} {string.Join(", ", differing)} differ{(differing.Count > 1 ? "" : "s")} from rank 0 " +
                "(another command line, script, data or version, or a random draw that is not seeded). Start every rank with the same command and files");
    }

    /// <summary>Rank 0's text, on every rank.</summary>
    public string Broadcast(string text) => BroadcastFrom(0, text);

    /// <summary>The text of rank <paramref name="root"/>, on every rank.</summary>
    string BroadcastFrom(int root, string text)
    {
        byte[] length = BitConverter.GetBytes(Rank == root ? Encoding.UTF8.GetByteCount(text) : 0);
        mpi.Broadcast(length, root);
        byte[] bytes = Rank == root ? Encoding.UTF8.GetBytes(text) : new byte[BitConverter.ToInt32(length, 0)];
        mpi.Broadcast(bytes, root);
        return Encoding.UTF8.GetString(bytes);
    }

    /// <summary>Every rank's <paramref name="text"/>, in rank order, on every rank.</summary>
    public IReadOnlyList<string> AllGatherText(string text) => Enumerable.Range(0, Size).Select(r => BroadcastFrom(r, text)).ToList();

    /// <summary>
    /// The first rank whose <paramref name="text"/> differs from rank 0's, with that text (on every
    /// rank), or null when all agree: so that rank 0 can say what differs, not only that something does.
    /// </summary>
    public (int Rank, string Text)? FirstDisagreement(string text)
    {
        long[] all = mpi.AllGather(BitConverter.ToInt64(SHA256.HashData(Encoding.UTF8.GetBytes(text)), 0));
        int first = Array.FindIndex(all, h => h != all[0]);
        return first < 0 ? null : (first, BroadcastFrom(first, text));
    }

    public void Barrier() => mpi.Barrier();

    /// <summary>Sums over the ranks, in place, of host values.</summary>
    public void AllReduceSum(double[] values) => mpi.AllReduceSum(values);

    /// <summary>
    /// Sums a contiguous float32 tensor over the ranks, in place, without a copy: with MPI on the
    /// host, with NCCL on a GPU (the communicator is made at the first CUDA reduction, a collective
    /// every rank reaches at the same step).
    /// </summary>
    public void AllReduceSum(Tensor flat)
    {
        if (flat.dtype != ScalarType.Float32 || !flat.is_contiguous())
            throw new ArgumentException("all-reduce needs a contiguous float32 tensor");
        IntPtr data = DataPointer(flat);
        if (flat.device_type == DeviceType.CUDA)
        {
            if (nccl == null)
            {
                var library = Nccl.Load(TorchBackend.Current?.LibTorchFolder);
                byte[] id = Rank == 0 ? library.NewUniqueId() : new byte[128];
                mpi.Broadcast(id, 0);
                library.Join(id, Size, Rank);
                nccl = library;
            }
            nccl.AllReduceSum(data, flat.numel());
        }
        else mpi.AllReduceSum(data, flat.numel());
    }

    /// <summary>
    /// Every rank's rows of a host tensor (uint8, int64 or float32), concatenated in rank order; the
    /// ranks may hold different numbers of rows of the same shape. Each rank's rows are sent once
    /// (MPI on the host, padded to the largest rank's).
    /// </summary>
    public Tensor AllGatherRows(Tensor rows)
    {
        if (rows.device_type != DeviceType.CPU) throw new ArgumentException("all-gather needs a host tensor");
        long[] counts = mpi.AllGather(rows.shape[0]);
        long[] rowShape = rows.shape[1..];
        long most = counts.Max(), rowBytes = rowShape.Aggregate(1L, (a, b) => a * b) * rows.element_size();
        if (most * rowBytes > int.MaxValue)
            throw new DistributedException($"a rank's share of a batch is {most * rowBytes} bytes, more than one MPI message holds (2 GiB): use a smaller batch");
        using Tensor padded = torch.zeros([most, .. rowShape], rows.dtype);
        if (rows.shape[0] > 0) padded.narrow(0, 0, rows.shape[0]).copy_(rows);
        using Tensor all = torch.empty([Size * most, .. rowShape], rows.dtype);
        mpi.AllGather(BytePointer(padded), (int)(most * rowBytes), BytePointer(all));
        return torch.cat(Enumerable.Range(0, Size).Select(r => all.narrow(0, r * most, counts[r])).ToArray());
    }

    static IntPtr BytePointer(Tensor t) => t.dtype switch
    {
        ScalarType.Byte => t.storage<byte>().data_ptr(),
        ScalarType.Int64 => t.storage<long>().data_ptr(),
        ScalarType.Float32 => t.storage<float>().data_ptr(),
        _ => throw new ArgumentException($"all-gather takes uint8, int64 or float32 tensors, not {t.dtype}"),
    };

    static IntPtr DataPointer(Tensor t) => t.storage<float>().data_ptr() + (nint)(t.storage_offset() * sizeof(float));

    /// <summary>Ends the whole job now (every rank), with this exit code: a rank that fails must not leave the others waiting.</summary>
    public void Abort(int code) => mpi.Abort(code);

    public void Dispose()
    {
        nccl?.Dispose();
        nccl = null;
        mpi.End();
    }
}
