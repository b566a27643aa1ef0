module AdvAA.Tests.SpeedTests

open System
open System.IO
open Expecto
open TorchSharp
open AdvAA.Core
open AdvAA.Core.Backend
open AdvAA.Core.Data
open AdvAA.Core.Methods
open AdvAA.Core.Models
open AdvAA.Core.Training
open AdvAA.Tests.TestSupport
open AdvAA.Tests.TrainingTests

let private bf16Config (precision: string) (epochs: int) =
    TrainConfig(
        Method = Tiny.Spec("adversarial"), Model = "wrn-10-1", TrainLimit = Nullable 64L, TestLimit = Nullable 50L, Epochs = epochs,
        BatchSize = 32, LearningRate = EpochSchedule.Constant 0.05, Seed = 7L, Device = "cpu", EvalBatchSize = 50, Precision = precision)

[<Tests>]
let tests =
    testSequenced <| testList "speed" [
        test "autocast runs convolutions in bfloat16 inside its region only, and restores what was before" {
            TorchBackend.ResolveDevice DeviceRequest.Cpu |> ignore
            use conv = torch.nn.Conv2d(3L, 4L, 3L)
            use x = torch.randn(2L, 3L, 8L, 8L)
            Expect.isFalse (Autocast.IsEnabled DeviceType.CPU) "off by default"
            do
                use _outer = Autocast.Enter(DeviceType.CPU, torch.ScalarType.BFloat16)
                Expect.equal (conv.forward x).dtype torch.ScalarType.BFloat16 "a convolution in the region runs in bf16"
                Expect.equal (x + x).dtype torch.ScalarType.Float32 "an addition is not on the autocast list"
                do
                    use _inner = Autocast.Enter(DeviceType.CPU, torch.ScalarType.BFloat16)
                    Expect.isTrue (Autocast.IsEnabled DeviceType.CPU) "nested"
                Expect.isTrue (Autocast.IsEnabled DeviceType.CPU) "the outer region is still on after the inner one"
            Expect.isFalse (Autocast.IsEnabled DeviceType.CPU) "off again"
            Expect.equal (conv.forward x).dtype torch.ScalarType.Float32 "fp32 outside"
            Expect.equal conv.weight.dtype torch.ScalarType.Float32 "the weights stay fp32"
            do
                use _none = Autocast.For(Precision.Fp32, DeviceType.CPU)
                Expect.isFalse (Autocast.IsEnabled DeviceType.CPU) "fp32's region does nothing"
        }

        test "precision: auto follows the probe where bf16 instructions exist and is fp32 where bf16 is emulated; bf16 without them warns; a resumed run keeps its own" {
            let cpu = TorchBackend.ResolveDevice DeviceRequest.Cpu
            let fast = Precisions.FastBf16 cpu
            let noProbe = Func<Precision, float>(fun _ -> failtest "no probe where the rule decides")
            if not fast then
                let auto, _ = Precisions.Choose(Nullable(), cpu, "small", noProbe)
                Expect.equal auto.Precision Precision.Fp32 "auto: fp32 where bf16 is emulated"
                containsAll auto.Reason [ "no AVX-512 BF16 or AMX" ]
            let asked, warning = Precisions.Choose(Nullable Precision.Bf16, cpu, "small", noProbe)
            Expect.equal asked.Precision Precision.Bf16 "asked for"
            Expect.equal (isNull warning) fast "a warning where bf16 is emulated"
            use dir = new TempDir()
            // The probe decides (made-up rates, a cache of this test's own): bf16 only when it is faster by more than 5%.
            let cache = dir.File "probes.json"
            let mutable probes = 0
            let rates (fp32: float) (bf16: float) = Func<Precision, float>(fun p -> probes <- probes + 1; if p = Precision.Bf16 then bf16 else fp32)
            let xeon = Precisions.ChooseByProbe(cache, "xeon; small", rates 607.0 484.0)
            Expect.equal xeon.Precision Precision.Fp32 "bf16 slower: fp32"
            Expect.equal (xeon.Fp32ImagesPerSecond, xeon.Bf16ImagesPerSecond) (Nullable 607.0, Nullable 484.0) "its numbers"
            containsAll xeon.Reason [ "bf16 484 vs fp32 607 images/s" ]
            Expect.equal (Precisions.ChooseByProbe(cache, "zen4; small", rates 480.0 612.0)).Precision Precision.Bf16 "bf16 faster: bf16"
            Expect.equal (Precisions.ChooseByProbe(cache, "tie; small", rates 600.0 610.0)).Precision Precision.Fp32 "within 5%: fp32"
            Expect.equal probes 6 "two probes each"
            Expect.equal (Precisions.ChooseByProbe(cache, "xeon; small", rates 1.0 1000.0)) xeon "cached: no new probe"
            Expect.equal probes 6 "none"
            Expect.equal (ProbeCache.All cache).Count 3 "three cached"
            // The trainer's real probe: both rates measured; where bf16 is emulated, fp32 wins by far.
            let real = Precisions.ChooseByProbe(cache, "this machine; small", Func<Precision, float>(fun p -> StepRate.Measure(cpu, "small", 10, [| 3L; 32L; 32L |], 16L, p, true, 2, 5.0)))
            Expect.isGreaterThan real.Fp32ImagesPerSecond.Value 0.0 "fp32 measured"
            Expect.isGreaterThan real.Bf16ImagesPerSecond.Value 0.0 "bf16 measured"
            if not fast then Expect.equal real.Precision Precision.Fp32 "emulated bf16 loses"
            let folder = RunFolder.Create(dir.File "run")
            train (bf16Config "bf16" 1) folder None |> ignore
            let config = folder.ReadConfig()
            Expect.equal config.Experiment.Precision "bf16" "recorded"
            Expect.equal (nonNull config.PrecisionChoice).Reason "asked for" "and why"
            let m = folder.ReadMetrics()[0]
            Expect.isTrue (Double.IsFinite m.TrainLoss && Double.IsFinite m.TestLoss.Value) "bf16 trains to finite losses"
            // Resumed with auto, it goes on in bf16 whatever this machine would choose.
            use trainer = new Trainer(bf16Config "auto" 2, DataSources.EmbeddedSample())
            trainer.Run(RunFolder.Open folder.Path) |> ignore
            Expect.equal trainer.Precision Precision.Bf16 "kept"
            Expect.equal (folder.ReadMetrics() |> Seq.map (fun m -> m.Epoch) |> List.ofSeq) [ 1; 2 ] "continued"
            let msg = throwsMessage<RunFolderException> (fun () -> train (bf16Config "fp32" 3) (RunFolder.Open folder.Path) None |> ignore)
            containsAll msg [ "precision: recorded \"bf16\", now \"fp32\"" ]
            let msg = throwsMessage<ConfigException> (fun () -> (bf16Config "fp16" 1).Validate() |> ignore)
            containsAll msg [ "precision 'fp16'"; "auto, fp32 or bf16" ]
            let msg = throwsMessage<ConfigException> (fun () -> (TrainConfig(MemoryFormat = "nhwc")).Validate() |> ignore)
            containsAll msg [ "memory format = nhwc"; "channels-last or nchw" ]
        }

        test "channels-last input: the same values in the layout convolutions run fastest on" {
            let data = DataSources.EmbeddedSample()
            let normalizer = Normalizer.FromDataset data.Train
            use images = data.Train.Images.narrow(0L, 0L, 8L)
            use nchw = normalizer.Apply(images)
            use last = normalizer.Apply(images, channelsLast = true)
            Expect.equal last.shape nchw.shape "the same NCHW shape"
            Expect.equal (last.stride()) [| 3L * 32L * 32L; 1L; 32L * 3L; 3L |] "channels-last strides"
            Expect.isTrue (last.allclose(nchw, rtol = 0.0, atol = 1e-6)) "the same values"
            use model = ModelRegistry.Create("small", 10, seed = 1L)
            model.eval()
            use a = model.forward nchw
            use b = model.forward last
            Expect.isTrue (a.allclose(b, rtol = 1e-4, atol = 1e-4)) "the same logits either way"
        }

        test "a training step reads from the device once, plus the loss check every 10 steps" {
            let counts = ResizeArray<int64>()
            let config = Tiny.Config("adversarial", epochs = 1, batchSize = 8, trainLimit = 160L)
            use trainer = new Trainer(config, DataSources.EmbeddedSample())
            trainer.StepCompleted.Add(fun _ -> counts.Add HostSync.Count)
            use dir = new TempDir()
            trainer.Run(RunFolder.Create(dir.File "run")) |> ignore
            // 20 steps: reports after steps 10 and 20. Between them: one read of the op counts per step
            // (M = 2 copies, 2 stages each, one BatchAugment call), and the loss read at step 20.
            Expect.equal counts.Count 2 "two reports"
            Expect.equal (counts[1] - counts[0]) 11L "10 steps x 1 read + 1 loss check"
        }
    ]
