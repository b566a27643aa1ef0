module AdvAA.Tests.Main

open System
open Expecto
open Expecto.Impl

[<EntryPoint>]
let main argv =
    // Expecto's own summary is coloured and padded; CI reads one plain line, so capture the counts.
    let mutable summary: TestRunSummary option = None
    let printer =
        { TestPrinters.defaultPrinter with
            // a skipped test says why, visibly (Expecto logs it only at debug level)
            ignored = fun name reason -> async { printfn "skipped: %s: %s" name reason }
            summary = fun config s -> async {
                do! TestPrinters.defaultPrinter.summary config s
                summary <- Some s } }
    let result =
        runTestsInAssemblyWithCLIArgs [ CLIArguments.Printer printer ] argv
    match summary with
    | Some s ->
        let stdout = Console.OpenStandardOutput()
        let line = sprintf "\n%d passed, %d failed, %d skipped\n" s.passed.Length (s.failed.Length + s.errored.Length) s.ignored.Length
        let bytes = Text.Encoding.UTF8.GetBytes line
        Console.Out.Flush()
        stdout.Write(bytes, 0, bytes.Length)
        stdout.Flush()
    | None -> ()
    result
