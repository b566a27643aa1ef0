module AdvAA.Tests.RunFolderTests

open System
open System.Diagnostics
open System.IO
open Expecto
open AdvAA.Core
open AdvAA.Core.Data
open AdvAA.Core.Methods
open AdvAA.Core.Training
open AdvAA.Dsl
open AdvAA.Tests.TestSupport
open AdvAA.Tests.TrainingTests

let private epochs (folder: RunFolder) = [ for m in folder.ReadMetrics() -> m.Epoch ]

let private lines (folder: RunFolder) (file: string) = File.ReadAllLines(folder.File file) |> List.ofArray

/// Files a failed write can leave behind: temporary files and checkpoint folders.
let private debris (folder: RunFolder) =
    Directory.GetFileSystemEntries(folder.Path, "*" + AtomicFile.TempMarker + "*", SearchOption.AllDirectories) |> List.ofArray

let private withoutTiming (folder: RunFolder) = metricsWithoutTiming folder.Path

/// Mounts a tmpfs of `kilobytes` at `path` for the test (root only); None where this machine does not allow it.
let private tmpfs (path: string) (kilobytes: int) =
    Directory.CreateDirectory path |> ignore
    try
        let code, _, _ = runProcess path 30 "mount" [ "-t"; "tmpfs"; "-o"; sprintf "size=%dk" kilobytes; "tmpfs"; path ]
        if code = 0 then Some { new IDisposable with member _.Dispose() = runProcess "/" 30 "umount" [ path ] |> ignore } else None
    with _ -> None

[<Tests>]
let tests =
    testSequenced <| testList "run folder" [
        test "one writer: a second is refused naming the holder; a dead holder's lock is taken over" {
            use dir = new TempDir()
            let folder = RunFolder.Create(dir.File "run")
            let config = Tiny.Config("baseline", epochs = 1)
            do
                use held = folder.Lock "advaa train --seed 3"
                let msg = throwsMessage<RunFolderException> (fun () -> train config folder None |> ignore)
                containsAll msg [ folder.Path; "is in use by process " + string Environment.ProcessId; "advaa train --seed 3"; "one writer" ]
                Expect.isFalse (File.Exists(folder.File RunFolder.ConfigFile)) "the refused writer wrote nothing"
            File.WriteAllText(folder.File RunLock.HolderFile, "process 999999 on elsewhere (advaa train, since 2026-11-30 10:00:00)\n")
            Expect.equal (train config folder None |> List.length) 1 "the stale lock is taken over and the run trains"
            Expect.isFalse (File.Exists(folder.File RunLock.HolderFile)) "the holder note goes with the lock"
        }

        test "the logs follow the last complete checkpoint: a cut line is rebuilt, extra and duplicate lines go" {
            use dir = new TempDir()
            let config = Tiny.Config("adversarial", epochs = 3)
            let whole = RunFolder.Create(dir.File "whole")
            train config whole None |> ignore
            let run = RunFolder.Create(dir.File "run")
            train config run (Some 2) |> ignore
            let metrics = run.File RunFolder.MetricsFile
            let text = File.ReadAllText metrics
            // A crash in the middle of writing epoch 2's line (or a disk that filled up).
            File.WriteAllText(metrics, text.Substring(0, text.Length - 40))
            Expect.equal (epochs run) [ 1 ] "epoch 2's line is cut"
            train config (RunFolder.Open run.Path) None |> ignore
            Expect.equal (epochs run) [ 1; 2; 3 ] "epoch 2 rebuilt from the checkpoint, then 3"
            Expect.sequenceEqual (withoutTiming run) (withoutTiming whole) "the same lines as an uninterrupted run"
            // Lines after the checkpoint and duplicates of covered epochs go.
            File.AppendAllLines(metrics, [ (lines run RunFolder.MetricsFile)[1]; """{"epoch":4,"train_loss":1}""" ])
            File.AppendAllLines(run.File RunFolder.PoliciesFile, [ (lines run RunFolder.PoliciesFile)[0] ])
            train config (RunFolder.Open run.Path) None |> ignore
            Expect.equal (epochs run) [ 1; 2; 3 ] "no duplicate epochs"
            Expect.equal (lines run RunFolder.PoliciesFile |> List.length) 3 "one policies line per epoch"
        }

        test "without a complete checkpoint a run restarts at epoch 1 and its old lines go" {
            use dir = new TempDir()
            let config = Tiny.Config("baseline", epochs = 2)
            let whole = RunFolder.Create(dir.File "whole")
            train config whole None |> ignore
            let run = RunFolder.Create(dir.File "run")
            train config run None |> ignore
            Directory.Delete(run.File RunFolder.CheckpointFolder, true)
            let trained = train config (RunFolder.Open run.Path) None
            Expect.equal (trained |> List.map (fun m -> m.Epoch)) [ 1; 2 ] "trained from epoch 1"
            Expect.equal (epochs run) [ 1; 2 ] "each epoch once"
            Expect.sequenceEqual (withoutTiming run) (withoutTiming whole) "as if it had never run"
            File.Delete(run.File RunFolder.MetricsFile)
            Expect.isEmpty (train config (RunFolder.Open run.Path) None) "nothing left to train"
            Expect.equal (epochs run) [ 1; 2 ] "a deleted metrics.jsonl comes back from the checkpoint"
        }

        test "what failed writes left behind is removed on the next start" {
            use dir = new TempDir()
            let config = Tiny.Config("baseline", epochs = 2)
            let run = RunFolder.Create(dir.File "run")
            train config run (Some 1) |> ignore
            File.WriteAllText(run.File(RunFolder.MetricsFile + AtomicFile.TempMarker + "4242"), "{\"epoch\":")
            let stale = Path.Combine(run.File RunFolder.CheckpointFolder, ".epoch-0002" + AtomicFile.TempMarker + "4242")
            Directory.CreateDirectory stale |> ignore
            File.WriteAllText(Path.Combine(stale, "model.bin"), "half")
            train config (RunFolder.Open run.Path) None |> ignore
            Expect.isEmpty (debris run) "no temporary files or folders"
            Expect.equal (epochs run) [ 1; 2 ] "and the run went on"
        }

        test "a failed checkpoint write keeps the previous one whole and leaves no debris" {
            use dir = new TempDir()
            let config = Tiny.Config("adversarial", epochs = 2)
            let run = RunFolder.Create(dir.File "run")
            // An injected failure: something already sits where epoch 2's checkpoint must go.
            Directory.CreateDirectory(run.File RunFolder.CheckpointFolder) |> ignore
            let blocker = Path.Combine(run.File RunFolder.CheckpointFolder, "epoch-0002")
            File.WriteAllText(blocker, "in the way")
            throwsMessage<IOException> (fun () -> train config run None |> ignore) |> ignore
            Expect.equal (run.LatestCheckpoint() |> nonNull).Epoch 1 "epoch 1's checkpoint is the newest whole one"
            Expect.equal (epochs run) [ 1 ] "the logs hold what the checkpoint covers"
            Expect.isEmpty (debris run) "no temporary checkpoint folder"
            File.Delete blocker
            train config (RunFolder.Open run.Path) None |> ignore
            Expect.equal (epochs run) [ 1; 2 ] "resumes once the way is clear"
        }

        test "a full disk fails with its message, keeps the last checkpoint whole and leaves no debris" {
            use dir = new TempDir()
            let mountPoint = dir.File "small-disk"
            match tmpfs mountPoint 900 with
            | None -> skiptest "mounting a tmpfs needs root on Linux; the injected-failure test covers the same path"
            | Some mounted ->
                use _ = mounted
                let config = Tiny.Config("baseline", epochs = 3)
                let run = RunFolder.Create(Path.Combine(mountPoint, "run"))
                let msg = throwsMessage<IOException> (fun () -> train config run None |> ignore)
                Expect.stringContains msg "No space left on device" "the system's message"
                let last = run.LatestCheckpoint() |> nonNull
                Expect.isGreaterThanOrEqual last.Epoch 1 "a checkpoint before the disk filled up"
                Expect.equal (epochs run) [ 1 .. last.Epoch ] "the logs hold exactly what it covers"
                Expect.isEmpty (debris run) "no temporary files or folders"
                // It reads back whole: the next start restores it (and fails again for want of space).
                throwsMessage<IOException> (fun () -> train config (RunFolder.Open run.Path) None |> ignore) |> ignore
                Expect.equal (epochs run) [ 1 .. last.Epoch ] "still exactly the covered epochs"
        }

        test "advaa train on a full disk says so, names the epoch kept and how to continue" {
            use dir = new TempDir()
            let mountPoint = dir.File "small-disk"
            match tmpfs mountPoint 6000 with
            | None -> skiptest "mounting a tmpfs needs root on Linux"
            | Some mounted ->
                use _ = mounted
                let run = Path.Combine(mountPoint, "run")
                let code, _, err = AdvAA.Tests.CliTests.cli [ "train"; "--method"; "baseline"; "--model"; "small"; "--epochs"; "3"; "--batch"; "32"; "--train-limit"; "64"; "--test-limit"; "50"; "--device"; "cpu"; "--out"; run ]
                Expect.equal code 1 err
                let kept = ((RunFolder.Open run).LatestCheckpoint() |> nonNull).Epoch
                containsAll err [ sprintf "advaa: the disk is full while writing %s; it keeps epoch %d, its last complete checkpoint" run kept; "continue with: advaa train "; "--resume " + run ]
                Expect.isFalse (err.Contains "No space left on device") "the system's words are replaced"
        }

        test "a run folder of an earlier format is refused by report, resume and export, naming its format" {
            use dir = new TempDir()
            let folder = RunFolder.Create(dir.File "old")
            train (Tiny.Config("baseline", epochs = 1)) folder None |> ignore
            // What AdvAA wrote before run format 2: no format fields, the method as a bare name.
            let config = folder.ReadConfigJson()
            config.Remove "format" |> ignore
            config.Remove "format_version" |> ignore
            (nonNull (config["experiment"] :?> Text.Json.Nodes.JsonObject))["method"] <- Text.Json.Nodes.JsonValue.Create "baseline"
            File.WriteAllText(folder.File RunFolder.ConfigFile, config.ToJsonString())
            let expected = [ folder.File RunFolder.ConfigFile; "run format 1"; "this AdvAA reads run format 2" ]
            containsAll (throwsMessage<RunFolderException> (fun () -> Report.load folder.Path |> ignore)) expected
            containsAll (throwsMessage<RunFolderException> (fun () -> train (Tiny.Config("baseline", epochs = 2)) (RunFolder.Open folder.Path) None |> ignore)) expected
            containsAll (throwsMessage<RunFolderException> (fun () -> AdvAA.Cli.PolicyCommand.exportable folder.Path None None |> ignore)) expected
        }

        test "an atomic write that fails leaves the target as it was and no temporary file" {
            use dir = new TempDir()
            let target = dir.File "target"
            Directory.CreateDirectory target |> ignore
            throwsMessage<IOException> (fun () -> AtomicFile.Write(target, "text")) |> ignore
            Expect.isTrue (Directory.Exists target) "the target is untouched"
            Expect.isEmpty (Directory.GetFiles(dir.Path)) "no temporary file"
        }

        test "resuming with another search space, method parameter or data is refused, naming what differs" {
            use dir = new TempDir()
            let e =
                { Experiment.defaults with
                    Name = "tiny"; Epochs = 1; BatchSize = 32; Method = Method.adversarial |> Method.instances (Schedule.constant 2.0)
                    TrainLimit = Some 64; TestLimit = Some 50; Device = "cpu" }
            let run = RunFolder.Create(dir.File "run")
            let data = DataSources.EmbeddedSample()
            do
                use trainer = new Trainer(Experiment.toConfig e, data)
                trainer.Run run |> ignore
            let before = AdvAA.Tests.CliTests.snapshot run.Path
            let refused (changed: Experiment) (splits: DataSplits) =
                use trainer = new Trainer(Experiment.toConfig { changed with Epochs = 2 }, splits)
                throwsMessage<RunFolderException> (fun () -> trainer.Run(RunFolder.Open run.Path) |> ignore)
            containsAll (refused { e with Space = Space.paper |> Space.range "Rotate" (0.0, 20.0) } data)
                [ run.Path; "holds another run"; "search_space.ops[4].high: recorded 30, now 20" ]
            containsAll (refused { e with Space = Space.paper |> Space.signed "ShearX" false } data) [ "search_space.ops[0].signed: recorded true, now false" ]
            containsAll (refused { e with Method = e.Method |> Method.set "hidden" 64 } data) [ "method.hidden: recorded 100, now 64"; "the method now: adversarial" ]
            containsAll (refused { e with Method = e.Method |> Method.instances (Schedule.linear 2.0 4.0 10.0) } data) [ "method.instances: recorded \"2\", now \"linear 2→4 over 10\"" ]
            let struct (fewer, _) = Subsets.Split(data.Train, Nullable 1500L, Nullable())
            let other = DataSplits(fewer, data.Test, data.Format)
            containsAll (refused e other) [ "data.train_images: recorded 2000, now 1500"; "the run read"; "this one reads" ]
            Expect.equal (AdvAA.Tests.CliTests.snapshot run.Path) before "the run folder is unchanged"
        }
    ]
