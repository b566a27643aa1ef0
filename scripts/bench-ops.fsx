// Images/s of a random per-sample 2-op sub-policy (ops uniform over the paper's 16, levels uniform)
// through BatchAugment.Apply, on the CPU and, when CUDA works, on the GPU.
// Run by scripts/bench-ops.sh after a Release build; args: [count] [runs] [--threads N] [--per-op].
#r "../src/AdvAA.Cli/bin/Release/net10.0/TorchSharp.dll"
#r "../src/AdvAA.Cli/bin/Release/net10.0/AdvAA.Core.dll"

open System
open System.Diagnostics
open System.IO
open TorchSharp
open AdvAA.Core.Backend
open AdvAA.Core.Augment

let args = fsi.CommandLineArgs |> Array.skip 1
let positional = args |> Array.indexed |> Array.filter (fun (i, a) -> not (a.StartsWith "--") && (i = 0 || args[i - 1] <> "--threads")) |> Array.map snd
let count = positional |> Array.tryItem 0 |> Option.map int |> Option.defaultValue 2048
let runs = positional |> Array.tryItem 1 |> Option.map int |> Option.defaultValue 9
let perOp = args |> Array.contains "--per-op"
let threads =
    match Array.tryFindIndex ((=) "--threads") args with
    | Some i -> int args[i + 1]
    | None -> Environment.ProcessorCount

/// CIFAR-10 test images from ADVAA_CIFAR10_DIR (binary batch), else smooth synthetic images.
let loadImages () =
    match Environment.GetEnvironmentVariable "ADVAA_CIFAR10_DIR" with
    | null | "" ->
        use g = new torch.Generator(7UL)
        let coarse = torch.randint(0L, 256L, [| int64 count; 3L; 8L; 8L |], generator = g).to_type(torch.float32)
        let smooth = torch.nn.functional.interpolate(coarse, size = [| 32L; 32L |], mode = torch.InterpolationMode.Bilinear)
        let noise = torch.randint(-12L, 13L, [| int64 count; 3L; 32L; 32L |], generator = g).to_type(torch.float32)
        smooth.add(noise).clamp(0.0.ToScalar(), 255.0.ToScalar()).to_type(torch.uint8), "synthetic"
    | dir ->
        let path = Path.Combine(dir, "cifar-10-batches-bin", "test_batch.bin")
        let bytes = File.ReadAllBytes path
        let records = bytes.Length / 3073
        let pixels = Array.init count (fun i -> Array.sub bytes ((i % records) * 3073 + 1) 3072) |> Array.concat
        torch.tensor(pixels, dimensions = ReadOnlySpan<int64>([| int64 count; 3L; 32L; 32L |])), path

let median (xs: float[]) = let s = Array.sort xs in s[s.Length / 2]

/// Median seconds of `f` over `runs` runs after 3 warm-up runs; `sync` waits for the device.
let time (sync: unit -> unit) (f: unit -> unit) =
    for _ in 1 .. 3 do f ()
    sync ()
    [| for _ in 1 .. runs ->
        let sw = Stopwatch.StartNew()
        f ()
        sync ()
        sw.Elapsed.TotalSeconds |] |> median

let bench (device: torch.Device) (images: torch.Tensor) (sync: unit -> unit) =
    let space = SearchSpace.Default
    let x = images.``to``(device)
    let n = x.shape[0]
    use g = new torch.Generator(1UL)
    let step () =
        use scope = torch.NewDisposeScope()
        let ops = torch.randint(0L, int64 space.Ops.Count, [| n; 2L |], generator = g)
        let levels = torch.randint(0L, int64 space.Levels, [| n; 2L |], generator = g)
        BatchAugment.Apply(x, space, ops, levels, g) |> ignore
    let seconds = time sync step
    printfn "advaa %s batch %d: %.0f images/s (median %.2f ms of %d runs)" (string device.``type``) n (float n / seconds) (seconds * 1000.0) runs
    if perOp then
        for i in 0 .. space.Ops.Count - 1 do
            let one () =
                use scope = torch.NewDisposeScope()
                let ops = torch.full([| n; 1L |], (int64 i).ToScalar(), dtype = torch.int64)
                let levels = torch.randint(0L, int64 space.Levels, [| n; 1L |], generator = g)
                BatchAugment.Apply(x, space, ops, levels, g) |> ignore
            let s = time sync one
            printfn "  %-14s %8.0f images/s" space.Ops[i].Name (float n / s)
    float n / seconds

torch.set_num_threads threads
let images, source = loadImages ()
printfn "images: %d from %s; CPU threads %d" count source (torch.get_num_threads ())
let cpuRate = bench torch.CPU images ignore
printfn "RESULT advaa_cpu_images_per_s %.0f" cpuRate
let cuda =
    try Some(TorchBackend.ResolveDevice DeviceRequest.Cuda) with :? BackendException -> None
match cuda with
| Some device ->
    let sync () = torch.cuda.synchronize()
    for batch in [ 1024; count ] do
        let rate = bench device (images.narrow(0, 0L, int64 (min batch count))) sync
        printfn "RESULT advaa_cuda_batch%d_images_per_s %.0f" batch rate
| None -> printfn "CUDA: not available (CPU only)"
