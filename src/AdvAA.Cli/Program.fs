module AdvAA.Cli.Program

open Argu
open AdvAA.Dsl
open AdvAA.Cli.Common

[<HelpFlags("--help", "-h")>]
type CliArgs =
    | [<CliPrefix(CliPrefix.None)>] Run of ParseResults<RunArgs>
    | [<CliPrefix(CliPrefix.None)>] Check of ParseResults<RunArgs>
    | [<CliPrefix(CliPrefix.None)>] Train of ParseResults<TrainCommand.TrainArgs>
    | [<CliPrefix(CliPrefix.None)>] Info of ParseResults<InfoCommand.InfoArgs>
    | [<CliPrefix(CliPrefix.None)>] Ops of ParseResults<OpsCommand.OpsArgs>
    | [<CliPrefix(CliPrefix.None)>] Preview of ParseResults<PreviewCommand.PreviewArgs>
    | [<CliPrefix(CliPrefix.None)>] Data of ParseResults<DataCommand.DataArgs>
    | [<CliPrefix(CliPrefix.None)>] Report of ParseResults<ReportCommand.ReportArgs>
    | [<CliPrefix(CliPrefix.None)>] Methods of ParseResults<MethodsCommand.MethodsArgs>
    | [<CliPrefix(CliPrefix.None)>] Policy of ParseResults<PolicyCommand.PolicyArgs>
    | [<CliPrefix(CliPrefix.None)>] Bench of ParseResults<BenchCommand.BenchArgs>
    | [<CliPrefix(CliPrefix.None)>] Evaluate of ParseResults<EvaluateCommand.EvaluateArgs>
    | [<CliPrefix(CliPrefix.None)>] Predict of ParseResults<PredictCommand.PredictArgs>
    | [<CliPrefix(CliPrefix.None)>] Export of ParseResults<ExportCommand.ExportArgs>
    | [<CliPrefix(CliPrefix.None)>] Patching of ParseResults<PatchingCommand.PatchingArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Run _ -> "run an experiment script (.fsx): compile it, apply the flags, train; Ctrl+C stops after a checkpoint."
            | Check _ -> "compile and validate an experiment script and print the experiment that `run` would train."
            | Train _ -> "train without a script: method, model, data and the paper's settings from flags."
            | Info _ -> "print versions, the libtorch backend, devices and CPU threads."
            | Ops _ -> "print the augmentation ops: names, ranges, signs, kinds."
            | Preview _ -> "write a PNG grid of augmented images (ops at levels, or policy draws)."
            | Data _ -> "load a data set (default: the embedded sample) and print its format, sizes, classes, statistics and load speed."
            | Report _ -> "write plots, the final policies applied to images and an HTML page for one or more run folders."
            | Methods _ -> "print the training methods: what each does, its parameters, their defaults and ranges."
            | Policy _ -> "policy files: export a run's learned policies (advaa policy export RUN --out FILE)."
            | Bench _ -> "how fast this machine augments (bench ops) and trains (bench models), in images/s."
            | Evaluate _ -> "a trained run's accuracy, per-class accuracy and confusion matrix (on its own test split by default)."
            | Predict _ -> "a trained run's top classes with probabilities for JPEG/PNG files of its image size."
            | Export _ -> "a trained run's weights for PyTorch (advaa export RUN --out model.pt), with a .py file defining the network."
            | Patching _ -> "model patching's data: make-spurious writes a benchmark whose subgroups follow a spurious patch."

[<EntryPoint>]
let main argv =
    let parser = ArgumentParser.Create<CliArgs>(programName = "advaa")
    try
        let results = parser.ParseCommandLine(argv, raiseOnUsage = true)
        match results.GetSubCommand() with
        | Run a -> RunCommand.run a
        | Check a -> CheckCommand.run a
        | Train a -> TrainCommand.run a
        | Info a -> InfoCommand.run a
        | Ops a -> OpsCommand.run a
        | Preview a -> PreviewCommand.run a
        | Data a -> DataCommand.run a
        | Report a -> ReportCommand.run a
        | Methods a -> MethodsCommand.run a
        | Policy a -> PolicyCommand.run a
        | Bench a -> BenchCommand.run a
        | Evaluate a -> EvaluateCommand.run a
        | Predict a -> PredictCommand.run a
        | Export a -> ExportCommand.run a
        | Patching a -> PatchingCommand.run a
    with
    | :? ArguParseException as e ->
        if e.ErrorCode = ErrorCode.HelpText then
            printfn "%s" e.Message
            ExitCode.ok
        else
            eprintfn "%s" e.Message
            ExitCode.usage
    | e ->
        match Runner.errorMessage e with
        | Some message -> fail message
        | None -> reraise ()
