using System.Globalization;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AdvAA.Core;

/// <summary>The JSON settings every run file uses.</summary>
public static class JsonOptions
{
    // Readable text: "cosine 0.1→0", not "cosine 0.1\u21920" (the files are never embedded in HTML or scripts unescaped).
    public static readonly JsonSerializerOptions Indented = new() { WriteIndented = true, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };
    public static readonly JsonSerializerOptions Compact = new() { WriteIndented = false, Encoder = JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>A double as JSON, with non-finite values as strings (JSON has no NaN).</summary>
    public static JsonNode Number(double value) =>
        double.IsFinite(value) ? JsonValue.Create(value) : JsonValue.Create(value.ToString(CultureInfo.InvariantCulture));
}
