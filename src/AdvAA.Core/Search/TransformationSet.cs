using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using AdvAA.Core.Augment;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Search;

/// <summary>
/// TANDA's transformation functions (TFs): each an op of a search space at a fixed level (a signed
/// op draws its sign per application, as everywhere). By default every op of the space at every
/// level (16 × 10 = 160 for the paper's space); or the TFs a text lists, "Rotate:7, ShearX:3".
/// </summary>
public sealed class TransformationSet
{
    /// <summary>The text that means every op of the space at every level.</summary>
    public const string All = "all";

    readonly long[] opIds;
    readonly long[] levels;

    TransformationSet(SearchSpace space, long[] opIds, long[] levels)
    {
        Space = space;
        this.opIds = opIds;
        this.levels = levels;
    }

    public SearchSpace Space { get; }
    public int Count => opIds.Length;

    /// <summary>"Op:level" of TF <paramref name="index"/>.</summary>
    public string Name(int index) => $"{Space.Ops[(int)opIds[index]].Name}:{levels[index]}";

    /// <summary>
    /// The TFs <paramref name="text"/> names over <paramref name="space"/>: "all", or a comma-separated
    /// list of Op:level (each op of the space, each level in 0..levels−1, none twice).
    /// </summary>
    /// <exception cref="AugmentException">An empty list, an unknown op, a level outside the space's, a malformed or repeated entry, by name.</exception>
    public static TransformationSet Parse(SearchSpace space, string text)
    {
        if (text.Trim().Equals(All, StringComparison.OrdinalIgnoreCase))
        {
            if (space.Ops.Count == 0) throw new AugmentException("the TF set 'all' is empty: the search space has no ops");
            var ids = Enumerable.Range(0, space.Ops.Count).SelectMany(o => Enumerable.Repeat((long)o, space.Levels)).ToArray();
            var lv = Enumerable.Range(0, space.Ops.Count).SelectMany(_ => Enumerable.Range(0, space.Levels).Select(l => (long)l)).ToArray();
            return new TransformationSet(space, ids, lv);
        }
        var entries = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
        if (entries.Length == 0) throw new AugmentException("the TF set is empty: give 'all' or Op:level entries, e.g. \"Rotate:7, ShearX:3\"");
        var seen = new HashSet<(long, long)>();
        var opList = new List<long>();
        var levelList = new List<long>();
        foreach (string entry in entries)
        {
            int colon = entry.LastIndexOf(':');
            if (colon <= 0 || !int.TryParse(entry[(colon + 1)..], NumberStyles.Integer, CultureInfo.InvariantCulture, out int level))
                throw new AugmentException($"TF '{entry}': expected Op:level, e.g. Rotate:7");
            string op = entry[..colon].Trim();
            int id;
            try { id = space.IndexOf(op); }
            catch (AugmentException e) { throw new AugmentException($"TF '{entry}': {e.Message}"); }
            if (level < 0 || level >= space.Levels) throw new AugmentException($"TF '{entry}': level {level} is outside the space's levels 0..{space.Levels - 1}");
            if (!seen.Add((id, level))) throw new AugmentException($"TF '{entry}' is listed twice");
            opList.Add(id);
            levelList.Add(level);
        }
        return new TransformationSet(space, opList.ToArray(), levelList.ToArray());
    }

    /// <summary>Applies one TF per image: <paramref name="tfs"/> int64 [N] indices into this set (on any device).</summary>
    public Tensor Apply(Tensor images, Tensor tfs, Generator? generator)
    {
        using var sequences = tfs.unsqueeze(1);
        return ApplySequences(images, sequences, generator);
    }

    /// <summary>N uniform random sequences of <paramref name="length"/> TFs, int64 [N, length] on the CPU (TANDA's "random" comparison).</summary>
    public Tensor RandomSequences(int n, int length, Generator? generator) =>
        randint(Count, [n, length], generator: generator, dtype: ScalarType.Int64);

    /// <summary>The images after the whole sequences int64 [N, L] (TF k of row i at step k), in one batched pass.</summary>
    public Tensor ApplySequences(Tensor images, Tensor sequences, Generator? generator)
    {
        using var scope = NewDisposeScope();
        var device = images.device;
        var index = sequences.to(device).to(ScalarType.Int64);
        var flat = index.flatten();
        var ops = tensor(opIds, device: device).index_select(0, flat).view_as(index);
        var lv = tensor(levels, device: device).index_select(0, flat).view_as(index);
        return BatchAugment.Apply(images, Space, ops, lv, generator, trusted: true).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Applies the sequences <paramref name="sequences"/> int64 [N, L] to the images, TF k of row i
    /// at step k; returns the images after steps 0..L (the originals first), L + 1 tensors.
    /// </summary>
    public IReadOnlyList<Tensor> ApplyIncremental(Tensor images, Tensor sequences, Generator? generator)
    {
        if (sequences.dim() != 2 || sequences.shape[0] != images.shape[0])
            throw new ArgumentException($"sequences must be int64 [{images.shape[0]}, L]; got [{string.Join(",", sequences.shape)}]", nameof(sequences));
        var steps = new List<Tensor> { images };
        for (long k = 0; k < sequences.shape[1]; k++)
            steps.Add(Apply(steps[^1], sequences.select(1, k), generator));
        return steps;
    }

    /// <summary>The share of each TF among <paramref name="sequences"/> (float64 [Count], summing to 1).</summary>
    public double[] Frequencies(Tensor sequences)
    {
        using var scope = NewDisposeScope();
        long[] counts = bincount(sequences.flatten().cpu(), minlength: Count).data<long>().ToArray();
        double total = Math.Max(1, counts.Sum());
        return counts.Select(c => c / total).ToArray();
    }
}
