module AdvAA.Tests.ScriptHostTests

open System
open System.IO
open Expecto
open AdvAA.Dsl
open AdvAA.Tests.TestSupport

/// Script fixtures are used where they lie in the source tree (not copied to bin/): the `#I` of
/// their `dotnet fsi` prelude is relative to the repository, and error messages name real files.
let private script name = Path.Combine(__SOURCE_DIRECTORY__, "scripts", name)

let private ok (r: Result<'T, ScriptError list>) =
    match r with
    | Ok v -> v
    | Error problems -> failtestf "expected success, got:\n%s" (problems |> List.map ScriptError.format |> String.concat "\n")

let private problems (r: Result<'T, ScriptError list>) =
    match r with
    | Ok _ -> failtest "expected errors, the script succeeded"
    | Error problems -> problems

/// One session for the probe script, shared by the tests that read its values: creating an F#
/// interactive session is the costly part of evaluating a script.
let private probe = lazy (ok (ScriptHost.evaluateScript (script "probe.fsx")))

let private probeValue<'T> name = ok (ScriptHost.value<'T> probe.Value name)

[<Tests>]
let tests =
    testSequenced <| testList "scripthost" [
        test "a script's values are read back typed" {
            let lr = probeValue<Schedule> "lr"
            Expect.equal (Schedule.describe lr) "warmup 5 (step 0.1 ×0.2 at 60,120,160)" "the script's schedule"
            Expect.floatClose Accuracy.veryHigh (Schedule.at lr 2.5) 0.05 "its value"
            Expect.equal (probeValue<int> "answer") 42 "an int"
            Expect.equal (probeValue<obj> "answer") (box 42) "any value as obj"
            Expect.isEmpty probe.Value.Warnings "no warnings"
        }

        test "ADVAA_HOST is defined and IsHosted is true while the script runs, also in its tasks" {
            Expect.isTrue (probeValue<bool> "hostDefined") "ADVAA_HOST"
            Expect.isTrue (probeValue<bool> "hostedAtTopLevel") "top level"
            Expect.isTrue (probeValue<bool> "hostedInTask") "a task the script started"
            Expect.isFalse ScriptHost.IsHosted "false again after the evaluation"
        }

        test "the script runs against the host's assemblies, in its own folder, with an fsi object" {
            Expect.equal (probeValue<int64> "tensorSum") 15L "a TorchSharp op on the host's libtorch"
            Expect.equal (probeValue<string> "sourceDirectory") (Path.GetDirectoryName(script "probe.fsx")) "__SOURCE_DIRECTORY__"
            Expect.equal (probeValue<string[]> "commandLineArgs") [| script "probe.fsx" |] "fsi.CommandLineArgs: the script, as under dotnet fsi"
        }

        test "a missing value is an error naming it" {
            let errors = problems (ScriptHost.value<int> probe.Value "experiment")
            Expect.equal
                (errors |> List.map ScriptError.format)
                [ script "probe.fsx" + ": error: the script defines no top-level value 'experiment' (expected: let experiment = ...)" ]
                "message"
        }

        test "a value of the wrong type names both types" {
            let errors = problems (ScriptHost.value<string> probe.Value "answer")
            Expect.equal
                (errors |> List.map ScriptError.format)
                [ script "probe.fsx" + ": error: the script's value 'answer' is a System.Int32, but a System.String was expected" ]
                "message"
            let errors = problems (ScriptHost.value<Schedule list> probe.Value "lr")
            containsAll (ScriptError.format errors.Head) [ "'lr' is a AdvAA.Dsl.Schedule"; "Microsoft.FSharp.Collections.FSharpList<AdvAA.Dsl.Schedule>" ]
        }

        test "evaluate reads one value in one call" {
            Expect.equal (ok (ScriptHost.evaluate<int> (script "probe.fsx") "answer")) 42 "answer"
        }

        test "a compile error gives file:line:column, the FS code and no value" {
            let path = script "compile-error.fsx"
            let errors = problems (ScriptHost.evaluateScript path)
            let e = List.exactlyOne errors
            Expect.equal (e.File, e.Line, e.Column, e.Severity, e.Code) (path, 4, 38, ScriptSeverity.Error, Some "FS0001") "position and code"
            let text = ScriptError.format e
            Expect.stringStarts text (path + ":4:38: error FS0001: ") "formatted like the compiler"
            containsAll text [ "'float'"; "'string'" ]
        }

        test "an exception from the script's code names the script line, without a stack trace" {
            let path = script "runtime-error.fsx"
            let errors = problems (ScriptHost.evaluate<Schedule> path "lr")
            let e = List.exactlyOne errors
            Expect.equal (e.File, e.Line, e.Severity, e.Code) (path, 6, ScriptSeverity.Error, None) "the script line"
            Expect.isGreaterThan e.Column 0 "a column"
            Expect.equal
                (ScriptError.format e)
                (sprintf "%s:6:%d: error: Schedule.cosine: the length in epochs must be > 0, got -195" path e.Column)
                "the DSL's message and nothing else"
            Expect.isFalse ScriptHost.IsHosted "not hosted after a failed evaluation"
        }

        test "#r \"nuget: AdvAA…\" is the host's own assemblies; another version or another package is an error at its line" {
            use dir = new TempDir()
            let write (name: string) (text: string) =
                let path = dir.File name
                File.WriteAllText(path, text)
                path
            let body = "\nopen AdvAA.Dsl\nlet lr = Schedule.constant 0.25\n"
            // The host's version and looser forms, with a feed line: the script runs, its lines where they were.
            for reference in [ "AdvAA-cpu"; "AdvAA-cpu, " + ScriptHost.version; "advaa.dsl, *"; "AdvAA.Core, [0.0.1, 99.0.0)"; "TorchSharp-cpu, 0.107.0" ] do
                let path = write "ok.fsx" (sprintf "#i \"nuget: /no/such/feed\"\n#r \"nuget: %s\"%sfailwith \"line 5\"\n" reference body)
                let e = List.exactlyOne (problems (ScriptHost.evaluate<Schedule> path "lr"))
                Expect.equal (e.Line, e.Message) (5, "line 5") (sprintf "#r \"nuget: %s\": compiled and run, line numbers kept" reference)
            let path = write "newer.fsx" ("// a newer AdvAA\n#r \"nuget: AdvAA-cpu, 99.0.0\"" + body)
            let e = List.exactlyOne (problems (ScriptHost.evaluateScript path))
            Expect.equal (e.File, e.Line, e.Column) (path, 2, 1) "the reference's line"
            containsAll e.Message [ "AdvAA-cpu, 99.0.0"; "this advaa is version " + ScriptHost.version; "dotnet tool update --global advaa" ]
            let path = write "other.fsx" ("#r \"nuget: FSharp.Data, 6.4.0\"" + body)
            containsAll (List.exactlyOne (problems (ScriptHost.evaluateScript path))).Message [ "FSharp.Data"; "dotnet fsi"; "#if !ADVAA_HOST" ]
            // Inside #if !ADVAA_HOST a package is dotnet fsi's business alone.
            let path = write "guarded.fsx" ("#if !ADVAA_HOST\n#r \"nuget: FSharp.Data, 6.4.0\"\n#endif" + body)
            Expect.equal (Schedule.describe (ok (ScriptHost.evaluate<Schedule> path "lr"))) "0.25" "guarded: ignored"
        }

        test "a missing script is an error naming it" {
            let errors = problems (ScriptHost.evaluate<int> "no/such/script.fsx" "x")
            Expect.equal (errors |> List.map ScriptError.format) [ "no/such/script.fsx: error: the script file does not exist" ] "message"
        }

        test "compiled scripts are cached by content: a hit runs the script afresh; a changed script or #load-ed file, or a damaged entry, recompiles" {
            use dir = new TempDir()
            let cache = dir.File "cache"
            let before = Environment.GetEnvironmentVariable "ADVAA_SCRIPT_CACHE"
            Environment.SetEnvironmentVariable("ADVAA_SCRIPT_CACHE", cache)
            try
                let main = dir.File "main.fsx"
                let helper = dir.File "helper.fsx"
                File.WriteAllText(helper, "module Helper\nlet value = 1\n")
                File.WriteAllText(main, "#load \"helper.fsx\"\nlet answer = Helper.value + 1\nlet args = fsi.CommandLineArgs\nlet partial x = match x with 1 -> 0\n")
                let evaluated (arguments: string list) =
                    use s = ok (ScriptHost.evaluateScriptWith arguments main)
                    s.FromCache, ok (ScriptHost.value<int> s "answer"), ok (ScriptHost.value<string[]> s "args"), s.Warnings |> List.map ScriptError.format
                let cold, answer, args, warnings = evaluated [ "a" ]
                Expect.isFalse cold "the first evaluation compiles"
                Expect.equal (answer, args) (2, [| main; "a" |]) "its values"
                let warm, answer, args, warmWarnings = evaluated [ "b" ]
                Expect.isTrue warm "an unchanged script comes from the cache"
                Expect.equal (answer, args) (2, [| main; "b" |]) "and runs afresh, with the arguments of this evaluation"
                Expect.equal warmWarnings warnings "with the warnings of its compilation"
                Expect.isNonEmpty warnings "(the script has one)"
                File.WriteAllText(helper, "module Helper\nlet value = 10\n")
                let changed, answer, _, _ = evaluated []
                Expect.isFalse changed "a changed #load-ed file recompiles"
                Expect.equal answer 11 "with its new value"
                File.AppendAllText(main, "let more = 0\n")
                let changed, _, _, _ = evaluated []
                Expect.isFalse changed "a changed script recompiles"
                let entries = Directory.GetDirectories cache
                Expect.equal entries.Length 3 "one entry per content, no temporary folder left"
                for entry in entries do File.WriteAllText(Path.Combine(entry, "script.dll"), "damaged")
                let repaired, answer, _, _ = evaluated []
                Expect.isFalse repaired "a damaged entry is compiled again"
                Expect.equal answer 11 "and runs"
                let again, _, _, _ = evaluated []
                Expect.isTrue again "and cached again"
            finally
                Environment.SetEnvironmentVariable("ADVAA_SCRIPT_CACHE", before)
        }

        test "the same script runs under dotnet fsi, against the built CLI's assemblies" {
            let cli = releaseCli.Force()
            let code, out, err = runProcess repoRoot 300 "dotnet" [ "fsi"; script "probe.fsx" ]
            Expect.equal code 0 (sprintf "dotnet fsi exit code; stderr:\n%s" err)
            let report =
                out.Split('\n', StringSplitOptions.RemoveEmptyEntries ||| StringSplitOptions.TrimEntries)
                |> Array.choose (fun line ->
                    match line.Split('=', 2) with
                    | [| key; value |] -> Some(key, value)
                    | _ -> None)
                |> Map.ofArray
            let expected =
                [ "hostDefined", "false"
                  "hostedAtTopLevel", "false"
                  "hostedInTask", "false"
                  "commandLineArgs", script "probe.fsx"
                  "tensorSum", "15"
                  "libtorch", cli
                  "lr", "warmup 5 (step 0.1 ×0.2 at 60,120,160)"
                  "lr@2.5", "0.05" ]
            for key, value in expected do
                Expect.equal (report.TryFind key) (Some value) (sprintf "%s in the output:\n%s" key out)
        }
    ]
