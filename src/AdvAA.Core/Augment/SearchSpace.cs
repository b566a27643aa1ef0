using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Augment;

/// <summary>
/// An ordered list of ops with their (possibly overridden) ranges and a number of magnitude levels.
/// An op's index here is the op id the controller samples and <see cref="BatchAugment"/> takes.
/// </summary>
public sealed class SearchSpace
{
    readonly OpCompute[] computes;
    readonly ConcurrentDictionary<string, SpaceTables> tables = new();

    /// <param name="ops">The ops, in op-id order; names unique (case-insensitive).</param>
    /// <param name="levels">Magnitude levels 0..levels−1, at least 2.</param>
    /// <param name="customOps">The code of every <see cref="OpKind.Custom"/> op in <paramref name="ops"/>, matched by name.</param>
    public SearchSpace(IReadOnlyList<OpDefinition> ops, int levels = 10, IReadOnlyList<ICustomOp>? customOps = null)
    {
        ArgumentNullException.ThrowIfNull(ops);
        if (ops.Count == 0)
            throw new AugmentException("a search space needs at least one op");
        if (levels < 2)
            throw new AugmentException($"a search space needs at least 2 levels, got {levels}");
        var duplicate = ops.GroupBy(o => o.Name, StringComparer.OrdinalIgnoreCase).FirstOrDefault(g => g.Count() > 1);
        if (duplicate != null)
            throw new AugmentException($"op '{duplicate.Key}' appears {duplicate.Count()} times in the search space; names must be unique");

        var custom = customOps ?? Array.Empty<ICustomOp>();
        var byName = new Dictionary<string, ICustomOp>(StringComparer.OrdinalIgnoreCase);
        foreach (var c in custom)
        {
            var match = ops.FirstOrDefault(o => string.Equals(o.Name, c.Name, StringComparison.OrdinalIgnoreCase));
            if (match == null || match.Kind != OpKind.Custom)
                throw new AugmentException($"custom op '{c.Name}' has no OpDefinition.Custom of that name among the ops ({string.Join(", ", ops.Select(o => o.Name))})");
            if (!byName.TryAdd(c.Name, c))
                throw new AugmentException($"custom op '{c.Name}' is given twice");
        }
        computes = ops.Select(o => o.Compute ?? (byName.TryGetValue(o.Name, out var c)
                ? CustomCompute(c)
                : throw new AugmentException($"op '{o.Name}' is custom but no ICustomOp named '{o.Name}' was given"))).ToArray();
        Ops = ops.ToArray();
        Levels = levels;
        CustomOps = custom.ToArray();
    }

    /// <summary>The AutoAugment paper's 16 ops (the table without Identity) with their default ranges, 10 levels.</summary>
    public static SearchSpace Default { get; } = new(OpTable.Defaults.Where(o => o.Kind != OpKind.Identity).ToArray());

    /// <summary>
    /// The space for images of this size: each built-in op whose pixel range (TranslateX/Y, Cutout) is
    /// still its default for 32×32 images gets the default for this size; ranges set by hand stay.
    /// The space itself for 32×32.
    /// </summary>
    public SearchSpace SizedTo(int height, int width)
    {
        if (height == OpTable.DefaultImageSize && width == OpTable.DefaultImageSize) return this;
        var sized = OpTable.ForImageSize(height, width);
        var ops = Ops.Select(op =>
        {
            int i = OpTable.Defaults.ToList().FindIndex(d => d.Name == op.Name && op.Kind != OpKind.Custom);
            if (i < 0) return op;
            var (standard, scaled) = (OpTable.Defaults[i], sized[i]);
            bool isPixelOp = standard.Low != scaled.Low || standard.High != scaled.High;
            return isPixelOp && op.Low == standard.Low && op.High == standard.High ? scaled.WithSigned(op.Signed) : op;
        }).ToArray();
        return new SearchSpace(ops, Levels, CustomOps);
    }

    /// <summary>The space as config.json records it: the levels, then the ops in op-id order with their ranges and signs (custom ones marked).</summary>
    public JsonObject ToJson() => new()
    {
        ["levels"] = Levels,
        ["ops"] = new JsonArray(Ops.Select(o =>
        {
            var op = new JsonObject { ["name"] = o.Name, ["low"] = o.Low, ["high"] = o.High, ["signed"] = o.Signed };
            if (o.Kind == OpKind.Custom) op["custom"] = true;
            return (JsonNode?)op;
        }).ToArray()),
    };

    /// <summary>
    /// A recorded space: built-in ops from the op table with the recorded ranges and signs; a custom
    /// op keeps its name, range and sign, but its code is only in the script that defined it, so
    /// applying it is an error until <see cref="WithCustomOps"/> gives the code.
    /// </summary>
    public static SearchSpace FromJson(JsonObject json, string where)
    {
        var recorded = RecordJson.Array(json, "ops", where).Select((n, i) =>
        {
            string at = $"{where}: ops[{i}]";
            var o = n as JsonObject ?? throw new RunFolderException($"{at} is not an object");
            return (Name: RecordJson.Value<string>(o, "name", at), Low: RecordJson.Number(o, "low", at), High: RecordJson.Number(o, "high", at),
                Signed: RecordJson.Value<bool>(o, "signed", at), Custom: RecordJson.Optional<bool>(o, "custom", at) ?? false);
        }).ToArray();
        try
        {
            var ops = recorded.Select(o =>
            {
                if (o.Custom) return OpDefinition.Custom(o.Name, $"user op {o.Name}", o.Low, o.High, o.Signed);
                var op = OpTable.Get(o.Name);
                return op.HasMagnitude ? op.WithRange(o.Low, o.High).WithSigned(o.Signed) : op;
            }).ToArray();
            return new SearchSpace(ops, RecordJson.Value<int>(json, "levels", where),
                recorded.Where(o => o.Custom).Select(o => (ICustomOp)new RecordedCustomOp(o.Name)).ToArray());
        }
        catch (AugmentException e)
        {
            throw new RunFolderException($"{where}: {e.Message}", e);
        }
    }

    /// <summary>
    /// This space with the code of its custom ops (a recorded space has only their names), matched
    /// by name in <paramref name="code"/>; a custom op without code is an error naming it.
    /// </summary>
    public SearchSpace WithCustomOps(IReadOnlyList<ICustomOp>? code, string where)
    {
        if (!CustomOps.Any(c => c is RecordedCustomOp)) return this;
        var given = code ?? [];
        var missing = CustomOps.Where(c => c is RecordedCustomOp && !given.Any(g => string.Equals(g.Name, c.Name, StringComparison.OrdinalIgnoreCase))).Select(c => c.Name).ToArray();
        if (missing.Length > 0)
            throw new AugmentException($"{where} has the custom op{(missing.Length > 1 ? "s" : "")} {string.Join(", ", missing)}, whose code only the script that defined {(missing.Length > 1 ? "them" : "it")} has");
        return new SearchSpace(Ops, Levels, CustomOps.Select(c => c is RecordedCustomOp
            ? given.First(g => string.Equals(g.Name, c.Name, StringComparison.OrdinalIgnoreCase)) : c).ToArray());
    }

    /// <summary>A custom op read back from a record: its name without its code.</summary>
    sealed class RecordedCustomOp(string name) : ICustomOp
    {
        public string Name { get; } = name;
        public Tensor Apply(Tensor images, Tensor magnitudes) =>
            throw new AugmentException($"custom op '{Name}' was read back from a run folder; its code is only in the script that defined it");
    }

    public IReadOnlyList<string> OpNames => Ops.Select(o => o.Name).ToArray();

    public IReadOnlyList<OpDefinition> Ops { get; }
    public int Levels { get; }
    public IReadOnlyList<ICustomOp> CustomOps { get; }

    /// <summary>The op id of the op with this name (case-insensitive).</summary>
    public int IndexOf(string name)
    {
        for (int i = 0; i < Ops.Count; i++)
            if (string.Equals(Ops[i].Name, name, StringComparison.OrdinalIgnoreCase)) return i;
        throw new AugmentException($"unknown op '{name}'; this search space has: {string.Join(", ", Ops.Select(o => o.Name))}");
    }

    internal OpCompute ComputeOf(int op) => computes[op];

    /// <summary>The space's per-op tables on a device, made once per device.</summary>
    internal SpaceTables TablesOn(Device device) =>
        tables.GetOrAdd(device.ToString(), _ => new SpaceTables(this, computes, device));

    static DirectCompute CustomCompute(ICustomOp op) => new(slice =>
    {
        var result = op.Apply(slice.Images, slice.Values);
        // Devices compare by type and index (Device is a class without value equality).
        if (result.dtype != ScalarType.Byte || !result.shape.SequenceEqual(slice.Images.shape)
            || result.device_type != slice.Images.device_type || result.device_index != slice.Images.device_index)
            throw new AugmentException(
                $"custom op '{op.Name}' returned {result.dtype} [{string.Join(",", result.shape)}] on {result.device}; " +
                $"expected Byte [{string.Join(",", slice.Images.shape)}] on {slice.Images.device}");
        return result;
    });
}

/// <summary>
/// A search space's per-op numbers as tensors on one device: the value of every (op, level), the
/// sign flags and neutral values, the valid ranges and the order in which a stage groups ops.
/// </summary>
internal sealed class SpaceTables
{
    public SpaceTables(SearchSpace space, IReadOnlyList<OpCompute> computes, Device device)
    {
        int count = space.Ops.Count;
        var values = new float[count * space.Levels];
        var reflected = new float[count * space.Levels];
        for (int op = 0; op < count; op++)
            for (int level = 0; level < space.Levels; level++)
            {
                double v = space.Ops[op].ValueAt(level, space.Levels);
                values[op * space.Levels + level] = (float)v;
                reflected[op * space.Levels + level] = (float)(space.Ops[op].Signed ? space.Ops[op].Reflect(v) : v);
            }

        // Group order of a stage: affine ops, table ops, direct ops, then the ones that change nothing
        // (Identity and −1, "this stage did not fire"). Each op keeps its own rank so its samples are contiguous.
        int PassOf(int op) => op < 0 ? 4 : computes[op] switch
        {
            AffineCompute => 0,
            LutCompute => 1,
            DirectCompute => 2,
            _ => 3,
        };
        RankOrder = Enumerable.Range(-1, count + 1).OrderBy(PassOf).ThenBy(op => op).ToArray();
        var rankOfId = new long[count + 1];
        for (int rank = 0; rank < RankOrder.Length; rank++) rankOfId[RankOrder[rank] + 1] = rank;
        ActiveRanks = RankOrder.Count(op => op >= 0 && computes[op] is not SkipCompute);

        using var scope = torch.NewDisposeScope();
        Values = torch.tensor(values, device: device).DetachFromDisposeScope();
        Reflected = torch.tensor(reflected, device: device).DetachFromDisposeScope();
        HasMagnitude = torch.tensor(space.Ops.Select(o => o.HasMagnitude).ToArray(), device: device).DetachFromDisposeScope();
        Min = torch.tensor(space.Ops.Select(o => (float)o.Min).ToArray(), device: device).DetachFromDisposeScope();
        Max = torch.tensor(space.Ops.Select(o => (float)o.Max).ToArray(), device: device).DetachFromDisposeScope();
        RankOfId = torch.tensor(rankOfId, device: device).DetachFromDisposeScope();
    }

    /// <summary>float32 [ops·levels]: raw value (before the sign) of op o at level l at o·levels + l.</summary>
    public Tensor Values { get; }
    /// <summary>float32 [ops·levels]: the value with a negative sign (<see cref="OpDefinition.Reflect"/>; the value itself for unsigned ops).</summary>
    public Tensor Reflected { get; }
    /// <summary>bool [ops]: ops whose value is used (and checked).</summary>
    public Tensor HasMagnitude { get; }
    /// <summary>float32 [ops]: valid raw values.</summary>
    public Tensor Min { get; }
    public Tensor Max { get; }
    /// <summary>int64 [ops + 1]: the rank of op id o at o + 1 (id −1 first).</summary>
    public Tensor RankOfId { get; }
    /// <summary>The op id (−1 for "none") at each rank.</summary>
    public int[] RankOrder { get; }
    /// <summary>Ranks 0..ActiveRanks−1 change images; the rest leave them as they are.</summary>
    public int ActiveRanks { get; }
}
