/// `advaa report <run> [<run> ...]`: plots, the final policies applied to images, and index.html.
module AdvAA.Cli.ReportCommand

open System.IO
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

/// Writes the report of `runs` (the first is the main one) and returns index.html's path.
let write (runs: string list) (out: string option) (images: int) =
    let loaded = runs |> List.map Report.load
    let first = List.head loaded
    let outDir = defaultArg out (Path.Combine(first.Folder, "report"))
    let grid = PolicyGrid.write first images (Path.Combine(outDir, "policies.png"))
    Report.write loaded outDir (Option.toList grid)

let run (args: ParseResults<ReportArgs>) =
    let runs = args.GetResult Runs
    let images = args.GetResult(Images, defaultValue = 8)
    if images < 1 then fail (sprintf "--images %d: expected at least 1" images)
    else
        let index = write runs (args.TryGetResult Out) images
        printfn "report: %s" index
        ExitCode.ok
