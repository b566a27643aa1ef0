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

/// <summary>The TAN's settings (TANDA's names in brackets where they differ).</summary>
/// <param name="Generator">lstm or mean-field.</param>
/// <param name="Length">TFs per sequence [seq_len].</param>
/// <param name="Samples">Sequences per image in a generator step [n_sample].</param>
/// <param name="Diversity">The weight of the diversity term [mse_term].</param>
/// <param name="DiversityOn">features (the discriminator's last hidden layer) [mse_layer = 1] or pixels.</param>
public sealed record TanSettings(
    string Generator, int Length, double LogitRange, int Hidden, int Epochs, int BatchSize, int Samples,
    double GeneratorLr, double DiscriminatorLr, int DiscriminatorSteps, double Gamma, double Diversity, string DiversityOn);

/// <summary>One epoch of stage 1, as RUN/stage1/metrics.jsonl records it.</summary>
/// <param name="GeneratorLoss">The discriminator's "real" cross-entropy of the generator's final transforms (low: they look real).</param>
/// <param name="RandomLoss">The same for uniform random sequences of the same length on the same images.</param>
/// <param name="Tfs">The share of each TF among the generator's draws this epoch, by TF name.</param>
public sealed record TanEpoch(int Epoch, double DiscriminatorLoss, double DiscriminatorAccuracy, double GeneratorLoss, double RandomLoss,
    double Seconds, IReadOnlyDictionary<string, double> Tfs)
{
    /// <summary>Generator over random loss, the quantity TANDA selects models by (below 1: the learned sequences look more real).</summary>
    public double Ratio => GeneratorLoss / RandomLoss;

    public JsonObject ToJson()
    {
        var tfs = new JsonObject();
        foreach (var (name, share) in Tfs) tfs[name] = Math.Round(share, 6);
        return new JsonObject
        {
            ["epoch"] = Epoch,
            ["discriminator_loss"] = DiscriminatorLoss,
            ["discriminator_accuracy"] = DiscriminatorAccuracy,
            ["generator_loss"] = GeneratorLoss,
            ["random_loss"] = RandomLoss,
            ["generator_random_ratio"] = Ratio,
            ["seconds"] = Seconds,
            ["tfs"] = tfs,
        };
    }

    public static TanEpoch FromJson(JsonObject json, string where) => new(
        RecordJson.Value<int>(json, "epoch", where), RecordJson.Number(json, "discriminator_loss", where),
        RecordJson.Number(json, "discriminator_accuracy", where), RecordJson.Number(json, "generator_loss", where),
        RecordJson.Number(json, "random_loss", where), RecordJson.Number(json, "seconds", where),
        RecordJson.Object(json, "tfs", where).ToDictionary(kv => kv.Key, kv => kv.Value!.GetValue<double>()));
}

/// <summary>
/// Stage 1 of TANDA (Ratner et al. 2017): trains the TF-sequence generator against a discriminator
/// on the training images, without labels. Per batch: <see cref="TanSettings.DiscriminatorSteps"/>
/// Adam steps of the discriminator (real images vs the final transforms of fresh sequences), then
/// one SGD step of the generator by REINFORCE on <see cref="TanSettings.Samples"/> sequences per
/// image, rewarded by the change of the discriminator's loss from each step to the next plus the
/// diversity term, discounted by γ. The generator's draws and the ops' signs come from the epoch's
/// streams, so a resumed stage repeats an uninterrupted one exactly on the CPU.
/// </summary>
public sealed class TanTrainer : IDisposable
{
    public const string MetricsFile = "metrics.jsonl", SamplesFile = "samples.png";

    readonly TransformationSet tfs;
    readonly TanSettings settings;
    readonly Normalizer normalizer;
    readonly Device device;
    readonly long seed;
    readonly TorchSharp.Modules.SGD generatorOptimizer;
    readonly TorchSharp.Modules.Adam discriminatorOptimizer;

    public TanTrainer(TransformationSet tfs, TanSettings settings, int channels, int height, int width, Normalizer normalizer, Device device, long seed)
    {
        (this.tfs, this.settings, this.normalizer, this.device, this.seed) = (tfs, settings, normalizer, device, seed);
        Generator = CreateGenerator(tfs.Count, settings, EpochStreams.SeedOf(seed, 0, EpochStreams.MethodInitStream));
        Generator.to(device);
        Discriminator = new TanDiscriminator(channels, height, width, EpochStreams.SeedOf(seed, 0, EpochStreams.ModelInitStream));
        Discriminator.to(device);
        generatorOptimizer = optim.SGD(Generator.parameters(), settings.GeneratorLr);
        discriminatorOptimizer = optim.Adam(Discriminator.parameters(), settings.DiscriminatorLr);
    }

    public SequenceGenerator Generator { get; }
    public TanDiscriminator Discriminator { get; }

    /// <summary>The generator these settings describe, untrained (its weights from <paramref name="seed"/>).</summary>
    public static SequenceGenerator CreateGenerator(int tfCount, TanSettings settings, long seed) => settings.Generator switch
    {
        "lstm" => new LstmGenerator(tfCount, settings.Length, settings.Hidden, settings.LogitRange, seed),
        "mean-field" => new MeanFieldGenerator(tfCount, settings.Length, settings.LogitRange),
        _ => throw new ArgumentException($"generator '{settings.Generator}': expected lstm or mean-field", nameof(settings)),
    };

    /// <summary>One pass over <paramref name="train"/> in the order of <paramref name="epoch"/>.</summary>
    public TanEpoch TrainEpoch(ImageDataset train, int epoch)
    {
        var clock = Stopwatch.StartNew();
        var loader = new BatchLoader(train, Math.Min(settings.BatchSize, (int)train.Count), device, shuffle: true, seed, dropLast: true);
        using var streams = new EpochStreams(seed, epoch);
        double dLoss = 0, dAccuracy = 0, gLoss = 0, rLoss = 0;
        var counts = new long[tfs.Count];
        int batches = 0;
        foreach (var (images, labels) in loader.Epoch(epoch))
        {
            // The loader's batch is this loop's to dispose; stage 1 needs no labels.
            using var batch = images;
            labels.Dispose();
            using var scope = NewDisposeScope();
            var real = normalizer.Apply(images);
            int n = (int)images.shape[0];

            Discriminator.train();
            for (int d = 0; d < settings.DiscriminatorSteps; d++)
            {
                Tensor fake;
                using (no_grad()) fake = normalizer.Apply(tfs.ApplySequences(images, Generator.Sample(n, streams.Policy), streams.Augment));
                var realLogits = Discriminator.forward(real);
                var fakeLogits = Discriminator.forward(fake);
                var loss = TanObjective.DiscriminatorLoss(realLogits, fakeLogits);
                discriminatorOptimizer.zero_grad();
                loss.backward();
                discriminatorOptimizer.step();
                dLoss += loss.item<float>();
                dAccuracy += realLogits.gt(0).to(ScalarType.Float32).mean().add(fakeLogits.lt(0).to(ScalarType.Float32).mean()).mul(0.5).item<float>();
            }

            // The generator's step: each image with Samples sequences, the discriminator scoring every incremental image.
            Discriminator.eval();
            var repeated = settings.Samples > 1 ? images.repeat(settings.Samples, 1, 1, 1) : images;
            var sequences = Generator.Sample((int)repeated.shape[0], streams.Policy);
            Tensor stepLosses, finalLosses;
            using (no_grad())
            {
                // Every incremental image (the originals first) through the discriminator in one batch: [L+1, N, ...].
                long count = repeated.shape[0];
                var all = normalizer.Apply(cat(tfs.ApplyIncremental(repeated, sequences, streams.Augment).ToArray(), 0));
                var (allLogits, allFeatures) = Discriminator.LogitsAndFeatures(all);
                var logits = allLogits.view(-1, count).t();
                var compared = settings.DiversityOn == "pixels" ? all.flatten(1) : allFeatures;
                var byStep = compared.view(-1, count, compared.shape[1]);
                var distances = byStep.sub(byStep[0].unsqueeze(0)).square().mean([2L]).t();
                stepLosses = TanObjective.StepLosses(logits, distances, settings.Diversity);
                var last = logits.select(1, -1);
                finalLosses = nn.functional.binary_cross_entropy_with_logits(last, ones_like(last));
                var randomFinal = normalizer.Apply(tfs.ApplySequences(images, tfs.RandomSequences(n, settings.Length, streams.Policy), streams.Augment));
                var randomLogits = Discriminator.forward(randomFinal);
                rLoss += nn.functional.binary_cross_entropy_with_logits(randomLogits, ones_like(randomLogits)).item<float>();
            }
            var returns = TanObjective.Returns(TanObjective.StepDeltas(stepLosses), settings.Gamma);
            var policyLoss = TanObjective.PolicyLoss(Generator.LogProbs(sequences), returns.to(device));
            generatorOptimizer.zero_grad();
            policyLoss.backward();
            generatorOptimizer.step();
            gLoss += finalLosses.item<float>();
            long[] drawn = bincount(sequences.flatten(), minlength: tfs.Count).data<long>().ToArray();
            for (int t = 0; t < counts.Length; t++) counts[t] += drawn[t];
            batches++;
        }
        double total = Math.Max(1, counts.Sum());
        var shares = Enumerable.Range(0, tfs.Count).ToDictionary(tfs.Name, t => counts[t] / total);
        return new TanEpoch(epoch, dLoss / (batches * settings.DiscriminatorSteps), dAccuracy / (batches * settings.DiscriminatorSteps),
            gLoss / batches, rLoss / batches, clock.Elapsed.TotalSeconds, shares);
    }

    /// <summary>
    /// Trains stage 1 in <paramref name="folder"/> (RUN/stage1) from its last checkpoint to
    /// <see cref="TanSettings.Epochs"/>, a checkpoint and metrics.jsonl after each epoch and the
    /// sample grid after the first, every 5th and the last. Returns false when cancelled first.
    /// </summary>
    public bool Run(string folder, ImageDataset train, JsonObject identity, CancellationToken cancel, Action<TanEpoch> report)
    {
        var stage = new ResumableStage<TanEpoch>([MetricsFile],
            [StatePart.Of("generator", Generator), StatePart.Of("discriminator", Discriminator),
             StatePart.Of("generator_optimizer", generatorOptimizer), StatePart.Of("discriminator_optimizer", discriminatorOptimizer)],
            epoch => TrainEpoch(train, epoch), e => [e.ToJson()]);
        var runner = new StageRunner<TanEpoch>(folder, identity, stage, "stage-1 checkpoint");
        runner.Resume();
        return runner.Train(settings.Epochs, cancel, e =>
        {
            if (e.Epoch == 1 || e.Epoch % 5 == 0 || e.Epoch == settings.Epochs)
                AtomicFile.Write(Path.Combine(folder, SamplesFile), temp => File.WriteAllBytes(temp, SampleGrid(train, e.Epoch)));
            report(e);
        });
    }

    /// <summary>A PNG: 8 training images, then rows of random sequences' and the generator's transforms of them.</summary>
    byte[] SampleGrid(ImageDataset train, int epoch)
    {
        using var scope = NewDisposeScope();
        long n = Math.Min(8, train.Count);
        var images = train.Images.index_select(0, arange(n, dtype: ScalarType.Int64).mul(train.Count / n)).to(device);
        using var streams = new EpochStreams(seed, epoch);
        using var draw = new Generator((ulong)streams.SeedFor(EpochStreams.DistributionStream));
        var rows = new List<Tensor> { images };
        var labels = new List<string> { "original" };
        for (int r = 0; r < 3; r++) { rows.Add(tfs.ApplySequences(images, tfs.RandomSequences((int)n, settings.Length, draw), draw)); labels.Add("random"); }
        for (int r = 0; r < 3; r++) { rows.Add(tfs.ApplySequences(images, Generator.Sample((int)n, draw), draw)); labels.Add($"TAN {epoch}"); }
        return ImageGrid.EncodePng(cat(rows, 0).cpu(), (int)n, labels);
    }

    public void Dispose()
    {
        generatorOptimizer.Dispose();
        discriminatorOptimizer.Dispose();
        Generator.Dispose();
        Discriminator.Dispose();
    }
}
