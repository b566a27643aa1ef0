namespace AdvAA.Dsl

open System
open Argu

/// Exit codes of `advaa` and of experiment scripts run by `dotnet fsi`.
[<RequireQualifiedAccess>]
module ExitCode =
    let ok = 0
    /// Bad input at run time: a data file, a run folder, a checkpoint, a device, a diverged run.
    let failed = 1
    /// The command line itself is wrong.
    let usage = 2
    /// A script did not compile, threw while building its experiment, or its experiment did not validate.
    let script = 3
    /// Stopped by Ctrl+C after a complete checkpoint (128 + SIGINT, as shells report it).
    let interrupted = 130

/// Command-line overrides of an experiment (`advaa run script.fsx --epochs 3 ...`).
type Overrides =
    { Epochs: int option
      /// --batch: N, images per instance per step.
      BatchSize: int option
      Device: string option
      Out: string option
      Seed: int64 option
      Data: string option
      TrainLimit: int option
      TestLimit: int option
      /// --init: a PyTorch state dict to start the target network from.
      Init: string option
      /// --image-size: the crop side of data of varying or large images.
      ImageSize: int option
      /// --workers: threads decoding such data's batches.
      Workers: int option
      /// --skip-bad-images: leave bad images of streamed data out of their batches, listing them.
      SkipBadImages: bool
      /// Method parameters by name (`--param name=value`), applied after the script's.
      Parameters: (string * string) list
      Precision: string option
      Mix: AdvAA.Core.Augment.LabelMixing option }

    static member None =
        { Epochs = None
          BatchSize = None
          Device = None
          Out = None
          Seed = None
          Data = None
          TrainLimit = None
          TestLimit = None
          Init = None
          ImageSize = None
          Workers = None
          SkipBadImages = false
          Parameters = []
          Precision = None
          Mix = None }

/// What `--param` flags share between `advaa run` and `advaa train`.
module CommandLineParam =
    let usage = "a method parameter, name=value (e.g. n=3 or randaugment.n=3; repeatable; see advaa methods)."
    let precisionUsage = "auto|fp32|bf16: bf16 trains under autocast (default auto: bf16 where the device does it fast, else fp32)."
    let mixUsage = "label mixing after the method: mixup[:alpha] or cutmix[:alpha] (lambda ~ Beta(alpha, alpha), default alpha 1)."
    let imageSizeUsage = "S: the side of the crops of data whose images vary in size or exceed 64x64 (RandomResizedCrop in training, resize to S/0.875 and centre crop in evaluation; default the model's: 224 for ImageNet networks, else 32)."
    let workersUsage = "threads decoding such data's batches (default: one per core); the batches are the same for any number."
    let skipBadImagesUsage = "leave a bad image of streamed data (corrupt, truncated, missing) out of its batch and go on; each is listed in the run folder's skipped-images.jsonl."
    let initUsage = "start the target network from this PyTorch state dict (.pt, e.g. from advaa export) of the same model and classes."
    let distributedUsage = "be one rank of a data-parallel job started by mpirun -np K (or srun): the N·M batch is split over the ranks (README: More than one GPU or machine)."

    /// A flag's value checked against its lower bound, or a usage error naming the flag as the user
    /// typed it (`--instances 0: expected at least 1`), not the experiment field it sets.
    let atLeast (usageError: string -> unit) (flag: string) (minimum: 'T) (value: 'T option) : 'T option =
        match value with
        | Some v when v < minimum -> usageError (sprintf "%s %O: expected at least %O" flag v minimum)
        | _ -> ()
        value

    /// A text flag's value checked by `accepts` (which may throw), or a usage error naming the flag
    /// and what it takes (`--device tpu: expected auto, cpu, cuda or cuda:N`).
    let oneOf (usageError: string -> unit) (flag: string) (expected: string) (accepts: string -> bool) (value: string option) : string option =
        match value with
        | Some v when not (try accepts v with _ -> false) -> usageError (sprintf "%s %s: expected %s" flag v expected)
        | _ -> ()
        value

    /// `--device`: auto, cpu, cuda or cuda:N.
    let device (usageError: string -> unit) (value: string option) =
        oneOf usageError "--device" "auto, cpu, cuda or cuda:N" (fun d -> AdvAA.Core.Backend.TorchBackend.ParseDevice d |> ignore; true) value

    /// `--precision`: auto, fp32 or bf16.
    let precision (usageError: string -> unit) (value: string option) =
        oneOf usageError "--precision" "auto, fp32 or bf16" (fun p -> AdvAA.Core.Backend.Precisions.Parse p |> ignore; true) value

    /// A `--mix` value, or a usage error naming it.
    let mix (usageError: string -> AdvAA.Core.Augment.LabelMixing) (text: string) =
        try AdvAA.Core.Augment.LabelMixing.Parse text with :? AdvAA.Core.Augment.AugmentException as e -> usageError e.Message

/// The flags of a script run, the same for `advaa run script.fsx ...` and `dotnet fsi script.fsx ...`.
[<RequireQualifiedAccess>]
type RunArgs =
    | [<MainCommand; ExactlyOnce; First>] Script of script_and_arguments: string list
    | Epochs of count: int
    | Batch of n: int
    | Device of device: string
    | Out of folder: string
    | Resume of folder: string
    | Seed of seed: int64
    | Data of path: string
    | Train_Limit of images: int
    | Test_Limit of images: int
    | Param of setting: string
    | Precision of precision: string
    | Mix of mixing: string
    | Init of file: string
    | Image_Size of pixels: int
    | Workers of count: int
    | Skip_Bad_Images
    | Report
    | Distributed
    | Script_Timeout of seconds: int

    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Script _ -> "the experiment script (.fsx), then arguments for the script itself (fsi.CommandLineArgs)."
            | Script_Timeout _ -> sprintf "seconds the script may take to compile and run its top-level code (default %g); a script is code, and check runs it too." ScriptHost.defaultTimeout.TotalSeconds
            | Epochs _ -> "train this many epochs instead of the script's."
            | Batch _ -> "N, images per instance per step, instead of the script's (the learning rate stays the script's)."
            | Device _ -> "auto|cpu|cuda instead of the script's device."
            | Out _ -> "the run folder (must not exist or be empty; default runs/<name>-<yyyyMMdd-HHmmss>)."
            | Resume _ -> "continue the run in this folder from its last complete checkpoint."
            | Seed _ -> "the random seed instead of the script's."
            | Data _ -> "a data folder or .tar.gz instead of the script's data."
            | Train_Limit _ -> "train on a seeded subset of this many images (quick trials)."
            | Test_Limit _ -> "evaluate on a seeded subset of this many test images."
            | Param _ -> CommandLineParam.usage
            | Precision _ -> CommandLineParam.precisionUsage
            | Mix _ -> CommandLineParam.mixUsage
            | Init _ -> CommandLineParam.initUsage
            | Image_Size _ -> CommandLineParam.imageSizeUsage
            | Workers _ -> CommandLineParam.workersUsage
            | Skip_Bad_Images -> CommandLineParam.skipBadImagesUsage
            | Report -> "write the report of each finished run (plots, policy grid, index.html; see advaa report)."
            | Distributed -> CommandLineParam.distributedUsage

/// A parsed script-run command line.
type RunCommandLine =
    { Script: string
      /// The script's own arguments (after the script path, before the flags).
      Arguments: string list
      Overrides: Overrides
      Resume: string option
      /// The command line without --out and --resume: recorded in config.json, and what continues
      /// the run with `--resume <folder>` added.
      Replay: string list
      /// --report: write each finished run's report.
      Report: bool
      /// --distributed: this process is one rank of a data-parallel job.
      Distributed: bool
      /// --script-timeout: how long compiling and running the script's top-level code may take.
      ScriptTimeout: TimeSpan }

[<RequireQualifiedAccess>]
module CommandLine =
    /// A `--param name=value` flag as (name, value); `raise` reports a malformed one as a usage error.
    let parameter (usageError: string -> string * string) (text: string) : string * string =
        match text.IndexOf '=' with
        | i when i > 0 && i < text.Length - 1 -> text[.. i - 1].Trim(), text[i + 1 ..].Trim()
        | _ -> usageError (sprintf "--param %s: expected name=value, e.g. --param n=3 (see advaa methods)" text)

    /// The parser of the run flags; `programName` heads its usage text.
    let runParser (programName: string) = ArgumentParser.Create<RunArgs>(programName = programName)

    /// The run command line of parsed flags; a script argument that looks like a flag is a usage
    /// error (Argu hands unknown flags to the script otherwise).
    let ofRunArgs (results: ParseResults<RunArgs>) : RunCommandLine =
        let script, arguments =
            match results.GetResult RunArgs.Script with
            | script :: arguments -> script, arguments
            | [] -> results.Raise("give the experiment script (.fsx) to run", ErrorCode.CommandLine, true)
        match arguments |> List.tryFind (fun a -> a.StartsWith("--", StringComparison.Ordinal)) with
        | Some flag ->
            results.Raise(
                sprintf "unrecognized argument: '%s' (script arguments must not start with --; the flags are listed below)" flag,
                ErrorCode.CommandLine,
                true
            )
        | None -> ()
        let out = results.TryGetResult RunArgs.Out
        let resume = results.TryGetResult RunArgs.Resume
        let bounds (message: string) : unit = results.Raise(message, ErrorCode.CommandLine, false)
        if out.IsSome && resume.IsSome then
            results.Raise("--out and --resume exclude each other: --resume continues the run in its own folder", ErrorCode.CommandLine, true)
        // Recorded in config.json and replayed by --resume: data paths made absolute, so a resume
        // from another folder reads the same data.
        let kept =
            results.GetAllResults()
            |> List.choose (function
                | RunArgs.Out _
                | RunArgs.Resume _
                | RunArgs.Distributed -> None
                | RunArgs.Data p -> Some(RunArgs.Data(IO.Path.GetFullPath p))
                | RunArgs.Init p -> Some(RunArgs.Init(IO.Path.GetFullPath p))
                | a -> Some a)
        { Script = script
          Arguments = arguments
          Overrides =
            { Epochs = results.TryGetResult RunArgs.Epochs |> CommandLineParam.atLeast bounds "--epochs" 1
              BatchSize = results.TryGetResult RunArgs.Batch |> CommandLineParam.atLeast bounds "--batch" 1
              Device = results.TryGetResult RunArgs.Device |> CommandLineParam.device bounds
              Out = out
              Seed = results.TryGetResult RunArgs.Seed
              Data = results.TryGetResult RunArgs.Data
              TrainLimit = results.TryGetResult RunArgs.Train_Limit |> CommandLineParam.atLeast bounds "--train-limit" 1
              TestLimit = results.TryGetResult RunArgs.Test_Limit |> CommandLineParam.atLeast bounds "--test-limit" 1
              Init = results.TryGetResult RunArgs.Init
              ImageSize = results.TryGetResult RunArgs.Image_Size |> CommandLineParam.atLeast bounds "--image-size" 8
              Workers = results.TryGetResult RunArgs.Workers |> CommandLineParam.atLeast bounds "--workers" 1
              SkipBadImages = results.Contains RunArgs.Skip_Bad_Images
              Parameters =
                results.GetResults RunArgs.Param
                |> List.map (parameter (fun message -> results.Raise(message, ErrorCode.CommandLine, true)))
              Precision = results.TryGetResult RunArgs.Precision |> CommandLineParam.precision bounds
              Mix = results.TryGetResult RunArgs.Mix |> Option.map (CommandLineParam.mix (fun message -> results.Raise(message, ErrorCode.CommandLine, true))) }
          Resume = resume
          Replay = List.ofArray (results.Parser.PrintCommandLineArguments kept)
          Report = results.Contains RunArgs.Report
          Distributed = results.Contains RunArgs.Distributed
          ScriptTimeout =
            results.TryGetResult RunArgs.Script_Timeout
            |> CommandLineParam.atLeast bounds "--script-timeout" 1
            |> Option.map (float >> TimeSpan.FromSeconds)
            |> Option.defaultValue ScriptHost.defaultTimeout }

    /// Quotes an argument for a POSIX shell when it needs it.
    let quote (argument: string) =
        if argument <> "" && argument |> Seq.forall (fun c -> Char.IsLetterOrDigit c || "-_./=:,+@%".Contains c) then argument
        else "'" + argument.Replace("'", "'\\''") + "'"

    /// A command line as one shell-ready string.
    let join (arguments: string list) = arguments |> List.map quote |> String.concat " "
