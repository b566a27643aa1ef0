module AdvAA.Tests.ModelUseTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open SkiaSharp
open TorchSharp
open AdvAA.Core
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

/// Loads the exported module and 8 images (argv 1, 2), writes its logits (3); saves a perturbed copy
/// of the network with torch.save (4) and that copy's logits (5).
/// A python3 that imports `modules` (e.g. "torch, torchvision"), or None.
let private pythonWith (modules: string) =
    [ "/usr/bin/python3"; "python3" ]
    |> List.tryFind (fun python ->
        try
            let info = Diagnostics.ProcessStartInfo(python, [ "-c"; "import " + modules ])
            info.RedirectStandardError <- true
            use p = Diagnostics.Process.Start info
            p.WaitForExit 120000 && p.ExitCode = 0
        with _ -> false)

/// torchvision's ResNet-50: loads AdvAA's state dict strictly and writes its logits of the inputs;
/// then saves its own seeded weights and their logits.
/// argv: AdvAA's .pt, inputs (float32 [2,3,64,64]), logits out, torchvision's .pt out, its logits out.
let private torchvisionCheck = """
import sys, torch, torchvision
ours, inputs, logits, saved, saved_logits = sys.argv[1:6]
x = torch.from_file(inputs, size=2 * 3 * 64 * 64, dtype=torch.float32).view(2, 3, 64, 64)
net = torchvision.models.resnet50(num_classes=10)
net.load_state_dict(torch.load(ours), strict=True)
with torch.no_grad():
    net.eval()(x).numpy().tofile(logits)
torch.manual_seed(5)
theirs = torchvision.models.resnet50(num_classes=10)
with torch.no_grad():
    for m in theirs.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
            m.bias.uniform_(-0.1, 0.1)
    torch.save(theirs.state_dict(), saved)
    theirs.eval()(x).numpy().tofile(saved_logits)
"""

let private torchCheck = """
import importlib.util, sys, torch
spec = importlib.util.spec_from_file_location("model", sys.argv[1]); m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
images = torch.frombuffer(bytearray(open(sys.argv[2], "rb").read()), dtype=torch.uint8).view(8, 3, 32, 32)
with torch.no_grad():
    x = m.normalise(images, m.MEAN, m.STD)
    m.load()(x).numpy().astype("<f4").tofile(sys.argv[3])
    torch.manual_seed(3)
    other = m.build()
    for p in other.parameters(): p.add_(torch.randn_like(p) * 0.1)
    for b in other.modules():
        if isinstance(b, torch.nn.BatchNorm2d): b.running_mean.uniform_(-0.1, 0.1); b.running_var.uniform_(0.5, 1.5)
    torch.save(other.state_dict(), sys.argv[4])
    other.eval()(x).numpy().astype("<f4").tofile(sys.argv[5])
"""

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
            let code, _, err = cli [ "export"; bare; "--out"; dir.File "bare.pt" ]
            Expect.equal code 1 "export of a run without a checkpoint is bad input"
            containsAll err [ bare; "has no checkpoint" ]
            Expect.isFalse (File.Exists(dir.File "bare.pt")) "and writes nothing"
        }

        test "export writes a state dict torch.load reads, with the network in Python; --init starts a run from one and refuses another architecture" {
            use dir = new TempDir()
            let run = dir.File "run"
            // fp32, so that the run's own probabilities compare with the loaded fp32 network's to 1e-5 on any CPU.
            expectCode (cli [ "train"; "--method"; "baseline"; "--out"; run; "--epochs"; "1"; "--batch"; "32"; "--train-limit"; "64"; "--test-limit"; "20"; "--device"; "cpu"; "--precision"; "fp32" ]) 0
            let weights = Path.Combine(dir.Path, "exported", "model.pt")
            let code, out, err = cli [ "export"; run; "--out"; weights ]
            expectCode (code, out, err) 0
            containsAll out [ weights; Path.ChangeExtension(weights, ".py"); "m.load()" ]
            let python = File.ReadAllText(Path.ChangeExtension(weights, ".py"))
            containsAll python [ "class ResNet(nn.Module)"; "return ResNet([16, 32, 128], [1, 1, 2], 10)"; "CLASSES = [\"airplane\", "; "MEAN = [0."; "STD = [0."; "WEIGHTS = \"model.pt\"" ]

            // The file holds the checkpoint's tensors exactly, by name and in order.
            use trained = TrainedModel.Open(run, Nullable(), "cpu")
            use model = AdvAA.Core.Models.ModelRegistry.Create("small", 10)
            (RunFolder.Open(run).LatestCheckpoint() |> nonNull).Read("model", fun s -> model.load(s, strict = true) |> ignore)
            let expected = model.state_dict() |> Seq.map (fun kv -> kv.Key, kv.Value) |> List.ofSeq
            let read = AdvAA.Core.Models.PyTorchStateDict.Read weights |> Seq.map (fun struct (n, v) -> n, v) |> List.ofSeq
            Expect.equal (read |> List.map fst) (expected |> List.map fst) "the state dict's names, in the model's order"
            for (name, value), (_, original) in List.zip read expected do
                Expect.equal value.dtype original.dtype (sprintf "%s keeps its dtype" name)
                Expect.isTrue (value.equal(original).all().item<bool>()) (sprintf "%s is bit-identical" name)

            // --init: a run from the exported weights evaluates, before any step, as the exported model.
            let sample = DataSources.EmbeddedSample()
            use test = sample.Test
            use _train = sample.Train
            use images = test.Images.narrow(0L, 0L, 8L)
            use fresh = AdvAA.Core.Models.ModelRegistry.Create("small", 10, 0.0, 5L)
            AdvAA.Core.Models.PyTorchStateDict.LoadInto(fresh, weights, "small with 10 classes")
            fresh.eval()
            use direct = trained.Probabilities images
            let normaliser = Normalizer(trained.Config.Data.Mean, trained.Config.Data.Std)
            use logits = fresh.forward(normaliser.Apply images)
            use loaded = torch.nn.functional.softmax(logits, 1L)
            Expect.isTrue (loaded.allclose(direct, 1e-5, 1e-6)) "the loaded weights give the trained model's probabilities"
            // The same as safetensors (the Hugging Face format): its module loads it with safetensors.torch.
            let safe = Path.Combine(dir.Path, "exported", "model.safetensors")
            expectCode (cli [ "export"; run; "--out"; safe ]) 0
            containsAll (File.ReadAllText(Path.ChangeExtension(safe, ".py"))) [ "WEIGHTS = \"model.safetensors\""; "from safetensors.torch import load_file" ]
            let header = let b = File.ReadAllBytes safe in JsonNode.Parse(Text.Encoding.UTF8.GetString(b, 8, int (BitConverter.ToUInt64(b, 0)))) |> nonNull
            let entry = nonNull header["conv1.weight"]
            Expect.equal ((nonNull entry["dtype"]).GetValue<string>()) "F32" "a float32 tensor as F32"
            let conv1 = model.state_dict()["conv1.weight"]
            let shape = (nonNull entry["shape"]).AsArray()
            Expect.equal [ for n in shape -> (nonNull n).GetValue<int64>() ] (List.ofArray conv1.shape) "its shape"
            use fromSafe = AdvAA.Core.Models.ModelRegistry.Create("small", 10, 0.0, 6L)
            AdvAA.Core.Models.WeightFiles.LoadInto(fromSafe, safe, "small with 10 classes")
            fromSafe.eval()
            use safeLogits = fromSafe.forward(normaliser.Apply images)
            use safeLoaded = torch.nn.functional.softmax(safeLogits, 1L)
            Expect.isTrue (safeLoaded.allclose(direct, 1e-5, 1e-6)) "the safetensors weights give the trained model's probabilities"
            let initRun = dir.File "from-init"
            expectCode (cli [ "train"; "--method"; "baseline"; "--out"; initRun; "--epochs"; "1"; "--batch"; "32"; "--train-limit"; "64"; "--test-limit"; "20"; "--device"; "cpu"; "--init"; weights ]) 0
            let config = JsonNode.Parse(File.ReadAllText(Path.Combine(initRun, RunFolder.ConfigFile))) |> nonNull
            Expect.equal ((nonNull ((nonNull config["experiment"])["init"])).GetValue<string>()) weights "config.json records the initial weights"

            // Bad input: another architecture, a truncated file, not a zip: named, nothing written.
            let refused = dir.File "refused"
            let code, _, err = cli [ "train"; "--method"; "baseline"; "--model"; "wrn-10-1"; "--out"; refused; "--epochs"; "1"; "--batch"; "32"; "--train-limit"; "64"; "--device"; "cpu"; "--init"; weights ]
            Expect.equal code 1 "a state dict of another network is bad input"
            containsAll err [ weights; "is not a state dict of wrn-10-1 with 10 classes"; "missing"; "not in the model: bn1.weight" ]
            noTrace err
            Expect.isFalse (Directory.Exists refused && Directory.GetFileSystemEntries(refused).Length > 0) "nothing written"
            let truncated = dir.File "truncated.pt"
            let bytes = File.ReadAllBytes weights
            File.WriteAllBytes(truncated, bytes[.. bytes.Length / 2])
            containsAll (throwsMessage<AdvAA.Core.Models.ModelFileException> (fun () -> AdvAA.Core.Models.PyTorchStateDict.Read truncated |> ignore)) [ truncated; "not a PyTorch weights file" ]
            let text = dir.File "text.pt"
            File.WriteAllText(text, "weights")
            containsAll (throwsMessage<AdvAA.Core.Models.ModelFileException> (fun () -> AdvAA.Core.Models.PyTorchStateDict.Read text |> ignore)) [ text; "not a PyTorch weights file" ]
            containsAll (throwsMessage<AdvAA.Core.Models.ModelFileException> (fun () -> AdvAA.Core.Models.PyTorchStateDict.Read(dir.File "none.pt") |> ignore)) [ dir.File "none.pt"; "does not exist" ]
            let code, _, err = cli [ "export"; run; "--out"; weights; "--format"; "onnx" ]
            Expect.equal code 2 "an unknown format is a usage error"
            containsAll err [ "--format onnx: expected pytorch" ]
        }

        test "PyTorch loads the export and gives AdvAA's logits; AdvAA loads what torch.save wrote (Python's torch, where installed)" {
            let pythonWithTorch = pythonWith "torch"
            if pythonWithTorch.IsNone then skiptest "no python3 with torch (Debian: apt-get install python3-torch): the PyTorch side is not checked"
            let python = pythonWithTorch.Value
            use dir = new TempDir()
            let run = dir.File "run"
            expectCode (cli [ "train"; "--method"; "baseline"; "--model"; "wrn-10-1"; "--out"; run; "--epochs"; "1"; "--batch"; "32"; "--train-limit"; "64"; "--test-limit"; "20"; "--device"; "cpu" ]) 0
            let weights = dir.File "model.pt"
            expectCode (cli [ "export"; run; "--out"; weights ]) 0
            let sample = DataSources.EmbeddedSample()
            use test = sample.Test
            use _train = sample.Train
            use images = test.Images.narrow(0L, 0L, 8L).contiguous()
            File.WriteAllBytes(dir.File "images.u8", images.bytes.ToArray())
            let script = dir.File "check.py"
            File.WriteAllText(script, torchCheck)
            let info = Diagnostics.ProcessStartInfo(python, [ script; Path.ChangeExtension(weights, ".py"); dir.File "images.u8"; dir.File "logits.f32"; dir.File "saved.pt"; dir.File "saved-logits.f32" ])
            info.RedirectStandardError <- true
            use p = Diagnostics.Process.Start info
            let stderr = p.StandardError.ReadToEnd()
            p.WaitForExit()
            Expect.equal p.ExitCode 0 (sprintf "the Python check runs:\n%s" stderr)
            let floats (file: string) = let b = File.ReadAllBytes file in Array.init (b.Length / 4) (fun i -> BitConverter.ToSingle(b, 4 * i))
            use trained = TrainedModel.Open(run, Nullable(), "cpu")
            let normaliser = Normalizer(trained.Config.Data.Mean, trained.Config.Data.Std)
            use x = normaliser.Apply images
            use model = AdvAA.Core.Models.ModelRegistry.Create("wrn-10-1", 10)
            AdvAA.Core.Models.PyTorchStateDict.LoadInto(model, weights, "wrn-10-1")
            model.eval()
            let logits (m: torch.nn.Module<torch.Tensor, torch.Tensor>) =
                use _ = torch.no_grad()
                use y = m.forward x
                y.data<float32>().ToArray()
            let ours = logits model
            let theirs = floats (dir.File "logits.f32")
            Expect.equal theirs.Length 80 "8 images x 10 classes"
            let gap (a: float32[]) (b: float32[]) = Array.map2 (fun (u: float32) v -> abs (float u - float v)) a b |> Array.max
            Expect.isLessThan (gap ours theirs) 1e-4 "PyTorch's logits of the export are AdvAA's within 1e-4"
            use fromTorch = AdvAA.Core.Models.ModelRegistry.Create("wrn-10-1", 10)
            AdvAA.Core.Models.PyTorchStateDict.LoadInto(fromTorch, dir.File "saved.pt", "wrn-10-1")
            fromTorch.eval()
            Expect.isLessThan (gap (logits fromTorch) (floats (dir.File "saved-logits.f32"))) 1e-4 "a state dict torch.save wrote gives PyTorch's logits here"
        }

        test "resnet50 has torchvision's parameter names: each loads the other's state dict and gives its logits (where python3-torchvision is installed)" {
            use model = AdvAA.Core.Models.ModelRegistry.Create("resnet50", 10, 0.0, 3L)
            let names = [ for KeyValue(name, _) in model.state_dict() -> name ]
            Expect.containsAll names [ "conv1.weight"; "bn1.running_var"; "layer1.0.downsample.0.weight"; "layer4.2.conv3.weight"; "layer4.2.bn3.num_batches_tracked"; "fc.bias" ] "torchvision's names"
            Expect.equal (AdvAA.Core.Models.ModelRegistry.ParameterCount model) 23528522L "torchvision's resnet50(num_classes=10) has 23,528,522 parameters"
            match pythonWith "torch, torchvision" with
            | None -> skiptest "no python3 with torch and torchvision (Debian: apt-get install python3-torchvision): the names and shapes are checked, the logits against torchvision are not"
            | Some python ->
                use dir = new TempDir()
                using (torch.no_grad()) (fun _ ->
                    for KeyValue(name, value) in model.state_dict() do
                        use generator = new torch.Generator(uint64 (name.GetHashCode() &&& 0x7fffffff))
                        if name.EndsWith "running_mean" then value.uniform_(-0.1, 0.1, generator) |> ignore
                        elif name.EndsWith "running_var" then value.uniform_(0.5, 1.5, generator) |> ignore)
                let ours = dir.File "ours.pt"
                AdvAA.Core.Models.WeightFiles.Write(model, ours, false)
                use generator = new torch.Generator(11UL)
                use x = torch.randn([| 2L; 3L; 64L; 64L |], generator = generator)
                File.WriteAllBytes(dir.File "x.f32", x.bytes.ToArray())
                let script = dir.File "check.py"
                File.WriteAllText(script, torchvisionCheck)
                let info = Diagnostics.ProcessStartInfo(python, [ script; ours; dir.File "x.f32"; dir.File "logits.f32"; dir.File "theirs.pt"; dir.File "their-logits.f32" ])
                info.RedirectStandardError <- true
                use p = Diagnostics.Process.Start info
                let stderr = p.StandardError.ReadToEnd()
                p.WaitForExit()
                Expect.equal p.ExitCode 0 (sprintf "torchvision loads AdvAA's state dict strictly:\n%s" stderr)
                let floats (file: string) = let b = File.ReadAllBytes file in Array.init (b.Length / 4) (fun i -> BitConverter.ToSingle(b, 4 * i))
                let logits (m: torch.nn.Module<torch.Tensor, torch.Tensor>) =
                    use _ = torch.no_grad()
                    m.eval()
                    use y = m.forward x
                    y.data<float32>().ToArray()
                // 53 layers of float32 in two libtorch versions: the gap is measured against the logits' scale.
                let gap (a: float32[]) (b: float32[]) =
                    let scale = b |> Array.map (fun v -> abs (float v)) |> Array.max |> max 1.0
                    (Array.map2 (fun (u: float32) v -> abs (float u - float v)) a b |> Array.max) / scale
                Expect.isLessThan (gap (logits model) (floats (dir.File "logits.f32"))) 1e-4 "torchvision's logits with AdvAA's weights are AdvAA's within 1e-4 of their scale"
                use fromTorchvision = AdvAA.Core.Models.ModelRegistry.Create("resnet50", 10)
                AdvAA.Core.Models.PyTorchStateDict.LoadInto(fromTorchvision, dir.File "theirs.pt", "resnet50")
                Expect.isLessThan (gap (logits fromTorchvision) (floats (dir.File "their-logits.f32"))) 1e-4 "torchvision's saved weights give torchvision's logits here (within 1e-4 of their scale)"
        }
    ]
