using System;
using System.Globalization;
using System.Text.Json.Nodes;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Augment;

/// <summary>
/// Label mixing after any method: pairs of samples blended into one input with a soft target that
/// blends their labels in the same proportion, λ ~ Beta(α, α), one λ per batch. Partners come from
/// the same instance (a permutation within each copy block), so instance m's loss stays policy m's.
/// It works on the normalised float inputs the target sees.
/// </summary>
public abstract record LabelMixing(double Alpha)
{
    /// <summary>"mixup" or "cutmix".</summary>
    public abstract string Name { get; }

    /// <summary>"mixup:1" as `--mix` takes it.</summary>
    public string Text => $"{Name}:{Alpha.ToString("R", CultureInfo.InvariantCulture)}";

    public static LabelMixing Parse(string text)
    {
        string[] parts = text.Trim().Split(':');
        string name = parts[0].ToLowerInvariant();
        double alpha = 1.0;
        if (parts.Length > 2 || (parts.Length == 2 && !double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out alpha)))
            throw new AugmentException($"--mix {text}: expected mixup[:alpha] or cutmix[:alpha], e.g. mixup:1.0");
        LabelMixing mix = name switch
        {
            "mixup" => new Mixup(alpha),
            "cutmix" => new CutMix(alpha),
            _ => throw new AugmentException($"--mix {text}: unknown label mixing '{parts[0]}'; expected mixup or cutmix"),
        };
        return mix.Checked();
    }

    /// <summary>Throws unless α is a finite positive number (Beta(α, α) needs it).</summary>
    public LabelMixing Checked() =>
        double.IsFinite(Alpha) && Alpha > 0 ? this : throw new AugmentException($"{Name} alpha = {Alpha.ToString(CultureInfo.InvariantCulture)}: expected a number above 0 (λ ~ Beta(alpha, alpha))");

    public JsonObject ToJson() => new() { ["name"] = Name, ["alpha"] = Alpha };

    public static LabelMixing FromJson(JsonObject json, string where)
    {
        string name = json["name"]?.GetValue<string>() ?? throw new AugmentException($"{where}: mix has no name");
        double alpha = json["alpha"]?.GetValue<double>() ?? throw new AugmentException($"{where}: mix has no alpha");
        return Parse($"{name}:{alpha.ToString("R", CultureInfo.InvariantCulture)}");
    }

    /// <summary>
    /// Mixes float inputs [B,C,H,W] (B = instances · N, instance-major) and their targets (int64 [B]
    /// labels or float32 [B, classes]); returns the mixed inputs and float32 [B, classes] targets.
    /// </summary>
    public (Tensor Inputs, Tensor Targets) Apply(Tensor inputs, Tensor targets, int classes, int instances, Generator generator)
    {
        using var scope = NewDisposeScope();
        long b = inputs.shape[0], n = b / instances;
        var soft = targets.dim() == 2 ? targets.to_type(ScalarType.Float32) : nn.functional.one_hot(targets, classes).to_type(ScalarType.Float32);
        // One permutation of each copy block's N samples.
        var permutation = randperm(n, generator: generator);
        var partners = arange(instances, dtype: ScalarType.Int64).mul_(n).view(-1, 1).add(permutation.view(1, -1)).view(-1).to(inputs.device);
        double lambda = Beta(Alpha, generator);
        var (mixed, weight) = Blend(inputs, inputs.index_select(0, partners), lambda, generator);
        var mixedTargets = soft.mul(weight).add_(soft.index_select(0, partners).mul(1 - weight));
        return (mixed.MoveToOuterDisposeScope(), mixedTargets.MoveToOuterDisposeScope());
    }

    /// <summary>The inputs blended with their partners for a drawn λ, and the weight of the first label.</summary>
    protected abstract (Tensor Mixed, double Weight) Blend(Tensor inputs, Tensor partners, double lambda, Generator generator);

    /// <summary>A Beta(α, α) draw from two Gamma(α) draws (Marsaglia and Tsang), seeded by the generator.</summary>
    internal static double Beta(double alpha, Generator generator)
    {
        using var seed = randint(0, int.MaxValue, [1], generator: generator);
        var random = new Random((int)seed.item<long>());
        double x = Gamma(alpha, random), y = Gamma(alpha, random);
        return x / (x + y);
    }

    static double Gamma(double shape, Random random)
    {
        if (shape < 1) return Gamma(shape + 1, random) * Math.Pow(random.NextDouble(), 1 / shape);
        double d = shape - 1.0 / 3, c = 1 / Math.Sqrt(9 * d);
        while (true)
        {
            double z, v;
            do
            {
                // Box-Muller normal
                z = Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());
                v = 1 + c * z;
            } while (v <= 0);
            v = v * v * v;
            double u = random.NextDouble();
            if (u < 1 - 0.0331 * z * z * z * z || Math.Log(u) < 0.5 * z * z + d * (1 - v + Math.Log(v))) return d * v;
        }
    }
}

/// <summary>mixup (Zhang et al. 2018): x = λ·x + (1 − λ)·x', y = λ·y + (1 − λ)·y'.</summary>
public sealed record Mixup(double Alpha) : LabelMixing(Alpha)
{
    public override string Name => "mixup";

    protected override (Tensor Mixed, double Weight) Blend(Tensor inputs, Tensor partners, double lambda, Generator generator) =>
        (inputs.mul(lambda).add_(partners.mul(1 - lambda)), lambda);
}

/// <summary>
/// CutMix (Yun et al. 2019): a box of area (1 − λ) of the image, centre uniform and clipped at the
/// borders, pasted from the partner; the labels weighted by the areas actually kept.
/// </summary>
public sealed record CutMix(double Alpha) : LabelMixing(Alpha)
{
    public override string Name => "cutmix";

    protected override (Tensor Mixed, double Weight) Blend(Tensor inputs, Tensor partners, double lambda, Generator generator)
    {
        long h = inputs.shape[2], w = inputs.shape[3];
        double side = Math.Sqrt(1 - lambda);
        long cutH = (long)(h * side), cutW = (long)(w * side);
        using var centre = rand([2], generator: generator);
        var c = centre.data<float>();
        long cy = Math.Min(h - 1, (long)(c[0] * h)), cx = Math.Min(w - 1, (long)(c[1] * w));
        long y0 = Math.Clamp(cy - cutH / 2, 0, h), y1 = Math.Clamp(cy + cutH / 2, 0, h);
        long x0 = Math.Clamp(cx - cutW / 2, 0, w), x1 = Math.Clamp(cx + cutW / 2, 0, w);
        var mixed = inputs.clone();
        if (y1 > y0 && x1 > x0)
            mixed.narrow(2, y0, y1 - y0).narrow(3, x0, x1 - x0).copy_(partners.narrow(2, y0, y1 - y0).narrow(3, x0, x1 - x0));
        return (mixed, 1 - (double)((y1 - y0) * (x1 - x0)) / (h * w));
    }
}
