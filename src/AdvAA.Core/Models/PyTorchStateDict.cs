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
/// State dicts in the file format of <c>torch.save</c> (PyTorch ≥ 1.6): a zip archive, stored
/// uncompressed, holding <c>archive/data.pkl</c> (a protocol-2 pickle of an OrderedDict of name →
/// <c>torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)</c>), one record
/// <c>archive/data/K</c> per tensor's storage (little-endian, 64-byte aligned as PyTorch aligns
/// them) and <c>archive/version</c>. Reading accepts what <c>torch.save(model.state_dict())</c>
/// writes (protocols 2 to 5, legacy typed storages, parameters); nothing executes code from the file.
/// </summary>
public static class PyTorchStateDict
{
    const string Archive = "archive";

    /// <summary>Writes <paramref name="entries"/> (CPU or device tensors, any dtype of the storage table) to <paramref name="path"/>.</summary>
    public static void Write(string path, IReadOnlyList<(string Name, Tensor Value)> entries)
    {
        using var scope = NewDisposeScope();
        var pickle = new PickleWriter();
        pickle.Global("collections", "OrderedDict").EmptyTuple().Reduce().Mark();
        var records = new List<(string Name, byte[] Data)>();
        for (int i = 0; i < entries.Count; i++)
        {
            (string name, Tensor value) = entries[i];
            Tensor flat = value.detach().cpu().contiguous();
            string key = i.ToString(System.Globalization.CultureInfo.InvariantCulture);
            pickle.Text(name).Global("torch._utils", "_rebuild_tensor_v2").Mark();
            pickle.Mark().Text("storage").Global("torch", StorageName(flat.dtype, name)).Text(key).Text("cpu").Int(flat.numel()).Tuple().PersistentId();
            pickle.Int(0).Ints(flat.shape).Ints(flat.stride()).False().Global("collections", "OrderedDict").EmptyTuple().Reduce();
            pickle.Tuple().Reduce();
            records.Add(($"{Archive}/data/{key}", flat.bytes.ToArray()));
        }
        pickle.SetItems().Stop();
        records.Insert(0, ($"{Archive}/data.pkl", pickle.ToArray()));
        records.Add(($"{Archive}/version", Encoding.ASCII.GetBytes("3\n")));
        StoredZip.Write(path, records);
    }

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

    static string StorageName(ScalarType type, string entry) =>
        Storages.FirstOrDefault(s => s.Type == type).Name ?? throw new ArgumentException($"{entry}: tensors of {type} have no PyTorch storage type here", nameof(type));

    internal static ScalarType? StorageType(string name) => Storages.FirstOrDefault(s => s.Name == name) is { Name: not null } s ? s.Type : null;

    /// <summary>The opcodes of pickle protocol 2 that a state dict needs (what <c>pickle.dumps</c> writes for these values).</summary>
    sealed class PickleWriter
    {
        readonly MemoryStream buffer = new();
        readonly BinaryWriter w;
        public PickleWriter() { w = new BinaryWriter(buffer, Encoding.UTF8); w.Write((byte)0x80); w.Write((byte)2); }
        public PickleWriter Global(string module, string name) { w.Write((byte)'c'); w.Write(Encoding.ASCII.GetBytes($"{module}\n{name}\n")); return this; }
        public PickleWriter Mark() { w.Write((byte)'('); return this; }
        public PickleWriter EmptyTuple() { w.Write((byte)')'); return this; }
        public PickleWriter Tuple() { w.Write((byte)'t'); return this; }
        public PickleWriter Reduce() { w.Write((byte)'R'); return this; }
        public PickleWriter PersistentId() { w.Write((byte)'Q'); return this; }
        public PickleWriter SetItems() { w.Write((byte)'u'); return this; }
        public PickleWriter False() { w.Write((byte)0x89); return this; }
        public void Stop() => w.Write((byte)'.');
        public PickleWriter Text(string s) { byte[] b = Encoding.UTF8.GetBytes(s); w.Write((byte)'X'); w.Write((uint)b.Length); w.Write(b); return this; }
        public PickleWriter Int(long v)
        {
            if (v is >= int.MinValue and <= int.MaxValue) { w.Write((byte)'J'); w.Write((int)v); }
            else { w.Write((byte)0x8a); w.Write((byte)8); w.Write(v); } // LONG1, 8 bytes little-endian two's complement
            return this;
        }
        public PickleWriter Ints(long[] values) { Mark(); foreach (long v in values) Int(v); return Tuple(); }
        public byte[] ToArray() { w.Flush(); return buffer.ToArray(); }
    }

    /// <summary>A zip archive of stored (uncompressed) records, each one's data aligned to 64 bytes through its local header's extra field, as PyTorch writes them.</summary>
    static class StoredZip
    {
        const int Alignment = 64;

        public static void Write(string path, IReadOnlyList<(string Name, byte[] Data)> records)
        {
            using var file = new FileStream(path, FileMode.Create, FileAccess.Write);
            using var w = new BinaryWriter(file);
            var central = new List<(byte[] Name, uint Crc, uint Size, uint Offset)>();
            foreach (var (name, data) in records)
            {
                if (file.Position + data.LongLength > uint.MaxValue)
                    throw new ModelFileException($"{path}: the weights exceed 4 GB, which this writer (no zip64) does not support");
                byte[] nameBytes = Encoding.UTF8.GetBytes(name);
                long dataStart = file.Position + 30 + nameBytes.Length + 4;
                int pad = (int)((Alignment - dataStart % Alignment) % Alignment);
                uint crc = Crc32.Of(data);
                central.Add((nameBytes, crc, (uint)data.Length, (uint)file.Position));
                w.Write(0x04034b50u); w.Write((ushort)20); w.Write((ushort)0); w.Write((ushort)0); // version, flags, stored
                w.Write((ushort)0); w.Write((ushort)0x21); // time 00:00, date 1980-01-01
                w.Write(crc); w.Write((uint)data.Length); w.Write((uint)data.Length);
                w.Write((ushort)nameBytes.Length); w.Write((ushort)(4 + pad));
                w.Write(nameBytes);
                w.Write((ushort)0x4246); w.Write((ushort)pad); w.Write(new byte[pad]); // "FB": padding, as PyTorch names it
                w.Write(data);
            }
            long directory = file.Position;
            foreach (var (name, crc, size, offset) in central)
            {
                w.Write(0x02014b50u); w.Write((ushort)20); w.Write((ushort)20); w.Write((ushort)0); w.Write((ushort)0);
                w.Write((ushort)0); w.Write((ushort)0x21);
                w.Write(crc); w.Write(size); w.Write(size);
                w.Write((ushort)name.Length); w.Write((ushort)0); w.Write((ushort)0); // extra, comment
                w.Write((ushort)0); w.Write((ushort)0); w.Write(0u); // disk, internal and external attributes
                w.Write(offset); w.Write(name);
            }
            long size0 = file.Position - directory;
            w.Write(0x06054b50u); w.Write((ushort)0); w.Write((ushort)0);
            w.Write((ushort)central.Count); w.Write((ushort)central.Count);
            w.Write((uint)size0); w.Write((uint)directory); w.Write((ushort)0);
        }
    }

    /// <summary>CRC-32 (IEEE 802.3, reflected 0xEDB88320), the zip format's checksum.</summary>
    static class Crc32
    {
        static readonly uint[] Table = Enumerable.Range(0, 256).Select(n =>
        {
            uint c = (uint)n;
            for (int k = 0; k < 8; k++) c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
            return c;
        }).ToArray();

        public static uint Of(byte[] data)
        {
            uint c = 0xFFFFFFFFu;
            foreach (byte b in data) c = Table[(c ^ b) & 0xFF] ^ (c >> 8);
            return c ^ 0xFFFFFFFFu;
        }
    }
}
