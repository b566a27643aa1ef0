using System.Collections.Generic;
using AdvAA.Core.Augment;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Methods;

/// <summary>
/// Uncertainty-based sampling over the experiment's search space (this library's first variant of
/// Wu et al. 2020): K candidates per image, each 2 random ops of the space at random whole levels,
/// always applied, then crop/flip and Cutout; scored by the model without gradients, S of them kept
/// in proportion to their loss. `uncertainty` is the authors' own scheme.
/// </summary>
public sealed record SpaceUncertaintySpec : MethodSpec
{
    [Parameter("candidates", "K: augmented candidates per image, scored by the model", Min = 1, Max = 1024)]
    public int Candidates { get; init; } = 4;

    [Parameter("keep", "S: candidates kept per image (≤ K), drawn in proportion to their loss", Min = 1, Max = 1024)]
    public int Keep { get; init; } = 1;

    [Parameter("magnitude_scale", Describe.MagnitudeScale, Min = 0, Max = 10)]
    public EpochSchedule MagnitudeScale { get; init; } = EpochSchedule.Constant(1);

    public override bool UsesSearchSpace => true;

    protected override void Check(int epochs, SearchSpace space)
    {
        if (Keep > Candidates) throw Bad("keep", Keep, $"at most candidates = {Candidates}");
    }

    public override ITrainingMethod Create(MethodContext context) => new SpaceUncertaintyMethod(context, this);
}

public sealed class SpaceUncertaintyMethod(MethodContext context, SpaceUncertaintySpec spec) : ITrainingMethod
{
    const int OpsPerCandidate = 2;
    EpochContext epoch = null!;

    public void BeginEpoch(EpochContext epoch) => this.epoch = epoch;

    /// <summary>The S kept candidates of each image, copy-major (kept copy s of image i at s·N + i).</summary>
    public TrainingBatch BuildBatch(Tensor images, Tensor labels, StepContext step)
    {
        var space = context.Space;
        var generator = epoch.Streams.Augment;
        int n = (int)images.shape[0], k = spec.Candidates, s = spec.Keep;
        Tensor candidates = images.repeat(k, 1, 1, 1);
        Tensor ops = torch.randint(0, space.Ops.Count, [k * n, OpsPerCandidate], generator: generator, dtype: ScalarType.Int64);
        Tensor levels = torch.randint(0, space.Levels, [k * n, OpsPerCandidate], generator: generator, dtype: ScalarType.Int64).to_type(ScalarType.Float32);
        double scale = spec.MagnitudeScale.At(epoch.Progress);
        if (scale != 1.0) levels = levels.mul(scale).floor_().clamp(0, space.Levels - 1);
        candidates = BatchAugment.Apply(candidates, space, ops.to(epoch.Device), levels.to(epoch.Device), generator, trusted: true);
        candidates = CopiesMethod.Standard(candidates, spec.Cutout, generator, context.LoaderCrops);
        Tensor candidateLabels = labels.repeat(k);
        Tensor scores = epoch.Score(candidates, candidateLabels).view(k, n).t().clamp_min(1e-12).cpu();   // [N, K]
        Tensor keep = torch.multinomial(scores, s, replacement: false, generator: generator);             // [N, S]
        Tensor flat = keep.t().mul(n).add(torch.arange(n, dtype: ScalarType.Int64)).reshape(-1).to(epoch.Device);
        return new TrainingBatch(candidates.index_select(0, flat), candidateLabels.index_select(0, flat));
    }

    public void Observe(TrainingBatch batch, Tensor losses) { }

    public MethodEpochRecord EndEpoch(EpochLosses losses) => MethodEpochRecord.Empty;

    public IReadOnlyList<StatePart> StateParts => [];

    public void Dispose() { }
}
