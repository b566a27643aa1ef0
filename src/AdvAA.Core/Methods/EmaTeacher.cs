using System;
using System.Collections.Generic;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Methods;

/// <summary>
/// The target model as a method may use it: the module itself, a fresh module of the same
/// architecture on the same device, and the per-sample losses (float32 [B], no gradients, evaluation
/// mode) of uint8 images and their targets under a module of that architecture, normalised and cast
/// as the target's own inputs are.
/// </summary>
public sealed record TargetModel(nn.Module<Tensor, Tensor> Model, Func<nn.Module<Tensor, Tensor>> NewModel,
    Func<nn.Module<Tensor, Tensor>, Tensor, Tensor, Tensor> Losses);

/// <summary>
/// An exponential moving average of the target (TeachAugment's teacher, Suzuki 2022): it starts as a
/// copy of the target and after every step moves θ_T ← d·θ_T + (1 − d)·θ; floating-point buffers
/// (batch-norm statistics) are averaged alike, other buffers copied. It never takes a gradient.
/// State-dict names: the target architecture's.
/// </summary>
public sealed class EmaTeacher : IDisposable
{
    readonly TargetModel target;

    public EmaTeacher(TargetModel target, double decay)
    {
        if (!(decay >= 0 && decay <= 1)) throw new ArgumentException($"teacher decay {decay} is not valid: expected 0..1", nameof(decay));
        this.target = target;
        Decay = decay;
        Module = target.NewModel();
        foreach (var p in Module.parameters()) p.requires_grad = false;
        Module.eval();
        Follow(1.0);
    }

    public double Decay { get; }

    /// <summary>The teacher's module (its state goes into checkpoints).</summary>
    public nn.Module<Tensor, Tensor> Module { get; }

    /// <summary>One moving-average step towards the target's current weights.</summary>
    public void Update() => Follow(1 - Decay);

    /// <summary>θ_T ← θ_T + rate·(θ − θ_T) for every floating-point tensor; other tensors are copied.</summary>
    void Follow(double rate)
    {
        using var noGrad = no_grad();
        static IEnumerable<(string Name, Tensor Value)> State(nn.Module module) =>
            module.named_parameters().Select(p => (p.name, (Tensor)p.parameter)).Concat(module.named_buffers().Select(b => (b.name, b.buffer)));
        var theirs = State(target.Model).ToDictionary(p => p.Name, p => p.Value);
        foreach (var (name, mine) in State(Module))
        {
            var source = theirs[name];
            if (mine.is_floating_point() && rate < 1) mine.lerp_(source.to_type(mine.dtype), rate);
            else mine.copy_(source);
        }
    }

    /// <summary>The teacher's per-sample losses of uint8 images (float32 [B], no gradients).</summary>
    public Tensor Losses(Tensor images, Tensor targets) => target.Losses(Module, images, targets);

    public void Dispose() => Module.Dispose();
}
