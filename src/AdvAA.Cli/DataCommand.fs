/// `advaa data`: load a data set (or the embedded sample) and describe it.
module AdvAA.Cli.DataCommand

open System
open System.Diagnostics
open Argu
open AdvAA.Core.Backend
open AdvAA.Core.Data

type ShardArgs =
    | [<Mandatory; Unique>] Data of folder: string
    | [<Mandatory; Unique>] Out of folder: string
    | [<Unique>] Per_Shard of samples: int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Data _ -> "image folders to write: <folder>/train/<class>/..., test/ and val/ where present."
            | Out _ -> "the folder of shards (new or empty): train-000000.tar, ..., test-*.tar, val-*.tar, classes.txt."
            | Per_Shard _ -> "samples per shard (default 1000)."

type DataArgs =
    | Data of path: string
    | [<CliPrefix(CliPrefix.None)>] Make_Shards of ParseResults<ShardArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Data _ ->
                "a CIFAR-10 or CIFAR-100 binary folder, a folder with train/ and test/ image folders, a .tar.gz of one, a folder of tar shards, or a Waterbirds/WILDS folder with metadata.csv (default: the embedded sample)."
            | Make_Shards _ -> "write image folders as tar shards (KEY.jpg + KEY.cls, WebDataset's layout), which --data then reads."

/// `advaa data make-shards`: image folders to tar shards.
let private makeShards (args: ParseResults<ShardArgs>) =
    let perShard = args.GetResult(ShardArgs.Per_Shard, defaultValue = 1000)
    if perShard < 1 then args.Raise(sprintf "--per-shard %d: expected at least 1" perShard, ErrorCode.CommandLine, false)
    let watch = Stopwatch.StartNew()
    let written = Shards.Write(args.GetResult ShardArgs.Data, args.GetResult ShardArgs.Out, perShard)
    printfn "wrote %d shards and %s to %s in %.1f s" written.Count Shards.ClassesFile (IO.Path.GetFullPath(args.GetResult ShardArgs.Out)) watch.Elapsed.TotalSeconds
    AdvAA.Dsl.ExitCode.ok

let private perChannel (values: double[]) =
    values |> Array.map (sprintf "%.4f") |> String.concat ", " |> sprintf "(%s)"

let private describe (args: ParseResults<DataArgs>) =
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

let run (args: ParseResults<DataArgs>) =
    match args.TryGetSubCommand() with
    | Some(Make_Shards shards) -> makeShards shards
    | _ -> describe args
