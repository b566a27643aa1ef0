module AdvAA.Tests.MethodTests

open System
open System.IO
open Expecto
open TorchSharp
open AdvAA.Core
open AdvAA.Core.Augment
open AdvAA.Core.Data
open AdvAA.Core.Methods
open AdvAA.Core.Training
open AdvAA.Dsl
open AdvAA.Tests.TestSupport
open AdvAA.Tests.TrainingTests

let private sample = lazy (DataSources.EmbeddedSample())

/// The first n training images and labels of the embedded sample.
let private batch (n: int64) =
    let train = sample.Force().Train
    train.Images.narrow(0L, 0L, n), train.Labels.narrow(0L, 0L, n)

let private space (ops: string list) = SearchSpace([| for o in ops -> OpTable.Get o |])

let private noScore = Func<torch.Tensor, torch.Tensor, torch.Tensor>(fun _ _ -> failwith "this method scores nothing")

/// The batch a method builds from n images at epoch 1 of a run with `seed`.
let private built (spec: MethodSpec) (s: SearchSpace) (seed: int64) (n: int64) (score: Func<torch.Tensor, torch.Tensor, torch.Tensor>) =
    use scope = torch.NewDisposeScope()
    use methodInstance = spec.Validate(2, s).Create(MethodContext(s, 10, 3, 32, 32, torch.CPU, 2, seed))
    use streams = new EpochStreams(seed, 1)
    methodInstance.BeginEpoch(EpochContext(1, 0.0, streams, score, torch.CPU))
    let images, labels = batch n
    let b = methodInstance.BuildBatch(images, labels, StepContext(0, 1, 0.0))
    (b.Images.MoveToOuterDisposeScope(), b.Targets.MoveToOuterDisposeScope(), b.Instances)

let private same (a: torch.Tensor) (b: torch.Tensor) = a.shape = b.shape && a.eq(b).all().item<bool>()

let private withoutTiming (m: EpochMetrics) =
    let json = m.ToJson()
    for f in EpochMetrics.TimingFields do json.Remove f |> ignore
    json.ToJsonString()

[<Tests>]
let tests =
    testSequenced <| testList "methods" [
        test "fixed is M copies with crop and flip only: no Cutout, no policy" {
            let images, labels = batch 16L
            let spec = MethodRegistry.Defaults "fixed"
            Expect.equal (spec.Cutout, (spec :?> CopiesSpec).InstancesAt 0.0) (0, 8) "the paper's Fixed: M = 8, no Cutout"
            let out, targets, m = built spec SearchSpace.Default 3L 16L noScore
            use generator = new torch.Generator(uint64 (EpochStreams.SeedOf(3L, 1, EpochStreams.AugmentStream)))
            use expected = StandardAugment.CropFlip(images.repeat(8L, 1L, 1L, 1L), generator)
            Expect.equal m 8 "8 instances"
            Expect.isTrue (same out expected) "exactly crop/flip of the copies, with the epoch's augmentation draws"
            Expect.isTrue (same targets (labels.repeat 8L)) "copy-major labels"
        }

        test "MagnitudeScale and PolicyProbability change the images trained on" {
            // Rotate and Identity consume the same draws; only what the policy does differs.
            let random (scale: float) (p: float) =
                (MethodRegistry.Defaults "random").With("instances", 2).With("magnitude_scale", scale).With("policy_probability", p)
            let images (spec: MethodSpec) ops = let i, _, _ = built spec (space ops) 5L 32L noScore in i
            Expect.isFalse (same (images (random 1.0 1.0) [ "Rotate" ]) (images (random 1.0 1.0) [ "Identity" ])) "Rotate rotates"
            Expect.isTrue (same (images (random 0.0 1.0) [ "Rotate" ]) (images (random 0.0 1.0) [ "Identity" ])) "magnitude scale 0: level 0, no rotation"
            Expect.isTrue (same (images (random 1.0 0.0) [ "Rotate" ]) (images (random 1.0 0.0) [ "Identity" ])) "policy probability 0: no policy"
            Expect.isFalse (same (images (random 1.0 0.5) [ "Rotate" ]) (images (random 1.0 0.5) [ "Identity" ])) "probability 0.5: some are rotated"
        }

        test "uncertainty over the search space keeps candidates in proportion to their loss, in copy-major order" {
            let n = 2000L
            let candidates = ref (torch.empty(0L))
            /// Loss 1 for candidate 0 of every image and 3 for candidate 1: candidate 1 should be kept 3 times in 4.
            let score = Func<torch.Tensor, torch.Tensor, torch.Tensor>(fun images _ ->
                candidates.Value <- images.clone().DetachFromDisposeScope()
                torch.cat([| torch.ones(n); torch.full(n, 3.0) |]))
            let spec = (MethodRegistry.Defaults "uncertainty-space").With("candidates", 2).With("keep", 1)
            let kept, _, _ = built spec (space [ "Rotate"; "ShearX" ]) 11L n score
            let c = candidates.Value
            let matches k = kept.eq(c.narrow(0L, k * n, n)).flatten(1L).all(1L)
            let first, second = matches 0L, matches 1L
            let unambiguous = first.logical_xor(second)
            let share = float (second.logical_and(unambiguous).sum().item<int64>()) / float (unambiguous.sum().item<int64>())
            Expect.isGreaterThan (unambiguous.sum().item<int64>()) 1900L "kept images are one of their own candidates"
            Expect.floatClose { absolute = 0.03; relative = 0.0 } share 0.75 "kept in proportion to loss (1 : 3)"
            // S = 2 of K = 4, losses 0 except candidates 1 and 3: both are kept, copy-major.
            let score2 = Func<torch.Tensor, torch.Tensor, torch.Tensor>(fun images _ ->
                candidates.Value <- images.clone().DetachFromDisposeScope()
                torch.cat([| torch.zeros(64L); torch.ones(64L); torch.zeros(64L); torch.ones(64L) |]))
            let spec2 = (MethodRegistry.Defaults "uncertainty-space").With("candidates", 4).With("keep", 2)
            let kept2, targets2, m = built spec2 (space [ "Rotate"; "ShearX" ]) 11L 64L score2
            let _, labels = batch 64L
            Expect.equal (kept2.shape[0], m) (128L, 1) "S·N images, one instance"
            Expect.isTrue (same targets2 (labels.repeat 2L)) "labels copy-major: kept copy s of image i at s·N + i"
            let c2 = candidates.Value
            for s in 0L .. 1L do
                let block = kept2.narrow(0L, s * 64L, 64L)
                let fromCandidate k = block.eq(c2.narrow(0L, k * 64L, 64L)).flatten(1L).all(1L)
                Expect.isTrue (fromCandidate(1L).logical_or(fromCandidate 3L).all().item<bool>()) (sprintf "kept copy %d is image i's candidate 1 or 3" s)
        }

        test "the authors' uncertainty sampling draws a probability and a continuous magnitude per sample, and mixes labels" {
            let spec = MethodRegistry.Defaults "uncertainty"
            use methodInstance = new UncertaintyMethod(MethodContext(SearchSpace.Default, 10, 3, 32, 32, torch.CPU, 2, 1L), spec :?> UncertaintySpec)
            use g = new torch.Generator(4UL)
            let struct (ops, values, mixup, probabilities) = methodInstance.DrawStage(20000L, g)
            let p = probabilities.data<float32>().ToArray()
            Expect.isTrue (p |> Array.forall (fun v -> v >= 0.0f && v < 1.0f)) "probabilities in [0, 1)"
            Expect.isGreaterThan (Array.distinct p).Length 19000 "a probability of its own per sample"
            let fired = float (ops.ge((0L).ToScalar()).sum().item<int64>() + mixup.sum().item<int64>()) / 20000.0
            Expect.floatClose { absolute = 0.02; relative = 0.0 } fired 0.5 "a sample fires with its probability: half of them on average"
            Expect.floatClose { absolute = 0.01; relative = 0.0 } (float (mixup.sum().item<int64>()) / 20000.0) (0.5 / 16.0) "mixup is one of 16"
            let pool = methodInstance.Pool
            let ids, vs = ops.data<int64>().ToArray(), values.data<float32>().ToArray()
            for op in 0 .. pool.Ops.Count - 1 do
                let d = pool.Ops[op]
                let mine = [| for i in 0 .. ids.Length - 1 do if ids[i] = int64 op then yield float vs[i] |]
                Expect.isGreaterThan mine.Length 300 (d.Name + " is drawn")
                if d.HasMagnitude then
                    let lo, hi = min d.Low d.High, max d.Low d.High
                    Expect.isTrue (mine |> Array.forall (fun v -> abs v >= lo - 1e-4 && abs v <= hi + 1e-4)) (d.Name + ": values in its range")
                    Expect.isGreaterThan (Array.distinct mine).Length (mine.Length * 9 / 10) (d.Name + ": continuous magnitudes")
                    if d.Signed then Expect.isTrue (mine |> Array.exists (fun v -> v < 0.0)) (d.Name + ": both signs")
            Expect.equal (pool.Ops[pool.IndexOf "Cutout"]).High 16.0 "Cutout up to half the image"
            use grey = torch.full([| 64L; 3L; 8L; 8L |], (200).ToScalar(), dtype = torch.ScalarType.Byte)
            use reflected = StandardAugment.CropFlip(grey, g, reflect = true)
            Expect.isTrue (reflected.eq((200).ToScalar()).all().item<bool>()) "the crop pads by reflection, never with zeros"
            // A built batch: S = 1 of K = 4 kept per image, soft targets that sum to 1, some mixed.
            let score = Func<torch.Tensor, torch.Tensor, torch.Tensor>(fun images targets ->
                Expect.equal targets.dtype torch.ScalarType.Float32 "candidates are scored against their soft targets"
                torch.ones(images.shape[0]))
            // The sample's first 400 images are of two classes: partners of the other class show as mixed labels.
            let out, targets, m = built spec SearchSpace.Default 2L 400L score
            Expect.equal (out.shape[0], m) (400L, 1) "one kept candidate per image"
            Expect.isTrue (targets.sum(1L).allclose(torch.ones(400L), rtol = 1e-5, atol = 1e-5)) "soft targets sum to 1"
            Expect.isGreaterThan (targets.gt((0.0f).ToScalar()).sum(1L).gt((1L).ToScalar()).sum().item<int64>()) 10L "mixup in the tail mixes labels"
        }

        test "a method spec's bad value names the method, the parameter and the value" {
            let bad (f: unit -> obj) parts = containsAll (throwsMessage<ConfigException> (fun () -> f () |> ignore)) parts
            let validate (spec: MethodSpec) () = box (spec.Validate(10, SearchSpace.Default))
            bad (validate ((MethodRegistry.Defaults "randaugment").With("m", 31))) [ "randaugment.m = 31"; "0..30" ]
            bad (validate ((MethodRegistry.Defaults "adversarial").With("controller_lr", -0.1))) [ "adversarial.controller_lr = -0.1"; "0..10" ]
            bad (validate ((MethodRegistry.Defaults "fixed").With("instances", EpochSchedule((fun e -> 8.0 - e), "linear 8→-2")))) [ "fixed.instances"; "linear 8→-2"; "0.9995 at epoch 7.0005" ]
            bad (fun () -> box ((MethodRegistry.Defaults "trivialaugment").WithText("wide", "yes"))) [ "trivialaugment.wide = yes"; "true or false" ]
            bad (fun () -> box ((MethodRegistry.Defaults "baseline").With("n", 2))) [ "method 'baseline' has no parameter 'n'"; "cutout, instances" ]
            bad (fun () -> box (MethodRegistry.Get "magic")) [ "unknown method 'magic'"; "transfer" ]
            let settingOf (f: unit -> obj) =
                try
                    f () |> ignore
                    None
                with :? ConfigException as e -> Option.ofObj e.Setting
            Expect.equal (settingOf (validate ((MethodRegistry.Defaults "randaugment").With("m", 31)))) (Some "method.m") "a range names the parameter's path"
            Expect.equal (settingOf (validate ((MethodRegistry.Defaults "uncertainty").With("keep", 9)))) (Some "method.keep") "so does a method's own rule"
            Expect.equal (settingOf (fun () -> box (TrainConfig(Epochs = 0).Validate()))) (Some "epochs") "and the trainer's settings theirs"
            bad (validate (MethodRegistry.Defaults "transfer")) [ "transfer.from = (none)"; "expected a path" ]
            bad (validate ((MethodRegistry.Defaults "transfer").With("from", "/nonexistent/run"))) [ "transfer.from = /nonexistent/run"; "does not exist" ]
        }

        test "a method spec round-trips through its JSON, and the registry describes every parameter" {
            let spec = (MethodRegistry.Defaults "adversarial").With("hidden", 64).With("instances", 4).With("controller_lr", 0.01)
            let back = MethodRegistry.FromJson(spec.ToJson(), "test")
            Expect.equal (back.ToJson().ToJsonString()) (spec.ToJson().ToJsonString()) "same JSON"
            Expect.equal (back :?> AdversarialSpec).Hidden 64 "typed value"
            for entry in MethodRegistry.All do
                Expect.isNotEmpty entry.Description (entry.Name + " has a description")
                for p in entry.Defaults.Parameters do
                    Expect.isNotEmpty p.Description (sprintf "%s.%s has a description" entry.Name p.Name)
        }

        test "instance m's loss is policy m's: an uninformative policy has the highest loss, whichever copy it is" {
            let blackout = Space.customWithoutMagnitude "Blackout" (fun images -> torch.zeros_like images)
            let s = Space.ofOps [ "Identity" ] |> Space.add blackout
            let policy ops = Policy([| SubPolicy([| for o in ops -> PolicyStage(o, 0) |]) |])
            let run (policies: string list) =
                use dir = new TempDir()
                let document = PolicyDocument([| for p in policies -> policy [ p ] |], true)
                let config =
                    TrainConfig(
                        Method = (MethodRegistry.Defaults "policy").With("policy", document).With("cutout", 0),
                        Model = "small", TrainLimit = Nullable 256L, TestLimit = Nullable 50L, Epochs = 3, BatchSize = 32,
                        LearningRate = EpochSchedule.Constant 0.05, Seed = 3L, Device = "cpu", EvalBatchSize = 50, Space = Space.toCore s)
                let m = (train config (RunFolder.Create(dir.File "run")) None |> List.last)
                m.InstanceLosses
            let losses = run [ "Identity"; "Blackout"; "Identity" ]
            Expect.isGreaterThan losses[1] (losses[0] + 0.2) (sprintf "the blacked-out copy has the highest loss: %A" losses)
            Expect.isGreaterThan losses[1] (losses[2] + 0.2) "than either clean copy"
            let swapped = run [ "Blackout"; "Identity"; "Identity" ]
            Expect.isGreaterThan swapped[0] (swapped[1] + 0.2) (sprintf "moved with its policy: %A" swapped)
        }

        test "inside the trainer the controller moves towards the policy with the higher loss" {
            use dir = new TempDir()
            let blackout = Space.customWithoutMagnitude "Blackout" (fun images -> torch.zeros_like images)
            let s = Space.ofOps [ "Identity" ] |> Space.add blackout
            let spec =
                (MethodRegistry.Defaults "adversarial")
                    .With("instances", 4).With("sub_policies", 1).With("ops_per_sub_policy", 1).With("controller_lr", 0.05).With("cutout", 0)
            let config =
                TrainConfig(
                    Method = spec, Model = "small", TrainLimit = Nullable 128L, TestLimit = Nullable 50L, Epochs = 8, BatchSize = 32,
                    LearningRate = EpochSchedule.Constant 0.05, Seed = 1L, Device = "cpu", EvalBatchSize = 50, Space = Space.toCore s)
            let folder = RunFolder.Create(dir.File "run")
            train config folder None |> ignore
            let shares = [ for p in folder.ReadPolicies() -> p.Distribution.Ops |> Seq.find (fun o -> o.Key = "Blackout") |> fun o -> o.Value ]
            Expect.floatClose { absolute = 0.1; relative = 0.0 } shares.Head 0.5 "starts near uniform"
            Expect.isGreaterThan (List.last shares) (shares.Head + 0.15) (sprintf "the share of the high-loss op rises: %A" shares)
        }

        test "an exported policy trains on the same images as the run that learned it" {
            use dir = new TempDir()
            let source = trainIn dir "adversarial" (Tiny.Config("adversarial", epochs = 1))
            let document = AdvAA.Cli.PolicyCommand.exportable source.Path None None
            Expect.isTrue document.PerInstance "one policy per instance"
            Expect.equal document.Policies.Count 2 "M = 2"
            let file = dir.File "p.json"
            File.WriteAllText(file, PolicyJson.Serialize document)
            let replay = trainIn dir "policy" (Tiny.Config("policy", epochs = 1, policy = PolicyJson.ReadDocument file))
            let a, b = (source.ReadMetrics()).[0], (replay.ReadMetrics()).[0]
            Expect.equal (b.InstanceLosses, b.TrainLoss, b.TrainAccuracy, b.TestAccuracy) (a.InstanceLosses, a.TrainLoss, a.TrainAccuracy, a.TestAccuracy)
                "identical training: the same images for the same draws"
            Expect.equal ((replay.ReadPolicies()).[0].Policies |> Seq.toList) ((source.ReadPolicies()).[0].Policies |> Seq.toList) "the same policies recorded"
        }

        test "transfer replays the source run's policies epoch by epoch, mapped proportionally" {
            use dir = new TempDir()
            let source = trainIn dir "source" (Tiny.Config("adversarial", epochs = 2, learningRate = (fun _ -> 0.05)))
            let transfer epochs = (Tiny.Config("transfer", epochs = epochs, learningRate = (fun _ -> 0.05))).WithMethod((MethodRegistry.Defaults "transfer").With("from", source.Path))
            let same = trainIn dir "same" (transfer 2)
            let sourcePolicies = [ for p in source.ReadPolicies() -> List.ofSeq p.Policies ]
            Expect.equal [ for p in same.ReadPolicies() -> List.ofSeq p.Policies ] sourcePolicies "epoch e replays epoch e"
            Expect.equal ((same.ReadMetrics()).[0].TrainLoss) ((source.ReadMetrics()).[0].TrainLoss) "epoch 1 trains on the source's epoch-1 images"
            let longer = trainIn dir "longer" (transfer 4)
            Expect.equal [ for p in longer.ReadPolicies() -> List.ofSeq p.Policies ] [ sourcePolicies[0]; sourcePolicies[0]; sourcePolicies[1]; sourcePolicies[1] ] "4 epochs from 2: 1, 1, 2, 2"
            let config = same.ReadConfig()
            Expect.equal (config.Experiment.Method :?> TransferSpec).From source.Path "the source is recorded"
            Expect.isNotNull (config.Experiment.Method :?> TransferSpec).SourceSha256 "with the hash of what it replays"
            let unfinished = RunFolder.Create(dir.File "unfinished")
            train (Tiny.Config("adversarial", epochs = 3)) unfinished (Some 1) |> ignore
            let msg = throwsMessage<ConfigException> (fun () -> (transfer 2).WithMethod((MethodRegistry.Defaults "transfer").With("from", unfinished.Path)).Validate() |> ignore)
            containsAll msg [ unfinished.Path; "not a finished run"; "1 of its 3 epochs" ]
            let baseline = trainIn dir "baseline" (Tiny.Config("baseline", epochs = 1))
            let msg = throwsMessage<ConfigException> (fun () -> (transfer 2).WithMethod((MethodRegistry.Defaults "transfer").With("from", baseline.Path)).Validate() |> ignore)
            containsAll msg [ baseline.Path; "records no policies" ]
        }

        test "two trainers interleaved step by step give the same metrics as each alone" {
            use dir = new TempDir()
            let config seed = Tiny.Config("adversarial", epochs = 2, dropout = 0.3, seed = seed, batchSize = 16, trainLimit = 320L)
            let alone seed = [ for m in (trainIn dir (sprintf "alone-%d" seed) (config seed)).ReadMetrics() -> withoutTiming m ]
            let expectedA, expectedB = alone 1L, alone 2L
            // Each trainer hands over to the other at every step report (every 10 steps).
            use turnA = new Threading.SemaphoreSlim(1)
            use turnB = new Threading.SemaphoreSlim(0)
            let run (seed: int64) (mine: Threading.SemaphoreSlim) (theirs: Threading.SemaphoreSlim) =
                Threading.Tasks.Task.Run(fun () ->
                    mine.Wait()
                    use trainer = new Trainer(config seed, sample.Force())
                    trainer.StepCompleted.Add(fun _ -> theirs.Release() |> ignore; mine.Wait())
                    try trainer.Run(RunFolder.Create(dir.File(sprintf "interleaved-%d" seed))) |> ignore
                    finally theirs.Release(1000) |> ignore)
            let a = run 1L turnA turnB
            let b = run 2L turnB turnA
            Threading.Tasks.Task.WaitAll(a, b)
            let read seed = [ for m in RunFolder.Open(dir.File(sprintf "interleaved-%d" seed)).ReadMetrics() -> withoutTiming m ]
            Expect.sequenceEqual (read 1L) expectedA "trainer A"
            Expect.sequenceEqual (read 2L) expectedB "trainer B"
        }
    ]
