using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading;
using AdvAA.Core.Augment;
using AdvAA.Core.Backend;
using AdvAA.Core.Data;
using AdvAA.Core.Distributed;
using AdvAA.Core.Methods;
using AdvAA.Core.Models;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace AdvAA.Core.Training;

/// <summary>Raised when the training loss stops being finite; the last good checkpoint is kept.</summary>
public sealed class TrainingDivergedException(string message) : Exception(message);

/// <summary>
/// The training loop shared by every method: per step the method (<see cref="ITrainingMethod"/>)
/// builds the batch from N images, the target trains on it with SGD, and the method sees the
/// per-sample losses; each epoch ends with the method's record, an evaluation, an atomic checkpoint
/// (model, optimiser, the method's state parts, the logs so far) and a metrics and a policies line.
/// <see cref="Run"/> holds the run folder's lock and resumes from its last complete checkpoint with
/// identical results on CPU. The trainer knows no method by name.
/// In a distributed job (<see cref="ProcessGroup"/>) every rank builds the same N·M batch (the
/// policies' draws derive from seed, epoch and stream), trains its rows of it (whole instances, or
/// a slice of every instance's images when M &lt; K), and one all-reduce per step sums the gradients,
/// the batch-norm statistics and the per-sample losses, so every rank takes the same optimiser and
/// method (controller) step; rank 0 alone writes the run folder.
/// </summary>
public sealed class Trainer : IDisposable
{
    readonly TrainConfig config;
    readonly DataSplits data;
    readonly ImageDataset? validation;
    readonly DataRecord dataRecord;
    readonly SearchSpace space;
    readonly Device device;
    readonly Module<Tensor, Tensor> model;
    readonly SGD optimizer;
    readonly Normalizer normalizer;
    readonly BatchLoader loader;
    /// <summary>The bad images skipped this epoch (<see cref="TrainConfig.SkipBadImages"/>), else null.</summary>
    readonly SkippedImages? skipped;
    readonly ITrainingMethod method;
    readonly IObjectiveMethod? objective;
    readonly bool channelsLast;
    readonly EpochSchedule learningRate;
    readonly ProcessGroup? group;
    Precision precision;
    readonly PrecisionChoice precisionChoice;

    /// <summary>Whether this process writes the run folder: always, except on the ranks other than 0 of a distributed job.</summary>
    bool Writes => group is null || group.Rank == 0;

    /// <summary>Raised after each epoch has been written to the run folder.</summary>
    public event EventHandler<EpochMetrics>? EpochCompleted;
    /// <summary>Raised with each progress line of a method's stage before training (TANDA's stage 1).</summary>
    public event EventHandler<string>? StageProgress;
    /// <summary>Raised when a resumed run changes settings outside its identity (recorded in config.json's amendments).</summary>
    public event EventHandler<Amendment>? SettingsAmended;
    /// <summary>Raised every few steps with the running loss.</summary>
    public event EventHandler<StepProgress>? StepCompleted;

    public TrainConfig Config => config;
    public Device Device => device;
    public int BatchesPerEpoch => loader.BatchesPerEpoch;

    /// <summary>
    /// Trains on <paramref name="data"/> (limited as the config says); the caller keeps ownership of
    /// it. With <paramref name="group"/>, as this process's rank of a data-parallel job.
    /// </summary>
    public Trainer(TrainConfig config, DataSplits data, ProcessGroup? group = null)
    {
        this.group = group;
        this.config = config.Validate();
        learningRate = this.config.LearningRate!;  // a validated config has one
        (var train, validation) = Subsets.Split(data.Train, config.TrainLimit, config.ValidationSize);
        // The data's own validation split (an image folder's val/) unless the config carves one from the training images.
        if (validation is null && config.ValidationSize is null && data.Validation is { } own) validation = own.Take(own.Count);
        var test = Subsets.Split(data.Test, config.TestLimit, null).Subset;
        // Streamed data is cropped to S, the setting's or the model's; data of one small size keeps its own (and refuses another S).
        imageSize = train.IsStreamed ? config.ImageSize ?? ModelRegistry.Resolve(config.Model).ImageSize : null;
        if ((imageSize ?? config.ImageSize) is int side)
        {
            (train, test, validation) = (Resized(train, side), Resized(test, side), validation is null ? null : Resized(validation, side));
        }
        this.data = new DataSplits(train, test, data.Format);
        space = this.config.Method.TrainingSpace(config.Space).SizedTo(train.Height, train.Width);
        device = TorchBackend.ResolveDevice(TorchBackend.ParseDevice(config.Device));
        if (group != null) device = group.DeviceFor(device);
        channelsLast = config.MemoryFormat == MemoryFormats.ChannelsLast;
        // Rank 0 chooses (auto may time the model's step) and every rank takes its choice.
        string? warning = null;
        long[] imageShape = [train.Channels, train.Height, train.Width];
        int classes = train.Classes.Count;
        PrecisionChoice? chosen = group is null || group.Rank == 0
            ? Precisions.Choose(Precisions.Parse(config.Precision), device,
                $"{config.Model}, {classes} classes, {string.Join("x", imageShape)} images, batch {config.BatchSize}, {config.MemoryFormat}",
                p => StepRate.Measure(device, config.Model, classes, imageShape, config.BatchSize, p, channelsLast, steps: 3, seconds: 10), out warning)
            : null;
        precisionChoice = group is null ? chosen! : PrecisionChoice.FromJson(JsonNode.Parse(group.Broadcast(chosen?.ToJson().ToJsonString() ?? "")))!;
        precision = precisionChoice.Precision;
        PrecisionWarning = warning;
        model = ModelRegistry.Create(config.Model, train.Classes.Count, config.Dropout, EpochStreams.SeedOf(config.Seed, 0, EpochStreams.ModelInitStream));
        // Read before anything is written: a file that does not fit stops the run with nothing changed
        // (a resumed run reads it too, and then takes its checkpoint's weights).
        if (config.Init is string init)
            WeightFiles.LoadInto(model, init, $"{config.Model} with {train.Classes.Count} classes");
        model.to(device);
        normalizer = Normalizer.FromDataset(train, config.SkipBadImages);
        skipped = config.SkipBadImages ? new SkippedImages() : null;
        loader = new BatchLoader(train, config.BatchSize, device, shuffle: true, config.Seed, dropLast: true, config.Workers ?? 0, group, skipped);
        var target = new TargetModel(model,
            () => ModelRegistry.Create(config.Model, classes, config.Dropout, EpochStreams.SeedOf(config.Seed, 0, EpochStreams.ModelInitStream)).to(device),
            LossesOf);
        method = config.Method.Create(new MethodContext(space, train.Classes.Count, train.Channels, train.Height, train.Width, device, config.Epochs, config.Seed,
            train.GroupNames, train.GroupNames is null ? null : train.GroupCounts(), train.Counterparts is not null, loader.BatchesPerEpoch, target,
            LoaderCrops: train.IsStreamed));
        objective = method as IObjectiveMethod;
        if (objective != null && config.Mix is { } mixing)
            throw new ConfigException($"method {config.Method.Name} sets its own objective over the batch's labels and groups; it does not combine with label mixing (--mix {mixing.Text})");
        optimizer = torch.optim.SGD(model.parameters(), learningRate.At(0), config.Momentum, 0, config.WeightDecay, config.Nesterov);
        // The data set as read (its identity); the limits are recorded with the experiment.
        dataRecord = new DataRecord(data.Format, data.Train.Source, data.Train.Count, data.Test.Count,
            [train.Channels, train.Height, train.Width], train.Classes.ToArray(), normalizer.Mean.ToArray(), normalizer.Std.ToArray(),
            $"{data.Train.ContentHash()}/{data.Test.ContentHash()}{(data.Validation is { } v ? "/" + v.ContentHash() : "")}");
        if (group != null)
        {
            if (objective != null)
                throw new DistributedException($"method {config.Method.Name} computes its objective over the whole batch in one process; run it without --distributed");
            if (method is IStagedMethod { TrainsStage: true })
                throw new DistributedException(
                    $"method {config.Method.Name} trains its first stage in one process: run it once without --distributed (it can stop after stage 1 with --epochs 1), then reuse that stage with --distributed (tanda: --from RUN)");
            // Before anything is written: a rank with other settings stops the job, rank 0 naming the first that differs.
            JsonObject settings = SharedSettings();
            if (group.FirstDisagreement(settings.ToJsonString()) is { } other)
                throw new DistributedException(
                    $"the ranks disagree on the run's settings: rank {other.Rank} differs from rank 0 in " +
                    $"{JsonDifferences.All(settings, JsonNode.Parse(other.Text)).Select(d => $"{d.Setting} (rank 0: {JsonDifferences.Compact(d.From)}, rank {other.Rank}: {JsonDifferences.Compact(d.To)})").FirstOrDefault()}. " +
                    "Start every rank with the same command and files");
        }
    }

    /// <summary>The crop side of streamed data (the setting's or the model's); null for data used at its own size.</summary>
    readonly int? imageSize;

    /// <summary>A split at crop size <paramref name="side"/>, the sized copy replacing (and disposing) the split it came from.</summary>
    static ImageDataset Resized(ImageDataset set, int side)
    {
        try
        {
            return set.Sized(side);
        }
        finally
        {
            set.Dispose();
        }
    }

    /// <summary>
    /// What every rank of a job must agree on: the resolved experiment and the data's identity, less
    /// what is each rank's own (its device, the data's and the initial weights' paths).
    /// </summary>
    JsonObject SharedSettings()
    {
        JsonObject settings = config.Record(space, precision, imageSize).ToJson();
        foreach (string own in new[] { "device", "data", "init" }) settings.Remove(own);
        settings["data"] = dataRecord.Identity();
        return settings;
    }

    /// <summary>Parameters of the target model.</summary>
    public long ParameterCount => ModelRegistry.ParameterCount(model);

    /// <summary>The search space the method trains with: the experiment's, sized to the data's images.</summary>
    public SearchSpace Space => space;

    /// <summary>The precision the target trains in (auto resolved for the device; a resumed run keeps its own).</summary>
    public Precision Precision => precision;

    /// <summary>Why the precision asked for is a poor fit for the device (bf16 without hardware support), or null.</summary>
    public string? PrecisionWarning { get; }

    /// <summary>What config.json records: the versions, the device, the experiment, the data.</summary>
    public RunConfig Describe()
    {
        NativeBackend backend = TorchBackend.Initialize(TorchBackend.ParseDevice(config.Device));
        return new RunConfig(typeof(Trainer).Assembly.GetName().Version?.ToString(3), typeof(torch).Assembly.GetName().Version?.ToString(3),
            backend.LibTorchVersion, backend.Kind, device.ToString(), Machine.Describe(), DateTime.UtcNow.ToString("O"), config.Record(space, precision, imageSize), dataRecord,
            ParameterCount, config.Origin, precisionChoice);
    }

    /// <summary>
    /// Trains from the run's last complete checkpoint (or from scratch) to the configured number of
    /// epochs, holding the folder's lock throughout. The logs are first made to hold exactly the
    /// epochs the checkpoint covers. Cancelling stops after the current epoch's checkpoint. Returns
    /// the epochs trained now.
    /// </summary>
    public IReadOnlyList<EpochMetrics> Run(RunFolder run, CancellationToken cancel = default, string command = "advaa")
    {
        // Rank 0 prepares the folder (lock, leftovers, config.json) while the others wait, then they read it.
        using var writer = Writes ? run.Lock(command) : null;
        if (Writes) run.RemoveLeftovers();
        else group!.Barrier();
        RunConfig? recorded = File.Exists(run.File(RunFolder.ConfigFile)) ? run.ReadConfig() : null;
        // "auto" resumes in the precision the run chose, whatever this device would choose.
        if (recorded != null && Precisions.Parse(config.Precision) is null)
            precision = Precisions.Parse(recorded.Experiment.Precision) ?? precision;
        RunConfig description = Describe();
        var identity = description.Identity();
        if (recorded != null)
        {
            if (JsonDifferences.First(recorded.Identity(), identity) is { } difference)
            {
                string context = difference.StartsWith("data", StringComparison.Ordinal)
                    ? $" (the run read {recorded.Data.Source}; this one reads {dataRecord.Source})"
                    : difference.StartsWith("method", StringComparison.Ordinal) ? $" (the method now: {config.Method.Name}, {config.Method.Summary})" : "";
                throw new RunFolderException(
                    $"run folder {run.Path} holds another run: {difference}{context}. Resume it with the settings it was started with, or start a new run with another --out");
            }
            // Settings outside the identity (epochs, learning rate, ...) may change on resume; config.json records each change.
            if (Writes && recorded.Amended(description.Experiment, run.LatestCheckpoint()?.Epoch ?? 0) is { } amended)
            {
                run.WriteConfig(amended);
                SettingsAmended?.Invoke(this, amended.Amendments![^1]);
            }
        }
        else if (Writes) run.WriteConfig(description);
        if (Writes) group?.Barrier();

        var stage = new ResumableStage<EpochRecords>(
            skipped is null ? [RunFolder.MetricsFile, RunFolder.PoliciesFile] : [RunFolder.MetricsFile, RunFolder.PoliciesFile, RunFolder.SkippedImagesFile],
            [StatePart.Of("model", model), StatePart.Of("optimizer", optimizer), .. method.StateParts],
            epoch => RunEpoch(epoch, run), e => e.Skipped is { } list ? [e.Metrics.ToJson(), e.Policies.ToJson(), list] : [e.Metrics.ToJson(), e.Policies.ToJson()]);
        var runner = new StageRunner<EpochRecords>(run.Path, identity, stage, writes: Writes);
        Checkpoint? checkpoint = runner.Resume().Checkpoint;

        var results = new List<EpochMetrics>();
        if (runner.EpochsDone >= config.Epochs) return results;
        if (method is IStagedMethod staged
            && !staged.Prepare(new StageContext(run.Path, data.Train.InMemory($"method {config.Method.Name}'s first stage"), normalizer, identity, cancel, line => StageProgress?.Invoke(this, line), checkpoint != null)))
            return results;
        using (board = Writes ? new TensorBoardLog(run.Path, (long)runner.EpochsDone * loader.BatchesPerEpoch + 1) : null)
            runner.Train(config.Epochs, cancel, e =>
            {
                if (Writes) LogEpoch(board!, e.Metrics, e.Policies);
                results.Add(e.Metrics);
                EpochCompleted?.Invoke(this, e.Metrics);
            });
        board = null;
        // The others read the folder after this (the last epoch's lines): rank 0 has written it by now.
        group?.Barrier();
        return results;
    }

    TensorBoardLog? board;

    /// <summary>An epoch's numbers in TensorBoard, at the global step that ends it.</summary>
    void LogEpoch(TensorBoardLog log, EpochMetrics m, PolicyRecord p)
    {
        long step = (long)m.Epoch * loader.BatchesPerEpoch;
        void Optional(string tag, double? value) { if (value is double v) log.Scalar(tag, v, step); }
        log.Scalar("train/loss", m.TrainLoss, step);
        log.Scalar("train/accuracy", m.TrainAccuracy, step);
        Optional("test/loss", m.TestLoss);
        Optional("test/accuracy", m.TestAccuracy);
        Optional("validation/loss", m.ValidationLoss);
        Optional("validation/accuracy", m.ValidationAccuracy);
        Optional("clean_train/accuracy", m.CleanTrainAccuracy);
        log.Scalar("learning_rate", m.LearningRate, step);
        log.Scalar("images_per_second", m.ImagesPerSecond, step);
        for (int i = 0; i < m.InstanceLosses.Length && m.InstanceLosses.Length > 1; i++)
            log.Scalar($"instances/loss_{i + 1}", m.InstanceLosses[i], step);
        // The method's own values: "controller_entropy" as controller/entropy, numbers by name as one tag each.
        foreach (var (name, value) in m.MethodMetrics ?? [])
        {
            string tag = MetricTag(name);
            if (value is MetricValue.Number n) log.Scalar(tag, n.Value, step);
            else if (value is MetricValue.Named named)
                foreach (var (key, v) in named.Values) log.Scalar($"{tag}/{key}", v, step);
        }
        if (p.Distribution is { } d)
        {
            log.Categories("controller/ops", d.Ops.Select(o => o.Value).ToArray(), step);
            log.Categories("controller/levels", d.Levels, step);
        }
        if (p.Policies is { Count: > 0 } applied && (m.Epoch == 1 || m.Epoch % PolicyImageEvery == 0 || m.Epoch == config.Epochs))
            log.Image("policies", PolicyGrid(applied, m.Epoch, out int height, out int width), height, width, step);
    }

    const int PolicyImageEvery = 10;

    /// <summary>A metric's TensorBoard tag: its name with the first '_' as a section ("controller_entropy" → "controller/entropy").</summary>
    static string MetricTag(string name) => name.IndexOf('_') is int i and > 0 ? $"{name[..i]}/{name[(i + 1)..]}" : name;

    /// <summary>A PNG of 8 test images, then one row per policy applied to them (the report's policy grid).</summary>
    byte[] PolicyGrid(IReadOnlyList<Policy> applied, int epoch, out int height, out int width)
    {
        using var scope = torch.NewDisposeScope();
        ImageDataset test = data.Test;
        long n = Math.Min(8, test.Count);
        using ImageDataset shown = test.Select(torch.arange(n, dtype: int64).mul(test.Count / n));
        Tensor images = BatchLoader.Decoded(shown, config.SkipBadImages);
        using var generator = new Generator((ulong)epoch);
        string[] labels = ["original", .. applied.Select((_, i) => $"policy {i + 1}")];
        return ImageGrid.EncodePng(PolicyAugment.Grid(images, applied, space, generator), (int)images.shape[0], labels, 2, out height, out width);
    }

    /// <summary>The model's and the method's state, serialised as the checkpoint holds them.</summary>
    byte[] StateBytes()
    {
        static byte[] Of(Action<Stream> save)
        {
            using var bytes = new MemoryStream();
            save(bytes);
            return bytes.ToArray(); // also after a writer closed it
        }
        return [.. Of(s => model.save(s)), .. method.StateParts.SelectMany(p => Of(p.Save))];
    }

    /// <summary>An epoch's lines: metrics, policies and, when bad images are skipped, the list of them.</summary>
    readonly record struct EpochRecords(EpochMetrics Metrics, PolicyRecord Policies, JsonObject? Skipped);

    /// <summary>
    /// The images skipped this epoch, every rank's (each met only the bad images of its own slices),
    /// as a line of <see cref="RunFolder.SkippedImagesFile"/>; null when bad images are not skipped.
    /// </summary>
    JsonObject? SkippedThisEpoch(int epoch)
    {
        if (skipped is null) return null;
        IReadOnlyList<SkippedImage> images = skipped.Take();
        if (group != null)
        {
            string mine = new JsonArray(images.Select(i => (JsonNode)i.ToJson()).ToArray()).ToJsonString();
            images = SkippedImage.Ordered(group.AllGatherText(mine)
                .SelectMany(text => JsonNode.Parse(text)!.AsArray().Select(i => SkippedImage.FromJson(i!.AsObject(), "a rank's skipped images"))));
        }
        return new JsonObject { ["epoch"] = epoch, ["images"] = new JsonArray(images.Select(i => (JsonNode)i.ToJson()).ToArray()) };
    }

    EpochRecords RunEpoch(int epoch, RunFolder run)
    {
        var clock = Stopwatch.StartNew();
        using var streams = new EpochStreams(config.Seed, epoch);
        using var dropout = new Generator((ulong)(streams.SeedFor(EpochStreams.DropoutStream) + (group?.Rank ?? 0)), device);
        using var mixing = new Generator((ulong)streams.SeedFor(EpochStreams.MixStream));
        if (model is IStochasticModel stochastic) stochastic.Noise.Generator = dropout;
        double progress = epoch - 1;
        var methodClock = Stopwatch.StartNew();
        method.BeginEpoch(new EpochContext(epoch, progress, streams, Score, device));
        double methodSeconds = methodClock.Elapsed.TotalSeconds, augmentSeconds = 0;
        reduceSeconds = 0;

        TrainMode();
        int steps = loader.BatchesPerEpoch;
        Tensor? instanceLossSum = null;
        using var correct = torch.zeros(1, dtype: int64, device: device);
        long seen = 0;
        int step = 0;
        try
        {
            foreach ((Tensor images, Tensor labels, Tensor? groups, Tensor? counterparts) in loader.Batches(epoch))
            {
                using var scope = torch.NewDisposeScope();
                double at = progress + (double)step / steps;
                double lr = learningRate.At(at);
                foreach (var group in optimizer.ParamGroups) group.LearningRate = lr;

                var augmentClock = Stopwatch.StartNew();
                var context = new StepContext(step, steps, at, groups, counterparts);
                TrainingBatch batch = method.BuildBatch(images, labels, context);
                Tensor inputs = normalizer.Apply(batch.Images, channelsLast);
                Tensor targets = batch.Targets;
                if (config.Mix is { } mix)
                    (inputs, targets) = mix.Apply(inputs, targets, data.Train.Classes.Count, batch.Instances, mixing);
                if (config.Profile) Synchronize();
                augmentSeconds += augmentClock.Elapsed.TotalSeconds;

                long rows = targets.shape[0];
                Tensor? mine = group is null ? null : RowsOf(group, batch.Instances, rows);
                if (mine is not null) (inputs, targets) = (inputs.index_select(0, mine), targets.index_select(0, mine));
                Tensor logits = Forward(inputs);
                Tensor perSample = Losses.CrossEntropy(logits, targets);
                // Distributed: each rank's share of the mean over the whole batch, so that the summed gradients are the whole batch's.
                Tensor loss = objective?.Objective(batch, logits, perSample, context) ?? (mine is null ? perSample.mean() : perSample.sum().div(rows));
                optimizer.zero_grad();
                loss.backward();
                Tensor rightNow = logits.argmax(1).eq(targets.dim() == 2 ? targets.argmax(1) : targets).sum();
                Tensor detached = perSample.detach();
                if (mine is not null) (detached, rightNow, loss) = AllReduceStep(group!, mine, rows, detached, rightNow);
                optimizer.step();

                using (torch.no_grad())
                {
                    instanceLossSum ??= torch.zeros(batch.Instances, device: device).DetachFromDisposeScope();
                    if (instanceLossSum.shape[0] != batch.Instances)
                        throw new InvalidOperationException($"method {config.Method.Name} changed its instances within epoch {epoch}: {instanceLossSum.shape[0]}, then {batch.Instances}");
                    instanceLossSum.add_(batch.Instances > 1 ? detached.view(batch.Instances, -1).mean([1L]) : detached.mean().unsqueeze(0));
                    correct.add_(rightNow);
                    method.Observe(batch, detached);
                }
                seen += rows;
                step++;
                if (step % 10 == 0 || step == steps)
                {
                    double value = HostSync.Item<float>(loss);
                    if (!double.IsFinite(value)) throw Diverged(epoch, step, value, run);
                    board?.Scalar("train/step_loss", value, (long)(epoch - 1) * steps + step);
                    StepCompleted?.Invoke(this, new StepProgress(epoch, config.Epochs, step, steps, value, seen, clock.Elapsed.TotalSeconds));
                }
                images.Dispose();
                labels.Dispose();
                groups?.Dispose();
                counterparts?.Dispose();
            }
            double trainSeconds = clock.Elapsed.TotalSeconds;

            double[] instanceLosses = instanceLossSum!.div(Math.Max(steps, 1)).cpu().data<float>().Select(v => (double)v).ToArray();
            double trainLoss = instanceLosses.Average();
            if (!double.IsFinite(trainLoss)) throw Diverged(epoch, step, trainLoss, run);
            methodClock.Restart();
            MethodEpochRecord record = method.EndEpoch(new EpochLosses(instanceLosses));
            methodSeconds += methodClock.Elapsed.TotalSeconds;

            bool last = epoch == config.Epochs, evaluated = last || epoch % config.EvalEvery == 0;
            (double Loss, double Accuracy, IReadOnlyList<KeyValuePair<string, double>>? Groups)? test = evaluated ? Evaluate(data.Test) : null;
            (double Loss, double Accuracy, IReadOnlyList<KeyValuePair<string, double>>? Groups)? valid = evaluated && validation != null ? Evaluate(validation) : null;
            double? cleanTrain = last ? Evaluate(data.Train).Accuracy : null;
            JsonObject? skippedImages = SkippedThisEpoch(epoch);
            double seconds = clock.Elapsed.TotalSeconds;
            var metrics = new EpochMetrics(epoch, trainLoss, correct.item<long>() / (double)Math.Max(seen, 1), test?.Loss, test?.Accuracy,
                learningRate.At(progress), instanceLosses.Length, instanceLosses, seconds,
                seen / Math.Max(trainSeconds, 1e-9), augmentSeconds, methodSeconds, valid?.Loss, valid?.Accuracy, cleanTrain,
                group is null ? null : reduceSeconds, test?.Groups, record.Metrics.Count > 0 ? record.Metrics : null,
                record.Seconds.Count > 0 ? record.Seconds : null, skippedImages?["images"]!.AsArray().Count);
            // The ranks must still agree (model, controller, every metric but the timings): a drift would otherwise go unseen until the results are wrong.
            if (group != null)
            {
                var shared = metrics.ToJson();
                foreach (string timing in EpochMetrics.TimingFields) shared.Remove(timing);
                group.EnsureSame($"the model, the method's state and the metrics of epoch {epoch}", [.. StateBytes(), .. Encoding.UTF8.GetBytes(shared.ToJsonString())]);
            }
            return new EpochRecords(metrics, PolicyRecord.Of(epoch, config.Method.Name, record.Windows, instanceLosses, record.Distribution), skippedImages);
        }
        finally
        {
            instanceLossSum?.Dispose();
            if (model is IStochasticModel noisy) noisy.Noise.Generator = null;
        }
    }

    /// <summary>
    /// The rows of an N·M batch this rank trains: the instances r, r+K, … when M ≥ K, else the r-th of K
    /// slices of every instance's N images.
    /// </summary>
    Tensor RowsOf(ProcessGroup ranks, int instances, long rows)
    {
        long n = rows / instances;
        Tensor row = torch.arange(rows, dtype: int64, device: device);
        Tensor owner = instances >= ranks.Size ? row.div(n, RoundingMode.floor).remainder(ranks.Size) : row.remainder(n).mul(ranks.Size).div(n, RoundingMode.floor);
        Tensor mine = row.masked_select(owner.eq(ranks.Rank));
        if (mine.shape[0] == 0)
            throw new DistributedException($"rank {ranks.Rank} has no rows of a batch of {rows} ({instances} instances of {n} images) over {ranks.Size} ranks: use fewer ranks or a larger batch");
        return mine;
    }

    /// <summary>Seconds of this epoch spent in all-reduces (waiting for the slowest rank included).</summary>
    double reduceSeconds;

    /// <summary>
    /// One all-reduce of everything a step must agree on: the gradients (summed), the float buffers
    /// (batch-norm statistics, averaged), this rank's per-sample losses in their rows of the whole
    /// batch, and the count of right predictions. Returns the whole batch's losses, count and mean loss.
    /// </summary>
    (Tensor Losses, Tensor Right, Tensor Mean) AllReduceStep(ProcessGroup ranks, Tensor mine, long rows, Tensor losses, Tensor right)
    {
        using var noGrad = torch.no_grad();
        var parameters = model.parameters().ToList();
        var buffers = model.buffers().Where(b => b.is_floating_point()).ToList();
        var parts = new List<Tensor>();
        foreach (var p in parameters) parts.Add(p.grad is { } g ? g.to_type(ScalarType.Float32).flatten() : torch.zeros(p.numel(), device: device));
        foreach (var b in buffers) parts.Add(b.to_type(ScalarType.Float32).flatten().div(ranks.Size));
        parts.Add(torch.zeros(rows, device: device).index_copy_(0, mine, losses.to_type(ScalarType.Float32)));
        parts.Add(right.to_type(ScalarType.Float32).view(1));
        Tensor flat = torch.cat(parts).contiguous();
        var clock = Stopwatch.StartNew();
        ranks.AllReduceSum(flat);
        reduceSeconds += clock.Elapsed.TotalSeconds;
        long at = 0;
        Tensor Next(long count) { Tensor slice = flat.narrow(0, at, count); at += count; return slice; }
        foreach (var p in parameters) { Tensor s = Next(p.numel()); p.grad?.copy_(s.view(p.shape)); }
        foreach (var b in buffers) b.copy_(Next(b.numel()).view(b.shape));
        Tensor all = Next(rows);
        return (all, Next(1).round().to_type(ScalarType.Int64).squeeze(), all.mean());
    }

    /// <summary>Training mode; batch-norm layers stay in evaluation mode when frozen.</summary>
    void TrainMode()
    {
        model.train();
        if (config.FrozenBatchNorm)
            foreach (var layer in model.modules())
                if (layer is TorchSharp.Modules.BatchNorm1d or TorchSharp.Modules.BatchNorm2d) layer.eval();
    }

    /// <summary>The model's logits in float32; the forward pass runs in the run's precision (bf16: autocast).</summary>
    Tensor Forward(Tensor inputs) => Forward(model, inputs);

    Tensor Forward(Module<Tensor, Tensor> network, Tensor inputs)
    {
        using var region = Autocast.For(precision, device.type);
        return network.forward(inputs).to_type(ScalarType.Float32);
    }

    /// <summary>Per-sample losses of uint8 images under another module of the target's architecture (a teacher), in evaluation mode, without gradients.</summary>
    Tensor LossesOf(Module<Tensor, Tensor> network, Tensor images, Tensor targets)
    {
        if (ReferenceEquals(network, model)) return Score(images, targets);
        network.eval();
        using var noGrad = torch.no_grad();
        return Losses.CrossEntropy(Forward(network, normalizer.Apply(images, channelsLast)), targets);
    }


    /// <summary>The model's per-sample losses of uint8 images, without gradients, in evaluation mode (a method's scorer).</summary>
    Tensor Score(Tensor images, Tensor targets)
    {
        model.eval();
        try
        {
            using var noGrad = torch.no_grad();
            return Losses.CrossEntropy(Forward(normalizer.Apply(images, channelsLast)), targets);
        }
        finally
        {
            TrainMode();
        }
    }

    void Synchronize()
    {
        if (device.type == DeviceType.CUDA) torch.cuda.synchronize();
    }

    TrainingDivergedException Diverged(int epoch, int step, double value, RunFolder run)
    {
        Checkpoint? last = run.LatestCheckpoint();
        string kept = last == null ? "no checkpoint had been written yet" : $"the last good checkpoint (epoch {last.Epoch}) is kept in {last.Folder}";
        return new TrainingDivergedException(
            $"the training loss became {value} at epoch {epoch}, step {step}; the run stopped and {kept}. Lower the learning rate ({learningRate.Description}) or check the data.");
    }

    /// <summary>Mean loss and accuracy of the model on un-augmented images, in evaluation mode.</summary>
    (double Loss, double Accuracy, IReadOnlyList<KeyValuePair<string, double>>? Groups) Evaluate(ImageDataset set)
    {
        model.eval();
        try
        {
            Evaluation Of(ImageDataset images) => Evaluation.Of(Forward, set.Classes.Count, normalizer, channelsLast, images, config.EvalBatchSize, device, skipped);
            List<KeyValuePair<string, double>>? Named(double[]? accuracies) =>
                accuracies is null ? null : set.GroupNames!.Select((name, g) => KeyValuePair.Create(name.ToString(), accuracies[g])).ToList();
            if (group is null)
            {
                Evaluation e = Of(set);
                return (e.Loss, e.Accuracy, Named(e.GroupAccuracy));
            }
            // Each rank evaluates its slice; the sums (loss, right, images, then right and images per group) are reduced.
            int groups = set.GroupNames?.Count ?? 0;
            var sums = new double[3 + 2 * groups];
            long start = set.Count * group.Rank / group.Size, end = set.Count * (group.Rank + 1) / group.Size;
            if (end > start)
            {
                using ImageDataset shard = set.Slice(start, end - start);
                Evaluation e = Of(shard);
                (sums[0], sums[1], sums[2]) = (e.Loss * e.Images, e.Accuracy * e.Images, e.Images);
                for (int g = 0; g < groups; g++) (sums[3 + g], sums[3 + groups + g]) = (e.GroupCorrect![g], e.GroupImages![g]);
            }
            group.AllReduceSum(sums);
            return (sums[0] / sums[2], sums[1] / sums[2],
                Named(groups == 0 ? null : Enumerable.Range(0, groups).Select(g => sums[3 + g] / Math.Max(sums[3 + groups + g], 1)).ToArray()));
        }
        finally { TrainMode(); }
    }

    public void Dispose()
    {
        method.Dispose();
        model.Dispose();
        optimizer.Dispose();
        data.Dispose();
        validation?.Dispose();
    }
}

/// <summary>The training loss.</summary>
public static class Losses
{
    /// <summary>Per-sample cross-entropy of logits [B, classes] against int64 [B] labels or float32 [B, classes] soft targets.</summary>
    public static Tensor CrossEntropy(Tensor logits, Tensor targets) =>
        targets.dim() == 2
            ? functional.log_softmax(logits, 1).mul(targets).sum(1).neg()
            : functional.cross_entropy(logits, targets, reduction: Reduction.None);
}
