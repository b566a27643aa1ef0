module AdvAA.Tests.CycleGanTests

open System
open System.Diagnostics
open System.IO
open System.Text.Json.Nodes
open System.Threading
open Expecto
open TorchSharp
open AdvAA.Core
open AdvAA.Core.Data
open AdvAA.Core.Models
open AdvAA.Core.Search
open AdvAA.Core.Training
open AdvAA.Tests.TestSupport

let private groupNames =
    [ SubgroupName(Class = 0, ClassName = "animal", Subgroup = "clean"); SubgroupName(Class = 0, ClassName = "animal", Subgroup = "patch")
      SubgroupName(Class = 1, ClassName = "vehicle", Subgroup = "clean"); SubgroupName(Class = 1, ClassName = "vehicle", Subgroup = "patch") ]

let private size = 16L

/// 64 smooth random 16×16 images per class (bilinear upsampling of 4×4 noise, the vehicles darker);
/// 48 animals and 16 vehicles carry a 4×4 orange square at (2, 2), the benchmark's patch.
let private synthetic () =
    use scope = torch.NewDisposeScope()
    use generator = new torch.Generator(7UL)
    let perClass = 64L
    let low = torch.rand([| 2L * perClass; 3L; 4L; 4L |], generator = generator)
    let smooth = torch.nn.functional.interpolate(low, size = [| size; size |], mode = torch.InterpolationMode.Bilinear, align_corners = true)
    let labels = torch.arange((2L * perClass).ToScalar()).div(perClass.ToScalar(), rounding_mode = torch.RoundingMode.floor)
    let tint = torch.tensor([| 160.0f; 100.0f |]).index_select(0L, labels).view(-1L, 1L, 1L, 1L)
    let patched = torch.tensor([| for i in 0L .. 2L * perClass - 1L -> if i < perClass then i < 48L else i < perClass + 16L |])
    let square = torch.zeros([| 1L; 1L; size; size |], dtype = torch.ScalarType.Bool)
    square.narrow(2L, 2L, 4L).narrow(3L, 2L, 4L).fill_(true) |> ignore
    let orange = torch.tensor([| 255.0f; 128.0f; 0.0f |]).view(1L, 3L, 1L, 1L)
    let images = torch.where(square.logical_and(patched.view(-1L, 1L, 1L, 1L)), orange, smooth.mul(tint)).round().to_type(torch.ScalarType.Byte)
    let groups = labels.mul((2L).ToScalar()).add(patched.to_type(torch.ScalarType.Int64))
    new ImageDataset(images, labels, [ "animal"; "vehicle" ], "synthetic", groups, groupNames)

/// Small batches and a higher rate than CycleGAN's: many quick steps, so the short run learns.
let private learning = CycleGanSettings(Epochs = 15, Batch = 4, Filters = 8, Blocks = 1, LearningRate = 2e-3)

let private settings epochs = CycleGanSettings(Epochs = epochs, Batch = 8, Filters = 8, Blocks = 1)

let private stage (s: CycleGanSettings) = new CycleGanStage(s, groupNames, 3, int size, int size, torch.CPU, 11L)

let private identity (seed: int) = JsonObject(dict [ "seed", JsonValue.Create seed :> JsonNode ])

/// Runs `f` on one CPU thread: on a shared 2-core machine OpenMP's waiting threads made these
/// tiny convolutions 5× slower (measured: 60 vs 310 ms per step) and their time erratic.
let private singleThreaded (f: unit -> 'a) =
    let before = torch.get_num_threads ()
    torch.set_num_threads 1
    try f () finally torch.set_num_threads before

/// Runs a stage in `folder` with the identity of `seed`, single-threaded; returns its result and the reported lines.
let private run' (cyclegan: CycleGanStage) (folder: string) (train: ImageDataset) (seed: int) (cancel: CancellationToken) =
    let lines = Collections.Generic.List<string>()
    let finished = singleThreaded (fun () -> cyclegan.Run(folder, train, identity seed, cancel, Action<string> lines.Add))
    finished, List.ofSeq lines

/// Runs a fresh stage of these settings in `folder`.
let private run (s: CycleGanSettings) (folder: string) (train: ImageDataset) (seed: int) =
    use cyclegan = stage s
    run' cyclegan folder train seed CancellationToken.None

let private cycleLosses (folder: string) =
    [ for line: JsonObject in JsonLines.Read(Path.Combine(folder, CycleGanStage.MetricsFile)) ->
        let classes = (nonNull (line["classes"])).AsObject()
        [ for name in [ "animal"; "vehicle" ] ->
            let losses: JsonNode = nonNull (classes[name])
            (nonNull (losses["cycle_loss"])).GetValue<float>() ] ]

let private withoutSeconds (folder: string) =
    [ for line: JsonObject in JsonLines.Read(Path.Combine(folder, CycleGanStage.MetricsFile)) ->
        line.Remove "seconds" |> ignore
        line.ToJsonString() ]

[<Tests>]
let tests =
    testSequenced <| testList "cyclegan" [
        test "a short CPU run learns to cycle the synthetic patch pair, in under a minute" {
            use dir = new TempDir()
            use train = synthetic ()
            let clock = Stopwatch.StartNew()
            let finished, lines = run learning (dir.File "stage1") train 1
            let seconds = clock.Elapsed.TotalSeconds
            Expect.isTrue finished "finished"
            Expect.isLessThan seconds 60.0 "under a minute"
            Expect.equal lines.Length 15 "a line per epoch"
            containsAll lines[0] [ "stage 1  epoch 1/15"; "animal: cycle"; "vehicle: cycle"; " s" ]
            let losses = cycleLosses (dir.File "stage1")
            let first, last = losses.Head, List.last losses
            // Measured (seed 11, 26 s): animal 0.28 in the first epoch, 0.16 in the 15th; vehicle 0.24, 0.11.
            // An untrained generator outputs about 0 (tanh of N(0, 0.02) weights), a cycle loss of
            // mean |x| ≈ 0.4 (animals) and 0.6 (vehicles) on these images; the bounds leave a quarter's margin over what was measured.
            for f, l in List.zip first last do
                Expect.isLessThan l 0.2 (sprintf "cycle loss below 0.2: %A" losses)
                Expect.isLessThan l (0.7 * f) (sprintf "well below the first epoch's: %A" losses)
            Expect.isTrue (File.Exists(Path.Combine(dir.File "stage1", CycleGanStage.GridFile))) "the translation grid"
        }

        test "Translate: uint8 of the input's shape, each image as it would be alone; a class without two subgroups is named" {
            use cyclegan = stage (settings 1)
            use scope = torch.NewDisposeScope()
            use train = synthetic ()
            let picks = torch.tensor([| 0L; 50L; 64L; 100L; 1L; 70L |])
            let images = train.Images.index_select(0L, picks)
            let groups = (nonNull train.Groups).index_select(0L, picks)
            let targets = torch.tensor([| 0L; 1L; 2L; 2L; 0L; 3L |])
            let translated = cyclegan.Translate(images, groups, targets)
            Expect.equal translated.dtype torch.ScalarType.Byte "uint8"
            Expect.sequenceEqual translated.shape images.shape "the input's shape"
            for i in 0L .. 5L do
                let alone = cyclegan.Translate(images.narrow(0L, i, 1L), groups.narrow(0L, i, 1L), targets.narrow(0L, i, 1L))
                let difference = alone.to_type(torch.ScalarType.Int32).sub(translated.narrow(0L, i, 1L).to_type(torch.ScalarType.Int32)).abs().max().item<int>()
                Expect.isLessThanOrEqual difference 1 (sprintf "image %d as translated alone (rounding aside)" i)
            let msg = throwsMessage<ArgumentException> (fun () -> cyclegan.Translate(images, groups, torch.tensor([| 2L; 1L; 2L; 2L; 0L; 3L |])) |> ignore)
            containsAll msg [ "another class" ]
            let oneSubgroup = groupNames |> List.take 3
            let msg = throwsMessage<ArgumentException> (fun () -> (new CycleGanStage(settings 1, oneSubgroup, 3, 16, 16, torch.CPU, 1L)).Dispose())
            containsAll msg [ "'vehicle'"; "clean"; "exactly two" ]
            use plain = new ImageDataset(train.Images.clone(), train.Labels.clone(), train.Classes, "plain")
            let msg = throwsMessage<ArgumentException> (fun () -> cyclegan.Run("unused", plain, identity 1, CancellationToken.None, ignore) |> ignore)
            containsAll msg [ "plain"; "subgroups" ]
        }

        test "a resumed stage repeats an uninterrupted one; a finished one only loads; a cancelled one stops" {
            use dir = new TempDir()
            use train = synthetic ()
            let parted, whole = dir.File "parted", dir.File "whole"
            let finished, lines = run (settings 2) parted train 1
            Expect.isTrue finished "two epochs"
            Expect.equal lines.Length 2 "two lines"
            Expect.isTrue (CycleGanStage.Finished(parted, 2)) "finished at 2"
            Expect.isFalse (CycleGanStage.Finished(parted, 3)) "not at 3"
            let _, lines = run (settings 3) parted train 1
            Expect.equal lines.Length 1 "only the third epoch trained"
            containsAll lines[0] [ "epoch 3/3" ]
            run (settings 3) whole train 1 |> ignore
            Expect.sequenceEqual (withoutSeconds parted) (withoutSeconds whole) "the metrics of an uninterrupted run"
            // Loaded, both translate alike: the resumed networks are the uninterrupted ones.
            let translate (folder: string) =
                use cyclegan = stage (settings 3)
                let finished, lines = run' cyclegan folder train 1 CancellationToken.None
                Expect.isTrue finished "finished"
                Expect.isEmpty lines "a finished stage trains nothing"
                cyclegan.Translate(train.Images, nonNull train.Groups, (nonNull train.Groups).bitwise_xor(torch.tensor 1L))
            use a = translate parted
            use b = translate whole
            Expect.isTrue (a.eq(b).all().item<bool>()) "the same translations"
            use cancel = new CancellationTokenSource()
            cancel.Cancel()
            use cyclegan = stage (settings 3)
            let finished, lines = run' cyclegan (dir.File "cancelled") train 1 cancel.Token
            Expect.isFalse finished "cancelled before the first epoch"
            Expect.isEmpty lines "no epoch"
            Expect.isFalse (CycleGanStage.Finished(dir.File "cancelled", 1)) "no checkpoint"
        }

        test "a stage-1 folder of another run is refused, naming the difference" {
            use dir = new TempDir()
            use train = synthetic ()
            run (settings 1) (dir.File "stage1") train 1 |> ignore
            let msg = throwsMessage<RunFolderException> (fun () -> run (settings 2) (dir.File "stage1") train 2 |> ignore)
            containsAll msg [ "different run"; "seed"; "recorded 1, now 2" ]
        }
    ]
