module AdvAA.Tests.StudyTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open AdvAA.Core
open AdvAA.Core.Training
open AdvAA.Dsl
open AdvAA.Tests.TestSupport

/// Two arms x two seeds of tiny runs on the embedded sample.
let private tinyStudy =
    let common =
        { Experiment.defaults with
            Epochs = 2; BatchSize = 32; TrainLimit = Some 64; TestLimit = Some 50; ValidationSize = Some 20; EvalEvery = 2; Device = "cpu" }
    { Name = "tiny-study"
      Seeds = [ 1L; 2L ]
      Arms =
        [ { common with Name = "baseline"; Method = Method.baseline }
          { common with Name = "adversarial"; Method = Method.adversarial |> Method.instances (Schedule.constant 2.0) } ] }

let private session (out: TextWriter) =
    { Display = { Out = out; Live = false }
      Cancel = Threading.CancellationToken.None
      Program = [ "advaa"; "run" ]
      Arguments = [ "study.fsx" ]
      Report = false
      Ranks = None }

let private number (node: JsonNode | null) = (nonNull node).GetValue<float>()

[<Tests>]
let tests =
    testSequenced <| testList "study" [
        test "a study runs every arm with every seed, summarises over the seeds and resumes" {
            use dir = new TempDir()
            let folder = dir.File "study"
            use out = new StringWriter()
            let code = Experiment.execute (session out) (Some folder) None (ScriptExperiments.Grid tinyStudy)
            Expect.equal code ExitCode.ok (out.ToString())
            let runs = [ "baseline-s1"; "adversarial-s1"; "baseline-s2"; "adversarial-s2" ]
            for run in runs do
                Expect.isTrue (File.Exists(Path.Combine(folder, run, "metrics.jsonl"))) (run + " ran")
            let metrics run = RunFolder.Open(Path.Combine(folder, run)).ReadMetrics()
            let m = metrics "baseline-s1"
            Expect.isFalse m[0].TestAccuracy.HasValue "epoch 1 is not evaluated (every 2 epochs)"
            Expect.isTrue (m[1].TestAccuracy.HasValue && m[1].ValidationAccuracy.HasValue && m[1].CleanTrainAccuracy.HasValue) "epoch 2: test, validation and clean-train accuracy"
            let summary = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "summary.json"))) |> nonNull
            let arms = (nonNull summary["arms"]).AsArray()
            Expect.equal arms.Count 2 "one entry per arm"
            let baseline = nonNull arms[0]
            let finals = [ for run in [ "baseline-s1"; "baseline-s2" ] -> (metrics run).[1].TestAccuracy.Value ]
            let mean, sd = StudyReport.meanSd finals
            let final = nonNull baseline["final_test_accuracy"]
            Expect.floatClose Accuracy.high (number final["mean"]) mean "the mean over seeds"
            Expect.floatClose Accuracy.high (number final["sd"]) sd "the sd over seeds"
            Expect.isNotNull ((nonNull arms[1])["controller"]) "the adversarial arm's controller movement"
            let share (arm: JsonNode | null) (name: string) = let stats = (nonNull arm).[name] in number (nonNull stats).["mean"]
            let augment = share arms[1] "augment_share"
            Expect.isTrue (augment > 0.0 && augment < 1.0) (sprintf "adversarial: a share of its time augmenting (%g)" augment)
            Expect.isGreaterThan (share arms[1] "controller_share") 0.0 "and in its controller"
            Expect.isLessThan (share baseline "controller_share") 0.01 "baseline has no controller (its no-op hook only)"
            Expect.isNull (summary["controller_noise"]) "exact distributions: no counting noise to show"
            let md = File.ReadAllText(Path.Combine(folder, "summary.md"))
            containsAll md [ "# Study tiny-study"; "| baseline | baseline"; "| adversarial | adversarial"; "clean train"; "augment, controller"; "test-curves.png"; "controller-movement.png"; "exact distributions"; "ops moved per update"; "Paired differences, baseline − arm"; "| adversarial | 2 |" ]
            let machine = AdvAA.Core.Backend.Machine.Describe()
            let precision = RunFolder.Open(Path.Combine(folder, "baseline-s1")).ReadConfig().Experiment.Precision
            containsAll md [ sprintf "Machine: %s." machine; sprintf "Precision: %s." precision ]
            Expect.equal ((nonNull (nonNull summary["machines"]).[machine]).AsArray().Count) 4 "summary.json: every run on this machine"
            for png in [ "test-curves.png"; "controller-movement.png" ] do
                Expect.equal (File.ReadAllBytes(Path.Combine(folder, png))).[1..3] "PNG"B (png + " is a PNG")
            Expect.equal (number summary["runs_finished"], number summary["runs_total"]) (4.0, 4.0) "every run finished"
            // While a study runs, the summary covers the runs finished so far.
            StudyReport.write folder tinyStudy.Name [ "baseline"; "adversarial" ] tinyStudy.Seeds (set [ "baseline-s1"; "adversarial-s1"; "baseline-s2" ]) |> ignore
            let partial = File.ReadAllText(Path.Combine(folder, "summary.md"))
            containsAll partial [ "Partial: 3 of 4 runs finished"; "| 1, 2 |"; "| 1 |" ]
            let partialJson = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "summary.json"))) |> nonNull
            let adversarial = nonNull ((nonNull partialJson["arms"]).AsArray()[1])
            let adversarialFinal = nonNull adversarial["final_test_accuracy"]
            Expect.equal (number adversarialFinal["sd"]) 0.0 "one seed so far: sd 0"
            Expect.equal (number partialJson["runs_finished"]) 3.0 "three runs so far"
            // A rerun of the same study trains nothing more; one with another grid is refused.
            use again = new StringWriter()
            Expect.equal (Experiment.execute (session again) None (Some folder) (ScriptExperiments.Grid tinyStudy)) ExitCode.ok "complete"
            containsAll (again.ToString()) [ "the run was already complete" ]
            // study.json records each run's experiment as config.json does; a folder of the format before
            // (a few settings by hand, no format_version) is still resumed, and rewritten in the new one.
            let studyPath = Path.Combine(folder, "study.json")
            let written = JsonNode.Parse(File.ReadAllText studyPath) |> nonNull
            Expect.equal (number written["format_version"]) 2.0 "format 2"
            let legacy = JsonObject()
            legacy["format"] <- JsonValue.Create "advaa-study"
            legacy["name"] <- JsonValue.Create tinyStudy.Name
            let legacyRuns = JsonObject()
            for kv in (nonNull written["runs"]).AsObject() do
                let entry = (nonNull kv.Value).AsObject()
                let old = JsonObject()
                for key in [ "method"; "model"; "epochs"; "batch_size"; "seed"; "data"; "learning_rate"; "train_limit"; "test_limit"; "validation_size"; "eval_every"; "precision"; "memory_format" ] do
                    old[key] <- (match entry[key] with null -> null | v -> v.DeepClone())
                if isNull old["data"] then old["data"] <- JsonValue.Create "(embedded sample)"
                legacyRuns[kv.Key] <- old
            legacy["runs"] <- legacyRuns
            File.WriteAllText(studyPath, legacy.ToJsonString())
            use legacyOut = new StringWriter()
            Expect.equal (Experiment.execute (session legacyOut) None (Some folder) (ScriptExperiments.Grid tinyStudy)) ExitCode.ok "a format-1 study.json resumes"
            Expect.equal (number (JsonNode.Parse(File.ReadAllText studyPath) |> nonNull).["format_version"]) 2.0 "and is rewritten as format 2"
            let other = { tinyStudy with Arms = [ { tinyStudy.Arms[0] with Method = Method.cutout; Name = "baseline" }; tinyStudy.Arms[1] ] }
            let msg = throwsMessage<RunFolderException> (fun () -> Experiment.execute (session again) None (Some folder) (ScriptExperiments.Grid other) |> ignore)
            containsAll msg [ "study folder"; "holds another grid"; "runs.baseline-s1.method.name: recorded \"baseline\", now \"cutout\"" ]
            // An added arm runs on a resume (the others are kept) and is recorded; a removed one is refused.
            let grown = { tinyStudy with Seeds = [ 1L ]; Arms = tinyStudy.Arms @ [ { tinyStudy.Arms[0] with Name = "cutout"; Method = Method.cutout } ] }
            use grownOut = new StringWriter()
            Expect.equal (Experiment.execute (session grownOut) None (Some folder) (ScriptExperiments.Grid { grown with Seeds = [ 1L; 2L ] })) ExitCode.ok (grownOut.ToString())
            Expect.equal ((metrics "cutout-s2").Count) 2 "the new arm ran"
            Expect.equal [ for e in metrics "baseline-s1" -> e.TrainLoss ] [ for e in m -> e.TrainLoss ] "the recorded runs are kept"
            let recorded = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, "study.json"))) |> nonNull
            Expect.isNotNull ((nonNull recorded["runs"])["cutout-s1"]) "study.json records the new arm"
            let removed = throwsMessage<RunFolderException> (fun () -> Experiment.execute (session again) None (Some folder) (ScriptExperiments.Grid grown) |> ignore)
            containsAll removed [ "holds another grid"; "baseline-s2" ]
            // A study finished on another machine, in another precision, says so and names the runs.
            let movedPath = Path.Combine(folder, "baseline-s2", "config.json")
            let moved = JsonNode.Parse(File.ReadAllText movedPath) |> nonNull
            moved["machine"] <- JsonValue.Create "Other CPU (family 25, model 17), 2 cores"
            (nonNull moved["experiment"]).["precision"] <- JsonValue.Create(if precision = "bf16" then "fp32" else "bf16")
            File.WriteAllText(movedPath, moved.ToJsonString())
            StudyReport.write folder tinyStudy.Name [ "baseline"; "adversarial" ] tinyStudy.Seeds (set runs) |> ignore
            let mixed = File.ReadAllText(Path.Combine(folder, "summary.md"))
            containsAll mixed [
                "not all from one recorded machine"
                sprintf "%s: baseline-s1, adversarial-s1, adversarial-s2" machine
                "Other CPU (family 25, model 17), 2 cores: baseline-s2"
                "trained in 2 precisions"
                sprintf "%s: baseline-s1, adversarial-s1, adversarial-s2" precision ]
        }

        test "a grid with a bad entry fails before any training, naming the entry" {
            use dir = new TempDir()
            let path = dir.File "study.fsx"
            File.WriteAllText(path, "")
            let bad = { tinyStudy with Arms = tinyStudy.Arms @ [ { tinyStudy.Arms[0] with Name = "strange"; Method = Method.randAugment 0 9 } ] }
            match Experiment.resolveScript path Overrides.None (ScriptExperiments.Grid bad) with
            | Ok _ -> failtest "expected an error"
            | Error problems -> containsAll (problems |> List.map ScriptError.format |> String.concat "\n") [ "study 'tiny-study', arm 'strange-s1'"; "randaugment.n = 0" ]
            let twice = { tinyStudy with Seeds = [ 1L; 1L ] }
            match Experiment.resolveScript path Overrides.None (ScriptExperiments.Grid twice) with
            | Ok _ -> failtest "expected an error"
            | Error problems -> containsAll (problems |> List.map ScriptError.format |> String.concat "\n") [ "a seed is listed twice" ]
        }

        test "subsets are class-balanced and seeded, the validation split is disjoint from them, a class too small is named" {
            let data = AdvAA.Core.Data.DataSources.EmbeddedSample()
            let struct (subset, validation) = AdvAA.Core.Data.Subsets.Split(data.Train, Nullable 503L, Nullable 100L)
            let counts (set: AdvAA.Core.Data.ImageDataset) = set.Labels.bincount(null, 10L).data<int64>().ToArray()
            Expect.equal (counts subset) [| 51L; 51L; 51L; 50L; 50L; 50L; 50L; 50L; 50L; 50L |] "503 images, balanced"
            Expect.equal (counts (nonNull validation)) (Array.create 10 10L) "100 validation images, balanced"
            let rows (set: AdvAA.Core.Data.ImageDataset) = set.Images.flatten(1L).to_type(TorchSharp.torch.ScalarType.Int64).sum(1L).data<int64>().ToArray() |> Set.ofArray
            Expect.isEmpty (Set.intersect (rows subset) (rows (nonNull validation))) "no validation image is trained on"
            let struct (again, _) = AdvAA.Core.Data.Subsets.Split(data.Train, Nullable 503L, Nullable 100L)
            Expect.isTrue (again.Images.eq(subset.Images).all().item<bool>()) "the same images every time"
            let msg = throwsMessage<ConfigException> (fun () -> AdvAA.Core.Data.Subsets.Split(data.Train, Nullable 1800L, Nullable 300L) |> ignore)
            containsAll msg [ "has 200 images"; "(180)"; "(30)"; "take fewer images" ]
        }

        test "the controller's movement is measured against the noise of its estimate" {
            Expect.floatClose Accuracy.veryHigh (StudyReport.fromUniform [| 0.25; 0.25; 0.25; 0.25 |]) 0.0 "uniform: 0"
            Expect.floatClose Accuracy.veryHigh (StudyReport.fromUniform [| 1.0; 0.0; 0.0; 0.0 |]) 0.75 "one category: 1 - 1/4"
            let noise = StudyReport.noiseLevel 16 2560
            Expect.isTrue (noise > 0.02 && noise < 0.05) (sprintf "2,560 uniform draws over 16 ops stray about 0.03 from uniform: %g" noise)
            Expect.isLessThan (StudyReport.noiseLevel 16 25600) (noise / 2.0) "ten times the draws, a third of the noise"
        }

        test "paired differences come with Student's t-interval over the seeds both arms have" {
            for df, expected in [ 1, 12.7062; 2, 4.3027; 4, 2.7764; 9, 2.2622; 30, 2.0423 ] do
                Expect.floatClose { absolute = 2e-4; relative = 0.0 } (StudyReport.tQuantile975 df) expected (sprintf "t(0.975, %d)" df)
            let n, mean, half = StudyReport.pairedDifference [ 1L, 0.70; 2L, 0.72; 3L, 0.69 ] [ 1L, 0.68; 2L, 0.69; 3L, 0.69; 4L, 0.50 ]
            let sd = sqrt (((0.02 - 1.0 / 60.0) ** 2.0 + (0.03 - 1.0 / 60.0) ** 2.0 + (1.0 / 60.0) ** 2.0) / 2.0)
            Expect.equal n 3 "seed 4 has no pair"
            Expect.floatClose Accuracy.veryHigh mean (1.0 / 60.0) "the mean difference"
            Expect.floatClose { absolute = 0.0; relative = 1e-4 } half (4.302653 * sd / sqrt 3.0) "t(0.975, 2) · sd / √3"
            let one, single, none = StudyReport.pairedDifference [ 1L, 0.7 ] [ 1L, 0.6 ]
            Expect.equal one 1 "one pair"
            Expect.floatClose Accuracy.veryHigh single 0.1 "its difference"
            Expect.isTrue (Double.IsNaN none) "and no interval"
        }
    ]
