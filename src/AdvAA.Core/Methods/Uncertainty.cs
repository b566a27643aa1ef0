using System.Collections.Generic;
using System.Linq;
using AdvAA.Core.Augment;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Methods;

/// <summary>
/// Uncertainty-based sampling as Wu et al. (ICML 2020) ran it (their code: senwu/dauphin): K
/// candidates per image, each a sequence of `ops` transformations drawn with replacement from a pool
/// of 16 (the AutoAugment ops with Cutout up to half the image and mixup in place of SamplePairing),
/// each applied with its own random probability at a continuous random magnitude; then a crop of the
/// reflect-padded image, a flip, Cutout of a random size up to half the image, and mixup (α = 1) with
/// a random probability, mixed labels as soft targets. The model scores the candidates without
/// gradients; S are kept per image in proportion to their loss.
/// </summary>
public sealed record UncertaintySpec : MethodSpec
{
    [Parameter("candidates", "K: augmented candidates per image, scored by the model", Min = 1, Max = 1024)]
    public int Candidates { get; init; } = 4;

    [Parameter("keep", "S: candidates kept per image (≤ K), drawn in proportion to their loss", Min = 1, Max = 1024)]
    public int Keep { get; init; } = 1;

    [Parameter("ops", "transformations drawn from the pool per candidate (the authors' num_comp)", Min = 1, Max = 16)]
    public int Ops { get; init; } = 2;

    protected override void Check(int epochs, SearchSpace space)
    {
        if (Keep > Candidates) throw Bad("keep", Keep, $"at most candidates = {Candidates}");
    }

    public override ITrainingMethod Create(MethodContext context) => new UncertaintyMethod(context, this);
}

public sealed class UncertaintyMethod : ITrainingMethod
{
    readonly MethodContext context;
    readonly UncertaintySpec spec;
    /// <summary>The pool's image ops (Cutout up to half the image); mixup is the pool's last entry, outside this space.</summary>
    readonly SearchSpace pool;
    readonly int mixupId;
    readonly bool[] signed;
    EpochContext epoch = null!;

    /// <summary>The authors' pool but mixup, which is applied apart (it mixes labels too).</summary>
    public static readonly string[] PoolOps =
        ["AutoContrast", "Brightness", "Color", "Contrast", "Cutout", "Equalize", "Invert", "Posterize", "Rotate", "Sharpness", "ShearX",
         "ShearY", "Solarize", "TranslateX", "TranslateY"];

    public UncertaintyMethod(MethodContext context, UncertaintySpec spec)
    {
        this.context = context;
        this.spec = spec;
        var sized = OpTable.ForImageSize(context.Height, context.Width);
        pool = new SearchSpace(PoolOps.Select(name =>
        {
            var op = sized.First(o => o.Name == name);
            return name == "Cutout" ? op.WithRange(0, context.Width / 2) : op;
        }).ToArray());
        mixupId = PoolOps.Length;
        signed = pool.Ops.Select(o => o.Signed).ToArray();
    }

    public void BeginEpoch(EpochContext epoch) => this.epoch = epoch;

    /// <summary>The pool the candidates' ops come from (mixup is not in it: it is op id <see cref="PoolOps"/>.Length).</summary>
    public SearchSpace Pool => pool;

    /// <summary>
    /// One stage's draws for <paramref name="count"/> samples: each picks an op of the pool or mixup
    /// uniformly, a probability p ~ U[0, 1) and fires with it, a level ~ U[0, 1] mapped linearly onto
    /// the op's range, and a random sign for signed ops. Returns the pool op ids (−1 where nothing or
    /// mixup fires), their raw values, and where mixup fires.
    /// </summary>
    public (Tensor Ops, Tensor Values, Tensor Mixup, Tensor Probabilities) DrawStage(long count, Generator generator)
    {
        using var lows = tensor(pool.Ops.Select(o => (float)o.Low).ToArray());
        using var highs = tensor(pool.Ops.Select(o => (float)o.High).ToArray());
        using var signs = tensor(signed);
        var u = rand([count, 5], generator: generator);
        var op = u.select(1, 0).mul(mixupId + 1).floor_().clamp_max_(mixupId).to_type(ScalarType.Int64);
        var probability = u.select(1, 1);
        var fires = u.select(1, 2).lt(probability);
        var isMixup = op.eq(mixupId);
        var safe = op.clamp_max(mixupId - 1);
        var value = lows.index_select(0, safe).add(highs.index_select(0, safe).sub(lows.index_select(0, safe)).mul_(u.select(1, 3)));
        value = torch.where(signs.index_select(0, safe).logical_and(u.select(1, 4).lt(0.5)), value.neg(), value);
        var ids = torch.where(fires.logical_and(isMixup.logical_not()), op, torch.full_like(op, -1));
        return (ids, value, fires.logical_and(isMixup), probability);
    }

    public TrainingBatch BuildBatch(Tensor images, Tensor labels, StepContext step)
    {
        var generator = epoch.Streams.Augment;
        var device = epoch.Device;
        int n = (int)images.shape[0], k = spec.Candidates, s = spec.Keep;
        long b = (long)k * n;
        Tensor x = images.repeat(k, 1, 1, 1);
        Tensor y = nn.functional.one_hot(labels, context.Classes).to_type(ScalarType.Float32).repeat(k, 1);
        for (int stage = 0; stage < spec.Ops; stage++)
        {
            var draws = DrawStage(b, generator);
            x = BatchAugment.ApplyValues(x, pool, draws.Ops.to(device), draws.Values.to(device), generator);
            (x, y) = Mixup(x, y, draws.Mixup, n, k, generator);
        }
        if (!context.LoaderCrops) x = StandardAugment.CropFlip(x, generator, reflect: true);
        x = CutoutUpTo(x, spec.Cutout, generator);
        // The tail's mixup fires with a random probability of its own per sample.
        var tail = rand([b, 2], generator: generator);
        (x, y) = Mixup(x, y, tail.select(1, 1).lt(tail.select(1, 0)), n, k, generator);

        Tensor scores = epoch.Score(x, y.to(device)).view(k, n).t().clamp_min(1e-12).cpu();          // [N, K]
        Tensor keep = torch.multinomial(scores, s, replacement: false, generator: generator);          // [N, S]
        Tensor flat = keep.t().mul(n).add(torch.arange(n, dtype: ScalarType.Int64)).reshape(-1).to(device);
        return new TrainingBatch(x.index_select(0, flat), y.to(device).index_select(0, flat));
    }

    /// <summary>
    /// Mixup (λ ~ Beta(1, 1) per sample) of the samples where <paramref name="apply"/> is true with a
    /// random partner of the same candidate block: pixels blended as PIL's Image.blend, labels mixed.
    /// </summary>
    static (Tensor Images, Tensor Targets) Mixup(Tensor x, Tensor y, Tensor apply, int n, int k, Generator generator)
    {
        long b = x.shape[0];
        var u = rand([b, 2], generator: generator);
        var partner = arange(k, dtype: ScalarType.Int64).mul_(n).repeat_interleave(n).add(u.select(1, 0).mul(n).floor_().clamp_max_(n - 1).to_type(ScalarType.Int64));
        var lambda = torch.where(apply, u.select(1, 1), torch.ones(b));
        var device = x.device;
        var mixed = ImageKernels.Blend(x.to_type(ScalarType.Float32), x.index_select(0, partner.to(device)).to_type(ScalarType.Float32), lambda.neg().add_(1).to(device));
        var targets = y.mul(lambda.view(-1, 1)).add_(y.index_select(0, partner).mul(lambda.neg().add_(1).view(-1, 1)));
        return (mixed, targets);
    }

    /// <summary>Cutout of a random side up to <paramref name="max"/> pixels per sample, centre uniform (the authors' tail).</summary>
    static Tensor CutoutUpTo(Tensor x, int max, Generator generator)
    {
        long n = x.shape[0];
        var u = rand([n, 3], generator: generator).to(x.device);
        var sides = u.select(1, 0).mul(max + 1).floor_().clamp_max_(max).to_type(ScalarType.Int64);
        var cy = u.select(1, 1).mul(x.shape[2]).floor_().clamp_max_(x.shape[2] - 1).to_type(ScalarType.Int64);
        var cx = u.select(1, 2).mul(x.shape[3]).floor_().clamp_max_(x.shape[3] - 1).to_type(ScalarType.Int64);
        return ImageKernels.CutOut(x, sides, cy, cx, ImageKernels.Fill);
    }

    public void Observe(TrainingBatch batch, Tensor losses) { }

    public MethodEpochRecord EndEpoch(EpochLosses losses) => MethodEpochRecord.Empty;

    public IReadOnlyList<StatePart> StateParts => [];

    public void Dispose() { }
}
