module AdvAA.Tests.TheoryTests

open System
open System.IO
open Expecto
open AdvAA.Core.Backend
open AdvAA.Core.Data
open AdvAA.Dsl
open AdvAA.Tests.TestSupport
open AdvAA.Tests.CliTests

let private sample = lazy (DataSources.EmbeddedSample())

[<Tests>]
let tests =
    testSequenced <| testList "theory" [
        test "linear model: transforms leaving the span help, inside it do not, mixup is a stronger ridge, a composition helps or hurts" {
            TorchBackend.ResolveDevice DeviceRequest.Cpu |> ignore
            let s = Theory.Linear.defaults
            let r = Theory.Linear.run s
            Expect.isLessThan r.OutsideSpan (0.6 * r.NoAugmentation) "label-invariant points outside S lower the error"
            Expect.floatClose { absolute = 0.1 * r.NoAugmentation; relative = 0.0 } r.InsideSpan r.NoAugmentation "inside S: about the same"
            Expect.isLessThan r.MixupNorm r.Norm "mixup shrinks the estimator"
            Expect.isGreaterThan r.MixupRidge s.Ridge "like a larger ridge penalty"
            Expect.isLessThan r.MixupRidgeDistance 0.15 "and close to that ridge estimator"
            Expect.isLessThan (snd r.HelpingPair) (fst r.HelpingPair) "a composition reaching a new direction lowers the error"
            Expect.isGreaterThan (snd r.HurtingPair) (fst r.HurtingPair) "a composition that only repeats noisy points raises it"
            Expect.equal (Theory.Linear.run s) r "seeded: the same numbers again"
        }

        test "kernel: the first-order approximation is closer to the exact augmented model than no augmentation, the second closer still" {
            TorchBackend.ResolveDevice DeviceRequest.Cpu |> ignore
            let s = { Theory.Kernel.defaults with Features = 256; TrainPerClass = 60; TestPerClass = 50; Steps = 80 }
            let r = Theory.Kernel.run (sample.Force()) s
            let last = List.last r.Points
            let (none, first, second), (agreeNone, agreeFirst, _) = last.ObjectiveGap, last.Agreement
            Expect.isLessThan first none "first order: closer in the exact objective"
            Expect.isLessThan second first "second order: closer still"
            Expect.isGreaterThanOrEqual agreeFirst agreeNone "first order agrees with the exact model's predictions at least as often"
            let msg = throwsMessage<DslException> (fun () -> Theory.Kernel.run (sample.Force()) { s with SecondClass = 12 } |> ignore)
            containsAll msg [ "Kernel: class 12 is not one of the data's 10 classes" ]
        }

        test "a demo with too little data names the problem; the linear demo runs through advaa run and writes its plot" {
            let data = sample.Force()
            use one = new ImageDataset(data.Train.Images.narrow(0L, 0L, 10L), data.Train.Labels.narrow(0L, 0L, 10L).zeros_like(), [| "only" |], "one class")
            let msg = throwsMessage<DslException> (fun () -> Theory.Stability.run (DataSplits(one, one, "test")) Theory.Stability.defaults |> ignore)
            containsAll msg [ "Stability: the data has 1 class"; "at least two" ]
            use dir = new TempDir()
            let code, out, err = cli [ "run"; Path.Combine(repoRoot, "examples", "theory", "linear-model.fsx"); "--out"; dir.Path ]
            expectCode (code, out, err) 0
            containsAll out [ "label-invariant transforms leaving S"; "mixup shrinks the estimator"; "plot     " + dir.File "linear-model.png" ]
            Expect.equal (File.ReadAllBytes(dir.File "linear-model.png")).[1..3] "PNG"B "a PNG"
            let code, out, _ = cli [ "check"; Path.Combine(repoRoot, "examples", "theory", "kernel.fsx") ]
            Expect.equal code 0 "a demo checks"
            Expect.stringContains out "demo           kernel" "and says what it is"
        }
    ]
