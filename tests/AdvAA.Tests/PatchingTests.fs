module AdvAA.Tests.PatchingTests

open System
open System.IO
open System.Threading
open Expecto
open TorchSharp
open AdvAA.Core
open AdvAA.Core.Data
open AdvAA.Core.Methods
open AdvAA.Core.Search
open AdvAA.Core.Training
open AdvAA.Tests.TestSupport
open AdvAA.Tests.TrainingTests

let private groupNames =
    [| SubgroupName(0, "a", "x"); SubgroupName(0, "a", "y"); SubgroupName(1, "b", "x"); SubgroupName(1, "b", "y") |]

let private same (a: torch.Tensor) (b: torch.Tensor) = a.equal(b).all().item<bool>()

let private floats (t: torch.Tensor) = t.cpu().data<float32>().ToArray() |> Array.map float

/// The spurious benchmark built from the embedded sample, small: 100 training images per class.
let private benchmark =
    lazy
        (let folder = Path.Combine(Path.GetTempPath(), sprintf "advaa-patching-%d" Environment.ProcessId)
         if Directory.Exists folder then Directory.Delete(folder, true)
         let d = SpuriousBenchmark.Settings.AnimalVsVehicle
         let settings = SpuriousBenchmark.Settings(d.FirstName, d.First, d.SecondName, d.Second, TrainPerClass = 100, ValPerGroup = 10, TestPerGroup = 20, Correlation = 0.9, Seed = 5L)
         use sample = DataSources.EmbeddedSample()
         SpuriousBenchmark.Write(sample, folder, settings) |> ignore
         AppDomain.CurrentDomain.ProcessExit.Add(fun _ -> try Directory.Delete(folder, true) with _ -> ())
         folder)

let private patchingConfig (spec: MethodSpec) (epochs: int) =
    TrainConfig(Method = spec, Model = "small", TrainLimit = Nullable(), TestLimit = Nullable(), Epochs = epochs, BatchSize = 40,
                LearningRate = EpochSchedule.Constant 0.05, Seed = 3L, Device = "cpu", EvalBatchSize = 100)

/// Trains on the benchmark; cancels after stage-1 epoch `stopStage` or target epoch `stopEpoch`, as a kill would.
let private trainOn (config: TrainConfig) (folder: RunFolder) (stopStage: int option) (stopEpoch: int option) =
    use data = DataSources.Load benchmark.Value
    snd (trainStaged config data folder stopStage stopEpoch)

[<Tests>]
let tests =
    testSequenced <| testList "patching" [
        test "group DRO: the weights move to the worst group; SGDRO's sum to 1 per class and weight classes by frequency" {
            let counts = [| 90L; 10L; 30L; 70L |]
            use losses = torch.tensor([| 0.1f; 0.1f; 2.0f; 0.5f; 0.3f; 0.3f |])
            use groups = torch.tensor([| 0L; 0L; 1L; 2L; 3L; 3L |])
            use overall = new GroupDro(groupNames, counts, 0.1, 0.0, false, torch.CPU)
            for _ in 1 .. 50 do overall.Step(losses, groups).Dispose()
            let q = floats overall.Weights
            Expect.floatClose Accuracy.medium (Array.sum q) 1.0 "one distribution"
            Expect.equal (Array.findIndex ((=) (Array.max q)) q) 1 (sprintf "the worst group (a/y, loss 2) gets the most weight: %A" q)
            // One step from uniform by hand: q ∝ exp(η ℓ_g), robust = Σ q ℓ_g.
            use fresh = new GroupDro(groupNames, counts, 0.1, 0.0, false, torch.CPU)
            let robust = fresh.Step(losses, groups).item<float32>() |> float
            let ell = [| 0.1; 2.0; 0.5; 0.3 |]
            let e = ell |> Array.map (fun l -> exp (0.1 * l))
            let expected = Array.map2 (fun w l -> w / Array.sum e * l) e ell |> Array.sum
            Expect.floatClose Accuracy.medium robust expected "robust loss = Σ q_g ℓ_g after the update"
            use perClass = new GroupDro(groupNames, counts, 0.1, 0.0, true, torch.CPU)
            let robust = perClass.Step(losses, groups).item<float32>() |> float
            let q = floats perClass.Weights
            Expect.floatClose Accuracy.medium (q[0] + q[1]) 1.0 "class a's weights sum to 1"
            Expect.floatClose Accuracy.medium (q[2] + q[3]) 1.0 "class b's too"
            let within (i: int) (j: int) = let a, b = exp (0.1 * ell[i]), exp (0.1 * ell[j]) in a / (a + b), b / (a + b)
            let qa0, qa1 = within 0 1
            let qb0, qb1 = within 2 3
            let expected = 0.5 * (qa0 * ell[0] + qa1 * ell[1]) + 0.5 * (qb0 * ell[2] + qb1 * ell[3])
            Expect.floatClose Accuracy.medium robust expected "Σ_y (n_y/n) Σ_g q_g ℓ_g (both classes have 100 images)"
            // The adjustment C/√n_g favours small groups even at equal losses.
            use equal = torch.ones(4)
            use adjusted = new GroupDro(groupNames, counts, 0.1, 1.0, false, torch.CPU)
            adjusted.Step(equal, torch.tensor([| 0L; 1L; 2L; 3L |])).Dispose()
            let q = floats adjusted.Weights
            Expect.isGreaterThan q[1] q[0] (sprintf "10 images weigh more than 90 at equal loss: %A" q)
        }

        test "consistency: zero when the predictions agree, the direct ½/¼/¼ KL to the translations' mean otherwise" {
            use same = torch.tensor([| 1.0f; -0.5f; 0.2f; 0.0f; 2.0f; -1.0f |]).view(2L, 3L)
            Expect.floatClose { absolute = 1e-6; relative = 0.0 } (Consistency.Loss(same, same, same).item<float32>() |> float) 0.0 "agreeing predictions (float32)"
            let rows = [| [| 0.5; 0.1; -0.3 |]; [| 2.0; -1.0; 0.0 |]; [| -0.4; 0.9; 0.3 |] |]
            let logits (r: float[]) = torch.tensor(r |> Array.map float32).view(1L, 3L)
            let softmax (r: float[]) = let e = r |> Array.map exp in e |> Array.map (fun v -> v / Array.sum e)
            let p = rows |> Array.map softmax
            let mean = Array.map2 (fun a b -> (a + b) / 2.0) p[1] p[2]
            let kl (a: float[]) = Array.map2 (fun x m -> x * log (x / m)) a mean |> Array.sum
            let expected = 0.5 * kl p[0] + 0.25 * kl p[1] + 0.25 * kl p[2]
            let got = Consistency.Loss(logits rows[0], logits rows[1], logits rows[2]).item<float32>() |> float
            Expect.floatClose Accuracy.medium got expected "the direct computation"
        }

        test "camel-oracle's batch: the image and its two subgroup versions, one crop and flip for all three" {
            use data = DataSources.Load benchmark.Value
            // Images of all four groups (the training images are ordered by group: 10, 90, 90, 10).
            use train = data.Train.Select(torch.tensor([| 0L; 1L; 30L; 60L; 100L; 150L; 190L; 195L |]))
            let spec = MethodRegistry.Defaults "camel-oracle"
            let context = MethodContext(AdvAA.Core.Augment.SearchSpace.Default, 2, 3, 32, 32, torch.CPU, 1, 1L, nonNull train.GroupNames, train.GroupCounts(), true)
            use methodInstance = spec.Create context
            use streams = new EpochStreams(1L, 1)
            methodInstance.BeginEpoch(EpochContext(1, 0.0, streams, (fun _ _ -> failwith "no scorer"), torch.CPU))
            let groups = nonNull train.Groups
            let batch = methodInstance.BuildBatch(train.Images, train.Labels, StepContext(0, 1, 0.0, groups, train.Counterparts))
            Expect.sequenceEqual batch.Images.shape [| 24L; 3L; 32L; 32L |] "3N images"
            Expect.equal batch.Instances 3 "x, its first-subgroup and its second-subgroup version"
            let firstOfClass = [| for g in nonNull train.GroupNames -> (nonNull train.GroupNames) |> Seq.findIndex (fun h -> h.Class = g.Class) |]
            let groupOf = groups.data<int64>().ToArray()
            for i in 0 .. 7 do
                let own = if int groupOf[i] = firstOfClass[int groupOf[i]] then 1L else 2L
                let other = 3L - own
                Expect.isTrue (same batch.Images[int64 i] batch.Images[own * 8L + int64 i]) (sprintf "image %d: its own subgroup's version is itself, cropped alike" i)
                Expect.isFalse (same batch.Images[int64 i] batch.Images[other * 8L + int64 i]) (sprintf "image %d: the other version differs (the patch)" i)
        }

        test "bad input: data without subgroups, oracle without counterparts, consistency without translations, mixing, are named" {
            let context groups counts counterparts =
                MethodContext(AdvAA.Core.Augment.SearchSpace.Default, 2, 3, 32, 32, torch.CPU, 1, 1L, groups, counts, counterparts)
            let create name ctx = throwsMessage<ConfigException> (fun () -> (MethodRegistry.Defaults name).Create(ctx).Dispose())
            containsAll (create "sgdro" (context null null false)) [ "method sgdro needs data with subgroups"; "<class>/<subgroup>"; "metadata.csv" ]
            containsAll (create "camel-oracle" (context groupNames [| 5L; 5L; 5L; 5L |] false)) [ "translations = oracle"; "counterparts"; "make-spurious" ]
            let three = [| SubgroupName(0, "a", "x"); SubgroupName(0, "a", "y"); SubgroupName(0, "a", "z"); SubgroupName(1, "b", "x"); SubgroupName(1, "b", "y") |]
            containsAll (create "camel-oracle" (context three [| 5L; 5L; 5L; 5L; 5L |] true)) [ "class 'a' has 3 (x, y, z)" ]
            let validate (spec: MethodSpec) = throwsMessage<ConfigException> (fun () -> spec.Validate(1, AdvAA.Core.Augment.SearchSpace.Default) |> ignore)
            containsAll (validate ((MethodRegistry.Defaults "gdro").With("consistency", 5.0))) [ "gdro.consistency = 5"; "without translations" ]
            containsAll (validate ((MethodRegistry.Defaults "camel").With("consistency", 0.0))) [ "camel.consistency = 0"; "more than 0" ]
            containsAll (validate ((MethodRegistry.Defaults "gdro").With("objective", "minimax"))) [ "gdro.objective = minimax"; "erm, gdro, sgdro" ]
            let config = (patchingConfig (MethodRegistry.Defaults "gdro") 1).WithMix(AdvAA.Core.Augment.Mixup 1.0)
            use data = DataSources.Load benchmark.Value
            containsAll (throwsMessage<ConfigException> (fun () -> (new Trainer(config, data)).Dispose())) [ "method gdro"; "label mixing"; "mixup" ]
        }

        test "sgdro trains on the benchmark: per-group and robust accuracy, the subgroup gap and the weights in every epoch" {
            use dir = new TempDir()
            let folder = RunFolder.Create(dir.File "sgdro")
            let metrics = trainOn (patchingConfig (MethodRegistry.Defaults "sgdro") 2) folder None None
            let last = List.last metrics
            let accuracy = nonNull last.GroupAccuracy
            Expect.sequenceEqual [ for g in accuracy -> g.Key ] [ "animal/clean"; "animal/patch"; "vehicle/clean"; "vehicle/patch" ] "each group's test accuracy"
            Expect.floatClose Accuracy.high last.RobustAccuracy.Value (accuracy |> Seq.map (fun g -> g.Value) |> Seq.min) "robust = the worst group"
            let gap = nonNull last.SubgroupGap |> Seq.map (fun g -> g.Key, g.Value) |> Map.ofSeq
            Expect.floatClose Accuracy.high gap["animal"] (abs (accuracy[0].Value - accuracy[1].Value)) "the animals' gap"
            let weights = nonNull (last.Named "group_weights") |> Seq.map (fun g -> g.Value) |> Array.ofSeq
            Expect.floatClose Accuracy.medium (weights[0] + weights[1]) 1.0 "per-class weights"
            let line = (folder.ReadLines RunFolder.MetricsFile |> Seq.last)
            for field in [ "group_accuracy"; "robust_accuracy"; "subgroup_gap"; "group_weights" ] do
                Expect.isNotNull line[field] (field + " in metrics.jsonl")
            let read = EpochMetrics.FromJson(line, "metrics.jsonl:2")
            Expect.sequenceEqual (nonNull (read.Named "group_weights") |> Seq.map (fun g -> g.Value)) (nonNull (last.Named "group_weights") |> Seq.map (fun g -> g.Value)) "read back"
            let index = AdvAA.Dsl.RunReport.write [ folder.Path ] None 4
            for png in [ "group-accuracy.png"; "group-weights.png" ] do
                Expect.isTrue (File.Exists(Path.Combine(folder.Path, "report", png))) (png + " in the report")
            containsAll (File.ReadAllText index) [ "id=\"groups\""; "robust accuracy"; "subgroup gap" ]
        }

        test "camel: stage 1 and stage 2 resume after an interruption with the metrics of an uninterrupted run; a lost stage 1 is named" {
            use dir = new TempDir()
            let spec = (MethodRegistry.Defaults "camel").With("gan_epochs", 2).With("gan_filters", 4).With("gan_blocks", 1)
            let config = patchingConfig spec 2
            let whole = RunFolder.Create(dir.File "whole")
            let metrics = trainOn config whole None None
            Expect.equal metrics.Length 2 "two epochs"
            Expect.isTrue (((List.last metrics).Number "consistency_loss").Value > 0.0) "a consistency loss"
            let stage = Path.Combine(whole.Path, PatchingMethod.StageFolder)
            Expect.isTrue (File.Exists(Path.Combine(stage, CycleGanStage.GridFile))) "stage 1's grid"
            let index = AdvAA.Dsl.RunReport.write [ whole.Path ] None 4
            for png in [ "cyclegan-stage1.png"; "cyclegan-translations.png"; "group-accuracy.png" ] do
                Expect.isTrue (File.Exists(Path.Combine(whole.Path, "report", png))) (png + " in the report")
            Expect.stringContains (File.ReadAllText index) "cyclegan-translations" "and on its page"
            let parted = RunFolder.Create(dir.File "parted")
            trainOn config parted (Some 1) None |> ignore
            Expect.isFalse (File.Exists(parted.File RunFolder.MetricsFile) && File.ReadAllText(parted.File RunFolder.MetricsFile) <> "") "stopped in stage 1: the target did not train"
            trainOn config (RunFolder.Open parted.Path) None (Some 1) |> ignore
            trainOn config (RunFolder.Open parted.Path) None None |> ignore
            let stageFile (run: RunFolder) = Path.Combine(run.Path, PatchingMethod.StageFolder, CycleGanStage.MetricsFile)
            Expect.sequenceEqual (withoutTiming (stageFile parted)) (withoutTiming (stageFile whole)) "identical stage-1 metrics"
            Expect.sequenceEqual (withoutTiming (parted.File RunFolder.MetricsFile)) (withoutTiming (whole.File RunFolder.MetricsFile)) "identical target metrics"
            // Stage 2 without its stage 1: named, and nothing the run has is touched.
            let lost = RunFolder.Create(dir.File "lost")
            trainOn config lost None (Some 1) |> ignore
            Directory.Delete(Path.Combine(lost.Path, PatchingMethod.StageFolder), true)
            let before = File.ReadAllText(lost.File RunFolder.MetricsFile)
            let message = throwsMessage<RunFolderException> (fun () -> trainOn config (RunFolder.Open lost.Path) None None |> ignore)
            containsAll message [ Path.Combine(lost.Path, PatchingMethod.StageFolder); "stage 1"; "missing or unfinished" ]
            Expect.equal (File.ReadAllText(lost.File RunFolder.MetricsFile)) before "metrics untouched"
            Expect.isFalse (Directory.Exists(Path.Combine(lost.Path, PatchingMethod.StageFolder))) "no new stage 1"
        }
    ]
