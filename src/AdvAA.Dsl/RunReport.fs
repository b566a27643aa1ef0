/// A run's whole report: the plots and page of `Report`, plus the final epoch's M policies applied
/// to a few images of the run's data (the paper's Fig. 2).
module AdvAA.Dsl.RunReport

open System
open System.IO
open System.Text.Json.Nodes
open TorchSharp
open AdvAA.Core.Augment
open AdvAA.Core.Data
open AdvAA.Core.Training
open AdvAA.Dsl.Report

/// The run's search space rebuilt from config.json (ranges and signs as recorded); an op that is
/// not in the op table (a custom op) cannot be rebuilt and is named in the error.
let private space (run: RunData) =
    let where = Path.Combine(run.Folder, RunFolder.ConfigFile) + ": experiment.search_space"
    let spaceJson = run.Config |> Json.field where "experiment" |> Json.obj where |> Json.field where "search_space" |> Json.obj where
    let ops =
        spaceJson |> Json.field where "ops" |> Json.items where
        |> List.map (fun node ->
            let o = Json.obj where node
            let name = o |> Json.field where "name" |> Json.value<string> where
            let op = OpTable.Get name
            if op.HasMagnitude then
                op.WithRange(o |> Json.field where "low" |> Json.value<double> where, o |> Json.field where "high" |> Json.value<double> where)
                  .WithSigned(o |> Json.field where "signed" |> Json.value<bool> where)
            else op)
    SearchSpace(Array.ofList ops, run.Levels)

/// The data the run trained on: its test split, from the path in config.json (or the embedded sample).
let private testImages (run: RunData) (count: int) =
    let where = Path.Combine(run.Folder, RunFolder.ConfigFile)
    let experiment = run.Config |> Json.field where "experiment" |> Json.obj where
    let data =
        match experiment["data"] with
        | null -> DataSources.EmbeddedSample()
        | n when n.GetValueKind() = Text.Json.JsonValueKind.String -> DataSources.Load(n.GetValue<string>())
        | _ -> DataSources.EmbeddedSample()
    use _train = data.Train
    use test = data.Test
    // evenly spread over the test set, so a class-sorted folder still shows several classes
    let n = min (int64 count) test.Count
    use index = torch.arange(n, dtype = torch.int64).mul((test.Count / n).ToScalar())
    test.Images.index_select(0L, index)

/// Writes the grid (first row: the originals; then one row per policy, each image drawing one of
/// the policy's sub-policies) and returns its path; None, with a note on stderr, when the run
/// has no sampled policies or they cannot be rebuilt.
let policyGrid (run: RunData) (count: int) (png: string) : string option =
    let where = Path.Combine(run.Folder, RunFolder.PoliciesFile)
    match run.Policies |> List.tryFindBack (fun p -> Json.isArray p "policies") with
    | None -> None
    | Some last ->
        try
            let space = space run
            let epoch = last |> Json.field where "epoch" |> Json.value<int> where
            let policies =
                last |> Json.field where "policies" |> Json.items where
                |> List.map (fun policy ->
                    Policy(
                        [| for sub in Json.items where policy ->
                            SubPolicy(
                                [| for stage in Json.items where sub ->
                                    match Json.items where stage with
                                    | [ op; level ] -> PolicyStage(Json.value<string> where op, Json.value<int> where level)
                                    | _ -> raise (RunFolderException(sprintf "%s: a stage is not [op, level]: %s" where (stage.ToJsonString()))) |]) |]))
            use images = testImages run count
            use generator = new torch.Generator(0UL)
            use scope = torch.NewDisposeScope()
            let rows =
                images.clone()
                :: [ for i, p in List.indexed policies -> PolicyAugment(p, space, sprintf "policy %d" (i + 1)).Augment(images, generator) ]
            let labels = "original" :: [ for i in 1 .. policies.Length -> sprintf "policy %d (epoch %d)" i epoch ]
            Directory.CreateDirectory(nonNull (Path.GetDirectoryName png)) |> ignore
            ImageGrid.WritePng(png, torch.cat(Array.ofList rows, 0L), int images.shape[0], Array.ofList labels)
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
    Report.write runs outDir (Option.toList grid)
