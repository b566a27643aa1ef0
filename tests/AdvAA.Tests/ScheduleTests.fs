module AdvAA.Tests.ScheduleTests

open System
open Expecto
open AdvAA.Dsl
open AdvAA.Tests.TestSupport

/// Asserts the schedule's value at each (epoch, expected) pair, to 1e-12.
let private values (s: Schedule) (expected: (float * float) list) =
    for epoch, v in expected do
        Expect.floatClose Accuracy.veryHigh (Schedule.at s epoch) v (sprintf "%s at epoch %g" (Schedule.describe s) epoch)

let private paperLr = Schedule.step 0.1 0.2 [ 60.0; 120.0; 160.0 ]

let private errorOf (r: Result<unit, string>) =
    match r with
    | Ok() -> failtest "expected a validation error"
    | Error message -> message

[<Tests>]
let tests =
    testList "schedule" [
        test "constant holds its value" {
            values (Schedule.constant 0.3) [ 0.0, 0.3; 57.5, 0.3; 1000.0, 0.3 ]
        }

        test "linear goes from its start to its end, then holds" {
            values (Schedule.linear 1.0 3.0 4.0) [ -1.0, 1.0; 0.0, 1.0; 1.0, 1.5; 2.5, 2.25; 4.0, 3.0; 9.0, 3.0 ]
        }

        test "cosine follows a half cosine, then holds" {
            let s = Schedule.cosine 1.0 0.0 100.0
            let quarter = (1.0 + cos (Math.PI / 4.0)) / 2.0
            values s [ 0.0, 1.0; 25.0, quarter; 50.0, 0.5; 75.0, 1.0 - quarter; 100.0, 0.0; 150.0, 0.0 ]
        }

        test "step multiplies by the factor from each milestone on" {
            values paperLr [ 0.0, 0.1; 59.99, 0.1; 60.0, 0.02; 119.5, 0.02; 120.0, 0.004; 160.0, 0.0008; 200.0, 0.0008 ]
            values (Schedule.step 2.0 0.5 []) [ 0.0, 2.0; 300.0, 2.0 ]
        }

        test "warmup ramps from 0 (or a start) to the schedule, which keeps its own epochs" {
            let s = Schedule.warmup 5.0 paperLr
            values s [ 0.0, 0.0; 1.0, 0.02; 2.5, 0.05; 5.0, 0.1; 59.0, 0.1; 60.0, 0.02 ]
            let ramped = Schedule.warmup 4.0 (Schedule.linear 0.0 8.0 8.0)
            values ramped [ 2.0, 1.0; 4.0, 4.0; 6.0, 6.0 ] // 2/4 of the target's value 2 at epoch 2
            values (Schedule.warmupFrom 0.01 5.0 (Schedule.constant 0.11)) [ 0.0, 0.01; 2.5, 0.06; 5.0, 0.11 ]
        }

        test "piecewise pieces see epochs from their own start" {
            let s =
                Schedule.piecewise
                    [ 5.0, Schedule.linear 0.0 1.0 5.0; 60.0, Schedule.constant 1.0 ]
                    (Schedule.cosine 1.0 0.0 140.0)
            values s [ 0.0, 0.0; 2.5, 0.5; 5.0, 1.0; 59.9, 1.0; 60.0, 1.0; 130.0, 0.5; 200.0, 0.0 ]
        }

        test "andThen switches at an epoch and extends a piecewise schedule flat" {
            let s =
                Schedule.linear 0.0 1.0 5.0
                |> Schedule.andThen 5.0 (Schedule.constant 1.0)
                |> Schedule.andThen 60.0 (Schedule.cosine 1.0 0.0 140.0)
            values s [ 2.5, 0.5; 5.0, 1.0; 59.0, 1.0; 130.0, 0.5 ]
            Expect.equal (Schedule.describe s) "linear 0→1 over 5 until 5, then 1 until 60, then cosine 1→0 over 140" "one flat list"
            // A switch inside an existing piece nests the earlier schedule, which keeps its own epochs.
            let nested = s |> Schedule.andThen 30.0 (Schedule.constant 7.0)
            values nested [ 2.5, 0.5; 29.0, 1.0; 30.0, 7.0; 100.0, 7.0 ]
            Expect.equal (Schedule.describe nested) "(linear 0→1 over 5 until 5, then 1 until 60, then cosine 1→0 over 140) until 30, then 7" "nested in parentheses"
        }

        test "scale, products and map combine values" {
            let ramp = Schedule.linear 0.0 1.0 10.0
            values (Schedule.scale 2.0 ramp) [ 5.0, 1.0; 10.0, 2.0 ]
            values (0.5 * ramp) [ 4.0, 0.2 ]
            values (ramp * 3.0) [ 4.0, 1.2 ]
            values (ramp * Schedule.cosine 1.0 0.0 10.0) [ 0.0, 0.0; 5.0, 0.25; 10.0, 0.0 ]
            values (Schedule.map (fun v -> v * v) ramp) [ 5.0, 0.25; 10.0, 1.0 ]
        }

        test "clamp limits values" {
            values (Schedule.clamp 0.2 0.8 (Schedule.linear 0.0 1.0 10.0)) [ 1.0, 0.2; 5.0, 0.5; 9.0, 0.8 ]
        }

        test "atRounded rounds halves away from zero, e.g. for M" {
            let m = Schedule.linear 1.0 8.0 14.0
            Expect.equal [ for e in [ 0.0; 1.0; 2.0; 3.0; 14.0 ] -> Schedule.atRounded m e ] [ 1; 2; 2; 3; 8 ] "1, 1.5→2, 2, 2.5→3, 8"
        }

        test "toFunc gives the same values to C#" {
            let f = Schedule.toFunc paperLr
            Expect.equal [ f.Invoke 0.0; f.Invoke 60.0 ] [ Schedule.at paperLr 0.0; Schedule.at paperLr 60.0 ] "same values"
        }

        test "describe writes a readable formula" {
            let cases =
                [ Schedule.warmup 5.0 paperLr, "warmup 5 (step 0.1 ×0.2 at 60,120,160)"
                  Schedule.warmupFrom 0.01 5.0 (Schedule.constant 0.1), "warmup 5 from 0.01 (0.1)"
                  Schedule.constant 0.00035, "0.00035"
                  Schedule.linear 0.0 1.0 5.0, "linear 0→1 over 5"
                  Schedule.cosine 0.1 0.0 200.0, "cosine 0.1→0 over 200"
                  0.5 * Schedule.cosine 1.0 0.0 10.0, "0.5 × (cosine 1→0 over 10)"
                  Schedule.linear 0.0 1.0 5.0 * Schedule.constant 2.0, "(linear 0→1 over 5) × 2"
                  Schedule.map abs (Schedule.constant -1.0), "map (-1)"
                  Schedule.clamp 0.0 1.0 (Schedule.linear 0.0 2.0 2.0), "clamp 0..1 (linear 0→2 over 2)" ]
            for s, text in cases do
                Expect.equal (Schedule.describe s) text text
        }

        test "validate accepts a schedule that stays in range" {
            Expect.equal (Schedule.validate "lr" 0.0 1.0 200 (Schedule.warmup 5.0 paperLr)) (Ok()) "in range"
        }

        test "validate names the schedule, the first epoch outside and the value" {
            let message = errorOf (Schedule.validate "magnitude" 0.0 1.0 20 (Schedule.linear 0.0 2.0 20.0))
            Expect.equal message "schedule 'magnitude' = linear 0→2 over 20 leaves [0, 1] at epoch 10.001: its value there is 1.0001" "message"
        }

        test "validate checks milestones between grid points and both ends" {
            // 7.00003 is no grid point (a 0.0005-epoch grid for 10 epochs): found as a milestone.
            let jump = Schedule.step 0.5 3.0 [ 7.00003 ]
            containsAll (errorOf (Schedule.validate "p" 0.0 1.0 10 jump)) [ "'p'"; "at epoch 7.00003:"; "value there is 1.5" ]
            let late = Schedule.linear 0.0 1.0 10.0
            containsAll (errorOf (Schedule.validate "p" 0.0 0.99999999 10 late)) [ "at epoch 10:"; "value there is 1" ]
            let early = Schedule.linear 2.0 0.5 10.0
            containsAll (errorOf (Schedule.validate "p" 0.0 1.0 10 early)) [ "at epoch 0:"; "value there is 2" ]
        }

        test "validate reports NaN values and a bad range or length" {
            let nan = Schedule.map (fun _ -> Double.NaN) (Schedule.constant 1.0)
            containsAll (errorOf (Schedule.validate "m" 0.0 1.0 10 nan)) [ "'m'"; "at epoch 0:"; "NaN" ]
            containsAll (errorOf (Schedule.validate "m" 1.0 0.0 10 (Schedule.constant 1.0))) [ "'m'"; "[1, 0]"; "empty" ]
            containsAll (errorOf (Schedule.validate "m" 0.0 1.0 0 (Schedule.constant 1.0))) [ "'m'"; "at least 1 epoch"; "got 0" ]
        }

        test "bad arguments are errors naming the function and the value" {
            let fails f = throwsMessage<DslException> (fun () -> f () |> ignore)
            containsAll (fails (fun () -> Schedule.linear 0.0 1.0 0.0)) [ "Schedule.linear"; "epochs"; "> 0"; "got 0" ]
            containsAll (fails (fun () -> Schedule.cosine Double.NaN 0.0 1.0)) [ "Schedule.cosine"; "start value"; "NaN" ]
            containsAll (fails (fun () -> Schedule.step 0.1 0.2 [ 120.0; 60.0 ])) [ "Schedule.step"; "60 follows 120" ]
            containsAll (fails (fun () -> Schedule.step 0.1 0.2 [ -1.0 ])) [ "Schedule.step"; "milestone"; "got -1" ]
            containsAll (fails (fun () -> Schedule.warmup 0.0 paperLr)) [ "Schedule.warmup"; "got 0" ]
            containsAll (fails (fun () -> Schedule.piecewise [] paperLr)) [ "Schedule.piecewise"; "at least one" ]
            containsAll
                (fails (fun () -> Schedule.piecewise [ 10.0, paperLr; 10.0, paperLr ] paperLr))
                [ "Schedule.piecewise"; "piece 1 ends at 10 and piece 2 at 10" ]
            containsAll (fails (fun () -> Schedule.andThen -3.0 paperLr paperLr)) [ "Schedule.andThen"; "got -3" ]
            containsAll (fails (fun () -> Schedule.clamp 1.0 0.0 paperLr)) [ "Schedule.clamp"; "1 is above the upper bound 0" ]
            containsAll (fails (fun () -> Schedule.constant Double.PositiveInfinity)) [ "Schedule.constant"; "finite"; "Infinity" ]
            containsAll (fails (fun () -> Double.NaN * paperLr)) [ "scale factor"; "NaN" ]
        }
    ]
