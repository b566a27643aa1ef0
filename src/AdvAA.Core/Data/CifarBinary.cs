using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Microsoft.Win32.SafeHandles;
using static TorchSharp.torch;

namespace AdvAA.Core.Data;

/// <summary>
/// The CIFAR binary formats: fixed-size records of label bytes followed by 3072 pixel bytes
/// (1024 R, 1024 G, 1024 B, each 32x32 row-major), which is already CHW order.
/// </summary>
internal static class CifarBinary
{
    internal const int Side = 32;
    internal const int PixelBytes = 3 * Side * Side;

    /// <summary>The label bytes that lead each record: what each is called and how many values it may take.</summary>
    internal sealed record Layout(string[] LabelNames, int[] LabelCounts, int LabelIndex)
    {
        public int RecordBytes => LabelNames.Length + PixelBytes;
    }

    internal static readonly string[] Cifar10Classes =
        ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"];

    /// <summary>
    /// Reads all records of all files: one read per file into one buffer, then the labels are taken
    /// out and the pixels moved down over them in place, so the buffer becomes the image tensor
    /// (fresh memory is touched once, which is what a first load costs most).
    /// </summary>
    internal static ImageDataset Read(IReadOnlyList<string> files, Layout layout, IReadOnlyList<string> classes)
    {
        if (files.Count == 0) throw new ArgumentException("no files to read", nameof(files));
        string[] paths = files.Select(Path.GetFullPath).ToArray();
        int recordBytes = layout.RecordBytes, labelBytes = layout.LabelNames.Length;
        long[] counts = paths.Select(p => RecordCount(p, recordBytes)).ToArray();
        long total = counts.Sum();
        if (total * recordBytes > int.MaxValue)
            throw new DataFormatException($"{string.Join(", ", paths)}: {total} records are more than 2 GB, too many to hold in memory at once");
        int count = (int)total;
        using var scope = NewDisposeScope();
        Tensor buffer = empty((long)count * recordBytes, ScalarType.Byte);
        Span<byte> bytes = buffer.bytes;
        var labels = new long[count];
        for (int f = 0, first = 0; f < paths.Length; first += (int)counts[f], f++)
        {
            Span<byte> records = bytes.Slice(first * recordBytes, (int)counts[f] * recordBytes);
            ReadWhole(paths[f], records, recordBytes);
            TakeLabels(paths[f], records, layout, labels.AsSpan(first));
        }
        for (int i = 0; i < count; i++)
            bytes.Slice(i * recordBytes + labelBytes, PixelBytes).CopyTo(bytes.Slice(i * PixelBytes, PixelBytes));
        Tensor images = buffer.narrow(0, 0, (long)count * PixelBytes).view(count, 3, Side, Side);
        return new ImageDataset(images, tensor(labels), classes, string.Join(", ", paths));
    }

    /// <summary>Class names, one a line (blank lines ignored), or null when the file does not exist.</summary>
    internal static IReadOnlyList<string>? ReadNames(string file, int expected)
    {
        if (!File.Exists(file)) return null;
        string[] names = DataFormatException.Reading(file, () => File.ReadAllLines(file))
            .Select(l => l.Trim()).Where(l => l.Length > 0).ToArray();
        if (names.Length != expected)
            throw new DataFormatException($"{file}: {names.Length} class names, expected {expected} (one a line)");
        return names;
    }

    static long RecordCount(string path, int recordBytes)
    {
        FileInfo info = RegularFile.Resolve(path, out string? problem) ?? throw new DataFormatException($"{path}: {problem}");
        long length = info.Length;
        long whole = length / recordBytes, rest = length % recordBytes;
        if (rest != 0)
            throw new DataFormatException(
                $"{path}: truncated record {whole} at byte offset {whole * recordBytes}: it has {rest} of {recordBytes} bytes " +
                $"(the file size {length} is not a multiple of the {recordBytes}-byte record)");
        return whole;
    }

    static void ReadWhole(string path, Span<byte> destination, int recordBytes)
    {
        using SafeFileHandle handle = DataFormatException.Reading(path, () => File.OpenHandle(path));
        long offset = 0;
        while (offset < destination.Length)
        {
            int read = ReadAt(path, handle, offset, destination[(int)offset..]);
            if (read == 0)
                throw new DataFormatException($"{path}: the file ended at byte offset {offset} (record {offset / recordBytes}) while reading it; it is shorter than when it was first measured");
            offset += read;
        }
    }

    static int ReadAt(string path, SafeFileHandle handle, long offset, Span<byte> buffer)
    {
        try { return RandomAccess.Read(handle, buffer, offset); }
        catch (IOException e) { throw new DataFormatException($"{path}: cannot read at byte offset {offset}: {e.Message}", e); }
    }

    /// <summary>Checks every label byte of every record and copies out the one that is the label.</summary>
    static void TakeLabels(string path, ReadOnlySpan<byte> records, Layout layout, Span<long> labels)
    {
        int size = layout.RecordBytes;
        for (int record = 0, at = 0; at < records.Length; record++, at += size)
        {
            for (int k = 0; k < layout.LabelCounts.Length; k++)
                if (records[at + k] >= layout.LabelCounts[k])
                    throw new DataFormatException(
                        $"{path}: record {record} (byte offset {at + k}): {layout.LabelNames[k]} {records[at + k]} is out of range 0..{layout.LabelCounts[k] - 1}");
            labels[record] = records[at + layout.LabelIndex];
        }
    }
}
