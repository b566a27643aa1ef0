module AdvAA.Tests.ProgressTests

open System
open System.IO
open Expecto
open AdvAA.Core.Training
open AdvAA.Dsl
open AdvAA.Tests.TestSupport

let private tiny =
    { Experiment.defaults with
        Name = "tiny"; Method = Method.baseline; Model = "small"; Epochs = 2; BatchSize = 16; TrainLimit = Some 192; TestLimit = Some 20; Device = "cpu" }

let private trainWith (live: bool) =
    use dir = new TempDir()
    use out = new StringWriter()
    let session =
        { Display = { Out = out; Live = live }
          Cancel = Threading.CancellationToken.None
          Program = [ "advaa"; "run" ]
          Arguments = [ "tiny.fsx" ]
          Report = false
          Ranks = None }
    let code = Experiment.execute session (Some(dir.File "run")) None (ScriptExperiments.Single tiny)
    Expect.equal code ExitCode.ok (out.ToString())
    out.ToString()

[<Tests>]
let tests =
    testSequenced <| testList "progress" [
        test "the live line: step, losses, images/s and the epoch's and the run's time left" {
            let p = StepProgress(2, 4, 10, 40, 1.5, 1280L, 5.0)
            Expect.equal (Runner.stepLine p 1.7 None) "  epoch 2/4  step 10/40  loss 1.5000 (mean 1.7000)  256 img/s  ETA epoch 0:00:15, run 0:00:55" "this epoch's pace: 0.5 s a step"
            Expect.stringEnds (Runner.stepLine p 1.7 (Some 30.0)) "ETA epoch 0:00:15, run 0:01:15" "finished epochs' mean: 30 s an epoch"
        }

        test "on a terminal the step line is rewritten in place; elsewhere plain epoch lines only" {
            let live = trainWith true
            containsAll live [ "\r  epoch 1/2  step 10/12  loss "; " img/s  ETA epoch "; "\r  epoch 2/2  step 12/12" ]
            let plain = trainWith false
            Expect.isFalse (plain.Contains '\r' || plain.Contains '\u001b') "no carriage returns or escape codes"
            containsAll plain [ "epoch 1/2  train loss"; "epoch 2/2  train loss" ]
        }

        test "advaa detects the terminal: a pseudo-terminal gets the live line, a pipe does not" {
            if not (File.Exists "/usr/bin/script") then skiptest "no /usr/bin/script (util-linux) to make a pseudo-terminal"
            let cli = Path.Combine(releaseCli.Force(), "advaa")
            use dir = new TempDir()
            let args out = sprintf "%s train --method baseline --model small --epochs 1 --batch 16 --train-limit 192 --test-limit 20 --device cpu --out %s" cli out
            let code, terminal, err = runProcess dir.Path 300 "/usr/bin/script" [ "-q"; "-e"; "-c"; args (dir.File "a"); "/dev/null" ]
            Expect.equal code 0 err
            containsAll terminal [ "\r  epoch 1/1  step 10/12" ]
            let code, piped, err = runProcess dir.Path 300 cli [ "train"; "--method"; "baseline"; "--model"; "small"; "--epochs"; "1"; "--batch"; "16"; "--train-limit"; "192"; "--test-limit"; "20"; "--device"; "cpu"; "--out"; dir.File "b" ]
            Expect.equal code 0 err
            Expect.isFalse (piped.Contains '\r' || piped.Contains '\u001b') "no carriage returns or escape codes in a pipe"
            containsAll piped [ "epoch 1/1  train loss" ]
        }
    ]
