module AdvAA.Tests.ExampleTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open AdvAA.Tests.TestSupport
open AdvAA.Tests.CliTests

let private example name = Path.Combine(repoRoot, "examples", name)

/// Tiny budgets for the examples: one or two steps on a few images.
let private tiny = [ "--train-limit"; "64"; "--test-limit"; "50" ]

let private config (folder: string) = File.ReadAllText(Path.Combine(folder, "config.json")) |> JsonNode.Parse |> nonNull

let private text (path: string list) (node: JsonNode) = (jsonAt path node).GetValue<string>()

let private items (node: JsonNode) = [ for x in node.AsArray() -> nonNull x ]

[<Tests>]
let tests =
    testSequenced <| testList "examples" [
        test "quickstart runs through advaa run" {
            use dir = new TempDir()
            let folder = dir.File "run"
            let code, out, err = cli ([ "run"; example "quickstart.fsx"; "--epochs"; "1"; "--out"; folder ] @ tiny)
            expectCode (code, out, err) 0
            containsAll out [ "run      quickstart: adversarial, model small"; "epoch 1/1"; "done     quickstart: 1 epoch" ]
            let c = config folder
            Expect.equal (text [ "experiment"; "method"; "instances" ] c, text [ "experiment"; "device" ] c) ("4", "cpu") "M = 4 on the CPU"
            Expect.equal (text [ "experiment"; "learning_rate" ] c) "cosine 0.1→0 over 1" "the paper's cosine over the overridden epochs"
            Expect.equal (epochsOf folder) [ 1 ] "one epoch"
        }

        test "quickstart runs unchanged under dotnet fsi against the working tree (ADVAA_DEV), with the same flags" {
            let cli = releaseCli.Force()
            Expect.isTrue (File.Exists(Path.Combine(cli, "advaa.dll"))) "the Release CLI the script's #I names"
            use dir = new TempDir()
            let folder = dir.File "run"
            let fsi = [ "fsi"; "--define:ADVAA_DEV"; example "quickstart.fsx" ]
            let code, out, err = runProcess repoRoot 600 "dotnet" (fsi @ [ "--epochs"; "1"; "--out"; folder ] @ tiny)
            expectCode (code, out, err) 0
            containsAll out [ "epoch 1/1"; "done     quickstart: 1 epoch"; folder ]
            Expect.equal (epochsOf folder) [ 1 ] "one epoch"
            let origin = jsonAt [ "origin" ] (config folder)
            Expect.equal (text [ "program" ] origin) "dotnet fsi" "started by dotnet fsi"
            let code, out, err = runProcess repoRoot 600 "dotnet" (fsi @ [ "--epochs"; "0" ])
            expectCode (code, out, err) AdvAA.Dsl.ExitCode.usage
            containsAll err [ "--epochs 0: expected at least 1" ]
        }

        test "cifar checks as the paper's setup, data from its argument or CIFAR10_DIR" {
            let code, out, err = cli [ "check"; example "cifar.fsx" ]
            expectCode (code, out, err) 0
            containsAll out
                [ "model          wrn-28-10"
                  "epochs         200, batch 128 per instance"
                  "learning rate  step 0.1 ×0.2 at 60,120,160 (SGD, momentum 0.9, Nesterov, weight decay 0.0005)"
                  "method         adversarial"
                  "parameters     cutout = 16, instances = 8, sub_policies = 5, ops_per_sub_policy = 2"
                  "search space   16 ops, 10 levels" ]
            use dir = new TempDir()
            let _, out, _ = cli [ "check"; example "cifar.fsx"; dir.Path; "--epochs"; "1" ]
            containsAll out [ "data           " + dir.Path + "\n"; "epochs         1," ]
            let previous = Environment.GetEnvironmentVariable "CIFAR10_DIR"
            Environment.SetEnvironmentVariable("CIFAR10_DIR", dir.File "from-env")
            try
                let _, out, _ = cli [ "check"; example "cifar.fsx" ]
                Expect.stringContains out (dir.File "from-env" + " (not found here)") "CIFAR10_DIR"
            finally
                Environment.SetEnvironmentVariable("CIFAR10_DIR", previous)
        }

        test "imagenet checks as the paper's ResNet-50 setup and trains an epoch on a folder of variable-size JPEGs" {
            let code, out, err = cli [ "check"; example "imagenet.fsx" ]
            expectCode (code, out, err) 0
            containsAll out
                [ "model          resnet50"
                  "image size     224x224"
                  "search space   16 ops, 10 levels, pixel ranges for 224x224:"
                  "TranslateX     0 → 100.8"
                  "epochs         120, batch 256 per instance"
                  "learning rate  warmup 5 (step 0.8 ×0.1 at 30,60,90) (SGD, momentum 0.9, Nesterov, weight decay 0.0001)"
                  "parameters     cutout = 0, instances = 8," ]
            use dir = new TempDir()
            let data = dir.File "imagenet"
            StreamingTests.variableFolder data 12 6 40 120
            let folder = dir.File "run"
            let previous = Environment.GetEnvironmentVariable "IMAGENET_DIR"
            Environment.SetEnvironmentVariable("IMAGENET_DIR", data)
            try
                let code, out, err =
                    cli [ "run"; example "imagenet.fsx"; "--epochs"; "1"; "--batch"; "4"; "--image-size"; "32"; "--param"; "instances=2"; "--workers"; "2"; "--out"; folder ]
                expectCode (code, out, err) 0
                containsAll out [ "run      imagenet-resnet50: adversarial, model resnet50"; "epoch 1/1"; "done     imagenet-resnet50: 1 epoch" ]
            finally
                Environment.SetEnvironmentVariable("IMAGENET_DIR", previous)
            let c = config folder
            Expect.equal (text [ "experiment"; "data" ] c) data "the data from IMAGENET_DIR"
            Expect.equal ((jsonAt [ "experiment"; "image_size" ] c).GetValue<int>()) 32 "S from --image-size"
            Expect.equal (epochsOf folder) [ 1 ] "one epoch"
        }

        test "tanda trains its generator in stage 1, then the classifier on its sequences" {
            use dir = new TempDir()
            let folder = dir.File "run"
            let code, out, err = cli ([ "run"; example "tanda.fsx"; "--epochs"; "1"; "--param"; "tan_epochs=1"; "--param"; "samples=2"; "--out"; folder ] @ tiny)
            expectCode (code, out, err) 0
            containsAll out [ "run      tanda: tanda, model small"; "stage 1  epoch 1/1"; "generator/random loss"; "epoch 1/1"; "done     tanda: 1 epoch" ]
            let c = config folder
            Expect.equal (text [ "experiment"; "method"; "generator" ] c) "lstm" "the LSTM generator"
            Expect.stringStarts (text [ "experiment"; "method"; "tfs" ] c) "Rotate:2, Rotate:5, Rotate:8, ShearX:2" "the script's TFs, recorded"
            Expect.isTrue (File.Exists(Path.Combine(folder, "stage1", "samples.png"))) "stage 1's sample grid"
            Expect.equal (epochsOf folder) [ 1 ] "one epoch of the classifier"
        }

        test "custom-space trains with its F# ops, its space and its magnitude schedule" {
            use dir = new TempDir()
            let folder = dir.File "run"
            let code, out, err = cli ([ "run"; example "custom-space.fsx"; "--epochs"; "2"; "--out"; folder ] @ tiny)
            expectCode (code, out, err) 0
            let c = config folder
            let ops = items (jsonAt [ "experiment"; "search_space"; "ops" ] c) |> List.map (text [ "name" ])
            containsAll (String.concat "," ops) [ "Identity,GaussianNoise,SwapRedBlue" ]
            Expect.isFalse (List.contains "Invert" ops) "Invert removed"
            Expect.equal (text [ "experiment"; "method"; "magnitude_scale" ] c) "linear 0.3→1 over 10" "the magnitude schedule"
            let sampled =
                [ for line in File.ReadAllLines(Path.Combine(folder, "policies.jsonl")) do
                    let record = JsonNode.Parse line |> nonNull
                    for policy in items (jsonAt [ "policies" ] record) do
                        for sub in items policy do
                            for stage in items sub -> (nonNull stage[0]).GetValue<string>() ]
            Expect.equal sampled.Length (2 * 4 * 5 * 2) "2 epochs x M = 4 x 5 sub-policies x 2 ops"
            Expect.isTrue (sampled |> List.forall (fun op -> List.contains op ops)) "every sampled op is in the space"
        }

        test "baselines runs every method in turn, prints a table, and resumes as a group" {
            use dir = new TempDir()
            let group = dir.File "group"
            let names = [ "baseline"; "fixed"; "random"; "adversarial"; "autoaugment"; "hand-written" ]
            let code, out, err = cli ([ "run"; example "baselines.fsx"; "--epochs"; "1"; "--out"; group ] @ tiny)
            expectCode (code, out, err) 0
            let header = out.Split('\n') |> Array.findIndex (fun l -> l.StartsWith "experiment" && l.Contains "final acc")
            let rows = out.Split('\n')[header + 1 .. header + names.Length]
            Expect.equal (rows |> Array.map (fun r -> r.Split(' ')[0]) |> List.ofArray) names "one row per experiment, in order"
            Expect.stringContains rows[5] "policy" "the hand-written policy's method"
            for name in names do
                Expect.equal (epochsOf (Path.Combine(group, name))) [ 1 ] name
            let code, out, err = cli ([ "run"; example "baselines.fsx"; "--epochs"; "2"; "--resume"; group ] @ tiny)
            expectCode (code, out, err) 0
            for name in names do
                Expect.equal (epochsOf (Path.Combine(group, name))) [ 1; 2 ] (name + " continued")
            Expect.stringContains out "2/2" "the table shows the continued runs"
        }

        test "patching checks as CAMEL on the benchmark it is given, and trains on it" {
            use dir = new TempDir()
            let benchmark = dir.File "spurious"
            use sample = AdvAA.Core.Data.DataSources.EmbeddedSample()
            let d = AdvAA.Core.Data.SpuriousBenchmark.Settings.AnimalVsVehicle
            AdvAA.Core.Data.SpuriousBenchmark.Write(sample, benchmark,
                AdvAA.Core.Data.SpuriousBenchmark.Settings(d.FirstName, d.First, d.SecondName, d.Second, TrainPerClass = 70, ValPerGroup = 5, TestPerGroup = 10, Correlation = 0.9)) |> ignore
            let code, out, err = cli [ "check"; example "patching.fsx"; benchmark ]
            expectCode (code, out, err) 0
            containsAll out [ "data           " + benchmark; "method         camel"; "translations = learned"; "consistency = 10"; "gan_epochs = 3" ]
            let folder = dir.File "run"
            let code, out, err = cli [ "run"; example "patching.fsx"; benchmark; "--epochs"; "1"; "--param"; "gan_epochs=1"; "--param"; "gan_filters=4"; "--out"; folder ]
            expectCode (code, out, err) 0
            containsAll out [ "stage 1  epoch 1/1"; "animal: cycle"; "robust (worst group)"; "done     patching: 1 epoch" ]
            Expect.isTrue (File.Exists(Path.Combine(folder, "stage1", "grid.png"))) "stage 1's grid"
        }
    ]
