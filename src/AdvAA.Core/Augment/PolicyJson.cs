using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;

namespace AdvAA.Core.Augment;

/// <summary>
/// The policy file format, version 1:
/// <code>
/// { "format": "advaa-policy", "version": 1,
///   "subPolicies": [ [ { "op": "Invert", "level": 0, "probability": 0.1 }, { "op": "Contrast", "level": 6 } ], ... ] }
/// </code>
/// Each sub-policy is an array of stages; "probability" is optional (default 1). Unknown fields are errors.
/// Errors name the source, the JSON path of the bad field and its value.
/// </summary>
public static class PolicyJson
{
    public const string FormatName = "advaa-policy";
    public const int Version = 1;

    /// <summary>The policy as indented JSON (probability written only where it is not 1).</summary>
    public static string Serialize(Policy policy)
    {
        using var stream = new MemoryStream();
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteString("format", FormatName);
            w.WriteNumber("version", Version);
            w.WriteStartArray("subPolicies");
            foreach (var sub in policy.SubPolicies)
            {
                w.WriteStartArray();
                foreach (var stage in sub.Stages)
                {
                    w.WriteStartObject();
                    w.WriteString("op", stage.Op);
                    w.WriteNumber("level", stage.Level);
                    if (stage.Probability != 1.0) w.WriteNumber("probability", stage.Probability);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(stream.ToArray()) + "\n";
    }

    public static void Write(Policy policy, string path) => File.WriteAllText(path, Serialize(policy));

    /// <summary>Reads a policy file; with a space, op names and levels are checked against it too.</summary>
    public static Policy Read(string path, SearchSpace? space = null)
    {
        string text;
        try { text = File.ReadAllText(path); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AugmentException($"{path}: cannot read the policy file: {e.Message}", e);
        }
        return Parse(text, path, space);
    }

    /// <summary>Parses policy JSON; <paramref name="source"/> names it in errors.</summary>
    public static Policy Parse(string json, string source = "policy", SearchSpace? space = null)
    {
        JsonDocument doc;
        try { doc = JsonDocument.Parse(json); }
        catch (JsonException e)
        {
            throw new AugmentException($"{source}: not valid JSON (line {e.LineNumber + 1}, byte {e.BytePositionInLine + 1}): {e.Message}", e);
        }
        using (doc)
        {
            var root = doc.RootElement;
            Expect(source, "$", root, JsonValueKind.Object, "an object");
            CheckFields(source, "$", root, "format", "version", "subPolicies");
            var format = Field(source, "$", root, "format");
            if (format.ValueKind != JsonValueKind.String || format.GetString() != FormatName)
                throw Bad(source, "$.format", format, $"\"{FormatName}\"");
            var version = Field(source, "$", root, "version");
            if (version.ValueKind != JsonValueKind.Number || !version.TryGetInt32(out int v) || v != Version)
                throw Bad(source, "$.version", version, $"{Version} (the only version this AdvAA reads)");
            var subs = Field(source, "$", root, "subPolicies");
            Expect(source, "$.subPolicies", subs, JsonValueKind.Array, "a non-empty array of sub-policies");
            if (subs.GetArrayLength() == 0)
                throw Bad(source, "$.subPolicies", subs, "a non-empty array of sub-policies");
            var result = new List<SubPolicy>();
            int q = 0;
            foreach (var sub in subs.EnumerateArray())
            {
                string subPath = $"$.subPolicies[{q}]";
                if (sub.ValueKind != JsonValueKind.Array || sub.GetArrayLength() == 0)
                    throw Bad(source, subPath, sub, "a non-empty array of stages");
                var stages = new List<PolicyStage>();
                int k = 0;
                foreach (var stage in sub.EnumerateArray())
                    stages.Add(ReadStage(source, $"{subPath}[{k++}]", stage, space));
                result.Add(new SubPolicy(stages));
                q++;
            }
            return new Policy(result);
        }
    }

    static PolicyStage ReadStage(string source, string path, JsonElement e, SearchSpace? space)
    {
        Expect(source, path, e, JsonValueKind.Object, "an object with op, level and optionally probability");
        CheckFields(source, path, e, "op", "level", "probability");
        var op = Field(source, path, e, "op");
        if (op.ValueKind != JsonValueKind.String || string.IsNullOrWhiteSpace(op.GetString()))
            throw Bad(source, path + ".op", op, "an op name");
        string name = op.GetString()!;
        if (space != null)
        {
            try { name = space.Ops[space.IndexOf(name)].Name; }
            catch (AugmentException x) { throw new AugmentException($"{source}: {path}.op: {x.Message}"); }
        }
        var level = Field(source, path, e, "level");
        int maxLevel = space?.Levels - 1 ?? int.MaxValue;
        if (level.ValueKind != JsonValueKind.Number || !level.TryGetInt32(out int l) || l < 0 || l > maxLevel)
            throw Bad(source, path + ".level", level, space == null ? "a whole number ≥ 0" : $"a whole number in 0..{maxLevel}");
        double probability = 1.0;
        if (e.TryGetProperty("probability", out var p))
        {
            if (p.ValueKind != JsonValueKind.Number || !(p.GetDouble() is >= 0 and <= 1))
                throw Bad(source, path + ".probability", p, "a number in 0..1");
            probability = p.GetDouble();
        }
        return new PolicyStage(name, l, probability);
    }

    static void Expect(string source, string path, JsonElement e, JsonValueKind kind, string expected)
    {
        if (e.ValueKind != kind) throw Bad(source, path, e, expected);
    }

    static JsonElement Field(string source, string path, JsonElement obj, string name) =>
        obj.TryGetProperty(name, out var value)
            ? value
            : throw new AugmentException($"{source}: {path}.{name} is missing");

    static void CheckFields(string source, string path, JsonElement obj, params string[] known)
    {
        foreach (var property in obj.EnumerateObject())
            if (!known.Contains(property.Name))
                throw new AugmentException($"{source}: {path}.{property.Name} is not a field of this format; expected {string.Join(", ", known)}");
    }

    static AugmentException Bad(string source, string path, JsonElement value, string expected) =>
        new($"{source}: {path} is {value.GetRawText()}; expected {expected}");
}
