using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Augment;

/// <summary>One stage of a sub-policy: an op (by name) at a level, applied with a probability.</summary>
public sealed record PolicyStage(string Op, int Level, double Probability = 1.0);

/// <summary>Stages applied in order to an image.</summary>
public sealed record SubPolicy(IReadOnlyList<PolicyStage> Stages)
{
    public bool Equals(SubPolicy? other) => other is not null && Stages.SequenceEqual(other.Stages);
    public override int GetHashCode() => Stages.Aggregate(0, HashCode.Combine);
}

/// <summary>Sub-policies; each image gets one of them, chosen uniformly at random.</summary>
public sealed record Policy(IReadOnlyList<SubPolicy> SubPolicies)
{
    public bool Equals(Policy? other) => other is not null && SubPolicies.SequenceEqual(other.SubPolicies);
    public override int GetHashCode() => SubPolicies.Aggregate(0, HashCode.Combine);
}

/// <summary>
/// A policy file's content: one policy that every copy of an image draws from, or M policies, one
/// per instance (copy m uses policy m), as a run learned them. <see cref="Source"/> says where it came
/// from (a file, a run's epoch) and is not part of its identity.
/// </summary>
public sealed record PolicyDocument(IReadOnlyList<Policy> Policies, bool PerInstance, string? Source = null)
{
    public static PolicyDocument Single(Policy policy, string? source = null) => new([policy], false, source);

    public bool Equals(PolicyDocument? other) => other is not null && PerInstance == other.PerInstance && Policies.SequenceEqual(other.Policies);
    public override int GetHashCode() => Policies.Aggregate(PerInstance.GetHashCode(), HashCode.Combine);

    /// <summary>"25 sub-policies" or "8 policies, one per instance", and the source.</summary>
    public string Describe() =>
        (PerInstance ? $"{Policies.Count} policies, one per instance" : $"{Policies[0].SubPolicies.Count} sub-policies")
        + (Source != null ? $" (from {Source})" : "");
}

/// <summary>What the trainer calls for every batch: each sample draws its own ops.</summary>
public interface IPolicySource
{
    string Name { get; }

    /// <summary>uint8 [N,C,H,W] → uint8 [N,C,H,W] on the same device.</summary>
    Tensor Augment(Tensor images, torch.Generator generator);
}

/// <summary>A fixed policy: per sample a uniformly chosen sub-policy, each stage applied with its probability.</summary>
public sealed class PolicyAugment : IPolicySource
{
    readonly long[] opTable, levelTable;
    readonly float[] probabilityTable;
    readonly long subPolicies, stages;
    readonly ConcurrentDictionary<string, (Tensor Ops, Tensor Levels, Tensor Probabilities)> tables = new();

    /// <summary>Binds a policy to a space: every op must be in it and every level below its level count.</summary>
    public PolicyAugment(Policy policy, SearchSpace space, string name = "policy")
    {
        ArgumentNullException.ThrowIfNull(policy);
        if (policy.SubPolicies.Count == 0)
            throw new AugmentException($"{name}: a policy needs at least one sub-policy");
        subPolicies = policy.SubPolicies.Count;
        stages = policy.SubPolicies.Max(s => s.Stages.Count);
        opTable = new long[subPolicies * stages];
        levelTable = new long[subPolicies * stages];
        probabilityTable = new float[subPolicies * stages];
        Array.Fill(opTable, -1L);
        for (int q = 0; q < subPolicies; q++)
        {
            var sub = policy.SubPolicies[q];
            if (sub.Stages.Count == 0)
                throw new AugmentException($"{name}: sub-policy {q} has no stages");
            for (int k = 0; k < sub.Stages.Count; k++)
            {
                var stage = sub.Stages[k];
                string at = $"{name}: sub-policy {q}, stage {k}";
                int op;
                try { op = space.IndexOf(stage.Op); }
                catch (AugmentException e) { throw new AugmentException($"{at}: {e.Message}"); }
                if (stage.Level < 0 || stage.Level >= space.Levels)
                    throw new AugmentException($"{at}: level {stage.Level} of {stage.Op} is outside 0..{space.Levels - 1}");
                if (!(stage.Probability >= 0 && stage.Probability <= 1))
                    throw new AugmentException($"{at}: probability {stage.Probability} of {stage.Op} is outside 0..1");
                opTable[q * stages + k] = op;
                levelTable[q * stages + k] = stage.Level;
                probabilityTable[q * stages + k] = (float)stage.Probability;
            }
        }
        Policy = policy;
        Space = space;
        Name = name;
    }

    public string Name { get; }
    public Policy Policy { get; }
    public SearchSpace Space { get; }

    /// <summary>The policy as [sub-policies, stages] tables on a device (op −1 pads shorter sub-policies), made once per device.</summary>
    (Tensor Ops, Tensor Levels, Tensor Probabilities) TablesOn(Device device) => tables.GetOrAdd(device.ToString(), _ =>
    {
        var shape = new[] { subPolicies, stages };
        return (torch.tensor(opTable, shape, device: device).DetachFromDisposeScope(),
                torch.tensor(levelTable, shape, device: device).DetachFromDisposeScope(),
                torch.tensor(probabilityTable, shape, device: device).DetachFromDisposeScope());
    });

    /// <summary>The rows of a policy grid: <paramref name="images"/>, then each policy applied to them (reports, TensorBoard).</summary>
    public static Tensor Grid(Tensor images, IReadOnlyList<Policy> policies, SearchSpace space, torch.Generator generator)
    {
        using var scope = torch.NewDisposeScope();
        var rows = new List<Tensor> { images };
        rows.AddRange(policies.Select((policy, i) => new PolicyAugment(policy, space, $"policy {i + 1}").Augment(images, generator)));
        return torch.cat(rows, 0).MoveToOuterDisposeScope();
    }

    public Tensor Augment(Tensor images, torch.Generator generator)
    {
        BatchAugment.CheckImages(images);
        using var scope = torch.NewDisposeScope();
        long n = images.shape[0];
        var device = images.device;
        var u = Draw.Uniform(new[] { n, 1 + stages }, generator, device);
        var choice = Draw.Below(u.select(1, 0), subPolicies);
        var tables = TablesOn(device);
        Tensor Rows(Tensor table) => table.index_select(0, choice);
        var ops = Rows(tables.Ops);
        ops = torch.where(u.narrow(1, 1, stages).lt(Rows(tables.Probabilities)), ops, torch.full_like(ops, -1));
        var levels = Rows(tables.Levels);
        return BatchAugment.Apply(images, Space, ops, levels, generator, trusted: true).MoveToOuterDisposeScope();
    }
}

/// <summary>RandAugment (Cubuk et al. 2019): per sample, n ops drawn uniformly from the space, all at level m.</summary>
public sealed class RandAugment : IPolicySource
{
    public RandAugment(int n = 2, int m = 9, SearchSpace? space = null)
    {
        Space = space ?? DefaultSpace;
        if (n < 1)
            throw new AugmentException($"RandAugment: n (ops per image) must be at least 1, got {n}");
        if (m < 0 || m >= Space.Levels)
            throw new AugmentException($"RandAugment: m (the level) {m} is outside 0..{Space.Levels - 1}");
        N = n;
        M = m;
        Name = $"randaugment(n={n},m={m})";
    }

    /// <summary>
    /// RandAugment's 14 ops with torchvision's ranges and 31 levels (m in 0..30): factors 1 ± 0.9 (signed about 1),
    /// shear ±0.3, translate ±0.45·32 px, rotate ±30°, Posterize 8 → 4 bits, Solarize 256 → 0.
    /// </summary>
    public static SearchSpace DefaultSpace { get; } = new(new[]
    {
        OpTable.Get("Identity"), OpTable.Get("AutoContrast"), OpTable.Get("Equalize"), OpTable.Get("Rotate"),
        OpTable.Get("Solarize"), Factor("Color", 0.9), OpTable.Get("Posterize"), Factor("Contrast", 0.9),
        Factor("Brightness", 0.9), Factor("Sharpness", 0.9), OpTable.Get("ShearX"), OpTable.Get("ShearY"),
        OpTable.Get("TranslateX"), OpTable.Get("TranslateY"),
    }, levels: 31);

    /// <summary>An enhancement op whose factor is 1 ± up to <paramref name="spread"/>.</summary>
    internal static OpDefinition Factor(string name, double spread) => OpTable.Get(name).WithRange(1, 1 + spread).WithSigned(true);

    public string Name { get; }
    public int N { get; }
    public int M { get; }
    public SearchSpace Space { get; }

    public Tensor Augment(Tensor images, torch.Generator generator)
    {
        BatchAugment.CheckImages(images);
        using var scope = torch.NewDisposeScope();
        long n = images.shape[0];
        var ops = Draw.Below(Draw.Uniform(new[] { n, N }, generator, images.device), Space.Ops.Count);
        var levels = torch.full_like(ops, M);
        return BatchAugment.Apply(images, Space, ops, levels, generator, trusted: true).MoveToOuterDisposeScope();
    }
}

/// <summary>TrivialAugment (Müller &amp; Hutter 2021): per sample one op and one level, both uniform.</summary>
public sealed class TrivialAugment : IPolicySource
{
    /// <param name="wide">The wide space (the paper's default, torchvision's TrivialAugmentWide), else RandAugment's space.</param>
    public TrivialAugment(bool wide = true)
        : this(wide ? WideSpace : RandAugment.DefaultSpace, wide ? "trivialaugment-wide" : "trivialaugment") { }

    public TrivialAugment(SearchSpace space, string name)
    {
        Space = space;
        Name = name;
    }

    /// <summary>
    /// The wide space, 31 levels: shear ±0.99, translate ±32 px, rotate ±135°, factors 1 ± 0.99,
    /// Posterize 8 → 2 bits, Solarize 256 → 0, AutoContrast, Equalize, Identity.
    /// </summary>
    public static SearchSpace WideSpace { get; } = new(new[]
    {
        OpTable.Get("Identity"), OpTable.Get("ShearX").WithRange(0, 0.99), OpTable.Get("ShearY").WithRange(0, 0.99),
        OpTable.Get("TranslateX").WithRange(0, 32), OpTable.Get("TranslateY").WithRange(0, 32),
        OpTable.Get("Rotate").WithRange(0, 135), RandAugment.Factor("Brightness", 0.99), RandAugment.Factor("Color", 0.99),
        RandAugment.Factor("Contrast", 0.99), RandAugment.Factor("Sharpness", 0.99), OpTable.Get("Posterize").WithRange(8, 2),
        OpTable.Get("Solarize"), OpTable.Get("AutoContrast"), OpTable.Get("Equalize"),
    }, levels: 31);

    public string Name { get; }
    public SearchSpace Space { get; }

    public Tensor Augment(Tensor images, torch.Generator generator)
    {
        BatchAugment.CheckImages(images);
        using var scope = torch.NewDisposeScope();
        long n = images.shape[0];
        var u = Draw.Uniform(new[] { n, 2L }, generator, images.device);
        var ops = Draw.Below(u.narrow(1, 0, 1), Space.Ops.Count);
        var levels = Draw.Below(u.narrow(1, 1, 1), Space.Levels);
        return BatchAugment.Apply(images, Space, ops, levels, generator, trusted: true).MoveToOuterDisposeScope();
    }
}

/// <summary>AutoAugment's published CIFAR-10 policy (Cubuk et al. 2018), on the paper's space.</summary>
public static class AutoAugmentPolicy
{
    /// <summary>The 25 sub-policies of 2 stages (op, probability, level 0..9); level 0 for ops without magnitude.</summary>
    public static Policy Cifar10 { get; } = new(new (string, double, int, string, double, int)[]
    {
        ("Invert", 0.1, 0, "Contrast", 0.2, 6), ("Rotate", 0.7, 2, "TranslateX", 0.3, 9),
        ("Sharpness", 0.8, 1, "Sharpness", 0.9, 3), ("ShearY", 0.5, 8, "TranslateY", 0.7, 9),
        ("AutoContrast", 0.5, 0, "Equalize", 0.9, 0), ("ShearY", 0.2, 7, "Posterize", 0.3, 7),
        ("Color", 0.4, 3, "Brightness", 0.6, 7), ("Sharpness", 0.3, 9, "Brightness", 0.7, 9),
        ("Equalize", 0.6, 0, "Equalize", 0.5, 0), ("Contrast", 0.6, 7, "Sharpness", 0.6, 5),
        ("Color", 0.7, 7, "TranslateX", 0.5, 8), ("Equalize", 0.3, 0, "AutoContrast", 0.4, 0),
        ("TranslateY", 0.4, 3, "Sharpness", 0.2, 6), ("Brightness", 0.9, 6, "Color", 0.2, 8),
        ("Solarize", 0.5, 2, "Invert", 0.0, 0), ("Equalize", 0.2, 0, "AutoContrast", 0.6, 0),
        ("Equalize", 0.2, 0, "Equalize", 0.6, 0), ("Color", 0.9, 9, "Equalize", 0.6, 0),
        ("AutoContrast", 0.8, 0, "Solarize", 0.2, 8), ("Brightness", 0.1, 3, "Color", 0.7, 0),
        ("Solarize", 0.4, 5, "AutoContrast", 0.9, 0), ("TranslateY", 0.9, 9, "TranslateY", 0.7, 9),
        ("AutoContrast", 0.9, 0, "Solarize", 0.8, 3), ("Equalize", 0.8, 0, "Invert", 0.1, 0),
        ("TranslateY", 0.7, 9, "AutoContrast", 0.9, 0),
    }.Select(s => new SubPolicy(new[] { new PolicyStage(s.Item1, s.Item3, s.Item2), new PolicyStage(s.Item4, s.Item6, s.Item5) })).ToArray());

    /// <summary>The policy as a source over <see cref="SearchSpace.Default"/>.</summary>
    public static PolicyAugment Cifar10Source() => new(Cifar10, SearchSpace.Default, "autoaugment-cifar10");
}

/// <summary>
/// M policies on M copies of a batch (Algorithm 1): copy m of each image takes policy m and, per
/// image, one of its Q sub-policies uniformly; every stage of it is applied (or, where stage
/// probabilities are given, fires with its probability). Levels are scaled by a magnitude factor
/// (rounded down, clamped to the levels), and the whole policy is applied to a sample with
/// probability <c>policyProbability</c>.
/// </summary>
public static class InstancePolicies
{
    /// <param name="copies">uint8 [M·N, C, H, W], copy-major (copy m of image i at m·N + i).</param>
    /// <param name="ops">int64 [M, Q, K] op ids (on the CPU).</param>
    /// <param name="levels">int64 [M, Q, K] levels.</param>
    /// <param name="stageProbabilities">float32 [M, Q, K], or null when every stage always fires.</param>
    public static Tensor Apply(Tensor copies, SearchSpace space, Tensor ops, Tensor levels, Tensor? stageProbabilities,
        torch.Generator generator, double magnitudeScale = 1.0, double policyProbability = 1.0)
    {
        var (augmented, drawn) = ApplyDrawn(copies, space, ops, levels, stageProbabilities, generator, magnitudeScale, policyProbability);
        drawn.Dispose();
        return augmented;
    }

    /// <summary>
    /// As <see cref="Apply"/>, also giving the sub-policy each copy drew: int64 [M, N] on the copies'
    /// device, −1 where the policy was not applied (policy probability below 1).
    /// </summary>
    public static (Tensor Augmented, Tensor Drawn) ApplyDrawn(Tensor copies, SearchSpace space, Tensor ops, Tensor levels, Tensor? stageProbabilities,
        torch.Generator generator, double magnitudeScale = 1.0, double policyProbability = 1.0)
    {
        long m = ops.shape[0], q = ops.shape[1], k = ops.shape[2];
        long n = copies.shape[0] / m;
        if (ops.dim() != 3 || !levels.shape.SequenceEqual(ops.shape) || n * m != copies.shape[0])
            throw new AugmentException($"policies [{string.Join(",", ops.shape)}] do not fit {copies.shape[0]} copies");
        using var scope = torch.NewDisposeScope();
        var device = copies.device;
        var choice = torch.randint(0, q, [m, n], generator: generator, dtype: ScalarType.Int64);
        var index = choice.unsqueeze(-1).expand(m, n, k);
        var chosenOps = ops.gather(1, index).reshape(m * n, k);
        var chosenLevels = levels.gather(1, index).reshape(m * n, k).to_type(ScalarType.Float32);
        if (stageProbabilities is not null)
        {
            var fires = torch.rand([m * n, k], generator: generator).lt(stageProbabilities.gather(1, index).reshape(m * n, k));
            chosenOps = torch.where(fires, chosenOps, torch.full_like(chosenOps, -1));
        }
        // Levels are whole numbers (BatchAugment checks): a fractional product is rounded down.
        if (magnitudeScale != 1.0)
            chosenLevels = chosenLevels.mul(magnitudeScale).floor_().clamp(0, space.Levels - 1);
        var augmented = BatchAugment.Apply(copies, space, chosenOps.to(device), chosenLevels.to(device), generator, trusted: true);
        var drawn = choice.to(device);
        if (policyProbability < 1.0)
        {
            var apply = torch.rand([copies.shape[0]], generator: generator).lt(policyProbability).to(device);
            augmented = torch.where(apply.view(-1, 1, 1, 1), augmented, copies);
            drawn = torch.where(apply.view(m, n), drawn, torch.full_like(drawn, -1));
        }
        return (augmented.MoveToOuterDisposeScope(), drawn.MoveToOuterDisposeScope());
    }

    /// <summary>[M, Q, K] tables (ops, levels, stage probabilities or null when all are 1) of policies in a space.</summary>
    public static (Tensor Ops, Tensor Levels, Tensor? Probabilities) Tables(IReadOnlyList<Policy> policies, SearchSpace space, string name)
    {
        if (policies.Count == 0) throw new AugmentException($"{name}: no policies");
        int q = policies[0].SubPolicies.Count, k = policies[0].SubPolicies[0].Stages.Count;
        var ops = new long[policies.Count * q * k];
        var levels = new long[ops.Length];
        var probabilities = new float[ops.Length];
        for (int m = 0; m < policies.Count; m++)
        {
            if (policies[m].SubPolicies.Count != q)
                throw new AugmentException($"{name}: policy {m} has {policies[m].SubPolicies.Count} sub-policies, policy 0 has {q}; all must have the same shape");
            for (int j = 0; j < q; j++)
            {
                var stages = policies[m].SubPolicies[j].Stages;
                if (stages.Count != k)
                    throw new AugmentException($"{name}: policy {m}, sub-policy {j} has {stages.Count} stages, expected {k} like the first");
                for (int s = 0; s < k; s++)
                {
                    string at = $"{name}: policy {m}, sub-policy {j}, stage {s}";
                    int op;
                    try { op = space.IndexOf(stages[s].Op); }
                    catch (AugmentException e) { throw new AugmentException($"{at}: {e.Message}"); }
                    if (stages[s].Level < 0 || stages[s].Level >= space.Levels)
                        throw new AugmentException($"{at}: level {stages[s].Level} of {stages[s].Op} is outside 0..{space.Levels - 1}");
                    int i = (m * q + j) * k + s;
                    (ops[i], levels[i], probabilities[i]) = (op, stages[s].Level, (float)stages[s].Probability);
                }
            }
        }
        long[] shape = [policies.Count, q, k];
        return (torch.tensor(ops, shape), torch.tensor(levels, shape),
            probabilities.All(p => p == 1f) ? null : torch.tensor(probabilities, shape));
    }

    /// <summary>The policies of [M, Q, K] op and level tables, by op name.</summary>
    public static IReadOnlyList<Policy> Describe(Tensor ops, Tensor levels, SearchSpace space)
    {
        long[] o = ops.cpu().data<long>().ToArray();
        long[] l = levels.cpu().data<long>().ToArray();
        long m = ops.shape[0], q = ops.shape[1], k = ops.shape[2];
        return Enumerable.Range(0, (int)m).Select(i => new Policy(Enumerable.Range(0, (int)q).Select(j =>
            new SubPolicy(Enumerable.Range(0, (int)k).Select(s =>
            {
                long at = ((long)i * q + j) * k + s;
                return new PolicyStage(space.Ops[(int)o[at]].Name, (int)l[at]);
            }).ToArray())).ToArray())).ToArray();
    }
}
