using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text.Json.Nodes;
using AdvAA.Core.Augment;
using AdvAA.Core.Backend;
using AdvAA.Core.Methods;

namespace AdvAA.Core.Training;

/// <summary>
/// The data a run trained on, as config.json records it: where it was read from (an absolute path),
/// its format, sizes, classes, statistics and a content hash that a resumed run must match.
/// </summary>
public sealed record DataRecord(string Format, string Source, long TrainImages, long TestImages, int[] ImageShape,
    string[] Classes, double[] Mean, double[] Std, string Content)
{
    public JsonObject ToJson() => new()
    {
        ["format"] = Format,
        ["source"] = Source,
        ["train_images"] = TrainImages,
        ["test_images"] = TestImages,
        ["image_shape"] = new JsonArray(ImageShape.Select(v => (JsonNode?)v).ToArray()),
        ["classes"] = new JsonArray(Classes.Select(c => (JsonNode?)c).ToArray()),
        ["mean"] = RecordJson.NumberArray(Mean),
        ["std"] = RecordJson.NumberArray(Std),
        ["content_sha256"] = Content,
    };

    public static DataRecord FromJson(JsonObject json, string where) => new(
        RecordJson.Value<string>(json, "format", where), RecordJson.Value<string>(json, "source", where),
        RecordJson.Value<long>(json, "train_images", where), RecordJson.Value<long>(json, "test_images", where),
        RecordJson.Numbers(json, "image_shape", where).Select(v => (int)v).ToArray(), RecordJson.Texts(json, "classes", where),
        RecordJson.Numbers(json, "mean", where), RecordJson.Numbers(json, "std", where), RecordJson.Value<string>(json, "content_sha256", where));

    /// <summary>What must match for a resumed run to train on the same data (the path may differ: data can move).</summary>
    public JsonObject Identity() => new()
    {
        ["format"] = Format,
        ["train_images"] = TrainImages,
        ["test_images"] = TestImages,
        ["content_sha256"] = Content,
    };
}

/// <summary>How a run was started: the program (e.g. "advaa train", "dotnet fsi") and its arguments (without --out and --resume).</summary>
public sealed record RunOrigin(string Program, IReadOnlyList<string> Arguments)
{
    public JsonObject ToJson() => new()
    {
        ["program"] = Program,
        ["arguments"] = new JsonArray(Arguments.Select(a => (JsonNode?)a).ToArray()),
    };

    public static RunOrigin FromJson(JsonObject json, string where) =>
        new(RecordJson.Value<string>(json, "program", where), RecordJson.Texts(json, "arguments", where));
}

/// <summary>config.json: the run format, the versions, the device and the machine (its CPU; null in runs recorded before it), the experiment, the data, how the run was started.</summary>
public sealed record RunConfig(
    string? AdvaaVersion, string? TorchSharpVersion, string? LibTorchVersion, string Backend, string Device, string? Machine,
    string Created, TrainConfig Experiment, DataRecord Data, long ModelParameters, RunOrigin? Origin,
    PrecisionChoice? PrecisionChoice = null, IReadOnlyList<Amendment>? Amendments = null)
{
    /// <summary>The run folder format this AdvAA writes and resumes (config.json's "format_version").</summary>
    public const int FormatVersion = 2;

    public JsonObject ToJson() => new()
    {
        ["format"] = "advaa-run",
        ["format_version"] = FormatVersion,
        ["advaa_version"] = AdvaaVersion,
        ["torchsharp_version"] = TorchSharpVersion,
        ["libtorch_version"] = LibTorchVersion,
        ["backend"] = Backend,
        ["device"] = Device,
        ["machine"] = Machine,
        ["created"] = Created,
        ["experiment"] = Experiment.ToJson(),
        ["data"] = Data.ToJson(),
        ["model_parameters"] = ModelParameters,
        ["origin"] = Origin?.ToJson(),
        ["precision_choice"] = PrecisionChoice?.ToJson(),  // absent in runs recorded before it
        ["amendments"] = Amendments is { Count: > 0 } list ? new JsonArray(list.Select(a => (JsonNode?)a.ToJson()).ToArray()) : null,
    };

    public static RunConfig FromJson(JsonObject json, string where)
    {
        int version = json["format_version"] is JsonValue v && v.TryGetValue(out int n) ? n : 1;
        if (version != FormatVersion)
            throw new RunFolderException(
                $"{where} is run format {version}{(version == 1 ? " (written by AdvAA 0.1 before the method plug-ins)" : "")}; this AdvAA reads run format {FormatVersion}: train the run again with this version");
        return new(RecordJson.OptionalText(json, "advaa_version", where), RecordJson.OptionalText(json, "torchsharp_version", where),
            RecordJson.OptionalText(json, "libtorch_version", where), RecordJson.Value<string>(json, "backend", where),
            RecordJson.Value<string>(json, "device", where), RecordJson.OptionalText(json, "machine", where),
            RecordJson.Value<string>(json, "created", where),
            TrainConfig.FromJson(RecordJson.Object(json, "experiment", where), $"{where}: experiment"),
            DataRecord.FromJson(RecordJson.Object(json, "data", where), $"{where}: data"),
            RecordJson.Value<long>(json, "model_parameters", where),
            json["origin"] is JsonObject origin ? RunOrigin.FromJson(origin, $"{where}: origin") : null,
            PrecisionChoice.FromJson(json["precision_choice"]),
            json["amendments"] is JsonArray amendments
                ? amendments.Select((a, i) => Amendment.FromJson(a as JsonObject ?? throw new RunFolderException($"{where}: amendments[{i}] is not an object"), $"{where}: amendments[{i}]")).ToArray()
                : null);
    }

    /// <summary>
    /// This run resumed with <paramref name="now"/>'s experiment after epoch <paramref name="afterEpoch"/>:
    /// the config with that experiment and, when a setting outside the identity changed (epochs, the
    /// learning rate, ...), an amendment recording each change; null when nothing changed.
    /// </summary>
    public RunConfig? Amended(TrainConfig now, int afterEpoch)
    {
        var changes = JsonDifferences.All(Experiment.ToJson(), now.ToJson()).ToArray();
        if (changes.Length == 0) return null;
        return this with { Experiment = now, Amendments = [.. Amendments ?? [], new Amendment(afterEpoch, DateTime.UtcNow.ToString("O"), changes)] };
    }

    /// <summary>
    /// What a checkpoint and a resumed run must share with the run that wrote it: the method with all
    /// its parameters, the search space where the method uses one, the model, the seed, the batch,
    /// the data's identity.
    /// </summary>
    public JsonObject Identity()
    {
        var identity = new JsonObject { ["format_version"] = FormatVersion };
        foreach (var (key, value) in Experiment.Identity()) identity[key] = value?.DeepClone();
        identity["classes"] = Data.Classes.Length;
        identity["data"] = Data.Identity();
        return identity;
    }
}

/// <summary>Settings outside a run's identity that a resume changed (epochs, the learning rate, ...), recorded in config.json: after which epoch, when, and each setting's old and new value.</summary>
public sealed record Amendment(int AfterEpoch, string Time, IReadOnlyList<(string Setting, JsonNode? From, JsonNode? To)> Changes)
{
    public JsonObject ToJson() => new()
    {
        ["after_epoch"] = AfterEpoch,
        ["time"] = Time,
        ["changes"] = new JsonObject(Changes.Select(c => KeyValuePair.Create(c.Setting, (JsonNode?)new JsonObject { ["from"] = c.From?.DeepClone(), ["to"] = c.To?.DeepClone() }))),
    };

    public static Amendment FromJson(JsonObject json, string where) => new(
        RecordJson.Value<int>(json, "after_epoch", where), RecordJson.Value<string>(json, "time", where),
        RecordJson.Object(json, "changes", where).Select(p => (p.Key, (p.Value as JsonObject)?["from"]?.DeepClone(), (p.Value as JsonObject)?["to"]?.DeepClone())).ToArray());

    /// <summary>"epochs 1 → 2, learning_rate "cosine 0.1→0 over 1" → "cosine 0.1→0 over 2"".</summary>
    public string Describe() => string.Join(", ", Changes.Select(c => $"{c.Setting} {JsonDifferences.Compact(c.From)} → {JsonDifferences.Compact(c.To)}"));
}

/// <summary>
/// One window of an epoch (a controller that learns several times an epoch draws M policies per
/// window): its policies, each instance's mean loss over the window's steps, and the normalised
/// rewards the controller learned from — per instance, or per (instance, sub-policy) unit, M·Q
/// instance-major with NaN (null in JSON) for a unit no image drew.
/// </summary>
public sealed record PolicyWindow(IReadOnlyList<Policy> Policies, double[] InstanceLosses, double[]? NormalizedLosses = null, double[]? SubPolicyRewards = null)
{
    /// <summary>Adds the window's fields to <paramref name="record"/> (policies.jsonl writes a single window's at the top level).</summary>
    internal void AddTo(JsonObject record)
    {
        record["policies"] = PolicyRecord.PoliciesJson(Policies);
        record["instance_losses"] = RecordJson.NumberArray(InstanceLosses);
        if (NormalizedLosses != null) record["normalized_losses"] = RecordJson.NumberArray(NormalizedLosses);
        if (SubPolicyRewards != null)
            record["sub_policy_rewards"] = new JsonArray(SubPolicyRewards.Select(r => double.IsNaN(r) ? null : (JsonNode?)JsonOptions.Number(r)).ToArray());
    }

    internal static PolicyWindow FromJson(JsonObject json, string where, double[] instanceLosses) => new(
        PolicyRecord.PoliciesFromJson(json, where)!,
        json["instance_losses"] != null ? RecordJson.Numbers(json, "instance_losses", where) : instanceLosses,
        json["normalized_losses"] != null ? RecordJson.Numbers(json, "normalized_losses", where) : null,
        json["sub_policy_rewards"] is JsonArray rewards
            ? rewards.Select((r, i) => r is null ? double.NaN : RecordJson.Number(r, $"sub_policy_rewards[{i}]", where)).ToArray()
            : null);
}

/// <summary>
/// A line of policies.jsonl: the epoch's M policies by op name (methods without policies have
/// none), each instance's mean loss, their normalised losses (or the sub-policy rewards) and the
/// controller's distribution (adversarial). An epoch of several windows records each in "windows";
/// <see cref="Policies"/> is then its last window's.
/// </summary>
public sealed record PolicyRecord(int Epoch, string Method, IReadOnlyList<Policy>? Policies, double[] InstanceLosses,
    double[]? NormalizedLosses, ControllerDistribution? Distribution)
{
    /// <summary>The normalised reward of each (instance, sub-policy) unit of a single-window epoch (NaN where no image drew it), or null.</summary>
    public double[]? SubPolicyRewards { get; init; }

    /// <summary>The epoch's windows when it had more than one, else null.</summary>
    public IReadOnlyList<PolicyWindow>? Windows { get; init; }

    /// <summary>The record of an epoch's windows (one window: the single-window form).</summary>
    public static PolicyRecord Of(int epoch, string method, IReadOnlyList<PolicyWindow>? windows, double[] instanceLosses, ControllerDistribution? distribution) =>
        windows is not { Count: > 0 } ? new(epoch, method, null, instanceLosses, null, distribution)
        : windows.Count == 1 ? new(epoch, method, windows[0].Policies, instanceLosses, windows[0].NormalizedLosses, distribution) { SubPolicyRewards = windows[0].SubPolicyRewards }
        : new(epoch, method, windows[^1].Policies, instanceLosses, null, distribution) { Windows = windows };

    /// <summary>The M policies of each window of the epoch, in order (none for a method without policies).</summary>
    public IReadOnlyList<IReadOnlyList<Policy>> WindowPolicies =>
        Windows?.Select(w => w.Policies).ToArray() ?? (Policies is null ? [] : [Policies]);

    /// <summary>The record's policies alone (for a content hash of what a run applied).</summary>
    public PolicyRecord PoliciesOnly() => this with
    {
        InstanceLosses = [], NormalizedLosses = null, Distribution = null, SubPolicyRewards = null,
        Windows = Windows?.Select(w => new PolicyWindow(w.Policies, [])).ToArray(),
    };

    public JsonObject ToJson()
    {
        var record = new JsonObject { ["epoch"] = Epoch, ["method"] = Method };
        if (Windows != null)
        {
            record["windows"] = new JsonArray(Windows.Select(w =>
            {
                var window = new JsonObject();
                w.AddTo(window);
                return (JsonNode?)window;
            }).ToArray());
            record["instance_losses"] = RecordJson.NumberArray(InstanceLosses);
        }
        else if (Policies != null) new PolicyWindow(Policies, InstanceLosses, NormalizedLosses, SubPolicyRewards).AddTo(record);
        else record["instance_losses"] = RecordJson.NumberArray(InstanceLosses);
        if (Distribution != null) record["controller_distribution"] = Distribution.ToJson();
        return record;
    }

    internal static JsonArray PoliciesJson(IReadOnlyList<Policy> policies) =>
        new(policies.Select(p => (JsonNode?)new JsonArray(p.SubPolicies.Select(sub =>
            (JsonNode?)new JsonArray(sub.Stages.Select(s => (JsonNode?)(s.Probability == 1.0
                ? new JsonArray(s.Op, s.Level)
                : new JsonArray(s.Op, s.Level, s.Probability))).ToArray())).ToArray())).ToArray());

    internal static IReadOnlyList<Policy>? PoliciesFromJson(JsonObject json, string where) =>
        json["policies"] == null ? null
        : RecordJson.Array(json, "policies", where).Select((p, m) =>
            new Policy(Items(p, $"policies[{m}]", where).Select((sub, q) =>
                new SubPolicy(Items(sub, $"policies[{m}][{q}]", where).Select((stage, k) =>
                {
                    string at = $"policies[{m}][{q}][{k}]";
                    var parts = Items(stage, at, where);
                    if (parts.Count is < 2 or > 3 || parts[0] is not JsonValue op || !op.TryGetValue(out string? name)
                        || parts[1] is not JsonValue level || !level.TryGetValue(out int l))
                        throw new RunFolderException($"{where}: {at} is {stage?.ToJsonString()}: expected [op, level] or [op, level, probability]");
                    return new PolicyStage(name, l, parts.Count == 3 ? RecordJson.Number(parts[2], at + "[2]", where) : 1.0);
                }).ToArray())).ToArray())).ToArray();

    public static PolicyRecord FromJson(JsonObject json, string where)
    {
        double[] instanceLosses = RecordJson.Numbers(json, "instance_losses", where);
        var distribution = json["controller_distribution"] != null
            ? ControllerDistribution.FromJson(RecordJson.Object(json, "controller_distribution", where), where + ": controller_distribution") : null;
        int epoch = RecordJson.Value<int>(json, "epoch", where);
        string method = RecordJson.Value<string>(json, "method", where);
        if (json["windows"] != null)
        {
            var windows = RecordJson.Array(json, "windows", where).Select((w, i) =>
                PolicyWindow.FromJson(w as JsonObject ?? throw new RunFolderException($"{where}: windows[{i}] is {w?.ToJsonString() ?? "null"}: expected an object"),
                    $"{where}: windows[{i}]", instanceLosses)).ToArray();
            if (windows.Length == 0) throw new RunFolderException($"{where}: windows is empty: expected at least one window");
            return Of(epoch, method, windows, instanceLosses, distribution);
        }
        var policies = PoliciesFromJson(json, where);
        var single = policies is null ? null : PolicyWindow.FromJson(json, where, instanceLosses);
        return new(epoch, method, policies, instanceLosses, single?.NormalizedLosses, distribution) { SubPolicyRewards = single?.SubPolicyRewards };
    }

    static IReadOnlyList<JsonNode?> Items(JsonNode? node, string at, string where) =>
        (IReadOnlyList<JsonNode?>?)(node as JsonArray)?.ToList() ?? throw new RunFolderException($"{where}: {at} is {node?.ToJsonString() ?? "null"}: expected an array");
}
