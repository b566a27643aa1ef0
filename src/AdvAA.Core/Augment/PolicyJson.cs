using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AdvAA.Core.Augment;

/// <summary>
/// The policy file format. Version 1 holds one policy, which every copy of an image draws from:
/// <code>
/// { "format": "advaa-policy", "version": 1,
///   "subPolicies": [ [ { "op": "Invert", "level": 0, "probability": 0.1 }, { "op": "Contrast", "level": 6 } ], ... ] }
/// </code>
/// Version 2 holds M policies, one per instance (copy m of each batch uses policy m), as
/// `advaa policy export` writes a run's learned policies: <c>"policies": [ [ sub-policies ], ... ]</c>.
/// Each sub-policy is an array of stages; "probability" is optional (default 1); an optional
/// "source" says where the policy came from. Unknown fields are errors; errors name the source,
/// the JSON path of the bad field and its value.
/// </summary>
public static class PolicyJson
{
    public const string FormatName = "advaa-policy";
    public const int Version = 1;
    public const int PerInstanceVersion = 2;

    /// <summary>One policy as indented version-1 JSON (probability written only where it is not 1).</summary>
    public static string Serialize(Policy policy) => Serialize(PolicyDocument.Single(policy));

    /// <summary>A document as indented JSON: version 1 for one policy, 2 for one per instance.</summary>
    public static string Serialize(PolicyDocument document) => ToJson(document).ToJsonString(JsonOptions.Indented) + "\n";

    /// <summary>A document as a JSON object (what config.json records of a policy).</summary>
    public static JsonObject ToJson(PolicyDocument document)
    {
        static JsonArray SubPolicies(Policy policy) => new(policy.SubPolicies.Select(sub => (JsonNode?)new JsonArray(sub.Stages.Select(stage =>
        {
            var o = new JsonObject { ["op"] = stage.Op, ["level"] = stage.Level };
            if (stage.Probability != 1.0) o["probability"] = stage.Probability;
            return (JsonNode?)o;
        }).ToArray())).ToArray());
        var json = new JsonObject { ["format"] = FormatName, ["version"] = document.PerInstance ? PerInstanceVersion : Version };
        if (document.Source != null) json["source"] = document.Source;
        if (document.PerInstance) json["policies"] = new JsonArray(document.Policies.Select(p => (JsonNode?)SubPolicies(p)).ToArray());
        else json["subPolicies"] = SubPolicies(document.Policies[0]);
        return json;
    }

    public static void Write(Policy policy, string path) => File.WriteAllText(path, Serialize(policy));

    /// <summary>Reads a version-1 policy file; with a space, op names and levels are checked against it too.</summary>
    public static Policy Read(string path, SearchSpace? space = null) => Single(ReadDocument(path, space), path);

    /// <summary>Parses version-1 policy JSON; <paramref name="source"/> names it in errors.</summary>
    public static Policy Parse(string json, string source = "policy", SearchSpace? space = null) => Single(ParseDocument(json, source, space), source);

    static Policy Single(PolicyDocument document, string source) =>
        document.PerInstance
            ? throw new AugmentException($"{source}: holds {document.Policies.Count} {(document.Policies.Count == 1 ? "policy" : "policies")} for one instance each (version {PerInstanceVersion}); one policy for every copy (version {Version}) is expected here")
            : document.Policies[0];

    /// <summary>Reads a policy file of either version; its absolute path becomes the document's source unless the file names one.</summary>
    public static PolicyDocument ReadDocument(string path, SearchSpace? space = null)
    {
        string text, full = Path.GetFullPath(path);
        FileInfo file = RegularFile.Resolve(full, out string? problem) ?? throw new AugmentException($"{full}: cannot read the policy file: {problem}");
        try { text = File.ReadAllText(file.FullName); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new AugmentException($"{full}: cannot read the policy file: {e.Message}", e);
        }
        var document = ParseDocument(text, full, space);
        return document.Source == null ? document with { Source = full } : document;
    }

    /// <summary>Parses policy JSON of either version; <paramref name="source"/> names it in errors.</summary>
    public static PolicyDocument ParseDocument(string json, string source = "policy", SearchSpace? space = null)
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
            var format = Field(source, "$", root, "format");
            if (format.ValueKind != JsonValueKind.String || format.GetString() != FormatName)
                throw Bad(source, "$.format", format, $"\"{FormatName}\"");
            var version = Field(source, "$", root, "version");
            if (version.ValueKind != JsonValueKind.Number || !version.TryGetInt32(out int v) || v is not (Version or PerInstanceVersion))
                throw Bad(source, "$.version", version, $"{Version} or {PerInstanceVersion} (the versions this AdvAA reads)");
            bool perInstance = v == PerInstanceVersion;
            string body = perInstance ? "policies" : "subPolicies";
            CheckFields(source, "$", root, "format", "version", "source", body);
            string? from = null;
            if (root.TryGetProperty("source", out var s))
            {
                if (s.ValueKind != JsonValueKind.String) throw Bad(source, "$.source", s, "a text saying where the policy came from");
                from = s.GetString();
            }
            var content = Field(source, "$", root, body);
            if (!perInstance)
                return new PolicyDocument([ReadPolicy(source, "$.subPolicies", content, space)], false, from);
            if (content.ValueKind != JsonValueKind.Array || content.GetArrayLength() == 0)
                throw Bad(source, "$.policies", content, "a non-empty array of policies");
            var policies = content.EnumerateArray().Select((p, m) => ReadPolicy(source, $"$.policies[{m}]", p, space)).ToArray();
            return new PolicyDocument(policies, true, from);
        }
    }

    static Policy ReadPolicy(string source, string path, JsonElement subs, SearchSpace? space)
    {
        if (subs.ValueKind != JsonValueKind.Array || subs.GetArrayLength() == 0)
            throw Bad(source, path, subs, "a non-empty array of sub-policies");
        var result = new List<SubPolicy>();
        int q = 0;
        foreach (var sub in subs.EnumerateArray())
        {
            string subPath = $"{path}[{q}]";
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

    /// <summary>
    /// Checks every stage of <paramref name="document"/> against <paramref name="space"/> (its op names
    /// and levels), naming the file and the stage's JSON path as parsing does.
    /// </summary>
    public static void CheckAgainst(PolicyDocument document, SearchSpace space)
    {
        string source = document.Source ?? "policy";
        for (int m = 0; m < document.Policies.Count; m++)
        {
            string policyPath = document.PerInstance ? $"$.policies[{m}]" : "$.subPolicies";
            var subs = document.Policies[m].SubPolicies;
            for (int q = 0; q < subs.Count; q++)
                for (int k = 0; k < subs[q].Stages.Count; k++)
                {
                    PolicyStage stage = subs[q].Stages[k];
                    string path = $"{policyPath}[{q}][{k}]";
                    int op;
                    try { op = space.IndexOf(stage.Op); }
                    catch (AugmentException x) { throw new AugmentException($"{source}: {path}.op: {x.Message}"); }
                    if (stage.Level < 0 || stage.Level >= space.Levels)
                        throw new AugmentException($"{source}: {path}.level is {stage.Level}; expected a whole number in 0..{space.Levels - 1} (the levels of {space.Ops[op].Name} in this search space)");
                }
        }
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
