using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;

namespace AdvAA.Core.Methods;

/// <summary>
/// The controller's op and level distribution at the start of an epoch (paper Fig. 6): the share of
/// each op and level among all stages of its policies — its softmax probabilities in expectation,
/// computed exactly (<paramref name="Exact"/>) or averaged along <paramref name="Rollouts"/> sampled
/// sub-policies.
/// </summary>
public sealed record ControllerDistribution(bool Exact, int Rollouts, IReadOnlyList<KeyValuePair<string, double>> Ops, double[] Levels)
{
    /// <summary>Records of earlier versions counted the choices of <see cref="Rollouts"/> sampled policies ("policies_drawn"), with the counts' noise.</summary>
    public bool Counted { get; init; }

    public JsonObject ToJson()
    {
        var json = Exact ? new JsonObject { ["exact"] = true } : new JsonObject { [Counted ? "policies_drawn" : "rollouts"] = Rollouts };
        json["ops"] = new JsonObject(Ops.Select(o => KeyValuePair.Create(o.Key, (JsonNode?)o.Value)));
        json["levels"] = RecordJson.NumberArray(Levels);
        return json;
    }

    public static ControllerDistribution FromJson(JsonObject json, string where) => new(
        json["exact"] is JsonValue exact && exact.TryGetValue(out bool isExact) && isExact,
        json["rollouts"] != null ? RecordJson.Value<int>(json, "rollouts", where)
            : json["policies_drawn"] != null ? RecordJson.Value<int>(json, "policies_drawn", where) : 0,
        RecordJson.Object(json, "ops", where).Select(p => KeyValuePair.Create(p.Key, RecordJson.Number(p.Value, $"ops.{p.Key}", where))).ToArray(),
        RecordJson.Numbers(json, "levels", where)) { Counted = json["policies_drawn"] != null };
}
