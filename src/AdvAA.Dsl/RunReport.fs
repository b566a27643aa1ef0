/// A run's whole report: the plots and page of `Report`, plus the final epoch's M policies applied
/// to a few images of the run's data (the paper's Fig. 2).
module AdvAA.Dsl.RunReport

open System
open System.IO
open TorchSharp
open AdvAA.Core.Augment
open AdvAA.Core.Data
open AdvAA.Core.Training
open AdvAA.Dsl.Report

/// The data the run trained on: its test split, from the path in config.json (or the embedded sample).
let private testImages (run: RunData) (count: int) =
    let data = DataSources.Load(run.Config.Experiment.Data)
    use _train = data.Train
    use test = data.Test
    // evenly spread over the test set, so a class-sorted folder still shows several classes
    let n = min (int64 count) test.Count
    use index = torch.arange(n, dtype = torch.int64).mul((test.Count / n).ToScalar())
    test.Images.index_select(0L, index)

/// Writes the grid (first row: the originals; then one row per policy, each image drawing one of
/// the policy's sub-policies) and returns its path; None, with a note on stderr, when the run
/// has no policies or they cannot be rebuilt (a custom op's code is only in its script).
let policyGrid (run: RunData) (count: int) (png: string) : string option =
    match run.Policies |> List.rev |> List.tryPick (fun p -> match p.Policies with null -> None | policies -> Some(p, policies)) with
    | None -> None
    | Some(last, recorded) ->
        try
            let space = run.Config.Experiment.Space.WithCustomOps(null, Path.Combine(run.Folder, RunFolder.ConfigFile))
            let policies = List.ofSeq recorded
            use images = testImages run count
            use generator = new torch.Generator(0UL)
            use grid = PolicyAugment.Grid(images, policies, space, generator)
            let labels = "original" :: [ for i in 1 .. policies.Length -> sprintf "policy %d (epoch %d)" i last.Epoch ]
            Directory.CreateDirectory(nonNull (Path.GetDirectoryName png)) |> ignore
            ImageGrid.WritePng(png, grid, int images.shape[0], Array.ofList labels)
            Some png
        with
        | :? AugmentException as e ->
            eprintfn "advaa: no policy grid for %s: %s" run.Name e.Message
            None
        | :? DataFormatException as e ->
            eprintfn "advaa: no policy grid for %s: its data cannot be read: %s" run.Name e.Message
            None

/// Writes the report of `folders` (the first is the main one; with several, their accuracy curves
/// are compared) into `out` (default: <first run>/report) and returns index.html's path.
let write (folders: string list) (out: string option) (images: int) =
    let runs = folders |> List.map Report.load
    let first = List.head runs
    let outDir = defaultArg out (Path.Combine(first.Folder, "report"))
    let grid = policyGrid first images (Path.Combine(outDir, "policies.png"))
    // A stage's own image, copied into the report when the run has one.
    let stageImage (file: string) (name: string) =
        if File.Exists file then
            Directory.CreateDirectory outDir |> ignore
            let copy = Path.Combine(outDir, name)
            File.Copy(file, copy, true)
            [ copy ]
        else []
    // TANDA's stage 1: random vs learned sequences; model patching's: x, G(x), F(G(x)) per class and direction.
    let tanda = stageImage (Path.Combine(first.Folder, AdvAA.Core.Methods.TandaMethod.StageFolder, AdvAA.Core.Search.TanTrainer.SamplesFile)) "tanda-samples.png"
    let cycleGan = stageImage (Path.Combine(first.Folder, AdvAA.Core.Methods.PatchingMethod.StageFolder, AdvAA.Core.Search.CycleGanStage.GridFile)) "cyclegan-translations.png"
    Report.write runs outDir (Option.toList grid @ tanda @ cycleGan)
