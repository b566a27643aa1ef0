using System;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Augment;

/// <summary>
/// How an op is computed inside a stage. Samples whose ops share a pass are computed together:
/// all affine ops as one pixel gather, all lookup-table ops as one table gather; direct ops one call each.
/// </summary>
internal abstract class OpCompute;

/// <summary>An inverse affine map per sample: values [n] → float64 [n,2,3] taking output pixel centres to input coordinates.</summary>
internal sealed class AffineCompute(Func<Tensor, long, long, Tensor> matrix) : OpCompute
{
    public Tensor Matrix(Tensor values, long height, long width) => matrix(values, height, width);
}

/// <summary>A lookup table per sample and channel: (images [n,C,H,W], values [n]) → uint8 [n,C,256].</summary>
internal sealed class LutCompute(Func<Tensor, Tensor, Tensor> lut) : OpCompute
{
    public Tensor Lut(Tensor images, Tensor values) => lut(images, values);
}

/// <summary>An op computed on its own samples: (slice) → uint8 [n,C,H,W].</summary>
internal sealed class DirectCompute(Func<StageSlice, Tensor> apply) : OpCompute
{
    public Tensor Apply(StageSlice slice) => apply(slice);
}

/// <summary>Leaves its samples unchanged (Identity, and stages that did not fire).</summary>
internal sealed class SkipCompute : OpCompute
{
    public static readonly SkipCompute Instance = new();
}

/// <summary>The samples of one op in a stage.</summary>
/// <param name="Images">uint8 [n,C,H,W], the stage input of these samples.</param>
/// <param name="Values">float32 [n], raw values after the sign.</param>
/// <param name="Batch">The whole stage input (SamplePairing's partners come from it).</param>
/// <param name="Indices">int64 [n], the samples' positions in <paramref name="Batch"/>.</param>
/// <param name="Uniforms">float32 [n,2] in [0, 1), drawn for these samples, for ops that place something (Cutout's centre).</param>
internal sealed record StageSlice(Tensor Images, Tensor Values, Tensor Batch, Tensor Indices, Tensor Uniforms);
