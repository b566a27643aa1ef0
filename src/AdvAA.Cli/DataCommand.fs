/// `advaa data`: load a data set (or the embedded sample) and describe it.
module AdvAA.Cli.DataCommand

open System
open System.Diagnostics
open Argu
open AdvAA.Core.Backend
open AdvAA.Core.Data

type DataArgs =
    | Data of path: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Data _ ->
                "a CIFAR-10 or CIFAR-100 binary folder, a folder with train/ and test/ image folders, a .tar.gz of one, or a Waterbirds/WILDS folder with metadata.csv (default: the embedded sample)."

let private perChannel (values: double[]) =
    values |> Array.map (sprintf "%.4f") |> String.concat ", " |> sprintf "(%s)"

let run (args: ParseResults<DataArgs>) =
    // libtorch starts before the clock does: the time is the loading alone.
    TorchBackend.EnsureInitialized() |> ignore
    let watch = Stopwatch.StartNew()
    let splits = DataSources.Load(args.TryGetResult DataArgs.Data |> Option.toObj)
    let seconds = watch.Elapsed.TotalSeconds
    use _ = splits
    let train, test = splits.Train, splits.Test
    let stats = Normalizer.FromDataset train
    printfn "format     %s" splits.Format
    printfn "train      %d images  %s" train.Count train.Source
    printfn "test       %d images  %s" test.Count test.Source
    match splits.Validation with
    | null -> ()
    | v -> printfn "val        %d images  %s" v.Count v.Source
    if train.IsStreamed then
        printfn "image      varying or larger than %dx%d: read per batch, cropped to S x S (RandomResizedCrop in training, centre crop in evaluation; S from --image-size or the model)" ImageCrops.SmallSide ImageCrops.SmallSide
    else
        printfn "image      %d x %d x %d (channels x height x width), uint8" train.Channels train.Height train.Width
    printfn "classes    %d: %s" train.Classes.Count (String.Join(", ", train.Classes))
    match train.GroupNames with
    | null -> ()
    | names ->
        // Data with subgroups: images per (class/subgroup) group in each split.
        let counts (set: ImageDataset | null) = match set with null -> None | s -> Some(s.GroupCounts())
        printfn "groups     %d (images: train / val / test)" names.Count
        let splitsCounts = [ Some(train.GroupCounts()); counts splits.Validation; Some(test.GroupCounts()) ]
        for g, name in Seq.indexed names do
            let cell = function Some(c: int64[]) -> string c[g] | None -> "–"
            printfn "  %-28s %s" (string name) (splitsCounts |> List.map cell |> String.concat " / ")
        if not (isNull train.Counterparts) then printfn "counterparts: yes (the benchmark's oracle translations)"
    printfn "mean       %s  (training set%s, per channel, pixels in [0,1])" (perChannel stats.Mean) (if train.IsStreamed then sprintf ", centre crops of %d images" (min train.Count (int64 Normalizer.StreamedSample)) else "")
    printfn "std        %s" (perChannel stats.Std)
    printfn "load time  %.2f s, %.0f images/s" seconds (float (train.Count + test.Count) / seconds)
    for warning in splits.Warnings do
        printfn "warning    %s" warning
    AdvAA.Dsl.ExitCode.ok
