namespace AdvAA.Dsl

open System
open System.IO
open System.Text.RegularExpressions
open Argu
open AdvAA.Core.Augment
open AdvAA.Core.Backend
open AdvAA.Core.Training

/// Where the images come from.
type DataSource =
    /// The CIFAR-10 sample embedded in AdvAA (2,000 training and 1,000 test images).
    | EmbeddedSample
    /// A CIFAR-10/100 binary folder, an image folder (`train/`, `test/`), or a `.tar.gz` of one.
    | DataPath of string

/// How each batch is augmented (and, for the adversarial method, how policies are learned).
[<NoEquality; NoComparison>]
type Method =
    /// Standard augmentation only: random crop of the 4-pixel padded image + horizontal flip.
    | Baseline
    /// Standard augmentation + Cutout.
    | Cutout
    /// AutoAugment's published CIFAR-10 policy, then standard augmentation + Cutout.
    | AutoAugment
    /// RandAugment: `n` ops per image, all at level `m` (of 31).
    | RandAugment of n: int * m: int
    /// TrivialAugment, with its wide ranges or the paper's.
    | TrivialAugment of wide: bool
    /// A policy of your own, written as the papers print them (see `Policy`).
    | FixedPolicy of Policy
    /// M copies of each batch with standard augmentation + Cutout only (the paper's "Fixed").
    | Fixed
    /// M copies, each augmented by a random policy drawn every epoch (the paper's "Random").
    | Random
    /// Adversarial AutoAugment: M policies from the LSTM controller, which learns to raise the loss.
    | Adversarial
    /// Uncertainty-based sampling: K random candidates per image, S of them kept in proportion to their loss.
    | Uncertainty of candidates: int * keep: int

/// The policy controller's shape and training (DESIGN.md defaults in `Experiment.defaults`).
type Controller =
    { SubPolicies: int
      OpsPerSubPolicy: int
      Embedding: int
      Hidden: int
      LearningRate: float
      EntropyWeight: float }

/// An experiment: what to train, on what, how long, and where the run folder goes. Start from
/// `Experiment.defaults` and change what you need: `{ Experiment.defaults with Epochs = 30 }`.
[<NoEquality; NoComparison>]
type Experiment =
    {
        /// Names the run folder (runs/<name>-<time>) and the row of a comparison.
        Name: string
        Data: DataSource
        /// Train on a seeded subset of this many images (quick runs); None: all.
        TrainLimit: int option
        /// Evaluate on a seeded subset of this many test images; None: all.
        TestLimit: int option
        /// small, resnet18, wrn-28-10, wrn-40-2 or any wrn-<depth>-<widen>.
        Model: string
        /// In-block dropout of WideResNets.
        Dropout: float
        Method: Method
        /// The ops, ranges and levels that policies are made of (adversarial, random, uncertainty, FixedPolicy).
        Space: Space
        Controller: Controller
        /// M, the augmented copies of each batch (fixed, random, adversarial), per epoch.
        Instances: Schedule
        /// Multiplies every sampled level (rounded down, clamped to the levels), e.g. to ramp magnitudes up.
        MagnitudeScale: Schedule
        /// Probability that a sample's policy is applied at all (standard augmentation always is).
        PolicyProbability: Schedule
        /// None: the paper's, from 0.1 (step ×0.2 at 30/60/80% of the epochs for wrn-28-10, cosine to 0 otherwise).
        LearningRate: Schedule option
        Momentum: float
        Nesterov: bool
        WeightDecay: float
        /// Side of the Cutout square in pixels after the policy (0: none).
        CutoutSize: int
        Epochs: int
        /// N: images per instance per step (the batch before the M copies).
        BatchSize: int
        Seed: int64
        /// auto, cpu or cuda.
        Device: string
        /// The run folder (must not exist or be empty); None: runs/<name>-<yyyyMMdd-HHmmss>.
        Out: string option
    }

/// What a script declares: `let experiment = ...`, or `let experiments = [ ... ]` to run several
/// in turn and compare them.
[<RequireQualifiedAccess; NoEquality; NoComparison>]
type ScriptExperiments =
    | Single of Experiment
    | Several of Experiment list

    member d.Experiments =
        match d with
        | Single e -> [ e ]
        | Several es -> es

    /// The script value that declares them.
    member d.ValueName =
        match d with
        | Single _ -> "experiment"
        | Several _ -> "experiments"

/// Method names as the CLI and config.json write them.
[<RequireQualifiedAccess>]
module Method =
    /// Each method by name, with its default parameters (policy has none: it needs a policy).
    let private byName =
        [ Methods.Baseline, Baseline
          Methods.Cutout, Cutout
          Methods.AutoAugment, AutoAugment
          Methods.RandAugment, RandAugment(2, 9)
          Methods.TrivialAugment, TrivialAugment true
          Methods.Fixed, Fixed
          Methods.Random, Random
          Methods.Adversarial, Adversarial
          Methods.Uncertainty, Uncertainty(4, 1) ]

    let name (m: Method) =
        match m with
        | Baseline -> Methods.Baseline
        | Cutout -> Methods.Cutout
        | AutoAugment -> Methods.AutoAugment
        | RandAugment _ -> Methods.RandAugment
        | TrivialAugment _ -> Methods.TrivialAugment
        | FixedPolicy _ -> Methods.Policy
        | Fixed -> Methods.Fixed
        | Random -> Methods.Random
        | Adversarial -> Methods.Adversarial
        | Uncertainty _ -> Methods.Uncertainty

    /// The method with this name (case-insensitive) and its default parameters.
    let ofName (text: string) : Method =
        let key = text.Trim().ToLowerInvariant()
        match byName |> List.tryFind (fun (n, _) -> n = key) with
        | Some(_, m) -> m
        | None when key = Methods.Policy ->
            raise (DslException "method 'policy' needs a policy: FixedPolicy (Policy.ofPairs [...]) in a script, or --policy FILE")
        | None -> raise (DslException(sprintf "unknown method '%s': expected one of %s" text (Methods.All.Keys |> String.concat ", ")))

/// Policies written literally, as the papers print them.
[<RequireQualifiedAccess>]
module Policy =
    /// Sub-policies of (op, level) pairs, as Adversarial AutoAugment writes them: every op of the
    /// chosen sub-policy is applied.
    let ofPairs (subPolicies: (string * int) list list) : Policy =
        Policy([ for sub in subPolicies -> SubPolicy([ for op, level in sub -> PolicyStage(op, level, 1.0) ]) ])

    /// AutoAugment's notation: (op, probability, level).
    let ofTriples (subPolicies: (string * float * int) list list) : Policy =
        Policy([ for sub in subPolicies -> SubPolicy([ for op, p, level in sub -> PolicyStage(op, level, p) ]) ])

[<RequireQualifiedAccess>]
module Experiment =
    let private fail message = raise (DslException message)

    /// The paper's settings (Adversarial AutoAugment on CIFAR-10: M = 8, 5 sub-policies of 2 ops,
    /// batch 128, SGD 0.1 with Nesterov momentum and weight decay 5e-4, 200 epochs), on the
    /// embedded sample with the small model.
    let defaults: Experiment =
        { Name = "experiment"
          Data = EmbeddedSample
          TrainLimit = None
          TestLimit = None
          Model = "small"
          Dropout = 0.0
          Method = Adversarial
          Space = Space.paper
          Controller =
            { SubPolicies = 5
              OpsPerSubPolicy = 2
              Embedding = 32
              Hidden = 100
              LearningRate = 0.00035
              EntropyWeight = 1e-5 }
          Instances = Schedule.constant 8.0
          MagnitudeScale = Schedule.constant 1.0
          PolicyProbability = Schedule.constant 1.0
          LearningRate = None
          Momentum = 0.9
          Nesterov = true
          WeightDecay = 5e-4
          CutoutSize = 16
          Epochs = 200
          BatchSize = 128
          Seed = 0L
          Device = "auto"
          Out = None }

    /// The paper's learning rate from `initial`: for wrn-28-10 a step ×0.2 at 30%, 60% and 80% of
    /// the epochs (60/120/160 of 200); for the other models a cosine from `initial` to 0.
    let defaultLearningRate (initial: float) (e: Experiment) : Schedule =
        let epochs = float (max e.Epochs 1)
        if e.Model.Trim().ToLowerInvariant() = "wrn-28-10" then
            Schedule.step initial 0.2 [ 0.3 * epochs; 0.6 * epochs; 0.8 * epochs ]
        else
            Schedule.cosine initial 0.0 epochs

    /// The learning rate the experiment trains with.
    let learningRate (e: Experiment) =
        match e.LearningRate with
        | Some s -> s
        | None -> defaultLearningRate 0.1 e

    let private check (name: string) lo hi (e: Experiment) (s: Schedule) =
        match Schedule.validate name lo hi (float e.Epochs) s with
        | Ok() -> ()
        | Error message -> fail message

    let private checkName (name: string) =
        if String.IsNullOrWhiteSpace name || name = "." || name = ".." || name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 then
            fail (sprintf "Name = \"%s\": expected a name that can head a folder name (no '/', not empty)" name)

    /// The Core configuration; validates everything and names the first bad value.
    let toConfig (e: Experiment) : TrainConfig =
        checkName e.Name
        if e.Epochs < 1 then fail (sprintf "Epochs = %d: expected at least 1" e.Epochs)
        try
            TorchBackend.ParseDevice e.Device |> ignore
        with :? BackendException ->
            fail (sprintf "Device = \"%s\": expected auto, cpu or cuda" e.Device)
        match e.Data with
        | DataPath p when String.IsNullOrWhiteSpace p -> fail "Data = DataPath \"\": give a folder or archive, or EmbeddedSample"
        | _ -> ()
        for name, limit in [ "TrainLimit", e.TrainLimit; "TestLimit", e.TestLimit ] do
            match limit with
            | Some n when n < 1 -> fail (sprintf "%s = Some %d: expected at least 1 image" name n)
            | _ -> ()
        let lr = learningRate e
        check "LearningRate" 0.0 10.0 e lr
        check "MagnitudeScale" 0.0 10.0 e e.MagnitudeScale
        check "PolicyProbability" 0.0 1.0 e e.PolicyProbability
        check "Instances" 1.0 4096.0 e e.Instances
        let space = Space.toCore e.Space
        let policy: Policy | null =
            match e.Method with
            | FixedPolicy p ->
                // Binding the policy to the space checks every op name and level.
                try
                    PolicyAugment(p, space, "FixedPolicy") |> ignore
                with :? AugmentException as ex ->
                    fail ex.Message
                p
            | _ -> null
        let config =
            TrainConfig(
                Method = Method.name e.Method,
                Model = e.Model,
                Dropout = e.Dropout,
                Data =
                    (match e.Data with
                     | EmbeddedSample -> null
                     | DataPath p -> p),
                TrainLimit = (e.TrainLimit |> Option.map int64 |> Option.toNullable),
                TestLimit = (e.TestLimit |> Option.map int64 |> Option.toNullable),
                Epochs = e.Epochs,
                BatchSize = e.BatchSize,
                Instances = Schedule.toFunc e.Instances,
                InstancesDescription = Schedule.describe e.Instances,
                Seed = e.Seed,
                Device = e.Device,
                LearningRate = Schedule.toFunc lr,
                LearningRateDescription = Schedule.describe lr,
                Momentum = e.Momentum,
                Nesterov = e.Nesterov,
                WeightDecay = e.WeightDecay,
                Space = space,
                SubPolicies = e.Controller.SubPolicies,
                OpsPerSubPolicy = e.Controller.OpsPerSubPolicy,
                ControllerEmbedding = e.Controller.Embedding,
                ControllerHidden = e.Controller.Hidden,
                ControllerLearningRate = e.Controller.LearningRate,
                EntropyWeight = e.Controller.EntropyWeight,
                MagnitudeScale = Schedule.toFunc e.MagnitudeScale,
                MagnitudeScaleDescription = Schedule.describe e.MagnitudeScale,
                PolicyProbability = Schedule.toFunc e.PolicyProbability,
                PolicyProbabilityDescription = Schedule.describe e.PolicyProbability,
                CutoutSize = e.CutoutSize,
                RandAugmentN = (match e.Method with RandAugment(n, _) -> n | _ -> 2),
                RandAugmentM = (match e.Method with RandAugment(_, m) -> m | _ -> 9),
                TrivialAugmentWide = (match e.Method with TrivialAugment wide -> wide | _ -> true),
                Policy = policy,
                UncertaintyCandidates = (match e.Method with Uncertainty(k, _) -> k | _ -> 4),
                UncertaintyKeep = (match e.Method with Uncertainty(_, s) -> s | _ -> 1)
            )
        try
            config.Validate()
        with
        | :? ConfigException as ex -> fail ex.Message
        | :? AugmentException as ex -> fail ex.Message

    /// Checks the experiment (as `toConfig` does) and returns it unchanged.
    let validate (e: Experiment) : Experiment =
        toConfig e |> ignore
        e

    /// The experiment with command-line overrides applied.
    let withOverrides (o: Overrides) (e: Experiment) : Experiment =
        { e with
            Epochs = defaultArg o.Epochs e.Epochs
            Device = defaultArg o.Device e.Device
            Out = Option.orElse e.Out o.Out
            Seed = defaultArg o.Seed e.Seed
            Data = o.Data |> Option.map DataPath |> Option.defaultValue e.Data
            TrainLimit = Option.orElse e.TrainLimit o.TrainLimit
            TestLimit = Option.orElse e.TestLimit o.TestLimit }

    /// A readable summary of the resolved experiment (what `advaa check` prints).
    let describe (e: Experiment) : string list =
        let c = toConfig e
        let data =
            match e.Data with
            | EmbeddedSample -> "the embedded CIFAR-10 sample (2,000 training, 1,000 test images)"
            | DataPath p when File.Exists p || Directory.Exists p -> Path.GetFullPath p
            | DataPath p -> sprintf "%s (not found here)" (Path.GetFullPath p)
        let limit what = Option.map (sprintf "%s %d" what) >> Option.toList
        [ yield sprintf "name           %s" e.Name
          yield sprintf "data           %s" data
          match limit "training images" e.TrainLimit @ limit "test images" e.TestLimit with
          | [] -> ()
          | limits -> yield sprintf "subset         %s (seeded)" (String.concat ", " limits)
          yield sprintf "model          %s%s" e.Model (if e.Dropout > 0.0 then sprintf " (dropout %g)" e.Dropout else "")
          yield sprintf "method         %s: %s" c.Method Methods.All[c.Method]
          yield sprintf "epochs         %d, batch %d per instance, seed %d, device %s" e.Epochs e.BatchSize e.Seed e.Device
          yield sprintf "learning rate  %s (SGD, momentum %g%s, weight decay %g)" c.LearningRateDescription e.Momentum (if e.Nesterov then ", Nesterov" else "") e.WeightDecay
          if Methods.UsesInstances c.Method then yield sprintf "instances M    %s" c.InstancesDescription
          if Methods.SamplesPolicies c.Method then
              yield sprintf "policies       %d sub-policies × %d ops; magnitude scale %s; applied with probability %s"
                  e.Controller.SubPolicies e.Controller.OpsPerSubPolicy c.MagnitudeScaleDescription c.PolicyProbabilityDescription
          if c.Method = Methods.Adversarial then
              yield sprintf "controller     embedding %d, LSTM %d, Adam lr %g, entropy weight %g"
                  e.Controller.Embedding e.Controller.Hidden e.Controller.LearningRate e.Controller.EntropyWeight
          match e.Method with
          | FixedPolicy p ->
              yield sprintf "policy         %d sub-policies (op, probability, level):" p.SubPolicies.Count
              for sub in p.SubPolicies do
                  yield "  " + (sub.Stages |> Seq.map (fun s -> sprintf "(%s, %g, %d)" s.Op s.Probability s.Level) |> String.concat ", ")
          | RandAugment(n, m) -> yield sprintf "randaugment    n = %d, m = %d" n m
          | Uncertainty(k, s) -> yield sprintf "uncertainty    %d candidates, keep %d" k s
          | _ -> ()
          if c.Method <> Methods.Baseline then yield sprintf "cutout         %d px" e.CutoutSize
          // The other methods bring their own ops (or none).
          if Methods.SamplesPolicies c.Method || c.Method = Methods.Uncertainty || c.Method = Methods.Policy then
              yield sprintf "search space   %d ops, %d levels:" e.Space.OpNames.Length e.Space.LevelCount
              yield! Space.describe e.Space |> List.map ((+) "  ") ]

    /// Line and column (1-based) of `let <valueName>` in a script, found in its text.
    let private bindingPosition (path: string) (valueName: string) =
        let pattern = Regex(sprintf @"^\s*let\s+(?:mutable\s+)?(%s)\b" (Regex.Escape valueName))
        try
            File.ReadLines path
            |> Seq.indexed
            |> Seq.tryPick (fun (i, line) ->
                let m = pattern.Match line
                if m.Success then Some(i + 1, m.Groups[1].Index + 1) else None)
        with :? IOException | :? UnauthorizedAccessException ->
            None

    /// A script's experiments with the command-line overrides applied, validated. Each problem is
    /// reported at the script's `let experiment` (or `let experiments`) line.
    let resolveScript (path: string) (overrides: Overrides) (declared: ScriptExperiments) : Result<ScriptExperiments, ScriptError list> =
        let line, column = bindingPosition path declared.ValueName |> Option.defaultValue (0, 0)
        let error message =
            { File = path
              Line = line
              Column = column
              Severity = ScriptSeverity.Error
              Code = None
              Message = message }
        let resolved =
            match declared with
            | ScriptExperiments.Single e -> ScriptExperiments.Single(withOverrides overrides e)
            // In a list the --out folder holds all runs, each in a subfolder named after its experiment.
            | ScriptExperiments.Several es -> ScriptExperiments.Several(es |> List.map (withOverrides { overrides with Out = None }))
        let listProblems =
            match resolved with
            | ScriptExperiments.Single _ -> []
            | ScriptExperiments.Several [] -> [ error "experiments = []: give at least one experiment" ]
            | ScriptExperiments.Several es ->
                [ for name, count in es |> List.countBy (fun e -> e.Name.ToLowerInvariant()) do
                      if count > 1 then
                          error (sprintf "experiments: the name '%s' is used %d times; each run's folder is named after its experiment, so names must be unique" name count)
                  for e in es do
                      if e.Out.IsSome then
                          error (sprintf "experiment '%s': Out is set, but a list of experiments runs in one folder (--out), each in a subfolder named after it" e.Name) ]
        let problems =
            listProblems
            @ [ for e in resolved.Experiments do
                    try
                        validate e |> ignore
                    with :? DslException as ex ->
                        error (
                            match declared with
                            | ScriptExperiments.Single _ -> ex.Message
                            | ScriptExperiments.Several _ -> sprintf "experiment '%s': %s" e.Name ex.Message
                        ) ]
        if problems.IsEmpty then Ok resolved else Error problems

    /// Runs validated experiments: one in its folder (`out`, else its Out, else a new one under
    /// runs/), several in turn in subfolders of `out` (else runs/comparison-<time>) and then a
    /// comparison table; `resume` continues the run (or the group) in that folder. Returns the exit
    /// code: ok, or interrupted after Ctrl+C. Errors (bad data, run folders, devices, a diverged
    /// run) are thrown.
    let execute (session: Session) (out: string option) (resume: string option) (experiments: ScriptExperiments) : int =
        Runner.interruptible session.Display (fun cancel ->
            let session = { session with Cancel = cancel }
            match experiments with
            | ScriptExperiments.Single e ->
                let outcome = Runner.run session (Option.orElse e.Out out) resume e.Name (toConfig e)
                if outcome.Completed then ExitCode.ok else ExitCode.interrupted
            | ScriptExperiments.Several es ->
                let outcomes = Runner.runAll session out resume [ for e in es -> e.Name, toConfig e ]
                if outcomes.Length = es.Length && outcomes |> List.forall (fun o -> o.Completed) then ExitCode.ok
                else ExitCode.interrupted)

    /// `dotnet fsi`'s fsi.CommandLineArgs (the script, then its arguments), read from its settings
    /// object, which a compiled library cannot name; elsewhere the process's arguments.
    let private scriptCommandLine () : string[] =
        let settings = Type.GetType "FSharp.Compiler.Interactive.Settings, FSharp.Compiler.Interactive.Settings"
        let session =
            settings
            |> Option.ofObj
            |> Option.bind (fun t -> t.GetProperty "fsi" |> Option.ofObj)
            |> Option.bind (fun p -> p.GetValue null |> Option.ofObj)
        match session with
        | Some fsi ->
            match fsi.GetType().GetProperty "CommandLineArgs" |> Option.ofObj |> Option.map (fun p -> p.GetValue fsi) with
            | Some(:? (string[]) as args) -> args
            | _ -> Environment.GetCommandLineArgs()[1..]
        | None -> Environment.GetCommandLineArgs()[1..]

    let private report (e: exn) =
        match Runner.errorMessage e with
        | Some message ->
            eprintfn "advaa: %s" message
            ExitCode.failed
        | None -> raise (Exception("unexpected error", e))

    let private mainWith (declared: ScriptExperiments) =
        if not ScriptHost.IsHosted then
            let code =
                try
                    let parser = CommandLine.runParser "dotnet fsi"
                    let commandLine = CommandLine.ofRunArgs (parser.ParseCommandLine(scriptCommandLine (), raiseOnUsage = true))
                    match resolveScript commandLine.Script commandLine.Overrides declared with
                    | Error problems ->
                        for p in problems do
                            eprintfn "%s" (ScriptError.format p)
                        ExitCode.script
                    | Ok experiments ->
                        let session =
                            { Display = Display.Console
                              Cancel = Threading.CancellationToken.None
                              Program = [ "dotnet"; "fsi" ]
                              Arguments = commandLine.Replay
                              Report = commandLine.Report }
                        execute session commandLine.Overrides.Out commandLine.Resume experiments
                with
                | :? ArguParseException as e when e.ErrorCode = ErrorCode.HelpText ->
                    printfn "%s" e.Message
                    ExitCode.ok
                | :? ArguParseException as e ->
                    eprintfn "%s" e.Message
                    ExitCode.usage
                | e when (Runner.errorMessage e).IsSome -> report e
            if code <> ExitCode.ok then exit code

    /// The last line of an experiment script: under `dotnet fsi script.fsx [flags]` it runs the
    /// experiment with the flags of `advaa run` (--epochs, --device, --out, --resume, --seed,
    /// --data, --train-limit, --test-limit) and exits non-zero on failure; under `advaa run`,
    /// which runs the script's `experiment` itself, it does nothing.
    let main (experiment: Experiment) = mainWith (ScriptExperiments.Single experiment)

    /// `main` for a script's `experiments`: runs them in turn, then prints a comparison table.
    let mainAll (experiments: Experiment list) = mainWith (ScriptExperiments.Several experiments)
