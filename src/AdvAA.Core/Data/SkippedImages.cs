using System;
using System.Collections.Generic;
using System.Linq;
using System.Text.Json.Nodes;

namespace AdvAA.Core.Data;

/// <summary>An image left out of its batch (<c>--skip-bad-images</c>): the file (and shard), where it was met, and why.</summary>
public sealed record SkippedImage(string File, string During, int Batch, string Error)
{
    public JsonObject ToJson() => new() { ["file"] = File, ["during"] = During, ["batch"] = Batch, ["error"] = Error };

    public static SkippedImage FromJson(JsonObject json, string where) => new(
        RecordJson.Value<string>(json, "file", where), RecordJson.Value<string>(json, "during", where),
        RecordJson.Value<int>(json, "batch", where), RecordJson.Value<string>(json, "error", where));

    /// <summary>By pass, batch and file: the order a run lists them in, whatever order the workers (or ranks) met them.</summary>
    public static IReadOnlyList<SkippedImage> Ordered(IEnumerable<SkippedImage> images) =>
        images.OrderBy(i => i.During, StringComparer.Ordinal).ThenBy(i => i.Batch).ThenBy(i => i.File, StringComparer.Ordinal).ToList();
}

/// <summary>
/// The bad images a run skips rather than stopping on (a corrupt, truncated or missing file, a
/// header bomb): collected by the decode workers, taken once per epoch in a fixed order.
/// </summary>
public sealed class SkippedImages
{
    readonly object gate = new();
    readonly List<SkippedImage> images = [];

    internal void Add(SkippedImage image)
    {
        lock (gate) images.Add(image);
    }

    /// <summary>The images skipped since the last call, <see cref="SkippedImage.Ordered"/>, and forgets them.</summary>
    public IReadOnlyList<SkippedImage> Take()
    {
        lock (gate)
        {
            var all = SkippedImage.Ordered(images);
            images.Clear();
            return all;
        }
    }
}
