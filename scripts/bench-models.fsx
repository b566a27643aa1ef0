// Speed of the models and the controller on this machine's CPU (not a test: numbers depend on the host).
// Run through scripts/bench-models.sh, which builds the CLI and points this script at its output.
#r "../src/AdvAA.Cli/bin/Release/net10.0/TorchSharp.dll"
#r "../src/AdvAA.Cli/bin/Release/net10.0/AdvAA.Core.dll"

open System
open System.Diagnostics
open AdvAA.Core.Backend
open AdvAA.Core.Models
open AdvAA.Core.Search
open TorchSharp

let device = TorchBackend.ResolveDevice(TorchBackend.RequestFromEnvironment())
let median (xs: float[]) = (Array.sort xs)[xs.Length / 2]

/// Median seconds of `f` over `runs` runs after `warmup` runs.
let time warmup runs (f: unit -> unit) =
    for _ in 1 .. warmup do f ()
    [| for _ in 1 .. runs ->
        let sw = Stopwatch.StartNew()
        f ()
        sw.Elapsed.TotalSeconds |] |> median

printfn "device: %O, torch threads: %d" device (torch.get_num_threads())
printfn "\nparameters (10 classes):"
for name in ModelRegistry.Names do
    use model = ModelRegistry.Create(name, 10)
    printfn "  %-10s %12s" name ((ModelRegistry.ParameterCount model).ToString("N0"))

let batch = 128L
printfn "\ntraining step (forward + backward + SGD), batch %d:" batch
for name in (match Environment.GetEnvironmentVariable "ADVAA_BENCH_MODELS" with null | "" -> "small" | s -> s).Split(',') do
    use model = ModelRegistry.Create(name, 10)
    model.``to``(device) |> ignore
    model.train()
    use x = torch.randn(batch, 3L, 32L, 32L, device = device)
    use y = torch.randint(10L, [| batch |], device = device)
    use sgd = torch.optim.SGD(model.parameters(), 0.1, momentum = 0.9, nesterov = true, weight_decay = 5e-4)
    let step () =
        use scope = torch.NewDisposeScope()
        sgd.zero_grad()
        let loss = torch.nn.functional.cross_entropy(model.forward x, y)
        loss.backward()
        sgd.step() |> ignore
        if device.``type`` = DeviceType.CUDA then torch.cuda.synchronize()
    let seconds = time 2 5 step
    printfn "  %-10s %8.1f images/s (median step %.3f s)" name (float batch / seconds) seconds

printfn "\ncontroller (16 ops, 10 levels, Q=5, K=2), M=8:"
let controller = new PolicyController(16, 10)
let trainer = ControllerTrainer(controller)
let gen = new torch.Generator(1UL)
let sampleSeconds = time 3 20 (fun () -> (controller.Sample(8, gen)).Dispose())
let s = controller.Sample(8, gen)
let losses = Array.init 8 (fun i -> 2.0 + 0.1 * float i)
let updateSeconds = time 3 20 (fun () -> trainer.Update(s.Ops, s.Levels, losses) |> ignore)
printfn "  sample %.1f ms, update %.1f ms (medians)" (1000.0 * sampleSeconds) (1000.0 * updateSeconds)
