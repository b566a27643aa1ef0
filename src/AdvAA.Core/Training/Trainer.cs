using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text.Json.Nodes;
using System.Threading;
using AdvAA.Core.Augment;
using AdvAA.Core.Backend;
using AdvAA.Core.Data;
using AdvAA.Core.Models;
using AdvAA.Core.Search;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace AdvAA.Core.Training;

/// <summary>Raised when the training loss stops being finite; the last good checkpoint is kept.</summary>
public sealed class TrainingDivergedException(string message) : Exception(message);

/// <summary>
/// The trainer of Algorithm 1 (Zhang et al. 2020) and of every baseline: each batch of N images
/// becomes the batch the method asks for (M augmented copies, one policy per copy; or K scored
/// candidates of which S are kept), then standard crop/flip and Cutout; the target trains on it
/// with SGD; with the adversarial method the controller takes one REINFORCE step per epoch on the
/// copies' epoch-mean losses. Each epoch ends with an evaluation, a metrics line, a policies line
/// and an atomic checkpoint, from which <see cref="Run"/> resumes with identical results on CPU.
/// </summary>
public sealed class Trainer : IDisposable
{
    readonly TrainConfig config;
    readonly DataSplits data;
    readonly Device device;
    readonly Module<Tensor, Tensor> model;
    readonly SGD optimizer;
    readonly Normalizer normalizer;
    readonly BatchLoader loader;
    readonly PolicyController? controller;
    readonly ControllerTrainer? controllerTrainer;
    readonly IPolicySource? policySource;

    /// <summary>Raised after each epoch has been written to the run folder.</summary>
    public event EventHandler<EpochMetrics>? EpochCompleted;
    /// <summary>Raised every few steps with the running loss.</summary>
    public event EventHandler<StepProgress>? StepCompleted;

    public TrainConfig Config => config;
    public Device Device => device;
    public int BatchesPerEpoch => loader.BatchesPerEpoch;

    /// <summary>Trains on <paramref name="data"/> (limited as the config says); the caller keeps ownership of it.</summary>
    public Trainer(TrainConfig config, DataSplits data)
    {
        this.config = config.Validate();
        this.data = new DataSplits(Limit(data.Train, config.TrainLimit), Limit(data.Test, config.TestLimit), data.Format);
        device = TorchBackend.ResolveDevice(TorchBackend.ParseDevice(config.Device));
        torch.manual_seed(config.Seed);
        model = ModelRegistry.Create(config.Model, this.data.Train.Classes.Count, config.Dropout);
        model.to(device);
        optimizer = torch.optim.SGD(model.parameters(), config.LearningRate(0), config.Momentum, 0,
            config.WeightDecay, config.Nesterov);
        normalizer = Normalizer.FromDataset(this.data.Train);
        loader = new BatchLoader(this.data.Train, config.BatchSize, device, shuffle: true, config.Seed, dropLast: true);
        if (config.Method == Methods.Adversarial)
        {
            controller = new PolicyController(config.Space.Ops.Count, config.Space.Levels, config.SubPolicies,
                config.OpsPerSubPolicy, config.ControllerEmbedding, config.ControllerHidden);
            controllerTrainer = new ControllerTrainer(controller, config.ControllerLearningRate, config.EntropyWeight);
        }
        policySource = config.Method switch
        {
            Methods.AutoAugment => AutoAugmentPolicy.Cifar10Source(),
            Methods.RandAugment => new RandAugment(config.RandAugmentN, config.RandAugmentM),
            Methods.TrivialAugment => new TrivialAugment(config.TrivialAugmentWide),
            Methods.Policy => new PolicyAugment(config.Policy!, config.Space, "policy"),
            _ => null,
        };
    }

    /// <summary>
    /// A seeded random subset of <paramref name="limit"/> images, in their original order, so a limit
    /// keeps every class even where files come sorted by class.
    /// </summary>
    static ImageDataset Limit(ImageDataset set, long? limit)
    {
        if (limit is not long n || n >= set.Count) return set.Take(set.Count);
        using var generator = new Generator(0);
        using var chosen = torch.randperm(set.Count, generator: generator).narrow(0, 0, n).sort().Values;
        return new ImageDataset(set.Images.index_select(0, chosen), set.Labels.index_select(0, chosen), set.Classes, set.Source);
    }

    /// <summary>Parameters of the target model.</summary>
    public long ParameterCount => ModelRegistry.ParameterCount(model);

    /// <summary>
    /// Trains from the run's last complete checkpoint (or from scratch) to the configured number of
    /// epochs. Cancelling stops after the current epoch's checkpoint.
    /// </summary>
    public IReadOnlyList<EpochMetrics> Run(RunFolder run, CancellationToken cancel = default)
    {
        int start = 1;
        Checkpoint? checkpoint = Checkpoints.Latest(run);
        if (checkpoint != null)
        {
            Restore(checkpoint);
            start = checkpoint.Epoch + 1;
            run.TruncateToEpoch(RunFolder.MetricsFile, checkpoint.Epoch);
            run.TruncateToEpoch(RunFolder.PoliciesFile, checkpoint.Epoch);
        }
        else if (!File.Exists(run.File(RunFolder.ConfigFile)))
        {
            run.WriteConfig(DescribeRun());
        }
        var results = new List<EpochMetrics>();
        for (int epoch = start; epoch <= config.Epochs && !cancel.IsCancellationRequested; epoch++)
        {
            (EpochMetrics metrics, JsonObject policies) = RunEpoch(epoch, run);
            run.AppendLine(RunFolder.MetricsFile, metrics.ToJson());
            run.AppendLine(RunFolder.PoliciesFile, policies);
            Checkpoints.Save(run, epoch, Identity(), CheckpointParts());
            checkpoint = null;
            results.Add(metrics);
            EpochCompleted?.Invoke(this, metrics);
        }
        return results;
    }

    /// <summary>What config.json records: the experiment, the data, the versions, the device.</summary>
    JsonObject DescribeRun()
    {
        NativeBackend backend = TorchBackend.Initialize(TorchBackend.ParseDevice(config.Device));
        return new JsonObject
        {
            ["advaa_version"] = typeof(Trainer).Assembly.GetName().Version?.ToString(3),
            ["torchsharp_version"] = typeof(torch).Assembly.GetName().Version?.ToString(3),
            ["libtorch_version"] = backend.LibTorchVersion,
            ["backend"] = backend.Kind,
            ["device"] = device.ToString(),
            ["created"] = DateTime.UtcNow.ToString("O"),
            ["experiment"] = config.ToJson(),
            ["data"] = new JsonObject
            {
                ["format"] = data.Format,
                ["source"] = data.Train.Source,
                ["train_images"] = data.Train.Count,
                ["test_images"] = data.Test.Count,
                ["image_shape"] = new JsonArray(data.Train.Channels, data.Train.Height, data.Train.Width),
                ["classes"] = new JsonArray(data.Train.Classes.Select(c => (JsonNode)c).ToArray()),
                ["mean"] = new JsonArray(normalizer.Mean.Select(v => (JsonNode)v).ToArray()),
                ["std"] = new JsonArray(normalizer.Std.Select(v => (JsonNode)v).ToArray()),
            },
            ["model_parameters"] = ParameterCount,
            ["origin"] = config.Origin?.DeepClone(),
        };
    }


    /// <summary>What must match between a checkpoint and the run that resumes from it.</summary>
    JsonObject Identity() => new()
    {
        ["method"] = config.Method,
        ["model"] = config.Model,
        ["classes"] = data.Train.Classes.Count,
        ["seed"] = config.Seed,
        ["batch_size"] = config.BatchSize,
        ["ops"] = string.Join(",", config.Space.Ops.Select(o => o.Name)),
        ["levels"] = config.Space.Levels,
        ["sub_policies"] = config.SubPolicies,
        ["ops_per_sub_policy"] = config.OpsPerSubPolicy,
    };

    IReadOnlyDictionary<string, Action<Stream>> CheckpointParts()
    {
        var parts = new Dictionary<string, Action<Stream>>
        {
            ["model"] = s => model.save(s),
            ["optimizer"] = s => { using var w = new BinaryWriter(s, System.Text.Encoding.UTF8, leaveOpen: true); optimizer.save_state_dict(w); },
        };
        if (controller != null && controllerTrainer != null)
        {
            parts["controller"] = s => controller.save(s);
            parts["controller_optimizer"] = s => { using var w = new BinaryWriter(s, System.Text.Encoding.UTF8, leaveOpen: true); controllerTrainer.Optimizer.save_state_dict(w); };
        }
        return parts;
    }

    void Restore(Checkpoint checkpoint)
    {
        JsonObject expected = Identity();
        foreach ((string key, JsonNode? value) in expected)
        {
            string want = value?.ToJsonString() ?? "null";
            string have = checkpoint.Identity[key]?.ToJsonString() ?? "(missing)";
            if (want != have)
                throw new RunFolderException($"checkpoint {checkpoint.Folder} is from a different run: its {key} is {have}, this run's is {want}");
        }
        checkpoint.Read("model", s => model.load(s, strict: true));
        checkpoint.Read("optimizer", s => { using var r = new BinaryReader(s); optimizer.load_state_dict(r); });
        if (controller != null && controllerTrainer != null)
        {
            checkpoint.Read("controller", s => controller.load(s, strict: true));
            checkpoint.Read("controller_optimizer", s => { using var r = new BinaryReader(s); controllerTrainer.Optimizer.load_state_dict(r); });
        }
    }

    /// <summary>A 64-bit seed for one random stream of one epoch (SplitMix64), so that every
    /// epoch's randomness depends only on (seed, epoch) and a resumed run repeats it exactly.</summary>
    static long StreamSeed(long seed, int epoch, int stream)
    {
        ulong z = (ulong)seed * 0x9E3779B97F4A7C15UL + (ulong)epoch * 0xBF58476D1CE4E5B9UL + (ulong)stream * 0x94D049BB133111EBUL;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return (long)((z ^ (z >> 31)) & 0x7FFFFFFFFFFFFFFFUL);
    }

    (EpochMetrics, JsonObject) RunEpoch(int epoch, RunFolder run)
    {
        var clock = Stopwatch.StartNew();
        torch.manual_seed(StreamSeed(config.Seed, epoch, 0));
        using var augmentGenerator = new Generator((ulong)StreamSeed(config.Seed, epoch, 1));
        using var controllerGenerator = new Generator((ulong)StreamSeed(config.Seed, epoch, 2));
        double progress = epoch - 1;
        int m = config.InstancesAt(epoch - 1);
        double controllerSeconds = 0, augmentSeconds = 0;

        // The epoch's M policies: [M, Q, K] op ids and levels (adversarial: from the controller).
        Tensor? policyOps = null, policyLevels = null;
        double? entropy = null;
        JsonObject? distribution = null;
        if (Methods.SamplesPolicies(config.Method))
        {
            var t = Stopwatch.StartNew();
            if (controller != null)
            {
                using var noGrad = torch.no_grad();
                ControllerSample sample = controller.Sample(m, controllerGenerator);
                policyOps = sample.Ops.detach();
                policyLevels = sample.Levels.detach();
                entropy = sample.Entropy.mean().item<float>();
                sample.Dispose();
                distribution = ControllerDistribution(StreamSeed(config.Seed, epoch, 3));
            }
            else
            {
                long[] shape = [m, config.SubPolicies, config.OpsPerSubPolicy];
                policyOps = torch.randint(0, config.Space.Ops.Count, shape, generator: controllerGenerator, dtype: int64);
                policyLevels = torch.randint(0, config.Space.Levels, shape, generator: controllerGenerator, dtype: int64);
            }
            controllerSeconds += t.Elapsed.TotalSeconds;
        }

        model.train();
        int steps = loader.BatchesPerEpoch;
        using var instanceLossSum = torch.zeros(Methods.UsesInstances(config.Method) ? m : 1, device: device);
        using var correct = torch.zeros(1, dtype: int64, device: device);
        long seen = 0;
        int step = 0;
        foreach ((Tensor images, Tensor labels) in loader.Epoch(epoch))
        {
            using var scope = torch.NewDisposeScope();
            double lr = config.LearningRate(progress + (double)step / steps);
            foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;

            var augmentClock = Stopwatch.StartNew();
            (Tensor batch, Tensor targets, int copies) = BuildBatch(images, labels, m, policyOps, policyLevels, augmentGenerator, progress);
            Tensor inputs = normalizer.Apply(batch);
            if (config.Profile) Synchronize();
            augmentSeconds += augmentClock.Elapsed.TotalSeconds;

            Tensor logits = model.forward(inputs);
            Tensor perSample = nn.functional.cross_entropy(logits, targets, reduction: nn.Reduction.None);
            Tensor loss = perSample.mean();
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();

            using (torch.no_grad())
            {
                Tensor detached = perSample.detach();
                instanceLossSum.add_(copies > 1 && Methods.UsesInstances(config.Method)
                    ? detached.view(copies, -1).mean([1L])
                    : detached.mean().unsqueeze(0));
                correct.add_(logits.argmax(1).eq(targets).sum());
            }
            seen += targets.shape[0];
            step++;
            if (step % 10 == 0 || step == steps)
            {
                double value = loss.item<float>();
                if (!double.IsFinite(value)) throw Diverged(epoch, step, value, run);
                StepCompleted?.Invoke(this, new StepProgress(epoch, config.Epochs, step, steps, value));
            }
            images.Dispose();
            labels.Dispose();
        }
        double trainSeconds = clock.Elapsed.TotalSeconds;

        double[] instanceLosses = instanceLossSum.div(Math.Max(steps, 1)).cpu().data<float>().Select(v => (double)v).ToArray();
        double trainLoss = instanceLosses.Average();
        if (!double.IsFinite(trainLoss)) throw Diverged(epoch, step, trainLoss, run);
        double? controllerLoss = null;
        double[]? normalized = null;
        if (controllerTrainer != null && policyOps is not null && policyLevels is not null)
        {
            var t = Stopwatch.StartNew();
            (normalized, double closs) = controllerTrainer.Update(policyOps, policyLevels, instanceLosses);
            controllerLoss = closs;
            controllerSeconds += t.Elapsed.TotalSeconds;
        }

        (double testLoss, double testAccuracy) = Evaluate();
        double seconds = clock.Elapsed.TotalSeconds;
        var metrics = new EpochMetrics(epoch, trainLoss, correct.item<long>() / (double)Math.Max(seen, 1), testLoss, testAccuracy,
            config.LearningRate(progress), instanceLosses.Length, instanceLosses, entropy, controllerLoss, seconds,
            seen / Math.Max(trainSeconds, 1e-9), augmentSeconds, controllerSeconds);
        JsonObject policies = DescribePolicies(epoch, policyOps, policyLevels, normalized, instanceLosses);
        if (distribution != null) policies["controller_distribution"] = distribution;
        policyOps?.Dispose();
        policyLevels?.Dispose();
        return (metrics, policies);
    }

    void Synchronize()
    {
        if (device.type == DeviceType.CUDA) torch.cuda.synchronize();
    }

    TrainingDivergedException Diverged(int epoch, int step, double value, RunFolder run)
    {
        Checkpoint? last = Checkpoints.Latest(run);
        string kept = last == null ? "no checkpoint had been written yet" : $"the last good checkpoint (epoch {last.Epoch}) is kept in {last.Folder}";
        return new TrainingDivergedException(
            $"the training loss became {value} at epoch {epoch}, step {step}; the run stopped and {kept}. Lower the learning rate ({config.LearningRateDescription}) or check the data.");
    }

    /// <summary>
    /// The batch the target trains on, from N images: M copies for the instance methods, K scored
    /// candidates reduced to S for uncertainty, one copy otherwise; then crop/flip (+ Cutout).
    /// Returns uint8 images, their labels, and the number of copies (instance-major order).
    /// </summary>
    (Tensor Images, Tensor Labels, int Copies) BuildBatch(Tensor images, Tensor labels, int m,
        Tensor? policyOps, Tensor? policyLevels, Generator generator, double progress)
    {
        bool cutout = config.Method != Methods.Baseline && config.CutoutSize > 0;
        if (config.Method == Methods.Uncertainty)
            return SelectUncertain(images, labels, generator, progress);

        int copies = Methods.UsesInstances(config.Method) ? m : 1;
        Tensor batch = copies > 1 ? images.repeat(copies, 1, 1, 1) : images;
        Tensor targets = copies > 1 ? labels.repeat(copies) : labels;
        if (policyOps is not null && policyLevels is not null)
            batch = ApplyPolicies(batch, policyOps, policyLevels, (int)images.shape[0], generator, progress);
        else if (policySource != null)
            batch = policySource.Augment(batch, generator);
        return (Standard(batch, cutout, generator), targets, copies);
    }

    Tensor Standard(Tensor batch, bool cutout, Generator generator)
    {
        Tensor cropped = StandardAugment.CropFlip(batch, generator);
        return cutout ? StandardAugment.Cutout(cropped, config.CutoutSize, generator) : cropped;
    }

    /// <summary>Copy m of each image takes policy m; each image picks one of its policy's Q sub-policies uniformly.</summary>
    Tensor ApplyPolicies(Tensor batch, Tensor policyOps, Tensor policyLevels, int n, Generator generator, double progress)
    {
        long m = policyOps.shape[0], q = policyOps.shape[1], k = policyOps.shape[2];
        Tensor choice = torch.randint(0, q, [m, n], generator: generator, dtype: int64);
        Tensor index = choice.unsqueeze(-1).expand(m, n, k);
        Tensor ops = policyOps.gather(1, index).reshape(m * n, k);
        Tensor levels = policyLevels.gather(1, index).reshape(m * n, k).to_type(float32);
        levels = ScaleLevels(levels, progress);
        Tensor augmented = BatchAugment.Apply(batch, config.Space, ops.to(device), levels.to(device), generator);
        return KeepWithProbability(batch, augmented, progress, generator);
    }

    Tensor ScaleLevels(Tensor levels, double progress)
    {
        double scale = config.MagnitudeScale(progress);
        // Levels are whole numbers (BatchAugment checks): a fractional product is rounded down.
        return scale == 1.0 ? levels : levels.mul(scale).floor_().clamp(0, config.Space.Levels - 1);
    }

    Tensor KeepWithProbability(Tensor original, Tensor augmented, double progress, Generator generator)
    {
        double p = config.PolicyProbability(progress);
        if (p >= 1.0) return augmented;
        Tensor apply = torch.rand([original.shape[0]], generator: generator).lt(p).to(device).view(-1, 1, 1, 1);
        return torch.where(apply, augmented, original);
    }

    /// <summary>
    /// Uncertainty-based sampling (Wu et al. 2020): K random 2-op candidates per image, scored
    /// by a forward pass without gradients in eval mode; S kept per image, drawn in proportion to
    /// their loss.
    /// </summary>
    (Tensor Images, Tensor Labels, int Copies) SelectUncertain(Tensor images, Tensor labels, Generator generator, double progress)
    {
        int n = (int)images.shape[0], kCandidates = config.UncertaintyCandidates, s = config.UncertaintyKeep;
        Tensor candidates = images.repeat(kCandidates, 1, 1, 1);
        Tensor ops = torch.randint(0, config.Space.Ops.Count, [kCandidates * n, 2], generator: generator, dtype: int64);
        Tensor levels = ScaleLevels(torch.randint(0, config.Space.Levels, [kCandidates * n, 2], generator: generator, dtype: int64).to_type(float32), progress);
        candidates = BatchAugment.Apply(candidates, config.Space, ops.to(device), levels.to(device), generator);
        candidates = Standard(candidates, config.CutoutSize > 0, generator);
        Tensor candidateLabels = labels.repeat(kCandidates);
        Tensor scores;
        model.eval();
        using (torch.no_grad())
        {
            Tensor losses = nn.functional.cross_entropy(model.forward(normalizer.Apply(candidates)), candidateLabels, reduction: nn.Reduction.None);
            scores = losses.view(kCandidates, n).t().clamp_min(1e-12).cpu();   // [N, K]
        }
        model.train();
        Tensor keep = torch.multinomial(scores, s, replacement: false, generator: generator);   // [N, S]
        Tensor flat = keep.t().mul(n).add(torch.arange(n, dtype: int64)).reshape(-1).to(device);  // copy-major
        return (candidates.index_select(0, flat), candidateLabels.index_select(0, flat), s);
    }

    (double Loss, double Accuracy) Evaluate()
    {
        model.eval();
        using var noGrad = torch.no_grad();
        var evalLoader = new BatchLoader(data.Test, config.EvalBatchSize, device, shuffle: false, 0, dropLast: false);
        double lossSum = 0;
        long correct = 0, total = 0;
        foreach ((Tensor images, Tensor labels) in evalLoader.Epoch(0))
        {
            using var scope = torch.NewDisposeScope();
            Tensor logits = model.forward(normalizer.Apply(images));
            lossSum += nn.functional.cross_entropy(logits, labels, reduction: nn.Reduction.Sum).item<float>();
            correct += logits.argmax(1).eq(labels).sum().item<long>();
            total += labels.shape[0];
            images.Dispose();
            labels.Dispose();
        }
        model.train();
        return (lossSum / Math.Max(total, 1), correct / (double)Math.Max(total, 1));
    }

    /// <summary>Policies the controller draws for the distribution estimate (paper Fig. 6).</summary>
    const int DistributionSamples = 256;

    /// <summary>
    /// The controller's current op and magnitude distributions, estimated from many policies drawn
    /// with a generator of their own (so the training's random streams are untouched): the share of
    /// each op and level among all their stages.
    /// </summary>
    JsonObject ControllerDistribution(long seed)
    {
        using var generator = new Generator((ulong)seed);
        using var noGrad = torch.no_grad();
        using ControllerSample sample = controller!.Sample(DistributionSamples, generator);
        using Tensor ops = sample.Ops.reshape(-1).bincount(null, config.Space.Ops.Count).to_type(float64);
        using Tensor levels = sample.Levels.reshape(-1).bincount(null, config.Space.Levels).to_type(float64);
        double total = sample.Ops.numel();
        double[] opShares = ops.data<double>().Select(c => c / total).ToArray();
        double[] levelShares = levels.data<double>().Select(c => c / total).ToArray();
        return new JsonObject
        {
            ["policies_drawn"] = DistributionSamples,
            ["ops"] = new JsonObject(config.Space.Ops.Select((o, i) => KeyValuePair.Create(o.Name, (JsonNode?)opShares[i]))),
            ["levels"] = new JsonArray(levelShares.Select(v => (JsonNode)v).ToArray()),
        };
    }

    /// <summary>A policies.jsonl line: the epoch's M policies by op name, with their normalised losses.</summary>
    JsonObject DescribePolicies(int epoch, Tensor? ops, Tensor? levels, double[]? normalized, double[] instanceLosses)
    {
        var record = new JsonObject { ["epoch"] = epoch, ["method"] = config.Method };
        if (ops is not null && levels is not null)
        {
            long[] o = ops.cpu().data<long>().ToArray();
            long[] l = levels.cpu().data<long>().ToArray();
            long m = ops.shape[0], q = ops.shape[1], k = ops.shape[2];
            var policies = new JsonArray();
            for (long i = 0; i < m; i++)
            {
                var subs = new JsonArray();
                for (long j = 0; j < q; j++)
                {
                    var stages = new JsonArray();
                    for (long s = 0; s < k; s++)
                    {
                        long at = (i * q + j) * k + s;
                        stages.Add(new JsonArray(config.Space.Ops[(int)o[at]].Name, l[at]));
                    }
                    subs.Add(stages);
                }
                policies.Add(subs);
            }
            record["policies"] = policies;
        }
        record["instance_losses"] = new JsonArray(instanceLosses.Select(JsonOptions.Number).ToArray());
        if (normalized != null)
            record["normalized_losses"] = new JsonArray(normalized.Select(JsonOptions.Number).ToArray());
        return record;
    }

    public void Dispose()
    {
        model.Dispose();
        optimizer.Dispose();
        controller?.Dispose();
        data.Train.Dispose();
        data.Test.Dispose();
    }
}
