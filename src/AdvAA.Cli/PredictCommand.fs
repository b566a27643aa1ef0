/// `advaa predict RUN IMAGE... [--top K]`: the trained model's most likely classes for image files.
module AdvAA.Cli.PredictCommand

open System.IO
open Argu
open TorchSharp
open AdvAA.Core
open AdvAA.Core.Data
open AdvAA.Core.Training
open AdvAA.Dsl

type PredictArgs =
    | [<MainCommand; ExactlyOnce; First>] Inputs of run_and_images: string list
    | [<Unique>] Top of k: int
    | [<Unique>] Device of device: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Inputs _ -> "the run folder, then JPEG or PNG files of the size the run trained on (e.g. 32x32)."
            | Top _ -> "how many classes to print per image (default 3)."
            | Device _ -> "auto (default), cpu, cuda or cuda:N."

/// Per image file, its top-k classes with their probabilities (most likely first).
let predict (folder: string) (files: string list) (top: int) (device: string) : (string * (string * float) list) list =
    use trained = TrainedModel.Open(folder, System.Nullable(), device)
    if top < 1 then raise (ConfigException(sprintf "--top %d: expected at least 1" top))
    use images = DataSources.ReadImageFiles(Array.ofList files, trained.Width, trained.Height)
    use probabilities = trained.Probabilities images.Images
    let k = min top trained.Classes.Count
    let struct (values, indices) = probabilities.topk(k, 1)
    use values = values
    use indices = indices
    let p = values.data<float32>().ToArray()
    let c = indices.data<int64>().ToArray()
    [ for i, file in List.indexed files ->
        Path.GetFullPath file, [ for j in 0 .. k - 1 -> trained.Classes[int c[i * k + j]], float p[i * k + j] ] ]

let run (args: ParseResults<PredictArgs>) =
    match args.GetResult Inputs with
    | folder :: (_ :: _ as files) ->
        for file, classes in predict folder files (defaultArg (args.TryGetResult Top) 3) (defaultArg (args.TryGetResult Device) "auto") do
            printfn "%s" file
            for name, probability in classes do
                printfn "  %-12s %6.2f%%" name (100.0 * probability)
        ExitCode.ok
    | _ -> Common.fail "predict: give the run folder, then at least one image file (advaa predict RUN IMAGE...)"
