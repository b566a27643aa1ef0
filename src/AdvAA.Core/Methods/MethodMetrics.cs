using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;

namespace AdvAA.Core.Methods;

/// <summary>
/// A value a method records each epoch under a name of its own: a number, or numbers by name (one
/// per group). metrics.jsonl, TensorBoard, the epoch line and the report read them by name, so a
/// method adds a metric where it computes it, and describes it once (<see cref="MetricDescription"/>).
/// </summary>
public abstract record MetricValue
{
    /// <summary>One number.</summary>
    public sealed record Number(double Value) : MetricValue;

    /// <summary>Numbers by name, in order (e.g. one per group).</summary>
    public sealed record Named(IReadOnlyList<KeyValuePair<string, double>> Values) : MetricValue;

    public JsonNode ToJson() => this switch
    {
        Number n => JsonOptions.Number(n.Value),
        Named m => new JsonObject(m.Values.Select(v => KeyValuePair.Create(v.Key, (JsonNode?)JsonOptions.Number(v.Value)))),
        _ => throw new System.InvalidOperationException(GetType().Name),
    };

    /// <summary>The value a metrics.jsonl field holds: a number (or a non-finite one as text), or an object of numbers; null for JSON null.</summary>
    public static MetricValue? FromJson(JsonNode? node, string name, string where) => node switch
    {
        null => null,
        JsonObject o => new Named(o.Select(p => KeyValuePair.Create(p.Key, RecordJson.Number(p.Value, $"{name}.{p.Key}", where))).ToList()),
        _ => new Number(RecordJson.Number(node, name, where)),
    };
}

/// <summary>
/// How to show one of a method's metrics: its name in metrics.jsonl, a title and axis for its plot
/// (written as <paramref name="Plot"/>.png by the report; null: not plotted), and its label on the
/// epoch line and in the report's table (null: not shown there).
/// </summary>
public sealed record MetricDescription(string Name, string Title, string Axis, string? Plot, string? Label);
