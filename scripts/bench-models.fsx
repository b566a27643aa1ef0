// Speed of the models' training step and of the controller on this machine (not a test: numbers
// depend on the host). The step is the trainer's own: uint8 batches normalised (channels-last or
// NCHW), forward under the precision's autocast, float32 loss, backward, SGD with Nesterov momentum.
// Run through scripts/bench-models.sh, which builds the CLI and points this script at its output.
//   ADVAA_BENCH_MODELS=small,resnet18  ADVAA_BENCH_BATCHES=128,1024  ADVAA_DEVICE=cpu|cuda
#r "../src/AdvAA.Cli/bin/Release/net10.0/TorchSharp.dll"
#r "../src/AdvAA.Cli/bin/Release/net10.0/AdvAA.Core.dll"

open System
open System.Diagnostics
open AdvAA.Core.Backend
open AdvAA.Core.Data
open AdvAA.Core.Models
open AdvAA.Core.Search
open TorchSharp

let device = TorchBackend.ResolveDevice(TorchBackend.RequestFromEnvironment())
let setting (name: string) (fallback: string) =
    (match Environment.GetEnvironmentVariable name with null | "" -> fallback | s -> s).Split(',') |> List.ofArray
let fastBf16 = Precisions.FastBf16 device

printfn "device: %O, torch threads: %d, fast bf16: %b" device (torch.get_num_threads()) fastBf16
printfn "\nparameters (10 classes):"
for name in ModelRegistry.Names do
    use model = ModelRegistry.Create(name, 10)
    printfn "  %-10s %12s" name ((ModelRegistry.ParameterCount model).ToString("N0"))

let synchronize () = if device.``type`` = DeviceType.CUDA then torch.cuda.synchronize()

/// Images/s of the training step: the median over timed steps after one warm-up step, stopping
/// after 5 steps or 20 s of them, whichever comes first.
let imagesPerSecond (name: string) (batch: int64) (precision: Precision) (channelsLast: bool) =
    use model = ModelRegistry.Create(name, 10)
    model.``to``(device) |> ignore
    model.train()
    use images = torch.randint(0L, 256L, [| batch; 3L; 32L; 32L |], dtype = torch.ScalarType.Byte, device = device)
    use labels = torch.randint(10L, [| batch |], device = device)
    use sgd = torch.optim.SGD(model.parameters(), 0.1, momentum = 0.9, nesterov = true, weight_decay = 5e-4)
    let step () =
        use scope = torch.NewDisposeScope()
        let inputs = Normalizer.Cifar10.Apply(images, channelsLast)
        let logits =
            use _region = Autocast.For(precision, device.``type``)
            model.forward(inputs).to_type(torch.ScalarType.Float32)
        sgd.zero_grad()
        let loss = torch.nn.functional.cross_entropy(logits, labels)
        loss.backward()
        sgd.step() |> ignore
        synchronize ()
    step ()
    let times = ResizeArray<float>()
    let clock = Stopwatch.StartNew()
    while times.Count < 5 && (times.Count = 0 || clock.Elapsed.TotalSeconds < 20.0) do
        let sw = Stopwatch.StartNew()
        step ()
        times.Add sw.Elapsed.TotalSeconds
    float batch / (Seq.sort times |> Seq.item (times.Count / 2))

printfn "\ntraining step images/s (ratio to fp32 NCHW of the same model and batch):"
printfn "  %-9s %6s %12s %22s %22s %22s" "model" "batch" "fp32 nchw" "fp32 channels-last" "bf16 nchw" "bf16 channels-last"
for name in setting "ADVAA_BENCH_MODELS" "small,resnet18" do
    for batch in setting "ADVAA_BENCH_BATCHES" "128,1024" |> List.map int64 do
        let baseline = imagesPerSecond name batch Precision.Fp32 false
        let cell precision channelsLast =
            // Emulated bf16 is many times slower; time it once, on the smallest configuration.
            if precision = Precision.Bf16 && not fastBf16 && (name <> "small" || batch > 128L) then "(emulated: skipped)"
            else
                let v = imagesPerSecond name batch precision channelsLast
                sprintf "%8.0f (%.2fx)" v (v / baseline)
        printfn "  %-9s %6d %12.0f %22s %22s %22s" name batch baseline (cell Precision.Fp32 true) (cell Precision.Bf16 false) (cell Precision.Bf16 true)

printfn "\ncontroller (16 ops, 10 levels, Q=5, K=2), M=8:"
let median (xs: float[]) = (Array.sort xs)[xs.Length / 2]
let time warmup runs (f: unit -> unit) =
    for _ in 1 .. warmup do f ()
    [| for _ in 1 .. runs -> (let sw = Stopwatch.StartNew() in f (); sw.Elapsed.TotalSeconds) |] |> median
let controller = new PolicyController(16, 10)
let trainer = ControllerTrainer(controller)
let gen = new torch.Generator(1UL)
let sampleSeconds = time 3 20 (fun () -> (controller.Sample(8, gen)).Dispose())
let s = controller.Sample(8, gen)
let losses = Array.init 8 (fun i -> 2.0 + 0.1 * float i)
let updateSeconds = time 3 20 (fun () -> trainer.Update(s.Ops, s.Levels, losses) |> ignore)
printfn "  sample %.1f ms, update %.1f ms (medians)" (1000.0 * sampleSeconds) (1000.0 * updateSeconds)
