// Images/s of a random per-sample 2-op sub-policy (ops uniform over the paper's 16, levels uniform)
// through BatchAugment.Apply, on the CPU and, when CUDA works, on the GPU.
// Run by scripts/bench-ops.sh after a Release build; args: [count] [runs] [--threads N] [--per-op]
// [--dump FILE: write the images, uint8 NCHW, for the torchvision side].
#r "../src/AdvAA.Cli/bin/Release/net10.0/TorchSharp.dll"
#r "../src/AdvAA.Cli/bin/Release/net10.0/AdvAA.Core.dll"

open System
open System.Diagnostics
open System.IO
open TorchSharp
open AdvAA.Core.Backend
open AdvAA.Core.Augment
open AdvAA.Core.Data

let args = fsi.CommandLineArgs |> Array.skip 1
let positional = args |> Array.indexed |> Array.filter (fun (i, a) -> not (a.StartsWith "--") && (i = 0 || (args[i - 1] <> "--threads" && args[i - 1] <> "--dump"))) |> Array.map snd
let count = positional |> Array.tryItem 0 |> Option.map int |> Option.defaultValue 2048
let runs = positional |> Array.tryItem 1 |> Option.map int |> Option.defaultValue 9
let perOp = args |> Array.contains "--per-op"
let dump = Array.tryFindIndex ((=) "--dump") args |> Option.map (fun i -> args[i + 1])
let threads =
    match Array.tryFindIndex ((=) "--threads") args with
    | Some i -> int args[i + 1]
    | None -> Environment.ProcessorCount

/// CIFAR-10 images: the test split under ADVAA_CIFAR10_DIR, else the embedded sample's training split,
/// repeated up to `count`.
let loadImages () =
    let splits, source =
        match Environment.GetEnvironmentVariable "ADVAA_CIFAR10_DIR" with
        | null | "" -> DataSources.EmbeddedSample(), "the embedded sample"
        | dir -> let s = DataSources.Load dir in s, dir
    let pool = match splits.Format with "embedded-sample" -> splits.Train.Images | _ -> splits.Test.Images
    let index = torch.arange(int64 count).remainder(pool.shape[0].ToScalar())
    pool.index_select(0L, index).contiguous(), sprintf "%s (%d distinct)" source (min (int64 count) pool.shape[0])

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
dump |> Option.iter (fun path -> File.WriteAllBytes(path, images.data<byte>().ToArray()))
printfn "images: %d from %s; CPU threads %d" count source (torch.get_num_threads ())
let cpuRate = bench torch.CPU images ignore
printfn "RESULT advaa_cpu_threads%d_images_per_s %.0f" threads cpuRate
let cuda =
    try Some(TorchBackend.ResolveDevice DeviceRequest.Cuda) with :? BackendException -> None
match cuda with
| Some device ->
    let sync () = torch.cuda.synchronize()
    for batch in [ 1024; count ] do
        let rate = bench device (images.narrow(0, 0L, int64 (min batch count))) sync
        printfn "RESULT advaa_cuda_batch%d_images_per_s %.0f" batch rate
| None -> printfn "CUDA: not available (CPU only)"
