using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using Google.Protobuf;
using Tensorboard;

namespace AdvAA.Core.Training;

/// <summary>
/// A run's TensorBoard event file under <c>RUN/tensorboard/</c>, one per training session: scalars,
/// categorical distributions as histograms and PNG images, each event appended and flushed as it
/// comes (TFRecord framing: length, masked CRC-32C of the length, the Event protobuf, its masked
/// CRC-32C). Steps are global training steps. A session that resumes first writes a SessionLog START
/// at its first step, so TensorBoard drops what an interrupted session logged past the checkpoint.
/// </summary>
public sealed class TensorBoardLog : IDisposable
{
    public const string Folder = "tensorboard";
    readonly FileStream file;

    public string Path { get; }

    public TensorBoardLog(string runFolder, long firstStep)
    {
        string folder = System.IO.Path.Combine(runFolder, Folder);
        Directory.CreateDirectory(folder);
        long seconds = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        Path = System.IO.Path.Combine(folder, $"events.out.tfevents.{seconds}.{Environment.MachineName}.{Environment.ProcessId}");
        file = new FileStream(Path, FileMode.Append, FileAccess.Write, FileShare.Read);
        Write(new Event { FileVersion = "brain.Event:2" });
        if (firstStep > 1)
            Write(new Event { Step = firstStep, SessionLog = new SessionLog { Status = SessionLog.Types.SessionStatus.Start } });
    }

    public void Scalar(string tag, double value, long step) =>
        Write(new Event { Step = step, Summary = new Summary { Value = { new Summary.Types.Value { Tag = tag, SimpleValue = (float)value } } } });

    /// <summary>A distribution over named categories (shares summing to 1) as a histogram with one bucket per category, i at [i - 0.5, i + 0.5).</summary>
    public void Categories(string tag, IReadOnlyList<double> shares, long step)
    {
        var histogram = new HistogramProto
        {
            Min = 0,
            Max = shares.Count - 1,
            Num = shares.Sum(),
            Sum = shares.Select((s, i) => s * i).Sum(),
            SumSquares = shares.Select((s, i) => s * i * i).Sum(),
        };
        histogram.BucketLimit.AddRange(Enumerable.Range(0, shares.Count).Select(i => i + 0.5));
        histogram.Bucket.AddRange(shares);
        Write(new Event { Step = step, Summary = new Summary { Value = { new Summary.Types.Value { Tag = tag, Histo = histogram } } } });
    }

    public void Image(string tag, byte[] png, int height, int width, long step) =>
        Write(new Event
        {
            Step = step,
            Summary = new Summary
            {
                Value = { new Summary.Types.Value { Tag = tag, Image = new Summary.Types.Image { Height = height, Width = width, Colorspace = 3, EncodedImageString = ByteString.CopyFrom(png) } } }
            }
        });

    void Write(Event e)
    {
        e.WallTime = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() / 1000.0;
        byte[] data = e.ToByteArray();
        byte[] length = BitConverter.GetBytes((ulong)data.LongLength);
        var record = new byte[8 + 4 + data.Length + 4];
        length.CopyTo(record, 0);
        BitConverter.GetBytes(MaskedCrc(length)).CopyTo(record, 8);
        data.CopyTo(record, 12);
        BitConverter.GetBytes(MaskedCrc(data)).CopyTo(record, 12 + data.Length);
        file.Write(record);
        file.Flush();
    }

    /// <summary>TFRecord's masked CRC-32C (Castagnoli): the CRC rotated right by 15 bits plus 0xa282ead8.</summary>
    public static uint MaskedCrc(ReadOnlySpan<byte> bytes)
    {
        uint crc = 0xFFFFFFFFu;
        foreach (byte b in bytes)
        {
            crc ^= b;
            for (int k = 0; k < 8; k++) crc = (crc & 1) != 0 ? (crc >> 1) ^ 0x82F63B78u : crc >> 1;
        }
        crc ^= 0xFFFFFFFFu;
        return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
    }

    public void Dispose() => file.Dispose();
}
