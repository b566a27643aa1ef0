/// `advaa check script.fsx [script arguments] [flags]`: what `advaa run` with the same arguments
/// would train, without training: compile, validate, print the resolved experiments.
module AdvAA.Cli.CheckCommand

open System.IO
open Argu
open AdvAA.Core.Training
open AdvAA.Dsl

let private resumes (folder: string) =
    let run = RunFolder.Open folder
    match run.LatestCheckpoint() with
    | null -> sprintf "%s, from the start (it has no checkpoint yet)" run.Path
    | checkpoint -> sprintf "%s, from its checkpoint of epoch %d" run.Path checkpoint.Epoch

let run (args: ParseResults<RunArgs>) =
    let commandLine = CommandLine.ofRunArgs args
    match RunCommand.load commandLine with
    | Error code -> code
    | Ok loaded ->
        let folder =
            match commandLine.Resume, loaded.Experiments with
            | Some path, ScriptExperiments.Single _ -> fun _ -> "resumes        " + resumes path
            | Some path, (ScriptExperiments.Several _ | ScriptExperiments.Grid _) ->
                fun (e: Experiment) ->
                    let folder = Path.Combine(path, e.Name)
                    if File.Exists(Path.Combine(folder, RunFolder.ConfigFile)) then "resumes        " + resumes folder
                    else "run folder     " + Path.GetFullPath folder + " (new)"
            | None, ScriptExperiments.Single _ ->
                fun e -> "run folder     " + defaultArg e.Out (sprintf "runs/%s-<yyyyMMdd-HHmmss>" e.Name)
            | None, ScriptExperiments.Several _ ->
                fun e -> "run folder     " + Path.Combine(defaultArg commandLine.Overrides.Out "runs/comparison-<yyyyMMdd-HHmmss>", e.Name)
            | _, ScriptExperiments.Show _ -> ignore >> fun () -> ""
            | None, ScriptExperiments.Grid s ->
                fun e -> "run folder     " + Path.Combine(defaultArg commandLine.Overrides.Out (sprintf "runs/%s-<yyyyMMdd-HHmmss>" s.Name), e.Name)
        match loaded.Experiments with
        | ScriptExperiments.Show demo -> printfn "demo           %s (advaa run writes its numbers here and its plots to --out, else runs/%s)" demo.Name demo.Name
        | _ -> ()
        loaded.Experiments.Experiments
        |> List.iteri (fun i e ->
            if i > 0 then printfn ""
            for line in Experiment.describe e do
                printfn "%s" line
            printfn "%s" (folder e))
        ExitCode.ok
