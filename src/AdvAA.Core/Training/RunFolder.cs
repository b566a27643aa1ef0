using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AdvAA.Core.Training;

/// <summary>Raised for a run folder that cannot be created, resumed or read; the message names the file.</summary>
public sealed class RunFolderException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// One run's folder (DESIGN.md "Run folder"): config.json, metrics.jsonl, policies.jsonl and
/// checkpoint/. Never overwritten: a new run needs a folder that does not exist or is empty.
/// Every file is replaced atomically (written under a temporary name, then renamed), so a crash
/// leaves the previous complete version, never half a file.
/// </summary>
public sealed class RunFolder
{
    public const string ConfigFile = "config.json";
    public const string MetricsFile = "metrics.jsonl";
    public const string PoliciesFile = "policies.jsonl";
    public const string CheckpointFolder = "checkpoint";

    public string Path { get; }

    RunFolder(string path) => Path = path;

    public string File(string name) => System.IO.Path.Combine(Path, name);

    /// <summary>Creates a new run folder; an existing non-empty folder is an error.</summary>
    public static RunFolder Create(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        if (System.IO.File.Exists(full))
            throw new RunFolderException($"{full} is a file, not a run folder");
        if (Directory.Exists(full) && Directory.EnumerateFileSystemEntries(full).Any())
            throw new RunFolderException($"run folder {full} already exists and is not empty; a run never overwrites another: choose another --out, or continue it with --resume {full}");
        Directory.CreateDirectory(full);
        return new RunFolder(full);
    }

    /// <summary>A new folder under <paramref name="parent"/> named <paramref name="name"/>, or name-2, name-3, ... if taken.</summary>
    public static RunFolder CreateUnique(string parent, string name)
    {
        string baseName = System.IO.Path.Combine(System.IO.Path.GetFullPath(parent), name);
        for (int i = 1; ; i++)
        {
            string candidate = i == 1 ? baseName : $"{baseName}-{i}";
            if (!Directory.Exists(candidate) && !System.IO.File.Exists(candidate)) return Create(candidate);
        }
    }

    /// <summary>Opens an existing run folder for resuming; it must hold config.json.</summary>
    public static RunFolder Open(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        if (!Directory.Exists(full)) throw new RunFolderException($"run folder {full} does not exist");
        if (!System.IO.File.Exists(System.IO.Path.Combine(full, ConfigFile)))
            throw new RunFolderException($"{full} is not a run folder: {ConfigFile} is missing");
        return new RunFolder(full);
    }

    /// <summary>Writes a whole file atomically.</summary>
    public static void WriteAtomically(string path, string text)
    {
        string temp = $"{path}.tmp-{Environment.ProcessId}";
        System.IO.File.WriteAllText(temp, text, new UTF8Encoding(false));
        System.IO.File.Move(temp, path, overwrite: true);
    }

    public void WriteConfig(JsonObject config) =>
        WriteAtomically(File(ConfigFile), config.ToJsonString(JsonOptions.Indented) + "\n");

    public JsonObject ReadConfig()
    {
        string path = File(ConfigFile);
        try
        {
            return JsonNode.Parse(System.IO.File.ReadAllText(path)) as JsonObject
                ?? throw new RunFolderException($"{path}: expected a JSON object");
        }
        catch (JsonException e)
        {
            throw new RunFolderException($"{path}: malformed JSON at line {e.LineNumber + 1}: {e.Message}", e);
        }
    }

    /// <summary>Appends one JSON object as a line and flushes it to disk.</summary>
    public void AppendLine(string file, JsonObject record)
    {
        using var stream = new FileStream(File(file), FileMode.Append, FileAccess.Write, FileShare.Read);
        byte[] line = Encoding.UTF8.GetBytes(record.ToJsonString(JsonOptions.Compact) + "\n");
        stream.Write(line);
        stream.Flush(flushToDisk: true);
    }

    /// <summary>
    /// The JSON objects of a .jsonl file, in order. A malformed line is an error naming the file and
    /// line, except a last line without its newline, which a crash can leave and is dropped.
    /// </summary>
    public IReadOnlyList<JsonObject> ReadLines(string file) => ReadJsonLines(File(file));

    public static IReadOnlyList<JsonObject> ReadJsonLines(string path)
    {
        if (!System.IO.File.Exists(path)) throw new RunFolderException($"{path} does not exist");
        string text = System.IO.File.ReadAllText(path);
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

    /// <summary>
    /// Keeps only the records of epochs up to <paramref name="lastEpoch"/> (those a checkpoint
    /// covers), rewriting the file atomically; used before resuming.
    /// </summary>
    public void TruncateToEpoch(string file, int lastEpoch)
    {
        string path = File(file);
        if (!System.IO.File.Exists(path)) return;
        var kept = ReadJsonLines(path).Where(r => EpochOf(r, path) <= lastEpoch);
        WriteAtomically(path, string.Concat(kept.Select(r => r.ToJsonString(JsonOptions.Compact) + "\n")));
    }

    static int EpochOf(JsonObject record, string path) =>
        record["epoch"] is JsonValue v && v.TryGetValue(out int epoch)
            ? epoch
            : throw new RunFolderException($"{path}: a record has no integer \"epoch\" field: {record.ToJsonString()}");
}

/// <summary>The JSON settings every run file uses.</summary>
public static class JsonOptions
{
    public static readonly JsonSerializerOptions Indented = new() { WriteIndented = true };
    public static readonly JsonSerializerOptions Compact = new() { WriteIndented = false };

    /// <summary>A double as JSON, with non-finite values as strings (JSON has no NaN).</summary>
    public static JsonNode Number(double value) =>
        double.IsFinite(value) ? JsonValue.Create(value) : JsonValue.Create(value.ToString(CultureInfo.InvariantCulture));
}
