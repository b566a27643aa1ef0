using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;
using AdvAA.Core.Methods;

namespace AdvAA.Core.Training;

/// <summary>
/// One epoch's results: a line of metrics.jsonl. Test and validation numbers are null on epochs
/// that are not evaluated (see <see cref="TrainConfig.EvalEvery"/>); the accuracy on the
/// un-augmented training images (the overfitting gap) is there on the last epoch. What the method
/// records under names of its own (<see cref="MethodMetrics"/>) follows the fixed fields.
/// </summary>
public sealed record EpochMetrics(
    int Epoch,
    double TrainLoss,
    double TrainAccuracy,
    double? TestLoss,
    double? TestAccuracy,
    double LearningRate,
    int Instances,
    double[] InstanceLosses,
    double Seconds,
    double ImagesPerSecond,
    double AugmentSeconds,
    double ControllerSeconds,
    double? ValidationLoss = null,
    double? ValidationAccuracy = null,
    double? CleanTrainAccuracy = null,
    double? ReduceSeconds = null,
    IReadOnlyList<KeyValuePair<string, double>>? GroupAccuracy = null,
    IReadOnlyList<KeyValuePair<string, MetricValue>>? MethodMetrics = null,
    IReadOnlyList<KeyValuePair<string, double>>? MethodSeconds = null,
    int? SkippedImages = null)
{
    /// <summary>The method's number of this name, or null when it recorded none.</summary>
    public double? Number(string name) => Method(name) is MetricValue.Number n ? n.Value : null;

    /// <summary>The method's numbers by name under this name, or null when it recorded none.</summary>
    public IReadOnlyList<KeyValuePair<string, double>>? Named(string name) => Method(name) is MetricValue.Named n ? n.Values : null;

    MetricValue? Method(string name) => MethodMetrics?.FirstOrDefault(m => m.Key == name).Value;

    /// <summary>The worst group's test accuracy (robust accuracy) for data with subgroups, else null.</summary>
    public double? RobustAccuracy => GroupAccuracy is { Count: > 0 } g ? g.Min(kv => kv.Value) : null;

    /// <summary>Per class, its best group's test accuracy minus its worst's (the subgroup gap), from the "class/subgroup" names.</summary>
    public IReadOnlyList<KeyValuePair<string, double>>? SubgroupGap => GroupAccuracy is { Count: > 0 } g
        ? g.GroupBy(kv => kv.Key[..Math.Max(kv.Key.LastIndexOf('/'), 0)])
            .Select(c => KeyValuePair.Create(c.Key, c.Max(kv => kv.Value) - c.Min(kv => kv.Value))).ToList()
        : null;

    /// <summary>Fields that measure time, which differ between otherwise identical runs.</summary>
    public static readonly string[] TimingFields = ["seconds", "images_per_second", "augment_seconds", "controller_seconds", "reduce_seconds", "method_seconds"];

    public JsonObject ToJson() => WithOptionalFields(new()
    {
        ["epoch"] = Epoch,
        ["train_loss"] = JsonOptions.Number(TrainLoss),
        ["train_accuracy"] = TrainAccuracy,
        ["test_loss"] = TestLoss is double tl ? JsonOptions.Number(tl) : null,
        ["test_accuracy"] = TestAccuracy,
        ["val_loss"] = ValidationLoss is double vl ? JsonOptions.Number(vl) : null,
        ["val_accuracy"] = ValidationAccuracy,
        ["clean_train_accuracy"] = CleanTrainAccuracy,
        ["lr"] = LearningRate,
        ["instances"] = Instances,
        ["instance_losses"] = new JsonArray(InstanceLosses.Select(JsonOptions.Number).ToArray()),
        ["seconds"] = Seconds,
        ["images_per_second"] = ImagesPerSecond,
        ["augment_seconds"] = AugmentSeconds,
        ["controller_seconds"] = ControllerSeconds,
    });

    /// <summary>A metrics.jsonl line; <paramref name="where"/> (file:line) names it in errors.</summary>
    public static EpochMetrics FromJson(JsonObject json, string where) => new(
        RecordJson.Value<int>(json, "epoch", where),
        RecordJson.Number(json, "train_loss", where), RecordJson.Number(json, "train_accuracy", where),
        Optional(json, "test_loss", where), Optional(json, "test_accuracy", where),
        RecordJson.Number(json, "lr", where), RecordJson.Value<int>(json, "instances", where),
        RecordJson.Numbers(json, "instance_losses", where),
        RecordJson.Number(json, "seconds", where), RecordJson.Number(json, "images_per_second", where),
        RecordJson.Number(json, "augment_seconds", where), RecordJson.Number(json, "controller_seconds", where),
        Optional(json, "val_loss", where), Optional(json, "val_accuracy", where), Optional(json, "clean_train_accuracy", where),
        Optional(json, "reduce_seconds", where),
        NamedNumbers(json, "group_accuracy", where),
        json.Where(p => !FixedFields.Contains(p.Key) && p.Value is not null)
            .Select(p => KeyValuePair.Create(p.Key, MetricValue.FromJson(p.Value, p.Key, where)!)).ToList() is { Count: > 0 } method ? method : null,
        NamedNumbers(json, "method_seconds", where),
        RecordJson.Optional<int>(json, "skipped_images", where));

    /// <summary>The fields every method's lines share (or the trainer adds); any other field is the method's own.</summary>
    static readonly HashSet<string> FixedFields =
    [
        "epoch", "train_loss", "train_accuracy", "test_loss", "test_accuracy", "val_loss", "val_accuracy", "clean_train_accuracy", "lr", "instances",
        "instance_losses", "seconds", "images_per_second", "augment_seconds", "controller_seconds", "reduce_seconds",
        "group_accuracy", "robust_accuracy", "subgroup_gap", "method_seconds", "skipped_images",
    ];

    static List<KeyValuePair<string, double>>? NamedNumbers(JsonObject json, string name, string where) =>
        json[name] is JsonObject named ? named.Select(g => KeyValuePair.Create(g.Key, RecordJson.Number(named, g.Key, $"{where}: {name}"))).ToList() : null;

    static JsonObject Named(IEnumerable<KeyValuePair<string, double>> values) =>
        new(values.Select(v => KeyValuePair.Create(v.Key, (JsonNode?)JsonOptions.Number(v.Value))));

    /// <summary>The fields only some runs have, added where they do (older lines and other runs stay as they were).</summary>
    JsonObject WithOptionalFields(JsonObject json)
    {
        // Runs that skip bad images (--skip-bad-images): how many this epoch (listed in skipped-images.jsonl).
        if (SkippedImages is int skipped) json["skipped_images"] = skipped;
        // Distributed runs: the all-reduces' time.
        if (ReduceSeconds is double reduce) json["reduce_seconds"] = reduce;
        // Data with subgroups: each (class/subgroup) group's test accuracy, and the worst of them.
        if (GroupAccuracy is { Count: > 0 } groups)
        {
            json["group_accuracy"] = Named(groups);
            json["robust_accuracy"] = JsonOptions.Number(RobustAccuracy!.Value);
            json["subgroup_gap"] = Named(SubgroupGap!);
        }
        // Where the method's own work took time (an adversarial controller's updates, its teacher), by part.
        if (MethodSeconds is { Count: > 0 } parts) json["method_seconds"] = Named(parts);
        // The method's own values, by their names.
        foreach (var (name, value) in MethodMetrics ?? []) json[name] = value.ToJson();
        return json;
    }

    static double? Optional(JsonObject json, string name, string where) =>
        json[name] is null ? null : RecordJson.Number(json, name, where);
}

/// <summary>Progress within an epoch, for progress displays.</summary>
/// <param name="Loss">The training loss of this step's batch.</param>
/// <param name="Images">Images trained on so far in the epoch (N·M per step).</param>
/// <param name="Seconds">Seconds since the epoch's first step began.</param>
public readonly record struct StepProgress(int Epoch, int Epochs, int Step, int Steps, double Loss, long Images, double Seconds);
