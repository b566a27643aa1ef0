module AdvAA.Cli.Program

open Argu
open AdvAA.Core.Backend
open AdvAA.Core.Augment
open AdvAA.Core.Data
open AdvAA.Cli.Common

[<HelpFlags("--help", "-h")>]
type CliArgs =
    | [<CliPrefix(CliPrefix.None)>] Info of ParseResults<InfoCommand.InfoArgs>
    | [<CliPrefix(CliPrefix.None)>] Ops of ParseResults<OpsCommand.OpsArgs>
    | [<CliPrefix(CliPrefix.None)>] Preview of ParseResults<PreviewCommand.PreviewArgs>
    | [<CliPrefix(CliPrefix.None)>] Data of ParseResults<DataCommand.DataArgs>
    | [<CliPrefix(CliPrefix.None)>] Report of ParseResults<ReportCommand.ReportArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Info _ -> "print versions, the libtorch backend, devices and CPU threads."
            | Ops _ -> "print the augmentation ops: names, ranges, signs, kinds."
            | Preview _ -> "write a PNG grid of augmented images (ops at levels, or policy draws)."
            | Data _ -> "load a data set (default: the embedded sample) and print its format, sizes, classes, statistics and load speed."
            | Report _ -> "write plots, the final policies applied to images and an HTML page for one or more run folders."

[<EntryPoint>]
let main argv =
    let parser = ArgumentParser.Create<CliArgs>(programName = "advaa")
    try
        let results = parser.ParseCommandLine(argv, raiseOnUsage = true)
        match results.GetSubCommand() with
        | Info a -> InfoCommand.run a
        | Ops a -> OpsCommand.run a
        | Preview a -> PreviewCommand.run a
        | Data a -> DataCommand.run a
        | Report a -> ReportCommand.run a
    with
    | :? ArguParseException as e ->
        if e.ErrorCode = ErrorCode.HelpText then
            printfn "%s" e.Message
            ExitCode.ok
        else
            eprintfn "%s" e.Message
            ExitCode.usage
    | :? BackendException as e -> fail e.Message
    | :? AugmentException as e -> fail e.Message
    | :? DataFormatException as e -> fail e.Message
    | :? AdvAA.Core.Training.RunFolderException as e -> fail e.Message
