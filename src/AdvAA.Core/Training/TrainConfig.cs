using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;
using AdvAA.Core.Augment;
using AdvAA.Core.Models;

namespace AdvAA.Core.Training;

/// <summary>Raised for an experiment setting out of range; the message names the setting and the value.</summary>
public sealed class ConfigException(string message) : Exception(message);

/// <summary>The training methods, each a way of turning a batch of N images into the batch the target trains on.</summary>
public static class Methods
{
    public const string Baseline = "baseline";
    public const string Cutout = "cutout";
    public const string AutoAugment = "autoaugment";
    public const string RandAugment = "randaugment";
    public const string TrivialAugment = "trivialaugment";
    public const string Fixed = "fixed";
    public const string Random = "random";
    public const string Adversarial = "adversarial";
    public const string Uncertainty = "uncertainty";
    public const string Policy = "policy";

    /// <summary>Every method with a one-line description (for help texts and docs).</summary>
    public static readonly IReadOnlyDictionary<string, string> All = new Dictionary<string, string>
    {
        [Baseline] = "standard augmentation only: random crop of the 4-pixel padded image + horizontal flip",
        [Cutout] = "standard augmentation + Cutout 16x16",
        [AutoAugment] = "AutoAugment's published CIFAR-10 policy, then standard augmentation + Cutout",
        [RandAugment] = "RandAugment(N, M), then standard augmentation + Cutout",
        [TrivialAugment] = "TrivialAugment (wide space by default), then standard augmentation + Cutout",
        [Fixed] = "M copies of each batch with standard augmentation + Cutout only (paper's 'Fixed')",
        [Random] = "M copies, copy m augmented by a random policy drawn each epoch (paper's 'Random')",
        [Adversarial] = "Adversarial AutoAugment: M policies from the LSTM controller, trained with REINFORCE to raise the target loss",
        [Uncertainty] = "uncertainty-based sampling (Wu et al. 2020): K random 2-op candidates per image, keep S in proportion to their loss",
        [Policy] = "a given policy (sub-policies of (op, level[, probability])), then standard augmentation + Cutout",
    };

    /// <summary>Methods that train on M augmented copies of each batch.</summary>
    public static bool UsesInstances(string method) => method is Fixed or Random or Adversarial;

    /// <summary>Methods whose copies go through a search-space policy (and so through a controller or random draw).</summary>
    public static bool SamplesPolicies(string method) => method is Random or Adversarial;

    public static string Check(string method) =>
        All.ContainsKey(method) ? method
            : throw new ConfigException($"unknown method '{method}': expected one of {string.Join(", ", All.Keys)}");
}

/// <summary>
/// Everything the trainer needs, resolved: the Core side of an experiment. The F# DSL builds it
/// from a script; <c>advaa train</c> from flags. Schedules arrive as delegates over the training
/// progress in (fractional) epochs, each with a description for config.json.
/// </summary>
public sealed record TrainConfig
{
    public string Method { get; init; } = Methods.Adversarial;
    public string Model { get; init; } = "small";
    public double Dropout { get; init; }
    /// <summary>A data folder or archive (see DataSources.Load); null = the embedded sample.</summary>
    public string? Data { get; init; }
    /// <summary>Use only the first N training / test images (tiny runs); null = all.</summary>
    public long? TrainLimit { get; init; }
    public long? TestLimit { get; init; }

    public int Epochs { get; init; } = 200;
    /// <summary>N: images per instance per step (the batch before augmentation copies).</summary>
    public int BatchSize { get; init; } = 128;
    /// <summary>M: augmented copies per batch, per epoch (a schedule; constant 8 by default for M-instance methods).</summary>
    public Func<double, double> Instances { get; init; } = _ => 8;
    public string InstancesDescription { get; init; } = "8";
    public long Seed { get; init; }
    public string Device { get; init; } = "auto";

    // Target optimiser: SGD, momentum, Nesterov, weight decay; the learning rate per (fractional) epoch.
    public Func<double, double> LearningRate { get; init; } = _ => 0.1;
    public string LearningRateDescription { get; init; } = "0.1";
    public double Momentum { get; init; } = 0.9;
    public bool Nesterov { get; init; } = true;
    public double WeightDecay { get; init; } = 5e-4;

    // The search space and the controller (DESIGN.md).
    public SearchSpace Space { get; init; } = SearchSpace.Default;
    public int SubPolicies { get; init; } = 5;
    public int OpsPerSubPolicy { get; init; } = 2;
    public int ControllerEmbedding { get; init; } = 32;
    public int ControllerHidden { get; init; } = 100;
    public double ControllerLearningRate { get; init; } = 0.00035;
    public double EntropyWeight { get; init; } = 1e-5;
    /// <summary>Multiplies every sampled level (rounded down, then clamped to the level range): ramps the maximum magnitude over the epochs.</summary>
    public Func<double, double> MagnitudeScale { get; init; } = _ => 1.0;
    public string MagnitudeScaleDescription { get; init; } = "1";
    /// <summary>Probability that a sample's policy is applied at all (standard augmentation always is).</summary>
    public Func<double, double> PolicyProbability { get; init; } = _ => 1.0;
    public string PolicyProbabilityDescription { get; init; } = "1";

    // Standard augmentation and the baselines' parameters.
    public int CutoutSize { get; init; } = 16;
    public int RandAugmentN { get; init; } = 2;
    public int RandAugmentM { get; init; } = 9;
    public bool TrivialAugmentWide { get; init; } = true;
    /// <summary>The policy of the "policy" method.</summary>
    public Policy? Policy { get; init; }
    public int UncertaintyCandidates { get; init; } = 4;
    public int UncertaintyKeep { get; init; } = 1;

    /// <summary>Batch size for evaluation on the test set.</summary>
    public int EvalBatchSize { get; init; } = 500;
    /// <summary>Synchronise the device around augmentation and the controller to time them exactly (slower on GPUs).</summary>
    public bool Profile { get; init; }
    /// <summary>How the run was started (e.g. the command and its arguments), recorded in config.json as "origin" so that it can be resumed the same way.</summary>
    public JsonObject? Origin { get; init; }

    /// <summary>A copy with <see cref="Origin"/> set (for callers that cannot use a <c>with</c> expression).</summary>
    public TrainConfig WithOrigin(JsonObject origin) => this with { Origin = origin };

    /// <summary>M at a given epoch (1 for single-copy methods).</summary>
    public int InstancesAt(int epoch) =>
        Methods.UsesInstances(Method) ? (int)Math.Round(Instances(epoch)) : 1;

    /// <summary>Checks every setting; the first bad one is an error naming it and its value.</summary>
    public TrainConfig Validate()
    {
        Methods.Check(Method);
        try
        {
            ModelRegistry.Describe(Model);
        }
        catch (ArgumentException e)
        {
            throw new ConfigException(e.Message);
        }
        Require(Method != Methods.Policy || Policy != null, "policy", "null", "a policy for the \"policy\" method");
        Require(Epochs >= 1, "epochs", Epochs, "at least 1");
        Require(BatchSize >= 1, "batch size", BatchSize, "at least 1");
        Require(Dropout is >= 0 and < 1, "dropout", Dropout, "in [0, 1)");
        Require(TrainLimit is null or >= 1, "train limit", TrainLimit, "at least 1");
        Require(TestLimit is null or >= 1, "test limit", TestLimit, "at least 1");
        Require(Momentum is >= 0 and < 1, "momentum", Momentum, "in [0, 1)");
        Require(WeightDecay >= 0, "weight decay", WeightDecay, "at least 0");
        Require(SubPolicies >= 1, "sub-policies", SubPolicies, "at least 1");
        Require(OpsPerSubPolicy >= 1, "ops per sub-policy", OpsPerSubPolicy, "at least 1");
        Require(ControllerEmbedding >= 1 && ControllerHidden >= 1, "controller sizes", $"{ControllerEmbedding}/{ControllerHidden}", "at least 1");
        Require(ControllerLearningRate > 0, "controller learning rate", ControllerLearningRate, "positive");
        Require(EntropyWeight >= 0, "entropy weight", EntropyWeight, "at least 0");
        Require(CutoutSize >= 0, "cutout size", CutoutSize, "at least 0");
        Require(RandAugmentN >= 1, "RandAugment N", RandAugmentN, "at least 1");
        int randAugmentLevels = AdvAA.Core.Augment.RandAugment.DefaultSpace.Levels;
        Require(RandAugmentM >= 0 && RandAugmentM < randAugmentLevels, "RandAugment M", RandAugmentM, $"a level in 0..{randAugmentLevels - 1}");
        Require(UncertaintyCandidates >= 1, "uncertainty candidates K", UncertaintyCandidates, "at least 1");
        Require(UncertaintyKeep >= 1 && UncertaintyKeep <= UncertaintyCandidates, "uncertainty keep S", UncertaintyKeep, $"in 1..K={UncertaintyCandidates}");
        Require(EvalBatchSize >= 1, "evaluation batch size", EvalBatchSize, "at least 1");
        for (int e = 0; e <= Epochs; e++)
        {
            foreach (double t in new[] { (double)e, e + 0.5 })
            {
                if (t > Epochs) continue;
                double lr = LearningRate(t), scale = MagnitudeScale(t), p = PolicyProbability(t);
                Require(double.IsFinite(lr) && lr >= 0, "learning rate", $"{lr} at epoch {t}", "finite and at least 0");
                Require(double.IsFinite(scale) && scale >= 0, "magnitude scale", $"{scale} at epoch {t}", "finite and at least 0");
                Require(p is >= 0 and <= 1, "policy probability", $"{p} at epoch {t}", "in [0, 1]");
                if (Methods.UsesInstances(Method))
                {
                    double m = Instances(t);
                    Require(double.IsFinite(m) && Math.Round(m) >= 1, "instances M", $"{m} at epoch {t}", "at least 1");
                }
            }
        }
        return this;
    }

    static void Require(bool ok, string name, object? value, string expected)
    {
        if (!ok) throw new ConfigException($"{name} = {value ?? "null"}: expected {expected}");
    }

    /// <summary>The resolved experiment as JSON (config.json's "experiment").</summary>
    public JsonObject ToJson() => new()
    {
        ["method"] = Method,
        ["model"] = Model,
        ["dropout"] = Dropout,
        ["data"] = Data,  // null: the embedded sample
        ["train_limit"] = TrainLimit,
        ["test_limit"] = TestLimit,
        ["epochs"] = Epochs,
        ["batch_size"] = BatchSize,
        ["instances"] = Methods.UsesInstances(Method) ? InstancesDescription : "1",
        ["seed"] = Seed,
        ["device"] = Device,
        ["learning_rate"] = LearningRateDescription,
        ["momentum"] = Momentum,
        ["nesterov"] = Nesterov,
        ["weight_decay"] = WeightDecay,
        ["search_space"] = new JsonObject
        {
            ["levels"] = Space.Levels,
            ["ops"] = new JsonArray(Space.Ops.Select(o => (JsonNode)new JsonObject
            {
                ["name"] = o.Name,
                ["low"] = o.Low,
                ["high"] = o.High,
                ["signed"] = o.Signed,
            }).ToArray()),
        },
        ["sub_policies"] = SubPolicies,
        ["ops_per_sub_policy"] = OpsPerSubPolicy,
        ["controller"] = new JsonObject
        {
            ["embedding"] = ControllerEmbedding,
            ["hidden"] = ControllerHidden,
            ["learning_rate"] = ControllerLearningRate,
            ["entropy_weight"] = EntropyWeight,
        },
        ["magnitude_scale"] = MagnitudeScaleDescription,
        ["policy_probability"] = PolicyProbabilityDescription,
        ["cutout_size"] = CutoutSize,
        ["randaugment"] = new JsonObject { ["n"] = RandAugmentN, ["m"] = RandAugmentM },
        ["trivialaugment_wide"] = TrivialAugmentWide,
        ["uncertainty"] = new JsonObject { ["candidates"] = UncertaintyCandidates, ["keep"] = UncertaintyKeep },
    };
}
