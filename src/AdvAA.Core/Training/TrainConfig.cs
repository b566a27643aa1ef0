using System;
using System.IO;
using System.Runtime.CompilerServices;
using System.Text.Json.Nodes;
using AdvAA.Core.Augment;
using AdvAA.Core.Backend;
using AdvAA.Core.Methods;
using AdvAA.Core.Models;

namespace AdvAA.Core.Training;

/// <summary>
/// Everything the trainer needs, resolved: the Core side of an experiment. The method and its
/// parameters are one <see cref="MethodSpec"/> from <see cref="MethodRegistry"/>; the rest is the
/// trainer's (model, data, optimiser, epochs). The F# DSL builds it from a script, <c>advaa
/// train</c> from flags.
/// </summary>
public sealed record TrainConfig
{
    public MethodSpec Method { get; init; } = MethodRegistry.Defaults("adversarial");
    public string Model { get; init; } = "small";
    public double Dropout { get; init; }
    /// <summary>A PyTorch state dict (.pt) of the same network to start from instead of a fresh initialisation; null = none.</summary>
    public string? Init { get; init; }
    /// <summary>Batch-norm layers use and keep their running statistics while the target trains (fine-tuning from <see cref="Init"/>; data-parallel runs equal to one process).</summary>
    public bool FrozenBatchNorm { get; init; }
    /// <summary>A data folder or archive (see DataSources.Load); null = the embedded sample.</summary>
    public string? Data { get; init; }
    /// <summary>Train on a seeded class-balanced subset of this many training / test images; null = all.</summary>
    public long? TrainLimit { get; init; }
    public long? TestLimit { get; init; }
    /// <summary>Training images held out for validation (class-balanced, seeded, never trained on); null = none.</summary>
    public long? ValidationSize { get; init; }
    /// <summary>
    /// S: the side of the crops taken from data whose images vary in size or are larger than
    /// 64×64 (streamed); null = the model's (224 for the ImageNet networks, else 32). Small data of
    /// one size is used at its own size.
    /// </summary>
    public int? ImageSize { get; init; }
    /// <summary>Threads decoding streamed data's batches; null = one per core. The batches do not depend on it.</summary>
    public int? Workers { get; init; }
    /// <summary>
    /// Streamed data: a bad image (corrupt, truncated, missing, over the pixel limit) is left out of
    /// its batch and listed in the run folder's skipped-images.jsonl rather than stopping the run.
    /// </summary>
    public bool SkipBadImages { get; init; }
    /// <summary>Evaluate on the test (and validation) images every this many epochs, and after the last one.</summary>
    public int EvalEvery { get; init; } = 1;

    public int Epochs { get; init; } = 200;
    /// <summary>N: images per instance per step (the batch before a method's copies).</summary>
    public int BatchSize { get; init; } = 128;
    public long Seed { get; init; }
    public string Device { get; init; } = "auto";

    // Target optimiser: SGD, momentum, Nesterov, weight decay; the learning rate per (fractional) epoch.
    /// <summary>The learning rate per (fractional) epoch; null: the paper's (<see cref="PaperLearningRate"/> from 0.1), which <see cref="Validate"/> fills in.</summary>
    public EpochSchedule? LearningRate { get; init; }

    /// <summary>
    /// The paper's learning rate from <paramref name="initial"/>: for wrn-28-10 a step ×0.2 at 30%,
    /// 60% and 80% of the epochs (60/120/160 of 200); for the other models a cosine to 0.
    /// </summary>
    public static EpochSchedule PaperLearningRate(string model, int epochs, double initial = 0.1)
    {
        double length = Math.Max(epochs, 1);
        return model.Trim().ToLowerInvariant() == "wrn-28-10"
            ? EpochSchedule.Step(initial, 0.2, [0.3 * length, 0.6 * length, 0.8 * length])
            : EpochSchedule.Cosine(initial, 0.0, length);
    }

    /// <summary>The learning rate the run trains with: <see cref="LearningRate"/>, else the paper's.</summary>
    EpochSchedule Rate => LearningRate ?? PaperLearningRate(Model, Epochs);
    public double Momentum { get; init; } = 0.9;
    public bool Nesterov { get; init; } = true;
    public double WeightDecay { get; init; } = 5e-4;

    /// <summary>The ops, ranges and levels of methods that draw from a search space (sized to the data's images in training).</summary>
    public SearchSpace Space { get; init; } = SearchSpace.Default;

    /// <summary>Label mixing after the method (mixup, CutMix), on the normalised inputs; null = none.</summary>
    public LabelMixing? Mix { get; init; }

    /// <summary>auto (bf16 where the device does it fast, else fp32), fp32 or bf16 (autocast; weights and optimiser stay fp32).</summary>
    public string Precision { get; init; } = "auto";
    /// <summary>The layout of the target's input batches: channels-last (faster convolutions; the default) or nchw.</summary>
    public string MemoryFormat { get; init; } = MemoryFormats.ChannelsLast;

    /// <summary>Batch size for evaluation on the test set.</summary>
    public int EvalBatchSize { get; init; } = 500;
    /// <summary>Synchronise the device around augmentation to time it exactly (slower on GPUs).</summary>
    public bool Profile { get; init; }
    /// <summary>How the run was started (the command and its arguments), recorded in config.json so that it can be resumed the same way.</summary>
    public RunOrigin? Origin { get; init; }

    /// <summary>A copy with <see cref="Origin"/> set (for callers that cannot use a <c>with</c> expression).</summary>
    public TrainConfig WithOrigin(RunOrigin origin) => this with { Origin = origin };

    /// <summary>The values a learning-rate schedule may take: finite and at least 0.</summary>
    public const double MinLearningRate = 0, MaxLearningRate = double.PositiveInfinity;

    /// <summary>A copy with label mixing (for callers that cannot use a <c>with</c> expression).</summary>
    public TrainConfig WithMix(LabelMixing? mix) => this with { Mix = mix };

    /// <summary>A copy with other image limits (for callers that cannot use a <c>with</c> expression).</summary>
    public TrainConfig WithLimits(long? train, long? test) => this with { TrainLimit = train, TestLimit = test };

    /// <summary>A copy with another crop size and decode workers for streamed data (for callers that cannot use a <c>with</c> expression).</summary>
    public TrainConfig WithStreaming(int? imageSize, int? workers, bool skipBadImages = false) =>
        this with { ImageSize = imageSize, Workers = workers, SkipBadImages = skipBadImages };

    /// <summary>A copy with another method spec (for callers that cannot use a <c>with</c> expression).</summary>
    public TrainConfig WithMethod(MethodSpec method) => this with { Method = method };

    /// <summary>
    /// Checks every setting; the first bad one is an error naming it and its value, with its path
    /// (<see cref="ConfigException.Setting"/>). The only place an experiment is validated: the DSL
    /// and the CLI build a config and call this.
    /// </summary>
    public TrainConfig Validate()
    {
        if (validated.TryGetValue(this, out _)) return this;
        try
        {
            ModelRegistry.Check(Model, Dropout);
        }
        catch (ArgumentException e)
        {
            throw new ConfigException(UserMessages.Of(e), e.ParamName == "dropout" ? "dropout" : "model");
        }
        Require(Epochs >= 1, "epochs", "epochs", Epochs, "at least 1");
        Require(BatchSize >= 1, "batch_size", "batch size", BatchSize, "at least 1");
        Require(Dropout is >= 0 and < 1, "dropout", "dropout", Dropout, "in [0, 1)");
        Require(Data is null || Data.Trim().Length > 0, "data", "data", "\"\"", "a folder or archive (or none: the embedded sample)");
        Require(TrainLimit is null or >= 1, "train_limit", "train limit", TrainLimit, "at least 1");
        Require(TestLimit is null or >= 1, "test_limit", "test limit", TestLimit, "at least 1");
        Require(ValidationSize is null or >= 1, "validation_size", "validation size", ValidationSize, "at least 1");
        Require(ImageSize is null or >= 8 and <= 4096, "image_size", "image size", ImageSize, "from 8 to 4096 pixels");
        Require(Workers is null or >= 1 and <= 256, "workers", "workers", Workers, "from 1 to 256");
        Require(EvalEvery >= 1, "eval_every", "evaluation interval", EvalEvery, "at least 1 epoch");
        Require(Momentum is >= 0 and < 1, "momentum", "momentum", Momentum, "in [0, 1)");
        Require(WeightDecay >= 0, "weight_decay", "weight decay", WeightDecay, "at least 0");
        Require(EvalBatchSize >= 1, "eval_batch_size", "evaluation batch size", EvalBatchSize, "at least 1");
        try { TorchBackend.ParseDevice(Device); }
        catch (BackendException) { throw new ConfigException($"device = {Device}: expected auto, cpu or cuda", "device"); }
        try { Precisions.Parse(Precision); }
        catch (BackendException e) { throw new ConfigException(e.Message, "precision"); }
        Require(MemoryFormat is MemoryFormats.ChannelsLast or MemoryFormats.Nchw, "memory_format", "memory format", MemoryFormat, $"{MemoryFormats.ChannelsLast} or {MemoryFormats.Nchw}");
        try { Mix?.Checked(); }
        catch (AugmentException e) { throw new ConfigException(e.Message, "mix"); }
        if (Rate.FirstInvalid(Epochs, lr => lr >= MinLearningRate && lr <= MaxLearningRate) is var (epoch, rate))
            throw new ConfigException($"learning rate = {Rate.Description}: {rate} at epoch {epoch}, expected finite and at least 0", "learning_rate");
        try
        {
            var ready = this with { Method = Method.Validate(Epochs, Space), LearningRate = Rate };
            validated.AddOrUpdate(ready, ready);
            return ready;
        }
        catch (AugmentException e)
        {
            throw new ConfigException(e.Message, "method");
        }
    }

    /// <summary>The configs <see cref="Validate"/> returned: validating one again (the Trainer after the DSL) returns it at once; a changed copy is another object and is checked.</summary>
    static readonly ConditionalWeakTable<TrainConfig, TrainConfig> validated = new();

    static void Require(bool ok, string setting, string name, object? value, string expected)
    {
        if (!ok) throw new ConfigException($"{name} = {value ?? "null"}: expected {expected}", setting);
    }

    /// <summary>
    /// The experiment as a run records it (config.json's "experiment"): this config with the search
    /// space the run trains with (sized to its images), the precision it chose, the crop size of
    /// streamed data (null for data used at its own size), and the data and initial weights as absolute paths.
    /// </summary>
    public TrainConfig Record(SearchSpace sizedSpace, Precision precision, int? imageSize) => this with
    {
        ImageSize = imageSize,
        Space = sizedSpace,
        Precision = Precisions.Name(precision),
        Data = Data is null ? null : Path.GetFullPath(Data),
        Init = Init is null ? null : Path.GetFullPath(Init),
    };

    /// <summary>The experiment's settings by their JSON names (schedules by description); <see cref="Origin"/> and <see cref="Profile"/> are how a run is started and watched, not what it trains, and are not part of it.</summary>
    public JsonObject ToJson() => new()
    {
        ["method"] = Method.ToJson(),
        ["model"] = Model,
        ["dropout"] = Dropout,
        ["data"] = Data,  // null: the embedded sample
        ["train_limit"] = TrainLimit,
        ["test_limit"] = TestLimit,
        ["epochs"] = Epochs,
        ["batch_size"] = BatchSize,
        ["seed"] = Seed,
        ["device"] = Device,
        ["learning_rate"] = Rate.Description,
        ["momentum"] = Momentum,
        ["nesterov"] = Nesterov,
        ["weight_decay"] = WeightDecay,
        ["search_space"] = Space.ToJson(),
        ["eval_batch_size"] = EvalBatchSize,
        ["precision"] = Precision,
        ["memory_format"] = MemoryFormat,
        ["validation_size"] = ValidationSize,
        ["image_size"] = ImageSize,  // null: data used at its own size
        ["workers"] = Workers,
        ["eval_every"] = EvalEvery,
        ["mix"] = Mix?.ToJson(),
        ["init"] = Init,  // null: a fresh initialisation
        ["frozen_batch_norm"] = FrozenBatchNorm ? true : null,  // absent: batch norm trains (runs before it was recorded)
        ["skip_bad_images"] = SkipBadImages ? true : null,  // absent: a bad image stops the run
    };

    /// <summary>An experiment as <see cref="ToJson"/> wrote it; schedules other than constants come back by description only.</summary>
    public static TrainConfig FromJson(JsonObject json, string where) => new()
    {
        Method = MethodRegistry.FromJson(RecordJson.Object(json, "method", where), $"{where}: method"),
        Model = RecordJson.Value<string>(json, "model", where),
        Dropout = RecordJson.Number(json, "dropout", where),
        Data = RecordJson.OptionalText(json, "data", where),
        TrainLimit = RecordJson.Optional<long>(json, "train_limit", where),
        TestLimit = RecordJson.Optional<long>(json, "test_limit", where),
        Epochs = RecordJson.Value<int>(json, "epochs", where),
        BatchSize = RecordJson.Value<int>(json, "batch_size", where),
        Seed = RecordJson.Value<long>(json, "seed", where),
        Device = RecordJson.Value<string>(json, "device", where),
        LearningRate = EpochSchedule.Recorded(RecordJson.Value<string>(json, "learning_rate", where)),
        Momentum = RecordJson.Number(json, "momentum", where),
        Nesterov = RecordJson.Value<bool>(json, "nesterov", where),
        WeightDecay = RecordJson.Number(json, "weight_decay", where),
        Space = SearchSpace.FromJson(RecordJson.Object(json, "search_space", where), $"{where}: search_space"),
        EvalBatchSize = RecordJson.Value<int>(json, "eval_batch_size", where),
        Precision = RecordJson.Value<string>(json, "precision", where),
        MemoryFormat = RecordJson.Value<string>(json, "memory_format", where),
        ValidationSize = RecordJson.Optional<long>(json, "validation_size", where),
        ImageSize = RecordJson.Optional<int>(json, "image_size", where),
        Workers = RecordJson.Optional<int>(json, "workers", where),
        EvalEvery = RecordJson.Value<int>(json, "eval_every", where),
        Mix = json["mix"] is JsonObject mix ? LabelMixing.FromJson(mix, $"{where}: mix") : null,
        Init = RecordJson.OptionalText(json, "init", where),
        FrozenBatchNorm = RecordJson.Optional<bool>(json, "frozen_batch_norm", where) ?? false,
        SkipBadImages = RecordJson.Optional<bool>(json, "skip_bad_images", where) ?? false,
    };

    /// <summary>
    /// What a resumed run (and a resumed study's run) must share with the one that started: the
    /// method with all its parameters, the search space where the method uses one, the model, the
    /// seed, the batch, the subsets, label mixing, precision and layout. The rest (epochs, the
    /// learning rate, the device, the data's path, ...) may change; a run records each change.
    /// </summary>
    public JsonObject Identity() => new()
    {
        ["method"] = Method.Identity(),
        ["search_space"] = Method.UsesSearchSpace ? Space.ToJson() : null,
        ["model"] = Model,
        ["dropout"] = Dropout,
        ["seed"] = Seed,
        ["batch_size"] = BatchSize,
        ["train_limit"] = TrainLimit,
        ["test_limit"] = TestLimit,
        ["validation_size"] = ValidationSize,
        ["image_size"] = ImageSize,
        ["mix"] = Mix?.ToJson(),
        ["precision"] = Precision,
        ["memory_format"] = MemoryFormat,
    };
}

/// <summary>The layouts of input batches.</summary>
public static class MemoryFormats
{
    public const string ChannelsLast = "channels-last", Nchw = "nchw";
}
