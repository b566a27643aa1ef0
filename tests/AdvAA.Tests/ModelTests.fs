module AdvAA.Tests.ModelTests

open System
open Expecto
open TorchSharp
open AdvAA.Core.Models
open AdvAA.Tests.TestSupport

let private parameterCount name =
    use model = ModelRegistry.Create(name, 10)
    ModelRegistry.ParameterCount model

let private stateKeys (model: torch.nn.Module) = model.state_dict().Keys |> Set.ofSeq

let private forwardShape name classes batch =
    use model = ModelRegistry.Create(name, classes)
    model.eval()
    use x = torch.randn(int64 batch, 3L, 32L, 32L)
    use noGrad = torch.no_grad()
    use y = model.forward x
    use finite = y.isfinite().all()
    Expect.isTrue (finite.item<bool>()) (sprintf "%s: finite logits" name)
    y.shape

[<Tests>]
let tests =
    testSequenced <| testList "models" [
        test "the named presets" {
            Expect.sequenceEqual ModelRegistry.Names [ "small"; "resnet18"; "wrn-28-10"; "wrn-40-2"; "resnet18-imagenet"; "resnet34"; "resnet50" ] "names"
            for name in ModelRegistry.Names do
                Expect.stringStarts (ModelRegistry.Describe name) (name + ": ") "one line per name, starting with it"
            Expect.stringContains (ModelRegistry.Describe "WRN-16-4") "WideResNet-16-4" "any wrn-<depth>-<widen> is described"
        }

        test "parameter counts match the reference architectures" {
            // The published PyTorch implementations of these networks have exactly these counts.
            let wrn2810 = parameterCount "wrn-28-10"
            Expect.equal wrn2810 36_479_194L "WRN-28-10"
            Expect.isLessThan (abs (float wrn2810 - 36.5e6) / 36.5e6) 0.01 "WRN-28-10 within 1% of 36.5M"
            Expect.equal (parameterCount "wrn-40-2") 2_243_546L "WRN-40-2 (about 2.2M)"
            Expect.equal (parameterCount "resnet18") 11_173_962L "ResNet-18, CIFAR stem (about 11.17M)"
            // torchvision's resnet18/34/50(num_classes=10): 11,689,512 / 21,797,672 / 25,557,032 with 1,000 classes, less the larger head.
            Expect.equal (parameterCount "resnet18-imagenet") 11_181_642L "torchvision's ResNet-18"
            Expect.equal (parameterCount "resnet34") 21_289_802L "torchvision's ResNet-34"
            let small = parameterCount "small"
            Expect.isGreaterThan small 300_000L "small: at least 0.3M"
            Expect.isLessThan small 800_000L "small: at most 0.8M"
            use wrn100 = ModelRegistry.Create("wrn-28-10", 100)
            Expect.equal (ModelRegistry.ParameterCount wrn100) (36_479_194L + 90L * 641L) "100 classes: only the head grows"
        }

        test "forward maps [N,3,32,32] to logits [N,classes]" {
            Expect.sequenceEqual (forwardShape "small" 10 4) [| 4L; 10L |] "small"
            Expect.sequenceEqual (forwardShape "resnet18" 10 2) [| 2L; 10L |] "resnet18"
            Expect.sequenceEqual (forwardShape "wrn-40-2" 100 3) [| 3L; 100L |] "wrn-40-2, 100 classes"
            Expect.sequenceEqual (forwardShape "wrn-28-10" 10 2) [| 2L; 10L |] "wrn-28-10"
        }

        test "state-dict names are stable" {
            use wrn = ModelRegistry.Create("wrn-40-2", 10)
            let keys = stateKeys wrn
            for k in [ "conv1.weight"; "layers.0.0.bn1.weight"; "layers.0.0.conv1.weight"; "layers.0.0.bn2.running_mean"
                       "layers.0.0.conv2.weight"; "layers.0.0.shortcut.weight"; "layers.2.5.conv2.weight"
                       "bn.weight"; "bn.running_var"; "fc.weight"; "fc.bias" ] do
                Expect.contains keys k (sprintf "wrn-40-2 has %s" k)
            Expect.isFalse (keys.Contains "layers.0.1.shortcut.weight") "no projection where the shape is kept"
            use resnet = ModelRegistry.Create("resnet18", 10)
            let keys = stateKeys resnet
            for k in [ "conv1.weight"; "bn1.weight"; "layers.0.1.conv2.weight"; "layers.1.0.shortcut.0.weight"
                       "layers.1.0.shortcut.1.running_var"; "layers.3.1.bn2.bias"; "fc.bias" ] do
                Expect.contains keys k (sprintf "resnet18 has %s" k)
            Expect.isFalse (keys.Contains "layers.0.0.shortcut.0.weight") "the first stage keeps the shape"
        }

        test "Kaiming initialisation over fan-out" {
            use model = ModelRegistry.Create("wrn-28-10", 10)
            let named = model.named_parameters() |> Seq.map (fun struct (n, p) -> n, p) |> Map.ofSeq
            use std = named["layers.2.3.conv2.weight"].std()
            let expected = sqrt (2.0 / (9.0 * 640.0))
            Expect.floatClose { absolute = 0.0; relative = 0.02 } (std.item<float32>() |> float) expected "std = sqrt(2 / (3·3·640))"
            use ones = named["layers.1.2.bn1.weight"].eq(torch.tensor 1.0f).all()
            Expect.isTrue (ones.item<bool>()) "batch-norm weights are 1"
            use zeros = named["fc.bias"].eq(torch.tensor 0.0f).all()
            Expect.isTrue (zeros.item<bool>()) "linear bias is 0"
        }

        test "WideResNet dropout acts in training only" {
            torch.manual_seed 3L |> ignore
            use model = ModelRegistry.Create("wrn-16-2", 10, 0.3)
            use x = torch.randn(2L, 3L, 32L, 32L)
            use noGrad = torch.no_grad()
            model.train()
            use a = model.forward x
            use b = model.forward x
            Expect.isFalse (a.allclose b) "two training passes differ"
            model.eval()
            use c = model.forward x
            use d = model.forward x
            Expect.isTrue (c.allclose(d, rtol = 0.0, atol = 0.0)) "evaluation is deterministic"
        }

        test "bad names and arguments are errors naming the value" {
            let msg = throwsMessage<ArgumentException> (fun () -> ModelRegistry.Create("vgg16", 10) |> ignore)
            containsAll msg [ "'vgg16'"; "small"; "resnet18"; "wrn-28-10"; "wrn-40-2"; "wrn-<depth>-<widen>" ]
            let msg = throwsMessage<ArgumentException> (fun () -> ModelRegistry.Describe "vgg16" |> ignore)
            containsAll msg [ "'vgg16'"; "small" ]
            let msg = throwsMessage<ArgumentException> (fun () -> ModelRegistry.Create("wrn-27-10", 10) |> ignore)
            containsAll msg [ "depth 27"; "6n + 4" ]
            let msg = throwsMessage<ArgumentException> (fun () -> ModelRegistry.Create("wrn-28-0", 10) |> ignore)
            containsAll msg [ "widen factor 0" ]
            let msg = throwsMessage<ArgumentException> (fun () -> ModelRegistry.Create("wrn-28-ten", 10) |> ignore)
            containsAll msg [ "'wrn-28-ten'"; "wrn-<depth>-<widen>" ]
            let msg = throwsMessage<ArgumentException> (fun () -> ModelRegistry.Create("small", 0) |> ignore)
            containsAll msg [ "numClasses 0" ]
            let msg = throwsMessage<ArgumentException> (fun () -> ModelRegistry.Create("resnet18", 10, 0.3) |> ignore)
            containsAll msg [ "'resnet18'"; "dropout 0.3"; "only wrn-<depth>-<widen> models take dropout" ]
            let msg = throwsMessage<ArgumentException> (fun () -> ModelRegistry.Create("wrn-40-2", 10, 1.0) |> ignore)
            containsAll msg [ "dropout 1"; "[0, 1)" ]
        }

        test "small overfits a tiny batch" {
            torch.manual_seed 7L |> ignore
            use model = ModelRegistry.Create("small", 10)
            model.train()
            use x = torch.randn(16L, 3L, 32L, 32L)
            use y = torch.randint(10L, [| 16L |])
            use optimizer = torch.optim.SGD(model.parameters(), 0.05, momentum = 0.9)
            let step () =
                use scope = torch.NewDisposeScope()
                optimizer.zero_grad()
                let loss = torch.nn.functional.cross_entropy(model.forward x, y)
                loss.backward()
                optimizer.step() |> ignore
                loss.item<float32>()
            let losses = Array.init 40 (fun _ -> step ())
            Expect.isGreaterThan losses[0] 1.5f "starts near ln 10"
            Expect.isLessThan losses[39] (0.2f * losses[0]) (sprintf "loss drops by 5x (losses %A)" losses)
            model.eval()
            use noGrad = torch.no_grad()
            use predicted = model.forward(x).argmax(1L)
            use correct = predicted.eq(y).sum()
            Expect.isGreaterThanOrEqual (correct.item<int64>()) 14L "it has learned the batch"
        }
    ]
