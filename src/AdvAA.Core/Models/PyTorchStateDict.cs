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

    /// <summary>The tensors of the state dict in <paramref name="path"/>, by name, in the file's order (CPU, contiguous).</summary>
    /// <exception cref="ModelFileException">The file is missing, not a PyTorch zip file, truncated, or holds something other than a dict of tensors.</exception>
    public static IReadOnlyList<(string Name, Tensor Value)> Read(string path)
    {
        if (Directory.Exists(path)) throw new ModelFileException($"{path} is a folder, not a PyTorch weights file (.pt)");
        if (!File.Exists(path)) throw new ModelFileException($"{path} does not exist");
        try
        {
            using var zip = ZipFile.OpenRead(path);
            ZipArchiveEntry pkl = zip.Entries.FirstOrDefault(e => e.FullName.EndsWith("/data.pkl", StringComparison.Ordinal) && e.FullName.Count(c => c == '/') == 1)
                ?? throw new ModelFileException($"{path} is a zip file without data.pkl: not a file written by torch.save");
            string prefix = pkl.FullName[..^"data.pkl".Length];
            byte[] Record(string key)
            {
                ZipArchiveEntry entry = zip.GetEntry(prefix + "data/" + key)
                    ?? throw new ModelFileException($"{path}: the tensor data record {prefix}data/{key} is missing");
                using var s = entry.Open();
                using var m = new MemoryStream();
                s.CopyTo(m);
                return m.ToArray();
            }
            using var stream = pkl.Open();
            using var reader = new PickleReader(stream, path, Record);
            object? root = reader.Load();
            if (root is not PickleDict dict)
                throw new ModelFileException($"{path} holds a {PickleReader.Describe(root)}, not a state dict (torch.save(model.state_dict(), ...) writes one)");
            var result = new List<(string, Tensor)>();
            foreach (var (key, value) in dict.Items)
            {
                if (key is not string name || value is not Tensor t)
                {
                    foreach (var (_, v) in result) v.Dispose();
                    throw new ModelFileException($"{path}: the entry {PickleReader.Describe(key)} is a {PickleReader.Describe(value)}, not a tensor: a state dict maps names to tensors");
                }
                result.Add((name, t));
            }
            return result;
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
    /// Copies the state dict in <paramref name="path"/> into <paramref name="model"/>; the names and
    /// shapes must be the model's exactly (floating-point values are converted to the model's dtype).
    /// </summary>
    /// <exception cref="ModelFileException">The file does not load, or what differs: missing, unexpected or misshapen entries, by name.</exception>
    public static void LoadInto(nn.Module model, string path, string modelDescription)
    {
        var entries = Read(path);
        try
        {
            var expected = model.state_dict();
            var given = entries.ToDictionary(e => e.Name, e => e.Value);
            var problems = new List<string>();
            string Few(IEnumerable<string> names) { var list = names.ToList(); return string.Join(", ", list.Take(4)) + (list.Count > 4 ? $" and {list.Count - 4} more" : ""); }
            var missing = expected.Keys.Where(k => !given.ContainsKey(k)).ToList();
            var unexpected = given.Keys.Where(k => !expected.ContainsKey(k)).ToList();
            if (missing.Count > 0) problems.Add($"missing {Few(missing)}");
            if (unexpected.Count > 0) problems.Add($"not in the model: {Few(unexpected)}");
            foreach (var (name, target) in expected)
            {
                if (!given.TryGetValue(name, out Tensor? value)) continue;
                if (!value.shape.SequenceEqual(target.shape))
                    problems.Add($"{name} is [{string.Join(",", value.shape)}] in the file but [{string.Join(",", target.shape)}] in the model");
                else if (value.dtype != target.dtype && !(value.is_floating_point() && target.is_floating_point()))
                    problems.Add($"{name} is {value.dtype} in the file but {target.dtype} in the model");
            }
            if (problems.Count > 0)
                throw new ModelFileException($"{path} is not a state dict of {modelDescription}: {string.Join("; ", problems.Take(6))}{(problems.Count > 6 ? $"; and {problems.Count - 6} more differences" : "")}");
            using var noGrad = no_grad();
            foreach (var (name, target) in expected) target.copy_(given[name]);
        }
        finally
        {
            foreach (var (_, v) in entries) v.Dispose();
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
