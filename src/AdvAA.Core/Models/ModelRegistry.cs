using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Models;

/// <summary>
/// One architecture of the model table: the names it answers to and, for such a name, the network.
/// </summary>
/// <param name="Pattern">How its names look: "small", or "wrn-&lt;depth&gt;-&lt;widen&gt;" for a family.</param>
/// <param name="Presets">Its names that help texts list.</param>
/// <param name="Resolve">The model a (lower-case) name gives, null when the name is not this architecture's; a malformed or impossible shape is an <see cref="ArgumentException"/> naming it.</param>
public sealed record Architecture(string Pattern, IReadOnlyList<string> Presets, Func<string, string, ModelShape?> Resolve);

/// <summary>
/// A model of the table: its name, what it is, whether it takes dropout, how to build it here and in
/// PyTorch (<c>advaa_models.py</c>), and the side of the crops streamed data gives it by default
/// (32 for the CIFAR networks, 224 for the ImageNet ones).
/// </summary>
public sealed record ModelShape(
    string Name, string Description, bool TakesDropout,
    Func<int, double, nn.Module<Tensor, Tensor>> Construct, Func<int, double, string> PythonConstructor, int ImageSize = 32);

/// <summary>The image classifiers: one table of architectures, read by name.</summary>
public static class ModelRegistry
{
    static ModelShape ResNetShape(string name, string title, int[] widths, int[] blocks, string description) =>
        new(name, description, false, (classes, _) => new ResNet(title, widths, blocks, classes),
            (classes, _) => $"ResNet([{string.Join(", ", widths)}], [{string.Join(", ", blocks)}], {classes})");

    static Architecture Fixed(string name, ModelShape shape) => new(name, [name], (key, _) => key == name ? shape : null);

    /// <summary>The architectures, one entry each: a new one is a network class plus a line here.</summary>
    public static IReadOnlyList<Architecture> Table { get; } =
    [
        // ResNet-10 with widths 16/32/128 and blocks 1/1/2: 0.51M parameters but only about 20M
        // multiply-adds per image, most of its width at 8x8 where convolutions are cheap; it trains
        // about 3x faster on a CPU than a ResNet-14 at 32/64/128 (0.70M, 105M).
        Fixed("small", ResNetShape("small", "ResNet-10-small", [16, 32, 128], [1, 1, 2],
            "small: ResNet-10 (1/1/2 basic blocks, widths 16/32/128, 0.51M parameters), fast on a CPU")),
        Fixed("resnet18", ResNetShape("resnet18", "ResNet-18", [64, 128, 256, 512], [2, 2, 2, 2],
            "resnet18: ResNet-18 with the CIFAR stem (3x3 conv at stride 1, no max-pool), widths 64/128/256/512, about 11.2M parameters")),
        new("wrn-<depth>-<widen>", ["wrn-28-10", "wrn-40-2"], WideResNetShape),
        // ImageNet-sized inputs, torchvision's layout (its state dicts load unchanged); "resnet18" above keeps the CIFAR stem.
        Fixed("resnet18-imagenet", TorchvisionShape("resnet18-imagenet", 18)),
        Fixed("resnet34", TorchvisionShape("resnet34", 34)),
        Fixed("resnet50", TorchvisionShape("resnet50", 50)),
    ];

    static ModelShape TorchvisionShape(string name, int depth) =>
        new(name, $"{name}: ResNet-{depth} for ImageNet-sized inputs (7x7 stem at stride 2, max-pool, {(TorchvisionResNet.Depths[depth].Bottleneck ? "bottlenecks" : "basic blocks")} {string.Join("/", TorchvisionResNet.Depths[depth].Blocks)}) with torchvision's parameter names: its state dicts load as they are",
            false, (classes, _) => new TorchvisionResNet(depth, classes), (classes, _) => $"torchvision_resnet({depth}, {classes})", ImageSize: 224);

    /// <summary>The named presets; any <c>wrn-&lt;depth&gt;-&lt;widen&gt;</c> is accepted too.</summary>
    public static IReadOnlyList<string> Names { get; } = Table.SelectMany(a => a.Presets).ToArray();

    /// <summary>The names a user may give, for help texts and messages: the presets, then the families' patterns.</summary>
    public static string Choices { get; } =
        string.Join(", ", Names) + string.Concat(Table.Where(a => !a.Presets.Contains(a.Pattern)).Select(a => $", or any {a.Pattern}"));

    /// <summary>The model a name gives (case-insensitive).</summary>
    /// <exception cref="ArgumentException">An unknown name, or a family's name with an impossible shape.</exception>
    public static ModelShape Resolve(string name)
    {
        string key = name.Trim().ToLowerInvariant();
        return Table.Select(a => a.Resolve(key, name)).FirstOrDefault(m => m != null)
            ?? throw new ArgumentException($"unknown model '{name}': expected {Choices}", nameof(name));
    }

    /// <summary>
    /// A freshly initialised model taking normalised float32 [N,3,H,W] (32×32 for the CIFAR networks) and returning logits [N, numClasses].
    /// Names are case-insensitive. <paramref name="dropout"/> is the WideResNet in-block dropout rate.
    /// The weights are drawn from a generator seeded by <paramref name="seed"/> alone.
    /// </summary>
    /// <exception cref="ArgumentException">An unknown name, a bad WideResNet shape, numClasses &lt; 1,
    /// dropout outside [0, 1), or dropout for a model without dropout.</exception>
    public static nn.Module<Tensor, Tensor> Create(string name, int numClasses, double dropout = 0.0, long seed = 0)
    {
        Check(name, dropout);
        var model = Resolve(name).Construct(numClasses, dropout);
        using var generator = new Generator((ulong)seed);
        Initialization.Apply(model, generator);
        return model;
    }

    /// <summary>Throws what <see cref="Create"/> would for this name and dropout, without building the model.</summary>
    /// <exception cref="ArgumentException">As <see cref="Create"/>.</exception>
    public static void Check(string name, double dropout)
    {
        ModelShape model = Resolve(name);
        if (model.TakesDropout) CheckHead(1, dropout);
        else if (dropout != 0.0)
            throw new ArgumentException($"model '{name}' has no dropout, but dropout {dropout.ToString(CultureInfo.InvariantCulture)} was given: only {string.Join(", ", Table.Where(a => Resolve(a.Presets[0]).TakesDropout).Select(a => a.Pattern))} models take dropout", nameof(dropout));
    }

    /// <summary>
    /// The Python expression that builds the same network with the classes of <c>advaa_models.py</c>
    /// (<see cref="PythonModels"/>), e.g. <c>ResNet([16, 32, 128], [1, 1, 2], 10)</c>.
    /// </summary>
    public static string PythonConstructor(string name, int numClasses, double dropout = 0.0) => Resolve(name).PythonConstructor(numClasses, dropout);

    /// <summary>The PyTorch definitions of the registry's networks, with the same state-dict names (a Python module).</summary>
    public static string PythonModels
    {
        get
        {
            using var stream = typeof(ModelRegistry).Assembly.GetManifestResourceStream("AdvAA.Models.advaa_models.py")
                ?? throw new InvalidOperationException("the Python model definitions are not embedded in AdvAA.Core");
            using var reader = new System.IO.StreamReader(stream);
            return reader.ReadToEnd();
        }
    }

    /// <summary>The number of trainable scalars (all parameters; batch-norm running statistics are buffers, not counted).</summary>
    public static long ParameterCount(nn.Module module) => module.parameters().Sum(p => p.numel());

    /// <summary>One line describing a model name, for help texts.</summary>
    /// <exception cref="ArgumentException">The name is not a model (as <see cref="Create"/>).</exception>
    public static string Describe(string name) => Resolve(name).Description;

    /// <summary>Checks what every classifier head needs (shared by the model constructors).</summary>
    internal static void CheckHead(int numClasses, double dropout)
    {
        if (numClasses < 1)
            throw new ArgumentException($"numClasses {numClasses} is not valid: expected at least 1", nameof(numClasses));
        if (!(dropout >= 0.0 && dropout < 1.0))
            throw new ArgumentException($"dropout {dropout.ToString(CultureInfo.InvariantCulture)} is not valid: expected a rate in [0, 1)", nameof(dropout));
    }

    /// <summary>
    /// "wrn-&lt;depth&gt;-&lt;widen&gt;": a WideResNet of that shape (checked by <see cref="WideResNet"/>); null for
    /// other names; a "wrn-" name with other text is an error naming it.
    /// </summary>
    static ModelShape? WideResNetShape(string key, string name)
    {
        const string prefix = "wrn-";
        if (!key.StartsWith(prefix, StringComparison.Ordinal)) return null;
        string[] parts = key[prefix.Length..].Split('-');
        if (parts.Length != 2
            || !int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out int depth)
            || !int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out int widen))
            throw new ArgumentException($"model '{name}' is not a WideResNet name: expected wrn-<depth>-<widen> with two integers, e.g. wrn-28-10", nameof(name));
        WideResNet.CheckShape(depth, widen);
        return new ModelShape(key,
            $"{key}: WideResNet-{depth}-{widen} (Zagoruyko & Komodakis), {(depth - 4) / 6} pre-activation basic blocks per stage, widths {16 * widen}/{32 * widen}/{64 * widen}, optional dropout",
            true, (classes, dropout) => new WideResNet(depth, widen, dropout, classes),
            (classes, dropout) => $"WideResNet({depth}, {widen}, {dropout.ToString("R", CultureInfo.InvariantCulture)}, {classes})");
    }
}
