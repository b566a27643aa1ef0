using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading;
using AdvAA.Core.Augment;
using AdvAA.Core.Data;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Search;

/// <summary>The CycleGANs' settings (CycleGAN's names in brackets).</summary>
/// <param name="Epochs">Passes over each class's larger subgroup.</param>
/// <param name="Filters">The generators' first and the discriminators' first layer width [ngf, ndf].</param>
/// <param name="Blocks">The generators' residual blocks.</param>
/// <param name="CycleWeight">The weight of the cycle loss [lambda_A = lambda_B].</param>
/// <param name="IdentityWeight">The identity loss's weight relative to <paramref name="CycleWeight"/> [lambda_identity].</param>
public sealed record CycleGanSettings(int Epochs = 20, int Batch = 16, int Filters = 16, int Blocks = 3, double LearningRate = 2e-4, double Beta1 = 0.5,
    double CycleWeight = 10, double IdentityWeight = 0.5);

/// <summary>One class's losses in one epoch of stage 1, means over its steps (see <see cref="CycleGan.Step"/>).</summary>
public sealed record CycleGanClassEpoch(string ClassName, double GeneratorLoss, double DiscriminatorLoss, double CycleLoss, double IdentityLoss)
{
    public JsonObject ToJson() => new()
    {
        // A diverged GAN's NaN is recorded as such (JSON has none).
        ["generator_loss"] = JsonOptions.Number(GeneratorLoss),
        ["discriminator_loss"] = JsonOptions.Number(DiscriminatorLoss),
        ["cycle_loss"] = JsonOptions.Number(CycleLoss),
        ["identity_loss"] = JsonOptions.Number(IdentityLoss),
    };

    public static CycleGanClassEpoch FromJson(string className, JsonObject json, string where) => new(className,
        RecordJson.Number(json, "generator_loss", where), RecordJson.Number(json, "discriminator_loss", where),
        RecordJson.Number(json, "cycle_loss", where), RecordJson.Number(json, "identity_loss", where));
}

/// <summary>One epoch of stage 1, as RUN/stage1/metrics.jsonl records it: every class's losses, in class order.</summary>
public sealed record CycleGanEpoch(int Epoch, IReadOnlyList<CycleGanClassEpoch> Classes, double Seconds)
{
    public JsonObject ToJson()
    {
        var classes = new JsonObject();
        foreach (var c in Classes) classes[c.ClassName] = c.ToJson();
        return new JsonObject { ["epoch"] = Epoch, ["classes"] = classes, ["seconds"] = Seconds };
    }

    public static CycleGanEpoch FromJson(JsonObject json, string where) => new(
        RecordJson.Value<int>(json, "epoch", where),
        RecordJson.Object(json, "classes", where)
            .Select(kv => CycleGanClassEpoch.FromJson(kv.Key, kv.Value as JsonObject ?? throw new RunFolderException($"{where}: classes.{kv.Key} is not an object"), where))
            .ToList(),
        RecordJson.Number(json, "seconds", where));

    /// <summary>The line for the progress report.</summary>
    public string Summary(int epochs) =>
        $"stage 1  epoch {Epoch}/{epochs}  " +
        string.Join("  ", Classes.Select(c => $"{c.ClassName}: cycle {c.CycleLoss:F3} G {c.GeneratorLoss:F3} D {c.DiscriminatorLoss:F3}")) +
        $"  {Seconds:F0} s";
}

/// <summary>
/// Stage 1 of model patching (CAMEL, Goel et al. 2020): for every class, a CycleGAN between its two
/// subgroups (A the class's first group in GroupNames order, B its second), trained on the
/// training images without the classifier. Each epoch iterates a class's larger subgroup in
/// shuffled batches, each paired with a batch drawn with replacement from the other subgroup
/// (which may be tiny). The draws come from the epoch's streams, so on the CPU a resumed stage
/// repeats an uninterrupted one exactly. <see cref="Translate"/> is what stage 2 augments with.
/// </summary>
public sealed class CycleGanStage : IDisposable
{
    public const string MetricsFile = "metrics.jsonl", GridFile = "grid.png";
    /// <summary>The epoch stream of the batches' order and pairing (apart from <see cref="EpochStreams"/>' own).</summary>
    const int PairingStream = 21;
    const int GridColumns = 8;

    readonly CycleGanSettings settings;
    readonly IReadOnlyList<SubgroupName> groups;
    readonly int channels, height, width;
    readonly Device device;
    readonly long seed;
    readonly IReadOnlyList<ClassPair> pairs;
    /// <summary>The class of each group, int64 [G] on the device.</summary>
    readonly Tensor classOfGroup;

    /// <summary>A class's two groups (indices into the group names) and its CycleGAN.</summary>
    sealed record ClassPair(string ClassName, int A, int B, CycleGan Gan);

    /// <exception cref="ArgumentException">A class has not exactly two subgroups.</exception>
    public CycleGanStage(CycleGanSettings settings, IReadOnlyList<SubgroupName> groups, int channels, int height, int width, Device device, long seed)
    {
        if (height % 4 != 0 || width % 4 != 0)
            throw new ArgumentException($"the CycleGAN generators need a height and width divisible by 4, not {height}×{width}");
        var byClass = groups.Select((g, i) => (g, i)).GroupBy(x => x.g.Class).ToList();
        foreach (var c in byClass.Where(c => c.Count() != 2))
            throw new ArgumentException(
                $"class '{c.First().g.ClassName}' has {c.Count()} subgroup(s) ({string.Join(", ", c.Select(x => x.g.Subgroup))}); its CycleGAN needs exactly two");
        (this.settings, this.groups, this.channels, this.height, this.width, this.device, this.seed) = (settings, groups, channels, height, width, device, seed);
        long initSeed = EpochStreams.SeedOf(seed, 0, EpochStreams.MethodInitStream);
        pairs = byClass.Select(c => new ClassPair(c.First().g.ClassName, c.First().i, c.Last().i,
            new CycleGan(settings, channels, device, EpochStreams.SeedOf(initSeed, c.Key, 0)))).ToList();
        classOfGroup = tensor(groups.Select(g => (long)g.Class).ToArray()).to(device);
    }

    /// <summary>Whether the stage-1 folder <paramref name="folder"/> holds a finished stage of <paramref name="epochs"/> epochs.</summary>
    public static bool Finished(string folder, int epochs) =>
        Checkpoints.LatestOf(folder)?.Epoch == epochs;

    /// <summary>
    /// Trains every class's CycleGAN in <paramref name="folder"/> (RUN/stage1) from its last
    /// checkpoint to <see cref="CycleGanSettings.Epochs"/>: a checkpoint and metrics.jsonl after
    /// each epoch and the translation grid after the first, every 5th and the last. A finished
    /// stage only loads. Returns false when cancelled first.
    /// </summary>
    /// <exception cref="ArgumentException"><paramref name="train"/> has no groups, other groups, another image size or an empty subgroup.</exception>
    /// <exception cref="RunFolderException">The folder's checkpoint is from another run (<paramref name="identity"/> differs) or damaged.</exception>
    public bool Run(string folder, ImageDataset train, JsonObject identity, CancellationToken cancel, Action<string> report)
    {
        var members = Members(train);
        try
        {
            var stage = new ResumableStage<CycleGanEpoch>([MetricsFile], pairs.SelectMany((p, c) => p.Gan.State($"class{c}_")).ToArray(),
                epoch => TrainEpoch(train, members, epoch), e => [e.ToJson()]);
            var runner = new StageRunner<CycleGanEpoch>(folder, identity, stage, "stage-1 checkpoint");
            runner.Resume();
            return runner.Train(settings.Epochs, cancel, e =>
            {
                if (e.Epoch == 1 || e.Epoch % 5 == 0 || e.Epoch == settings.Epochs)
                    AtomicFile.Write(Path.Combine(folder, GridFile), temp => File.WriteAllBytes(temp, Grid(train, members)));
                report(e.Summary(settings.Epochs));
            });
        }
        finally
        {
            foreach (var m in members) m.Dispose();
        }
    }

    /// <summary>The indices of each group's training images (int64, CPU), in group order; checks the data set against the stage.</summary>
    Tensor[] Members(ImageDataset train)
    {
        if (train.Groups is null || train.GroupNames is null)
            throw new ArgumentException($"stage 1 trains between subgroups, but {train.Source} has none", nameof(train));
        if (!train.GroupNames.SequenceEqual(groups))
            throw new ArgumentException($"{train.Source} has the groups {string.Join(", ", train.GroupNames)}, the stage {string.Join(", ", groups)}", nameof(train));
        if (train.Channels != channels || train.Height != height || train.Width != width)
            throw new ArgumentException($"{train.Source} has {train.Channels}×{train.Height}×{train.Width} images, the stage {channels}×{height}×{width}", nameof(train));
        var counts = train.GroupCounts();
        if (Array.IndexOf(counts, 0L) is var empty and >= 0)
            throw new ArgumentException($"group {groups[empty]} has no training images; its CycleGAN needs some", nameof(train));
        return Enumerable.Range(0, groups.Count).Select(g => { using var mask = train.Groups.eq(g); return mask.nonzero().squeeze(1); }).ToArray();
    }

    /// <summary>One epoch of every class's CycleGAN in class order, each with its own stream of the epoch.</summary>
    CycleGanEpoch TrainEpoch(ImageDataset train, Tensor[] members, int epoch)
    {
        var clock = Stopwatch.StartNew();
        long epochSeed = EpochStreams.SeedOf(seed, epoch, PairingStream);
        var classes = new List<CycleGanClassEpoch>();
        for (int c = 0; c < pairs.Count; c++)
        {
            var pair = pairs[c];
            using var classScope = NewDisposeScope();
            using var draw = new Generator((ulong)EpochStreams.SeedOf(epochSeed, c, 0));
            // The larger subgroup sets the epoch's length; the other is drawn with replacement.
            bool aLarger = members[pair.A].shape[0] >= members[pair.B].shape[0];
            var (larger, other) = aLarger ? (members[pair.A], members[pair.B]) : (members[pair.B], members[pair.A]);
            long batch = Math.Min(settings.Batch, larger.shape[0]), steps = larger.shape[0] / batch;
            var sums = zeros(4, dtype: ScalarType.Float64, device: device);
            var order = larger.index_select(0, randperm(larger.shape[0], generator: draw));
            for (long s = 0; s < steps; s++)
            {
                using var scope = NewDisposeScope();
                var fromLarger = order.narrow(0, s * batch, batch);
                var fromOther = other.index_select(0, randint(other.shape[0], [batch], generator: draw));
                var (realA, realB) = aLarger ? (Images(train, fromLarger), Images(train, fromOther)) : (Images(train, fromOther), Images(train, fromLarger));
                sums.add_(pair.Gan.Step(realA, realB).to(ScalarType.Float64));
            }
            double[] means = sums.div(steps).cpu().data<double>().ToArray();
            classes.Add(new CycleGanClassEpoch(pair.ClassName, means[0], means[1], means[2], means[3]));
        }
        return new CycleGanEpoch(epoch, classes, clock.Elapsed.TotalSeconds);
    }

    /// <summary>Training images at these indices on the device, float32 in [-1, 1].</summary>
    Tensor Images(ImageDataset train, Tensor indices) => ToSigned(train.Images.index_select(0, indices).to(device));

    static Tensor ToSigned(Tensor images) => images.to(ScalarType.Float32).div(127.5).sub(1);
    static Tensor ToBytes(Tensor signed) => signed.add(1).mul(127.5).round().clamp(0, 255).to(ScalarType.Byte);

    /// <summary>
    /// Translates each image (uint8 [B,C,H,W] on the device) of group <paramref name="groups"/>
    /// (int64 [B], indices into the GroupNames) into group <paramref name="targets"/> (int64 [B],
    /// of the same class): the other subgroup's generator's output, or for its own group the cycle
    /// through the other subgroup and back. Returns uint8 [B,C,H,W]; no gradients, eval mode.
    /// </summary>
    /// <exception cref="ArgumentException">Wrong shapes or types, or a target of another class.</exception>
    public Tensor Translate(Tensor images, Tensor groups, Tensor targets)
    {
        CheckIndices(targets, images, nameof(targets));
        using var scope = NewDisposeScope();
        if (classOfGroup.index_select(0, groups).ne(classOfGroup.index_select(0, targets)).any().item<bool>())
            throw new ArgumentException("a target group is of another class than the image's group", nameof(targets));
        var (own, other) = Versions(images, groups);
        return where(targets.eq(groups).view(-1, 1, 1, 1), own, other).MoveToOuterDisposeScope();
    }

    /// <summary>
    /// Each image's versions (uint8 [B,C,H,W] on the device, of group <paramref name="groups"/>, int64
    /// [B]) in its class's two subgroups, from one pass of the generators: in its own subgroup the
    /// cycle F(G(x)), in the other the translation G(x). No gradients, eval mode.
    /// </summary>
    /// <exception cref="ArgumentException">Wrong shapes or types.</exception>
    public (Tensor Own, Tensor Other) Versions(Tensor images, Tensor groups)
    {
        if (images.dtype != ScalarType.Byte || images.Dimensions != 4 || images.shape[1] != channels || images.shape[2] != height || images.shape[3] != width)
            throw new ArgumentException($"images must be uint8 [B,{channels},{height},{width}], not {images.dtype} [{string.Join(",", images.shape)}]", nameof(images));
        CheckIndices(groups, images, nameof(groups));
        using var scope = NewDisposeScope();
        using var noGrad = no_grad();
        Tensor own = empty_like(images), other = empty_like(images);
        var x = ToSigned(images);
        foreach (var pair in pairs)
            foreach (bool fromA in new[] { true, false })
            {
                var chosen = groups.eq(fromA ? pair.A : pair.B).nonzero().squeeze(1);
                if (chosen.shape[0] == 0) continue;
                var (translated, cycled) = pair.Gan.Translate(x.index_select(0, chosen), fromA);
                own.index_copy_(0, chosen, ToBytes(cycled));
                other.index_copy_(0, chosen, ToBytes(translated));
            }
        return (own.MoveToOuterDisposeScope(), other.MoveToOuterDisposeScope());
    }

    /// <summary>Throws unless <paramref name="indices"/> are int64 [B] group indices for the B images.</summary>
    void CheckIndices(Tensor indices, Tensor images, string name)
    {
        if (indices.dtype != ScalarType.Int64 || indices.Dimensions != 1 || indices.shape[0] != images.shape[0])
            throw new ArgumentException($"{name} must be int64 [{images.shape[0]}], not {indices.dtype} [{string.Join(",", indices.shape)}]", name);
        using Tensor outside = indices.lt(0).logical_or(indices.ge(groups.Count)).any();
        if (outside.item<bool>()) throw new ArgumentException($"{name} must be indices into the {groups.Count} groups", name);
    }

    /// <summary>A PNG: per class and direction, 8 training images of the source subgroup, their translations and cycles.</summary>
    byte[] Grid(ImageDataset train, Tensor[] members)
    {
        using var scope = NewDisposeScope();
        var rows = new List<Tensor>();
        var labels = new List<string>();
        foreach (var pair in pairs)
            foreach (bool fromA in new[] { true, false })
            {
                var (from, to) = fromA ? (pair.A, pair.B) : (pair.B, pair.A);
                // Evenly spaced images of the subgroup, repeated where it has fewer than a row.
                long count = members[from].shape[0];
                var picks = members[from].index_select(0, arange(GridColumns, dtype: ScalarType.Int64).mul(Math.Max(1, count / GridColumns)).remainder(count));
                var images = train.Images.index_select(0, picks).to(device);
                var (translated, cycled) = pair.Gan.Translate(ToSigned(images), fromA);
                rows.AddRange([images, ToBytes(translated), ToBytes(cycled)]);
                labels.AddRange([groups[from].ToString(), $"→ {groups[to].Subgroup}", "→ back"]);
            }
        return ImageGrid.EncodePng(cat(rows, 0).cpu(), GridColumns, labels);
    }

    public void Dispose()
    {
        foreach (var pair in pairs) pair.Gan.Dispose();
        classOfGroup.Dispose();
    }
}
