using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using AdvAA.Core.Models;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Search;

/// <summary>
/// One class's CycleGAN between its two subgroups A and B: generators A→B and B→A updated together
/// by one Adam, discriminators of A and of B by another, with CycleGAN's LSGAN, cycle and identity
/// losses. Images in [-1, 1].
/// </summary>
public sealed class CycleGan : IDisposable
{
    readonly CycleGanSettings settings;
    readonly CycleGanGenerator toB, toA;
    readonly PatchDiscriminator judgeA, judgeB;
    readonly TorchSharp.Modules.Adam generatorOptimizer, discriminatorOptimizer;

    /// <param name="seed">The initial weights' seed; each of the four networks draws from its own stream of it.</param>
    public CycleGan(CycleGanSettings settings, int channels, Device device, long seed)
    {
        this.settings = settings;
        toB = new CycleGanGenerator(channels, settings.Filters, settings.Blocks, EpochStreams.SeedOf(seed, 0, 1));
        toA = new CycleGanGenerator(channels, settings.Filters, settings.Blocks, EpochStreams.SeedOf(seed, 0, 2));
        judgeA = new PatchDiscriminator(channels, settings.Filters, EpochStreams.SeedOf(seed, 0, 3));
        judgeB = new PatchDiscriminator(channels, settings.Filters, EpochStreams.SeedOf(seed, 0, 4));
        foreach (var network in Networks) network.to(device);
        generatorOptimizer = optim.Adam(toB.parameters().Concat(toA.parameters()), settings.LearningRate, settings.Beta1, 0.999);
        discriminatorOptimizer = optim.Adam(judgeA.parameters().Concat(judgeB.parameters()), settings.LearningRate, settings.Beta1, 0.999);
    }

    IEnumerable<nn.Module> Networks => [toB, toA, judgeA, judgeB];

    /// <summary>
    /// One step on real batches of A and B (float32 in [-1, 1], any sizes): the generators' step,
    /// then the discriminators' on the same translations. Returns the step's losses, detached,
    /// float32 [4]: generator (LSGAN, mean of both directions), discriminator (halved as CycleGAN's,
    /// mean of both), cycle (L1, mean of both) and identity (L1, mean of both), all unweighted.
    /// </summary>
    public Tensor Step(Tensor realA, Tensor realB)
    {
        foreach (var network in Networks) network.train();
        var fakeB = toB.forward(realA);
        var fakeA = toA.forward(realB);
        var cycle = L1(toA.forward(fakeB), realA).add(L1(toB.forward(fakeA), realB)).mul(0.5);
        var identity = settings.IdentityWeight > 0
            ? L1(toB.forward(realB), realB).add(L1(toA.forward(realA), realA)).mul(0.5)
            : zeros(1, device: realA.device).squeeze();
        // The discriminators judge the generators' step but take no gradient from it.
        SetTrainable([judgeA, judgeB], false);
        var adversarial = Lsgan(judgeB.forward(fakeB), 1).add(Lsgan(judgeA.forward(fakeA), 1)).mul(0.5);
        SetTrainable([judgeA, judgeB], true);
        // Summed over the two directions as CycleGAN's loss_G is: twice the means above.
        var generatorLoss = adversarial.add(cycle.mul(settings.CycleWeight)).add(identity.mul(settings.IdentityWeight * settings.CycleWeight)).mul(2);
        generatorOptimizer.zero_grad();
        generatorLoss.backward();
        generatorOptimizer.step();

        var discriminatorA = Lsgan(judgeA.forward(realA), 1).add(Lsgan(judgeA.forward(fakeA.detach()), 0)).mul(0.5);
        var discriminatorB = Lsgan(judgeB.forward(realB), 1).add(Lsgan(judgeB.forward(fakeB.detach()), 0)).mul(0.5);
        var discriminatorLoss = discriminatorA.add(discriminatorB);
        discriminatorOptimizer.zero_grad();
        discriminatorLoss.backward();
        discriminatorOptimizer.step();
        return stack([adversarial, discriminatorLoss.mul(0.5), cycle, identity]).detach();
    }

    /// <summary>
    /// Images float32 in [-1, 1] of A (<paramref name="fromA"/>) or of B translated to the other
    /// subgroup, and that translation translated back (the cycle). No gradients, eval mode.
    /// </summary>
    public (Tensor Translated, Tensor Cycled) Translate(Tensor images, bool fromA)
    {
        foreach (var network in Networks) network.eval();
        using var noGrad = no_grad();
        var (there, back) = fromA ? (toB, toA) : (toA, toB);
        var translated = there.forward(images);
        return (translated, back.forward(translated));
    }

    static Tensor L1(Tensor x, Tensor target) => nn.functional.l1_loss(x, target);
    static Tensor Lsgan(Tensor logits, float target) => nn.functional.mse_loss(logits, full_like(logits, target));

    static void SetTrainable(IEnumerable<nn.Module> networks, bool trainable)
    {
        foreach (var network in networks)
            foreach (var p in network.parameters()) p.requires_grad = trainable;
    }

    /// <summary>This CycleGAN's checkpoint parts (networks and optimizer states), named with <paramref name="prefix"/>.</summary>
    public IEnumerable<StatePart> State(string prefix) =>
    [
        StatePart.Of(prefix + "generator_ab", toB),
        StatePart.Of(prefix + "generator_ba", toA),
        StatePart.Of(prefix + "discriminator_a", judgeA),
        StatePart.Of(prefix + "discriminator_b", judgeB),
        StatePart.Of(prefix + "generator_optimizer", generatorOptimizer),
        StatePart.Of(prefix + "discriminator_optimizer", discriminatorOptimizer),
    ];

    public void Dispose()
    {
        generatorOptimizer.Dispose();
        discriminatorOptimizer.Dispose();
        foreach (var network in Networks) network.Dispose();
    }
}
