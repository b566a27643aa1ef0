/// Run reports: training curves, the policy distributions per epoch (paper Fig. 6) and a
/// self-contained HTML page, read from a run folder's config.json, metrics.jsonl, policies.jsonl.
module AdvAA.Dsl.Report

open System
open System.IO
open System.Net
open System.Text
open System.Text.Json.Nodes
open AdvAA.Core
open AdvAA.Core.Training

/// One run folder, read and checked.
type RunData =
    { Folder: string
      Name: string
      Config: RunConfig
      Metrics: EpochMetrics list
      Policies: PolicyRecord list
      /// Op names of the run's search space, in controller order.
      Ops: string list
      Levels: int }

let private fail (path: string) (message: string) = raise (RunFolderException(sprintf "%s: %s" path message))

/// Reads and checks a run folder; a missing or malformed file is an error naming it and the line.
let load (folder: string) : RunData =
    let full = Path.GetFullPath folder
    if not (Directory.Exists full) then fail full "no such run folder"
    let configPath = Path.Combine(full, RunFolder.ConfigFile)
    if not (File.Exists configPath) then fail configPath "missing: not a run folder"
    let run = RunFolder.Open full
    let metricsPath = run.File RunFolder.MetricsFile
    if not (File.Exists metricsPath) then fail metricsPath "does not exist"
    let config = run.ReadConfig()
    let metrics = List.ofSeq (run.ReadMetrics())
    if metrics.IsEmpty then fail metricsPath "no epochs recorded yet"
    let space = config.Experiment.Space
    { Folder = full
      Name = nonNull (Path.GetFileName full)
      Config = config
      Metrics = metrics
      Policies = List.ofSeq (run.ReadPolicies())
      Ops = List.ofSeq space.OpNames
      Levels = space.Levels }

let private epochs (run: RunData) = run.Metrics |> List.map (fun m -> m.Epoch) |> Array.ofList

let private series (run: RunData) (value: EpochMetrics -> float) = run.Metrics |> List.map value |> Array.ofList

/// The epochs where an optional number was recorded (test numbers every few epochs), and its values.
let private recorded (run: RunData) (value: EpochMetrics -> Nullable<float>) =
    let points = run.Metrics |> List.choose (fun m -> let v = value m in if v.HasValue then Some(m.Epoch, v.Value) else None)
    points |> List.map fst |> Array.ofList, points |> List.map snd |> Array.ofList

/// The last recorded test accuracy.
let finalAccuracy (run: RunData) =
    run.Metrics |> List.rev |> List.tryPick (fun m -> Option.ofNullable m.TestAccuracy)

/// Per epoch, the share of each op and of each level: the controller's distribution where the run
/// recorded it (adversarial), else the counts among the epoch's applied policies (all M policies x
/// Q sub-policies x K stages). Rows = epochs with policies, columns = ops / levels; the flag says
/// whether the shares are the controller's.
let distributions (run: RunData) =
    let where = Path.Combine(run.Folder, RunFolder.PoliciesFile)
    let withPolicies = run.Policies |> List.choose (fun p -> match p.Policies with null -> None | policies -> Some(p, policies))
    let opIndex = run.Ops |> List.mapi (fun i o -> o, i) |> Map.ofList
    let opColumn epoch name =
        match opIndex.TryFind name with
        | Some i -> i
        | None -> fail where (sprintf "epoch %d names op '%s', which is not in the run's search space" epoch name)
    let epochsOf = withPolicies |> List.map (fun (p, _) -> p.Epoch) |> Array.ofList
    let ops = Array2D.zeroCreate<float> epochsOf.Length run.Ops.Length
    let levels = Array2D.zeroCreate<float> epochsOf.Length run.Levels
    let fromController = withPolicies |> List.forall (fun (p, _) -> not (isNull p.Distribution))
    withPolicies
    |> List.iteri (fun row (p, policies) ->
        match p.Distribution with
        | null ->
            let stages = [ for policy in policies do for sub in policy.SubPolicies do yield! sub.Stages ]
            let n = float stages.Length
            for stage in stages do
                let i = opColumn p.Epoch stage.Op
                ops[row, i] <- ops[row, i] + 1.0 / n
                if stage.Level >= 0 && stage.Level < run.Levels then levels[row, stage.Level] <- levels[row, stage.Level] + 1.0 / n
        | d ->
            for KeyValue(name, share) in d.Ops do
                ops[row, opColumn p.Epoch name] <- share
            d.Levels |> Array.iteri (fun level share -> if level < run.Levels then levels[row, level] <- share))
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

/// A confusion matrix as a PNG: rows the true class, columns the predicted one, each cell coloured
/// by its share of the row and labelled with its count.
let confusionMatrix (title: string) (classes: string list) (counts: int64[,]) (path: string) =
    use plot = new ScottPlot.Plot()
    let n = classes.Length
    let rowTotal r = max 1L (Seq.sum [ for c in 0 .. n - 1 -> counts[r, c] ])
    let shares = Array2D.init n n (fun r c -> float counts[r, c] / float (rowTotal r))
    let map = plot.Add.Heatmap shares
    map.Colormap <- ScottPlot.Colormaps.Viridis()
    plot.Add.ColorBar map |> ignore
    for r in 0 .. n - 1 do
        for c in 0 .. n - 1 do
            // Heatmap row 0 is drawn at the top, at y = n - 1.
            let label = plot.Add.Text(string counts[r, c], float c, float (n - 1 - r))
            label.LabelFontColor <- if shares[r, c] > 0.5 then ScottPlot.Colors.Black else ScottPlot.Colors.White
            label.LabelAlignment <- ScottPlot.Alignment.MiddleCenter
    let ticks (flip: bool) = [| for i, name in List.indexed classes -> ScottPlot.Tick(float (if flip then n - 1 - i else i), name) |]
    plot.Axes.Left.TickGenerator <- ScottPlot.TickGenerators.NumericManual(ticks true)
    plot.Axes.Bottom.TickGenerator <- ScottPlot.TickGenerators.NumericManual(ticks false)
    plot.Title title
    plot.XLabel "predicted class"
    plot.YLabel "true class"
    let temp = path + ".tmp"
    plot.SavePng(temp, 900, 800) |> ignore
    File.Move(temp, path, true)
    path

let private percent (x: float) = sprintf "%.2f" (100.0 * x)
let private fixed4 (x: float) = if Double.IsFinite x then sprintf "%.4f" x else string x

/// One line per name of the numbers-by-name that `values` gives on the epochs that have them.
let private named (run: RunData) (values: EpochMetrics -> Collections.Generic.IReadOnlyList<Collections.Generic.KeyValuePair<string, float>> | null) =
    let points = run.Metrics |> List.choose (fun m -> match values m with null -> None | v -> Some(m.Epoch, v))
    match points with
    | [] -> []
    | (_, first) :: _ ->
        [ for kv in first ->
            kv.Key, points |> List.map fst |> Array.ofList,
            points |> List.map (fun (_, v) -> v |> Seq.find (fun g -> g.Key = kv.Key) |> fun g -> g.Value) |> Array.ofList ]

/// The lines of a method's numbers-by-name metric.
let private namedSeries (run: RunData) (name: string) = named run (fun m -> m.Named name)

/// The method's metrics shown as table columns (those with a label).
let private labelled (run: RunData) = run.Config.Experiment.Method.Metrics |> Seq.filter (fun d -> not (isNull d.Label)) |> List.ofSeq

/// Writes the plots of one run (and, with several runs, their accuracy curves together) into
/// `outDir`; returns the files written.
let writePlots (runs: RunData list) (outDir: string) =
    Directory.CreateDirectory outDir |> ignore
    let run = List.head runs
    let out name = Path.Combine(outDir, name)
    let x = epochs run
    let percentOf (xs: int[], ys: float[]) = xs, ys |> Array.map ((*) 100.0)
    let testAccuracy = percentOf (recorded run (fun m -> m.TestAccuracy))
    let validationAccuracy = percentOf (recorded run (fun m -> m.ValidationAccuracy))
    [ yield Plots.lines "Accuracy" "accuracy (%)"
            [ yield "test", fst testAccuracy, snd testAccuracy
              yield "train (augmented batches)", x, series run (fun m -> 100.0 * m.TrainAccuracy)
              if (fst validationAccuracy).Length > 0 then yield "validation", fst validationAccuracy, snd validationAccuracy ] (out "accuracy.png")
      let testLoss = recorded run (fun m -> m.TestLoss)
      yield Plots.lines "Loss" "cross-entropy"
            [ "train", x, series run (fun m -> m.TrainLoss); "test", fst testLoss, snd testLoss ] (out "loss.png")
      // The method's own values, as its spec describes them.
      for d in run.Config.Experiment.Method.Metrics do
          match d.Plot with
          | NonNull plot ->
              let numbers = recorded run (fun m -> m.Number d.Name)
              let named = namedSeries run d.Name
              if (fst numbers).Length > 0 then
                  yield Plots.lines d.Title d.Axis [ (match d.Label with NonNull l -> l | _ -> d.Name), fst numbers, snd numbers ] (out (plot + ".png"))
              elif not named.IsEmpty then
                  yield Plots.lines d.Title d.Axis named (out (plot + ".png"))
          | _ -> ()
      let pe, ops, levels, fromController = distributions run
      if pe.Length > 0 then
          let whose = if fromController then "the controller's" else "sampled policies'"
          yield Plots.heatmap (sprintf "Op distribution per epoch, %s (Fig. 6a)" whose) pe run.Ops ops (out "op-distribution.png")
          yield Plots.heatmap (sprintf "Magnitude distribution per epoch, %s (Fig. 6b)" whose) pe [ for l in 0 .. run.Levels - 1 -> sprintf "level %d" l ] levels (out "magnitude-distribution.png")
      // TANDA's stage 1: what TANDA selects generators by, and what the generator learned to draw.
      let stage = Path.Combine(run.Folder, AdvAA.Core.Methods.TandaMethod.StageFolder, AdvAA.Core.Search.TanTrainer.MetricsFile)
      if run.Config.Experiment.Method :? AdvAA.Core.Methods.TandaSpec && File.Exists stage then
          let tan =
              JsonLines.Read stage
              |> Seq.mapi (fun i line -> AdvAA.Core.Search.TanEpoch.FromJson(line, sprintf "%s:%d" stage (i + 1)))
              |> List.ofSeq
          if not tan.IsEmpty then
              let xs = tan |> List.map (fun e -> e.Epoch) |> Array.ofList
              yield Plots.lines "TANDA stage 1 (x: stage-1 epoch)" "ratio / accuracy"
                    [ "generator/random loss ratio (below 1: learned sequences look more real)", xs, tan |> List.map (fun e -> e.Ratio) |> Array.ofList
                      "discriminator accuracy", xs, tan |> List.map (fun e -> e.DiscriminatorAccuracy) |> Array.ofList ] (out "tanda-stage1.png")
              let opOf (tf: string) = tf.Substring(0, tf.LastIndexOf ':')
              let opNames = tan.Head.Tfs.Keys |> Seq.map opOf |> Seq.distinct |> List.ofSeq
              let shares =
                  Array2D.init xs.Length opNames.Length (fun r c ->
                      tan[r].Tfs |> Seq.filter (fun kv -> opOf kv.Key = opNames[c]) |> Seq.sumBy (fun kv -> kv.Value))
              yield Plots.heatmap "TANDA generator: share of each op among its draws per stage-1 epoch" xs opNames shares (out "tanda-ops.png")
      // Data with subgroups: each group's test accuracy and the worst (robust accuracy).
      let groups = named run (fun m -> m.GroupAccuracy)
      if not groups.IsEmpty then
          let robust = percentOf (recorded run (fun m -> m.RobustAccuracy))
          yield Plots.lines "Test accuracy per group" "test accuracy (%)"
                [ for name, xs, ys in groups -> name, xs, ys |> Array.map ((*) 100.0)
                  yield "robust (worst group)", fst robust, snd robust ] (out "group-accuracy.png")
      // Model patching's stage 1: each class's CycleGAN cycle loss.
      let cycleGan = Path.Combine(run.Folder, AdvAA.Core.Methods.PatchingMethod.StageFolder, AdvAA.Core.Search.CycleGanStage.MetricsFile)
      if run.Config.Experiment.Method :? AdvAA.Core.Methods.PatchingSpec && File.Exists cycleGan then
          let gan =
              JsonLines.Read cycleGan
              |> Seq.mapi (fun i line -> AdvAA.Core.Search.CycleGanEpoch.FromJson(line, sprintf "%s:%d" cycleGan (i + 1)))
              |> List.ofSeq
          if not gan.IsEmpty then
              let xs = gan |> List.map (fun e -> e.Epoch) |> Array.ofList
              yield Plots.lines "Stage 1: CycleGAN losses per class (x: stage-1 epoch)" "loss"
                    [ for c in 0 .. gan.Head.Classes.Count - 1 do
                        let name = gan.Head.Classes[c].ClassName
                        yield sprintf "%s cycle (L1)" name, xs, gan |> List.map (fun e -> e.Classes[c].CycleLoss) |> Array.ofList
                        yield sprintf "%s generator (LSGAN)" name, xs, gan |> List.map (fun e -> e.Classes[c].GeneratorLoss) |> Array.ofList ] (out "cyclegan-stage1.png")
      if runs.Length > 1 then
          yield Plots.lines "Test accuracy of the runs" "test accuracy (%)"
                [ for r in runs -> let xs, ys = percentOf (recorded r (fun m -> m.TestAccuracy)) in r.Name, xs, ys ] (out "comparison.png") ]

/// The metrics table rows as shown in the page (the tests read them back).
let metricsRows (run: RunData) =
    run.Metrics
    |> List.map (fun m ->
        [ yield string m.Epoch
          yield fixed4 m.TrainLoss
          yield percent m.TrainAccuracy
          yield (if m.TestLoss.HasValue then fixed4 m.TestLoss.Value else "–")
          yield (if m.TestAccuracy.HasValue then percent m.TestAccuracy.Value else "–")
          yield sprintf "%.5f" m.LearningRate
          for d in labelled run -> (match Option.ofNullable (m.Number d.Name) with Some v -> fixed4 v | None -> "–")
          yield sprintf "%.0f" m.ImagesPerSecond ])

/// The metrics table's header: the fixed columns, the method's labelled metrics, images/s.
let metricsHeader (run: RunData) =
    [ "epoch"; "train loss"; "train acc %"; "test loss"; "test acc %"; "lr" ] @ [ for d in labelled run -> nonNull d.Label ] @ [ "images/s" ]

/// The final epoch's policies as text rows (its last window's when it had several): policy index,
/// normalised loss, sub-policies (each with its reward under a paired reward).
let private finalPolicies (run: RunData) =
    run.Policies
    |> List.rev
    |> List.tryPick (fun p -> match p.Policies with null -> None | policies -> Some(p, policies))
    |> Option.map (fun (p, policies) ->
        let window = match p.Windows with null -> None | windows -> Some windows[windows.Count - 1]
        let normalized = match window with Some w -> w.NormalizedLosses | None -> p.NormalizedLosses
        let rewards = match window with Some w -> w.SubPolicyRewards | None -> p.SubPolicyRewards
        let which =
            match p.Windows with
            | null -> sprintf "epoch %d" p.Epoch
            | windows -> sprintf "epoch %d, its last window (%d of %d)" p.Epoch windows.Count windows.Count
        which,
        [ for i, policy in List.indexed (List.ofSeq policies) ->
            let subs =
                [ for q, sub in List.indexed (List.ofSeq policy.SubPolicies) ->
                    let text = sub.Stages |> Seq.map (fun s -> sprintf "%s %d" s.Op s.Level) |> String.concat " → "
                    match rewards with
                    | null -> text
                    | r when Double.IsNaN r[i * policy.SubPolicies.Count + q] -> text + "  (drawn by no image)"
                    | r -> sprintf "%s  (reward %s)" text (fixed4 r[i * policy.SubPolicies.Count + q]) ]
            let score = normalized |> Option.ofObj |> Option.map (fun a -> fixed4 a[i]) |> Option.defaultValue "–"
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
    add (sprintf "<p>%d epochs; final test accuracy <b>%s%%</b>; method <code>%s</code> (%s); folder <code>%s</code></p>"
            run.Metrics.Length (finalAccuracy run |> Option.map percent |> Option.defaultValue "–") (e run.Config.Experiment.Method.Name) (e run.Config.Experiment.Method.Summary) (e run.Folder))
    add "<h2>Plots</h2>"
    for img in images do add (embed img)
    add "<h2>Metrics</h2><table id=\"metrics\"><tr>"
    for h in metricsHeader run do add (sprintf "<th>%s</th>" (e h))
    add "</tr>"
    for row in metricsRows run do
        add ("<tr>" + (row |> List.map (fun c -> sprintf "<td>%s</td>" (e c)) |> String.concat "") + "</tr>")
    add "</table>"
    match run.Metrics |> List.rev |> List.tryFind (fun m -> not (isNull m.GroupAccuracy)) with
    | Some m ->
        add (sprintf "<h2>Groups (test, epoch %d)</h2><p>robust accuracy (worst group) <b>%s%%</b>; subgroup gap per class: %s</p>"
                m.Epoch (percent m.RobustAccuracy.Value)
                (nonNull m.SubgroupGap |> Seq.map (fun g -> sprintf "%s %s points" (e g.Key) (percent g.Value)) |> String.concat ", "))
        add "<table id=\"groups\"><tr><th>group</th><th>test acc %</th><th>group DRO weight</th></tr>"
        for g in nonNull m.GroupAccuracy do
            let weight = match m.Named AdvAA.Core.Methods.PatchingSpec.GroupWeightsMetric with null -> "–" | w -> w |> Seq.tryFind (fun x -> x.Key = g.Key) |> Option.map (fun x -> fixed4 x.Value) |> Option.defaultValue "–"
            add (sprintf "<tr><td>%s</td><td>%s</td><td>%s</td></tr>" (e g.Key) (percent g.Value) weight)
        add "</table>"
    | None -> ()
    match finalPolicies run with
    | Some(which, policies) ->
        add (sprintf "<h2>Policies of %s</h2><table id=\"policies\"><tr><th>policy</th><th>normalised loss</th><th>sub-policies</th></tr>" which)
        for i, score, subs in policies do
            add (sprintf "<tr><td>%d</td><td>%s</td><td style=\"text-align:left\">%s</td></tr>" i score (subs |> List.map e |> String.concat "<br/>"))
        add "</table>"
    | None -> ()
    if runs.Length > 1 then
        add "<h2>Runs compared</h2><table id=\"comparison\"><tr><th>run</th><th>method</th><th>epochs</th><th>final test acc %</th></tr>"
        for r in runs do
            add (sprintf "<tr><td>%s</td><td>%s</td><td>%d</td><td>%s</td></tr>" (e r.Name) (e r.Config.Experiment.Method.Name) r.Metrics.Length (finalAccuracy r |> Option.map percent |> Option.defaultValue "–"))
        add "</table>"
    add (sprintf "<h2>Configuration</h2><pre>%s</pre>" (e (run.Config.ToJson().ToJsonString(JsonOptions.Indented))))
    add "</body></html>"
    sb.ToString()

/// Writes `outDir`: the plots, any extra images (e.g. the policy grid), and index.html. Returns index.html's path.
let write (runs: RunData list) (outDir: string) (extraImages: string list) =
    let images = writePlots runs outDir @ extraImages
    let index = Path.Combine(outDir, "index.html")
    AtomicFile.Write(index, html runs images)
    index
