module AdvAA.Tests.TrainingTests

open System
open System.IO
open System.Threading
open System.Text.Json.Nodes
open Expecto
open AdvAA.Core
open AdvAA.Core.Augment
open AdvAA.Core.Data
open AdvAA.Core.Methods
open AdvAA.Core.Training
open AdvAA.Tests.TestSupport

/// The embedded sample, loaded once (every test takes its own limited view through the config).
let sample = lazy (DataSources.EmbeddedSample())

/// Tiny but complete configurations: 128 training images, 100 test images, batch 32, M = 2 for
/// the methods that default to several instances.
type Tiny =
    static member Spec(method: string, ?instances: float, ?policy: PolicyDocument) : MethodSpec =
        let spec = MethodRegistry.Defaults method
        let spec = match policy with Some p -> spec.With("policy", p) | None -> spec
        match spec with
        | :? CopiesSpec as copies ->
            let m = defaultArg instances (if copies.InstancesAt 0.0 > 1 then 2.0 else 1.0)
            spec.With("instances", EpochSchedule.Constant m)
        | _ -> spec

    static member Config(method: string, ?epochs: int, ?model: string, ?learningRate: float -> float, ?policy: PolicyDocument,
                         ?batchSize: int, ?instances: float, ?dropout: float, ?seed: int64, ?trainLimit: int64) =
        TrainConfig(
            Method = Tiny.Spec(method, ?instances = instances, ?policy = policy),
            Model = defaultArg model "wrn-10-1",
            Dropout = defaultArg dropout 0.0,
            TrainLimit = Nullable(defaultArg trainLimit 128L),
            TestLimit = Nullable 100L,
            Epochs = defaultArg epochs 2,
            BatchSize = defaultArg batchSize 32,
            LearningRate =
                (match learningRate with
                 | Some f -> EpochSchedule(Func<float, float> f, "a test's")
                 | None -> EpochSchedule(Func<float, float>(fun e -> 0.05 * (1.0 - e / 3.0)), "linear 0.05→0 over 3")),
            Seed = defaultArg seed 7L,
            Device = "cpu",
            EvalBatchSize = 50)

/// Trains `config` into `folder`; `stopAfter` cancels after that epoch, as a kill would.
let train (config: TrainConfig) (folder: RunFolder) (stopAfter: int option) =
    use trainer = new Trainer(config, sample.Force())
    use cancel = new CancellationTokenSource()
    stopAfter |> Option.iter (fun k -> trainer.EpochCompleted.Add(fun m -> if m.Epoch = k then cancel.Cancel()))
    trainer.Run(folder, cancel.Token) |> List.ofSeq

/// Trains `config` into a new folder `name` of `dir` to the end; returns the folder.
let trainIn (dir: TempDir) (name: string) (config: TrainConfig) =
    let folder = RunFolder.Create(dir.File name)
    train config folder None |> ignore
    folder

/// Trains `config` on `data`, cancelling after epoch `stopStage` of the method's stage before the
/// target (TANDA's, model patching's) or after target epoch `stopEpoch`, as a kill would. Returns
/// the stage's progress lines and the target epochs trained.
let trainStaged (config: TrainConfig) (data: DataSplits) (folder: RunFolder) (stopStage: int option) (stopEpoch: int option) =
    use trainer = new Trainer(config, data)
    use cancel = new CancellationTokenSource()
    let stageLines = Collections.Generic.List<string>()
    trainer.StageProgress.Add(fun line ->
        stageLines.Add line
        match stopStage with
        | Some k when line.Contains(sprintf "epoch %d/" k) -> cancel.Cancel()
        | _ -> ())
    stopEpoch |> Option.iter (fun k -> trainer.EpochCompleted.Add(fun m -> if m.Epoch = k then cancel.Cancel()))
    let metrics = trainer.Run(folder, cancel.Token) |> List.ofSeq
    List.ofSeq stageLines, metrics

/// A JSON-lines file (metrics.jsonl, a stage's) without the fields that measure time.
let withoutTiming (file: string) =
    [ for line in File.ReadAllLines file ->
        let o = JsonNode.Parse(line) |> nonNull :?> JsonObject
        for f in [ "seconds"; "images_per_second"; "augment_seconds"; "method_seconds"; "epoch_seconds" ] do o.Remove f |> ignore
        for f in EpochMetrics.TimingFields do o.Remove f |> ignore
        o.ToJsonString() ]

/// metrics.jsonl without the fields that measure time.
let private metricsWithoutTiming (folder: RunFolder) =
    folder.ReadLines RunFolder.MetricsFile
    |> Seq.map (fun line ->
        let copy = line.DeepClone() :?> JsonObject
        for f in EpochMetrics.TimingFields do copy.Remove f |> ignore
        copy.ToJsonString())
    |> List.ofSeq

let private fileText (folder: RunFolder) name = File.ReadAllText(folder.File name)

[<Tests>]
let tests =
    testSequenced <| testList "training" [
        test "an adversarial run writes config, metrics, policies and a checkpoint per epoch" {
            use dir = new TempDir()
            let folder = RunFolder.Create(dir.File "run")
            let metrics = train (Tiny.Config "adversarial") folder None
            Expect.equal metrics.Length 2 "two epochs"
            for m in metrics do
                Expect.equal m.Instances 2 "M = 2 instance losses"
                Expect.isTrue (m.InstanceLosses |> Array.forall Double.IsFinite) "finite losses"
                Expect.isTrue (m.TestAccuracy.Value >= 0.0 && m.TestAccuracy.Value <= 1.0) "an accuracy"
                Expect.isSome (Option.ofNullable (m.Number "controller_entropy")) "controller entropy recorded"
                Expect.isGreaterThan m.ImagesPerSecond 0.0 "throughput"
            let config = JsonNode.Parse(fileText folder RunFolder.ConfigFile) |> nonNull
            Expect.equal ((config.["experiment"]).["method"].["name"] |> nonNull |> fun n -> n.GetValue<string>()) "adversarial" "config names the method"
            Expect.equal (config["data"]["train_images"] |> nonNull |> fun n -> n.GetValue<int>()) 2000 "config records the data set"
            Expect.equal (config["experiment"]["train_limit"] |> nonNull |> fun n -> n.GetValue<int>()) 128 "and the subset trained on"
            let policies = folder.ReadLines RunFolder.PoliciesFile
            Expect.equal policies.Count 2 "a policies line per epoch"
            let first = policies[0]["policies"] |> nonNull
            Expect.equal (first.AsArray().Count) 2 "M policies"
            Expect.equal ((first[0] |> nonNull).AsArray().Count) 5 "Q = 5 sub-policies"
            Expect.equal ((first[0] |> nonNull)[0] |> nonNull |> fun n -> n.AsArray().Count) 2 "K = 2 ops each"
            let normalized = policies[1]["normalized_losses"] |> nonNull
            let values = [ for v in normalized.AsArray() -> (nonNull v).GetValue<double>() ]
            Expect.floatClose Accuracy.medium (List.sum values) 0.0 "normalised losses have mean 0"
            let checkpoint = folder.LatestCheckpoint() |> nonNull
            Expect.equal checkpoint.Epoch 2 "the last checkpoint is epoch 2"
            Expect.isTrue (checkpoint.Has "controller") "the controller is checkpointed"
            let entries = Directory.GetDirectories(folder.File RunFolder.CheckpointFolder)
            Expect.equal entries.Length 1 "older checkpoints are removed"
        }

        test "a run stopped after epoch 1 and resumed ends with the metrics of an uninterrupted run" {
            use dir = new TempDir()
            let config = Tiny.Config("adversarial", epochs = 3)
            let whole = RunFolder.Create(dir.File "whole")
            train config whole None |> ignore
            let parted = RunFolder.Create(dir.File "parted")
            let first = train config parted (Some 1)
            Expect.equal first.Length 1 "stopped after epoch 1"
            // a kill between the metrics line and the checkpoint leaves an extra line: it is dropped on resume
            JsonLines.Append(parted.File RunFolder.MetricsFile, JsonObject(dict [ "epoch", JsonValue.Create 2 :> JsonNode ]))
            let rest = train config (RunFolder.Open parted.Path) None
            Expect.equal (rest |> List.map (fun m -> m.Epoch)) [ 2; 3 ] "resumed at epoch 2"
            Expect.sequenceEqual (metricsWithoutTiming parted) (metricsWithoutTiming whole) "identical metrics.jsonl"
            Expect.equal (fileText parted RunFolder.PoliciesFile) (fileText whole RunFolder.PoliciesFile) "identical policies.jsonl"
        }

        test "every method trains through the same trainer" {
            use sources = new TempDir()
            // transfer replays a finished run's policies
            let source = RunFolder.Create(sources.File "source")
            train (Tiny.Config("random", epochs = 1)) source None |> ignore
            // The model-patching methods need data with subgroups: PatchingTests trains them on the benchmark.
            for method in MethodRegistry.Names |> Seq.filter (fun n -> not (MethodRegistry.Defaults n :? PatchingSpec)) do
                use dir = new TempDir()
                let config =
                    match method with
                    | "policy" -> Tiny.Config(method, epochs = 1, policy = PolicyDocument.Single AutoAugmentPolicy.Cifar10)
                    | "transfer" -> (Tiny.Config(method, epochs = 1)).WithMethod((MethodRegistry.Defaults method).With("from", source.Path))
                    | "tanda" -> (Tiny.Config(method, epochs = 1)).WithMethod((MethodRegistry.Defaults method).With("tan_epochs", 1).With("samples", 2))
                    | _ -> Tiny.Config(method, epochs = 1)
                let metrics = train config (RunFolder.Create(dir.File method)) None
                let m = List.exactlyOne metrics
                Expect.equal m.Instances (if List.contains method [ "fixed"; "random"; "adversarial"; "transfer" ] then 2 else 1) (method + ": instances")
                Expect.isTrue (Double.IsFinite m.TrainLoss && m.TrainLoss > 0.0) (method + ": a finite training loss")
                Expect.equal (Option.ofNullable (m.Number "controller_entropy") |> Option.isSome) (method = "adversarial") (method + ": a controller only for adversarial")
        }

        test "a diverging loss stops the run and keeps the last good checkpoint" {
            use dir = new TempDir()
            let config = Tiny.Config("baseline", epochs = 3, learningRate = (fun e -> if e < 1.0 then 0.05 else 1e12))
            let folder = RunFolder.Create(dir.File "run")
            let msg = throwsMessage<TrainingDivergedException> (fun () -> train config folder None |> ignore)
            containsAll msg [ "epoch 2"; "epoch-0001" ]
            Expect.equal (folder.LatestCheckpoint() |> nonNull).Epoch 1 "epoch 1's checkpoint is kept"
            Expect.equal (folder.ReadLines RunFolder.MetricsFile).Count 1 "only the good epoch is recorded"
        }

        test "a corrupt checkpoint or one from another model is a clear error" {
            use dir = new TempDir()
            let config = Tiny.Config("baseline", epochs = 1)
            let folder = RunFolder.Create(dir.File "run")
            train config folder None |> ignore
            let other = Tiny.Config("baseline", epochs = 2, model = "wrn-10-2")
            let msg = throwsMessage<RunFolderException> (fun () -> train other (RunFolder.Open folder.Path) None |> ignore)
            containsAll msg [ "holds another run"; "model: recorded \"wrn-10-1\", now \"wrn-10-2\"" ]
            let checkpoint = folder.LatestCheckpoint() |> nonNull
            let modelFile = Path.Combine(checkpoint.Folder, "model.bin")
            let bytes = File.ReadAllBytes modelFile
            File.WriteAllBytes(modelFile, bytes[.. bytes.Length / 2])
            let resumed = Tiny.Config("baseline", epochs = 2)
            let msg = throwsMessage<RunFolderException> (fun () -> train resumed (RunFolder.Open folder.Path) None |> ignore)
            containsAll msg [ modelFile; "corrupt" ]
            Expect.equal (folder.ReadLines RunFolder.MetricsFile).Count 1 "nothing already written was changed"
        }

        test "bad settings are errors naming the value" {
            let bad (config: TrainConfig) parts =
                let msg = throwsMessage<ConfigException> (fun () -> config.Validate() |> ignore)
                containsAll msg parts
            containsAll (throwsMessage<ConfigException> (fun () -> Tiny.Config "magic" |> ignore)) [ "'magic'"; "adversarial" ]
            bad (Tiny.Config("adversarial", model = "vgg")) [ "vgg" ]
            bad (Tiny.Config("adversarial", epochs = 0)) [ "epochs = 0" ]
            bad (Tiny.Config("adversarial", batchSize = 0)) [ "batch size = 0" ]
            bad (Tiny.Config("adversarial", instances = 0.0)) [ "adversarial.instances = 0"; "1..4096" ]
            bad (Tiny.Config "policy") [ "policy.policy"; "a policy file" ]
        }

        test "an existing run folder is never overwritten" {
            use dir = new TempDir()
            let path = dir.File "taken"
            Directory.CreateDirectory path |> ignore
            File.WriteAllText(Path.Combine(path, "notes.txt"), "mine")
            let msg = throwsMessage<RunFolderException> (fun () -> RunFolder.Create path |> ignore)
            containsAll msg [ path; "already exists" ]
            Expect.equal (File.ReadAllText(Path.Combine(path, "notes.txt"))) "mine" "untouched"
            let unique = RunFolder.CreateUnique(dir.Path, "taken")
            Expect.equal unique.Path (path + "-2") "a new folder beside it"
        }
    ]
