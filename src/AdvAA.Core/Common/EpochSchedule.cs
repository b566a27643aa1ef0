using System;
using System.Globalization;

namespace AdvAA.Core;

/// <summary>
/// A value over training progress in (fractional) epochs from 0, with the description config.json
/// records: a learning rate, M, a magnitude scale, a probability. The F# DSL builds them from its
/// schedules; <see cref="Constant"/> covers the command line.
/// </summary>
public sealed class EpochSchedule
{
    readonly Func<double, double> at;

    public EpochSchedule(Func<double, double> at, string description)
    {
        ArgumentNullException.ThrowIfNull(at);
        ArgumentException.ThrowIfNullOrWhiteSpace(description);
        this.at = at;
        Description = description;
    }

    /// <summary>A readable formula, e.g. "cosine 0.1→0 over 200" or "8".</summary>
    public string Description { get; }

    /// <summary>The value at a (fractional) epoch.</summary>
    public double At(double epoch) => at(epoch);

    /// <summary>The same value throughout, described by its shortest round-trip text.</summary>
    public static EpochSchedule Constant(double value) =>
        double.IsFinite(value)
            ? new(_ => value, value.ToString("R", CultureInfo.InvariantCulture))
            : throw new ArgumentException($"a constant schedule needs a finite value, got {value}", nameof(value));

    /// <summary>
    /// A schedule read back from its description: a number is a constant; any other formula can be
    /// shown and compared but not evaluated (only the script that wrote it can).
    /// </summary>
    public static EpochSchedule Recorded(string description) =>
        double.TryParse(description, NumberStyles.Float, CultureInfo.InvariantCulture, out double v) && double.IsFinite(v)
            ? Constant(v)
            : new(_ => throw new InvalidOperationException($"the schedule '{description}' was read back from a run folder and cannot be evaluated"), description);

    public override string ToString() => Description;
}
