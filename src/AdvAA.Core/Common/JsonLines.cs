using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AdvAA.Core;

/// <summary>JSON-lines logs (metrics.jsonl, policies.jsonl): one compact object per line.</summary>
public static class JsonLines
{
    /// <summary>The records as the text of a .jsonl file.</summary>
    public static string Text(IEnumerable<JsonObject> records) =>
        string.Concat(records.Select(r => r.ToJsonString(JsonOptions.Compact) + "\n"));

    /// <summary>Appends one record as a line and flushes it to disk.</summary>
    public static void Append(string path, JsonObject record)
    {
        using var stream = new FileStream(path, FileMode.Append, FileAccess.Write, FileShare.Read);
        stream.Write(Encoding.UTF8.GetBytes(record.ToJsonString(JsonOptions.Compact) + "\n"));
        stream.Flush(flushToDisk: true);
    }

    /// <summary>
    /// The objects of a .jsonl file, in order. A malformed line is an error naming the file and
    /// line, except a last line without its newline, which a crash can leave and is dropped.
    /// </summary>
    public static IReadOnlyList<JsonObject> Read(string path)
    {
        if (!File.Exists(path)) throw new RunFolderException($"{path} does not exist");
        return Parse(File.ReadAllText(path), path);
    }

    /// <summary><see cref="Read"/> of text already read; <paramref name="path"/> names it in errors.</summary>
    public static IReadOnlyList<JsonObject> Parse(string text, string path)
    {
        string[] lines = text.Split('\n');
        bool lastComplete = text.EndsWith('\n');
        var records = new List<JsonObject>();
        for (int i = 0; i < lines.Length; i++)
        {
            if (lines[i].Trim().Length == 0) continue;
            bool isLast = i == lines.Length - 1;
            try
            {
                records.Add(JsonNode.Parse(lines[i]) as JsonObject
                    ?? throw new RunFolderException($"{path}:{i + 1}: expected a JSON object"));
            }
            catch (JsonException e)
            {
                if (isLast && !lastComplete) break;
                throw new RunFolderException($"{path}:{i + 1}: malformed JSON: {e.Message}", e);
            }
        }
        return records;
    }
}
