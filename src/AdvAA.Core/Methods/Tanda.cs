using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text.Json.Nodes;
using AdvAA.Core.Augment;
using AdvAA.Core.Search;
using AdvAA.Core.Training;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Methods;

/// <summary>
/// TANDA (Ratner et al. 2017): stage 1 trains a generator of TF sequences adversarially against a
/// discriminator on the training images (<see cref="TanTrainer"/>, in RUN/stage1); stage 2 trains
/// the target with each copy of a batch transformed by a sequence the generator draws per image.
/// Generator "random" is TANDA's comparison: uniform sequences of the same length, no stage 1.
/// "from" reuses the trained generator of another TANDA run (TANDA's tanda-pretrained).
/// </summary>
public sealed record TandaSpec : CopiesSpec
{
    [Parameter("generator", "lstm (feeds back its previous TF), mean-field (a categorical per position) or random (uniform sequences, no stage 1)", Text = true)]
    public string Generator { get; init; } = "lstm";

    [Parameter("length", "L: TFs per sequence", Min = 1, Max = 100)]
    public int Length { get; init; } = 10;

    [Parameter("tfs", "the TFs: 'all' (every op of the search space at every level) or Op:level entries, e.g. 'Rotate:7, ShearX:3'", Text = true)]
    public string Tfs { get; init; } = TransformationSet.All;

    [Parameter("logit_range", "bound of the generator's logits (range · tanh)", Min = 0, MinExclusive = true, Max = 100)]
    public double LogitRange { get; init; } = 6.0;

    [Parameter("generator_hidden", "the LSTM generator's hidden size", Min = 1, Max = 4096)]
    public int Hidden { get; init; } = 100;

    [Parameter("tan_epochs", "stage 1: passes over the training images", Min = 1, Max = 10000)]
    public int TanEpochs { get; init; } = 10;

    [Parameter("tan_batch", "stage 1: images per step", Min = 1, Max = 4096)]
    public int TanBatch { get; init; } = 32;

    [Parameter("samples", "stage 1: sequences per image in a generator step (n_sample)", Min = 1, Max = 100)]
    public int Samples { get; init; } = 5;

    [Parameter("generator_lr", "stage 1: the generator's SGD learning rate (TANDA's grid: 3e-4 to 3e-3)", Min = 0, MinExclusive = true, Max = 10)]
    public double GeneratorLr { get; init; } = 1e-3;

    [Parameter("discriminator_lr", "stage 1: the discriminator's Adam learning rate (TANDA's grid: 1e-5 to 5e-5)", Min = 0, MinExclusive = true, Max = 1)]
    public double DiscriminatorLr { get; init; } = 5e-5;

    [Parameter("discriminator_steps", "stage 1: discriminator steps per generator step", Min = 1, Max = 100)]
    public int DiscriminatorSteps { get; init; } = 1;

    [Parameter("gamma", "stage 1: the discount of later steps' rewards", Min = 0, Max = 1)]
    public double Gamma { get; init; } = 0.5;

    [Parameter("diversity", "stage 1: weight of the term diversity / (distance + eps) that keeps transforms from staying near the original (mse_term)", Min = 0, Max = 100)]
    public double Diversity { get; init; } = 0.0025;

    [Parameter("diversity_on", "stage 1: where that distance is taken: features (the discriminator's last hidden layer) or pixels", Text = true)]
    public string DiversityOn { get; init; } = "features";

    [Parameter("from", "a TANDA run whose trained generator to use instead of training one (stage 1 is skipped)", Optional = true)]
    public string? From { get; init; }

    static readonly string[] Generators = ["lstm", "mean-field", "random"];

    public override bool UsesSearchSpace => true;

    protected override void Check(int epochs, SearchSpace space)
    {
        if (!Generators.Contains(Generator)) throw Bad("generator", Generator, string.Join(", ", Generators));
        if (DiversityOn is not ("features" or "pixels")) throw Bad("diversity_on", DiversityOn, "features or pixels");
        try { TransformationSet.Parse(space, Tfs); }
        catch (AugmentException e) { throw new ConfigException($"{Name}.tfs = {Tfs}: {e.Message}", MethodParameter.SettingOf("tfs")); }
        if (From is string from) Pretrained(from, space);
    }

    internal TanSettings Settings => new(Generator, Length, LogitRange, Hidden, TanEpochs, TanBatch, Samples,
        GeneratorLr, DiscriminatorLr, DiscriminatorSteps, Gamma, Diversity, DiversityOn);

    /// <summary>The stage-1 checkpoint of another TANDA run, checked: it must hold a finished stage 1.</summary>
    internal static (TandaSpec Spec, Checkpoint Checkpoint) Pretrained(string from, SearchSpace space)
    {
        try
        {
            RunFolder run = RunFolder.Open(from);
            if (run.ReadConfig().Experiment.Method is not TandaSpec source || source.Generator == "random")
                throw new ConfigException($"tanda.from = {from}: the run did not train a TANDA generator (its method is not tanda with generator lstm or mean-field)", MethodParameter.SettingOf("from"));
            Checkpoint stage = Checkpoints.LatestOf(Path.Combine(run.Path, TandaMethod.StageFolder))
                ?? throw new ConfigException($"tanda.from = {from}: the run has no trained generator ({TandaMethod.StageFolder}/{Checkpoints.FolderName} is missing)", MethodParameter.SettingOf("from"));
            if (stage.Epoch < source.TanEpochs)
                throw new ConfigException($"tanda.from = {from}: its stage 1 stopped at epoch {stage.Epoch} of {source.TanEpochs}; resume that run first", MethodParameter.SettingOf("from"));
            TransformationSet.Parse(space, source.Tfs);
            return (source, stage);
        }
        catch (Exception e) when (e is RunFolderException or AugmentException)
        {
            throw new ConfigException($"tanda.from = {from}: {e.Message}", MethodParameter.SettingOf("from"));
        }
    }

    public override ITrainingMethod Create(MethodContext context) => new TandaMethod(context, this);
}

/// <summary>Stage 2 of TANDA: copies transformed by the generator's sequences (after <see cref="Prepare"/>, stage 1).</summary>
public sealed class TandaMethod : CopiesMethod, IStagedMethod
{
    /// <summary>Stage 1's folder inside the run folder.</summary>
    public const string StageFolder = "stage1";

    readonly TandaSpec spec;
    readonly TransformationSet tfs;
    // The run whose generator to use (spec.From), read once.
    readonly (TandaSpec Spec, Checkpoint Checkpoint)? pretrained;
    SequenceGenerator? generator;
    TanTrainer? trainer;

    public TandaMethod(MethodContext context, TandaSpec spec) : base(context, spec.Cutout)
    {
        this.spec = spec;
        if (spec.From is string from) pretrained = TandaSpec.Pretrained(from, context.Space);
        tfs = TransformationSet.Parse(context.Space, pretrained?.Spec.Tfs ?? spec.Tfs);
    }

    protected override int InstancesFor(EpochContext epoch) => spec.InstancesAt(epoch.Progress);

    public bool TrainsStage => spec.Generator != "random" && pretrained is null;

    public bool Prepare(StageContext stage)
    {
        if (spec.Generator == "random") return true;
        if (pretrained is { } reused)
        {
            var (source, checkpoint) = reused;
            generator = TanTrainer.CreateGenerator(tfs.Count, source.Settings, 0);
            checkpoint.Read("generator", s => generator.load(s, strict: true));
            generator.to(Context.Device);
            stage.Report($"stage 1  the generator of {spec.From} (epoch {checkpoint.Epoch})");
            return true;
        }
        trainer = new TanTrainer(tfs, spec.Settings, Context.Channels, Context.Height, Context.Width, stage.Normalizer, Context.Device, Context.Seed);
        bool done = trainer.Run(Path.Combine(stage.RunFolder, StageFolder), stage.Train, stage.Identity, stage.Cancel,
            e => stage.Report($"stage 1  epoch {e.Epoch}/{spec.TanEpochs}  discriminator loss {e.DiscriminatorLoss:F4} accuracy {100 * e.DiscriminatorAccuracy:F1}%  generator/random loss {e.Ratio:F3}  {e.Seconds:F0} s"));
        generator = trainer.Generator;
        return done;
    }

    protected override Tensor Augment(Tensor copies, int n, StepContext step)
    {
        int count = (int)copies.shape[0];
        using var sequences = generator?.Sample(count, Epoch.Streams.Policy) ?? tfs.RandomSequences(count, spec.Length, Epoch.Streams.Policy);
        return tfs.ApplySequences(copies, sequences, Epoch.Streams.Augment);
    }

    public override void Dispose()
    {
        if (trainer is null) generator?.Dispose();
        trainer?.Dispose();
    }
}
