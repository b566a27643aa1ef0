namespace AdvAA.Dsl

open System
open System.IO
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open Argu
open AdvAA.Core
open AdvAA.Core.Augment
open AdvAA.Core.Backend
open AdvAA.Core.Methods
open AdvAA.Core.Training

/// Where the images come from.
type DataSource =
    /// The CIFAR-10 sample embedded in AdvAA (2,000 training and 1,000 test images).
    | EmbeddedSample
    /// A CIFAR-10/100 binary folder, an image folder (`train/`, `test/`), or a `.tar.gz` of one.
    | DataPath of string

/// Data sources from a script's command line.
[<RequireQualifiedAccess>]
module DataSource =
    /// The data path given as the script's first argument (`fsi.CommandLineArgs`), else the one the
    /// environment variable `variable` names; without either, an error that shows how (`usage`).
    let fromArguments (arguments: string array) (variable: string) (usage: string) =
        match arguments |> Array.tryItem 1, Environment.GetEnvironmentVariable variable with
        | Some path, _ -> DataPath path
        | None, NonNull path when path <> "" -> DataPath path
        | None, _ -> raise (DslException(sprintf "give the data: %s (or set %s)" usage variable))

/// TANDA's transformation functions (its `tfs` parameter): ops of the experiment's search space at fixed levels.
[<RequireQualifiedAccess>]
module Tfs =
    /// Every op of the experiment's search space at every level (160 TFs for `Space.paper`; custom ops included).
    let all = AdvAA.Core.Search.TransformationSet.All
    /// Only these (op, level) pairs, e.g. `Tfs.only [ "Rotate", 7; "ShearX", 3 ]`.
    let only (tfs: (string * int) list) = tfs |> List.map (fun (op, level) -> sprintf "%s:%d" op level) |> String.concat ", "

/// How each batch is augmented (and, for the adversarial method, how policies are learned): a
/// method of AdvAA.Core's registry with its parameters, which Core defines, defaults and checks
/// (`advaa methods` lists them). `Method.named "randaugment" |> Method.set "n" 3`, or a helper.
[<RequireQualifiedAccess>]
module Method =
    let private guard f =
        try
            f ()
        with :? ConfigException as e ->
            raise (DslException(e.Message, Some "Method"))

    /// The method with this name (case-insensitive) and the registry's defaults.
    let named (name: string) : MethodSpec = guard (fun () -> MethodRegistry.Defaults name)

    /// The method with one parameter set: an int, a float, a bool, a text, a `Schedule` (M, a
    /// magnitude scale, a probability per epoch) or a policy (`Policy.ofPairs`); Core checks the
    /// name now and the value when the experiment is validated.
    let set (parameter: string) (value: 'T) (m: MethodSpec) : MethodSpec =
        let value: objnull =
            match box value with
            | :? Schedule as s -> Schedule.toCore s
            | v -> v
        guard (fun () -> m.With(parameter, value))

    /// The method with one parameter parsed from text, as `--param name=value` gives it ("n", "3"; "randaugment.n" too).
    let setText (parameter: string) (text: string) (m: MethodSpec) : MethodSpec = guard (fun () -> m.WithText(parameter, text))

    /// The registry name of a method (as the CLI and config.json write it).
    let name (m: MethodSpec) = m.Name

    /// Standard augmentation only: random crop of the 4-pixel padded image + horizontal flip.
    let baseline = named "baseline"
    /// Standard augmentation + Cutout 16.
    let cutout = named "cutout"
    /// AutoAugment's published CIFAR-10 policy, then standard augmentation + Cutout.
    let autoAugment = named "autoaugment"
    /// RandAugment: `n` ops per image, all at level `m` (of 31).
    let randAugment (n: int) (m: int) = named "randaugment" |> set "n" n |> set "m" m
    /// TrivialAugment, with its wide ranges (true) or the paper's.
    let trivialAugment (wide: bool) = named "trivialaugment" |> set "wide" wide
    /// A given policy: one every copy draws from (`Policy.ofPairs`, `Policy.ofTriples`), or one per
    /// instance (`Policy.ofFile` of what `advaa policy export` writes).
    let policy (document: PolicyDocument) = named "policy" |> set "policy" document
    /// M copies of each batch with standard augmentation only, no Cutout (the paper's "Fixed").
    let fixedCopies = named "fixed"
    /// M copies, each augmented by a random policy drawn every epoch (the paper's "Random").
    let random = named "random"
    /// Adversarial AutoAugment: M policies from the LSTM controller, which learns to raise the loss.
    let adversarial = named "adversarial"
    /// Uncertainty-based sampling: K random candidates per image, S of them kept in proportion to their loss.
    let uncertainty (candidates: int) (keep: int) = named "uncertainty" |> set "candidates" candidates |> set "keep" keep
    /// The policies another run learned, replayed epoch by epoch (the paper's §4.6): its folder.
    let transfer (run: string) = named "transfer" |> set "from" (IO.Path.GetFullPath run)
    /// TANDA (Ratner et al. 2017): an LSTM generator of TF sequences trained against a
    /// discriminator (stage 1), then M copies transformed by its sequences; `set "generator"`,
    /// `"length"`, `"tfs"` (`Tfs.only`), `"tan_epochs"`, `"from"` change it.
    let tanda = named "tanda"
    /// Group DRO over the data's (class, subgroup) groups (Sagawa et al. 2019), or class-conditional (CAMEL's SGDRO).
    let groupDro (classConditional: bool) = named (if classConditional then "sgdro" else "gdro")
    /// CAMEL model patching (Goel et al. 2020) with translations learned by a CycleGAN per class.
    let camel = named "camel"
    /// CAMEL with the data's exact counterparts as translations (no stage 1).
    let camelOracle = named "camel-oracle"
    /// M, the augmented copies of each batch, per epoch (any copy method).
    let instances (m: Schedule) (spec: MethodSpec) = set "instances" m spec

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
        /// Hold out this many training images for validation (class-balanced, never trained on); None: none.
        ValidationSize: int option
        /// S: the side of the crops of data whose images vary in size or exceed 64x64 (RandomResizedCrop
        /// in training, the centre crop in evaluation); None: the model's (224 for the ImageNet networks, else 32).
        ImageSize: int option
        /// Threads decoding such data's batches; None: one per core (the batches do not depend on it).
        Workers: int option
        /// Leave bad images of streamed data out of their batches, listed in the run folder (skipped-images.jsonl), rather than stop.
        SkipBadImages: bool
        /// Evaluate (test, validation) every this many epochs, and after the last one.
        EvalEvery: int
        /// small, resnet18, wrn-28-10, wrn-40-2 or any wrn-<depth>-<widen>.
        Model: string
        /// In-block dropout of WideResNets.
        Dropout: float
        /// A PyTorch state dict (.pt, e.g. from `advaa export`) of the same network to start from; None: a fresh initialisation.
        Init: string option
        /// Batch-norm layers keep their running statistics (fine-tuning from Init; data-parallel runs that equal one process).
        FrozenBatchNorm: bool
        /// The method and its parameters (`Method.adversarial`, `Method.named "randaugment" |> Method.set "n" 3`).
        Method: MethodSpec
        /// The ops, ranges and levels that policies are made of (adversarial, random, uncertainty, policy).
        Space: Space
        /// None: the paper's, from 0.1 (step ×0.2 at 30/60/80% of the epochs for wrn-28-10, cosine to 0 otherwise).
        LearningRate: Schedule option
        Momentum: float
        Nesterov: bool
        WeightDecay: float
        /// Label mixing after the method, on the normalised inputs: `Some(Mix.mixup 1.0)`, `Mix.cutmix`.
        Mix: LabelMixing option
        Epochs: int
        /// N: images per instance per step (the batch before the M copies).
        BatchSize: int
        Seed: int64
        /// auto, cpu or cuda.
        Device: string
        /// auto (bf16 where the device does it fast, else fp32), fp32 or bf16 (autocast; weights stay fp32).
        Precision: string
        /// The input batches' layout: channels-last (faster convolutions) or nchw.
        MemoryFormat: string
        /// The run folder (must not exist or be empty); None: runs/<name>-<yyyyMMdd-HHmmss>.
        Out: string option
    }

/// A study: every arm (an experiment, named) once per seed, each run in its own folder of the
/// study's folder (`<arm>-s<seed>`), then a summary over the seeds: summary.md, summary.json, the
/// test curves and the controller's movement. A rerun with --resume skips finished runs and
/// continues an interrupted one.
[<NoEquality; NoComparison>]
type Study =
    { Name: string
      Arms: Experiment list
      Seeds: int64 list }

    /// The runs, seed by seed (every arm's first seed first, so an early stop still compares them all):
    /// each arm with the seed set and named `<arm>-s<seed>`.
    member s.Runs = [ for seed in s.Seeds do for arm in s.Arms -> { arm with Name = sprintf "%s-s%d" arm.Name seed; Seed = seed } ]

/// A runnable demonstration (examples/theory): code that prints its numbers on the writer and
/// writes its plots into the folder it is given (`--out`, else runs/<name>).
[<NoEquality; NoComparison>]
type Demo =
    { Name: string
      Run: TextWriter -> string -> unit }

/// What a script declares: `let experiment = ...`, `let experiments = [ ... ]` to run several in
/// turn and compare them, `let study = ...` (arms x seeds, summarised), or `let demo = ...`.
[<RequireQualifiedAccess; NoEquality; NoComparison>]
type ScriptExperiments =
    | Single of Experiment
    | Several of Experiment list
    | Grid of Study
    | Show of Demo

    member d.Experiments =
        match d with
        | Single e -> [ e ]
        | Several es -> es
        | Grid s -> s.Runs
        | Show _ -> []

    /// The script value that declares them.
    member d.ValueName =
        match d with
        | Single _ -> "experiment"
        | Several _ -> "experiments"
        | Grid _ -> "study"
        | Show _ -> "demo"

/// Label mixing after any method (the experiment's `Mix`).
[<RequireQualifiedAccess>]
module Mix =
    let private checkedMix (mix: LabelMixing) =
        try mix.Checked() with :? AugmentException as e -> raise (DslException e.Message)

    /// mixup (Zhang et al. 2018), lambda ~ Beta(alpha, alpha).
    let mixup (alpha: float) : LabelMixing = checkedMix (Mixup alpha)

    /// CutMix (Yun et al. 2019), lambda ~ Beta(alpha, alpha).
    let cutmix (alpha: float) : LabelMixing = checkedMix (CutMix alpha)

/// Policies written literally, as the papers print them, or read from a file.
[<RequireQualifiedAccess>]
module Policy =
    /// Sub-policies of (op, level) pairs, as Adversarial AutoAugment writes them: every op of the
    /// chosen sub-policy is applied.
    let ofPairs (subPolicies: (string * int) list list) : PolicyDocument =
        PolicyDocument.Single(Policy([ for sub in subPolicies -> SubPolicy([ for op, level in sub -> PolicyStage(op, level, 1.0) ]) ]))

    /// AutoAugment's notation: (op, probability, level).
    let ofTriples (subPolicies: (string * float * int) list list) : PolicyDocument =
        PolicyDocument.Single(Policy([ for sub in subPolicies -> SubPolicy([ for op, p, level in sub -> PolicyStage(op, level, p) ]) ]))

    /// A policy file (advaa-policy JSON): one policy, or one per instance as `advaa policy export` writes.
    let ofFile (path: string) : PolicyDocument =
        try
            PolicyJson.ReadDocument path
        with :? AugmentException as e ->
            raise (DslException e.Message)

[<RequireQualifiedAccess>]
module Experiment =
    /// Core's defaults, the one place they are set.
    let private core = TrainConfig()

    /// The paper's settings (Adversarial AutoAugment on CIFAR-10: M = 8, 5 sub-policies of 2 ops,
    /// batch 128, SGD 0.1 with Nesterov momentum and weight decay 5e-4, 200 epochs), on the
    /// embedded sample with the small model: AdvAA.Core's defaults.
    let defaults: Experiment =
        { Name = "experiment"
          Data = EmbeddedSample
          TrainLimit = None
          TestLimit = None
          ValidationSize = None
          ImageSize = None
          Workers = None
          SkipBadImages = core.SkipBadImages
          EvalEvery = core.EvalEvery
          Model = core.Model
          Dropout = core.Dropout
          Init = None
          FrozenBatchNorm = core.FrozenBatchNorm
          Method = core.Method
          Space = Space.paper
          LearningRate = None
          Momentum = core.Momentum
          Nesterov = core.Nesterov
          WeightDecay = core.WeightDecay
          Mix = None
          Epochs = core.Epochs
          BatchSize = core.BatchSize
          Seed = core.Seed
          Device = core.Device
          Precision = core.Precision
          MemoryFormat = core.MemoryFormat
          Out = None }

    /// The paper's learning rate from `initial` for the experiment's model and epochs (AdvAA.Core's):
    /// for wrn-28-10 a step ×0.2 at 30%, 60% and 80% of the epochs, for the other models a cosine to 0.
    let paperLearningRate (initial: float) (e: Experiment) : Schedule =
        Schedule.ofCore (TrainConfig.PaperLearningRate(e.Model, e.Epochs, initial))

    let private checkName (name: string) =
        if String.IsNullOrWhiteSpace name || name = "." || name = ".." || name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 then
            raise (DslException(sprintf "Name = \"%s\": expected a name that can head a folder name (no '/', not empty)" name, Some "Name"))

    /// The field of the experiment that set a Core setting (`ConfigException.Setting`: "epochs",
    /// "method.n"): `Method` for the method's parameters, else the field of the same name
    /// ("batch_size" is `BatchSize`, "search_space" `Space`).
    let fieldOfSetting (setting: string | null) : string option =
        match setting with
        | null
        | "" -> None
        | s when s = "method" || s.StartsWith("method.", StringComparison.Ordinal) -> Some "Method"
        | "search_space" -> Some "Space"
        | s -> Some(s.Split('_') |> Array.map (fun w -> if w = "" then w else string (Char.ToUpperInvariant w[0]) + w.Substring 1) |> String.concat "")

    /// A Core error as the DSL's, with the field that set the setting at fault.
    let private fromCore (ex: ConfigException) = DslException(ex.Message, fieldOfSetting ex.Setting)

    /// The Core configuration; validates everything and names the first bad value.
    let toConfig (e: Experiment) : TrainConfig =
        checkName e.Name
        let config =
            TrainConfig(
                Method = e.Method,
                Model = e.Model,
                Dropout = e.Dropout,
                Init = (e.Init |> Option.map Path.GetFullPath |> Option.toObj),
                FrozenBatchNorm = e.FrozenBatchNorm,
                Data =
                    (match e.Data with
                     | EmbeddedSample -> null
                     | DataPath p when String.IsNullOrWhiteSpace p -> p
                     | DataPath p -> Path.GetFullPath p),
                TrainLimit = (e.TrainLimit |> Option.map int64 |> Option.toNullable),
                TestLimit = (e.TestLimit |> Option.map int64 |> Option.toNullable),
                ValidationSize = (e.ValidationSize |> Option.map int64 |> Option.toNullable),
                ImageSize = Option.toNullable e.ImageSize,
                Workers = Option.toNullable e.Workers,
                SkipBadImages = e.SkipBadImages,
                EvalEvery = e.EvalEvery,
                Epochs = e.Epochs,
                BatchSize = e.BatchSize,
                Seed = e.Seed,
                Device = e.Device,
                Precision = e.Precision,
                MemoryFormat = e.MemoryFormat,
                Mix = Option.toObj e.Mix,
                LearningRate = (e.LearningRate |> Option.map Schedule.toCore |> Option.toObj),
                Momentum = e.Momentum,
                Nesterov = e.Nesterov,
                WeightDecay = e.WeightDecay,
                Space = Space.toCore e.Space
            )
        try
            config.Validate()
        with :? ConfigException as ex ->
            raise (fromCore ex)

    /// Checks the experiment (as `toConfig` does) and returns it unchanged.
    let validate (e: Experiment) : Experiment =
        toConfig e |> ignore
        e

    /// The experiment with command-line overrides applied.
    let withOverrides (o: Overrides) (e: Experiment) : Experiment =
        { e with
            Epochs = defaultArg o.Epochs e.Epochs
            BatchSize = defaultArg o.BatchSize e.BatchSize
            Device = defaultArg o.Device e.Device
            Precision = defaultArg o.Precision e.Precision
            Mix = Option.orElse e.Mix o.Mix
            Out = Option.orElse e.Out o.Out
            Seed = defaultArg o.Seed e.Seed
            Data = o.Data |> Option.map DataPath |> Option.defaultValue e.Data
            TrainLimit = Option.orElse e.TrainLimit o.TrainLimit
            TestLimit = Option.orElse e.TestLimit o.TestLimit
            Init = Option.orElse e.Init o.Init
            ImageSize = Option.orElse e.ImageSize o.ImageSize
            Workers = Option.orElse e.Workers o.Workers
            SkipBadImages = e.SkipBadImages || o.SkipBadImages
            Method = o.Parameters |> List.fold (fun m (name, value) -> Method.setText name value m) e.Method }

    /// A readable summary of the resolved experiment (what `advaa check` prints).
    let describe (e: Experiment) : string list =
        let c = toConfig e
        let data =
            match e.Data with
            | EmbeddedSample -> "the embedded CIFAR-10 sample (2,000 training, 1,000 test images)"
            | DataPath p when File.Exists p || Directory.Exists p -> Path.GetFullPath p
            | DataPath p -> sprintf "%s (not found here)" (Path.GetFullPath p)
        let limit what = Option.map (sprintf "%s %d" what) >> Option.toList
        let limits = limit "training images" e.TrainLimit @ limit "test images" e.TestLimit @ limit "validation images" e.ValidationSize
        let spec = c.Method
        [ yield sprintf "name           %s" e.Name
          yield sprintf "data           %s" data
          match limits with
          | [] -> ()
          | limits -> yield sprintf "subset         %s (seeded, class-balanced)" (String.concat ", " limits)
          if e.EvalEvery > 1 then yield sprintf "evaluation     every %d epochs and after the last" e.EvalEvery
          match e.ImageSize with
          | Some side -> yield sprintf "image size     %dx%d crops of data of varying or large images" side side
          | None -> ()
          yield sprintf "model          %s%s%s" e.Model (if e.Dropout > 0.0 then sprintf " (dropout %g)" e.Dropout else "") (if e.FrozenBatchNorm then ", batch norm frozen" else "")
          match e.Init with
          | Some init -> yield sprintf "initial        the weights in %s" (Path.GetFullPath init)
          | None -> ()
          yield sprintf "method         %s: %s" spec.Name (MethodRegistry.Get spec.Name).Description
          yield sprintf "parameters     %s" spec.Summary
          yield sprintf "epochs         %d, batch %d per instance, seed %d, device %s, precision %s, %s" e.Epochs e.BatchSize e.Seed e.Device e.Precision e.MemoryFormat
          yield sprintf "learning rate  %s (SGD, momentum %g%s, weight decay %g)" (nonNull c.LearningRate).Description e.Momentum (if e.Nesterov then ", Nesterov" else "") e.WeightDecay
          match e.Mix with
          | Some mix -> yield sprintf "label mixing   %s: pairs within each copy, lambda ~ Beta(%g, %g)" mix.Name mix.Alpha mix.Alpha
          | None -> ()
          match spec with
          | :? PolicySpec as policySpec when not (isNull policySpec.Policy) ->
              let p = nonNull policySpec.Policy
              for i, policy in List.indexed (List.ofSeq p.Policies) do
                  yield sprintf "policy%s %d sub-policies (op, probability, level):" (if p.PerInstance then sprintf " %-7d" (i + 1) else "        ") policy.SubPolicies.Count
                  for sub in policy.SubPolicies do
                      yield "  " + (sub.Stages |> Seq.map (fun s -> sprintf "(%s, %g, %d)" s.Op s.Probability s.Level) |> String.concat ", ")
          | _ -> ()
          // The other methods bring their own ops (or none).
          if spec.UsesSearchSpace then
              // Pixel ranges (translate, cutout) as the method applies them: sized to the crops where S is set.
              let sized, what =
                  match e.ImageSize with
                  | Some side -> Space.sizedTo side e.Space, sprintf ", pixel ranges for %dx%d" side side
                  | None -> e.Space, ""
              yield sprintf "search space   %d ops, %d levels%s:" e.Space.OpNames.Length e.Space.LevelCount what
              yield! Space.describe sized |> List.map ((+) "  ") ]

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

    /// Line and column (1-based) of the first `field =` in the script at or after line `from`
    /// (after the line naming `experiment`, when given and found).
    let private fieldPosition (path: string) (from: int) (experiment: string option) (field: string) =
        let assignment = Regex(sprintf @"\b(%s)\s*=(?!=)" (Regex.Escape field))
        try
            let lines = File.ReadAllLines path
            let start =
                experiment
                |> Option.bind (fun name ->
                    seq { max 0 (from - 1) .. lines.Length - 1 } |> Seq.tryFind (fun i -> lines[i].Contains(sprintf "\"%s\"" name)))
                |> Option.defaultValue (max 0 (from - 1))
            seq { start .. lines.Length - 1 }
            |> Seq.tryPick (fun i ->
                let m = assignment.Match lines[i]
                if m.Success && not (lines[i].TrimStart().StartsWith("//", StringComparison.Ordinal)) then Some(i + 1, m.Groups[1].Index + 1) else None)
        with :? IOException | :? UnauthorizedAccessException ->
            None

    /// A script's experiments with the command-line overrides applied, validated. A problem with
    /// one field is reported at the line that sets it; others at the script's `let experiment`
    /// (or `let experiments`) line.
    let resolveScript (path: string) (overrides: Overrides) (declared: ScriptExperiments) : Result<ScriptExperiments, ScriptError list> =
        let line, column = bindingPosition path declared.ValueName |> Option.defaultValue (0, 0)
        let errorAt (experiment: string option) (field: string option) message =
            let line, column =
                field
                |> Option.bind (fieldPosition path line experiment)
                |> Option.defaultValue (line, column)
            { File = path
              Line = line
              Column = column
              Severity = ScriptSeverity.Error
              Code = None
              Message = message }
        let error message = errorAt None None message
        let resolved =
            match declared with
            | ScriptExperiments.Single e -> ScriptExperiments.Single(withOverrides overrides e)
            // In a list the --out folder holds all runs, each in a subfolder named after its experiment.
            | ScriptExperiments.Several es -> ScriptExperiments.Several(es |> List.map (withOverrides { overrides with Out = None }))
            | ScriptExperiments.Grid s -> ScriptExperiments.Grid { s with Arms = s.Arms |> List.map (withOverrides { overrides with Out = None; Seed = None }) }
            | ScriptExperiments.Show _ -> declared
        let listProblems =
            match resolved with
            | ScriptExperiments.Single _
            | ScriptExperiments.Show _ -> []
            | ScriptExperiments.Several [] -> [ error "experiments = []: give at least one experiment" ]
            | ScriptExperiments.Grid s when s.Arms.IsEmpty || s.Seeds.IsEmpty -> [ error (sprintf "study '%s': give at least one arm and one seed" s.Name) ]
            | ScriptExperiments.Grid s when (List.distinct s.Seeds).Length < s.Seeds.Length -> [ error (sprintf "study '%s': a seed is listed twice: %A" s.Name s.Seeds) ]
            | ScriptExperiments.Several es
            | ScriptExperiments.Grid { Arms = es } ->
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
                        let single = match declared with ScriptExperiments.Single _ -> true | _ -> false
                        errorAt (if single then None else Some e.Name) ex.Field (
                            match declared with
                            | ScriptExperiments.Single _ -> ex.Message
                            | ScriptExperiments.Several _ -> sprintf "experiment '%s': %s" e.Name ex.Message
                            | ScriptExperiments.Grid s -> sprintf "study '%s', arm '%s': %s" s.Name e.Name ex.Message
                            | ScriptExperiments.Show d -> sprintf "demo '%s': %s" d.Name ex.Message
                        ) ]
        if problems.IsEmpty then Ok resolved else Error problems

    /// The grid a study folder was started with (study.json: every run's experiment as config.json
    /// writes it). On a resume a removed run, or a run whose identity changed (its method, model,
    /// seed, batch, subsets, ... — what a run folder's resume also refuses), is an error naming the
    /// first difference; other settings may change (each run records its amendments) and new runs
    /// (arms, seeds) are added. The first time, it is recorded.
    let private checkStudyFolder (folder: string) (study: Study) (runs: (string * TrainConfig) list) =
        let current = JsonObject()
        current["format"] <- JsonValue.Create "advaa-study"
        current["format_version"] <- JsonValue.Create 2
        current["name"] <- JsonValue.Create study.Name
        let entries = JsonObject()
        for name, config in runs do
            entries[name] <- config.ToJson()
        current["runs"] <- entries
        let path = Path.Combine(folder, "study.json")
        if File.Exists path then
            let recorded =
                try
                    match JsonNode.Parse(File.ReadAllText path) with
                    | :? JsonObject as o -> o
                    | _ -> raise (RunFolderException(sprintf "%s: expected a JSON object" path))
                with :? Text.Json.JsonException as e -> raise (RunFolderException(sprintf "%s: malformed JSON: %s" path e.Message))
            let recordedRuns =
                match recorded["runs"] with
                | :? JsonObject as r -> [ for kv in r -> kv.Key, kv.Value ]
                | _ -> []
            let configs = dict runs
            // Study folders before format 2 recorded a few settings by hand; they are compared as they were.
            let version =
                match recorded["format_version"] with
                | :? JsonValue as v ->
                    try
                        v.GetValue<int>()
                    with :? InvalidOperationException | :? FormatException ->
                        raise (RunFolderException(sprintf "%s: format_version is %s: expected a number" path (v.ToJsonString())))
                | _ -> 1
            let clone (node: JsonNode | null) : JsonNode | null =
                match node with
                | null -> null
                | n -> n.DeepClone()
            let kept (name: string) (entry: JsonNode | null) : (JsonNode | null) * (JsonNode | null) =
                match configs.TryGetValue name, entry with
                | (false, _), _ -> entry, null
                | (true, config), (:? JsonObject as old) when version = 1 ->
                    let now = config.ToJson()
                    if isNull now["data"] then now["data"] <- JsonValue.Create "(embedded sample)"
                    let projected = JsonObject()
                    for kv in old do
                        let value: JsonNode | null = if kv.Key = "method" then config.Method.Identity() else clone now[kv.Key]
                        projected[kv.Key] <- value
                    old, projected
                | (true, config), (:? JsonObject as old) ->
                    TrainConfig.FromJson(old, sprintf "%s: runs.%s" path name).Identity(), config.Identity()
                | (true, _), other -> other, null
            let before, now = JsonObject(), JsonObject()
            for name, entry in recordedRuns do
                let b, n = kept name entry
                before[name] <- clone b
                now[name] <- clone n
            match JsonDifferences.First(before, now) with
            | null -> AtomicFile.Write(path, current.ToJsonString(JsonOptions.Indented) + "\n")
            | difference ->
                raise (RunFolderException(sprintf "study folder %s holds another grid: runs.%s. Resume it with the study it was started with (arms and seeds may be added), or start a new one with another --out" folder difference))
        else
            AtomicFile.Write(path, current.ToJsonString(JsonOptions.Indented) + "\n")

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
                let outcomes = Runner.runAll session out resume "comparison" ignore ignore [ for e in es -> e.Name, toConfig e ]
                if outcomes.Length = es.Length && outcomes |> List.forall (fun o -> o.Completed) then ExitCode.ok
                else ExitCode.interrupted
            | ScriptExperiments.Show demo ->
                let folder = Path.GetFullPath(defaultArg out (Path.Combine("runs", demo.Name)))
                demo.Run session.Display.Out folder
                session.Display.Out.WriteLine(sprintf "folder   %s" folder)
                ExitCode.ok
            | ScriptExperiments.Grid s ->
                let runs = [ for e in s.Runs -> e.Name, toConfig e ]
                let mutable group = ""
                let prepare folder =
                    group <- folder
                    checkStudyFolder folder s runs
                let summarize (finished: string list) =
                    let summary = StudyReport.write group s.Name [ for a in s.Arms -> a.Name ] s.Seeds (Set.ofList finished)
                    session.Display.Out.WriteLine(sprintf "summary  %s (%d of %d runs)" summary finished.Length runs.Length)
                let outcomes = Runner.runAll session out resume s.Name prepare summarize runs
                if outcomes.Length = runs.Length && outcomes |> List.forall (fun o -> o.Completed) then ExitCode.ok
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
                              Report = commandLine.Report
                              Ranks = None }
                        Runner.asRanks commandLine.Distributed session (fun session -> execute session commandLine.Overrides.Out commandLine.Resume experiments)
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

    /// `main` for a script's `study`: runs every arm with every seed, then writes the summary.
    let mainStudy (study: Study) = mainWith (ScriptExperiments.Grid study)

    /// `main` for a script's `demo`: runs it, its plots into --out (else runs/<name>).
    let mainDemo (demo: Demo) = mainWith (ScriptExperiments.Show demo)
