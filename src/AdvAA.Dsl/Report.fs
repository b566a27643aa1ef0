/// Run reports: training curves, the policy distributions per epoch (paper Fig. 6) and a
/// self-contained HTML page, read from a run folder's config.json, metrics.jsonl, policies.jsonl.
module AdvAA.Dsl.Report

open System
open System.IO
open System.Net
open System.Text
open System.Text.Json.Nodes
open AdvAA.Core.Training

/// One run folder, read and checked.
type RunData =
    { Folder: string
      Name: string
      Config: JsonObject
      Metrics: JsonObject list
      Policies: JsonObject list
      /// Op names of the run's search space, in controller order.
      Ops: string list
      Levels: int }

let private fail (path: string) (message: string) = raise (RunFolderException(sprintf "%s: %s" path message))

/// Null-safe reading of the run files' JSON: a missing or mistyped field is an error naming
/// where it was looked for.
module Json =
    let node (where: string) (n: JsonNode | null) : JsonNode =
        match n with
        | null -> fail where "missing value"
        | n -> n

    let field (where: string) (name: string) (o: JsonObject) : JsonNode =
        match o[name] with
        | null -> fail where (sprintf "field \"%s\" is missing" name)
        | n -> n

    let obj (where: string) (n: JsonNode) : JsonObject =
        match n with
        | :? JsonObject as o -> o
        | _ -> fail where "expected a JSON object"

    let items (where: string) (n: JsonNode) : JsonNode list =
        match n with
        | :? JsonArray as a -> [ for x in a -> node where x ]
        | _ -> fail where "expected a JSON array"

    let value<'T> (where: string) (n: JsonNode) : 'T =
        try n.GetValue<'T>() with _ -> fail where (sprintf "expected a %s, found %s" typeof<'T>.Name (n.ToJsonString()))

    let isArray (o: JsonObject) (name: string) = match o[name] with :? JsonArray -> true | _ -> false

/// A numeric field of a metrics line; NaN and infinities are written as strings (JSON has none).
let private number (path: string) (line: int) (record: JsonObject) (field: string) : float =
    let where = sprintf "%s:%d" path line
    let n = Json.field where field record
    match n.GetValueKind() with
    | Text.Json.JsonValueKind.Number -> n.GetValue<double>()
    | Text.Json.JsonValueKind.String ->
        match Double.TryParse(n.GetValue<string>(), Globalization.NumberStyles.Float, Globalization.CultureInfo.InvariantCulture) with
        | true, x when not (Double.IsFinite x) -> x
        | _ -> fail where (sprintf "field \"%s\" is not a number: %s" field (n.ToJsonString()))
    | _ -> fail where (sprintf "field \"%s\" is not a number: %s" field (n.ToJsonString()))

let private optionalNumber (record: JsonObject) (field: string) =
    match record[field] with
    | null -> None
    | n when n.GetValueKind() = Text.Json.JsonValueKind.Number -> Some(n.GetValue<double>())
    | _ -> None

/// Fields every metrics line must have (the report plots them).
let requiredMetrics = [ "epoch"; "train_loss"; "train_accuracy"; "test_loss"; "test_accuracy"; "lr" ]

/// Reads and checks a run folder; a missing or malformed file is an error naming it and the line.
let load (folder: string) : RunData =
    let full = Path.GetFullPath folder
    if not (Directory.Exists full) then fail full "no such run folder"
    let file name = Path.Combine(full, name)
    let configPath = file RunFolder.ConfigFile
    if not (File.Exists configPath) then fail configPath "missing: not a run folder"
    let config =
        try
            Json.obj configPath (Json.node configPath (JsonNode.Parse(File.ReadAllText configPath)))
        with :? Text.Json.JsonException as e ->
            fail configPath (sprintf "malformed JSON at line %d: %s" (int (e.LineNumber.GetValueOrDefault()) + 1) e.Message)
    let metricsPath = file RunFolder.MetricsFile
    let metrics = RunFolder.ReadJsonLines metricsPath |> List.ofSeq
    if metrics.IsEmpty then fail metricsPath "no epochs recorded yet"
    metrics
    |> List.iteri (fun i m -> for f in requiredMetrics do number metricsPath (i + 1) m f |> ignore)
    let policiesPath = file RunFolder.PoliciesFile
    let policies = if File.Exists policiesPath then RunFolder.ReadJsonLines policiesPath |> List.ofSeq else []
    let where = configPath + ": experiment.search_space"
    let space = config |> Json.field configPath "experiment" |> Json.obj configPath |> Json.field where "search_space" |> Json.obj where
    let ops =
        space |> Json.field where "ops" |> Json.items where
        |> List.map (Json.obj where >> Json.field where "name" >> Json.value<string> where)
    { Folder = full
      Name = nonNull (Path.GetFileName full)
      Config = config
      Metrics = metrics
      Policies = policies
      Ops = ops
      Levels = space |> Json.field where "levels" |> Json.value<int> where }

let private epochOf (where: string) (o: JsonObject) = o |> Json.field where "epoch" |> Json.value<int> where

let private epochs (run: RunData) =
    let path = Path.Combine(run.Folder, RunFolder.MetricsFile)
    run.Metrics |> List.mapi (fun i m -> epochOf (sprintf "%s:%d" path (i + 1)) m) |> Array.ofList

let private series (run: RunData) field =
    run.Metrics |> List.mapi (fun i m -> number (Path.Combine(run.Folder, RunFolder.MetricsFile)) (i + 1) m field) |> Array.ofList

/// Per epoch, the share of each op and of each level: the controller's distribution where the run
/// recorded it (adversarial), else the counts among the epoch's sampled policies (all M policies x
/// Q sub-policies x K stages). Rows = epochs with policies, columns = ops / levels; the flag says
/// whether the shares are the controller's.
let distributions (run: RunData) =
    let where = Path.Combine(run.Folder, RunFolder.PoliciesFile)
    let withPolicies = run.Policies |> List.filter (fun p -> Json.isArray p "policies")
    let opIndex = run.Ops |> List.mapi (fun i o -> o, i) |> Map.ofList
    let opColumn epoch name =
        match opIndex.TryFind name with
        | Some i -> i
        | None -> fail where (sprintf "epoch %d names op '%s', which is not in the run's search space" epoch name)
    let epochsOf = withPolicies |> List.map (epochOf where) |> Array.ofList
    let ops = Array2D.zeroCreate<float> epochsOf.Length run.Ops.Length
    let levels = Array2D.zeroCreate<float> epochsOf.Length run.Levels
    let fromController = withPolicies |> List.forall (fun p -> not (isNull p["controller_distribution"]))
    withPolicies
    |> List.iteri (fun row p ->
        let epoch = epochsOf[row]
        if fromController then
            let d = p |> Json.field where "controller_distribution" |> Json.obj where
            for KeyValue(name, share) in d |> Json.field where "ops" |> Json.obj where do
                ops[row, opColumn epoch name] <- Json.value<double> where (Json.node where share)
            d |> Json.field where "levels" |> Json.items where
            |> List.iteri (fun level share -> if level < run.Levels then levels[row, level] <- Json.value<double> where share)
        else
            let stages =
                [ for policy in p |> Json.field where "policies" |> Json.items where do
                    for sub in Json.items where policy do
                        yield! Json.items where sub ]
            let n = float stages.Length
            for stage in stages do
                match Json.items where stage with
                | [ op; level ] ->
                    let i = opColumn epoch (Json.value<string> where op)
                    ops[row, i] <- ops[row, i] + 1.0 / n
                    let level = Json.value<int> where level
                    if level >= 0 && level < run.Levels then levels[row, level] <- levels[row, level] + 1.0 / n
                | _ -> fail where (sprintf "epoch %d: a stage is not [op, level]: %s" epoch (stage.ToJsonString())))
    epochsOf, ops, levels, fromController

module private Plots =
    open ScottPlot

    let size = 900, 500

    let save (plot: Plot) (path: string) =
        let w, h = size
        plot.SavePng(path, w, h) |> ignore
        path

    let lines (title: string) (ylabel: string) (curves: (string * int[] * float[]) list) (path: string) =
        use plot = new Plot()
        for name, xs, ys in curves do
            let s = plot.Add.Scatter(Array.map float xs, ys)
            s.LegendText <- name
        plot.Title title
        plot.XLabel "epoch"
        plot.YLabel ylabel
        plot.Axes.Bottom.TickGenerator <- TickGenerators.NumericAutomatic(IntegerTicksOnly = true)
        plot.ShowLegend(Alignment.LowerRight) |> ignore
        save plot path

    /// A heat map with epochs along x and one row per category (top row = first category).
    let heatmap (title: string) (epochs: int[]) (categories: string list) (shares: float[,]) (path: string) =
        use plot = new Plot()
        let rows, cols = Array2D.length2 shares, Array2D.length1 shares
        let data = Array2D.init rows cols (fun r c -> shares[c, r])
        let map = plot.Add.Heatmap data
        map.Colormap <- Colormaps.Viridis()
        plot.Add.ColorBar map |> ignore
        plot.Title title
        // The colour scale spans only the observed shares, so name the uniform share for scale.
        plot.XLabel(sprintf "epoch (a uniform distribution puts %.3f in every cell)" (1.0 / float rows))
        let ticks = categories |> List.mapi (fun i name -> Tick(float (rows - 1 - i), name)) |> Array.ofList
        plot.Axes.Left.TickGenerator <- TickGenerators.NumericManual(ticks)
        let step = max 1 (cols / 10)
        let xticks = [| for c in 0 .. step .. cols - 1 -> Tick(float c, string epochs[c]) |]
        plot.Axes.Bottom.TickGenerator <- TickGenerators.NumericManual(xticks)
        save plot path

let private percent (x: float) = sprintf "%.2f" (100.0 * x)
let private fixed4 (x: float) = if Double.IsFinite x then sprintf "%.4f" x else string x

/// Writes the plots of one run (and, with several runs, their accuracy curves together) into
/// `outDir`; returns the files written.
let writePlots (runs: RunData list) (outDir: string) =
    Directory.CreateDirectory outDir |> ignore
    let run = List.head runs
    let out name = Path.Combine(outDir, name)
    let x = epochs run
    [ yield Plots.lines "Accuracy" "accuracy (%)"
            [ "test", x, series run "test_accuracy" |> Array.map ((*) 100.0)
              "train", x, series run "train_accuracy" |> Array.map ((*) 100.0) ] (out "accuracy.png")
      yield Plots.lines "Loss" "cross-entropy"
            [ "train", x, series run "train_loss"; "test", x, series run "test_loss" ] (out "loss.png")
      let entropy = run.Metrics |> List.map (fun m -> optionalNumber m "controller_entropy")
      if entropy |> List.forall Option.isSome then
          yield Plots.lines "Controller entropy (mean over the M policies)" "entropy (nats)"
                [ "entropy", x, entropy |> List.map Option.get |> Array.ofList ] (out "entropy.png")
      let pe, ops, levels, fromController = distributions run
      if pe.Length > 0 then
          let whose = if fromController then "the controller's" else "sampled policies'"
          yield Plots.heatmap (sprintf "Op distribution per epoch, %s (Fig. 6a)" whose) pe run.Ops ops (out "op-distribution.png")
          yield Plots.heatmap (sprintf "Magnitude distribution per epoch, %s (Fig. 6b)" whose) pe [ for l in 0 .. run.Levels - 1 -> sprintf "level %d" l ] levels (out "magnitude-distribution.png")
      if runs.Length > 1 then
          yield Plots.lines "Test accuracy of the runs" "test accuracy (%)"
                [ for r in runs -> r.Name, epochs r, series r "test_accuracy" |> Array.map ((*) 100.0) ] (out "comparison.png") ]

/// The metrics table rows as shown in the page (the tests read them back).
let metricsRows (run: RunData) =
    run.Metrics
    |> List.map (fun m ->
        let n f = number run.Folder 0 m f
        [ string (epochOf run.Folder m)
          fixed4 (n "train_loss")
          percent (n "train_accuracy")
          fixed4 (n "test_loss")
          percent (n "test_accuracy")
          sprintf "%.5f" (n "lr")
          (match optionalNumber m "controller_entropy" with Some e -> fixed4 e | None -> "–")
          (match optionalNumber m "images_per_second" with Some v -> sprintf "%.0f" v | None -> "–") ])

let metricsHeader = [ "epoch"; "train loss"; "train acc %"; "test loss"; "test acc %"; "lr"; "controller entropy"; "images/s" ]

/// The final epoch's policies as text rows: policy index, sub-policies.
let private finalPolicies (run: RunData) =
    let where = Path.Combine(run.Folder, RunFolder.PoliciesFile)
    run.Policies
    |> List.tryFindBack (fun p -> Json.isArray p "policies")
    |> Option.map (fun p ->
        let normalized =
            if Json.isArray p "normalized_losses" then p |> Json.field where "normalized_losses" |> Json.items where |> List.map (Json.value<double> where) |> Some
            else None
        epochOf where p,
        [ for i, policy in List.indexed (p |> Json.field where "policies" |> Json.items where) ->
            let subs =
                [ for sub in Json.items where policy ->
                    Json.items where sub
                    |> List.map (fun s ->
                        match Json.items where s with
                        | [ op; level ] -> sprintf "%s %d" (Json.value<string> where op) (Json.value<int> where level)
                        | _ -> fail where (sprintf "a stage is not [op, level]: %s" (s.ToJsonString())))
                    |> String.concat " → " ]
            let score = normalized |> Option.map (fun a -> fixed4 a[i]) |> Option.defaultValue "–"
            i + 1, score, subs ])

let private embed (path: string) =
    sprintf "<figure><img alt=\"%s\" src=\"data:image/png;base64,%s\"/><figcaption>%s</figcaption></figure>"
        (Path.GetFileName path) (Convert.ToBase64String(File.ReadAllBytes path)) (Path.GetFileNameWithoutExtension path)

/// One self-contained page (images embedded, no network): config, metrics, plots, final policies.
let html (runs: RunData list) (images: string list) =
    let run = List.head runs
    let e (s: string) = nonNull (WebUtility.HtmlEncode s)
    let sb = StringBuilder()
    let add (s: string) = sb.AppendLine s |> ignore
    add "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"/>"
    add (sprintf "<title>AdvAA report: %s</title>" (e run.Name))
    add "<style>body{font-family:sans-serif;margin:2em;max-width:1100px}table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}th{background:#eee}pre{background:#f6f6f6;padding:1em;overflow:auto;max-height:30em}figure{display:inline-block;margin:0.5em}img{max-width:100%}</style></head><body>"
    add (sprintf "<h1>AdvAA run <code>%s</code></h1>" (e run.Name))
    let last = List.last run.Metrics
    add (sprintf "<p>%d epochs; final test accuracy <b>%s%%</b>; folder <code>%s</code></p>"
            run.Metrics.Length (percent (number run.Folder 0 last "test_accuracy")) (e run.Folder))
    add "<h2>Plots</h2>"
    for img in images do add (embed img)
    add "<h2>Metrics</h2><table id=\"metrics\"><tr>"
    for h in metricsHeader do add (sprintf "<th>%s</th>" (e h))
    add "</tr>"
    for row in metricsRows run do
        add ("<tr>" + (row |> List.map (fun c -> sprintf "<td>%s</td>" (e c)) |> String.concat "") + "</tr>")
    add "</table>"
    match finalPolicies run with
    | Some(epoch, policies) ->
        add (sprintf "<h2>Policies of epoch %d</h2><table id=\"policies\"><tr><th>policy</th><th>normalised loss</th><th>sub-policies</th></tr>" epoch)
        for i, score, subs in policies do
            add (sprintf "<tr><td>%d</td><td>%s</td><td style=\"text-align:left\">%s</td></tr>" i score (subs |> List.map e |> String.concat "<br/>"))
        add "</table>"
    | None -> ()
    if runs.Length > 1 then
        add "<h2>Runs compared</h2><table id=\"comparison\"><tr><th>run</th><th>method</th><th>epochs</th><th>final test acc %</th></tr>"
        for r in runs do
            let where = Path.Combine(r.Folder, RunFolder.ConfigFile)
            let method = r.Config |> Json.field where "experiment" |> Json.obj where |> Json.field where "method" |> Json.value<string> where
            add (sprintf "<tr><td>%s</td><td>%s</td><td>%d</td><td>%s</td></tr>" (e r.Name) (e method) r.Metrics.Length (percent (number r.Folder 0 (List.last r.Metrics) "test_accuracy")))
        add "</table>"
    add (sprintf "<h2>Configuration</h2><pre>%s</pre>" (e (run.Config.ToJsonString(JsonOptions.Indented))))
    add "</body></html>"
    sb.ToString()

/// Writes `outDir`: the plots, any extra images (e.g. the policy grid), and index.html. Returns index.html's path.
let write (runs: RunData list) (outDir: string) (extraImages: string list) =
    let images = writePlots runs outDir @ extraImages
    let index = Path.Combine(outDir, "index.html")
    RunFolder.WriteAtomically(index, html runs images)
    index
