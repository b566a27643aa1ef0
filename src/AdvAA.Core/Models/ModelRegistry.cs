using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Models;

/// <summary>The image classifiers for 32×32 inputs, by name.</summary>
public static class ModelRegistry
{
    private const string Small = "small";
    private const string ResNet18 = "resnet18";
    private const string WrnPrefix = "wrn-";

    /// <summary>The named presets; any <c>wrn-&lt;depth&gt;-&lt;widen&gt;</c> is accepted too.</summary>
    public static IReadOnlyList<string> Names { get; } = [Small, ResNet18, "wrn-28-10", "wrn-40-2"];

    /// <summary>
    /// A freshly initialised model taking normalised float32 [N,3,32,32] and returning logits [N, numClasses].
    /// Names are case-insensitive. <paramref name="dropout"/> is the WideResNet in-block dropout rate.
    /// The weights are drawn from a generator seeded by <paramref name="seed"/> alone.
    /// </summary>
    /// <exception cref="ArgumentException">An unknown name, a bad WideResNet shape, numClasses &lt; 1,
    /// dropout outside [0, 1), or dropout for a model without dropout.</exception>
    public static nn.Module<Tensor, Tensor> Create(string name, int numClasses, double dropout = 0.0, long seed = 0)
    {
        var model = Construct(name, numClasses, dropout);
        using var generator = new Generator((ulong)seed);
        Initialization.Apply(model, generator);
        return model;
    }

    /// <summary>Throws what <see cref="Create"/> would for this name and dropout, without building the model.</summary>
    /// <exception cref="ArgumentException">As <see cref="Create"/>.</exception>
    public static void Check(string name, double dropout)
    {
        string key = name.Trim().ToLowerInvariant();
        if (TryParseWideResNet(key, name, out int depth, out int widen))
        {
            WideResNet.CheckShape(depth, widen);
            CheckHead(1, dropout);
            return;
        }
        if (key is not (Small or ResNet18))
            throw new ArgumentException($"unknown model '{name}': expected one of {string.Join(", ", Names)}, or wrn-<depth>-<widen>", nameof(name));
        if (dropout != 0.0)
            throw new ArgumentException($"model '{name}' has no dropout, but dropout {dropout.ToString(CultureInfo.InvariantCulture)} was given: only wrn-* models take dropout", nameof(dropout));
    }

    static nn.Module<Tensor, Tensor> Construct(string name, int numClasses, double dropout)
    {
        Check(name, dropout);
        string key = name.Trim().ToLowerInvariant();
        if (TryParseWideResNet(key, name, out int depth, out int widen))
            return new WideResNet(depth, widen, dropout, numClasses);
        var (title, widths, blocks) = ResNetShape(key);
        return new ResNet(title, widths, blocks, numClasses);
    }

    static (string Title, int[] Widths, int[] Blocks) ResNetShape(string key) => key == Small
        // ResNet-10 with widths 16/32/128 and blocks 1/1/2: 0.51M parameters but only about 20M
        // multiply-adds per image, most of its width at 8x8 where convolutions are cheap; it trains
        // about 3x faster on a CPU than a ResNet-14 at 32/64/128 (0.70M, 105M).
        ? ("ResNet-10-small", [16, 32, 128], [1, 1, 2])
        : ("ResNet-18", [64, 128, 256, 512], [2, 2, 2, 2]);

    /// <summary>
    /// The Python expression that builds the same network with the classes of <c>advaa_models.py</c>
    /// (<see cref="PythonModels"/>), e.g. <c>ResNet([16, 32, 128], [1, 1, 2], 10)</c>.
    /// </summary>
    public static string PythonConstructor(string name, int numClasses, double dropout = 0.0)
    {
        string key = name.Trim().ToLowerInvariant();
        Describe(name);
        if (TryParseWideResNet(key, name, out int depth, out int widen))
            return $"WideResNet({depth}, {widen}, {dropout.ToString("R", CultureInfo.InvariantCulture)}, {numClasses})";
        var (_, widths, blocks) = ResNetShape(key);
        return $"ResNet([{string.Join(", ", widths)}], [{string.Join(", ", blocks)}], {numClasses})";
    }

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
    public static string Describe(string name)
    {
        string key = name.Trim().ToLowerInvariant();
        if (TryParseWideResNet(key, name, out int depth, out int widen))
        {
            WideResNet.CheckShape(depth, widen);
            return $"{key}: WideResNet-{depth}-{widen} (Zagoruyko & Komodakis), {(depth - 4) / 6} pre-activation basic blocks per stage, widths {16 * widen}/{32 * widen}/{64 * widen}, optional dropout";
        }
        return key switch
        {
            Small => $"{Small}: ResNet-10 (1/1/2 basic blocks, widths 16/32/128, 0.51M parameters), fast on a CPU",
            ResNet18 => $"{ResNet18}: ResNet-18 with the CIFAR stem (3x3 conv at stride 1, no max-pool), widths 64/128/256/512, about 11.2M parameters",
            _ => throw new ArgumentException($"unknown model '{name}': expected one of {string.Join(", ", Names)}, or wrn-<depth>-<widen>", nameof(name)),
        };
    }

    /// <summary>Checks what every classifier head needs (shared by the model constructors).</summary>
    internal static void CheckHead(int numClasses, double dropout)
    {
        if (numClasses < 1)
            throw new ArgumentException($"numClasses {numClasses} is not valid: expected at least 1", nameof(numClasses));
        if (!(dropout >= 0.0 && dropout < 1.0))
            throw new ArgumentException($"dropout {dropout.ToString(CultureInfo.InvariantCulture)} is not valid: expected a rate in [0, 1)", nameof(dropout));
    }

    /// <summary>Parses "wrn-&lt;depth&gt;-&lt;widen&gt;" (the values are checked by <see cref="WideResNet"/>);
    /// a "wrn-" name with other text is an error naming it.</summary>
    private static bool TryParseWideResNet(string key, string name, out int depth, out int widen)
    {
        depth = widen = 0;
        if (!key.StartsWith(WrnPrefix, StringComparison.Ordinal)) return false;
        string[] parts = key[WrnPrefix.Length..].Split('-');
        if (parts.Length == 2
            && int.TryParse(parts[0], NumberStyles.None, CultureInfo.InvariantCulture, out depth)
            && int.TryParse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture, out widen))
            return true;
        throw new ArgumentException($"model '{name}' is not a WideResNet name: expected wrn-<depth>-<widen> with two integers, e.g. wrn-28-10", nameof(name));
    }
}
