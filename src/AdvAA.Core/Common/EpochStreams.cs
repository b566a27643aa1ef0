using System;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core;

/// <summary>
/// The random streams of one epoch, each from its own generator seeded by (seed, epoch, stream), so
/// that every epoch's randomness depends only on them and a resumed run repeats it exactly; no
/// stream is the global generator, so trainers in one process cannot disturb each other.
/// </summary>
public sealed class EpochStreams : IDisposable
{
    public EpochStreams(long seed, int epoch)
    {
        Seed = seed;
        Epoch = epoch;
        Augment = new Generator((ulong)SeedOf(seed, epoch, AugmentStream));
        Policy = new Generator((ulong)SeedOf(seed, epoch, PolicyStream));
    }

    public const int AugmentStream = 1, PolicyStream = 2, DistributionStream = 3, DropoutStream = 4, MixStream = 7;

    /// <summary>Streams of "epoch 0", drawn once when a run is made: the target's and the method's initial weights.</summary>
    public const int ModelInitStream = 5, MethodInitStream = 6;

    public long Seed { get; }
    public int Epoch { get; }
    /// <summary>Per-sample augmentation draws: sub-policy choices, signs, crops, flips, Cutout squares (CPU).</summary>
    public Generator Augment { get; }
    /// <summary>The epoch's policies: the controller's samples or random ones (CPU).</summary>
    public Generator Policy { get; }

    /// <summary>A seed for another stream of this epoch.</summary>
    public long SeedFor(int stream) => SeedOf(Seed, Epoch, stream);

    /// <summary>A 64-bit seed for one stream of one epoch (SplitMix64 of the three).</summary>
    public static long SeedOf(long seed, int epoch, int stream)
    {
        ulong z = (ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)epoch * 0xBF58476D1CE4E5B9UL + (ulong)stream * 0x94D049BB133111EBUL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (long)((z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFFUL);
    }

    public void Dispose()
    {
        Augment.Dispose();
        Policy.Dispose();
    }
}
