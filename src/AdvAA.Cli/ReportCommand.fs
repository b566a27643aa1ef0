/// `advaa report <run> [<run> ...]`: plots, the final policies applied to images, and index.html.
module AdvAA.Cli.ReportCommand

open Argu
open AdvAA.Dsl
open AdvAA.Cli.Common

type ReportArgs =
    | [<MainCommand; Mandatory>] Runs of folder: string list
    | [<Unique>] Out of folder: string
    | [<Unique>] Images of count: int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Runs _ -> "one or more run folders; with several, their accuracy curves are compared."
            | Out _ -> "where to write the report (default: <first run>/report)."
            | Images _ -> "images per policy in the policy grid (default 8)."

let run (args: ParseResults<ReportArgs>) =
    let runs = args.GetResult Runs
    let images = args.GetResult(Images, defaultValue = 8)
    if images < 1 then fail (sprintf "--images %d: expected at least 1" images)
    else
        let index = RunReport.write runs (args.TryGetResult Out) images
        printfn "report: %s" index
        ExitCode.ok
