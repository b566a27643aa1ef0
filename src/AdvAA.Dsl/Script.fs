namespace AdvAA.Dsl

/// Experiment scripts in the script host: what `advaa run` and `advaa check` read.
[<RequireQualifiedAccess>]
module Script =
    /// The experiments of a script, with its warnings.
    [<NoEquality; NoComparison>]
    type Loaded =
        { Experiments: ScriptExperiments
          Warnings: ScriptError list }

    /// Compiles and runs the script (`fsi.CommandLineArgs` = the script, then `arguments`), reads
    /// its `experiments` (a list) if it defines one, else its `experiment`, applies the overrides
    /// and validates. Every problem names the script and, where known, the line.
    let load (path: string) (arguments: string list) (overrides: Overrides) (timeout: System.TimeSpan) : Result<Loaded, ScriptError list> =
        ScriptHost.evaluateScriptWithin timeout arguments path
        |> Result.bind (fun script ->
            use script = script
            let declared =
                if ScriptHost.defines script "demo" then
                    ScriptHost.value<Demo> script "demo" |> Result.map ScriptExperiments.Show
                elif ScriptHost.defines script "study" then
                    ScriptHost.value<Study> script "study" |> Result.map ScriptExperiments.Grid
                elif ScriptHost.defines script "experiments" then
                    ScriptHost.value<Experiment list> script "experiments" |> Result.map ScriptExperiments.Several
                else
                    ScriptHost.value<Experiment> script "experiment" |> Result.map ScriptExperiments.Single
            declared
            |> Result.bind (Experiment.resolveScript path overrides)
            |> Result.map (fun experiments -> { Experiments = experiments; Warnings = script.Warnings }))
