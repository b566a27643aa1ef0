module AdvAA.Tests.TensorBoardTests

open System
open System.IO
open Expecto
open AdvAA.Core.Training
open AdvAA.Tests.TestSupport
open AdvAA.Tests.CliTests

/// The events of a TFRecord file, each record's length and data checked against its masked CRC-32C
/// (computed here with TorchSharp's CRC32C, not AdvAA's).
let readEvents (path: string) =
    let masked (v: uint32) = ((v >>> 15) ||| (v <<< 17)) + 0xa282ead8u
    let bytes = File.ReadAllBytes path
    let rec loop at acc =
        if at = bytes.Length then List.rev acc
        else
            let length = BitConverter.ToUInt64(bytes, at) |> int
            Expect.equal (BitConverter.ToUInt32(bytes, at + 8)) (masked (TorchSharp.Utils.CRC32C.``process`` (bytes[at .. at + 7]))) "the length's CRC"
            let data = bytes[at + 12 .. at + 12 + length - 1]
            Expect.equal (BitConverter.ToUInt32(bytes, at + 12 + length)) (masked (TorchSharp.Utils.CRC32C.``process`` data)) "the data's CRC"
            loop (at + 16 + length) (Tensorboard.Event.Parser.ParseFrom data :: acc)
    loop 0 []

let private scalars (events: Tensorboard.Event list) (tag: string) =
    [ for e in events do
        if not (isNull e.Summary) then
            for v in e.Summary.Value do
                if v.Tag = tag && v.ValueCase = Tensorboard.Summary.Types.Value.ValueOneofCase.SimpleValue then yield e.Step, float v.SimpleValue ]

[<Tests>]
let tests =
    testSequenced <| testList "tensorboard" [
        test "a run logs its scalars, step losses and controller distributions as TensorBoard events; a resumed session marks its restart" {
            use dir = new TempDir()
            let run = dir.File "run"
            let train epochs extra =
                expectCode (cli ([ "train"; "--method"; "adversarial"; "--model"; "small"; "--epochs"; string epochs; "--batch"; "16"; "--instances"; "2"; "--train-limit"; "192"; "--test-limit"; "20"; "--device"; "cpu" ] @ extra)) 0
            train 1 [ "--out"; run ]
            train 2 [ "--resume"; run ]
            let files = Directory.GetFiles(Path.Combine(run, TensorBoardLog.Folder)) |> Array.sort
            Expect.equal files.Length 2 "one event file per session"
            let first, second = readEvents files[0], readEvents files[1]
            for events in [ first; second ] do Expect.equal events.Head.FileVersion "brain.Event:2" "each file starts with its version"
            Expect.isTrue (first |> List.forall (fun e -> e.WhatCase <> Tensorboard.Event.WhatOneofCase.SessionLog)) "a fresh run has no restart"
            let restart = second |> List.find (fun e -> e.WhatCase = Tensorboard.Event.WhatOneofCase.SessionLog)
            Expect.equal (restart.SessionLog.Status, restart.Step) (Tensorboard.SessionLog.Types.SessionStatus.Start, 13L) "the resumed session starts at step 13 (12 steps an epoch)"
            let events = first @ second
            let metrics = RunFolder.Open(run).ReadMetrics() |> List.ofSeq
            let close (label: string) (logged: (int64 * float) list) (expected: (int64 * float) list) =
                Expect.equal (List.map fst logged) (List.map fst expected) (label + ": its steps")
                for (_, a), (_, b) in List.zip logged expected do Expect.floatClose Accuracy.high a b label
            close "train/loss" (scalars events "train/loss") [ for m in metrics -> int64 m.Epoch * 12L, float (float32 m.TrainLoss) ]
            close "test/accuracy" (scalars events "test/accuracy") [ for m in metrics -> int64 m.Epoch * 12L, float (float32 m.TestAccuracy.Value) ]
            close "learning_rate" (scalars events "learning_rate") [ for m in metrics -> int64 m.Epoch * 12L, float (float32 m.LearningRate) ]
            close "controller/entropy" (scalars events "controller/entropy") [ for m in metrics -> int64 m.Epoch * 12L, float (float32 (m.Number "controller_entropy").Value) ]
            Expect.equal (scalars events "instances/loss_2" |> List.length) 2 "each instance's loss every epoch"
            Expect.equal (scalars events "train/step_loss" |> List.map fst) [ 10L; 12L; 22L; 24L ] "the step loss every 10 steps and at each epoch's end"
            let histogram = events |> List.pick (fun e -> if isNull e.Summary then None else e.Summary.Value |> Seq.tryFind (fun v -> v.Tag = "controller/ops") |> Option.map (fun v -> e.Step, v.Histo))
            let recorded = (RunFolder.Open(run).ReadPolicies()).[0].Distribution
            Expect.equal (fst histogram) 12L "epoch 1's distribution at its last step"
            Expect.sequenceEqual ((snd histogram).Bucket |> Seq.map float) (recorded.Ops |> Seq.map (fun o -> o.Value)) "one bucket per op, the controller's shares"
            Expect.equal (snd histogram).BucketLimit.Count recorded.Ops.Count "one limit per op"
            let images =
                [ for e in events do
                    if not (isNull e.Summary) then
                        for v in e.Summary.Value do if v.Tag = "policies" then yield e.Step, v.Image ]
            Expect.equal (List.map fst images) [ 12L; 24L ] "the policy grid at the first and the last epoch"
            for _, image in images do
                let png = image.EncodedImageString.ToByteArray()
                Expect.equal png[1..3] "PNG"B "a PNG"
                let bigEndian at = (int png[at] <<< 24) ||| (int png[at + 1] <<< 16) ||| (int png[at + 2] <<< 8) ||| int png[at + 3]
                Expect.equal (bigEndian 16, bigEndian 20) (image.Width, image.Height) "its size as the PNG says"
                Expect.equal image.Height (3 * (64 + 2) + 2) "three rows (original, two policies) of 32 px at scale 2"
        }
    ]
