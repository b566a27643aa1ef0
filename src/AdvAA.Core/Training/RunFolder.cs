using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Encodings.Web;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace AdvAA.Core.Training;

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
    /// <summary>The bad images a run skipped (<see cref="TrainConfig.SkipBadImages"/>): a line per epoch.</summary>
    public const string SkippedImagesFile = "skipped-images.jsonl";
    public const string CheckpointFolder = Checkpoints.FolderName;

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

    /// <summary>Why <paramref name="full"/> cannot be opened as a run folder: a file there, or nothing.</summary>
    public static string Missing(string full) =>
        System.IO.File.Exists(full) ? $"{full} is a file, not a run folder: give the run's folder (the one holding {ConfigFile})" : $"run folder {full} does not exist";

    /// <summary>Opens an existing run folder for resuming; it must hold config.json.</summary>
    public static RunFolder Open(string path)
    {
        string full = System.IO.Path.GetFullPath(path);
        if (!Directory.Exists(full)) throw new RunFolderException(Missing(full));
        if (!System.IO.File.Exists(System.IO.Path.Combine(full, ConfigFile)))
            throw new RunFolderException($"{full} is not a run folder: {ConfigFile} is missing");
        return new RunFolder(full);
    }

    /// <summary>The folder another rank of a distributed job made (or opened) at <paramref name="path"/>: this rank only reads it.</summary>
    public static RunFolder Shared(string path) =>
        Directory.Exists(path) ? new RunFolder(System.IO.Path.GetFullPath(path)) : throw new RunFolderException(Missing(System.IO.Path.GetFullPath(path)));

    /// <summary>
    /// Removes what failed writes of earlier processes left behind (temporary files and checkpoint
    /// folders); called by the holder of the lock before it writes anything.
    /// </summary>
    public void RemoveLeftovers()
    {
        foreach (string file in Directory.EnumerateFiles(Path, "*" + AtomicFile.TempMarker + "*"))
            AtomicFile.TryDelete(file);
        string checkpoints = File(CheckpointFolder);
        if (Directory.Exists(checkpoints))
            foreach (string dir in Directory.EnumerateDirectories(checkpoints, "." + "*" + AtomicFile.TempMarker + "*"))
                Directory.Delete(dir, true);
    }

    public void WriteConfig(RunConfig config) =>
        AtomicFile.Write(File(ConfigFile), config.ToJson().ToJsonString(JsonOptions.Indented) + "\n");

    /// <summary>config.json as a JSON object; malformed JSON is an error naming the file and line.</summary>
    public JsonObject ReadConfigJson()
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

    /// <summary>config.json, typed; a folder of another run format is an error naming it.</summary>
    public RunConfig ReadConfig() => RunConfig.FromJson(ReadConfigJson(), File(ConfigFile));

    /// <summary>The epochs of metrics.jsonl (none when it does not exist yet).</summary>
    public IReadOnlyList<EpochMetrics> ReadMetrics() => ReadRecords(MetricsFile, EpochMetrics.FromJson);

    /// <summary>The lines of policies.jsonl (none when it does not exist yet).</summary>
    public IReadOnlyList<PolicyRecord> ReadPolicies() => ReadRecords(PoliciesFile, PolicyRecord.FromJson);

    IReadOnlyList<T> ReadRecords<T>(string file, Func<JsonObject, string, T> read)
    {
        string path = File(file);
        if (!System.IO.File.Exists(path)) return [];
        return JsonLines.Read(path).Select((line, i) => read(line, $"{path}:{i + 1}")).ToArray();
    }

    /// <summary>The newest complete checkpoint of the run, or null when it has none.</summary>
    public Checkpoint? LatestCheckpoint() => Checkpoints.LatestOf(Path);

    /// <summary>
    /// The JSON objects of a .jsonl file, in order. A malformed line is an error naming the file and
    /// line, except a last line without its newline, which a crash can leave and is dropped.
    /// </summary>
    public IReadOnlyList<JsonObject> ReadLines(string file) => JsonLines.Read(File(file));

    /// <summary>
    /// Takes the folder's exclusive lock for one writer (an OS file lock, released on any exit of the
    /// process); a folder another live process holds is an error naming it. A lock left by a dead
    /// process is taken over.
    /// </summary>
    public RunLock Lock(string command) => RunLock.Take(this, command);
}

/// <summary>The exclusive lock of a run folder: <c>.lock</c> (an OS lock) and <c>.lock-holder</c> (who holds it, for messages).</summary>
public sealed class RunLock : IDisposable
{
    public const string LockFile = ".lock";
    public const string HolderFile = ".lock-holder";
    readonly FileStream handle;
    readonly string holderPath;

    RunLock(FileStream handle, string holderPath, string? previousHolder)
    {
        this.handle = handle;
        this.holderPath = holderPath;
        TakenOverFrom = previousHolder;
    }

    /// <summary>The holder a dead process left behind, when this lock took it over.</summary>
    public string? TakenOverFrom { get; }

    internal static RunLock Take(RunFolder run, string command)
    {
        string lockPath = run.File(LockFile), holderPath = run.File(HolderFile);
        FileStream handle;
        try
        {
            handle = new FileStream(lockPath, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException)
        {
            string holder = System.IO.File.Exists(holderPath) ? System.IO.File.ReadAllText(holderPath).Trim() : "another process";
            throw new RunFolderException($"run folder {run.Path} is in use by {holder}: one run folder has one writer; wait for it to finish or stop it");
        }
        string? previous = System.IO.File.Exists(holderPath) ? System.IO.File.ReadAllText(holderPath).Trim() : null;
        var who = $"process {Environment.ProcessId} on {Environment.MachineName} ({command}, since {DateTime.Now:yyyy-MM-dd HH:mm:ss})";
        AtomicFile.Write(holderPath, who + "\n");
        return new RunLock(handle, holderPath, previous);
    }

    public void Dispose()
    {
        try { System.IO.File.Delete(holderPath); }
        catch (IOException) { }
        handle.Dispose();
    }
}
