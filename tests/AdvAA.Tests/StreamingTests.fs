module AdvAA.Tests.StreamingTests

open System
open System.IO
open Expecto
open SkiaSharp
open TorchSharp
open AdvAA.Core
open AdvAA.Core.Data
open AdvAA.Core.Training
open AdvAA.Tests.TestSupport
open AdvAA.Tests.TrainingTests
open AdvAA.Tests.CliTests

/// An image `w` x `h` whose pixels depend on its id and position (so crops, flips and mix-ups show).
let writeImage (path: string) (id: int) (w: int) (h: int) (format: SKEncodedImageFormat) =
    Directory.CreateDirectory(Path.GetDirectoryName path) |> ignore
    use bitmap = new SKBitmap(SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque))
    for y in 0 .. h - 1 do
        for x in 0 .. w - 1 do
            bitmap.SetPixel(x, y, SKColor(byte ((id * 53 + x * 255 / w) % 256), byte ((id * 29 + y * 255 / h) % 256), byte ((id * 97) % 256)))
    use data = bitmap.Encode(format, 90)
    File.WriteAllBytes(path, data.ToArray())

/// train/ and test/ folders of JPEGs of varying sizes (`low`..`high` pixels a side), classes a, b, c.
let variableFolder (root: string) (train: int) (test: int) (low: int) (high: int) =
    let random = Random(11)
    for split, count in [ "train", train; "test", test ] do
        for i in 0 .. count - 1 do
            let cls = [| "a"; "b"; "c" |][i % 3]
            writeImage (Path.Combine(root, split, cls, sprintf "%05d.jpg" i)) (i + (if split = "test" then 7919 else 0)) (random.Next(low, high)) (random.Next(low, high)) SKEncodedImageFormat.Jpeg

/// The RandomResizedCrop box of image `i` in epoch 1 of a run with this seed.
let private randomBox (seed: int64) (i: int) (w: int) (h: int) =
    let mutable draws = SplitMix.For(seed, 1, int64 i)
    ImageCrops.RandomResized(w, h, &draws)

let private bytesOf (t: torch.Tensor) = t.contiguous().data<byte>().ToArray()

/// Every batch of one epoch as (image bytes, labels).
let private epochBatches (loader: BatchLoader) (epoch: int) =
    [ for images, labels in loader.Epoch epoch do
          use images = images
          use labels = labels
          yield bytesOf images, labels.data<int64>().ToArray() ]

/// The documented RGB of each image mode (fixtures made with PIL), and how far a lossy JPEG may stray.
let private modes =
    [ "gray8.png", (77, 77, 77), 0
      "gray8.jpg", (77, 77, 77), 2
      "gray16.png", (77, 77, 77), 0
      "rgba16.png", (20, 200, 90), 0
      "palette.png", (10, 20, 30), 0
      // (200, 100, 50) at alpha 128 over the fill grey 128: c·a + 128·(1 − a).
      "rgba.png", (164, 114, 89), 1
      "gray-alpha.png", (128, 128, 128), 0
      "rgb.jpg", (10, 200, 90), 3
      "cmyk.jpg", (255, 0, 0), 3 ]

let private fixture (name: string) = Path.Combine(repoRoot, "tests", "AdvAA.Tests", "fixtures", "modes", name)

let private expectColour (what: string) (pixels: byte[]) (r: int, g: int, b: int) (tolerance: int) =
    let plane = pixels.Length / 3
    for c, expected in [ 0, r; 1, g; 2, b ] do
        let values = pixels[c * plane .. (c + 1) * plane - 1]
        let worst = values |> Array.map (fun v -> abs (int v - expected)) |> Array.max
        Expect.isLessThanOrEqual worst tolerance (sprintf "%s: channel %d is %A, expected %d ± %d" what c (Array.distinct values) expected tolerance)

[<Tests>]
let tests =
    testSequenced <| testList "streaming" [
        test "RandomResizedCrop's boxes stay inside the image and are uniform in area share and log ratio" {
            let draws = 40000
            let boxes = Array.init draws (fun i -> randomBox 3L i 400 400)
            for box in boxes do
                Expect.isTrue (box.X >= 0 && box.Y >= 0 && box.Width >= 1 && box.Height >= 1 && box.X + box.Width <= 400 && box.Y + box.Height <= 400) (sprintf "%A inside 400x400" box)
            let share (b: CropBox) = float b.Width * float b.Height / 160000.0
            let ratio (b: CropBox) = float b.Width / float b.Height
            for b in boxes do
                Expect.isTrue (share b >= 0.079 && share b <= 1.0) (sprintf "%A: area share %g in [0.08, 1]" b (share b))
                Expect.isTrue (ratio b >= 0.74 && ratio b <= 1.36) (sprintf "%A: ratio %g in [3/4, 4/3]" b (ratio b))
            // Below a share of 3/4 every box fits a square image, so no try is rejected: the share is
            // uniform there and the log ratio uniform on [log 3/4, log 4/3] (rounding aside).
            let fitting = boxes |> Array.filter (fun b -> share b < 0.74)
            let histogram (bins: int) (low: float) (high: float) (value: CropBox -> float) =
                let counts = Array.zeroCreate bins
                for b in fitting do
                    let k = int (floor (float bins * (value b - low) / (high - low)))
                    if k >= 0 && k < bins then counts[k] <- counts[k] + 1
                counts
            let flat (name: string) (counts: int[]) =
                let mean = float (Array.sum counts) / float counts.Length
                for k, c in Array.indexed counts do
                    Expect.isLessThan (abs (float c - mean) / mean) 0.06 (sprintf "%s bin %d holds %d of a mean %g: %A" name k c mean counts)
            flat "area share" (histogram 6 0.09 0.73 share)
            flat "log ratio" (histogram 4 (log 0.76) (log 1.31) (ratio >> log))
            Expect.isGreaterThan fitting.Length (draws / 2) "most draws fit at once"
            // A strip no ratio of [3/4, 4/3] fits ten times: the centre box of the nearest ratio.
            Expect.equal (randomBox 1L 0 1000 10) (CropBox(493, 0, 13, 10)) "the fallback: the centre 13x10"
        }

        test "the evaluation crop is the centre square of 0.875 of the shorter side, resized to S" {
            use dir = new TempDir()
            // The first image is large, so the data is streamed; 80x64 → the centre 56x56 from (12, 4).
            writeImage (dir.File "train/a/0.png") 5 80 64 SKEncodedImageFormat.Png
            writeImage (dir.File "test/a/0.png") 5 80 64 SKEncodedImageFormat.Png
            use splits = DataSources.Load dir.Path
            Expect.isTrue splits.Train.IsStreamed "an 80x64 image is streamed"
            use sized = splits.Test.Sized 56
            use crop = BatchLoader.Decoded sized
            Expect.sequenceEqual crop.shape [| 1L; 3L; 56L; 56L |] "one 56x56 crop"
            let expected (file: string) =
                use bitmap = SKBitmap.Decode file
                [| for c in 0..2 do
                     for y in 4..59 do
                         for x in 12..67 ->
                             let p = bitmap.GetPixel(x, y)
                             match c with 0 -> p.Red | 1 -> p.Green | _ -> p.Blue |]
            Expect.sequenceEqual (bytesOf crop) (expected (dir.File "test/a/0.png")) "the hand-computed centre crop, pixel for pixel"
            // A JPEG's crop is the same pixels as its whole decode, cropped.
            writeImage (dir.File "jpeg/train/a/0.jpg") 5 80 64 SKEncodedImageFormat.Jpeg
            writeImage (dir.File "jpeg/test/a/0.jpg") 6 80 64 SKEncodedImageFormat.Jpeg
            use jpegs = DataSources.Load(dir.File "jpeg")
            use jpegTest = jpegs.Test.Sized 56
            use jpegCrop = BatchLoader.Decoded jpegTest
            Expect.sequenceEqual (bytesOf jpegCrop) (expected (dir.File "jpeg/test/a/0.jpg")) "a JPEG's crop equals its whole decode, cropped"
            Expect.equal (ImageCrops.Centre(500, 375)) (CropBox(86, 23, 328, 328)) "500x375: round(0.875·375) = 328, centred"
        }

        test "every image mode converts to the documented RGB, in memory and streamed" {
            for name, colour, tolerance in modes do
                use set = DataSources.ReadImageFiles([| fixture name |], 12, 10)
                expectColour (name + " (in memory)") (bytesOf set.Images) colour tolerance
            use dir = new TempDir()
            writeImage (dir.File "train/a/00-large.png") 1 100 80 SKEncodedImageFormat.Png
            for name, _, _ in modes do File.Copy(fixture name, dir.File("train/a/" + name))
            writeImage (dir.File "test/a/x.png") 2 100 80 SKEncodedImageFormat.Png
            use splits = DataSources.Load dir.Path
            use sized = splits.Train.Sized 16
            use crops = BatchLoader.Decoded sized
            // Files in ordinal order after 00-large.png.
            let names = modes |> List.map (fun (n, _, _) -> n) |> List.sortWith (fun a b -> String.CompareOrdinal(a, b))
            for i, name in List.indexed names do
                let _, colour, tolerance = modes |> List.find (fun (n, _, _) -> n = name)
                use one = crops[int64 (i + 1)]
                expectColour (name + " (streamed)") (bytesOf one) colour tolerance
        }

        test "images of varying sizes stream: the same batches for one and two workers, other epochs other crops" {
            use dir = new TempDir()
            variableFolder dir.Path 40 6 40 200
            use splits = DataSources.Load dir.Path
            Expect.isTrue splits.Train.IsStreamed "varying sizes are streamed"
            use train = splits.Train.Sized 32
            let loader workers = BatchLoader(train, 8, torch.CPU, true, 5L, true, workers)
            let one, two = epochBatches (loader 1) 1, epochBatches (loader 2) 1
            Expect.equal one.Length 5 "40 images, batches of 8"
            Expect.sequenceEqual (List.map snd two) (List.map snd one) "the same labels"
            Expect.isTrue (List.forall2 (fun (a: byte[], _) (b: byte[], _) -> a = b) one two) "the same pixels with two workers"
            Expect.isFalse (List.forall2 (fun (a: byte[], _) (b: byte[], _) -> a = b) one (epochBatches (loader 2) 2)) "epoch 2 draws other crops"
        }

        test "a streamed run trains, resumes exactly, and names a file missing during an epoch with the last checkpoint kept" {
            use dir = new TempDir()
            let data = dir.File "data"
            variableFolder data 160 40 40 120
            let config = (Tiny.Config("randaugment", epochs = 3, model = "small")).WithStreaming(Nullable 24, Nullable 2)
            let run (folder: RunFolder) (stopEpoch: int option) =
                use splits = DataSources.Load data
                trainStaged config splits folder None stopEpoch |> snd
            let whole = RunFolder.Create(dir.File "whole")
            Expect.equal (run whole None |> List.length) 3 "three epochs"
            let recorded = whole.ReadConfig()
            Expect.equal recorded.Experiment.ImageSize (Nullable 24) "config.json records S"
            Expect.sequenceEqual recorded.Data.ImageShape [| 3; 24; 24 |] "the data's shape is the crop's"
            let parted = RunFolder.Create(dir.File "parted")
            run parted (Some 1) |> ignore
            run (RunFolder.Open parted.Path) None |> ignore
            Expect.equal (metricsWithoutTiming parted.Path) (metricsWithoutTiming whole.Path) "a resumed streamed run equals an uninterrupted one"
            // A file deleted while the run trains: named with the epoch and batch; epoch 1's checkpoint stays.
            let broken = RunFolder.Create(dir.File "broken")
            use splits = DataSources.Load data
            use trainer = new Trainer(config, splits)
            let victims = Path.Combine(data, "train", "b")
            trainer.EpochCompleted.Add(fun m -> if m.Epoch = 1 then Directory.Delete(victims, true))
            let message = throwsMessage<DataFormatException> (fun () -> trainer.Run(broken, Threading.CancellationToken.None) |> ignore)
            containsAll message [ victims + "/"; "no such file"; "epoch 2"; "batch " ]
            Expect.equal [ for m in broken.ReadMetrics() -> m.Epoch ] [ 1 ] "epoch 1 stays recorded"
            Expect.isTrue (Directory.Exists(broken.File RunFolder.CheckpointFolder)) "its checkpoint stays"
        }

        test "a data set changed since the run started is named on resume; S is refused for small data of another size" {
            use dir = new TempDir()
            let data = dir.File "data"
            variableFolder data 100 20 40 120
            let config = (Tiny.Config("baseline", epochs = 2, model = "small", trainLimit = 64L)).WithStreaming(Nullable 16, Nullable())
            let folder = RunFolder.Create(dir.File "run")
            do
                use splits = DataSources.Load data
                trainStaged config splits folder None (Some 1) |> ignore
            let touched = Directory.GetFiles(Path.Combine(data, "test", "a")) |> Array.sort |> Array.head
            File.SetLastWriteTimeUtc(touched, DateTime.UtcNow.AddDays 1.0)
            use splits = DataSources.Load data
            let message = throwsMessage<RunFolderException> (fun () -> trainStaged config splits (RunFolder.Open folder.Path) None None |> ignore)
            containsAll message [ "data"; data ]
            let small = (Tiny.Config("baseline", epochs = 1)).WithStreaming(Nullable 24, Nullable())
            let refused = throwsMessage<ConfigException> (fun () -> new Trainer(small, sample.Force()) |> ignore)
            containsAll refused [ "image size = 24"; "32x32" ]
        }

        test "the hardening holds per batch: a header bomb, a link to /dev/zero and a truncated JPEG are named with the batch" {
            use dir = new TempDir()
            writeImage (dir.File "train/a/0.jpg") 1 100 80 SKEncodedImageFormat.Jpeg
            writeImage (dir.File "train/a/1.jpg") 2 90 70 SKEncodedImageFormat.Jpeg
            writeImage (dir.File "test/a/0.jpg") 3 100 80 SKEncodedImageFormat.Jpeg
            let refused (name: string) (write: string -> unit) (parts: string list) =
                let path = dir.File("train/a/" + name)
                write path
                do
                    use splits = DataSources.Load dir.Path
                    Expect.isTrue splits.Train.IsStreamed "streamed: the first image is large"
                    use train = splits.Train.Sized 32
                    let message = throwsMessage<DataFormatException> (fun () -> epochBatches (BatchLoader(train, 2, torch.CPU, false, 0L, false, 2)) 0 |> ignore)
                    containsAll message (path :: "evaluation, batch " :: parts)
                File.Delete path
            refused "2-bomb.png" (fun p -> File.WriteAllBytes(p, HostileInputTests.pngBomb 20000 20000 20000)) [ "20000x20000"; "more than the limit" ]
            refused "2-zero.png" (fun p -> File.CreateSymbolicLink(p, "/dev/zero") |> ignore) [ "not a regular file" ]
            refused "2-cut.jpg" (fun p -> let bytes = File.ReadAllBytes(dir.File "train/a/0.jpg") in File.WriteAllBytes(p, bytes[.. bytes.Length / 2])) [ "corrupt" ]
        }

        test "tar shards round-trip from make-shards: the same images, labels and crops; GNU tar's shards read too" {
            use dir = new TempDir()
            let folder = dir.File "folder"
            variableFolder folder 30 9 40 120
            let written = Shards.Write(folder, dir.File "shards", 8)
            Expect.equal [ for w in written -> Path.GetFileName w ] [ "train-000000.tar"; "train-000001.tar"; "train-000002.tar"; "train-000003.tar"; "test-000000.tar"; "test-000001.tar" ] "30 + 9 samples, 8 a shard"
            let crops (path: string) =
                use splits = DataSources.Load path
                Expect.isTrue splits.Train.IsStreamed "streamed"
                use sized = splits.Test.Sized 24
                use pixels = BatchLoader.Decoded sized
                let labels = sized.Labels.data<int64>().ToArray()
                splits.Format, List.ofSeq splits.Train.Classes, splits.Train.Count,
                [ for i in 0 .. labels.Length - 1 -> use one = pixels[int64 i] in labels[i], bytesOf one ] |> List.sort
            let format, classes, count, fromFolder = crops folder
            let shardFormat, shardClasses, shardCount, fromShards = crops (dir.File "shards")
            Expect.equal (format, shardFormat) ("image-folder", "tar-shards") "the formats"
            Expect.equal (shardClasses, shardCount) (classes, count) "the same classes (classes.txt) and images"
            Expect.isTrue (fromShards = fromFolder) "every test image with its label and the same centre crop"
            // A shard written by GNU tar (its own header layout), without classes.txt: classes 0..2 by index.
            let gnu = dir.File "gnu"
            Directory.CreateDirectory gnu |> ignore
            let members = dir.File "members"
            Directory.CreateDirectory members |> ignore
            for i, file in Directory.GetFiles(Path.Combine(folder, "test", "b")) |> Array.sort |> Array.indexed do
                File.Copy(file, Path.Combine(members, sprintf "k%d.jpg" i))
                File.WriteAllText(Path.Combine(members, sprintf "k%d.cls" i), "2")
            for split in [ "train"; "test" ] do
                expectCode (runProcess members 30 "tar" ([ "--format=gnu"; "-cf"; Path.Combine(gnu, split + "-000000.tar") ] @ [ for f in Directory.GetFiles members |> Array.sort -> Path.GetFileName f ])) 0
            use gnuSplits = DataSources.Load gnu
            Expect.equal (List.ofSeq gnuSplits.Train.Classes) [ "0"; "1"; "2" ] "classes by index without classes.txt"
            use gnuTest = gnuSplits.Test.Sized 24
            use gnuPixels = BatchLoader.Decoded gnuTest
            let expectedB = fromFolder |> List.filter (fun (label, _) -> label = 1L) |> List.map snd |> List.sort
            Expect.isTrue ([ for i in 0L .. gnuPixels.shape[0] - 1L -> use one = gnuPixels[i] in bytesOf one ] |> List.sort = expectedB) "GNU tar's members decode to the same crops"
            containsAll (throwsMessage<ConfigException> (fun () -> Shards.Write(folder, dir.File "shards", 8) |> ignore)) [ dir.File "shards"; "not empty" ]
        }

        test "a shard's image without its .cls, a .cls that is no class, and a header bomb inside a shard are named with the shard" {
            use dir = new TempDir()
            let members = dir.File "members"
            writeImage (Path.Combine(members, "a.jpg")) 1 90 70 SKEncodedImageFormat.Jpeg
            writeImage (Path.Combine(members, "b.jpg")) 2 90 70 SKEncodedImageFormat.Jpeg
            File.WriteAllText(Path.Combine(members, "a.cls"), "0")
            let shards = dir.File "shards"
            Directory.CreateDirectory shards |> ignore
            let pack (files: string list) =
                for split in [ "train"; "test" ] do
                    expectCode (runProcess members 30 "tar" ([ "-cf"; Path.Combine(shards, split + "-000000.tar") ] @ files)) 0
            pack [ "a.jpg"; "a.cls"; "b.jpg" ]
            containsAll (throwsMessage<DataFormatException> (fun () -> (DataSources.Load shards).Dispose())) [ Path.Combine(shards, "train-000000.tar"); "member 'b.jpg' has no class beside it (b.cls)" ]
            File.WriteAllText(Path.Combine(members, "b.cls"), "cat")
            pack [ "a.jpg"; "a.cls"; "b.jpg"; "b.cls" ]
            containsAll (throwsMessage<DataFormatException> (fun () -> (DataSources.Load shards).Dispose())) [ "member 'b.cls' holds 'cat', not a class index" ]
            // A header bomb inside a shard: refused on its header when its batch is read, naming the shard and member.
            File.WriteAllText(Path.Combine(members, "b.cls"), "0")
            File.Delete(Path.Combine(members, "b.jpg"))
            File.WriteAllBytes(Path.Combine(members, "b.png"), HostileInputTests.pngBomb 20000 20000 20000)
            pack [ "a.jpg"; "a.cls"; "b.png"; "b.cls" ]
            use splits = DataSources.Load shards
            use train = splits.Train.Sized 32
            containsAll (throwsMessage<DataFormatException> (fun () -> epochBatches (BatchLoader(train, 2, torch.CPU, false, 0L, false, 1)) 0 |> ignore))
                [ Path.Combine(shards, "train-000000.tar"); "member 'b.png'"; "20000x20000"; "more than the limit"; "evaluation, batch 1 of 1" ]
        }

        test "--skip-bad-images leaves bad images out of their batches and lists each per epoch; a resumed run lists what an uninterrupted one does" {
            use dir = new TempDir()
            let data = dir.File "data"
            variableFolder data 48 12 40 90
            let cut = Path.Combine(data, "train", "a", "00003.jpg")
            let bytes = File.ReadAllBytes cut
            File.WriteAllBytes(cut, bytes[.. bytes.Length / 2])
            let bomb = Path.Combine(data, "test", "b", "zz-bomb.png")
            File.WriteAllBytes(bomb, HostileInputTests.pngBomb 20000 20000 20000)
            let config = (Tiny.Config("baseline", epochs = 2, model = "small", batchSize = 16)).WithStreaming(Nullable 16, Nullable 2, true)
            let run (folder: RunFolder) (stopEpoch: int option) =
                use splits = DataSources.Load data
                trainStaged config splits folder None stopEpoch |> snd
            let whole = RunFolder.Create(dir.File "whole")
            Expect.equal (run whole None |> List.length) 2 "both epochs train"
            let lines = whole.ReadLines RunFolder.SkippedImagesFile
            let listed (line: Text.Json.Nodes.JsonObject) =
                [ for i in line["images"].AsArray() -> string i["during"], string i["file"], string i["error"] ]
            Expect.equal [ for l in lines -> int l["epoch"] ] [ 1; 2 ] "a line per epoch"
            // Epoch 1: the cut JPEG in training, the bomb in the test evaluation; epoch 2 adds the clean-train evaluation's cut JPEG.
            let first = listed lines[0]
            Expect.equal [ for d, f, _ in first -> d, f ] [ "epoch 1", cut; "evaluation", bomb ] "epoch 1's skipped images"
            containsAll (first |> List.map (fun (_, _, e) -> e) |> String.concat "\n") [ "corrupt"; "20000x20000" ]
            Expect.equal [ for d, f, _ in listed lines[1] -> d, f ] [ "epoch 2", cut; "evaluation", bomb; "evaluation", cut ] "epoch 2's skipped images"
            Expect.equal [ for m in whole.ReadMetrics() -> m.SkippedImages ] [ Nullable 2; Nullable 3 ] "counted in metrics.jsonl"
            let parted = RunFolder.Create(dir.File "parted")
            run parted (Some 1) |> ignore
            run (RunFolder.Open parted.Path) None |> ignore
            Expect.equal (parted.ReadLines RunFolder.SkippedImagesFile |> Seq.map string |> List.ofSeq) (lines |> Seq.map string |> List.ofSeq) "resumed: the same list"
            Expect.equal (metricsWithoutTiming parted.Path) (metricsWithoutTiming whole.Path) "resumed: the same metrics"
        }

        test "memory does not grow with the data: an epoch over 1,500 streamed images keeps RSS within 120 MB of its start" {
            let clear = "/proc/self/clear_refs"
            if not (File.Exists clear) then skiptest "no /proc/self/clear_refs here to reset the peak RSS"
            use dir = new TempDir()
            variableFolder dir.Path 30 3 60 160
            // 1,500 files: the 30 written, copied 49 times more (writing each pixel by pixel is slow).
            for file in Directory.GetFiles(dir.File "train", "*.jpg", SearchOption.AllDirectories) do
                for copy in 1..49 do File.Copy(file, file.Replace(".jpg", sprintf "-%02d.jpg" copy))
            use splits = DataSources.Load dir.Path
            // 1,500 crops of 224x224 decoded at once would take 226 MB.
            use train = splits.Train.Sized 224
            let loader = BatchLoader(train, 16, torch.CPU, true, 1L, true, 2)
            let rss (field: string) =
                File.ReadAllLines "/proc/self/status" |> Array.find (fun l -> l.StartsWith field) |> fun l -> int64 (l.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024L
            GC.Collect()
            File.WriteAllText(clear, "5")
            let before = rss "VmRSS:"
            let mutable batches = 0
            for images, labels in loader.Epoch 1 do
                images.Dispose()
                labels.Dispose()
                batches <- batches + 1
            let peak = rss "VmHWM:"
            Expect.equal batches 93 "every batch"
            Expect.isLessThan (peak - before) 120L (sprintf "peak RSS %d MB, %d MB at the start" peak before)
        }
    ]
