using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;

namespace AdvAA.Core;

/// <summary>
/// A value over training progress in (fractional) epochs from 0, with the description config.json
/// records: a learning rate, M, a magnitude scale, a probability. The F# DSL builds them from its
/// schedules; <see cref="Constant"/> covers the command line.
/// </summary>
public sealed class EpochSchedule
{
    readonly Func<double, double> at;

    /// <param name="breakpoints">Epochs where the schedule changes shape (steps, the ends of pieces): validation checks them besides its grid.</param>
    public EpochSchedule(Func<double, double> at, string description, IReadOnlyList<double>? breakpoints = null)
    {
        ArgumentNullException.ThrowIfNull(at);
        ArgumentException.ThrowIfNullOrWhiteSpace(description);
        this.at = at;
        Description = description;
        Breakpoints = breakpoints ?? [];
    }

    public IReadOnlyList<double> Breakpoints { get; }

    /// <summary>Intervals of the validation grid over the whole run (0.01 epoch for 200 epochs).</summary>
    const int GridIntervals = 20_000;

    /// <summary>
    /// The first epoch of a run of <paramref name="epochs"/> where the value is not <paramref name="valid"/>
    /// (NaN and infinities never are), and the value there; null when it stays valid. Checked on a
    /// fine grid, at every whole and half epoch and at every breakpoint.
    /// </summary>
    public (double Epoch, double Value)? FirstInvalid(int epochs, Func<double, bool> valid) =>
        Enumerable.Range(0, GridIntervals + 1).Select(i => epochs * (double)i / GridIntervals)
            .Concat(Enumerable.Range(0, 2 * epochs + 1).Select(i => i / 2.0))
            .Concat(Breakpoints)
            .Where(e => e >= 0 && e <= epochs)
            .Order()
            .Select(e => (Epoch: e, Value: At(e)))
            .Cast<(double Epoch, double Value)?>()
            .FirstOrDefault(p => !(double.IsFinite(p!.Value.Value) && valid(p.Value.Value)));

    /// <summary>A readable formula, e.g. "cosine 0.1→0 over 200" or "8".</summary>
    public string Description { get; }

    /// <summary>The value at a (fractional) epoch.</summary>
    public double At(double epoch) => at(epoch);

    /// <summary>The same value throughout, described by its shortest round-trip text.</summary>
    public static EpochSchedule Constant(double value) =>
        double.IsFinite(value)
            ? new(_ => value, value.ToString("R", CultureInfo.InvariantCulture))
            : throw new ArgumentException($"a constant schedule needs a finite value, got {value}", nameof(value));

    /// <summary>A cosine from <paramref name="first"/> at epoch 0 to <paramref name="last"/> at <paramref name="epochs"/>, then <paramref name="last"/>.</summary>
    public static EpochSchedule Cosine(double first, double last, double epochs) =>
        new(e => e <= 0 ? first : e >= epochs ? last : last + (first - last) * (1.0 + Math.Cos(Math.PI * e / epochs)) / 2.0,
            $"cosine {Text(first)}→{Text(last)} over {Text(epochs)}", [epochs]);

    /// <summary><paramref name="initial"/>, multiplied by <paramref name="factor"/> at each milestone epoch.</summary>
    public static EpochSchedule Step(double initial, double factor, IReadOnlyList<double> milestones) =>
        new(e => milestones.Aggregate(initial, (v, m) => e >= m ? v * factor : v),
            $"step {Text(initial)} ×{Text(factor)} at {string.Join(",", milestones.Select(Text))}", milestones.ToArray());

    /// <summary>A number as descriptions write it: its shortest round-trip text.</summary>
    static string Text(double v) => v.ToString("R", CultureInfo.InvariantCulture);

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
