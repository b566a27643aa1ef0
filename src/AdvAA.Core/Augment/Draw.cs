using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Augment;

/// <summary>
/// Random draws for augmentation. They are made with the generator on the generator's own device
/// (the default generator is on the CPU) and then moved to the images' device, so one seeded CPU
/// generator gives the same ops, signs and positions on the CPU and on CUDA.
/// </summary>
internal static class Draw
{
    static Device GeneratorDevice(torch.Generator? generator) => generator?.device ?? CPU;

    /// <summary>Uniform float32 in [0, 1).</summary>
    public static Tensor Uniform(long[] shape, torch.Generator? generator, Device device) =>
        torch.rand(shape, ScalarType.Float32, GeneratorDevice(generator), generator: generator).to(device);

    /// <summary>Uniform int64 in [0, high).</summary>
    public static Tensor Integers(long high, long[] shape, torch.Generator? generator, Device device) =>
        torch.randint(0, high, shape, ScalarType.Int64, GeneratorDevice(generator), generator: generator).to(device);
}
