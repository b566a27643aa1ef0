using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json.Nodes;
using AdvAA.Core.Augment;
using AdvAA.Core.Training;
using static TorchSharp.torch;

namespace AdvAA.Core.Methods;

/// <summary>
/// Policy transfer (the paper's §4.6): a new target trains with the dynamic schedule another run
/// learned, epoch e taking the M policies the source used at its corresponding epoch (epochs mapped
/// proportionally when the counts differ) — window by window when the source drew several an epoch —
/// over the source's search space, with no controller.
/// The record holds the source's absolute path and a hash of what was replayed, so a resumed run
/// notices a changed source.
/// </summary>
public sealed record TransferSpec : MethodSpec
{
    [Parameter("from", "the run folder whose learned policies to replay: a finished run of a method with policies (adversarial, random)")]
    public string? From { get; init; }

    [Parameter("magnitude_scale", Describe.MagnitudeScale, Min = 0, Max = 10)]
    public EpochSchedule MagnitudeScale { get; init; } = EpochSchedule.Constant(1);

    [Parameter("policy_probability", Describe.PolicyProbability, Min = 0, Max = 1)]
    public EpochSchedule PolicyProbability { get; init; } = EpochSchedule.Constant(1);

    /// <summary>SHA-256 of the source's search space and policies (derived when the spec is validated).</summary>
    public string? SourceSha256 { get; init; }

    const string SourceField = "source_sha256";

    public override bool UsesSearchSpace => true;

    public override SearchSpace TrainingSpace(SearchSpace experiment) => Source(experiment).Space;

    protected override void Check(int epochs, SearchSpace space) => Source(space);

    protected override MethodSpec Resolve(int epochs, SearchSpace space) => this with { SourceSha256 = Source(space).Sha256 };

    protected internal override IReadOnlyCollection<string> DerivedFields => [SourceField];

    protected override void AddDerived(JsonObject record)
    {
        if (SourceSha256 != null) record[SourceField] = SourceSha256;
    }

    protected internal override MethodSpec WithDerived(JsonObject record, string where) =>
        this with { SourceSha256 = record[SourceField]?.GetValue<string>() };

    TransferSource? loaded;

    /// <summary>The source run's schedule (read once per spec); the experiment's space supplies the code of custom ops it names.</summary>
    public TransferSource Source(SearchSpace space)
    {
        string from = From ?? throw Bad("from", null, "a run folder (--from RUN)");
        if (loaded != null && loaded.Folder == Path.GetFullPath(from)) return loaded;
        try
        {
            return loaded = TransferSource.Load(from, space.CustomOps);
        }
        catch (Exception e) when (e is RunFolderException or AugmentException)
        {
            throw new ConfigException($"{Name}.from = {from}: {e.Message}", MethodParameter.SettingOf("from"));
        }
    }

    public override ITrainingMethod Create(MethodContext context) => new TransferMethod(context, this, Source(context.Space));
}

/// <summary>A finished run's policies, epoch by epoch and window by window, over its search space.</summary>
public sealed class TransferSource
{
    TransferSource(string folder, SearchSpace space, IReadOnlyList<IReadOnlyList<IReadOnlyList<Policy>>> epochs, string sha256)
    {
        Folder = folder;
        Space = space;
        Epochs = epochs;
        Sha256 = sha256;
    }

    public string Folder { get; }
    public SearchSpace Space { get; }
    /// <summary>The M policies of each window of each source epoch (index 0 = epoch 1).</summary>
    public IReadOnlyList<IReadOnlyList<IReadOnlyList<Policy>>> Epochs { get; }
    public string Sha256 { get; }

    /// <summary>The source epoch (1-based) that epoch <paramref name="epoch"/> of a run of <paramref name="epochs"/> epochs replays.</summary>
    public int SourceEpoch(int epoch, int epochs) => Math.Clamp((int)Math.Ceiling(epoch * (double)Epochs.Count / epochs), 1, Epochs.Count);

    public static TransferSource Load(string path, IReadOnlyList<ICustomOp> customOps)
    {
        var run = RunFolder.Open(path);
        var config = run.ReadConfig();
        int planned = config.Experiment.Epochs;
        int done = run.LatestCheckpoint()?.Epoch ?? 0;
        if (done < planned)
            throw new RunFolderException($"{run.Path} is not a finished run: {done} of its {planned} epochs are done (finish it with --resume {run.Path})");
        var records = run.ReadPolicies().Where(r => r.Epoch <= planned).ToArray();
        if (records.Length < planned || records.Any(r => r.Policies is null))
            throw new RunFolderException(
                $"{run.Path} ({config.Experiment.Method.Name}) records no policies for every epoch in {RunFolder.PoliciesFile}: transfer needs a run of a method that draws or learns policies (adversarial, random)");
        var space = config.Experiment.Space.WithCustomOps(customOps, $"{run.Path}'s search space");
        var content = new StringBuilder(config.Experiment.Space.ToJson().ToJsonString());
        foreach (var r in records) content.Append('\n').Append(r.PoliciesOnly().ToJson().ToJsonString());
        string sha = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(content.ToString())));
        return new TransferSource(run.Path, space, records.OrderBy(r => r.Epoch).Select(r => r.WindowPolicies).ToArray(), sha);
    }
}

public sealed class TransferMethod(MethodContext context, TransferSpec spec, TransferSource source)
    : InstancePoliciesMethod(context, source.Space, spec.Cutout, spec.MagnitudeScale, spec.PolicyProbability)
{
    IReadOnlyList<IReadOnlyList<Policy>> Windows(EpochContext epoch) => source.Epochs[source.SourceEpoch(epoch.Epoch, Context.Epochs) - 1];

    protected override int WindowsFor(EpochContext epoch) => Windows(epoch).Count;

    protected override (Tensor Ops, Tensor Levels, Tensor? Probabilities) ChoosePolicies(EpochContext epoch, int window) =>
        InstancePolicies.Tables(Windows(epoch)[window], source.Space,
            $"{source.Folder}, epoch {source.SourceEpoch(epoch.Epoch, Context.Epochs)}{(Windows(epoch).Count > 1 ? $", window {window + 1}" : "")}");
}
