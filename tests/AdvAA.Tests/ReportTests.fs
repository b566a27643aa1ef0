module AdvAA.Tests.ReportTests

open System
open System.IO
open System.Text.RegularExpressions
open Expecto
open AdvAA.Core
open AdvAA.Core.Augment
open AdvAA.Core.Methods
open AdvAA.Core.Training
open AdvAA.Dsl
open AdvAA.Tests.TestSupport

let private ops = [ "ShearX"; "Rotate"; "Invert" ]

/// A run folder as the trainer writes it (through the same typed records), with known numbers.
let writeRun (dir: string) (name: string) (method: string) (accuracies: float list) =
    let folder = RunFolder.Create(Path.Combine(dir, name))
    let space = SearchSpace([| for op in ops -> OpTable.Get op |], 10)
    let experiment =
        TrainConfig(Method = MethodRegistry.Defaults method, Epochs = accuracies.Length, Device = "cpu", Space = space, Precision = "fp32")
    let data = DataRecord("embedded-sample", "(embedded)", 2000L, 1000L, [| 3; 32; 32 |], [| "cat"; "dog" |], [| 0.5; 0.5; 0.5 |], [| 0.25; 0.25; 0.25 |], "0/0")
    folder.WriteConfig(RunConfig("0.1.0", "0.107.0", "2.10.0", "cpu", "cpu", "AMD EPYC (family 26, model 2, AVX-512 BF16), 2 cores", "2026-12-01T00:00:00Z", experiment, data, 510000L, RunOrigin("advaa train", [| "--method"; method |])))
    let policy (stages: (string * int) list) = Policy([| SubPolicy([| for op, level in stages -> PolicyStage(op, level) |]) |])
    let metrics =
        accuracies
        |> List.mapi (fun i acc ->
            let f = float i
            let entropy = System.Collections.Generic.KeyValuePair.Create("controller_entropy", MetricValue.Number(5.0 - 0.1 * f) :> MetricValue)
            EpochMetrics(i + 1, 2.0 - 0.1 * f, acc - 0.05, Nullable(1.9 - 0.1 * f), Nullable acc, 0.1, 2, [| 2.0; 2.1 |], 10.0, 1234.5, 0.5, 0.1, MethodMetrics = [| entropy |]))
    let policies =
        accuracies
        |> List.mapi (fun i _ ->
            // two policies x one sub-policy x two stages; the op mix shifts to Rotate over the epochs
            let second = if i = 0 then "ShearX" else "Rotate"
            PolicyRecord(i + 1, method, [| policy [ "ShearX", 1; second, 9 ]; policy [ "Rotate", 1; "Invert", 0 ] |], [| 2.0; 2.1 |], [| 0.7; -0.7 |], null))
    File.WriteAllText(folder.File RunFolder.MetricsFile, JsonLines.Text [ for m in metrics -> m.ToJson() ])
    File.WriteAllText(folder.File RunFolder.PoliciesFile, JsonLines.Text [ for p in policies -> p.ToJson() ])
    folder.Path

let private isPng (path: string) =
    let b = File.ReadAllBytes path
    b.Length > 8 && b[0] = 0x89uy && b[1] = byte 'P' && b[2] = byte 'N' && b[3] = byte 'G'

[<Tests>]
let tests =
    testList "report" [
        test "distributions count each op and level among the sampled policies" {
            use dir = new TempDir()
            let run = Report.load (writeRun dir.Path "r" "adversarial" [ 0.3; 0.4 ])
            let epochs, opShares, levelShares, fromController = Report.distributions run
            Expect.isFalse fromController "counted from the policies"
            Expect.equal epochs [| 1; 2 |] "epochs with policies"
            // epoch 1 stages: ShearX, ShearX, Rotate, Invert
            Expect.floatClose Accuracy.veryHigh opShares[0, 0] 0.5 "ShearX share, epoch 1"
            Expect.floatClose Accuracy.veryHigh opShares[0, 1] 0.25 "Rotate share, epoch 1"
            Expect.floatClose Accuracy.veryHigh opShares[1, 1] 0.5 "Rotate share, epoch 2"
            Expect.floatClose Accuracy.veryHigh levelShares[0, 1] 0.5 "level 1"
            Expect.floatClose Accuracy.veryHigh levelShares[0, 9] 0.25 "level 9"
            Expect.floatClose Accuracy.veryHigh levelShares[0, 0] 0.25 "level 0"
        }

        test "writes valid PNGs and a self-contained page whose numbers match metrics.jsonl" {
            use dir = new TempDir()
            let a = Report.load (writeRun dir.Path "a" "adversarial" [ 0.31; 0.42; 0.5 ])
            let b = Report.load (writeRun dir.Path "b" "baseline" [ 0.3; 0.35; 0.4 ])
            let out = Path.Combine(a.Folder, "report")
            let index = Report.write [ a; b ] out []
            for png in [ "accuracy.png"; "loss.png"; "entropy.png"; "op-distribution.png"; "magnitude-distribution.png"; "comparison.png" ] do
                Expect.isTrue (isPng (Path.Combine(out, png))) (png + " is a PNG")
            let html = File.ReadAllText index
            Expect.stringStarts html "<!DOCTYPE html>" "an HTML page"
            Expect.stringContains html "</html>" "complete"
            Expect.isFalse (Regex.IsMatch(html, "(src|href)=\"(http|//)")) "no network resources"
            Expect.equal (Regex.Matches(html, "data:image/png;base64,").Count) 6 "all six images embedded"
            // the metrics table, read back
            let table = Regex.Match(html, "<table id=\"metrics\">(.*?)</table>", RegexOptions.Singleline).Groups[1].Value
            let rows =
                Regex.Matches(table, "<tr>(.*?)</tr>", RegexOptions.Singleline)
                |> Seq.map (fun r -> Regex.Matches(r.Groups[1].Value, "<td>(.*?)</td>") |> Seq.map (fun c -> c.Groups[1].Value) |> List.ofSeq)
                |> Seq.filter (not << List.isEmpty)
                |> List.ofSeq
            let metrics = RunFolder.Open(a.Folder).ReadMetrics()
            Expect.equal rows.Length metrics.Count "one row per epoch"
            for row, m in List.zip rows (List.ofSeq metrics) do
                Expect.equal row[0] (string m.Epoch) "epoch"
                Expect.floatClose Accuracy.low (float row[1]) m.TrainLoss "train loss"
                Expect.floatClose Accuracy.low (float row[4] / 100.0) m.TestAccuracy.Value "test accuracy"
            Expect.stringContains html "50.00%" "final accuracy in the summary"
            Expect.stringContains html "<table id=\"comparison\">" "the runs compared"
            Expect.stringContains html "ShearX 1 → Rotate 9" "the final policies"
        }

        test "a malformed metrics line is an error naming the file and line" {
            use dir = new TempDir()
            let folder = writeRun dir.Path "bad" "adversarial" [ 0.3; 0.4; 0.5 ]
            let path = Path.Combine(folder, RunFolder.MetricsFile)
            let lines = File.ReadAllLines path
            lines[1] <- "{\"epoch\":2,\"train_loss\":oops}"
            File.WriteAllLines(path, lines)
            let msg = throwsMessage<RunFolderException> (fun () -> Report.load folder |> ignore)
            containsAll msg [ path + ":2"; "malformed" ]
        }

        test "a metrics line without a required field is an error naming the field" {
            use dir = new TempDir()
            let folder = writeRun dir.Path "bad" "adversarial" [ 0.3; 0.4 ]
            let path = Path.Combine(folder, RunFolder.MetricsFile)
            File.AppendAllText(path, "{\"epoch\":3,\"train_loss\":1.0}\n")
            let msg = throwsMessage<RunFolderException> (fun () -> Report.load folder |> ignore)
            containsAll msg [ path + ":3"; "train_accuracy" ]
        }

        test "missing files are named" {
            use dir = new TempDir()
            let folder = writeRun dir.Path "r" "adversarial" [ 0.3 ]
            File.Delete(Path.Combine(folder, RunFolder.MetricsFile))
            let msg = throwsMessage<RunFolderException> (fun () -> Report.load folder |> ignore)
            containsAll msg [ RunFolder.MetricsFile; "does not exist" ]
            File.Delete(Path.Combine(folder, RunFolder.ConfigFile))
            let msg = throwsMessage<RunFolderException> (fun () -> Report.load folder |> ignore)
            containsAll msg [ RunFolder.ConfigFile ]
        }
    ]
