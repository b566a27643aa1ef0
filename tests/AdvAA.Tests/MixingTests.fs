module AdvAA.Tests.MixingTests

open System
open Expecto
open TorchSharp
open AdvAA.Core
open AdvAA.Core.Augment
open AdvAA.Core.Backend
open AdvAA.Core.Training
open AdvAA.Dsl
open AdvAA.Tests.TestSupport
open AdvAA.Tests.TrainingTests

/// B samples, sample i a constant image of value i and its own class i: a mixed sample shows whose it is.
let private numbered (b: int64) (side: int64) =
    torch.arange(b, dtype = torch.float32).view(-1L, 1L, 1L, 1L).expand(b, 3L, side, side).contiguous(), torch.arange(b, dtype = torch.int64)

[<Tests>]
let tests =
    testList "mixing" [
        test "mixup: targets sum to 1, one lambda per batch, inputs blended with a partner from the same copy block" {
            TorchBackend.ResolveDevice DeviceRequest.Cpu |> ignore
            let b, instances = 16L, 2
            let x, y = numbered b 4L
            use g = new torch.Generator(3UL)
            let struct (mixed, targets) = (Mixup 1.0).Apply(x, y, int b, instances, g)
            Expect.isTrue (targets.sum(1L).allclose(torch.ones(b))) "each target sums to 1"
            let own = targets.diagonal() |> fun d -> d.data<float32>().ToArray()
            // Every sample paired with another has its own label at lambda; one paired with itself keeps it whole.
            let paired = own |> Array.filter (fun w -> w < 0.9999f)
            Expect.isNonEmpty paired "some samples are paired with others"
            let lambda = paired[0]
            let rows = targets.data<float32>().ToArray()
            let partner (i: int64) =
                [ 0L .. b - 1L ] |> List.filter ((<>) i) |> List.maxBy (fun j -> rows[int (i * b + j)])
            for i in 0L .. b - 1L do
                let j = if own[int i] >= 0.9999f then i else partner i
                Expect.equal (i / (b / int64 instances)) (j / (b / int64 instances)) "the partner is in the same copy block"
                let weight = if j = i then 1.0f else own[int i]
                if j <> i then Expect.floatClose Accuracy.medium (float weight) (float lambda) "one lambda for the batch"
                let expected = weight * float32 i + (1.0f - weight) * float32 j
                Expect.floatClose Accuracy.medium (mixed[i, 0L, 0L, 0L].item<float32>() |> float) (float expected) "x = lambda x + (1 - lambda) x'"
        }

        test "CutMix: a box from the partner, the label weighted by the area kept" {
            TorchBackend.ResolveDevice DeviceRequest.Cpu |> ignore
            let b = 8L
            let x, y = numbered b 32L
            use g = new torch.Generator(5UL)
            let struct (mixed, targets) = (CutMix 1.0).Apply(x, y, int b, 1, g)
            Expect.isTrue (targets.sum(1L).allclose(torch.ones(b))) "each target sums to 1"
            for i in 0L .. b - 1L do
                let kept = mixed[i].eq((float32 i).ToScalar()).to_type(torch.float32).mean().item<float32>()
                Expect.floatClose Accuracy.medium (float kept) (float (targets[i, i].item<float32>())) "the weight of the own label is the share of own pixels"
        }

        test "the soft-target loss is the hard one for one-hot targets, and bad mixing is named" {
            TorchBackend.ResolveDevice DeviceRequest.Cpu |> ignore
            use logits = torch.randn(6L, 5L)
            use labels = torch.tensor [| 0L; 1L; 4L; 2L; 2L; 3L |]
            use hard = Losses.CrossEntropy(logits, labels)
            use soft = Losses.CrossEntropy(logits, torch.nn.functional.one_hot(labels, 5L).to_type(torch.float32))
            Expect.isTrue (hard.allclose(soft, rtol = 1e-5, atol = 1e-6)) "lambda 0 or 1: the same loss"
            containsAll (throwsMessage<AugmentException> (fun () -> LabelMixing.Parse "mixup:0" |> ignore)) [ "mixup alpha = 0"; "above 0" ]
            containsAll (throwsMessage<AugmentException> (fun () -> LabelMixing.Parse "blend:1" |> ignore)) [ "unknown label mixing 'blend'"; "mixup or cutmix" ]
            containsAll (throwsMessage<DslException> (fun () -> Mix.cutmix -1.0 |> ignore)) [ "cutmix alpha = -1" ]
            Expect.equal (LabelMixing.Parse "cutmix").Alpha 1.0 "alpha 1 by default"
        }

        test "training with mixup records it, learns, and resuming without it is refused" {
            use dir = new TempDir()
            let config = (Tiny.Config("adversarial", epochs = 1)).WithMix(Mixup 0.4)
            let folder = RunFolder.Create(dir.File "run")
            let m = train config folder None |> List.exactlyOne
            Expect.isTrue (Double.IsFinite m.TrainLoss && m.TrainLoss > 0.0) "a finite soft-target loss"
            Expect.equal (folder.ReadConfig().Experiment.Mix.Text) "mixup:0.4" "recorded"
            let msg = throwsMessage<RunFolderException> (fun () -> train (Tiny.Config("adversarial", epochs = 2)) (RunFolder.Open folder.Path) None |> ignore)
            containsAll msg [ "mix: recorded {\"name\":\"mixup\",\"alpha\":0.4}, now null" ]
        }
    ]
