/// `advaa patching make-spurious --data CIFAR-10 --out DIR`: model patching's benchmark with a spurious subgroup feature.
module AdvAA.Cli.PatchingCommand

open System
open Argu
open AdvAA.Core.Data
open AdvAA.Dsl

type MakeSpuriousArgs =
    | [<Unique>] Data of path: string
    | [<Unique; Mandatory>] Out of folder: string
    | [<Unique>] Train_Per_Class of images: int
    | [<Unique>] Val_Per_Group of images: int
    | [<Unique>] Test_Per_Group of images: int
    | [<Unique>] Correlation of share: float
    | [<Unique>] Patch of pixels: int
    | [<Unique>] Seed of seed: int64
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Data _ -> "CIFAR-10 (binary folder, image folder or .tar.gz; default: $ADVAA_CIFAR10_DIR, else the embedded sample)."
            | Out _ -> "the folder to write (must not exist or be empty)."
            | Train_Per_Class _ -> "training images per class (default 2500; at most 200 from the embedded sample's smallest class pool)."
            | Val_Per_Group _ -> "validation images per group (default 250)."
            | Test_Per_Group _ -> "test images per group (default 500)."
            | Correlation _ -> "the share of each class's training images in its majority subgroup (default 0.99)."
            | Patch _ -> "the side of the square patch in pixels (default 8)."
            | Seed _ -> "the seed of the choice of images and of the patches' places (default 0)."

type PatchingArgs =
    | [<CliPrefix(CliPrefix.None)>] Make_Spurious of ParseResults<MakeSpuriousArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Make_Spurious _ -> "write the animal-vs-vehicle benchmark whose training subgroups follow a coloured patch (README: Model patching)."

let private makeSpurious (args: ParseResults<MakeSpuriousArgs>) =
    let d = SpuriousBenchmark.Settings.AnimalVsVehicle
    let settings =
        SpuriousBenchmark.Settings(
            d.FirstName, d.First, d.SecondName, d.Second,
            TrainPerClass = defaultArg (args.TryGetResult Train_Per_Class) d.TrainPerClass,
            ValPerGroup = defaultArg (args.TryGetResult Val_Per_Group) d.ValPerGroup,
            TestPerGroup = defaultArg (args.TryGetResult Test_Per_Group) d.TestPerGroup,
            Correlation = defaultArg (args.TryGetResult Correlation) d.Correlation,
            PatchSize = defaultArg (args.TryGetResult Patch) d.PatchSize,
            Seed = defaultArg (args.TryGetResult Seed) d.Seed)
    let source =
        match args.TryGetResult Data, Environment.GetEnvironmentVariable "ADVAA_CIFAR10_DIR" with
        | Some path, _ -> path
        | None, (null | "") -> null
        | None, folder -> folder
    use data = DataSources.Load source
    let written = SpuriousBenchmark.Write(data, args.GetResult Out, settings)
    printfn "folder   %s" written.Folder
    for split in [ "train"; "val"; "test" ] do
        let counts = written.Counts[split]
        printfn "%-8s %s" split (counts |> Seq.map (fun kv -> sprintf "%s %d" kv.Key kv.Value) |> String.concat ", ")
    printfn "train on it: advaa train --data %s --method baseline ... (per-group and robust test accuracy in every evaluated epoch)" (CommandLine.quote written.Folder)
    ExitCode.ok

let run (args: ParseResults<PatchingArgs>) =
    match args.GetSubCommand() with
    | Make_Spurious a -> makeSpurious a
