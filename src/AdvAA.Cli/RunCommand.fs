/// `advaa run script.fsx [script arguments] [flags]`: compile an experiment script, apply the flags, run it.
module AdvAA.Cli.RunCommand

open Argu
open AdvAA.Dsl

/// Compiles the script and reads its experiments, printing warnings; compile, script and
/// validation errors are printed as `file:line:column: error ...` and give the exit code.
let load (commandLine: RunCommandLine) : Result<Script.Loaded, int> =
    match Script.load commandLine.Script commandLine.Arguments commandLine.Overrides commandLine.ScriptTimeout with
    | Ok loaded ->
        for w in loaded.Warnings do
            eprintfn "%s" (ScriptError.format w)
        Ok loaded
    | Error problems ->
        for p in problems do
            eprintfn "%s" (ScriptError.format p)
        Error ExitCode.script

let run (args: ParseResults<RunArgs>) =
    let commandLine = CommandLine.ofRunArgs args
    match load commandLine with
    | Error code -> code
    | Ok loaded ->
        Runner.asRanks commandLine.Distributed (Common.session "run" commandLine.Replay commandLine.Report) (fun session ->
            Experiment.execute session commandLine.Overrides.Out commandLine.Resume loaded.Experiments)
