using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text.Json.Nodes;

namespace AdvAA.Core;

/// <summary>
/// Reading the run files' JSON: a missing or mistyped field is a <see cref="RunFolderException"/>
/// naming where it was looked for (file, line, field).
/// </summary>
internal static class RecordJson
{
    public static JsonNode Field(JsonObject o, string name, string where) =>
        o[name] ?? throw new RunFolderException($"{where}: field \"{name}\" is missing");

    public static T Value<T>(JsonObject o, string name, string where)
    {
        var node = Field(o, name, where);
        try { return node.GetValue<T>(); }
        catch (Exception e) when (e is InvalidOperationException or FormatException)
        {
            throw new RunFolderException($"{where}: field \"{name}\" is {node.ToJsonString()}: expected {Expected<T>()}", e);
        }
    }

    public static T? Optional<T>(JsonObject o, string name, string where) where T : struct =>
        o[name] is null ? null : Value<T>(o, name, where);

    public static string? OptionalText(JsonObject o, string name, string where) =>
        o[name] is null ? null : Value<string>(o, name, where);

    public static JsonObject Object(JsonObject o, string name, string where) =>
        Field(o, name, where) as JsonObject ?? throw new RunFolderException($"{where}: field \"{name}\" is not a JSON object");

    public static JsonArray Array(JsonObject o, string name, string where) =>
        Field(o, name, where) as JsonArray ?? throw new RunFolderException($"{where}: field \"{name}\" is not a JSON array");

    /// <summary>A number, or one of the strings non-finite values are written as ("NaN", "Infinity").</summary>
    public static double Number(JsonNode? node, string what, string where)
    {
        if (node is JsonValue v)
        {
            if (v.TryGetValue(out double d)) return d;
            if (v.TryGetValue(out string? s) && double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out d) && !double.IsFinite(d)) return d;
        }
        throw new RunFolderException($"{where}: {what} is {node?.ToJsonString() ?? "missing"}: expected a number");
    }

    public static double Number(JsonObject o, string name, string where) => Number(Field(o, name, where), $"field \"{name}\"", where);

    public static double[] Numbers(JsonObject o, string name, string where) =>
        Array(o, name, where).Select((n, i) => Number(n, $"{name}[{i}]", where)).ToArray();

    public static string[] Texts(JsonObject o, string name, string where) =>
        Array(o, name, where).Select((n, i) => n?.GetValue<string>() ?? throw new RunFolderException($"{where}: {name}[{i}] is null")).ToArray();

    public static JsonArray NumberArray(IEnumerable<double> values) => new(values.Select(JsonOptions.Number).ToArray());

    static string Expected<T>() =>
        typeof(T) == typeof(string) ? "a text" : typeof(T) == typeof(bool) ? "true or false" : "a number";
}
