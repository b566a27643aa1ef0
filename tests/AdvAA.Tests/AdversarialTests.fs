/// The adversarial method's options for small budgets (issue 28): windows, the paired reward, the EMA
/// teacher, the prior; and that records, resumption, transfer and export keep every window.
module AdvAA.Tests.AdversarialTests

open System
open System.IO
open Expecto
open TorchSharp
open AdvAA.Core
open AdvAA.Core.Augment
open AdvAA.Core.Data
open AdvAA.Core.Methods
open AdvAA.Core.Models
open AdvAA.Core.Training
open AdvAA.Tests.TestSupport
open AdvAA.Tests.TrainingTests
open AdvAA.Tests.CliTests

let private floats (t: torch.Tensor) = t.detach().cpu().to_type(torch.float64).data<float>().ToArray()

/// The tiny adversarial configuration (128 images, batch 32: 4 steps an epoch, M = 2) with parameters set.
let private adversarial (epochs: int) (parameters: (string * obj) list) =
    let config = Tiny.Config("adversarial", epochs = epochs, learningRate = (fun _ -> 0.05))
    config.WithMethod(parameters |> List.fold (fun (spec: MethodSpec) (name, value) -> spec.With(name, value)) config.Method)

/// The bytes of a method's named state part.
let private stateOf (methodInstance: ITrainingMethod) (name: string) =
    use bytes = new MemoryStream()
    (methodInstance.StateParts |> Seq.find (fun p -> p.Name = name)).Save.Invoke bytes
    bytes.ToArray()

[<Tests>]
let tests =
    testSequenced <| testList "adversarial" [
        test "K windows give K controller steps and K policy draws per epoch" {
            let space = SearchSpace.Default
            let spec = (MethodRegistry.Defaults "adversarial").With("instances", 2).With("updates_per_epoch", 3).With("controller_lr", 0.01).Validate(1, space)
            use methodInstance = spec.Create(MethodContext(space, 10, 3, 32, 32, torch.CPU, 1, 5L, StepsPerEpoch = 6))
            use streams = new EpochStreams(5L, 1)
            let train = (DataSources.EmbeddedSample()).Train
            methodInstance.BeginEpoch(EpochContext(1, 0.0, streams, null, torch.CPU))
            let mutable steps = 0
            for step in 0 .. 5 do
                use scope = torch.NewDisposeScope()
                let before = stateOf methodInstance "controller"
                let batch = methodInstance.BuildBatch(train.Images.narrow(0L, 8L * int64 step, 8L), train.Labels.narrow(0L, 8L * int64 step, 8L), StepContext(step, 6, float step / 6.0))
                if stateOf methodInstance "controller" <> before then steps <- steps + 1
                methodInstance.Observe(batch, torch.rand([| batch.Images.shape[0] |]))
            let before = stateOf methodInstance "controller"
            let record = methodInstance.EndEpoch(EpochLosses([| 1.0; 2.0 |]))
            if stateOf methodInstance "controller" <> before then steps <- steps + 1
            Expect.equal steps 3 "one controller step at the end of each of the 3 windows (steps 2 and 4 start new ones, the last ends with the epoch)"
            let windows = nonNull record.Windows
            Expect.equal windows.Count 3 "3 windows recorded"
            Expect.isTrue (windows |> Seq.forall (fun w -> w.Policies.Count = 2 && not (isNull w.NormalizedLosses))) "each with M = 2 policies and the rewards it learned from"
            Expect.equal (windows |> Seq.map (fun w -> List.ofSeq w.Policies) |> Seq.distinct |> Seq.length) 3 "each window drew its own policies"
        }

        test "the paired reward of a hand-built batch is the hand-computed mean difference per sub-policy" {
            // M = 2 instances of N = 3 images, Q = 2 sub-policies. Image means over the instances: 2, 2, 4.
            use signal = torch.tensor([| 1.0f; 2.0f; 3.0f; 3.0f; 2.0f; 5.0f |]).reshape(2L, 3L)
            // Copy (1, 2) had no policy applied (−1): it counts nowhere.
            use drawn = torch.tensor([| 0L; 1L; 0L; 1L; 1L; -1L |]).reshape(2L, 3L)
            let struct (sums, counts) = AdversarialMethod.PairedDifferences(signal, drawn, 2)
            use sums = sums
            use counts = counts
            Expect.sequenceEqual (floats sums) [| -2.0; 0.0; 0.0; 1.0 |] "differences −1, 0, −1 | 1, 0, (1): summed per unit"
            Expect.sequenceEqual (floats counts) [| 2.0; 1.0; 0.0; 2.0 |] "images per unit; instance 2's sub-policy 1 drew none"
        }

        test "the teacher is an EMA of the target and takes no gradient" {
            use target = ModelRegistry.Create("small", 10, 0.0, 1L)
            let losses = Func<torch.nn.Module<torch.Tensor, torch.Tensor>, torch.Tensor, torch.Tensor, torch.Tensor>(fun m images targets ->
                use _ = torch.no_grad()
                m.eval()
                torch.nn.functional.cross_entropy(m.forward(images.to_type(torch.float32).div(torch.tensor 255.0f)), targets, reduction = torch.nn.Reduction.None))
            use teacher = new EmaTeacher(TargetModel(target, (fun () -> ModelRegistry.Create("small", 10, 0.0, 99L)), losses), 0.9)
            let named (m: torch.nn.Module) = m.named_parameters() |> Seq.map (fun struct (n, p) -> n, floats p) |> Map.ofSeq
            Expect.equal (named teacher.Module) (named target) "it starts as a copy of the target"
            let before = named teacher.Module
            using (torch.no_grad()) (fun _ -> for p in target.parameters() do p.add_(torch.ones_like p) |> ignore)
            let moved = named target
            teacher.Update()
            for KeyValue(name, values) in named teacher.Module do
                let expected = Array.map2 (fun t s -> 0.9 * t + 0.1 * s) before[name] moved[name]
                Expect.isLessThan (Array.map2 (fun a b -> abs (a - b)) values expected |> Array.max) 1e-5 (sprintf "%s = 0.9 θ_T + 0.1 θ" name)
            let train = (DataSources.EmbeddedSample()).Train
            let images, labels = train.Images.narrow(0L, 0L, 4L), train.Labels.narrow(0L, 0L, 4L)
            target.train()
            torch.nn.functional.cross_entropy(target.forward(images.to_type(torch.float32).div(torch.tensor 255.0f)), labels).backward()
            Expect.isTrue (teacher.Module.parameters() |> Seq.forall (fun p -> not p.requires_grad && isNull p.grad)) "no teacher parameter requires or has a gradient"
            use teacherLosses = teacher.Losses(images, labels)
            Expect.isFalse teacherLosses.requires_grad "its losses carry no graph"
            Expect.equal teacherLosses.shape [| 4L |] "one per image"
        }

        test "a run with windows, a paired reward and a teacher resumes exactly; policies.jsonl keeps every window" {
            use dir = new TempDir()
            let config = adversarial 2 [ "updates_per_epoch", box 2; "reward", box "paired"; "teacher_weight", box 0.5; "controller_lr", box 0.01 ]
            let whole = trainIn dir "whole" config
            let stopped = RunFolder.Create(dir.File "stopped")
            train config stopped (Some 1) |> ignore
            train config (RunFolder.Open stopped.Path) None |> ignore
            Expect.equal (withoutTiming (stopped.File RunFolder.MetricsFile)) (withoutTiming (whole.File RunFolder.MetricsFile)) "the same metrics"
            Expect.equal (File.ReadAllText(stopped.File RunFolder.PoliciesFile)) (File.ReadAllText(whole.File RunFolder.PoliciesFile)) "the same policies, rewards and distributions"
            let records = whole.ReadPolicies()
            for r in records do
                let windows = nonNull r.Windows
                Expect.equal windows.Count 2 (sprintf "epoch %d: 2 windows" r.Epoch)
                Expect.equal (nonNull windows[0].SubPolicyRewards).Length (2 * 5) "a reward per (instance, sub-policy) unit"
                Expect.isTrue r.Distribution.Exact "the distribution is exact"
            let metrics = whole.ReadMetrics()
            Expect.isTrue (metrics |> Seq.forall (fun m -> m.Number AdversarialSpec.TeacherLossMetric |> Option.ofNullable |> Option.exists (fun v -> v > 0.0))) "the teacher's loss is recorded"
            Expect.isTrue (metrics |> Seq.forall (fun m -> m.MethodSeconds |> Seq.exists (fun p -> p.Key = AdversarialSpec.TeacherPart))) "and its time"
        }

        test "policy export and transfer replay windows" {
            use dir = new TempDir()
            let source = trainIn dir "source" (adversarial 2 [ "updates_per_epoch", box 2; "controller_lr", box 0.05 ])
            let sourceWindows = [ for r in source.ReadPolicies() -> [ for w in r.WindowPolicies -> List.ofSeq w ] ]
            let transfer = (Tiny.Config("transfer", epochs = 2, learningRate = (fun _ -> 0.05))).WithMethod((MethodRegistry.Defaults "transfer").With("from", source.Path))
            let replay = trainIn dir "replay" transfer
            Expect.equal [ for r in replay.ReadPolicies() -> [ for w in r.WindowPolicies -> List.ofSeq w ] ] sourceWindows "every window of every epoch, in order"
            let first = AdvAA.Cli.PolicyCommand.exportable source.Path (Some 2) (Some 1)
            Expect.equal (List.ofSeq first.Policies) sourceWindows[1].[0] "--window 1 of epoch 2"
            Expect.stringContains (nonNull first.Source) "window 1 of 2" "the source names the window"
            Expect.equal (List.ofSeq (AdvAA.Cli.PolicyCommand.exportable source.Path None None).Policies) sourceWindows[1].[1] "by default the last window of the last epoch"
            let msg = throwsMessage<RunFolderException> (fun () -> AdvAA.Cli.PolicyCommand.exportable source.Path (Some 1) (Some 3) |> ignore)
            containsAll msg [ "--window 3"; "2 window(s)"; "1..2" ]
        }

        test "bad settings name the parameter and value before anything is written" {
            use dir = new TempDir()
            let failing (parameter: string) (expected: string list) =
                let out = dir.File(parameter.Replace('=', '-'))
                let code, stdout, stderr = cli ([ "train"; "--method"; "adversarial"; "--param"; parameter; "--out"; out ] @ [ "--epochs"; "1"; "--batch"; "32"; "--instances"; "2"; "--train-limit"; "64"; "--test-limit"; "50"; "--device"; "cpu" ])
                expectCode (code, stdout, stderr) 1
                containsAll stderr expected
                noTrace stderr
                Expect.isFalse (Directory.Exists out && Directory.EnumerateFileSystemEntries out |> Seq.isEmpty |> not) (sprintf "%s: nothing written" parameter)
            failing "updates_per_epoch=3" [ "adversarial.updates_per_epoch = 3"; "at most the 2 steps of an epoch" ]
            failing "teacher_weight=-1" [ "adversarial.teacher_weight = -1"; "0..100" ]
            failing "kl_weight=-0.5" [ "adversarial.kl_weight = -0.5" ]
            failing "prior=Invert:2,Teleport:3" [ "adversarial.prior = Invert:2,Teleport:3"; "it names Teleport" ]
            failing "reward=best" [ "adversarial.reward = best"; "instance or paired" ]
            failing "head_init=random" [ "adversarial.head_init = random"; "zero or uniform" ]
        }

        test "a config.json from before head_init reads as the uniform heads it ran with" {
            let spec = (MethodRegistry.Defaults "adversarial") :?> AdversarialSpec
            Expect.equal spec.HeadInit AdversarialSpec.ZeroHeads "new runs start the heads at zero"
            let json = spec.ToJson()
            json.Remove "head_init" |> ignore
            let old = MethodRegistry.FromJson(json, "config.json") :?> AdversarialSpec
            Expect.equal old.HeadInit AdversarialSpec.UniformHeads "an older record ran with uniform heads"
        }

        test "the AutoAugment prior counts each stage's op, and the level only of stages with a magnitude" {
            let space = SearchSpace.Default
            let spec = ((MethodRegistry.Defaults "adversarial").WithText("prior", "autoaugment")) :?> AdversarialSpec
            let struct (ops, levels) = (nonNull (spec.ControllerPrior space)).Probabilities
            let stages = [ for sub in AutoAugmentPolicy.Cifar10.SubPolicies do yield! sub.Stages ]
            let opWeights = [| for op in space.Ops -> AdversarialSpec.PriorSmoothing + (stages |> List.sumBy (fun s -> if s.Op = op.Name then s.Probability else 0.0)) |]
            let levelWeights =
                [| for l in 0 .. space.Levels - 1 ->
                    AdversarialSpec.PriorSmoothing
                    + (stages |> List.sumBy (fun s -> if s.Level = l && space.Ops[space.IndexOf s.Op].HasMagnitude then s.Probability else 0.0)) |]
            for i in 0 .. ops.Length - 1 do
                Expect.floatClose Accuracy.high ops[i] (opWeights[i] / Array.sum opWeights) (sprintf "op %s" space.Ops[i].Name)
            for l in 0 .. levels.Length - 1 do
                Expect.floatClose Accuracy.high levels[l] (levelWeights[l] / Array.sum levelWeights) (sprintf "level %d" l)
            Expect.isLessThan levels[0] 0.2 "Invert's, Equalize's and AutoContrast's level 0 are not counted"
            Expect.isNull (((MethodRegistry.Defaults "adversarial") :?> AdversarialSpec).ControllerPrior space) "none: no prior (uniform)"
        }

        test "a policies.jsonl line with broken windows is refused naming the line and the field" {
            let refused (line: string) (expected: string list) =
                let json = System.Text.Json.Nodes.JsonNode.Parse line :?> System.Text.Json.Nodes.JsonObject
                containsAll (throwsMessage<RunFolderException> (fun () -> PolicyRecord.FromJson(json, "policies.jsonl:3") |> ignore)) ("policies.jsonl:3" :: expected)
            refused """{"epoch":1,"method":"adversarial","windows":7,"instance_losses":[1.0]}""" [ "windows" ]
            refused """{"epoch":1,"method":"adversarial","windows":[],"instance_losses":[1.0]}""" [ "windows is empty" ]
            refused """{"epoch":1,"method":"adversarial","windows":[3],"instance_losses":[1.0]}""" [ "windows[0]"; "expected an object" ]
            refused """{"epoch":1,"method":"adversarial","windows":[{"policies":[[["Invert"]]]}],"instance_losses":[1.0]}""" [ "windows[0]"; "policies[0][0][0]" ]
            refused """{"epoch":1,"method":"adversarial","policies":[[[["Invert",0]]]],"instance_losses":[1.0],"sub_policy_rewards":["x"]}""" [ "sub_policy_rewards[0]" ]
        }
    ]
