module AdvAA.Cli.Program

open Argu
open AdvAA.Core.Backend
open AdvAA.Cli.Common

[<HelpFlags("--help", "-h")>]
type CliArgs =
    | [<CliPrefix(CliPrefix.None)>] Info of ParseResults<InfoCommand.InfoArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Info _ -> "print versions, the libtorch backend, devices and CPU threads."

[<EntryPoint>]
let main argv =
    let parser = ArgumentParser.Create<CliArgs>(programName = "advaa")
    try
        let results = parser.ParseCommandLine(argv, raiseOnUsage = true)
        match results.GetSubCommand() with
        | Info a -> InfoCommand.run a
    with
    | :? ArguParseException as e ->
        if e.ErrorCode = ErrorCode.HelpText then
            printfn "%s" e.Message
            ExitCode.ok
        else
            eprintfn "%s" e.Message
            ExitCode.usage
    | :? BackendException as e -> fail e.Message
