using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Security.Cryptography;
using System.Text.Json.Nodes;

namespace AdvAA.Core;

/// <summary>
/// Checkpoints in <c>checkpoint/epoch-NNNN/</c> of a run or stage folder: one file per part (model, optimizer,
/// controller, ...) plus <c>state.json</c>, which records the epoch, the run's identity and each
/// part's SHA-256. A checkpoint is written in a temporary folder and renamed into place when
/// complete, so the newest <c>epoch-*</c> folder is always whole; older ones are then removed.
/// </summary>
public static class Checkpoints
{
    /// <summary>The folder of a run's or stage's checkpoints.</summary>
    public const string FolderName = "checkpoint";
    public const string StateFile = "state.json";
    const string Prefix = "epoch-";

    /// <summary>Writes a complete checkpoint for <paramref name="epoch"/> into the folder <paramref name="root"/>; keeps only it.</summary>
    public static string Save(string root, int epoch, JsonObject identity, IReadOnlyDictionary<string, Action<Stream>> parts)
    {
        Directory.CreateDirectory(root);
        string final = Path.Combine(root, $"{Prefix}{epoch:D4}");
        string temp = Path.Combine(root, $".{Prefix}{epoch:D4}{AtomicFile.TempMarker}{Environment.ProcessId}");
        try
        {
            if (Directory.Exists(temp)) Directory.Delete(temp, true);
            Directory.CreateDirectory(temp);
            var hashes = new JsonObject();
            foreach ((string name, Action<Stream> write) in parts)
            {
                string file = Path.Combine(temp, name + ".bin");
                using (var stream = new FileStream(file, FileMode.CreateNew, FileAccess.Write))
                    write(stream);  // writers may close the stream (TorchSharp's do), so sync it afterwards
                using (var written = new FileStream(file, FileMode.Open, FileAccess.ReadWrite))
                    written.Flush(flushToDisk: true);
                hashes[name] = Sha256(file);
            }
            var state = new JsonObject { ["epoch"] = epoch, ["identity"] = identity.DeepClone(), ["parts"] = hashes };
            using (var stream = new FileStream(Path.Combine(temp, StateFile), FileMode.CreateNew, FileAccess.Write))
            {
                stream.Write(System.Text.Encoding.UTF8.GetBytes(state.ToJsonString(JsonOptions.Indented) + "\n"));
                stream.Flush(flushToDisk: true);
            }
            if (Directory.Exists(final)) Directory.Delete(final, true);
            Directory.Move(temp, final);
        }
        catch
        {
            // A failed write (a full disk) leaves the previous checkpoint as the newest whole one, and no debris.
            if (Directory.Exists(temp)) Directory.Delete(temp, true);
            throw;
        }
        foreach (string old in Directory.EnumerateDirectories(root))
        {
            string name = Path.GetFileName(old);
            if (name != Path.GetFileName(final) && (name.StartsWith(Prefix, StringComparison.Ordinal) || name.StartsWith("." + Prefix, StringComparison.Ordinal)))
                Directory.Delete(old, true);
        }
        return final;
    }

    /// <summary>The newest complete checkpoint of the run or stage in <paramref name="folder"/> (in its <see cref="FolderName"/>), or null.</summary>
    public static Checkpoint? LatestOf(string folder) => Latest(Path.Combine(folder, FolderName));

    /// <summary>The newest complete checkpoint in the folder <paramref name="root"/>, or null.</summary>
    public static Checkpoint? Latest(string root)
    {
        if (!Directory.Exists(root)) return null;
        string? newest = Directory.EnumerateDirectories(root, Prefix + "*")
            .Where(d => int.TryParse(Path.GetFileName(d)[Prefix.Length..], out _))
            .OrderByDescending(d => int.Parse(Path.GetFileName(d)[Prefix.Length..]))
            .FirstOrDefault();
        return newest == null ? null : Checkpoint.Open(newest);
    }

    internal static string Sha256(string file)
    {
        using var stream = File.OpenRead(file);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}

/// <summary>A named part of a stage's state in a checkpoint (file <c>&lt;name&gt;.bin</c>): a network, an optimiser, a method's state.</summary>
public sealed record StatePart(string Name, Action<Stream> Save, Action<Stream> Load)
{
    /// <summary>A network's weights and buffers (TorchSharp's format), loaded strictly.</summary>
    public static StatePart Of(string name, TorchSharp.torch.nn.Module network) =>
        new(name, s => network.save(s), s => network.load(s, strict: true));

    /// <summary>An optimiser's state (momentum buffers, Adam's moments, step counts).</summary>
    public static StatePart Of(string name, TorchSharp.Modules.OptimizerHelper optimizer) =>
        new(name,
            s => { using var w = new BinaryWriter(s, System.Text.Encoding.UTF8, leaveOpen: true); optimizer.save_state_dict(w); },
            s => { using var r = new BinaryReader(s); optimizer.load_state_dict(r); });
}

/// <summary>A complete checkpoint on disk: its state and verified access to its parts.</summary>
public sealed class Checkpoint
{
    public string Folder { get; }
    public int Epoch { get; }
    public JsonObject Identity { get; }
    readonly JsonObject parts;

    Checkpoint(string folder, int epoch, JsonObject identity, JsonObject parts)
    {
        Folder = folder;
        Epoch = epoch;
        Identity = identity;
        this.parts = parts;
    }

    public static Checkpoint Open(string folder)
    {
        string statePath = Path.Combine(folder, Checkpoints.StateFile);
        if (!File.Exists(statePath))
            throw new RunFolderException($"checkpoint {folder} is incomplete: {Checkpoints.StateFile} is missing");
        try
        {
            var state = JsonNode.Parse(File.ReadAllText(statePath)) as JsonObject
                ?? throw new RunFolderException($"{statePath}: expected a JSON object");
            int epoch = state["epoch"]?.GetValue<int>() ?? throw new RunFolderException($"{statePath}: no \"epoch\"");
            var identity = state["identity"] as JsonObject ?? throw new RunFolderException($"{statePath}: no \"identity\"");
            var parts = state["parts"] as JsonObject ?? throw new RunFolderException($"{statePath}: no \"parts\"");
            return new Checkpoint(folder, epoch, identity, parts);
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or InvalidOperationException or FormatException)
        {
            throw new RunFolderException($"{statePath}: corrupt checkpoint state: {e.Message}", e);
        }
    }

    public bool Has(string part) => parts.ContainsKey(part);

    /// <summary>A text part (UTF-8), checked like <see cref="Read"/>.</summary>
    public string ReadText(string part)
    {
        string text = "";
        Read(part, s => { using var reader = new StreamReader(s); text = reader.ReadToEnd(); });
        return text;
    }

    /// <summary>Reads a part after checking its SHA-256, so a damaged file is named, not misread.</summary>
    public void Read(string part, Action<Stream> read)
    {
        string file = Path.Combine(Folder, part + ".bin");
        if (!parts.TryGetPropertyValue(part, out JsonNode? expected) || expected == null)
            throw new RunFolderException($"checkpoint {Folder} has no part '{part}'");
        if (!File.Exists(file))
            throw new RunFolderException($"checkpoint file {file} is missing");
        string actual = Checkpoints.Sha256(file);
        if (actual != expected.GetValue<string>())
            throw new RunFolderException($"checkpoint file {file} is corrupt (SHA-256 {actual[..12]}…, expected {expected.GetValue<string>()[..12]}…)");
        using var stream = File.OpenRead(file);
        try
        {
            read(stream);
        }
        catch (Exception e) when (e is not RunFolderException)
        {
            throw new RunFolderException($"checkpoint file {file} cannot be loaded: {e.Message}", e);
        }
    }
}
