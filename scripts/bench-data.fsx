// Times loading CIFAR-10 into memory (see bench-data.sh). Argument: the folder holding
// cifar-10-batches-bin/ and cifar10-jpeg.tar.gz.
#r "../src/AdvAA.Cli/bin/Release/net10.0/TorchSharp.dll"
#r "../src/AdvAA.Cli/bin/Release/net10.0/AdvAA.Core.dll"

open System
open System.Diagnostics
open System.IO
open AdvAA.Core.Data

let folder =
    match fsi.CommandLineArgs with
    | [| _; f |] -> f
    | _ -> failwith "usage: dotnet fsi scripts/bench-data.fsx <cifar10 folder>"

AdvAA.Core.Backend.TorchBackend.EnsureInitialized() |> ignore

/// Runs `load` once to warm up, then `runs` times; prints the median in images/s.
let bench (name: string) (runs: int) (load: unit -> ImageDataset list) =
    let once () =
        let watch = Stopwatch.StartNew()
        let sets = load ()
        let seconds = watch.Elapsed.TotalSeconds
        let images = sets |> List.sumBy (fun d -> d.Count)
        for d in sets do d.Dispose()
        seconds, images
    once () |> ignore
    let times = Array.init runs (fun _ -> once ())
    let seconds = times |> Array.map fst |> Array.sort |> fun a -> a[a.Length / 2]
    let images = snd times[0]
    printfn "%-44s %6d images  %7.3f s  %9.0f images/s  (median of %d)" name images seconds (float images / seconds) runs

let binary = Path.Combine(folder, "cifar-10-batches-bin")
let archive = Path.Combine(folder, "cifar10-jpeg.tar.gz")
printfn "CPU cores: %d" Environment.ProcessorCount
let both (splits: DataSplits) = [ splits.Train; splits.Test ]
bench "CIFAR-10 binary, data_batch_1.bin" 9 (fun () ->
    [ DataSources.ReadCifar10([ Path.Combine(binary, "data_batch_1.bin") ], [ for i in 0..9 -> string i ]) ])
bench "CIFAR-10 binary, Load (train + test)" 9 (fun () -> both (DataSources.Load binary))
bench "JPEG archive, Load (train + test)" 3 (fun () -> both (DataSources.Load archive))
bench "embedded sample, EmbeddedSample()" 5 (fun () -> both (DataSources.EmbeddedSample()))
