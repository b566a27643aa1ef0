using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Augment;

/// <summary>
/// Random draws for augmentation. A call draws everything it needs in one tensor of uniforms, made
/// with the generator on the generator's own device (the default generator is on the CPU) and moved to
/// the images' device in one copy. So one seeded CPU generator gives the same ops, signs and positions
/// on the CPU and on CUDA, at one host-to-device copy per call.
/// </summary>
internal static class Draw
{
    /// <summary>Uniform float32 in [0, 1), on <paramref name="device"/>.</summary>
    public static Tensor Uniform(long[] shape, torch.Generator? generator, Device device) =>
        torch.rand(shape, ScalarType.Float32, generator?.device ?? CPU, generator: generator).to(device);

    /// <summary>Uniforms in [0, 1) as uniform whole numbers in 0..high−1 (int64).</summary>
    public static Tensor Below(Tensor uniforms, long high) =>
        uniforms.mul(high).floor_().clamp_max_(high - 1).to(ScalarType.Int64);
}
