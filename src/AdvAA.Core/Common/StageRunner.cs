using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Text;
using System.Text.Json.Nodes;
using System.Threading;

namespace AdvAA.Core;

/// <summary>
/// What a resumable stage is made of (the target's training, TANDA's stage 1, CAMEL's CycleGANs):
/// its logs, file names in its folder (metrics.jsonl, ...), each given one line per epoch by
/// <paramref name="LogLines"/>; what a checkpoint holds besides the logs (networks, optimisers, a
/// method's state); and how an epoch (1-based) trains. <see cref="StageRunner{TEpoch}"/> does the rest.
/// </summary>
public sealed record ResumableStage<TEpoch>(
    IReadOnlyList<string> Logs, IReadOnlyList<StatePart> State, Func<int, TEpoch> TrainEpoch, Func<TEpoch, IReadOnlyList<JsonObject>> LogLines);

/// <summary>
/// The one resumable training loop. <see cref="Resume"/> restores the newest checkpoint in the
/// folder's <c>checkpoint/</c> (refusing one of another identity) and rewrites the logs to hold
/// exactly the epochs it covers (lines after it, from a crash before its write, go; lines it
/// covers come back). <see cref="Train"/> then trains each epoch, checkpoints it (the state and the
/// logs so far, written whole or not at all) and appends its log lines. Cancelling stops after the
/// current epoch's checkpoint. A runner that does not write (a data-parallel rank other than 0)
/// restores and trains the same way and leaves the folder to the one that does.
/// </summary>
public sealed class StageRunner<TEpoch>
{
    readonly string folder;
    readonly JsonObject identity;
    readonly ResumableStage<TEpoch> stage;
    readonly List<JsonObject>[] lines;

    /// <param name="folder">The stage's folder: its logs, and its checkpoints in <see cref="Checkpoints.FolderName"/>.</param>
    /// <param name="identity">What a checkpoint must share with this run to be resumed (checkpoints record it).</param>
    /// <param name="name">How errors name the stage's checkpoints ("checkpoint", "stage-1 checkpoint").</param>
    public StageRunner(string folder, JsonObject identity, ResumableStage<TEpoch> stage, string name = "checkpoint", bool writes = true)
    {
        (this.folder, this.identity, this.stage, Name, Writes) = (folder, identity, stage, name, writes);
        lines = stage.Logs.Select(_ => new List<JsonObject>()).ToArray();
    }

    public string Name { get; }
    public bool Writes { get; }

    /// <summary>The epochs trained so far (by the checkpoint restored and this runner).</summary>
    public int EpochsDone { get; private set; }

    string CheckpointRoot => Path.Combine(folder, Checkpoints.FolderName);

    /// <summary>
    /// Restores the newest checkpoint, if any, and makes the logs match it; returns each log's
    /// restored lines (in <see cref="ResumableStage{TEpoch}.Logs"/> order) and the checkpoint.
    /// </summary>
    /// <exception cref="RunFolderException">The checkpoint is of another run, incomplete or damaged.</exception>
    public (IReadOnlyList<IReadOnlyList<JsonObject>> Lines, Checkpoint? Checkpoint) Resume()
    {
        if (Writes) Directory.CreateDirectory(folder);
        Checkpoint? checkpoint = Checkpoints.LatestOf(folder);
        foreach (var log in lines) log.Clear();
        if (checkpoint != null)
        {
            if (JsonDifferences.First(checkpoint.Identity, identity) is { } difference)
                throw new RunFolderException($"{Name} {checkpoint.Folder} is from a different run: {difference}");
            foreach (var part in stage.State) checkpoint.Read(part.Name, part.Load);
            for (int i = 0; i < lines.Length; i++)
            {
                string part = PartOf(stage.Logs[i]);
                lines[i].AddRange(JsonLines.Parse(checkpoint.ReadText(part), Path.Combine(checkpoint.Folder, part + ".bin")));
            }
        }
        EpochsDone = checkpoint?.Epoch ?? 0;
        if (Writes)
            for (int i = 0; i < lines.Length; i++)
                AtomicFile.Write(Path.Combine(folder, stage.Logs[i]), JsonLines.Text(lines[i]));
        return (lines, checkpoint);
    }

    /// <summary>
    /// Trains the epochs after <see cref="EpochsDone"/> up to <paramref name="epochs"/>, each
    /// checkpointed and logged before <paramref name="finished"/> sees it. Returns false when
    /// cancelled before the last.
    /// </summary>
    public bool Train(int epochs, CancellationToken cancel, Action<TEpoch>? finished = null)
    {
        for (int epoch = EpochsDone + 1; epoch <= epochs; epoch++)
        {
            if (cancel.IsCancellationRequested) return false;
            TEpoch result = stage.TrainEpoch(epoch);
            var epochLines = stage.LogLines(result);
            for (int i = 0; i < lines.Length; i++) lines[i].Add(epochLines[i]);
            if (Writes)
            {
                Checkpoints.Save(CheckpointRoot, epoch, identity, Parts());
                for (int i = 0; i < lines.Length; i++) JsonLines.Append(Path.Combine(folder, stage.Logs[i]), epochLines[i]);
            }
            EpochsDone = epoch;
            finished?.Invoke(result);
        }
        return true;
    }

    Dictionary<string, Action<Stream>> Parts()
    {
        var parts = stage.State.ToDictionary(p => p.Name, p => p.Save);
        for (int i = 0; i < lines.Length; i++)
        {
            string text = JsonLines.Text(lines[i]);
            parts.Add(PartOf(stage.Logs[i]), s => s.Write(new UTF8Encoding(false).GetBytes(text)));
        }
        return parts;
    }

    /// <summary>A log's part in a checkpoint: its file name without the extension (metrics.jsonl → metrics).</summary>
    static string PartOf(string log) => Path.GetFileNameWithoutExtension(log);

}
