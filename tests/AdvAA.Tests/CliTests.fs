module AdvAA.Tests.CliTests

open System
open System.Diagnostics
open System.IO
open System.Security.Cryptography
open System.Text.Json.Nodes
open Expecto
open AdvAA.Tests.TestSupport

/// Runs `advaa args` in this process; returns the exit code, stdout and stderr.
let cli (args: string list) =
    use out = new StringWriter()
    use err = new StringWriter()
    let oldOut, oldErr = Console.Out, Console.Error
    Console.SetOut out
    Console.SetError err
    try
        let code = AdvAA.Cli.Program.main (Array.ofList args)
        code, out.ToString(), err.ToString()
    finally
        Console.SetOut oldOut
        Console.SetError oldErr

/// Asserts an exit code, showing the output when it differs.
let expectCode (code, out: string, err: string) expected =
    Expect.equal code expected (sprintf "exit code; stdout:\n%s\nstderr:\n%s" out err)

/// No .NET stack trace in a message.
let noTrace (text: string) =
    Expect.isFalse (text.Contains "   at ") (sprintf "no stack trace:\n%s" text)

/// POSIX kill(2): sends a signal to a process.
[<System.Runtime.InteropServices.DllImport("libc", SetLastError = true)>]
extern int kill(int pid, int signal)

let private sigint = 2

/// Every file of a folder with its SHA-256: to show that a failed command changed nothing.
let snapshot (folder: string) =
    Directory.GetFiles(folder, "*", SearchOption.AllDirectories)
    |> Array.sort
    |> Array.map (fun f -> Path.GetRelativePath(folder, f), Convert.ToHexString(SHA256.HashData(File.ReadAllBytes f)))

/// The value at a path of object fields in a JSON document.
let jsonAt (path: string list) (node: JsonNode) : JsonNode =
    path |> List.fold (fun (n: JsonNode) (field: string) -> nonNull n[field]) node

let metricsLines (folder: string) =
    File.ReadAllLines(Path.Combine(folder, "metrics.jsonl")) |> Array.map (fun l -> JsonNode.Parse l |> nonNull)

let epochsOf (folder: string) =
    metricsLines folder |> Array.map (fun m -> (nonNull m["epoch"]).GetValue<int>()) |> List.ofArray

/// The flags of a tiny `advaa train` run: 64 training images, 50 test images, batch 32, M = 2.
let private tinyTrain = [ "--epochs"; "1"; "--batch"; "32"; "--instances"; "2"; "--train-limit"; "64"; "--test-limit"; "50"; "--device"; "cpu" ]

/// The same without M, for methods that take none.
let private tinyTrainOne = [ "--epochs"; "1"; "--batch"; "32"; "--train-limit"; "64"; "--test-limit"; "50"; "--device"; "cpu" ]

/// A tiny experiment script (baseline, 64 images, batch 32, 1 epoch) with `extra` lines after it.
let private script (dir: TempDir) (name: string) (lines: string list) =
    let path = dir.File name
    File.WriteAllLines(
        path,
        [ "open AdvAA.Dsl"
          ""
          "let experiment ="
          "    { Experiment.defaults with"
          "        Name = \"tiny\"; Method = Method.baseline; Epochs = 1; BatchSize = 32"
          "        TrainLimit = Some 64; TestLimit = Some 50; Device = \"cpu\" }"
          yield! lines ]
    )
    path

[<Tests>]
let tests =
    testSequenced <| testList "cli" [
        test "--help exits 0 for advaa and each command" {
            for args in [ [ "--help" ]; [ "run"; "--help" ]; [ "check"; "--help" ]; [ "train"; "--help" ] ] do
                let code, out, _ = cli args
                Expect.equal code 0 (sprintf "advaa %s" (String.concat " " args))
                Expect.stringContains out "USAGE: advaa" "usage text"
            let _, out, _ = cli [ "train"; "--help" ]
            containsAll out [ "--method"; "--resume"; "--train-limit"; "adversarial" ]
        }

        test "command-line mistakes exit 2" {
            expectCode (cli [ "fly" ]) 2
            expectCode (cli [ "train"; "--epochs"; "many" ]) 2
            expectCode (cli [ "run" ]) 2
            let code, _, err = cli [ "run"; "x.fsx"; "--out"; "a"; "--resume"; "b" ]
            Expect.equal code 2 "--out with --resume"
            Expect.stringContains err "--out and --resume exclude each other" "message"
            let code, _, err = cli [ "run"; "x.fsx"; "--bogus" ]
            Expect.equal code 2 "an unknown flag"
            Expect.stringContains err "unrecognized argument: '--bogus'" "message"
            expectCode (cli [ "train"; "--out"; "a"; "--resume"; "b" ]) 2
            let code, _, err = cli [ "train"; "--mix"; "mixup:0" ]
            Expect.equal code 2 "a bad --mix"
            Expect.stringContains err "mixup alpha = 0: expected a number above 0" "message"
            expectCode (cli [ "train"; "--mix"; "blend" ]) 2
        }

        test "train runs, records its options, and --resume continues from them" {
            use dir = new TempDir()
            let folder = dir.File "run"
            let code, out, err = cli ([ "train"; "--method"; "fixed"; "--out"; folder; "--seed"; "3" ] @ tinyTrain)
            expectCode (code, out, err) 0
            containsAll out [ "run      fixed-small: fixed, model small"; "epoch 1/1  train loss"; "test acc"; "img/s"; "ETA"; "final test accuracy"; folder ]
            Expect.equal (epochsOf folder) [ 1 ] "one epoch"
            let config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json"))) |> nonNull
            let origin = nonNull config["origin"]
            Expect.equal ((nonNull origin["program"]).GetValue<string>()) "advaa train" "program"
            let recorded = [ for a in (nonNull origin["arguments"]).AsArray() -> (nonNull a).GetValue<string>() ]
            containsAll (String.concat " " recorded) [ "--method fixed"; "--seed 3"; "--instances 2" ]
            Expect.isFalse (recorded |> List.contains "--out") "the folder is not an option"
            Expect.equal ((jsonAt [ "experiment"; "method"; "instances" ] config).GetValue<string>()) "2" "M = 2"
            // Continue to epoch 2 with the recorded options (method fixed, seed 3, M = 2).
            let code, out, err = cli [ "train"; "--resume"; folder; "--epochs"; "2" ]
            expectCode (code, out, err) 0
            Expect.stringContains out "epoch 2/2" "continues with epoch 2"
            Expect.isFalse (out.Contains "epoch 1/2") "does not repeat epoch 1"
            Expect.equal (epochsOf folder) [ 1; 2 ] "metrics of both epochs"
            let instances = metricsLines folder |> Array.map (fun m -> (nonNull m["instances"]).GetValue<int>())
            Expect.equal instances [| 2; 2 |] "M = 2 both times: the recorded options"
            let code, out, _ = cli [ "train"; "--resume"; folder; "--epochs"; "2" ]
            Expect.equal code 0 "a complete run"
            Expect.stringContains out "the run was already complete: 2 epochs" "nothing to do"
        }

        test "a limit above the data's size warns and config.json records the number used" {
            use dir = new TempDir()
            let folder = dir.File "run"
            let code, out, err = cli [ "train"; "--method"; "baseline"; "--epochs"; "1"; "--batch"; "64"; "--train-limit"; "5000"; "--test-limit"; "3000"; "--device"; "cpu"; "--out"; folder ]
            expectCode (code, out, err) 0
            containsAll out [ "warning  train limit 5000 is more than the 2000 training images: using 2000"; "warning  test limit 3000 is more than the 1000 test images: using 1000" ]
            let experiment = (AdvAA.Core.Training.RunFolder.Open folder).ReadConfig().Experiment
            Expect.equal (experiment.TrainLimit, experiment.TestLimit) (Nullable 2000L, Nullable 1000L) "the numbers used"
        }

        test "run and train say where the report goes, and write it with --report" {
            use dir = new TempDir()
            let plain = dir.File "plain"
            let code, out, err = cli ([ "train"; "--method"; "adversarial"; "--out"; plain ] @ tinyTrain)
            expectCode (code, out, err) 0
            containsAll out [ "report   advaa report " + plain ]
            Expect.isFalse (Directory.Exists(Path.Combine(plain, "report"))) "no report without --report"
            let reported = dir.File "reported"
            let code, out, err = cli ([ "train"; "--method"; "adversarial"; "--report"; "--out"; reported ] @ tinyTrain)
            expectCode (code, out, err) 0
            let index = Path.Combine(reported, "report", "index.html")
            containsAll out [ "report   " + index ]
            for file in [ "index.html"; "accuracy.png"; "op-distribution.png"; "policies.png" ] do
                Expect.isTrue (File.Exists(Path.Combine(reported, "report", file))) (file + " written")
        }

        test "train --resume refuses a checkpoint of another model and changes nothing" {
            use dir = new TempDir()
            let folder = dir.File "run"
            expectCode (cli ([ "train"; "--method"; "baseline"; "--out"; folder ] @ tinyTrain)) 0
            let before = snapshot folder
            let code, out, err = cli [ "train"; "--resume"; folder; "--model"; "resnet18"; "--epochs"; "2" ]
            expectCode (code, out, err) 1
            containsAll err [ "advaa: run folder"; "holds another run"; "model: recorded \"small\", now \"resnet18\"" ]
            noTrace err
            Expect.equal (snapshot folder) before "the run folder is unchanged"
        }

        test "train errors name the value, exit 1 and leave existing folders alone" {
            use dir = new TempDir()
            let existing = dir.File "existing"
            Directory.CreateDirectory existing |> ignore
            File.WriteAllText(Path.Combine(existing, "keep.txt"), "mine")
            let notData = dir.File "notdata.txt"
            File.WriteAllText(notData, "hello")
            let failing (args: string list) (parts: string list) =
                let code, out, err = cli ("train" :: args)
                expectCode (code, out, err) 1
                Expect.stringStarts err "advaa: " "one message"
                containsAll err parts
                noTrace err
            failing [ "--method"; "magic" ] [ "unknown method 'magic'"; "adversarial" ]
            failing [ "--model"; "vgg"; "--epochs"; "1" ] [ "unknown model 'vgg'" ]
            // A flag's value out of range is a usage error naming the flag, as an unparseable one is.
            let usage (args: string list) (message: string) =
                let code, out, err = cli ("train" :: args)
                expectCode (code, out, err) AdvAA.Dsl.ExitCode.usage
                Expect.equal (err.Trim()) message "the flag and its bound, not the experiment's field"
            usage [ "--instances"; "0" ] "--instances 0: expected at least 1"
            usage [ "--batch"; "0" ] "--batch 0: expected at least 1"
            usage [ "--epochs"; "0" ] "--epochs 0: expected at least 1"
            usage [ "--train-limit"; "0" ] "--train-limit 0: expected at least 1"
            usage [ "--test-limit"; "-3" ] "--test-limit -3: expected at least 1"
            usage [ "--lr"; "-1" ] "--lr -1: expected a rate above 0"
            usage [ "--cutout"; "-1" ] "--cutout -1: expected at least 0"
            Expect.equal (let code, _, _ = cli [ "train"; "--instances"; "abc" ] in code) AdvAA.Dsl.ExitCode.usage "an unparseable value: the same code"
            failing [ "--resume"; notData ] [ notData; "is a file, not a run folder" ]
            usage [ "--device"; "tpu" ] "--device tpu: expected auto, cpu, cuda or cuda:N"
            usage [ "--precision"; "fp8" ] "--precision fp8: expected auto, fp32 or bf16"
            usage [ "--memory-format"; "nhwc" ] "--memory-format nhwc: expected channels-last or nchw"
            // AdvAA's own argument checks read as messages, without .NET's "(Parameter 'name')".
            failing [ "--model"; "wrn-11-2"; "--epochs"; "1" ] [ "WideResNet depth 11 is not valid" ]
            failing [ "--dropout"; "0.5"; "--epochs"; "1" ] [ "model 'small' has no dropout" ]
            for args in [ [ "--model"; "wrn-11-2"; "--epochs"; "1" ]; [ "--dropout"; "0.5"; "--epochs"; "1" ] ] do
                let _, _, err = cli ("train" :: args)
                Expect.isFalse (err.Contains "(Parameter") (sprintf "no .NET parameter note: %s" err)
            failing [ "--method"; "cutout"; "--policy"; notData ] [ "--policy trains with method 'policy'"; "--method cutout" ]
            failing ([ "--data"; dir.File "missing" ] @ tinyTrain) [ dir.File "missing"; "no such file or folder" ]
            failing ([ "--data"; notData ] @ tinyTrain) [ notData; "not a data set" ]
            failing ([ "--out"; existing ] @ tinyTrain) [ existing; "already exists and is not empty" ]
            Expect.equal (Directory.GetFileSystemEntries existing |> Array.map Path.GetFileName) [| "keep.txt" |] "untouched"
            failing [ "--resume"; dir.File "nowhere" ] [ dir.File "nowhere"; "does not exist" ]
            failing [ "--resume"; existing ] [ existing; "config.json is missing" ]
            failing ([ "--batch"; "128"; "--train-limit"; "100"; "--out"; dir.File "small" ] @ [ "--epochs"; "1"; "--device"; "cpu" ]) [ "batch size 128"; "100 training images" ]
            Expect.isFalse (Directory.Exists(dir.File "small")) "no folder for a run that cannot start"
        }

        test "train --resume names a corrupt checkpoint and a run made by a script" {
            use dir = new TempDir()
            let folder = dir.File "run"
            expectCode (cli ([ "train"; "--method"; "baseline"; "--out"; folder ] @ tinyTrain)) 0
            let model = Directory.GetFiles(Path.Combine(folder, "checkpoint"), "model.bin", SearchOption.AllDirectories) |> Array.exactlyOne
            let bytes = File.ReadAllBytes model
            bytes[bytes.Length / 2] <- bytes[bytes.Length / 2] ^^^ 0xFFuy
            File.WriteAllBytes(model, bytes)
            let code, out, err = cli [ "train"; "--resume"; folder; "--epochs"; "2" ]
            expectCode (code, out, err) 1
            containsAll err [ model; "corrupt" ]
            let config = Path.Combine(folder, "config.json")
            File.WriteAllText(config, File.ReadAllText(config).Replace("\"advaa train\"", "\"advaa run\""))
            let code, out, err = cli [ "train"; "--resume"; folder ]
            expectCode (code, out, err) 1
            containsAll err [ "was made by `advaa run`, not `advaa train`"; "--resume " + folder ]
        }

        test "methods lists every method with its parameters; an unknown one is named" {
            let code, out, err = cli [ "methods" ]
            expectCode (code, out, err) 0
            for entry in AdvAA.Core.Methods.MethodRegistry.All do
                Expect.stringContains out (entry.Name + "  " + entry.Description) entry.Name
            containsAll out [ "controller_lr       number    0.00035   0..10"; "--param name=value" ]
            let code, out, _ = cli [ "methods"; "randaugment" ]
            Expect.equal code 0 "one method"
            containsAll out [ "n          integer   2"; "m          integer   9   0..30" ]
            Expect.isFalse (out.Contains "adversarial") "only the one asked for"
            let code, out, err = cli [ "methods"; "magic" ]
            expectCode (code, out, err) 1
            containsAll err [ "advaa: unknown method 'magic'" ]
        }

        test "--param sets any method parameter; a bad name or value is an error naming it" {
            use dir = new TempDir()
            let folder = dir.File "run"
            let code, out, err = cli ([ "train"; "--method"; "randaugment"; "--param"; "n=3"; "--param"; "randaugment.m=12"; "--cutout"; "0"; "--out"; folder ] @ tinyTrain)
            expectCode (code, out, err) 0
            let m = jsonAt [ "experiment"; "method" ] (JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json"))) |> nonNull)
            Expect.equal ((nonNull m["n"]).GetValue<int>(), (nonNull m["m"]).GetValue<int>(), (nonNull m["cutout"]).GetValue<int>()) (3, 12, 0) "recorded"
            let failing (args: string list) (code: int) (parts: string list) =
                let c, out, err = cli ("train" :: args @ [ "--out"; dir.File "never" ] @ tinyTrainOne)
                expectCode (c, out, err) code
                containsAll err parts
                Expect.isFalse (Directory.Exists(dir.File "never")) "nothing written"
            failing [ "--param"; "n" ] 2 [ "--param n: expected name=value" ]
            failing [ "--method"; "randaugment"; "--param"; "depth=3" ] 1 [ "method 'randaugment' has no parameter 'depth'"; "n, m" ]
            failing [ "--method"; "randaugment"; "--param"; "m=99" ] 1 [ "randaugment.m = 99"; "0..30" ]
            failing [ "--method"; "adversarial"; "--param"; "hidden=lots" ] 1 [ "adversarial.hidden = lots: expected an integer" ]
            failing [ "--method"; "uncertainty"; "--instances"; "2" ] 1 [ "method 'uncertainty' has no parameter 'instances'" ]
            failing [ "--from"; dir.File "nowhere" ] 1 [ "transfer.from = " + dir.File "nowhere"; "does not exist" ]
            failing [ "--from"; folder ] 1 [ "records no policies"; "adversarial, random" ]
            failing [ "--from"; folder; "--policy"; folder ] 1 [ "--policy and --from exclude each other" ]
        }

        test "policy export writes a run's policies that --policy trains with; bad exports name the problem and write nothing" {
            use dir = new TempDir()
            let source = dir.File "source"
            expectCode (cli ([ "train"; "--method"; "adversarial"; "--epochs"; "2"; "--out"; source ] @ List.skip 2 tinyTrain)) 0
            let file = dir.File "p.json"
            let code, out, err = cli [ "policy"; "export"; source; "--epoch"; "1"; "--out"; file ]
            expectCode (code, out, err) 0
            containsAll out [ "wrote " + file; "2 policies, one per instance"; source + ", epoch 1" ]
            let document = AdvAA.Core.Augment.PolicyJson.ReadDocument file
            Expect.equal (document.Policies.Count, document.PerInstance) (2, true) "M = 2 policies"
            let recorded = (AdvAA.Core.Training.RunFolder.Open(source).ReadPolicies()).[0].Policies |> List.ofSeq
            Expect.equal (List.ofSeq document.Policies) recorded "epoch 1's policies"
            let replay = dir.File "replay"
            let code, out, err = cli ([ "train"; "--policy"; file; "--out"; replay ] @ tinyTrain)
            expectCode (code, out, err) 0
            containsAll out [ "run      policy-small: policy" ]
            let failing (args: string list) (parts: string list) =
                let code, out, err = cli ("policy" :: "export" :: args)
                expectCode (code, out, err) 1
                containsAll err parts
                noTrace err
            failing [ source; "--epoch"; "7"; "--out"; dir.File "e7.json" ] [ source + " has no epoch 7"; "epochs 1..2" ]
            failing [ source; "--out"; file ] [ file + " already exists" ]
            failing [ dir.File "nowhere"; "--out"; dir.File "x.json" ] [ dir.File "nowhere"; "does not exist" ]
            let plain = dir.File "plain"
            expectCode (cli ([ "train"; "--method"; "baseline"; "--out"; plain ] @ tinyTrain)) 0
            failing [ plain; "--out"; dir.File "b.json" ] [ plain + " (method baseline) records no policies" ]
            for f in [ "e7.json"; "x.json"; "b.json" ] do
                Expect.isFalse (File.Exists(dir.File f)) (f + " is not written")
            expectCode (cli [ "policy"; "export"; source ]) 2
        }

        test "train --resume refuses a changed policy file, naming what changed, and counts progress from the checkpoint" {
            use dir = new TempDir()
            let policy = dir.File "p.json"
            File.WriteAllText(policy, """{ "format": "advaa-policy", "version": 1, "subPolicies": [ [ { "op": "Rotate", "level": 3 } ] ] }""")
            let folder = dir.File "run"
            expectCode (cli ([ "train"; "--policy"; policy; "--out"; folder ] @ tinyTrain)) 0
            File.WriteAllText(policy, """{ "format": "advaa-policy", "version": 1, "subPolicies": [ [ { "op": "Rotate", "level": 5 } ] ] }""")
            let before = snapshot folder
            let code, out, err = cli [ "train"; "--resume"; folder; "--epochs"; "2" ]
            expectCode (code, out, err) 1
            containsAll err [ folder; "method.policy.subPolicies[0][0].level: recorded 3, now 5"; "from " + policy ]
            Expect.equal (snapshot folder) before "nothing changed"
            // A cut last metrics line: the checkpoint says the run is complete, and the line comes back.
            File.WriteAllText(policy, """{ "format": "advaa-policy", "version": 1, "subPolicies": [ [ { "op": "Rotate", "level": 3 } ] ] }""")
            let metrics = Path.Combine(folder, "metrics.jsonl")
            let text = File.ReadAllText metrics
            File.WriteAllText(metrics, text.Substring(0, text.Length / 2))
            let code, out, err = cli [ "train"; "--resume"; folder ]
            expectCode (code, out, err) 0
            Expect.stringContains out "the run was already complete: 1 epoch" "complete by its checkpoint"
            Expect.equal (epochsOf folder) [ 1 ] "the cut line is rebuilt"
        }

        test "run trains a script, with flags overriding it, and --resume continues it" {
            use dir = new TempDir()
            let path = script dir "tiny.fsx" []
            let folder = dir.File "run"
            let code, out, err = cli [ "run"; path; "--out"; folder; "--seed"; "4" ]
            expectCode (code, out, err) 0
            containsAll out [ "run      tiny: baseline"; "epoch 1/1"; "done     tiny: 1 epoch, final test accuracy"; folder ]
            Expect.isEmpty err "no warnings"
            let config = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "config.json"))) |> nonNull
            Expect.equal ((jsonAt [ "experiment"; "seed" ] config).GetValue<int64>()) 4L "--seed overrides the script"
            let code, out, err = cli [ "run"; path; "--epochs"; "2"; "--seed"; "4"; "--resume"; folder ]
            expectCode (code, out, err) 0
            Expect.equal (epochsOf folder) [ 1; 2 ] "continued to epoch 2"
            Expect.isFalse (out.Contains "epoch 1/2") "epoch 1 is not trained again"
        }

        test "script errors: file:line:column (a bad field at its own line), exit 3, no stack trace" {
            use dir = new TempDir()
            let expectScriptError (args: string list) (expected: string list) =
                let code, out, err = cli args
                expectCode (code, out, err) 3
                containsAll err expected
                noTrace err
            let typo = dir.File "typo.fsx"
            File.WriteAllLines(typo, [ "open AdvAA.Dsl"; "let experiment = { Experiment.defaults with Epochs = \"ten\" }" ])
            expectScriptError [ "run"; typo ] [ typo + ":2:"; "error FS0001" ]
            expectScriptError [ "check"; typo ] [ typo + ":2:"; "error FS0001" ]
            let bad = dir.File "bad.fsx"
            File.WriteAllLines(bad, [ "open AdvAA.Dsl"; ""; "let experiment ="; "    { Experiment.defaults with"; "        Name = \"tiny\"; Epochs = 0 }" ])
            expectScriptError [ "run"; bad ] [ bad + ":5:24: error: epochs = 0: expected at least 1" ]
            // Core's message names the setting in words; the error still points at the field's line.
            let batch = dir.File "batch.fsx"
            File.WriteAllLines(batch, [ "open AdvAA.Dsl"; "let experiment ="; "    { Experiment.defaults with"; "        Name = \"tiny\""; "        // BatchSize = 32"; "        BatchSize = 0 }" ])
            expectScriptError [ "check"; batch ] [ batch + ":6:9: error: batch size = 0: expected at least 1" ]
            let code, _, err = cli [ "run"; script dir "good.fsx" []; "--epochs"; "0" ]
            Expect.equal (code, err.Trim()) (AdvAA.Dsl.ExitCode.usage, "--epochs 0: expected at least 1") "a flag's bound is the flag's error"
            let throws = script dir "throws.fsx" [ "let broken = Space.paper |> Space.range \"Rotate\" (40.0, 10.0)" ]
            expectScriptError [ "run"; throws ] [ throws + ":7:"; "Space.range Rotate: lo = 40 is above hi = 10" ]
            let none = dir.File "none.fsx"
            File.WriteAllText(none, "let answer = 42\n")
            expectScriptError [ "run"; none ] [ "defines no top-level value 'experiment'" ]
            expectScriptError [ "check"; dir.File "missing.fsx" ] [ dir.File "missing.fsx"; "does not exist" ]
        }

        test "check prints the resolved experiment with the flags applied" {
            use dir = new TempDir()
            let path = script dir "tiny.fsx" []
            let code, out, err = cli [ "check"; path; "--epochs"; "7"; "--data"; dir.File "cifar"; "--out"; dir.File "there" ]
            expectCode (code, out, err) 0
            containsAll out [ "name           tiny"; "method         baseline"; "epochs         7, batch 32"; dir.File "cifar" + " (not found here)"; "run folder     " + dir.File "there" ]
            Expect.isFalse (Directory.Exists(dir.File "there")) "check creates nothing"
        }

        test "an error while training (a custom op that fails) exits 1 with its message" {
            use dir = new TempDir()
            let path = dir.File "failing-op.fsx"
            File.WriteAllLines(
                path,
                [ "open AdvAA.Dsl"
                  "let broken = Space.custom \"Broken\" (0.0, 1.0) (fun images _ -> failwith \"not today\")"
                  "let experiment ="
                  "    { Experiment.defaults with"
                  "        Space = Space.ofOps [ \"Identity\" ] |> Space.add broken |> Space.without [ \"Identity\" ]"
                  "        Epochs = 1; BatchSize = 32; TrainLimit = Some 64; TestLimit = Some 50; Device = \"cpu\" }" ]
            )
            let code, out, err = cli [ "run"; path; "--out"; dir.File "run" ]
            expectCode (code, out, err) 1
            containsAll err [ "advaa: custom op 'Broken' failed"; "not today" ]
            noTrace err
        }

        test "Ctrl+C stops after a checkpoint, exits 130 and says how to continue" {
            // A shell starts background jobs with SIGINT ignored; children inherit that and .NET keeps it.
            let ignored =
                File.Exists "/proc/self/status"
                && File.ReadAllLines "/proc/self/status"
                   |> Array.exists (fun l -> l.StartsWith "SigIgn:" && (Convert.ToUInt64(l.Substring(7).Trim(), 16) &&& 2UL) <> 0UL)
            if ignored then skiptest "SIGINT is ignored by this test process (started in the background by a shell), so no child of it can receive Ctrl+C"
            use dir = new TempDir()
            let path = script dir "tiny.fsx" []
            let folder = dir.File "run"
            let cliDll = Path.Combine(AppContext.BaseDirectory, "advaa.dll")
            // Far more epochs than can pass before the signal arrives.
            let info = ProcessStartInfo("dotnet", [ cliDll; "run"; path; "--epochs"; "1000"; "--out"; folder ])
            info.RedirectStandardOutput <- true
            info.RedirectStandardError <- true
            info.UseShellExecute <- false
            use p = Process.Start info
            let stderr = p.StandardError.ReadToEndAsync()
            let lines = ResizeArray<string>()
            let mutable line = p.StandardOutput.ReadLine()
            while not (isNull line) && not (line.StartsWith "epoch ") do
                lines.Add line
                line <- p.StandardOutput.ReadLine()
            if isNull line then failtestf "no epoch line; output:\n%s\n%s" (String.concat "\n" lines) stderr.Result
            // A second writer is refused while this one trains, naming it.
            let code, out, err = cli [ "run"; path; "--epochs"; "1000"; "--resume"; folder ]
            expectCode (code, out, err) 1
            containsAll err [ folder + " is in use by process " + string p.Id; "advaa run" ]
            Expect.equal (kill (p.Id, sigint)) 0 "SIGINT sent"
            let restAsync = p.StandardOutput.ReadToEndAsync()
            if not (p.WaitForExit 120_000) then
                p.Kill true
                failtest "the run did not stop within 2 minutes of Ctrl+C"
            let rest = restAsync.Result
            Expect.equal p.ExitCode 130 (sprintf "exit code; stderr:\n%s" stderr.Result)
            containsAll rest [ "Ctrl+C: stopping after this epoch's checkpoint"; "stopped  after epoch"; "of 1000"; "--epochs 1000 --resume " + folder ]
            let finished = epochsOf folder
            Expect.isLessThan finished.Length 1000 "stopped early"
            Expect.equal finished [ 1 .. finished.Length ] "every finished epoch recorded"
            // The command it printed continues the run.
            let code, out, err = cli [ "run"; path; "--epochs"; string (finished.Length + 1); "--resume"; folder ]
            expectCode (code, out, err) 0
            Expect.equal (epochsOf folder) [ 1 .. finished.Length + 1 ] "one more epoch"
        }
    ]
