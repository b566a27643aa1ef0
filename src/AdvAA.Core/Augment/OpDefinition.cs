using System;
using System.Globalization;

namespace AdvAA.Core.Augment;

/// <summary>What an op does to an image; ops of one kind are computed together in a stage.</summary>
public enum OpKind
{
    /// <summary>Moves pixels (shear, translate, rotate): nearest-neighbour sampling, fill 128.</summary>
    Geometric,
    /// <summary>Maps each intensity on its own (Invert, Solarize, Posterize).</summary>
    Color,
    /// <summary>Maps intensities from each channel's histogram (AutoContrast, Equalize).</summary>
    Histogram,
    /// <summary>Blends the image with a derived one (PIL ImageEnhance: Contrast, Color, Brightness, Sharpness).</summary>
    Blend,
    /// <summary>Blends the image with another image of the batch (SamplePairing).</summary>
    Pairing,
    /// <summary>Fills a square with grey.</summary>
    Cutout,
    /// <summary>Leaves the image unchanged.</summary>
    Identity,
    /// <summary>A user op (<see cref="ICustomOp"/>), computed by its own code.</summary>
    Custom,
}

/// <summary>
/// One op, defined once: its semantics, its default magnitude range and how levels map onto it.
/// Raw values are in the op's own unit (shear factor, pixels, degrees, threshold, bits, factor, weight).
/// </summary>
public sealed class OpDefinition
{
    internal OpDefinition(string name, OpKind kind, double low, double high, bool signed, bool hasMagnitude,
        bool isInteger, double neutral, double min, double max, string description, OpCompute? compute)
    {
        if (string.IsNullOrWhiteSpace(name))
            throw new AugmentException("an op needs a non-empty name");
        Name = name;
        Kind = kind;
        HasMagnitude = hasMagnitude;
        IsInteger = isInteger;
        Neutral = neutral;
        Min = min;
        Max = max;
        Description = description;
        Compute = compute;
        if (hasMagnitude)
        {
            CheckValue(low, "low end of the range");
            CheckValue(high, "high end of the range");
            if (signed)
            {
                CheckValue(Reflect(low), "low end of the range reflected by the random sign");
                CheckValue(Reflect(high), "high end of the range reflected by the random sign");
            }
        }
        else if (low != neutral || high != neutral || signed)
            throw new AugmentException($"{name} has no magnitude: its range and sign cannot be set");
        Low = low;
        High = high;
        Signed = signed;
    }

    /// <summary>A user op with a magnitude in [low, high] (any finite raw value is valid; the sign reflects about 0).</summary>
    public static OpDefinition Custom(string name, string description, double low = 0, double high = 1, bool signed = false) =>
        new(name, OpKind.Custom, low, high, signed, true, false, 0, double.NegativeInfinity, double.PositiveInfinity, description, null);

    /// <summary>A user op without a magnitude (its value is always 0).</summary>
    public static OpDefinition CustomWithoutMagnitude(string name, string description) =>
        new(name, OpKind.Custom, 0, 0, false, false, false, 0, 0, 0, description, null);

    public string Name { get; }
    public OpKind Kind { get; }
    /// <summary>Raw value at level 0.</summary>
    public double Low { get; }
    /// <summary>Raw value at the top level.</summary>
    public double High { get; }
    /// <summary>Whether each application draws a random sign: the value is then reflected about <see cref="Neutral"/>.</summary>
    public bool Signed { get; }
    /// <summary>False for ops whose value is unused (AutoContrast, Invert, Equalize, Identity).</summary>
    public bool HasMagnitude { get; }
    /// <summary>Whole-unit values (pixels, bits, thresholds): a level's value is truncated towards <see cref="Low"/>.</summary>
    public bool IsInteger { get; }
    /// <summary>The raw value that leaves an image unchanged (0 for shifts, 1 for enhancement factors, 8 bits, threshold 256).</summary>
    public double Neutral { get; }
    /// <summary>Smallest raw value the op's semantics accept.</summary>
    public double Min { get; }
    /// <summary>Largest raw value the op's semantics accept.</summary>
    public double Max { get; }
    public string Description { get; }

    /// <summary>How a built-in op is computed; null for <see cref="OpKind.Custom"/> (the search space supplies it).</summary>
    internal OpCompute? Compute { get; }

    /// <summary>A copy with another range; both ends (and their reflections, if signed) must be valid raw values.</summary>
    public OpDefinition WithRange(double low, double high) =>
        new(Name, Kind, low, high, Signed, HasMagnitude, IsInteger, Neutral, Min, Max, Description, Compute);

    /// <summary>A copy with or without the random sign; signed values must stay valid after reflection.</summary>
    public OpDefinition WithSigned(bool signed) =>
        new(Name, Kind, Low, High, signed, HasMagnitude, IsInteger, Neutral, Min, Max, Description, Compute);

    /// <summary>
    /// The raw value (before the sign) at a level: levels 0..levels−1 map linearly Low → High; whole-unit
    /// ops truncate the distance from Low (AutoAugment's int_parameter); ops without magnitude give <see cref="Neutral"/>.
    /// </summary>
    public double ValueAt(double level, int levels)
    {
        if (levels < 2)
            throw new AugmentException($"levels must be at least 2, got {levels}");
        if (!(level >= 0 && level <= levels - 1))
            throw new AugmentException($"{Name}: level {Format(level)} is outside 0..{levels - 1}");
        if (!HasMagnitude) return Neutral;
        double offset = (High - Low) * level / (levels - 1);
        return Low + (IsInteger ? Math.Truncate(offset) : offset);
    }

    /// <summary>The value with a negative sign: reflected about <see cref="Neutral"/>.</summary>
    public double Reflect(double value) => 2 * Neutral - value;

    /// <summary>Throws unless <paramref name="value"/> is a finite value in [Min, Max] (always true for ops without magnitude).</summary>
    public void CheckValue(double value, string what = "value")
    {
        if (ValueProblem(value, what) is { } problem) throw new AugmentException(problem);
    }

    /// <summary>Why a raw value is not valid for this op, or null when it is.</summary>
    internal string? ValueProblem(double value, string what) =>
        !HasMagnitude || (double.IsFinite(value) && value >= Min && value <= Max)
            ? null
            : $"{Name}: {what} {Format(value)} is outside the valid range {ValidRangeText}";

    /// <summary>"0 → 0.3" (the search range), or "–" without magnitude.</summary>
    public string RangeText => HasMagnitude ? $"{Format(Low)} → {Format(High)}" : "–";

    /// <summary>The valid raw values, e.g. "0..8" or "any finite value".</summary>
    public string ValidRangeText =>
        (double.IsInfinity(Min), double.IsInfinity(Max)) switch
        {
            (true, true) => "(any finite value)",
            (false, true) => $"{Format(Min)}..∞",
            (true, false) => $"-∞..{Format(Max)}",
            _ => $"{Format(Min)}..{Format(Max)}",
        };

    public override string ToString() => $"{Name} [{RangeText}{(Signed ? ", ±" : "")}]";

    internal static string Format(double v) => v.ToString("0.####", CultureInfo.InvariantCulture);
}
