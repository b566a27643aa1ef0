module AdvAA.Tests.ModelUseTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open SkiaSharp
open TorchSharp
open AdvAA.Core.Data
open AdvAA.Core.Training
open AdvAA.Tests.TestSupport
open AdvAA.Tests.CliTests

/// A lossless PNG of one uint8 [3, H, W] image.
let private writePng (path: string) (image: torch.Tensor) =
    let h, w = int image.shape[1], int image.shape[2]
    let hwc = image.permute(1L, 2L, 0L).contiguous().data<byte>().ToArray()
    use bitmap = new SKBitmap(w, h, SKColorType.Rgba8888, SKAlphaType.Unpremul)
    for y in 0 .. h - 1 do
        for x in 0 .. w - 1 do
            let at = 3 * (y * w + x)
            bitmap.SetPixel(x, y, SKColor(hwc[at], hwc[at + 1], hwc[at + 2]))
    use data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
    File.WriteAllBytes(path, data.ToArray())

[<Tests>]
let tests =
    testSequenced <| testList "model use" [
        test "evaluate reproduces the run's test accuracy with a confusion matrix; predict gives the model's own probabilities" {
            use dir = new TempDir()
            let run = dir.File "run"
            expectCode (cli [ "train"; "--method"; "baseline"; "--model"; "small"; "--out"; run; "--epochs"; "1"; "--batch"; "32"; "--train-limit"; "64"; "--test-limit"; "50"; "--device"; "cpu" ]) 0
            let recorded = RunFolder.Open(run).ReadMetrics() |> Seq.last
            let code, out, err = cli [ "evaluate"; run; "--device"; "cpu" ]
            expectCode (code, out, err) 0
            containsAll out [ "epoch 1"; "images     50"; sprintf "accuracy   %.2f%%" (100.0 * recorded.TestAccuracy.Value); "airplane"; "confusion-matrix.png" ]
            let json = JsonNode.Parse(File.ReadAllText(Path.Combine(run, "evaluation", "evaluation.json"))) |> nonNull
            let number (n: JsonNode | null) = (nonNull n).GetValue<float>()
            Expect.floatClose Accuracy.high (number json["accuracy"]) recorded.TestAccuracy.Value "the accuracy the run recorded for its test split"
            Expect.floatClose Accuracy.medium (number json["loss"]) recorded.TestLoss.Value "and its loss"
            let confusion = [ for row in (nonNull json["confusion"]).AsArray() -> [ for c in (nonNull row).AsArray() -> (nonNull c).GetValue<int64>() ] ]
            Expect.equal (confusion |> List.sumBy List.sum) 50L "every test image counted once"
            let diagonal = confusion |> List.mapi (fun i row -> row[i]) |> List.sum
            Expect.floatClose Accuracy.veryHigh (float diagonal / 50.0) (number json["accuracy"]) "accuracy = the diagonal's share"
            let airplane = confusion[0]
            let perClass = number ((nonNull json["per_class_accuracy"])["airplane"])
            Expect.floatClose Accuracy.veryHigh perClass (float airplane[0] / float (List.sum airplane)) "per-class accuracy from its row"
            Expect.equal (File.ReadAllBytes(Path.Combine(run, "evaluation", "confusion-matrix.png"))).[1..3] "PNG"B "the confusion matrix is a PNG"

            // predict: three test images written as PNG files, against the model's probabilities on the same pixels.
            let sample = DataSources.EmbeddedSample()
            use test = sample.Test
            use _train = sample.Train
            let files = [ for i in 0 .. 2 -> dir.File(sprintf "image-%d.png" i) ]
            for i, file in List.indexed files do writePng file (test.Images[int64 i])
            use model = TrainedModel.Open(run, Nullable(), "cpu")
            use direct = model.Probabilities(test.Images.narrow(0L, 0L, 3L))
            let predicted = AdvAA.Cli.PredictCommand.predict run files 10 "cpu"
            for i, (file, classes) in List.indexed predicted do
                Expect.equal file (Path.GetFullPath files[i]) "in the order given"
                Expect.equal classes.Length 10 "top 10 of 10 classes"
                Expect.floatClose Accuracy.medium (classes |> List.sumBy snd) 1.0 "probabilities over all classes sum to 1"
                Expect.isTrue (classes |> List.pairwise |> List.forall (fun ((_, a), (_, b)) -> a >= b)) "most likely first"
                let best, p = classes.Head
                let expected = direct[int64 i].argmax().item<int64>()
                Expect.equal best model.Classes[int expected] "the class the model gives the pixels"
                Expect.floatClose Accuracy.high p (float (direct[int64 i].max().item<float32>())) "with its probability"
            let code, out, _ = cli [ "predict"; run; files[0]; "--top"; "2"; "--device"; "cpu" ]
            Expect.equal code 0 "predict exits 0"
            Expect.equal (out.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length) 3 "the file, then two classes"

            // Bad input: another size, a corrupt file, an epoch not kept, a run without a checkpoint.
            let small = dir.File "small.png"
            writePng small (test.Images[0L].narrow(1L, 0L, 16L).narrow(2L, 0L, 16L))
            let msg = throwsMessage<DataFormatException> (fun () -> AdvAA.Cli.PredictCommand.predict run [ files[0]; small ] 3 "cpu" |> ignore)
            containsAll msg [ small; "16x16"; "trained on 32x32" ]
            let corrupt = dir.File "corrupt.png"
            File.WriteAllText(corrupt, "not an image")
            containsAll (throwsMessage<DataFormatException> (fun () -> AdvAA.Cli.PredictCommand.predict run [ corrupt ] 3 "cpu" |> ignore)) [ corrupt; "corrupt image" ]
            let code, _, err = cli [ "evaluate"; run; "--epoch"; "5" ]
            Expect.equal code 1 "an epoch that is not kept is bad input"
            containsAll err [ "no checkpoint of epoch 5"; "its last checkpoint (epoch 1)" ]
            let bare = dir.File "bare"
            Directory.CreateDirectory bare |> ignore
            File.Copy(Path.Combine(run, RunFolder.ConfigFile), Path.Combine(bare, RunFolder.ConfigFile))
            containsAll (throwsMessage<RunFolderException> (fun () -> TrainedModel.Open(bare, Nullable(), "cpu") |> ignore)) [ bare; "has no checkpoint" ]
        }
    ]
