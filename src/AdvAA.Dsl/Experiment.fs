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

/// TANDA's transformation functions: ops of the experiment's search space at fixed levels.
type Tfs =
    /// Every op of the search space at every level (160 TFs for `Space.paper`; custom ops included).
    | AllTfs
    /// These (op, level) pairs.
    | OnlyTfs of (string * int) list

/// TANDA's TF sets.
[<RequireQualifiedAccess>]
module Tfs =
    /// Every op of the experiment's search space at every level.
    let all = AllTfs
    /// Only these (op, level) pairs, e.g. `Tfs.only [ "Rotate", 7; "ShearX", 3 ]`.
    let only (tfs: (string * int) list) = OnlyTfs tfs
    /// The text Core reads ("all" or "Rotate:7, ShearX:3").
    let text (tfs: Tfs) =
        match tfs with
        | AllTfs -> AdvAA.Core.Search.TransformationSet.All
        | OnlyTfs pairs -> pairs |> List.map (fun (op, level) -> sprintf "%s:%d" op level) |> String.concat ", "

/// TANDA's generator of TF sequences.
type TandaGenerator =
    /// An LSTM feeding back its previous TF (TANDA's best on CIFAR-10).
    | Lstm
    /// An independent categorical per position.
    | MeanField
    /// Uniform random sequences, no stage 1 (TANDA's comparison).
    | RandomSequences

/// TANDA: stage 1 trains the generator against a discriminator, stage 2 the target on its sequences.
/// `advaa methods tanda` lists the other parameters (set them with `Parameters`).
type Tanda =
    { Generator: TandaGenerator
      /// TFs per sequence.
      Length: int
      Tfs: Tfs
      /// Stage 1's passes over the training images.
      TanEpochs: int
      /// A TANDA run whose trained generator to reuse (stage 1 is skipped).
      From: string option }

/// Where CAMEL's translations of an image into its class's subgroups come from.
type Translations =
    /// Stage 1: a CycleGAN per class between its two subgroups (in RUN/stage1).
    | Learned
    /// The data's exact counterparts (the spurious benchmark's patch added or removed): separates stage 1's quality from stage 2's.
    | Oracle

/// CAMEL model patching (Goel et al. 2020): subgroup consistency over an image's translations into
/// its class's subgroups + class-conditional group DRO. `advaa methods camel` lists the stage-1
/// parameters (set them with `Parameters`).
type Camel =
    { Translations: Translations
      /// λ, the weight of the subgroup consistency loss.
      Consistency: float
      /// Epochs over which λ ramps up linearly from 0.
      ConsistencyWarmup: float
      /// η, the step size of the group weights' exponentiated-gradient update.
      DroStep: float
      /// C of the generalisation adjustment C/√n_g in the group weights' update.
      DroAdjustment: float
      /// Stage 1's passes over each class's larger subgroup.
      GanEpochs: int }

/// How each batch is augmented (and, for the adversarial method, how policies are learned). Each
/// case is one method of AdvAA.Core's registry (`advaa methods`); its defaults come from there.
[<NoEquality; NoComparison>]
type Method =
    /// Standard augmentation only: random crop of the 4-pixel padded image + horizontal flip.
    | Baseline
    /// Standard augmentation + Cutout 16.
    | Cutout
    /// AutoAugment's published CIFAR-10 policy, then standard augmentation + Cutout.
    | AutoAugment
    /// RandAugment: `n` ops per image, all at level `m` (of 31).
    | RandAugment of n: int * m: int
    /// TrivialAugment, with its wide ranges or the paper's.
    | TrivialAugment of wide: bool
    /// A given policy: one every copy draws from (`Policy.ofPairs`, `Policy.ofTriples`), or one per
    /// instance (`Policy.ofFile` of what `advaa policy export` writes).
    | FixedPolicy of PolicyDocument
    /// M copies of each batch with standard augmentation only, no Cutout (the paper's "Fixed").
    | Fixed
    /// M copies, each augmented by a random policy drawn every epoch (the paper's "Random").
    | Random
    /// Adversarial AutoAugment: M policies from the LSTM controller, which learns to raise the loss.
    | Adversarial
    /// Uncertainty-based sampling: K random candidates per image, S of them kept in proportion to their loss.
    | Uncertainty of candidates: int * keep: int
    /// The policies another run learned, replayed epoch by epoch (the paper's §4.6): its folder.
    | Transfer of run: string
    /// TANDA (Ratner et al. 2017): a learned generator of TF sequences (`Tanda.defaults` and change what you need).
    | TandaMethod of Tanda
    /// Group DRO over the data's (class, subgroup) groups (Sagawa et al. 2019), or class-conditional (CAMEL's SGDRO).
    | GroupDro of classConditional: bool
    /// CAMEL model patching (`Camel.defaults`, `Camel.oracle`, and change what you need).
    | Camel of Camel
    /// Any method of the registry by name with its defaults (e.g. one added in C# that has no case
    /// here yet); `Parameters` and the experiment's fields set its parameters.
    | Named of method: string

/// The policy controller's shape and training (random uses the shape; defaults from AdvAA.Core).
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
        /// Hold out this many training images for validation (class-balanced, never trained on); None: none.
        ValidationSize: int option
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
        Method: Method
        /// The ops, ranges and levels that policies are made of (adversarial, random, uncertainty, FixedPolicy).
        Space: Space
        Controller: Controller
        /// M, the augmented copies of each batch, per epoch; None: the method's default (8 for fixed,
        /// random and adversarial, 1 for the others). Any copy method takes it.
        Instances: Schedule option
        /// Multiplies every sampled level (rounded down, clamped to the levels), e.g. to ramp magnitudes up.
        MagnitudeScale: Schedule
        /// Probability that a sample's policy is applied at all (standard augmentation always is).
        PolicyProbability: Schedule
        /// None: the paper's, from 0.1 (step ×0.2 at 30/60/80% of the epochs for wrn-28-10, cosine to 0 otherwise).
        LearningRate: Schedule option
        Momentum: float
        Nesterov: bool
        WeightDecay: float
        /// Label mixing after the method, on the normalised inputs: `Some(Mix.mixup 1.0)`, `Mix.cutmix`.
        Mix: LabelMixing option
        /// Side of the Cutout square in pixels after the method's augmentation (0: none); None: the
        /// method's default (16 where its paper uses Cutout, 0 for baseline and fixed).
        CutoutSize: int option
        /// Any method parameter by name, as `--param name=value` sets it (`advaa methods` lists them).
        Parameters: (string * string) list
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

/// The methods of AdvAA.Core's registry as `Method` cases.
[<RequireQualifiedAccess>]
module Method =
    let private fail message = raise (DslException message)

    let private defaults<'Spec when 'Spec :> MethodSpec> (name: string) = MethodRegistry.Defaults name :?> 'Spec

    /// The registry name of a method (as the CLI and config.json write it).
    let name (m: Method) =
        match m with
        | Baseline -> "baseline"
        | Cutout -> "cutout"
        | AutoAugment -> "autoaugment"
        | RandAugment _ -> "randaugment"
        | TrivialAugment _ -> "trivialaugment"
        | FixedPolicy _ -> "policy"
        | Fixed -> "fixed"
        | Random -> "random"
        | Adversarial -> "adversarial"
        | Uncertainty _ -> "uncertainty"
        | Transfer _ -> "transfer"
        | TandaMethod _ -> "tanda"
        | GroupDro classConditional -> if classConditional then "sgdro" else "gdro"
        | Camel c ->
            match c.Translations with
            | Learned -> "camel"
            | Oracle -> "camel-oracle"
        | Named n -> (MethodRegistry.Get n).Name

    /// TANDA with the registry's defaults.
    let tandaDefaults: Tanda =
        let s = defaults<TandaSpec> "tanda"
        { Generator =
            (match s.Generator with
             | "mean-field" -> MeanField
             | "random" -> RandomSequences
             | _ -> Lstm)
          Length = s.Length
          Tfs = AllTfs
          TanEpochs = s.TanEpochs
          From = Option.ofObj s.From }

    /// CAMEL with learned translations and the registry's defaults.
    let camelDefaults: Camel =
        let s = defaults<PatchingSpec> "camel"
        { Translations = Learned
          Consistency = s.Consistency
          ConsistencyWarmup = s.ConsistencyWarmup
          DroStep = s.DroStep
          DroAdjustment = s.DroAdjustment
          GanEpochs = s.GanEpochs }

    /// The method with this name (case-insensitive) and its default parameters.
    let ofName (text: string) : Method =
        let entry =
            try
                MethodRegistry.Get text
            with :? ConfigException as e ->
                fail e.Message
        match entry.Name with
        | "baseline" -> Baseline
        | "cutout" -> Cutout
        | "autoaugment" -> AutoAugment
        | "randaugment" ->
            let s = defaults<RandAugmentSpec> entry.Name
            RandAugment(s.N, s.M)
        | "trivialaugment" -> TrivialAugment (defaults<TrivialAugmentSpec> entry.Name).Wide
        | "fixed" -> Fixed
        | "random" -> Random
        | "adversarial" -> Adversarial
        | "uncertainty" ->
            let s = defaults<UncertaintySpec> entry.Name
            Uncertainty(s.Candidates, s.Keep)
        | "policy" -> fail "method 'policy' needs a policy: FixedPolicy (Policy.ofPairs [...]) in a script, or --policy FILE"
        | "transfer" -> fail "method 'transfer' needs a run to replay: Transfer \"runs/<run>\" in a script, or --from RUN"
        | "tanda" -> TandaMethod tandaDefaults
        | "gdro" -> GroupDro false
        | "sgdro" -> GroupDro true
        | "camel" -> Camel camelDefaults
        | "camel-oracle" -> Camel { camelDefaults with Translations = Oracle }
        | other -> Named other

    /// The Core spec of the case: the registry's defaults with the case's own values.
    let spec (m: Method) : MethodSpec =
        let d =
            try
                MethodRegistry.Defaults(name m)
            with :? ConfigException as e ->
                fail e.Message
        match m with
        | RandAugment(n, mm) -> d.With("n", n).With("m", mm)
        | TrivialAugment wide -> d.With("wide", wide)
        | FixedPolicy p -> d.With("policy", p)
        | Uncertainty(k, s) -> d.With("candidates", k).With("keep", s)
        | Transfer run -> d.With("from", IO.Path.GetFullPath run)
        | TandaMethod t ->
            let generator =
                match t.Generator with
                | Lstm -> "lstm"
                | MeanField -> "mean-field"
                | RandomSequences -> "random"
            let d = d.With("generator", generator).With("length", t.Length).With("tfs", Tfs.text t.Tfs).With("tan_epochs", t.TanEpochs)
            match t.From with
            | Some run -> d.With("from", IO.Path.GetFullPath run)
            | None -> d
        | Camel c ->
            d.With("consistency", c.Consistency).With("consistency_warmup", c.ConsistencyWarmup)
                .With("dro_step", c.DroStep).With("dro_adjustment", c.DroAdjustment).With("gan_epochs", c.GanEpochs)
        | _ -> d

/// TANDA's settings.
[<RequireQualifiedAccess>]
module Tanda =
    /// An LSTM generator of 10 TFs over every TF of the experiment's space, 10 stage-1 epochs (the registry's defaults).
    let defaults: Tanda = Method.tandaDefaults

/// CAMEL's settings.
[<RequireQualifiedAccess>]
module Camel =
    /// Learned translations (stage 1: CycleGANs), the registry's λ, η, C and stage-1 epochs.
    let defaults: Camel = Method.camelDefaults
    /// The same with the data's exact counterparts as translations (no stage 1).
    let oracle: Camel = { defaults with Translations = Oracle }

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
    let private fail message = raise (DslException message)

    let private adversarial = MethodRegistry.Defaults "adversarial" :?> AdversarialSpec

    /// The paper's settings (Adversarial AutoAugment on CIFAR-10: M = 8, 5 sub-policies of 2 ops,
    /// batch 128, SGD 0.1 with Nesterov momentum and weight decay 5e-4, 200 epochs), on the
    /// embedded sample with the small model.
    let defaults: Experiment =
        { Name = "experiment"
          Data = EmbeddedSample
          TrainLimit = None
          TestLimit = None
          ValidationSize = None
          EvalEvery = 1
          Model = "small"
          Dropout = 0.0
          Init = None
          FrozenBatchNorm = false
          Method = Adversarial
          Space = Space.paper
          Controller =
            { SubPolicies = adversarial.SubPolicies
              OpsPerSubPolicy = adversarial.OpsPerSubPolicy
              Embedding = adversarial.Embedding
              Hidden = adversarial.Hidden
              LearningRate = adversarial.ControllerLearningRate
              EntropyWeight = adversarial.EntropyWeight }
          Instances = None
          MagnitudeScale = Schedule.constant 1.0
          PolicyProbability = Schedule.constant 1.0
          LearningRate = None
          Momentum = 0.9
          Nesterov = true
          WeightDecay = 5e-4
          CutoutSize = None
          Mix = None
          Parameters = []
          Epochs = 200
          BatchSize = 128
          Seed = 0L
          Device = "auto"
          Precision = "auto"
          MemoryFormat = MemoryFormats.ChannelsLast
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

    let private checkName (name: string) =
        if String.IsNullOrWhiteSpace name || name = "." || name = ".." || name.IndexOfAny(Path.GetInvalidFileNameChars()) >= 0 then
            raise (DslException(sprintf "Name = \"%s\": expected a name that can head a folder name (no '/', not empty)" name, Some "Name"))

    let private coreSchedule (s: Schedule) = EpochSchedule(Schedule.toFunc s, Schedule.describe s, List.toArray (Schedule.breakpoints s))

    /// The experiment's fields that set a method parameter: (field as a script writes it, the
    /// parameter, its value, whether the field holds its default). A field at its default sets the
    /// parameter only where the method has it.
    let private methodFields (e: Experiment) : (string * string * objnull * bool) list =
        let c, d = e.Controller, defaults.Controller
        let isOne (s: Schedule) = Schedule.describe s = "1"
        [ match e.Instances with
          | Some s -> "Instances", "instances", box (coreSchedule s), false
          | None -> ()
          "MagnitudeScale", "magnitude_scale", box (coreSchedule e.MagnitudeScale), isOne e.MagnitudeScale
          "PolicyProbability", "policy_probability", box (coreSchedule e.PolicyProbability), isOne e.PolicyProbability
          match e.CutoutSize with
          | Some size -> "CutoutSize", "cutout", box size, false
          | None -> ()
          "Controller", "sub_policies", box c.SubPolicies, (c.SubPolicies = d.SubPolicies)
          "Controller", "ops_per_sub_policy", box c.OpsPerSubPolicy, (c.OpsPerSubPolicy = d.OpsPerSubPolicy)
          "Controller", "embedding", box c.Embedding, (c.Embedding = d.Embedding)
          "Controller", "hidden", box c.Hidden, (c.Hidden = d.Hidden)
          "Controller", "controller_lr", box c.LearningRate, (c.LearningRate = d.LearningRate)
          "Controller", "entropy_weight", box c.EntropyWeight, (c.EntropyWeight = d.EntropyWeight) ]

    /// The field of the experiment that set a Core setting (`ConfigException.Setting`: "epochs",
    /// "method.n"): for a method parameter the `Parameters` entry that names it, else the field
    /// that sets it, else `Method`; for the others the field of the same name ("batch_size" is
    /// `BatchSize`).
    let fieldOfSetting (e: Experiment) (setting: string | null) : string option =
        match setting with
        | null
        | "" -> None
        | "method" -> Some "Method"
        | s when s.StartsWith("method.", StringComparison.Ordinal) ->
            let parameter = s.Substring "method.".Length
            let named (name: string) =
                let name = name.Trim()
                String.Equals(name, parameter, StringComparison.OrdinalIgnoreCase) || name.EndsWith("." + parameter, StringComparison.OrdinalIgnoreCase)
            if e.Parameters |> List.exists (fst >> named) then Some "Parameters"
            else
                match methodFields e |> List.tryFind (fun (_, p, _, isDefault) -> p = parameter && not isDefault) with
                | Some(field, _, _, _) -> Some field
                | None -> Some "Method"
        | "search_space" -> Some "Space"
        | s -> Some(s.Split('_') |> Array.map (fun w -> if w = "" then w else string (Char.ToUpperInvariant w[0]) + w.Substring 1) |> String.concat "")

    /// A Core error as the DSL's, with the field that set the setting at fault; the message starts
    /// with that field where Core names the setting otherwise ("Instances: adversarial.instances = 0: ...").
    let private fromCore (e: Experiment) (ex: ConfigException) =
        let field = fieldOfSetting e ex.Setting
        let squeeze (text: string) = text.Replace(" ", "").Replace("_", "").ToLowerInvariant()
        match field with
        | Some f when not ((squeeze ex.Message).StartsWith(squeeze f, StringComparison.Ordinal)) -> DslException(sprintf "%s: %s" f ex.Message, field)
        | _ -> DslException(ex.Message, field)

    /// The method spec of the experiment: the case's values, then the fields that set method
    /// parameters (Instances, CutoutSize, MagnitudeScale, PolicyProbability, Controller), then
    /// Parameters. A field set for a method without that parameter is an error naming both; the
    /// values are checked by Core when the experiment is (`toConfig`).
    let methodSpec (e: Experiment) : MethodSpec =
        let guard f =
            try f () with :? ConfigException as ex -> raise (fromCore e ex)
        let mutable spec = guard (fun () -> Method.spec e.Method)
        for field, parameter, value, isDefault in methodFields e do
            if spec.HasParameter parameter then spec <- guard (fun () -> spec.With(parameter, value))
            elif not isDefault then
                raise (DslException(sprintf "%s is set, but method %s has no parameter '%s' (see advaa methods)" field spec.Name parameter, Some field))
        for name, value in e.Parameters do
            spec <- guard (fun () -> spec.WithText(name, value))
        spec

    /// The Core configuration; validates everything and names the first bad value.
    let toConfig (e: Experiment) : TrainConfig =
        checkName e.Name
        let lr = learningRate e
        let config =
            TrainConfig(
                Method = methodSpec e,
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
                EvalEvery = e.EvalEvery,
                Epochs = e.Epochs,
                BatchSize = e.BatchSize,
                Seed = e.Seed,
                Device = e.Device,
                Precision = e.Precision,
                MemoryFormat = e.MemoryFormat,
                Mix = Option.toObj e.Mix,
                LearningRate = coreSchedule lr,
                Momentum = e.Momentum,
                Nesterov = e.Nesterov,
                WeightDecay = e.WeightDecay,
                Space = Space.toCore e.Space
            )
        try
            config.Validate()
        with :? ConfigException as ex ->
            raise (fromCore e ex)

    /// Checks the experiment (as `toConfig` does) and returns it unchanged.
    let validate (e: Experiment) : Experiment =
        toConfig e |> ignore
        e

    /// The experiment with command-line overrides applied.
    let withOverrides (o: Overrides) (e: Experiment) : Experiment =
        { e with
            Epochs = defaultArg o.Epochs e.Epochs
            Device = defaultArg o.Device e.Device
            Precision = defaultArg o.Precision e.Precision
            Mix = Option.orElse e.Mix o.Mix
            Out = Option.orElse e.Out o.Out
            Seed = defaultArg o.Seed e.Seed
            Data = o.Data |> Option.map DataPath |> Option.defaultValue e.Data
            TrainLimit = Option.orElse e.TrainLimit o.TrainLimit
            TestLimit = Option.orElse e.TestLimit o.TestLimit
            Init = Option.orElse e.Init o.Init
            Parameters = e.Parameters @ o.Parameters }

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
          yield sprintf "model          %s%s%s" e.Model (if e.Dropout > 0.0 then sprintf " (dropout %g)" e.Dropout else "") (if e.FrozenBatchNorm then ", batch norm frozen" else "")
          match e.Init with
          | Some init -> yield sprintf "initial        the weights in %s" (Path.GetFullPath init)
          | None -> ()
          yield sprintf "method         %s: %s" spec.Name (MethodRegistry.Get spec.Name).Description
          yield sprintf "parameters     %s" spec.Summary
          yield sprintf "epochs         %d, batch %d per instance, seed %d, device %s, precision %s, %s" e.Epochs e.BatchSize e.Seed e.Device e.Precision e.MemoryFormat
          yield sprintf "learning rate  %s (SGD, momentum %g%s, weight decay %g)" c.LearningRate.Description e.Momentum (if e.Nesterov then ", Nesterov" else "") e.WeightDecay
          match e.Mix with
          | Some mix -> yield sprintf "label mixing   %s: pairs within each copy, lambda ~ Beta(%g, %g)" mix.Name mix.Alpha mix.Alpha
          | None -> ()
          match e.Method with
          | FixedPolicy p ->
              for i, policy in List.indexed (List.ofSeq p.Policies) do
                  yield sprintf "policy%s %d sub-policies (op, probability, level):" (if p.PerInstance then sprintf " %-7d" (i + 1) else "        ") policy.SubPolicies.Count
                  for sub in policy.SubPolicies do
                      yield "  " + (sub.Stages |> Seq.map (fun s -> sprintf "(%s, %g, %d)" s.Op s.Probability s.Level) |> String.concat ", ")
          | _ -> ()
          // The other methods bring their own ops (or none).
          if spec.UsesSearchSpace then
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
            let version = match recorded["format_version"] with | :? JsonValue as v -> v.GetValue<int>() | _ -> 1
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
