module AdvAA.Tests.SubgroupTests

open System
open System.IO
open System.Text.Json.Nodes
open Expecto
open SkiaSharp
open AdvAA.Core
open AdvAA.Core.Data
open AdvAA.Core.Training
open AdvAA.Tests.TestSupport
open AdvAA.Tests.CliTests

/// The animal-vs-vehicle task at these sizes (C# records have no F# copy-and-update).
let private sized (train: int) (valPerGroup: int) (testPerGroup: int) (correlation: float) =
    let d = SpuriousBenchmark.Settings.AnimalVsVehicle
    SpuriousBenchmark.Settings(d.FirstName, d.First, d.SecondName, d.Second, TrainPerClass = train, ValPerGroup = valPerGroup, TestPerGroup = testPerGroup, Correlation = correlation, Seed = 3L)

let private small = sized 100 10 20 0.99

let private counts (set: ImageDataset) =
    [ for name, count in Seq.zip (nonNull set.GroupNames) (set.GroupCounts()) -> string name, count ]

/// Whether every pixel of these planes (uint8 [3,H,W]) is the patch's orange.
let private isOrange (planes: TorchSharp.torch.Tensor) =
    use wide = planes.to_type TorchSharp.torch.ScalarType.Int64
    use orange = TorchSharp.torch.tensor([| 255L; 128L; 0L |]).view(3L, 1L, 1L)
    wide.eq(orange).all().item<bool>()

[<Tests>]
let tests =
    testSequenced <| testList "subgroups" [
        test "make-spurious writes the stated groups, patches where the manifest says, and the loader reads them back" {
            use dir = new TempDir()
            let folder = dir.File "spurious"
            use sample = DataSources.EmbeddedSample()
            let written = SpuriousBenchmark.Write(sample, folder, small)
            Expect.equal (written.Counts["train"]["animal/patch"]) 99 "99 % of the animals patched"
            let data = DataSources.Load folder
            use train = data.Train
            use test = data.Test
            use validation = nonNull data.Validation
            Expect.equal (counts train) [ "animal/clean", 1L; "animal/patch", 99L; "vehicle/clean", 99L; "vehicle/patch", 1L ] "training groups follow the patch"
            Expect.equal (counts validation) [ for g in [ "animal/clean"; "animal/patch"; "vehicle/clean"; "vehicle/patch" ] -> g, 10L ] "validation balanced"
            Expect.equal (counts test) [ for g in [ "animal/clean"; "animal/patch"; "vehicle/clean"; "vehicle/patch" ] -> g, 20L ] "test balanced"
            Expect.sequenceEqual train.Classes [ "animal"; "vehicle" ] "two classes"
            // Every image's counterpart, row by row: they differ in the patch's square alone.
            for set in [ train; validation; test ] do
                let counterparts = nonNull set.Counterparts
                Expect.sequenceEqual counterparts.shape set.Images.shape "a counterpart per image"
                use differing = set.Images.ne(counterparts).any(1L).flatten(1L).sum(1L)
                Expect.isTrue (differing.min().item<int64>() >= 1L && differing.max().item<int64>() <= 64L) "aligned: at most the 8x8 square differs"
            use fromParent = DataSources.Load dir.Path
            Expect.isNotNull fromParent.Train.Counterparts "found one level down, counterparts/ not taken for a data set"
            let code, out, err = cli [ "data"; "--data"; folder ]
            expectCode (code, out, err) 0
            containsAll out [ "counterparts: yes (the benchmark's oracle translations)" ]
            // A patched image: the patch's colour in its square, the source's pixels elsewhere.
            let manifest = JsonNode.Parse(File.ReadAllText(Path.Combine(folder, SpuriousBenchmark.ManifestFile))) |> nonNull
            let entry =
                (nonNull manifest["images"]).AsArray()
                |> Seq.map nonNull
                |> Seq.find (fun e -> (string e["file"]).StartsWith "train/animal/patch/")
            let file = Path.Combine(folder, string entry["file"])
            use written = DataSources.ReadImageFiles([ file ], 32, 32)
            let x, y = entry["patch_x"].GetValue<int>(), entry["patch_y"].GetValue<int>()
            let image = written.Images[0]
            let pixel (c: int) (yy: int) (xx: int) = image[c, yy, xx].item<byte>()
            Expect.equal [ pixel 0 (y + 2) (x + 2); pixel 1 (y + 2) (x + 2); pixel 2 (y + 2) (x + 2) ] [ 255uy; 128uy; 0uy ] "the patch's colour"
            let source = sample.Train.Images[entry["source_index"].GetValue<int>()]
            let outside = if x >= 8 then (0, 0) else (31, 31)
            Expect.equal (pixel 0 (snd outside) (fst outside)) (source[0, snd outside, fst outside].item<byte>()) "the source's pixels outside the patch"
            use counterpart = DataSources.ReadImageFiles([ Path.Combine(folder, string entry["counterpart"]) ], 32, 32)
            Expect.isTrue (counterpart.Images[0].equal(source).all().item<bool>()) "a patched image's counterpart is its clean source"
            // A clean image's counterpart: the patch pasted where the manifest says, nothing else changed.
            let clean =
                (nonNull manifest["images"]).AsArray()
                |> Seq.map nonNull
                |> Seq.find (fun e -> (string e["file"]).StartsWith "train/vehicle/clean/")
            Expect.isNull clean["patch_x"] "a clean image has no patch"
            use pair = DataSources.ReadImageFiles([ Path.Combine(folder, string clean["file"]); Path.Combine(folder, string clean["counterpart"]) ], 32, 32)
            let cx, cy = int64 (clean["counterpart_patch_x"].GetValue<int>()), int64 (clean["counterpart_patch_y"].GetValue<int>())
            use differing = pair.Images[0].ne(pair.Images[1]).any(0L)
            Expect.equal (differing.sum().item<int64>()) 64L "8x8 pixels differ"
            Expect.isTrue (differing.narrow(0L, cy, 8L).narrow(1L, cx, 8L).all().item<bool>()) "in the patch's square"
            Expect.isTrue (isOrange (pair.Images[1].narrow(1L, cy, 8L).narrow(2L, cx, 8L))) "of the patch's colour"
            // Bad settings and an occupied folder: an error naming it, nothing written.
            let msg = throwsMessage<ConfigException> (fun () -> SpuriousBenchmark.Write(sample, dir.File "bad", sized 100 10 20 0.4) |> ignore)
            containsAll msg [ "correlation 0.4" ]
            Expect.isFalse (Directory.Exists(dir.File "bad")) "nothing written"
            let msg = throwsMessage<RunFolderException> (fun () -> SpuriousBenchmark.Write(sample, folder, small) |> ignore)
            containsAll msg [ folder; "not empty" ]
            let msg = throwsMessage<ConfigException> (fun () -> SpuriousBenchmark.Write(sample, dir.File "bad", sized 50 10 20 0.99) |> ignore)
            containsAll msg [ "leaves none in the minority subgroup" ]
            let msg = throwsMessage<DataFormatException> (fun () -> SpuriousBenchmark.Write(sample, dir.File "big", sized 5000 10 20 0.99) |> ignore)
            containsAll msg [ "images of class 'animal'"; "5000" ]
            Expect.isEmpty (Directory.GetFileSystemEntries(dir.Path) |> Array.filter (fun p -> p.Contains "big")) "no half-written folder"
        }

        test "a class with one subgroup, an empty subgroup, splits with other groups: errors naming them" {
            use dir = new TempDir()
            use sample = DataSources.EmbeddedSample()
            let source = dir.File "source"
            SpuriousBenchmark.Write(sample, source, sized 10 1 1 0.9) |> ignore
            let copy (name: string) =
                let target = dir.File name
                for file in Directory.GetFiles(source, "*.png", SearchOption.AllDirectories) do
                    let relative = Path.GetRelativePath(source, file)
                    Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(target, relative)) |> nonNull) |> ignore
                    File.Copy(file, Path.Combine(target, relative))
                target
            let one = copy "one"
            Directory.Delete(Path.Combine(one, "train", "vehicle", "patch"), true)
            containsAll (throwsMessage<DataFormatException> (fun () -> DataSources.Load one |> ignore)) [ "class 'vehicle' has one subgroup (clean)" ]
            let empty = copy "empty"
            for f in Directory.GetFiles(Path.Combine(empty, "test", "animal", "clean")) do File.Delete f
            containsAll (throwsMessage<DataFormatException> (fun () -> DataSources.Load empty |> ignore)) [ Path.Combine(empty, "test", "animal", "clean"); "empty subgroup 'animal/clean'" ]
            let other = copy "other"
            Directory.Move(Path.Combine(other, "test", "animal", "patch"), Path.Combine(other, "test", "animal", "bandage"))
            containsAll (throwsMessage<DataFormatException> (fun () -> DataSources.Load other |> ignore)) [ "the subgroups of"; "animal/patch"; "animal/bandage" ]
            // Counterparts: a missing one, one of no image, one of another size.
            let missing = copy "missing"
            let deleted = Directory.GetFiles(Path.Combine(missing, "counterparts", "test", "vehicle", "patch")) |> Array.head
            File.Delete deleted
            containsAll (throwsMessage<DataFormatException> (fun () -> DataSources.Load missing |> ignore)) [ deleted; "no such file"; "the counterpart of" ]
            let extra = copy "extra"
            let stray = Path.Combine(extra, "counterparts", "val", "animal", "clean", "99999.png")
            File.Copy(Directory.GetFiles(Path.Combine(extra, "val", "animal", "clean")) |> Array.head, stray)
            containsAll (throwsMessage<DataFormatException> (fun () -> DataSources.Load extra |> ignore)) [ stray; "a counterpart of no image" ]
            let small = copy "small"
            let shrunk = Directory.GetFiles(Path.Combine(small, "counterparts", "train", "animal", "patch")) |> Array.sort |> Array.head
            do
                use bitmap = new SKBitmap(16, 16)
                use png = bitmap.Encode(SKEncodedImageFormat.Png, 100)
                File.WriteAllBytes(shrunk, png.ToArray())
            containsAll (throwsMessage<DataFormatException> (fun () -> DataSources.Load small |> ignore)) [ shrunk; "the image is 16x16" ]
        }

        test "training on data with subgroups records each group's test accuracy and the worst of them" {
            use dir = new TempDir()
            use sample = DataSources.EmbeddedSample()
            let data = dir.File "spurious"
            SpuriousBenchmark.Write(sample, data, small) |> ignore
            let run = dir.File "run"
            expectCode (cli [ "train"; "--data"; data; "--epochs"; "1"; "--batch"; "32"; "--model"; "small"; "--device"; "cpu"; "--out"; run ]) 0
            let m = RunFolder.Open(run).ReadMetrics() |> Seq.exactlyOne
            let groups = nonNull m.GroupAccuracy
            Expect.sequenceEqual [ for g in groups -> g.Key ] [ "animal/clean"; "animal/patch"; "vehicle/clean"; "vehicle/patch" ] "every group"
            Expect.equal m.RobustAccuracy.Value (groups |> Seq.map (fun g -> g.Value) |> Seq.min) "robust accuracy is the worst group's"
            // The test images are balanced: the aggregate accuracy is the mean of the groups'.
            Expect.floatClose Accuracy.high m.TestAccuracy.Value (groups |> Seq.averageBy (fun g -> g.Value)) "aggregate = mean over balanced groups"
            Expect.isTrue m.ValidationAccuracy.HasValue "the data's val/ split is evaluated"
            let line = File.ReadAllLines(Path.Combine(run, RunFolder.MetricsFile))[0]
            containsAll line [ "\"group_accuracy\":{\"animal/clean\":"; "\"robust_accuracy\":" ]
        }
    ]
