/// `advaa bench ops|models|data`: how fast AdvAA augments and trains on this machine's devices (medians
/// after a warm-up; numbers, not a test). scripts/bench-ops.sh and bench-models.sh run these.
module AdvAA.Cli.BenchCommand

open System
open System.Diagnostics
open System.IO
open Argu
open TorchSharp
open AdvAA.Core.Augment
open AdvAA.Core.Backend
open AdvAA.Core.Training
open AdvAA.Core.Data
open AdvAA.Core.Models
open AdvAA.Core.Search
open AdvAA.Dsl
open AdvAA.Cli.Common

type OpsArgs =
    | [<Unique>] Count of images: int
    | [<Unique>] Runs of runs: int
    | [<Unique>] Threads of threads: int
    | [<Unique>] Device of device: string
    | [<Unique>] Dump of file: string
    | Per_Op
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Count _ -> "images per call (default 2048), from ADVAA_CIFAR10_DIR's test split or the embedded sample."
            | Runs _ -> "timed runs after 3 warm-up runs (default 9)."
            | Threads _ -> "CPU threads (default: every core)."
            | Device _ -> "auto|cpu|cuda (default auto: the CPU, and CUDA too where it works)."
            | Dump _ -> "write the images (uint8 NCHW) to this file, for the torchvision side of scripts/bench-ops.sh."
            | Per_Op -> "also time each op alone."

type ModelsArgs =
    | [<Unique>] Models of names: string list
    | [<Unique>] Batches of sizes: int list
    | [<Unique>] Device of device: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Models _ -> "models to time (default: small resnet18)."
            | Batches _ -> "batch sizes (default: 128 1024)."
            | Device _ -> "auto|cpu|cuda (default: auto, or ADVAA_DEVICE)."

type StreamArgs =
    | [<Mandatory; Unique>] Data of path: string
    | [<Unique>] Workers of counts: int list
    | [<Unique>] Image_Size of pixels: int
    | [<Unique>] Batch of n: int
    | [<Unique>] Model of name: string
    | [<Unique>] Steps of count: int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Data _ -> "an image folder (train/<class>/...) of images of varying or large size, streamed."
            | Workers _ -> "decode workers to time (default: every core, then 1)."
            | Image_Size _ -> "S, the crop side (default 224)."
            | Batch _ -> "images per batch (default 64)."
            | Model _ -> "the model of the training step fed by the loader (default small)."
            | Steps _ -> "training steps fed by the loader (default 3; 0: time the loader alone)."

type BenchArgs =
    | [<CliPrefix(CliPrefix.None)>] Ops of ParseResults<OpsArgs>
    | [<CliPrefix(CliPrefix.None)>] Models of ParseResults<ModelsArgs>
    | [<CliPrefix(CliPrefix.None)>] Data of ParseResults<StreamArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Data _ -> "images/s of the streaming input pipeline (decode, RandomResizedCrop, flip) alone and feeding a training step."
            | Ops _ -> "images/s of random per-sample 2-op sub-policies through BatchAugment (CPU, and CUDA where it works)."
            | Models _ -> "images/s of the training step: fp32 and bf16, NCHW and channels-last; the controller's sample and update."

let private synchronizer (device: torch.Device) () = if device.``type`` = DeviceType.CUDA then torch.cuda.synchronize()

/// Median seconds of `f` over `runs` runs after `warmup` runs; `sync` waits for the device.
let private time (warmup: int) (runs: int) (sync: unit -> unit) (f: unit -> unit) =
    for _ in 1 .. warmup do f ()
    sync ()
    let times =
        [| for _ in 1 .. runs ->
            let sw = Stopwatch.StartNew()
            f ()
            sync ()
            sw.Elapsed.TotalSeconds |]
    (Array.sort times)[times.Length / 2]

/// CIFAR-10 images: the test split under ADVAA_CIFAR10_DIR, else the embedded sample's training split, repeated up to `count`.
let private images (count: int) =
    let splits, source =
        match Environment.GetEnvironmentVariable "ADVAA_CIFAR10_DIR" with
        | null | "" -> DataSources.EmbeddedSample(), "the embedded sample"
        | dir -> DataSources.Load dir, dir
    let pool = (if splits.Format = "embedded-sample" then splits.Train else splits.Test).InMemory("the op benchmark").Images
    use index = torch.arange(int64 count).remainder(pool.shape[0].ToScalar())
    pool.index_select(0L, index).contiguous(), sprintf "%s (%d distinct)" source (min (int64 count) pool.shape[0])

let private opsBench (args: ParseResults<OpsArgs>) =
    let count = args.GetResult(OpsArgs.Count, defaultValue = 2048)
    let runs = args.GetResult(OpsArgs.Runs, defaultValue = 9)
    let request = deviceRequest (args.TryGetResult OpsArgs.Device)
    TorchBackend.Initialize request |> ignore
    args.TryGetResult OpsArgs.Threads |> Option.iter torch.set_num_threads
    let threads = torch.get_num_threads ()
    let pool, source = images count
    use pool = pool
    args.TryGetResult OpsArgs.Dump |> Option.iter (fun path -> File.WriteAllBytes(path, pool.data<byte>().ToArray()))
    printfn "images: %d from %s; CPU threads %d" count source threads
    let space = SearchSpace.Default
    let bench (device: torch.Device) (n: int64) =
        use x = pool.narrow(0L, 0L, n).``to``(device)
        use g = new torch.Generator(1UL)
        let sync = synchronizer device
        let call (ops: int64 -> torch.Tensor) () =
            use scope = torch.NewDisposeScope()
            let levels = torch.randint(0L, int64 space.Levels, [| n; (ops 0L).shape[1] |], generator = g)
            BatchAugment.Apply(x, space, ops n, levels, g, trusted = true) |> ignore
        let random n = torch.randint(0L, int64 space.Ops.Count, [| n; 2L |], generator = g)
        let seconds = time 3 runs sync (call random)
        printfn "advaa %s batch %d: %.0f images/s (median %.2f ms of %d runs)" (string device.``type``) n (float n / seconds) (seconds * 1000.0) runs
        if args.Contains Per_Op then
            for i in 0 .. space.Ops.Count - 1 do
                let s = time 3 runs sync (call (fun n -> torch.full([| n; 1L |], (int64 i).ToScalar(), dtype = torch.int64)))
                printfn "  %-14s %8.0f images/s" space.Ops[i].Name (float n / s)
        float n / seconds
    if request <> DeviceRequest.Cuda then
        printfn "RESULT advaa_cpu_threads%d_images_per_s %.0f" threads (bench torch.CPU (int64 count))
    match (try Some(TorchBackend.ResolveDevice request) with :? BackendException -> None) with
    | Some device when device.``type`` = DeviceType.CUDA ->
        for batch in List.distinct [ 1024; count ] do
            printfn "RESULT advaa_cuda_batch%d_images_per_s %.0f" batch (bench device (int64 (min batch count)))
    | _ -> printfn "CUDA: not used (CPU only)"
    ExitCode.ok

/// Images/s of the trainer's step on 32x32 images of 10 classes (StepRate: the median after one warm-up step, at most 5 steps or 20 s).
let private stepRate (device: torch.Device) (name: string) (batch: int64) (precision: Precision) (channelsLast: bool) =
    StepRate.Measure(device, name, 10, [| 3L; 32L; 32L |], batch, precision, channelsLast)

let private modelsBench (args: ParseResults<ModelsArgs>) =
    let device = TorchBackend.ResolveDevice(deviceRequest (args.TryGetResult ModelsArgs.Device))
    let fast = Precisions.FastBf16 device
    printfn "device: %O, torch threads: %d, fast bf16: %b" device (torch.get_num_threads ()) fast
    printfn "\nparameters (10 classes):"
    for name in ModelRegistry.Names do
        use model = ModelRegistry.Create(name, 10)
        printfn "  %-10s %12s" name ((ModelRegistry.ParameterCount model).ToString("N0"))
    printfn "\ntraining step images/s (ratio to fp32 NCHW of the same model and batch):"
    printfn "  %-9s %6s %10s %20s %20s %20s" "model" "batch" "fp32 nchw" "fp32 channels-last" "bf16 nchw" "bf16 channels-last"
    for name in args.GetResult(ModelsArgs.Models, defaultValue = [ "small"; "resnet18" ]) do
        for batch in args.GetResult(ModelsArgs.Batches, defaultValue = [ 128; 1024 ]) |> List.map int64 do
            let baseline = stepRate device name batch Precision.Fp32 false
            let results = ResizeArray [ sprintf "RESULT %s_batch%d_fp32_nchw_images_per_s %.0f" name batch baseline ]
            let cell precision channelsLast =
                // Emulated bf16 is many times slower: time it once, on the smallest configuration.
                if precision = Precision.Bf16 && not fast && (name <> "small" || batch > 128L) then "emulated: skipped"
                else
                    let v = stepRate device name batch precision channelsLast
                    let layout = if channelsLast then "channels-last" else "nchw"
                    results.Add(sprintf "RESULT %s_batch%d_%s_%s_images_per_s %.0f" name batch (Precisions.Name precision) layout v)
                    sprintf "%7.0f (%.2fx)" v (v / baseline)
            let row = [ cell Precision.Fp32 true; cell Precision.Bf16 false; cell Precision.Bf16 true ]
            printfn "  %-9s %6d %10.0f %20s %20s %20s" name batch baseline row[0] row[1] row[2]
            for line in results do printfn "%s" line
    printfn "\ncontroller (16 ops, 10 levels, Q=5, K=2), M=8:"
    use controller = new PolicyController(16, 10)
    let trainer = ControllerTrainer(controller)
    use g = new torch.Generator(1UL)
    let sample = time 3 20 ignore (fun () -> (controller.Sample(8, g)).Dispose())
    use s = controller.Sample(8, g)
    let losses = Array.init 8 (fun i -> 2.0 + 0.1 * float i)
    let update = time 3 20 ignore (fun () -> trainer.Update(s.Ops, s.Levels, losses) |> ignore)
    printfn "  sample %.1f ms, update %.1f ms (medians)" (1000.0 * sample) (1000.0 * update)
    ExitCode.ok

/// This process's peak resident memory so far (Linux's VmHWM), in MB; None elsewhere.
let private peakRssMb () =
    try
        File.ReadLines "/proc/self/status"
        |> Seq.tryFind (fun l -> l.StartsWith "VmHWM:")
        |> Option.map (fun l -> int64 (l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024L)
    with :? IOException -> None

/// One epoch of the training loader over a streamed set: images/s of decoding alone and the process's
/// peak memory after it, and with each batch fed to a training step of `model`, the share of the
/// time the step waited for data.
let private streamBench (args: ParseResults<StreamArgs>) =
    let side = args.GetResult(StreamArgs.Image_Size, defaultValue = 224)
    let batch = args.GetResult(StreamArgs.Batch, defaultValue = 64)
    let modelName = args.GetResult(StreamArgs.Model, defaultValue = "small")
    let steps = args.GetResult(StreamArgs.Steps, defaultValue = 3)
    use splits = DataSources.Load(args.GetResult StreamArgs.Data)
    let train = splits.Train.Sized side
    if not train.IsStreamed then fail (sprintf "%s: its images are small and of one size, so they are not streamed; give a folder of larger or varying images" train.Source) else
    let device = torch.CPU
    printfn "%s: %d images, crops %dx%d, batch %d, %d cores (%s)" train.Source train.Count side side batch Environment.ProcessorCount (Machine.Describe())
    for workers in args.GetResult(StreamArgs.Workers, defaultValue = List.distinct [ Environment.ProcessorCount; 1 ]) do
        let loader = BatchLoader(train, batch, device, true, 1L, true, workers)
        let watch = Stopwatch.StartNew()
        let mutable images = 0L
        for x, y in loader.Epoch 1 do
            images <- images + x.shape[0]
            x.Dispose()
            y.Dispose()
        let alone = float images / watch.Elapsed.TotalSeconds
        printfn "  %d worker(s): decode + crop + flip %.0f images/s (%.0f per worker)" workers alone (alone / float workers)
        printfn "RESULT advaa_stream_workers%d_images_per_s %.0f" workers alone
        match peakRssMb () with
        | Some peak ->
            printfn "  peak RSS after the epoch: %d MB" peak
            printfn "RESULT advaa_stream_workers%d_peak_rss_mb %d" workers peak
        | None -> ()
        if steps > 0 then
            use net = ModelRegistry.Create(modelName, train.Classes.Count)
            net.train()
            use sgd = torch.optim.SGD(net.parameters(), 0.01, 0.9)
            let normalizer = Normalizer([| 0.5; 0.5; 0.5 |], [| 0.25; 0.25; 0.25 |])
            let watch = Stopwatch.StartNew()
            let mutable waited = TimeSpan.Zero
            let batches = (loader.Epoch 2).GetEnumerator()
            let mutable fed = 0L
            let next () =
                let before = watch.Elapsed
                let more = batches.MoveNext()
                waited <- waited + (watch.Elapsed - before)
                more
            while fed < int64 (steps * batch) && next () do
                let struct (x, y) = batches.Current
                use scope = torch.NewDisposeScope()
                sgd.zero_grad()
                torch.nn.functional.cross_entropy(net.forward(normalizer.Apply(x, true)), y).backward()
                sgd.step() |> ignore
                fed <- fed + x.shape[0]
                x.Dispose()
                y.Dispose()
            batches.Dispose()
            let total = watch.Elapsed.TotalSeconds
            printfn "  %d worker(s) feeding %d steps of %s: %.0f images/s, the step waited for data %.0f%% of the time"
                workers steps modelName (float fed / total) (100.0 * waited.TotalSeconds / total)
            printfn "RESULT advaa_stream_workers%d_train_images_per_s %.0f" workers (float fed / total)
            printfn "RESULT advaa_stream_workers%d_wait_percent %.1f" workers (100.0 * waited.TotalSeconds / total)
    ExitCode.ok

let run (args: ParseResults<BenchArgs>) =
    match args.GetSubCommand() with
    | Ops a -> opsBench a
    | Models a -> modelsBench a
    | Data a -> streamBench a
