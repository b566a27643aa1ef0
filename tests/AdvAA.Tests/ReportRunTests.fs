module AdvAA.Tests.ReportRunTests

open System.IO
open Expecto
open AdvAA.Core.Training
open AdvAA.Dsl
open AdvAA.Tests.TestSupport
open AdvAA.Tests.TrainingTests

[<Tests>]
let tests =
    testList "report.run" [
        test "the report of a real adversarial run has every plot, the policy grid and the page" {
            use dir = new TempDir()
            let folder = RunFolder.Create(dir.File "run")
            train (Tiny.Config("adversarial", epochs = 2)) folder None |> ignore
            let index = RunReport.write [ folder.Path ] None 4
            let out = Path.GetDirectoryName index |> nonNull
            Expect.equal out (Path.Combine(folder.Path, "report")) "report/ inside the run folder"
            for png in [ "accuracy.png"; "loss.png"; "entropy.png"; "op-distribution.png"; "magnitude-distribution.png"; "policies.png" ] do
                let bytes = File.ReadAllBytes(Path.Combine(out, png))
                Expect.equal bytes[1..3] "PNG"B (png + " is a PNG")
            // 1 row of originals + M = 2 policy rows, 4 images each, 3x enlarged 32-pixel tiles
            use grid = SkiaSharp.SKBitmap.Decode(Path.Combine(out, "policies.png"))
            Expect.isGreaterThanOrEqual grid.Height (3 * 32 * 3) "three rows"
            Expect.isGreaterThanOrEqual grid.Width (4 * 32 * 3) "four columns"
            Expect.stringContains (File.ReadAllText index) "policies.png" "the grid is on the page"
            // Fig. 6 comes from the controller's own distribution: shares of all ops (levels) sum to 1 per epoch
            let epochs, ops, levels, fromController = Report.distributions (Report.load folder.Path)
            Expect.isTrue fromController "the controller's distribution is recorded"
            Expect.equal epochs [| 1; 2 |] "per epoch"
            for row in 0 .. 1 do
                Expect.floatClose Accuracy.high (Array.sum ops[row, *]) 1.0 "op shares"
                Expect.floatClose Accuracy.high (Array.sum levels[row, *]) 1.0 "level shares"
        }
    ]
