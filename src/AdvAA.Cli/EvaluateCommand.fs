/// `advaa evaluate RUN [--data PATH] [--epoch E]`: the trained model's accuracy, per-class accuracy
/// and confusion matrix, on the run's own test split by default.
module AdvAA.Cli.EvaluateCommand

open System.IO
open System.Text.Json.Nodes
open Argu
open AdvAA.Core
open AdvAA.Core.Data
open AdvAA.Core.Training
open AdvAA.Dsl
open AdvAA.Cli.Common

type EvaluateArgs =
    | [<MainCommand; ExactlyOnce>] Run of folder: string
    | [<Unique>] Data of path: string
    | [<Unique>] Epoch of epoch: int
    | [<Unique>] Device of device: string
    | [<Unique>] Out of folder: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Run _ -> "the run folder."
            | Data _ -> "evaluate on this data set's whole test split (default: the run's own data and test split)."
            | Epoch _ -> "the epoch to evaluate; a run keeps its last checkpoint only (default: that one)."
            | Device _ -> "auto (default), cpu, cuda or cuda:N."
            | Out _ -> "where to write evaluation.json and confusion-matrix.png (default: RUN/evaluation)."

/// Evaluates the run's model; returns the evaluation, the images' source and the files written.
let evaluate (folder: string) (data: string option) (epoch: int option) (device: string) (out: string option) =
    use trained = TrainedModel.Open(folder, Option.toNullable epoch, device)
    let splits = DataSources.Load(data |> Option.orElse (Option.ofObj trained.Config.Experiment.Data) |> Option.toObj)
    use _train = splits.Train
    use test = splits.Test
    use set = if data.IsSome then test.Take test.Count else trained.RunTestSplit splits
    let e = trained.Evaluate set
    let outDir = Path.GetFullPath(defaultArg out (Path.Combine(trained.Folder, "evaluation")))
    Directory.CreateDirectory outDir |> ignore
    let classes = List.ofSeq trained.Classes
    let json = JsonObject()
    json["run"] <- JsonValue.Create trained.Folder
    json["epoch"] <- JsonValue.Create trained.Epoch
    json["data"] <- JsonValue.Create set.Source
    json["images"] <- JsonValue.Create e.Images
    json["loss"] <- JsonOptions.Number e.Loss
    json["accuracy"] <- JsonOptions.Number e.Accuracy
    let perClass = JsonObject()
    for name, accuracy in List.zip classes (List.ofArray e.PerClassAccuracy) do
        perClass[name] <- if System.Double.IsNaN accuracy then null else JsonOptions.Number accuracy
    json["per_class_accuracy"] <- perClass
    json["confusion"] <-
        JsonArray([| for r in 0 .. classes.Length - 1 -> JsonArray([| for c in 0 .. classes.Length - 1 -> JsonValue.Create e.Confusion[r, c] :> JsonNode | null |]) :> JsonNode | null |])
    let jsonPath = Path.Combine(outDir, "evaluation.json")
    AtomicFile.Write(jsonPath, json.ToJsonString(JsonOptions.Indented) + "\n")
    let png =
        Report.confusionMatrix (sprintf "%s, epoch %d: %.2f%% on %d images" (Path.GetFileName trained.Folder) trained.Epoch (100.0 * e.Accuracy) e.Images)
            classes e.Confusion (Path.Combine(outDir, "confusion-matrix.png"))
    e, trained.Epoch, classes, set.Source, [ jsonPath; png ]

let run (args: ParseResults<EvaluateArgs>) =
    let e, epoch, classes, source, files =
        evaluate (args.GetResult Run) (args.TryGetResult Data) (args.TryGetResult Epoch) (defaultArg (args.TryGetResult Device) "auto") (args.TryGetResult Out)
    printfn "model      %s, epoch %d" (Path.GetFullPath(args.GetResult Run)) epoch
    printfn "images     %d  %s" e.Images source
    printfn "accuracy   %.2f%%   loss %.4f" (100.0 * e.Accuracy) e.Loss
    printfn "per class:"
    let width = classes |> List.map String.length |> List.max
    for name, accuracy in List.zip classes (List.ofArray e.PerClassAccuracy) do
        printfn "  %-*s  %s" width name (if System.Double.IsNaN accuracy then "no images" else sprintf "%6.2f%%" (100.0 * accuracy))
    for f in files do printfn "wrote      %s" f
    ExitCode.ok
