/// The summary of a study (arms x seeds): per arm the final and best test accuracy, the validation
/// and clean-train accuracy (the overfitting gap), speed and time as mean ± sd over seeds; the test
/// curves (mean, shaded sd); for controller runs, how far the controller's distribution moved from
/// uniform per epoch (against the counting noise of records that counted 256 drawn policies) and per
/// update; the first arm against every other as paired differences with t-intervals.
module AdvAA.Dsl.StudyReport

open System
open System.IO
open System.Text
open System.Text.Json.Nodes
open AdvAA.Core
open AdvAA.Core.Methods
open AdvAA.Core.Training
open AdvAA.Dsl.Report

/// Mean and sample standard deviation (0 for one value).
let meanSd (xs: float list) =
    let n = float xs.Length
    let mean = List.average xs
    let sd = if xs.Length < 2 then 0.0 else sqrt ((xs |> List.sumBy (fun x -> (x - mean) ** 2.0)) / (n - 1.0))
    mean, sd

/// Total-variation distance of shares from the uniform distribution over their categories.
let fromUniform (shares: float[]) =
    let u = 1.0 / float shares.Length
    0.5 * (shares |> Array.sumBy (fun p -> abs (p - u)))

/// The total-variation distance from uniform that an estimate from `draws` uniform draws over
/// `categories` shows by chance alone (the mean over seeded simulations): below it, movement is noise.
let noiseLevel (categories: int) (draws: int) =
    let random = Random 1
    let trials = 400
    let counts = Array.zeroCreate<int> categories
    [ for _ in 1 .. trials ->
        Array.fill counts 0 categories 0
        for _ in 1 .. draws do
            let c = random.Next categories
            counts[c] <- counts[c] + 1
        fromUniform (counts |> Array.map (fun c -> float c / float draws)) ]
    |> List.average

/// One run's numbers.
type RunSummary =
    { Seed: int64
      Folder: string
      Final: float
      Best: float
      Validation: float option
      CleanTrain: float option
      ImagesPerSecond: float
      Seconds: float
      /// Shares of the training time spent augmenting and in the controller (its sampling and update).
      AugmentShare: float
      ControllerShare: float
      /// Share spent in an adversarial method's EMA teacher (0 without one).
      TeacherShare: float
      /// Data with subgroups: the final worst-group test accuracy and the largest subgroup gap of a class.
      Robust: float option
      Gap: float option
      /// Model patching's stage 1 (its CycleGANs), in seconds.
      StageSeconds: float option }

/// How far the controller's distribution is from uniform at each epoch of a run.
type Movement =
    { Epoch: int
      OpDistance: float
      LevelDistance: float
      MeanLevel: float
      Entropy: float option
      /// How far the op distribution moved from the previous epoch's (total variation), per controller update between them.
      PerUpdate: float option }

let private summarize (seed: int64) (run: RunData) =
    let tests = run.Metrics |> List.choose (fun m -> Option.ofNullable m.TestAccuracy)
    let last = List.last run.Metrics
    let lastGroups = run.Metrics |> List.rev |> List.tryFind (fun m -> not (isNull m.GroupAccuracy))
    let seconds = run.Metrics |> List.sumBy (fun m -> m.Seconds)
    { Seed = seed
      Folder = run.Folder
      Final = finalAccuracy run |> Option.defaultValue nan
      Best = (if tests.IsEmpty then nan else List.max tests)
      Validation = run.Metrics |> List.rev |> List.tryPick (fun m -> Option.ofNullable m.ValidationAccuracy)
      CleanTrain = Option.ofNullable last.CleanTrainAccuracy
      ImagesPerSecond = run.Metrics |> List.map (fun m -> m.ImagesPerSecond) |> List.sort |> fun xs -> xs[xs.Length / 2]
      Seconds = seconds
      AugmentShare = (run.Metrics |> List.sumBy (fun m -> m.AugmentSeconds)) / seconds
      // A controller that learns within epochs records its own time (its updates run while batches are built).
      ControllerShare =
          (run.Metrics |> List.sumBy (fun m ->
              match m.MethodSeconds |> Option.ofObj |> Option.bind (Seq.tryFind (fun p -> p.Key = AdversarialSpec.ControllerPart)) with
              | Some part -> part.Value
              | None -> m.ControllerSeconds)) / seconds
      TeacherShare =
          (run.Metrics |> List.sumBy (fun m ->
              m.MethodSeconds |> Option.ofObj |> Option.bind (Seq.tryFind (fun p -> p.Key = AdversarialSpec.TeacherPart)) |> Option.map (fun p -> p.Value) |> Option.defaultValue 0.0)) / seconds
      Robust = lastGroups |> Option.map (fun m -> m.RobustAccuracy.Value)
      Gap = lastGroups |> Option.map (fun m -> nonNull m.SubgroupGap |> Seq.map (fun g -> g.Value) |> Seq.max)
      StageSeconds =
          let stage = Path.Combine(run.Folder, PatchingMethod.StageFolder, AdvAA.Core.Search.CycleGanStage.MetricsFile)
          if run.Config.Experiment.Method :? PatchingSpec && File.Exists stage then
              Some(JsonLines.Read stage |> Seq.sumBy (fun line -> line["seconds"] |> nonNull |> fun v -> v.GetValue<float>()))
          else None }

let private movement (run: RunData) =
    let entropy = run.Metrics |> List.map (fun m -> m.Epoch, Option.ofNullable (m.Number AdvAA.Core.Methods.AdversarialSpec.EntropyMetric)) |> Map.ofList
    let shares (d: ControllerDistribution) = d.Ops |> Seq.map (fun o -> o.Value) |> Array.ofSeq
    let recorded = run.Policies |> List.choose (fun p -> match p.Distribution with null -> None | d -> Some(p, d))
    [ for i, (p, d) in List.indexed recorded do
        let ops = shares d
        yield
            { Epoch = p.Epoch
              OpDistance = fromUniform ops
              LevelDistance = fromUniform d.Levels
              MeanLevel = d.Levels |> Array.mapi (fun l s -> float l * s) |> Array.sum
              Entropy = entropy |> Map.tryFind p.Epoch |> Option.flatten
              PerUpdate =
                  (if i = 0 then None else Some recorded[i - 1])
                  |> Option.filter (fun (q, _) -> q.Epoch = p.Epoch - 1)
                  |> Option.map (fun (q, before) ->
                      let updates = match q.Windows with null -> 1 | windows -> windows.Count
                      0.5 * Array.fold2 (fun sum a b -> sum + abs (a - b)) 0.0 ops (shares before) / float updates) } ]

/// The draws behind one epoch's counted distribution (records of earlier versions): policies drawn × sub-policies × ops.
let private draws (run: RunData) (counted: ControllerDistribution) =
    match run.Config.Experiment.Method with
    | :? SampledPoliciesSpec as s -> s.SubPolicies * s.OpsPerSubPolicy * counted.Rollouts
    | _ -> counted.Rollouts * 10

/// The 97.5% quantile of Student's t with `df` ≥ 1 degrees of freedom: the factor of a two-sided 95%
/// interval. With t = √df·tan θ the density in θ is ∝ cos^(df−1) θ on (−π/2, π/2), so the quantile is
/// where its integral from 0 reaches 95% of the half (trapezoids, 20,000 steps: 4 decimals).
let tQuantile975 (df: int) =
    if df < 1 then invalidArg (nameof df) (sprintf "%d degrees of freedom: expected at least 1" df)
    let steps = 20000
    let h = Math.PI / 2.0 / float steps
    let density (theta: float) = cos theta ** float (df - 1)
    let cumulative = Array.zeroCreate (steps + 1)
    for i in 1 .. steps do
        cumulative[i] <- cumulative[i - 1] + h * (density (float (i - 1) * h) + density (float i * h)) / 2.0
    let target = 0.95 * cumulative[steps]
    let i = cumulative |> Array.findIndex (fun c -> c >= target)
    let theta = float (i - 1) * h + h * (target - cumulative[i - 1]) / (cumulative[i] - cumulative[i - 1])
    sqrt (float df) * tan theta

/// The paired differences a − b over the seeds both have: their number, mean and the half-width of
/// the 95% t-interval of the mean (NaN for a single pair), as TrivialAugment's authors report.
let pairedDifference (a: (int64 * float) list) (b: (int64 * float) list) =
    let differences = [ for seed, x in a do match List.tryFind (fst >> (=) seed) b with Some(_, y) -> yield x - y | None -> () ]
    match differences with
    | [] -> 0, nan, nan
    | [ d ] -> 1, d, nan
    | ds ->
        let mean, sd = meanSd ds
        ds.Length, mean, tQuantile975 (ds.Length - 1) * sd / sqrt (float ds.Length)

let private pct (x: float) = if Double.IsNaN x then "–" else sprintf "%.2f" (100.0 * x)
/// mean ± sd; one value alone (one seed so far) has no spread to show.
let private pm (xs: float list) =
    match xs with
    | [ x ] -> pct x
    | _ -> let m, s = meanSd xs in sprintf "%s ± %s" (pct m) (pct s)

module private Plots =
    open ScottPlot

    let save (plot: Plot) (path: string) =
        plot.SavePng(path, 1000, 560) |> ignore
        path

    /// Mean test accuracy over seeds per epoch, with the sd shaded, one curve per arm.
    let curves (arms: (string * RunData list) list) (path: string) =
        use plot = new Plot()
        let palette = Palettes.Category10()
        arms
        |> List.iteri (fun i (name, runs) ->
            let perEpoch =
                runs
                |> List.collect (fun r -> r.Metrics |> List.choose (fun m -> if m.TestAccuracy.HasValue then Some(m.Epoch, m.TestAccuracy.Value) else None))
                |> List.groupBy fst
                |> List.sortBy fst
                |> List.filter (fun (_, values) -> values.Length = runs.Length)
            let xs = perEpoch |> List.map (fst >> float) |> Array.ofList
            let stats = perEpoch |> List.map (fun (_, v) -> meanSd (v |> List.map (snd >> (*) 100.0))) |> Array.ofList
            let color = palette.GetColor i
            let fill = plot.Add.FillY(xs, stats |> Array.map (fun (m, s) -> m - s), stats |> Array.map (fun (m, s) -> m + s))
            fill.FillStyle.Color <- color.WithAlpha(0.18)
            fill.LineStyle.Width <- 0.0f
            let line = plot.Add.Scatter(xs, stats |> Array.map fst, color)
            line.MarkerSize <- 0.0f
            // The palette has 10 colours: arms past the tenth reuse one with another line pattern.
            line.LinePattern <- [| LinePattern.Solid; LinePattern.Dashed; LinePattern.Dotted |][(i / 10) % 3]
            line.LineWidth <- 1.5f
            line.LegendText <- name)
        plot.Title "Test accuracy, mean over seeds (shaded: ± 1 sd)"
        plot.XLabel "epoch"
        plot.YLabel "test accuracy (%)"
        plot.ShowLegend(Alignment.LowerRight) |> ignore
        save plot path

    /// The controller's distance from uniform per epoch (mean over seeds) and the noise level.
    let movement (arms: (string * Movement list list) list) (noise: (float * float) option) (path: string) =
        use plot = new Plot()
        let palette = Palettes.Category10()
        arms
        |> List.iteri (fun i (name, runs) ->
            let mean (f: Movement -> float) =
                runs |> List.collect id |> List.groupBy (fun m -> m.Epoch) |> List.sortBy fst
                |> List.map (fun (e, ms) -> float e, ms |> List.averageBy f) |> Array.ofList
            for label, f, pattern in [ "ops", (fun m -> m.OpDistance), LinePattern.Solid; "levels", (fun m -> m.LevelDistance), LinePattern.Dashed ] do
                let points = mean f
                let s = plot.Add.Scatter(points |> Array.map fst, points |> Array.map snd, palette.GetColor i)
                s.MarkerSize <- 0.0f
                s.LinePattern <- pattern
                s.LegendText <- sprintf "%s: %s" name label)
        noise |> Option.iter (fun (opNoise, levelNoise) ->
            let a = plot.Add.HorizontalLine(opNoise, 1.0f, Colors.Gray, LinePattern.Solid)
            a.LegendText <- "noise of the counted estimate: ops"
            let b = plot.Add.HorizontalLine(levelNoise, 1.0f, Colors.Gray, LinePattern.Dashed)
            b.LegendText <- "noise of the counted estimate: levels")
        plot.Title "Controller: total-variation distance of its op and level distributions from uniform"
        plot.XLabel "epoch"
        plot.YLabel "distance from uniform"
        plot.ShowLegend(Alignment.UpperLeft) |> ignore
        save plot path

/// The study's runs grouped by a recorded value (their machine, their precision), in arm order.
let private runsBy (value: RunData -> string) (loaded: (string * (int64 * RunData) list) list) =
    [ for _, runs in loaded do for _, run in runs -> value run, run.Name ] |> List.groupBy fst |> List.map (fun (v, rs) -> v, List.map snd rs)

/// Writes summary.md, summary.json, test-curves.png and (for controller runs) controller-movement.png
/// into `folder` for the study's finished runs (`<arm>-s<seed>` inside it, named in `finished`), so a
/// long study shows its results as it goes; returns summary.md's path.
let write (folder: string) (name: string) (arms: string list) (seeds: int64 list) (finished: Set<string>) =
    let runsOf (arm: string) =
        [ for seed in seeds do
            let run = sprintf "%s-s%d" arm seed
            if finished.Contains run then yield seed, Report.load (Path.Combine(folder, run)) ]
    let loaded = [ for arm in arms do match runsOf arm with [] -> () | runs -> yield arm, runs ]
    if loaded.IsEmpty then invalidArg (nameof finished) "a study summary needs at least one finished run"
    let total = arms.Length * seeds.Length
    let count = loaded |> List.sumBy (snd >> List.length)
    let summaries = [ for arm, runs in loaded -> arm, [ for seed, run in runs -> summarize seed run ] ]
    let first = snd loaded.Head |> List.head |> snd
    let experiment = first.Config.Experiment
    let controllerArms =
        [ for arm, runs in loaded do
            let moves = [ for _, run in runs -> movement run ]
            if moves |> List.exists (not << List.isEmpty) then yield arm, moves ]
    let images = ResizeArray [ Plots.curves [ for arm, runs in loaded -> arm, List.map snd runs ] (Path.Combine(folder, "test-curves.png")) ]
    // Exact distributions (and softmax means) have no counting noise; records of earlier versions counted draws.
    let noise =
        controllerArms
        |> List.tryHead
        |> Option.bind (fun (arm, _) ->
            let run = loaded |> List.find (fst >> (=) arm) |> snd |> List.head |> snd
            run.Policies
            |> List.tryPick (fun p -> match p.Distribution with | null -> None | d when d.Counted -> Some d | _ -> None)
            |> Option.map (fun d -> noiseLevel run.Ops.Length (draws run d), noiseLevel run.Levels (draws run d)))
    if not controllerArms.IsEmpty then
        images.Add(Plots.movement controllerArms noise (Path.Combine(folder, "controller-movement.png")))
    let wall = summaries |> List.sumBy (fun (_, rs) -> rs |> List.sumBy (fun r -> r.Seconds))
    let machines = loaded |> runsBy (fun run -> defaultArg (Option.ofObj run.Config.Machine) "not recorded")
    let precisions = loaded |> runsBy (fun run -> run.Config.Experiment.Precision)
    let groups (byValue: (string * string list) list) =
        let o = JsonObject()
        for value, runs in byValue do o[value] <- JsonArray([| for r in runs -> JsonValue.Create r :> JsonNode | null |])
        o

    // The first arm against each other arm, seed by seed (the arms share their random streams per seed).
    let reference, referenceRuns = summaries.Head
    let differences (rs: RunSummary list) (f: RunSummary -> float option) =
        pairedDifference [ for r in referenceRuns do match f r with Some v -> yield r.Seed, v | None -> () ] [ for r in rs do match f r with Some v -> yield r.Seed, v | None -> () ]
    let measures = [ "validation_accuracy", (fun (r: RunSummary) -> r.Validation); "final_test_accuracy", (fun r -> Some r.Final) ]
    let paired (arm: string) : JsonNode | null =
        let rs = summaries |> List.find (fst >> (=) arm) |> snd
        let o = JsonObject()
        o["reference"] <- JsonValue.Create reference
        for measure, f in measures do
            let n, mean, half = differences rs f
            if n > 0 then
                let d = JsonObject()
                d["pairs"] <- JsonValue.Create n
                d["mean"] <- JsonOptions.Number mean
                if not (Double.IsNaN half) then
                    d["low"] <- JsonOptions.Number(mean - half)
                    d["high"] <- JsonOptions.Number(mean + half)
                o[measure] <- d
        o
    let json = JsonObject()
    json["study"] <- JsonValue.Create name
    json["machines"] <- groups machines
    json["precisions"] <- groups precisions
    json["seeds"] <- JsonArray([| for s in seeds -> JsonValue.Create s :> JsonNode | null |])
    json["epochs"] <- JsonValue.Create experiment.Epochs
    json["wall_seconds"] <- JsonValue.Create wall
    json["runs_finished"] <- JsonValue.Create count
    json["runs_total"] <- JsonValue.Create total
    json["arms"] <-
        JsonArray(
            [| for (arm, rs), (_, runs) in List.zip summaries loaded ->
                let config = (snd runs.Head).Config.Experiment
                let stats (values: float list) =
                    let m, s = meanSd values
                    let o = JsonObject()
                    o["mean"] <- JsonOptions.Number m
                    o["sd"] <- JsonOptions.Number s
                    o :> JsonNode | null
                let o = JsonObject()
                o["arm"] <- JsonValue.Create arm
                o["method"] <- config.Method.ToJson()
                o["final_test_accuracy"] <- stats (rs |> List.map (fun r -> r.Final))
                o["best_test_accuracy"] <- stats (rs |> List.map (fun r -> r.Best))
                if rs |> List.forall (fun r -> r.Validation.IsSome) then o["validation_accuracy"] <- stats (rs |> List.map (fun r -> r.Validation.Value))
                if rs |> List.forall (fun r -> r.CleanTrain.IsSome) then o["clean_train_accuracy"] <- stats (rs |> List.map (fun r -> r.CleanTrain.Value))
                if rs |> List.forall (fun r -> r.Robust.IsSome) then
                    o["robust_test_accuracy"] <- stats (rs |> List.map (fun r -> r.Robust.Value))
                    o["subgroup_gap"] <- stats (rs |> List.map (fun r -> r.Gap.Value))
                if rs |> List.forall (fun r -> r.StageSeconds.IsSome) then o["stage1_seconds"] <- stats (rs |> List.map (fun r -> r.StageSeconds.Value))
                o["images_per_second"] <- stats (rs |> List.map (fun r -> r.ImagesPerSecond))
                o["seconds"] <- stats (rs |> List.map (fun r -> r.Seconds))
                o["augment_share"] <- stats (rs |> List.map (fun r -> r.AugmentShare))
                o["controller_share"] <- stats (rs |> List.map (fun r -> r.ControllerShare))
                if rs |> List.exists (fun r -> r.TeacherShare > 0.0) then o["teacher_share"] <- stats (rs |> List.map (fun r -> r.TeacherShare))
                o["runs"] <- JsonArray([| for r in rs -> JsonValue.Create(Path.GetFileName r.Folder) :> JsonNode | null |])
                if arm <> fst summaries.Head then o["paired_with_first"] <- paired arm
                match controllerArms |> List.tryFind (fst >> (=) arm) with
                | Some(_, moves) ->
                    let perEpoch =
                        moves |> List.collect id |> List.groupBy (fun m -> m.Epoch) |> List.sortBy fst
                        |> List.map (fun (e, ms) ->
                            let p = JsonObject()
                            p["epoch"] <- JsonValue.Create e
                            p["op_distance"] <- JsonOptions.Number(ms |> List.averageBy (fun m -> m.OpDistance))
                            p["level_distance"] <- JsonOptions.Number(ms |> List.averageBy (fun m -> m.LevelDistance))
                            p["mean_level"] <- JsonOptions.Number(ms |> List.averageBy (fun m -> m.MeanLevel))
                            let entropies = ms |> List.choose (fun m -> m.Entropy)
                            if not entropies.IsEmpty then p["entropy"] <- JsonOptions.Number(List.average entropies)
                            let steps = ms |> List.choose (fun m -> m.PerUpdate)
                            if not steps.IsEmpty then p["op_movement_per_update"] <- JsonOptions.Number(List.average steps)
                            p :> JsonNode | null)
                    o["controller"] <- JsonArray(Array.ofList perEpoch)
                | None -> ()
                o :> JsonNode | null |])
    noise |> Option.iter (fun (ops, levels) ->
        let n = JsonObject()
        n["op_distance"] <- JsonOptions.Number ops
        n["level_distance"] <- JsonOptions.Number levels
        json["controller_noise"] <- n)
    AtomicFile.Write(Path.Combine(folder, "summary.json"), json.ToJsonString(JsonOptions.Indented) + "\n")

    let md = StringBuilder()
    let line (s: string) = md.AppendLine s |> ignore
    line (sprintf "# Study %s" name)
    line ""
    if count < total then
        line (sprintf "**Partial: %d of %d runs finished**; each arm's numbers are over the seeds it has so far (column seeds)." count total)
        line ""
    line (sprintf "%d arms × %d seeds (%s), %d epochs each, model %s, %s; %s together %s of training and evaluation."
              arms.Length seeds.Length (seeds |> List.map string |> String.concat ", ") experiment.Epochs experiment.Model
              (match experiment.TrainLimit with
               | v when v.HasValue -> sprintf "%d training images" v.Value
               | _ -> "all training images")
              (if count < total then "the finished runs" else "all runs") (Runner.duration wall))
    line ""
    // A study resumed on another machine, or in another precision, says so: its speeds (and, across
    // precisions, its accuracies) then compare only within one group.
    let listed (byValue: (string * string list) list) =
        byValue |> List.map (fun (value, runs) -> sprintf "%s: %s" value (String.concat ", " runs)) |> String.concat "; "
    match machines with
    | [ machine, _ ] -> line (sprintf "Machine: %s." machine)
    | _ -> line (sprintf "**The runs are not all from one recorded machine; images/s and times compare only within one.** %s." (listed machines))
    match precisions with
    | [ precision, _ ] -> line (sprintf "Precision: %s." precision)
    | _ -> line (sprintf "**The runs trained in %d precisions; compare accuracies and speeds within one.** %s." precisions.Length (listed precisions))
    line ""
    line "Accuracies in %, mean ± sd over seeds; final = the last evaluated epoch; clean train = the final model on the un-augmented training images (clean train − test is the overfitting gap); augment, controller = the shares of the training time spent augmenting and in the controller (and, where there is one, in an adversarial method's teacher; a controller that learns within epochs updates while batches are built, so its time is also inside augment's)."
    line ""
    // Data with subgroups adds the worst group's accuracy, the largest subgroup gap and stage 1's time.
    let grouped = summaries |> List.exists (fun (_, rs) -> rs |> List.exists (fun r -> r.Robust.IsSome))
    if grouped then
        line "Robust = the worst (class, subgroup) group's final test accuracy; subgroup gap = the largest difference between two subgroups of a class, in points; stage 1 = model patching's CycleGANs."
        line ""
        line "| arm | method | seeds | final test | robust test | subgroup gap | best test | validation | clean train | images/s | augment, controller | stage 1 | time per run |"
        line "|---|---|---|---|---|---|---|---|---|---|---|---|---|"
    else
        line "| arm | method | seeds | final test | best test | validation | clean train | images/s | augment, controller | time per run |"
        line "|---|---|---|---|---|---|---|---|---|---|"
    for (arm, rs), (_, runs) in List.zip summaries loaded do
        let spec = (snd runs.Head).Config.Experiment.Method
        let optional (f: RunSummary -> float option) = if rs |> List.forall (fun r -> (f r).IsSome) then pm (rs |> List.map (f >> Option.get)) else "–"
        let ips, _ = meanSd (rs |> List.map (fun r -> r.ImagesPerSecond))
        let teacher = List.averageBy (fun r -> r.TeacherShare) rs
        let shares =
            sprintf "%.0f%%, %.0f%%%s" (100.0 * List.averageBy (fun r -> r.AugmentShare) rs) (100.0 * List.averageBy (fun r -> r.ControllerShare) rs)
                (if teacher > 0.0 then sprintf ", teacher %.0f%%" (100.0 * teacher) else "")
        let secs, _ = meanSd (rs |> List.map (fun r -> r.Seconds))
        let groupColumns =
            if not grouped then ""
            else sprintf " %s | %s |" (optional (fun r -> r.Robust)) (optional (fun r -> r.Gap))
        let stageColumn =
            if not grouped then ""
            elif rs |> List.forall (fun r -> r.StageSeconds.IsSome) then sprintf " %s |" (Runner.duration (fst (meanSd (rs |> List.map (fun r -> r.StageSeconds.Value)))))
            else " – |"
        line (sprintf "| %s | %s (%s) | %s | %s |%s %s | %s | %s | %.0f | %s |%s %s |" arm spec.Name spec.Summary
                  (rs |> List.map (fun r -> string r.Seed) |> String.concat ", ") (pm (rs |> List.map (fun r -> r.Final))) groupColumns
                  (pm (rs |> List.map (fun r -> r.Best))) (optional (fun r -> r.Validation)) (optional (fun r -> r.CleanTrain)) ips shares stageColumn (Runner.duration secs))
    if not controllerArms.IsEmpty then
        line ""
        match noise with
        | Some(opNoise, levelNoise) -> line (sprintf "Controller movement (mean over seeds; the counted estimate's own noise: ops %.3f, levels %.3f):" opNoise levelNoise)
        | None -> line "Controller movement (mean over seeds; exact distributions; ops moved per update = the total-variation distance of the op distribution from the previous epoch's, divided by the controller updates between them):"
        line ""
        line "| arm | epoch | ops: distance from uniform | levels: distance from uniform | mean level | entropy | ops moved per update |"
        line "|---|---|---|---|---|---|---|"
        for arm, moves in controllerArms do
            let perEpoch = moves |> List.collect id |> List.groupBy (fun m -> m.Epoch) |> List.sortBy fst
            let shown = perEpoch |> List.filter (fun (e, _) -> e = 1 || e % 10 = 0 || e = fst (List.last perEpoch))
            for e, ms in shown do
                let entropies = ms |> List.choose (fun m -> m.Entropy)
                let steps = ms |> List.choose (fun m -> m.PerUpdate)
                line (sprintf "| %s | %d | %.3f | %.3f | %.2f | %s | %s |" arm e (ms |> List.averageBy (fun m -> m.OpDistance))
                          (ms |> List.averageBy (fun m -> m.LevelDistance)) (ms |> List.averageBy (fun m -> m.MeanLevel))
                          (if entropies.IsEmpty then "–" else sprintf "%.2f" (List.average entropies))
                          (if steps.IsEmpty then "–" else sprintf "%.4f" (List.average steps)))
    if summaries.Length > 1 then
        line ""
        line (sprintf "Paired differences, %s − arm, over the seeds both have (the arms of a seed share their random streams), in points: mean [95%% t-interval]; an interval that holds 0 is no difference." reference)
        line ""
        line "| arm | pairs | validation | final test |"
        line "|---|---|---|---|"
        for arm, rs in summaries.Tail do
            let cell (f: RunSummary -> float option) =
                match differences rs f with
                | 0, _, _ -> "–"
                | _, mean, half when Double.IsNaN half -> sprintf "%+.2f" (100.0 * mean)
                | _, mean, half -> sprintf "%+.2f [%+.2f, %+.2f]" (100.0 * mean) (100.0 * (mean - half)) (100.0 * (mean + half))
            let n, _, _ = differences rs (fun r -> Some r.Final)
            line (sprintf "| %s | %d | %s | %s |" arm n (cell (fun r -> r.Validation)) (cell (fun r -> Some r.Final)))
    line ""
    for image in images do line (sprintf "![%s](%s)" (Path.GetFileNameWithoutExtension image) (Path.GetFileName image))
    let path = Path.Combine(folder, "summary.md")
    AtomicFile.Write(path, md.ToString())
    path
