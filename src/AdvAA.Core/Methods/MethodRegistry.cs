using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;

namespace AdvAA.Core.Methods;

/// <summary>
/// Every training method by name: its description and its default spec (the spec's type says which
/// parameters it has and makes the method). The CLI, `advaa methods`, the F# DSL, config.json and
/// the report read this table. Adding a method is one file (its spec and method) plus one line here.
/// </summary>
public static class MethodRegistry
{
    /// <summary>A method's name, one-line description and defaults.</summary>
    public sealed record Entry(string Name, string Description, MethodSpec Defaults);

    static Entry Add(string name, string description, MethodSpec defaults) => new(name, description, defaults with { Name = name });

    static EpochSchedule M(int m) => EpochSchedule.Constant(m);

    public static IReadOnlyList<Entry> All { get; } =
    [
        Add("baseline", "standard augmentation only: random crop of the 4-pixel padded image + horizontal flip", new StandardSpec()),
        Add("cutout", "standard augmentation + Cutout 16x16 (DeVries & Taylor 2017)", new StandardSpec { Cutout = 16 }),
        Add("autoaugment", "AutoAugment's published CIFAR-10 policy (Cubuk et al. 2018), then standard augmentation + Cutout", new AutoAugmentSpec { Cutout = 16 }),
        Add("randaugment", "RandAugment(N, M) (Cubuk et al. 2019), then standard augmentation + Cutout", new RandAugmentSpec { Cutout = 16 }),
        Add("trivialaugment", "TrivialAugment (Müller & Hutter 2021), wide space by default, then standard augmentation + Cutout", new TrivialAugmentSpec { Cutout = 16 }),
        Add("policy", "a given policy file (one policy, or one per instance as `advaa policy export` writes), then standard augmentation + Cutout", new PolicySpec { Cutout = 16 }),
        Add("fixed", "M copies of each batch with standard augmentation only: crop + flip, no Cutout (the paper's 'Fixed', Table 4)", new StandardSpec { Instances = M(8) }),
        Add("random", "M copies, copy m augmented by a random policy drawn each epoch (paper's 'Random')", new RandomSpec { Instances = M(8), Cutout = 16 }),
        Add("adversarial", "Adversarial AutoAugment (Zhang et al. 2020): M policies from the LSTM controller, trained with REINFORCE to raise the target loss", new AdversarialSpec { Instances = M(8), Cutout = 16 }),
        Add("tanda", "TANDA (Ratner et al. 2017): a TF-sequence generator trained adversarially against a discriminator (stage 1), then M copies transformed by its sequences", new TandaSpec()),
        Add("transfer", "the learned policies of another run, epoch by epoch (the paper's §4.6), without a controller", new TransferSpec { Cutout = 16 }),
        Add("uncertainty", "uncertainty-based sampling as Wu et al. (2020) ran it: K candidates of 2 ops at random probabilities and continuous magnitudes, reflect crop, flip, Cutout up to 16, mixup; keep S in proportion to their loss", new UncertaintySpec { Cutout = 16 }),
        Add("uncertainty-space", "uncertainty-based sampling over the search space: K candidates of 2 random ops at whole levels, always applied; keep S in proportion to their loss", new SpaceUncertaintySpec { Cutout = 16 }),
        Add("gdro", "group DRO (Sagawa et al. 2019) over the data's (class, subgroup) groups, standard crop/flip; needs data with subgroups", new PatchingSpec { Objective = "gdro" }),
        Add("sgdro", "class-conditional group DRO (CAMEL's): group weights within each class, classes weighted by frequency; needs data with subgroups", new PatchingSpec { Objective = "sgdro" }),
        Add("camel-oracle", "CAMEL's stage 2 with exact translations (the benchmark's counterparts): subgroup consistency + class-conditional group DRO", new PatchingSpec { Translations = "oracle", Consistency = 10 }),
        Add("camel", "CAMEL model patching (Goel et al. 2020): stage 1 a CycleGAN per class between its subgroups, stage 2 subgroup consistency + class-conditional group DRO", new PatchingSpec { Translations = "learned", Consistency = 10 }),
    ];

    public static IEnumerable<string> Names => All.Select(e => e.Name);

    /// <summary>The method with this name (case-insensitive).</summary>
    public static Entry Get(string name) =>
        All.FirstOrDefault(e => string.Equals(e.Name, name.Trim(), StringComparison.OrdinalIgnoreCase))
        ?? throw new ConfigException($"unknown method '{name}': expected one of {string.Join(", ", Names)}");

    /// <summary>The default spec of a method.</summary>
    public static MethodSpec Defaults(string name) => Get(name).Defaults;

    /// <summary>A spec as config.json records it (<see cref="MethodSpec.ToJson"/>); schedules come back by description only.</summary>
    public static MethodSpec FromJson(JsonObject json, string where)
    {
        string name = json["name"]?.GetValue<string>() ?? throw new RunFolderException($"{where}: the method has no \"name\"");
        MethodSpec spec;
        try { spec = Defaults(name); }
        catch (ConfigException e) { throw new RunFolderException($"{where}: {e.Message}"); }
        // A record from before a parameter existed ran with what was then in effect, not with today's default.
        foreach (var parameter in spec.Parameters.Where(p => p.Absent is not null && !json.ContainsKey(p.Name)))
            spec = parameter.With(spec, parameter.Parse(parameter.Absent!, $"{where}.{parameter.Name}"));
        foreach ((string key, JsonNode? value) in json)
        {
            if (key == "name" || spec.DerivedFields.Contains(key)) continue;
            var parameter = spec.Parameters.FirstOrDefault(p => p.Name == key)
                ?? throw new RunFolderException($"{where}: method '{name}' has no parameter '{key}'");
            spec = parameter.With(spec, parameter.FromJson(value, $"{where}.{key}"));
        }
        return spec.WithDerived(json, where);
    }
}
