using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using AdvAA.Core.Backend;
using AdvAA.Core.Data;
using AdvAA.Core.Models;
using TorchSharp;
using static TorchSharp.torch;
using static TorchSharp.torch.nn;

namespace AdvAA.Core.Training;

/// <summary>
/// A run's trained target network, read from its last complete checkpoint with the run's own
/// normalisation, precision and memory format: what <c>advaa evaluate</c> and <c>advaa predict</c> use.
/// </summary>
public sealed class TrainedModel : IDisposable
{
    readonly Module<Tensor, Tensor> model;
    readonly Normalizer normalizer;
    readonly bool channelsLast;
    readonly Precision precision;

    public string Folder { get; }
    public RunConfig Config { get; }
    /// <summary>The epoch whose checkpoint the weights come from.</summary>
    public int Epoch { get; }
    public Device Device { get; }
    public IReadOnlyList<string> Classes => Config.Data.Classes;
    public int Channels => Config.Data.ImageShape[0];
    public int Height => Config.Data.ImageShape[1];
    public int Width => Config.Data.ImageShape[2];

    TrainedModel(string folder, RunConfig config, Checkpoint checkpoint, Device device)
    {
        Folder = folder;
        Config = config;
        Epoch = checkpoint.Epoch;
        Device = device;
        TrainConfig experiment = config.Experiment;
        // config.json records the precision the run resolved "auto" to.
        precision = Precisions.Parse(experiment.Precision) ?? Precision.Fp32;
        channelsLast = experiment.MemoryFormat == MemoryFormats.ChannelsLast;
        normalizer = new Normalizer(config.Data.Mean, config.Data.Std);
        model = ModelRegistry.Create(experiment.Model, Classes.Count, experiment.Dropout);
        try
        {
            checkpoint.Read("model", s => model.load(s, strict: true));
        }
        catch (Exception e) when (e is not RunFolderException)
        {
            model.Dispose();
            throw new RunFolderException($"{checkpoint.Folder}: the model part does not load as a {experiment.Model} with {Classes.Count} classes ({e.Message})");
        }
        model.to(device);
        model.eval();
    }

    /// <summary>
    /// The model of the run in <paramref name="folder"/> at its last checkpoint; <paramref name="epoch"/>,
    /// when given, must be that checkpoint's (a run keeps only its last).
    /// </summary>
    public static TrainedModel Open(string folder, int? epoch = null, string device = "auto")
    {
        RunFolder run = RunFolder.Open(folder);
        RunConfig config = run.ReadConfig();
        Checkpoint checkpoint = run.LatestCheckpoint()
            ?? throw new RunFolderException($"{run.Path} has no checkpoint: the run stopped before its first epoch ended, so there is no trained model");
        if (epoch is int e && e != checkpoint.Epoch)
            throw new RunFolderException($"{run.Path} has no checkpoint of epoch {e}: a run keeps only its last checkpoint (epoch {checkpoint.Epoch})");
        return new TrainedModel(run.Path, config, checkpoint, TorchBackend.ResolveDevice(TorchBackend.ParseDevice(device)));
    }

    /// <summary>The test images the run evaluated on: <paramref name="data"/>'s test split, limited as the run's was.</summary>
    public ImageDataset RunTestSplit(DataSplits data) => Subsets.Split(data.Test, Config.Experiment.TestLimit, null).Subset;

    Tensor Logits(Tensor normalised)
    {
        using var region = Autocast.For(precision, Device.type);
        return model.forward(normalised).to_type(ScalarType.Float32);
    }

    /// <summary>Loss, accuracy and confusion matrix on <paramref name="set"/>, whose classes and image size must be the run's.</summary>
    public Evaluation Evaluate(ImageDataset set, int batchSize = 0)
    {
        CheckFits(set);
        return Evaluation.Of(Logits, Classes.Count, normalizer, channelsLast, set, batchSize > 0 ? batchSize : Config.Experiment.EvalBatchSize, Device);
    }

    /// <summary>Class probabilities [B, classes] (float32, on the CPU) of uint8 [B,C,H,W] images of the run's size.</summary>
    public Tensor Probabilities(Tensor images)
    {
        if (images.dtype != ScalarType.Byte || images.Dimensions != 4 || images.shape[1] != Channels || images.shape[2] != Height || images.shape[3] != Width)
            throw new ArgumentException($"expected uint8 [B,{Channels},{Height},{Width}] images, not {images.dtype} [{string.Join(",", images.shape)}]", nameof(images));
        using var noGrad = no_grad();
        using var scope = NewDisposeScope();
        using Tensor onDevice = images.to(Device);
        return functional.softmax(Logits(normalizer.Apply(onDevice, channelsLast)), 1).cpu().MoveToOuterDisposeScope();
    }

    /// <summary>The first line of every Python module <see cref="ExportPyTorch"/> writes: how it knows a file it may replace.</summary>
    public const string ExportMarker = "# Written by advaa export: the network, classes and normalisation of an AdvAA run.";

    /// <summary>
    /// Writes the weights as a PyTorch state dict to <paramref name="path"/> (<c>torch.load</c> reads
    /// it) and beside it a Python module of the same name ending in .py that defines the network
    /// (<see cref="ModelRegistry.PythonModels"/>), the run's classes and normalisation, and
    /// <c>load()</c>; everything taken from the run is written as an escaped Python literal. Each file
    /// is written whole or not at all. An existing file that an earlier export did not write is
    /// refused, unless <paramref name="force"/>. Returns the two paths.
    /// </summary>
    public (string Weights, string Module) ExportPyTorch(string path, bool force = false)
    {
        string weights = Path.GetFullPath(path);
        string module = Path.ChangeExtension(weights, ".py");
        if (module == weights) throw new ArgumentException($"{path}: the weights file needs another extension than .py (e.g. model.pt)", nameof(path));
        if (Directory.Exists(weights)) throw new RunFolderException($"{weights} is a folder; --out names the weights file to write");
        if (!force)
        {
            bool ownModule = File.Exists(module) && File.ReadLines(module).FirstOrDefault() == ExportMarker;
            string? foreign = File.Exists(module) && !ownModule ? module : File.Exists(weights) && !ownModule ? weights : null;
            if (foreign != null)
                throw new RunFolderException($"{foreign} exists and was not written by advaa export; choose another --out, or pass --force to overwrite it");
        }
        string Numbers(IEnumerable<double> values) => string.Join(", ", values.Select(v => v.ToString("R", CultureInfo.InvariantCulture)));
        bool safetensors = WeightFiles.IsSafetensors(weights);
        string python = string.Join("\n", [
            ExportMarker,
            ModelRegistry.PythonModels.TrimEnd(), "", "",
            "# The run and epoch these weights come from.",
            $"RUN = {PythonLiteral(Folder)}",
            $"EPOCH = {Epoch}",
            $"CLASSES = [{string.Join(", ", Classes.Select(PythonLiteral))}]",
            $"MEAN = [{Numbers(normalizer.Mean)}]",
            $"STD = [{Numbers(normalizer.Std)}]",
            $"WEIGHTS = {PythonLiteral(Path.GetFileName(weights))}", "", "",
            "def build():",
            "    \"\"\"The run's network, untrained.\"\"\"",
            $"    return {ModelRegistry.PythonConstructor(Config.Experiment.Model, Classes.Count, Config.Experiment.Dropout)}", "", "",
            "def load(path=None):",
            "    \"\"\"The trained network in eval mode, from the weights file beside this module (or `path`).\"\"\"",
            "    import os",
            "    net = build()",
            "    path = path or os.path.join(os.path.dirname(os.path.abspath(__file__)), WEIGHTS)",
            safetensors
                ? "    from safetensors.torch import load_file  # pip install safetensors\n    net.load_state_dict(load_file(path))"
                : "    net.load_state_dict(torch.load(path, map_location=\"cpu\", weights_only=True))",
            "    return net.eval()", ""]);
        Directory.CreateDirectory(Path.GetDirectoryName(weights)!);
        AtomicFile.Write(weights, temp => WeightFiles.Write(model, temp, safetensors));
        AtomicFile.Write(module, python);
        return (weights, module);
    }

    /// <summary>
    /// <paramref name="text"/> as a Python string literal that means exactly it: quotes and
    /// backslashes escaped, and every control, non-ASCII or line-breaking character as a
    /// <c>\x</c>/<c>\u</c>/<c>\U</c> escape, so that nothing taken from a run can end the literal or the line.
    /// </summary>
    public static string PythonLiteral(string text)
    {
        var b = new StringBuilder("\"");
        foreach (System.Text.Rune r in text.EnumerateRunes())
        {
            int c = r.Value;
            b.Append(c switch
            {
                '\\' => "\\\\",
                '"' => "\\\"",
                '\n' => "\\n",
                '\r' => "\\r",
                '\t' => "\\t",
                >= 0x20 and < 0x7f => ((char)c).ToString(),
                < 0x100 => $"\\x{c:x2}",
                < 0x10000 => $"\\u{c:x4}",
                _ => $"\\U{c:x8}",
            });
        }
        return b.Append('"').ToString();
    }

    void CheckFits(ImageDataset set)
    {
        if (!set.Classes.SequenceEqual(Classes))
            throw new DataFormatException($"{set.Source}: its classes ({string.Join(", ", set.Classes)}) are not the ones {Folder} was trained on ({string.Join(", ", Classes)})");
        if (set.Channels != Channels || set.Height != Height || set.Width != Width)
            throw new DataFormatException($"{set.Source}: its images are {set.Channels}x{set.Height}x{set.Width}, but {Folder} was trained on {Channels}x{Height}x{Width}");
    }

    public void Dispose() => model.Dispose();
}
