using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;

namespace AdvAA.Core.Methods;

/// <summary>The controller's op and level distribution of one epoch (paper Fig. 6), from many policies drawn on their own stream.</summary>
public sealed record ControllerDistribution(int PoliciesDrawn, IReadOnlyList<KeyValuePair<string, double>> Ops, double[] Levels)
{
    public JsonObject ToJson() => new()
    {
        ["policies_drawn"] = PoliciesDrawn,
        ["ops"] = new JsonObject(Ops.Select(o => KeyValuePair.Create(o.Key, (JsonNode?)o.Value))),
        ["levels"] = RecordJson.NumberArray(Levels),
    };

    public static ControllerDistribution FromJson(JsonObject json, string where) => new(
        RecordJson.Value<int>(json, "policies_drawn", where),
        RecordJson.Object(json, "ops", where).Select(p => KeyValuePair.Create(p.Key, RecordJson.Number(p.Value, $"ops.{p.Key}", where))).ToArray(),
        RecordJson.Numbers(json, "levels", where));
}
