/// `advaa train`: one training run from flags alone, the paper's settings for anything not given.
module AdvAA.Cli.TrainCommand

open System.IO
open Argu
open AdvAA.Core
open AdvAA.Core.Methods
open AdvAA.Core.Models
open AdvAA.Core.Training
open AdvAA.Dsl

[<RequireQualifiedAccess>]
type TrainArgs =
    | Method of name: string
    | Model of name: string
    | Data of path: string
    | Epochs of count: int
    | Instances of m: int
    | Batch of n: int
    | Lr of rate: float
    | Seed of seed: int64
    | Device of device: string
    | Out of folder: string
    | Resume of folder: string
    | Train_Limit of images: int
    | Test_Limit of images: int
    | Dropout of rate: float
    | Cutout of pixels: int
    | Policy of file: string
    | From of run: string
    | Param of setting: string
    | Precision of precision: string
    | Memory_Format of format: string
    | Mix of mixing: string
    | Init of file: string
    | Image_Size of pixels: int
    | Workers of count: int
    | Skip_Bad_Images
    | Report
    | Frozen_Bn
    | Distributed

    interface IArgParserTemplate with
        member a.Usage =
            // The defaults are Core's (TrainConfig and the registry), the one place they are set.
            let core = TrainConfig()
            match a with
            | Method _ -> sprintf "%s (default: %s; advaa methods describes each)." (MethodRegistry.Names |> String.concat ", ") core.Method.Name
            | Model _ -> sprintf "%s (default: %s)." ModelRegistry.Choices core.Model
            | Data _ -> "a CIFAR-10/100 binary folder, an image folder with train/ and test/, a .tar.gz of one, or a folder with metadata.csv (default: the embedded sample)."
            | Epochs _ -> sprintf "epochs (default: %d)." core.Epochs
            | Instances _ -> "M, augmented copies of each batch: --param instances=M (default: the method's, advaa methods)."
            | Batch _ -> sprintf "N, images per instance per step (default: %d)." core.BatchSize
            | Lr _ -> "initial learning rate of the paper's schedule: step x0.2 at 30/60/80% of the epochs for wrn-28-10, cosine otherwise (default: 0.1)."
            | Seed _ -> sprintf "random seed (default: %d)." core.Seed
            | Device _ -> sprintf "auto|cpu|cuda (default: %s)." core.Device
            | Out _ -> "the run folder (must not exist or be empty; default runs/<method>-<model>-<yyyyMMdd-HHmmss>)."
            | Resume _ -> "continue the run in this folder with the options recorded in its config.json (flags given here override them)."
            | Train_Limit _ -> "train on a seeded subset of this many images."
            | Test_Limit _ -> "evaluate on a seeded subset of this many test images."
            | Dropout _ -> sprintf "in-block dropout of wrn-* models (default: %g)." core.Dropout
            | Cutout _ -> "side of the Cutout square in pixels, 0 for none: --param cutout=PIXELS (default: the method's, advaa methods)."
            | Policy _ -> "a policy file (advaa-policy JSON, e.g. from advaa policy export): trains with method 'policy'."
            | From _ -> "a finished run whose learned policies to replay epoch by epoch: trains with method 'transfer'; with --method tanda, the TANDA run whose trained generator to use."
            | Param _ -> CommandLineParam.usage
            | Precision _ -> CommandLineParam.precisionUsage
            | Memory_Format _ -> "channels-last|nchw: the layout of the input batches (default channels-last, faster convolutions)."
            | Mix _ -> CommandLineParam.mixUsage
            | Init _ -> CommandLineParam.initUsage
            | Image_Size _ -> CommandLineParam.imageSizeUsage
            | Workers _ -> CommandLineParam.workersUsage
            | Skip_Bad_Images -> CommandLineParam.skipBadImagesUsage
            | Report -> "write the run's report at the end (plots, policy grid, index.html; see advaa report)."
            | Frozen_Bn -> "batch-norm layers use and keep their running statistics (fine-tuning from --init; a data-parallel run that equals one process)."
            | Distributed -> CommandLineParam.distributedUsage

let private parser = lazy (ArgumentParser.Create<TrainArgs>(programName = "advaa train"))

/// The experiment the flags describe; a flag given twice counts once, the last one.
let experiment (results: ParseResults<TrainArgs>) : Experiment =
    let d = Experiment.defaults
    // --from names a run to replay (transfer), or with --method tanda the run whose generator to reuse.
    let tanda = results.TryGetResult TrainArgs.Method |> Option.exists (fun m -> m.Trim().ToLowerInvariant() = "tanda")
    let implied =
        [ if results.Contains TrainArgs.Policy then "policy", "--policy"
          if results.Contains TrainArgs.From && not tanda then "transfer", "--from" ]
    let method =
        match implied, results.TryGetResult TrainArgs.Method with
        | (_, flag) :: (_, other) :: _, _ -> raise (DslException(sprintf "%s and %s exclude each other: each implies its own method" flag other))
        | [ name, flag ], Some m when m.Trim().ToLowerInvariant() <> name ->
            raise (DslException(sprintf "%s trains with method '%s', but --method %s was given" flag name m))
        | [ "policy", _ ], _ -> Method.policy (Policy.ofFile (results.GetResult TrainArgs.Policy))
        | [ _ ], _ -> Method.transfer (results.GetResult TrainArgs.From)
        | _, Some _ when tanda ->
            match results.TryGetResult TrainArgs.From with
            | Some run -> Method.tanda |> Method.set "from" (Path.GetFullPath run)
            | None -> Method.tanda
        | _, Some m -> Method.named m
        | _, None -> d.Method
    let model = defaultArg (results.TryGetResult(TrainArgs.Model)) d.Model
    let bounds (message: string) : unit = results.Raise(message, ErrorCode.CommandLine, false)
    let atLeast flag minimum value = CommandLineParam.atLeast bounds flag minimum value
    let e =
        { d with
            Name = sprintf "%s-%s" (Method.name method) (model.Trim().ToLowerInvariant())
            // --instances and --cutout are --param instances=M and --param cutout=PIXELS, set before the --param flags.
            Method =
                [ match results.TryGetResult(TrainArgs.Instances) |> atLeast "--instances" 1 with
                  | Some m -> "instances", string m
                  | None -> ()
                  match results.TryGetResult(TrainArgs.Cutout) |> atLeast "--cutout" 0 with
                  | Some pixels -> "cutout", string pixels
                  | None -> ()
                  yield! results.GetResults TrainArgs.Param |> List.map (CommandLine.parameter (fun message -> results.Raise(message, ErrorCode.CommandLine, true))) ]
                |> List.fold (fun m (name, value) -> Method.setText name value m) method
            Model = model
            Data = results.TryGetResult(TrainArgs.Data) |> Option.map DataPath |> Option.defaultValue d.Data
            Epochs = defaultArg (results.TryGetResult(TrainArgs.Epochs) |> atLeast "--epochs" 1) d.Epochs
            BatchSize = defaultArg (results.TryGetResult(TrainArgs.Batch) |> atLeast "--batch" 1) d.BatchSize
            Seed = defaultArg (results.TryGetResult(TrainArgs.Seed)) d.Seed
            Device = defaultArg (results.TryGetResult(TrainArgs.Device) |> CommandLineParam.device bounds) d.Device
            Out = results.TryGetResult(TrainArgs.Out)
            TrainLimit = results.TryGetResult(TrainArgs.Train_Limit) |> atLeast "--train-limit" 1
            TestLimit = results.TryGetResult(TrainArgs.Test_Limit) |> atLeast "--test-limit" 1
            Dropout = defaultArg (results.TryGetResult(TrainArgs.Dropout) |> atLeast "--dropout" 0.0) d.Dropout
            Init = results.TryGetResult TrainArgs.Init
            ImageSize = results.TryGetResult TrainArgs.Image_Size |> atLeast "--image-size" 8
            Workers = results.TryGetResult TrainArgs.Workers |> atLeast "--workers" 1
            FrozenBatchNorm = results.Contains TrainArgs.Frozen_Bn
            SkipBadImages = results.Contains TrainArgs.Skip_Bad_Images
            Precision = defaultArg (results.TryGetResult TrainArgs.Precision |> CommandLineParam.precision bounds) d.Precision
            MemoryFormat =
                defaultArg
                    (results.TryGetResult TrainArgs.Memory_Format
                     |> CommandLineParam.oneOf bounds "--memory-format" "channels-last or nchw" (fun f -> f = MemoryFormats.ChannelsLast || f = MemoryFormats.Nchw))
                    d.MemoryFormat
            Mix = results.TryGetResult TrainArgs.Mix |> Option.map (CommandLineParam.mix (fun message -> results.Raise(message, ErrorCode.CommandLine, true))) }

    // The schedule's shape depends on the model and the epochs: set it last.
    match results.TryGetResult(TrainArgs.Lr) with
    | Some lr when not (lr > 0.0) -> bounds (sprintf "--lr %g: expected a rate above 0" lr); e
    | Some lr -> { e with LearningRate = Some(Experiment.paperLearningRate lr e) }
    | None -> e

/// The arguments an `advaa train` run recorded in its config.json.
let private recorded (folder: string) : string list =
    let run = RunFolder.Open folder
    match run.ReadConfig().Origin with
    | null -> raise (RunFolderException(sprintf "%s records no \"origin\" (the options of the run), so `advaa train --resume` cannot continue it" (run.File RunFolder.ConfigFile)))
    | origin when origin.Program = "advaa train" -> List.ofSeq origin.Arguments
    | origin ->
        raise (RunFolderException(sprintf "%s was made by `%s`, not `advaa train`: continue it the way it was started, with --resume %s" run.Path origin.Program run.Path))

/// The flags as config.json records them: paths made absolute, so a resume from another folder reads the same files.
let private replayable (args: TrainArgs list) =
    args
    |> List.choose (function
        | TrainArgs.Out _
        | TrainArgs.Resume _
        | TrainArgs.Distributed -> None
        | TrainArgs.Data p -> Some(TrainArgs.Data(Path.GetFullPath p))
        | TrainArgs.Policy p -> Some(TrainArgs.Policy(Path.GetFullPath p))
        | TrainArgs.From p -> Some(TrainArgs.From(Path.GetFullPath p))
        | TrainArgs.Init p -> Some(TrainArgs.Init(Path.GetFullPath p))
        | a -> Some a)

let run (args: ParseResults<TrainArgs>) =
    let arguments = List.ofArray (parser.Value.PrintCommandLineArguments(replayable (args.GetAllResults())))
    let session = Common.session "train" arguments (args.Contains TrainArgs.Report)
    match args.TryGetResult TrainArgs.Resume, args.TryGetResult TrainArgs.Out with
    | Some _, Some _ ->
        args.Raise("--out and --resume exclude each other: --resume continues the run in its own folder", ErrorCode.CommandLine, true)
    | Some folder, None ->
        // The recorded options first, then the flags given now: the last of each flag counts.
        let merged = parser.Value.ParseCommandLine(Array.ofList (recorded folder @ arguments), raiseOnUsage = true)
        let e = experiment merged |> Experiment.validate
        Runner.asRanks (args.Contains TrainArgs.Distributed) session (fun session -> Experiment.execute session None (Some folder) (ScriptExperiments.Single e))
    | None, _ ->
        let e = experiment args |> Experiment.validate
        Runner.asRanks (args.Contains TrainArgs.Distributed) session (fun session -> Experiment.execute session None None (ScriptExperiments.Single e))
