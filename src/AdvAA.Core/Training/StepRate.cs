using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.Linq;
using AdvAA.Core.Backend;
using AdvAA.Core.Data;
using AdvAA.Core.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Training;

/// <summary>
/// Images/s of the trainer's step on random images: uint8 batch normalised into the layout, forward
/// under the precision's autocast, float32 loss, backward, SGD with the paper's settings. What
/// <c>advaa bench models</c> prints and what <c>--precision auto</c> probes.
/// </summary>
public static class StepRate
{
    /// <summary>The median images/s after one warm-up step, over at most <paramref name="steps"/> steps or <paramref name="seconds"/> of them.</summary>
    public static double Measure(Device device, string model, int classes, long[] imageShape, long batch, Precision precision, bool channelsLast,
        int steps = 5, double seconds = 20.0)
    {
        using var net = ModelRegistry.Create(model, classes);
        net.to(device);
        net.train();
        using var images = torch.randint(0, 256, [batch, .. imageShape], ScalarType.Byte, device);
        using var labels = torch.randint(classes, [batch], device: device);
        using var sgd = torch.optim.SGD(net.parameters(), 0.1, 0.9, 0, 5e-4, nesterov: true);
        var normalizer = new Normalizer(Enumerable.Repeat(0.5, (int)imageShape[0]).ToArray(), Enumerable.Repeat(0.25, (int)imageShape[0]).ToArray());
        void Step()
        {
            using var scope = NewDisposeScope();
            Tensor inputs = normalizer.Apply(images, channelsLast);
            Tensor logits;
            using (Autocast.For(precision, device.type)) logits = net.forward(inputs).to_type(ScalarType.Float32);
            sgd.zero_grad();
            nn.functional.cross_entropy(logits, labels).backward();
            sgd.step();
            if (device.type == DeviceType.CUDA) torch.cuda.synchronize();
        }
        Step();
        var times = new List<double>();
        var clock = Stopwatch.StartNew();
        while (times.Count < steps && (times.Count == 0 || clock.Elapsed.TotalSeconds < seconds))
        {
            var watch = Stopwatch.StartNew();
            Step();
            times.Add(watch.Elapsed.TotalSeconds);
        }
        return batch / times.Order().ElementAt(times.Count / 2);
    }
}
