namespace AdvAA.Dsl

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Text.Json.Nodes
open System.Threading
open AdvAA.Core
open AdvAA.Core.Augment
open AdvAA.Core.Backend
open AdvAA.Core.Data
open AdvAA.Core.Distributed
open AdvAA.Core.Training
open TorchSharp

/// Where progress goes. `Live`: the output is a terminal, so a step line is rewritten in place.
type Display =
    { Out: TextWriter
      Live: bool }

    /// The console; live when standard output is a terminal.
    static member Console = { Out = Console.Out; Live = not Console.IsOutputRedirected }

/// How runs were started: shown to continue an interrupted run, and recorded in config.json.
type Session =
    { Display: Display
      /// Stops the run after the current epoch's checkpoint.
      Cancel: CancellationToken
      /// The program, e.g. ["advaa"; "run"] or ["dotnet"; "fsi"].
      Program: string list
      /// Its arguments without --out and --resume.
      Arguments: string list
      /// Write the report of every finished run (`advaa report`) at the end.
      Report: bool
      /// The data-parallel job this process is a rank of (`asRanks` with --distributed), or None.
      Ranks: ProcessGroup option }

/// One finished (or interrupted) run.
type Outcome =
    { Name: string
      Method: string
      Folder: string
      /// Epochs in the run folder's metrics.
      EpochsDone: int
      Epochs: int
      FinalAccuracy: float option
      /// The best test accuracy and its epoch.
      BestAccuracy: (float * int) option
      /// Wall-clock seconds of this session's training.
      Seconds: float }

    member o.Completed = o.EpochsDone >= o.Epochs

/// Runs resolved training configurations into run folders, with a console progress display and
/// Ctrl+C handling: what `advaa run`, `advaa train` and `Experiment.main` share.
[<RequireQualifiedAccess>]
module Runner =
    /// The message of an error that bad input or a failed run raises (no stack trace wanted);
    /// None for anything else, which is a bug to report with its trace.
    /// Whether `e` says that memory ran out: .NET's OutOfMemoryException, or libtorch's allocator
    /// failing (TorchSharp raises it as an ExternalException with libtorch's message).
    let isOutOfMemory (e: exn) =
        match e with
        | :? OutOfMemoryException -> true
        | :? Runtime.InteropServices.ExternalException as x ->
            x.Message.Contains("can't allocate memory", StringComparison.OrdinalIgnoreCase)
            || x.Message.Contains("out of memory", StringComparison.OrdinalIgnoreCase)
        | _ -> false

    /// The first line of libtorch's message, without the C++ backtrace it appends.
    let private firstLine (message: string) = message.Split('\n').[0].Trim()

    let rec errorMessage (e: exn) : string option =
        match e with
        | :? DslException
        | :? ConfigException
        | :? AugmentException
        | :? DataFormatException
        | :? RunFolderException
        | :? TrainingDivergedException
        | :? BackendException
        | :? AdvAA.Core.Distributed.DistributedException
        | :? AdvAA.Core.Models.ModelFileException
        | :? IOException
        | :? UnauthorizedAccessException -> Some e.Message
        // Work done in parallel (decoding images) fails with its workers' exceptions wrapped: the first one that speaks to the user.
        | :? AggregateException as a -> a.Flatten().InnerExceptions |> Seq.tryPick errorMessage
        | e when isOutOfMemory e ->
            Some(sprintf "out of memory (%s); free memory, or lower --batch or the data's size" (firstLine e.Message))
        // AdvAA's own argument checks speak to the user; .NET's and TorchSharp's remain bugs with a trace.
        | :? ArgumentException as a when
            (match a.TargetSite with
             | null -> false
             | site ->
                 match site.Module.Assembly.GetName().Name with
                 | NonNull name -> name.StartsWith("AdvAA", StringComparison.Ordinal)
                 | _ -> false) ->
            Some(AdvAA.Core.UserMessages.Of a)
        | _ -> None

    /// Distributed: rank 0 makes or opens a folder and the other ranks take the path it names; alone: `make ()`.
    let private onRankZero (session: Session) (make: unit -> string) : string =
        match session.Ranks with
        | None -> make ()
        | Some ranks -> ranks.Broadcast(if ranks.Rank = 0 then make () else "")

    /// Whether this process writes run and study folders (not the ranks other than 0 of a distributed job).
    let private writes (session: Session) =
        match session.Ranks with
        | None -> true
        | Some ranks -> ranks.Rank = 0

    /// Runs `work` as this process's part of a data-parallel job when `distributed` (see
    /// ProcessGroup): ranks other than 0 print nothing and write nothing; an error on one rank is
    /// printed with its rank and ends every rank (MPI_Abort), so none waits forever. Alone: `work session`.
    let asRanks (distributed: bool) (session: Session) (work: Session -> int) : int =
        if not distributed then work session
        else
            use ranks = ProcessGroup.Start()
            let quiet = { session with Display = { Out = TextWriter.Null; Live = false }; Report = false; Ranks = Some ranks }
            if ranks.Rank = 0 then
                session.Display.Out.WriteLine(
                    sprintf "ranks    %d (%s, %s; %d here, %d CPU threads each)" ranks.Size ranks.Launcher ranks.MpiLibrary ranks.LocalSize (torch.get_num_threads ()))
            try
                work (if ranks.Rank = 0 then { session with Ranks = Some ranks } else quiet)
            with e ->
                let who = if ranks.Rank = 0 then "" else sprintf "rank %d of %d: " ranks.Rank ranks.Size
                match e, errorMessage e with
                // A disagreement every rank detects: rank 0 says it, every rank exits.
                | :? AdvAA.Core.Distributed.DistributedException, Some message ->
                    if ranks.Rank = 0 then eprintfn "advaa: %s" message
                    ExitCode.failed
                | _, message ->
                    eprintfn "advaa: %s%s" who (message |> Option.defaultValue (string e))
                    Console.Error.Flush()
                    ranks.Abort ExitCode.failed
                    ExitCode.failed

    /// h:mm:ss
    let duration (seconds: float) =
        let t = TimeSpan.FromSeconds(Math.Round(max seconds 0.0))
        sprintf "%d:%02d:%02d" (int t.TotalHours) t.Minutes t.Seconds

    let private percent (accuracy: float) = sprintf "%.2f%%" (100.0 * accuracy)

    /// The live line within an epoch: step, the batch loss and the epoch's running mean of the
    /// reported losses, images/s, and the time left in the epoch and in the run (whole epochs at
    /// `epochSeconds`, the mean of this session's finished epochs, else this epoch's pace).
    let stepLine (p: StepProgress) (runningLoss: float) (epochSeconds: float option) =
        let perStep = p.Seconds / float (max p.Step 1)
        let epochLeft = perStep * float (p.Steps - p.Step)
        let perEpoch = defaultArg epochSeconds (perStep * float p.Steps)
        let runLeft = epochLeft + perEpoch * float (p.Epochs - p.Epoch)
        sprintf "  epoch %d/%d  step %d/%d  loss %.4f (mean %.4f)  %.0f img/s  ETA epoch %s, run %s"
            p.Epoch p.Epochs p.Step p.Steps p.Loss runningLoss (float p.Images / max p.Seconds 1e-9) (duration epochLeft) (duration runLeft)

    let private epochs (n: int) = if n = 1 then "1 epoch" else sprintf "%d epochs" n

    /// The command that continues a run in `folder`.
    let resumeCommand (session: Session) (folder: string) =
        CommandLine.join (session.Program @ session.Arguments @ [ "--resume"; folder ])

    let private origin (session: Session) = RunOrigin(String.concat " " session.Program, Array.ofList session.Arguments)

    /// Runs `work` with a token that Ctrl+C cancels: the first Ctrl+C lets the current epoch finish
    /// and write its checkpoint; a second one ends the process at once (the last checkpoint stays whole).
    let interruptible (display: Display) (work: CancellationToken -> 'T) : 'T =
        use cancel = new CancellationTokenSource()
        let handler =
            ConsoleCancelEventHandler(fun _ e ->
                if not cancel.IsCancellationRequested then
                    e.Cancel <- true
                    display.Out.WriteLine()
                    display.Out.WriteLine "Ctrl+C: stopping after this epoch's checkpoint (Ctrl+C again stops at once)."
                    cancel.Cancel())
        Console.CancelKeyPress.AddHandler handler
        try work cancel.Token
        finally Console.CancelKeyPress.RemoveHandler handler

    /// Loads libtorch for the config's device before any tensor exists (CUDA cannot be chosen
    /// later); "auto" defers to ADVAA_DEVICE when it is set, as every advaa command does.
    let private device (config: TrainConfig) =
        match TorchBackend.ParseDevice config.Device with
        | DeviceRequest.Auto -> TorchBackend.ResolveDevice(TorchBackend.RequestFromEnvironment())
        | request -> TorchBackend.ResolveDevice request

    let private load (display: Display) (path: string | null) =
        let watch = Stopwatch.StartNew()
        let data = DataSources.Load path
        display.Out.WriteLine(
            sprintf "data     %s: %d training and %d test images (%s), %.1f s" data.Format data.Train.Count data.Test.Count data.Train.Source watch.Elapsed.TotalSeconds
        )
        for warning in data.Warnings do
            display.Out.WriteLine(sprintf "warning  %s" warning)
        data

    /// Every epoch drops the last incomplete batch: a training set smaller than one batch would train nothing.
    let private checkFits (config: TrainConfig) (data: DataSplits) =
        let images = if config.TrainLimit.HasValue then min config.TrainLimit.Value data.Train.Count else data.Train.Count
        if images < int64 config.BatchSize then
            raise (ConfigException(sprintf "batch size %d is larger than the %d training images: no step could run; lower the batch size or train on more images" config.BatchSize images))

    /// ENOSPC (28) on Linux, ERROR_DISK_FULL / ERROR_HANDLE_DISK_FULL on Windows.
    let private diskFull (e: IOException) =
        let code = e.HResult &&& 0xFFFF
        code = 28 || code = 112 || code = 39

    /// The configuration with its image limits cut to what the data has (a warning says so), so that
    /// config.json records the number of images actually used.
    let private fitLimits (out: TextWriter) (config: TrainConfig) (data: DataSplits) =
        let held = if config.ValidationSize.HasValue then config.ValidationSize.Value else 0L
        let cut (flag: string) (limit: Nullable<int64>) (available: int64) (what: string) =
            if limit.HasValue && limit.Value > available then
                out.WriteLine(sprintf "warning  %s %d is more than the %d %s: using %d" flag limit.Value available what available)
                Nullable available
            else limit
        let train = cut "train limit" config.TrainLimit (data.Train.Count - held) (if held > 0L then "training images outside the validation split" else "training images")
        let test = cut "test limit" config.TestLimit data.Test.Count "test images"
        if train = config.TrainLimit && test = config.TestLimit then config else config.WithLimits(train, test)

    /// Trains one configuration into the run folder `openFolder` gives (opened or created only once
    /// the trainer stands, so a method that cannot be made writes nothing), printing one line per
    /// epoch (and, on a terminal, a step line rewritten in place). Progress is counted from the
    /// folder's last complete checkpoint.
    let private train (session: Session) (data: DataSplits) (openFolder: unit -> RunFolder) (name: string) (config: TrainConfig) : Outcome =
        let out = session.Display.Out
        let config = fitLimits out config data
        use trainer = new Trainer(config.WithOrigin(origin session), data, Option.toObj session.Ranks)
        let folder =
            match session.Ranks with
            | None -> openFolder ()
            | Some _ -> RunFolder.Shared(onRankZero session (fun () -> (openFolder ()).Path))
        match trainer.PrecisionWarning with
        | null -> ()
        | warning -> out.WriteLine(sprintf "warning  %s" warning)
        out.WriteLine(sprintf "run      %s: %s, model %s (%.2fM parameters), %s of %d steps, device %O, %s, %s" name config.Method.Name config.Model (float trainer.ParameterCount / 1e6) (epochs config.Epochs) trainer.BatchesPerEpoch trainer.Device (Precisions.Name trainer.Precision) config.MemoryFormat)
        out.WriteLine(sprintf "folder   %s" folder.Path)
        let clock = Stopwatch.StartNew()
        let mutable epochsHere = 0
        let mutable shown = 0 // the width of the live line on screen
        let mutable lossEpoch, lossSum, lossCount = 0, 0.0, 0
        let clearStep () =
            if shown > 0 then
                out.Write("\r" + String(' ', shown) + "\r")
                shown <- 0
        use _steps =
            trainer.StepCompleted.Subscribe(fun p ->
                if p.Epoch <> lossEpoch then
                    lossEpoch <- p.Epoch
                    lossSum <- 0.0
                    lossCount <- 0
                lossSum <- lossSum + p.Loss
                lossCount <- lossCount + 1
                if session.Display.Live then
                    let epochSeconds = if epochsHere > 0 then Some(clock.Elapsed.TotalSeconds / float epochsHere) else None
                    let line = stepLine p (lossSum / float lossCount) epochSeconds
                    out.Write("\r" + line.PadRight shown)
                    out.Flush()
                    shown <- max shown line.Length)
        use _amended =
            trainer.SettingsAmended.Subscribe(fun a ->
                out.WriteLine(sprintf "amended  after epoch %d: %s (config.json's amendments record it)" a.AfterEpoch (a.Describe())))
        use _stage =
            trainer.StageProgress.Subscribe(fun line ->
                clearStep ()
                out.WriteLine line
                out.Flush())
        use _epochs =
            trainer.EpochCompleted.Subscribe(fun m ->
                clearStep ()
                epochsHere <- epochsHere + 1
                let elapsed = clock.Elapsed.TotalSeconds
                let eta = elapsed / float epochsHere * float (config.Epochs - m.Epoch)
                let width = string config.Epochs |> String.length
                let accuracy (a: Nullable<float>) = if a.HasValue then sprintf "%6.2f%%" (100.0 * a.Value) else "     –"
                let validation = if m.ValidationAccuracy.HasValue then sprintf "  val acc %s" (accuracy m.ValidationAccuracy) else ""
                let robust = if m.RobustAccuracy.HasValue then sprintf "  robust (worst group) %s" (accuracy m.RobustAccuracy) else ""
                // The method's own numbers that it labels for this line (the controller's entropy, the consistency loss).
                let own =
                    [ for d in config.Method.Metrics do
                        match d.Label, Option.ofNullable (m.Number d.Name) with
                        | NonNull label, Some v -> yield sprintf "  %s %.4f" label v
                        | _ -> () ]
                    |> String.concat ""
                out.WriteLine(
                    sprintf "epoch %*d/%d  train loss %.4f  test acc %s%s%s%s  %6.0f img/s  elapsed %s  ETA %s"
                        width m.Epoch config.Epochs m.TrainLoss (accuracy m.TestAccuracy) validation robust own m.ImagesPerSecond (duration elapsed) (duration eta)
                )
                out.Flush())
        try
            try
                trainer.Run(folder, session.Cancel, String.concat " " session.Program) |> ignore
            with e when (match e with :? IOException as io -> diskFull io | _ -> false) || isOutOfMemory e ->
                let kept =
                    match folder.LatestCheckpoint() with
                    | null -> "no epoch had finished, so it holds no checkpoint"
                    | c -> sprintf "it keeps epoch %d, its last complete checkpoint" c.Epoch
                let what, remedy =
                    if isOutOfMemory e then sprintf "out of memory (%s) while training into %s" (firstLine e.Message) folder.Path, "Free memory or lower --batch"
                    else sprintf "the disk is full while writing %s" folder.Path, "Free some space"
                raise (RunFolderException(sprintf "%s; %s. %s, then continue with: %s" what kept remedy (resumeCommand session folder.Path)))
        finally
            clearStep ()
        let history = [ for m in folder.ReadMetrics() do if m.TestAccuracy.HasValue then yield m.Epoch, m.TestAccuracy.Value ]
        let outcome =
            { Name = name
              Method = config.Method.Name
              Folder = folder.Path
              EpochsDone = (match folder.LatestCheckpoint() with null -> 0 | c -> c.Epoch)
              Epochs = config.Epochs
              FinalAccuracy = history |> List.tryLast |> Option.map snd
              BestAccuracy = if history.IsEmpty then None else history |> List.maxBy snd |> fun (e, a) -> Some(a, e)
              Seconds = clock.Elapsed.TotalSeconds }
        if outcome.Completed then
            let best =
                match outcome.BestAccuracy with
                | Some(a, e) -> sprintf " (best %s at epoch %d)" (percent a) e
                | None -> ""
            let accuracy = outcome.FinalAccuracy |> Option.map percent |> Option.defaultValue "–"
            if epochsHere = 0 then out.WriteLine(sprintf "the run was already complete: %s" (epochs outcome.EpochsDone))
            out.WriteLine(sprintf "done     %s: %s, final test accuracy %s%s, %s" name (epochs outcome.EpochsDone) accuracy best (duration outcome.Seconds))
        outcome

    let private stopped (session: Session) (folder: string) (outcome: Outcome) =
        let out = session.Display.Out
        out.WriteLine(sprintf "stopped  after epoch %d of %d; every finished epoch is in %s. Continue with:" outcome.EpochsDone outcome.Epochs folder)
        out.WriteLine("  " + resumeCommand session folder)

    /// Writes the report of finished runs (the first folder is the main one; several are compared
    /// in `out`), or, without --report, says how to make it.
    let private report (session: Session) (folders: string list) (out: string option) =
        let display = session.Display.Out
        if session.Report then display.WriteLine(sprintf "report   %s" (RunReport.write folders out 8))
        else
            let outFlag = out |> Option.map (fun o -> [ "--out"; o ]) |> Option.defaultValue []
            display.WriteLine(sprintf "report   %s  (or --report next time)" (CommandLine.join ([ "advaa"; "report" ] @ folders @ outFlag)))

    /// The run folder of a new run: `out`, which must not exist or be empty, or
    /// runs/<name>-<yyyyMMdd-HHmmss> (with -2, -3, ... if taken).
    let private create (out: string option) (name: string) =
        match out with
        | Some path -> RunFolder.Create path
        | None -> RunFolder.CreateUnique("runs", sprintf "%s-%s" name (DateTime.Now.ToString "yyyyMMdd-HHmmss"))

    /// Trains one configuration: device first, then the data, then the run folder (`resume`: the
    /// folder to continue; else a new one, see `create`). Returns the outcome; an interrupted run
    /// prints how to continue it.
    let run (session: Session) (out: string option) (resume: string option) (name: string) (config: TrainConfig) : Outcome =
        device config |> ignore
        use data = load session.Display config.Data
        checkFits config data
        let folder () =
            match resume with
            | Some path -> RunFolder.Open path
            | None -> create out name
        let outcome = train session data folder name config
        session.Display.Out.WriteLine(sprintf "folder   %s" outcome.Folder)
        if outcome.Completed then report session [ outcome.Folder ] None
        else stopped session outcome.Folder outcome
        outcome

    /// A comparison of finished runs, one row each.
    let table (outcomes: Outcome list) : string list =
        let rows =
            [ yield [ "experiment"; "method"; "epochs"; "final acc"; "best acc"; "time"; "folder" ]
              for o in outcomes ->
                  [ o.Name
                    o.Method
                    sprintf "%d/%d" o.EpochsDone o.Epochs
                    o.FinalAccuracy |> Option.map percent |> Option.defaultValue "–"
                    o.BestAccuracy |> Option.map (fst >> percent) |> Option.defaultValue "–"
                    duration o.Seconds
                    o.Folder ] ]
        let widths = List.init 7 (fun c -> rows |> List.map (fun r -> r[c].Length) |> List.max)
        rows
        |> List.map (fun r ->
            List.zip r widths
            |> List.mapi (fun c (cell, w) -> if c >= 2 && c <= 5 then cell.PadLeft w else cell.PadRight w)
            |> String.concat "  "
            |> fun line -> line.TrimEnd())

    /// Trains several configurations in turn, each in <group>/<name>, then prints a comparison
    /// table. The group folder is `out` (must not exist or be empty) or runs/comparison-<time>;
    /// `resume` continues a group: runs with a folder there resume, the others start. Names must
    /// be unique. Stops at the first interrupted run.
    /// `prepare` gets the group folder before any run starts (a study checks and records its grid there);
    /// `completed` the names of the runs complete so far, after each one (a study summarises them).
    let runAll (session: Session) (out: string option) (resume: string option) (groupName: string) (prepare: string -> unit)
               (completed: string list -> unit) (runs: (string * TrainConfig) list) : Outcome list =
        let display = session.Display
        for _, config in runs do
            device config |> ignore
        // Each data set once, loaded before any folder is made, so a bad path changes nothing.
        let sources = Dictionary<string, DataSplits>()
        try
            for _, config in runs do
                let key = config.Data |> Option.ofObj |> Option.defaultValue ""
                if not (sources.ContainsKey key) then sources[key] <- load display config.Data
                checkFits config sources[key]
            let group =
                match resume with
                | Some path ->
                    let full = Path.GetFullPath path
                    if not (Directory.Exists full) then raise (RunFolderException(RunFolder.Missing full))
                    full
                | None -> onRankZero session (fun () -> (create out groupName).Path)
            if writes session then prepare group
            let rec loop (outcomes: Outcome list) (remaining: (string * TrainConfig) list) =
                match remaining with
                | [] -> List.rev outcomes
                | (name, config) :: rest ->
                    let path = Path.Combine(group, name)
                    let folder () = if File.Exists(Path.Combine(path, RunFolder.ConfigFile)) then RunFolder.Open path else RunFolder.Create path
                    display.Out.WriteLine()
                    let key = config.Data |> Option.ofObj |> Option.defaultValue ""
                    let outcome = train session sources[key] folder name config
                    if outcome.Completed then
                        if writes session then completed [ for n, _ in List.take (outcomes.Length + 1) runs -> n ]
                        loop (outcome :: outcomes) rest
                    else
                        stopped session group outcome
                        List.rev (outcome :: outcomes)
            let outcomes = loop [] runs
            if outcomes.Length = runs.Length && (List.last outcomes).Completed then
                display.Out.WriteLine()
                for line in table outcomes do
                    display.Out.WriteLine line
                display.Out.WriteLine(sprintf "folder   %s" group)
                report session [ for o in outcomes -> o.Folder ] (Some(Path.Combine(group, "report")))
            outcomes
        finally
            for d in sources.Values do
                d.Dispose()
