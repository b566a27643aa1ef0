using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;

namespace AdvAA.Core;

/// <summary>Where two JSON documents differ, by path: what identity checks, resumes and ranks report.</summary>
public static class JsonDifferences
{
    /// <summary>Every value that differs between two JSON documents, by its path ("method.n", "epochs").</summary>
    public static IEnumerable<(string Setting, JsonNode? From, JsonNode? To)> All(JsonNode? recorded, JsonNode? now, string path = "")
    {
        if (recorded is JsonObject a && now is JsonObject b)
            return a.Select(p => p.Key).Union(b.Select(p => p.Key)).SelectMany(key => All(a[key], b[key], path.Length == 0 ? key : $"{path}.{key}"));
        if (recorded is JsonArray x && now is JsonArray y && x.Count == y.Count)
            return Enumerable.Range(0, x.Count).SelectMany(i => All(x[i], y[i], $"{path}[{i}]"));
        return Compact(recorded) == Compact(now) ? [] : [(path, recorded?.DeepClone(), now?.DeepClone())];
    }

    /// <summary>The first difference as "path: recorded X, now Y", or null when the documents match.</summary>
    public static string? First(JsonNode? recorded, JsonNode? now) =>
        All(recorded, now).Select(d => $"{d.Setting}: recorded {Shorten(Compact(d.From))}, now {Shorten(Compact(d.To))}").FirstOrDefault();

    /// <summary>A value as one line of JSON ("null" for none).</summary>
    public static string Compact(JsonNode? node) => node?.ToJsonString(JsonOptions.Compact) ?? "null";

    static string Shorten(string json) => json.Length <= 120 ? json : json[..117] + "...";
}
