module AdvAA.Tests.DataTests

open System
open System.Formats.Tar
open System.IO
open System.IO.Compression
open Expecto
open SkiaSharp
open TorchSharp
open AdvAA.Core.Backend
open AdvAA.Core.Data
open AdvAA.Tests.TestSupport

/// Small data files written by the tests, with pixel values known in advance.
module private Files =
    /// The value of image `i` at channel `c`, row `y`, column `x`: distinct enough to catch any mix-up.
    let pixel i c y x = byte ((i * 37 + c * 101 + y * 7 + x * 3) % 256)

    /// NCHW bytes of the given images, each `h` x `w`.
    let pixels (ids: int list) h w =
        [| for i in ids do
             for c in 0..2 do
                 for y in 0 .. h - 1 do
                     for x in 0 .. w - 1 -> pixel i c y x |]

    /// A CIFAR file: per record its label bytes and the id of its image (32x32, CHW).
    let cifar (path: string) (records: (byte list * int) list) =
        File.WriteAllBytes(path, [| for labels, i in records do yield! labels; yield! pixels [ i ] 32 32 |])

    let png (path: string) (i: int) (w: int) (h: int) =
        Directory.CreateDirectory(Path.GetDirectoryName path) |> ignore
        use bitmap = new SKBitmap(SKImageInfo(w, h, SKColorType.Rgba8888, SKAlphaType.Opaque))
        for y in 0 .. h - 1 do
            for x in 0 .. w - 1 do
                bitmap.SetPixel(x, y, SKColor(pixel i 0 y x, pixel i 1 y x, pixel i 2 y x))
        use data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
        File.WriteAllBytes(path, data.ToArray())

    /// train/ and test/ image folders; the classes "Cat" and "dog" and the file names check ordinal sorting.
    /// Returns the image ids in the order a reader must produce them, with their labels.
    let imageFolders (root: string) =
        let write split (files: (string * string * int) list) =
            for cls, name, i in files do png (Path.Combine(root, split, cls, name)) i 4 3
        write "train" [ "dog", "b.png", 3; "dog", "a.png", 2; "Cat", "b.png", 1; "Cat", "10.png", 0; "Cat", "c.png", 4 ]
        write "test" [ "dog", "x.png", 6; "Cat", "y.png", 5 ]
        File.WriteAllText(Path.Combine(root, "train", "dog", "notes.txt"), "not an image: ignored")
        // train: Cat/10.png, Cat/b.png, Cat/c.png, dog/a.png, dog/b.png
        [ 0; 1; 4; 2; 3 ], [ 0L; 0L; 0L; 1L; 1L ], [ 5; 6 ], [ 0L; 1L ]

    /// A .tar.gz of `folder`'s contents, under the folder's own name when `withTop`.
    let tarGz (folder: string) (archive: string) (withTop: bool) =
        use file = File.Create archive
        use gzip = new GZipStream(file, CompressionLevel.Fastest)
        TarFile.CreateFromDirectory(folder, gzip, withTop)

let private bytesOf (t: torch.Tensor) = t.data<byte>().ToArray()
let private longsOf (t: torch.Tensor) = t.data<int64>().ToArray()
/// How many labels each class has, by class index.
let private perClass (d: ImageDataset) =
    longsOf d.Labels |> Array.countBy id |> Array.sortBy fst |> Array.map (snd >> int64)
let private cifar10Names = [ "airplane"; "automobile"; "bird"; "cat"; "deer"; "dog"; "frog"; "horse"; "ship"; "truck" ]

let private expectImages (d: ImageDataset) (ids: int list) (labels: int64 list) h w =
    Expect.sequenceEqual d.Images.shape [| int64 ids.Length; 3L; int64 h; int64 w |] "NCHW shape"
    Expect.equal d.Images.dtype torch.ScalarType.Byte "uint8 images"
    Expect.equal d.Labels.dtype torch.ScalarType.Int64 "int64 labels"
    Expect.sequenceEqual (bytesOf d.Images) (Files.pixels ids h w) "every pixel, in NCHW order"
    Expect.sequenceEqual (longsOf d.Labels) labels "labels"

[<Tests>]
let formatTests =
    testList "data.formats" [
        test "CIFAR-10 binary: every training batch present, the test batch, class names from batches.meta.txt" {
            use dir = new TempDir()
            Files.cifar (dir.File "data_batch_1.bin") [ [ 3uy ], 0; [ 9uy ], 1; [ 0uy ], 2 ]
            Files.cifar (dir.File "data_batch_3.bin") [ [ 5uy ], 3 ]
            Files.cifar (dir.File "test_batch.bin") [ [ 1uy ], 4; [ 2uy ], 5 ]
            File.WriteAllText(dir.File "batches.meta.txt", String.Join("\n", [ for i in 0..9 -> sprintf "c%d" i ]) + "\n\n")
            let splits = DataSources.Load dir.Path
            use train = splits.Train
            use test = splits.Test
            Expect.equal splits.Format "cifar10-binary" "format"
            expectImages train [ 0; 1; 2; 3 ] [ 3L; 9L; 0L; 5L ] 32 32
            expectImages test [ 4; 5 ] [ 1L; 2L ] 32 32
            Expect.sequenceEqual train.Classes [ for i in 0..9 -> sprintf "c%d" i ] "names from batches.meta.txt"
            containsAll train.Source [ dir.File "data_batch_1.bin"; dir.File "data_batch_3.bin" ]
            Expect.equal test.Source (dir.File "test_batch.bin") "test source"
            Expect.equal (train.Channels, train.Height, train.Width, train.Count) (3, 32, 32, 4L) "dimensions"
        }

        test "CIFAR-10 binary one level down, default class names" {
            use dir = new TempDir()
            let inner = Path.Combine(dir.Path, "cifar-10-batches-bin")
            Directory.CreateDirectory inner |> ignore
            Files.cifar (Path.Combine(inner, "data_batch_2.bin")) [ [ 7uy ], 0 ]
            Files.cifar (Path.Combine(inner, "test_batch.bin")) [ [ 8uy ], 1 ]
            let splits = DataSources.Load dir.Path
            use train = splits.Train
            use test = splits.Test
            Expect.sequenceEqual train.Classes cifar10Names "the CIFAR-10 names"
            expectImages train [ 0 ] [ 7L ] 32 32
            expectImages test [ 1 ] [ 8L ] 32 32
        }

        test "CIFAR-10 binary files reached through symbolic links" {
            use store = new TempDir()
            use dir = new TempDir()
            Files.cifar (store.File "data_batch_1.bin") [ [ 3uy ], 0; [ 4uy ], 1 ]
            Files.cifar (store.File "test_batch.bin") [ [ 5uy ], 2 ]
            for name in [ "data_batch_1.bin"; "test_batch.bin" ] do
                File.CreateSymbolicLink(dir.File name, store.File name) |> ignore
            let splits = DataSources.Load dir.Path
            use train = splits.Train
            use test = splits.Test
            expectImages train [ 0; 1 ] [ 3L; 4L ] 32 32
            expectImages test [ 2 ] [ 5L ] 32 32
            File.Delete(store.File "test_batch.bin")
            let msg = throwsMessage<DataFormatException> (fun () -> DataSources.Load dir.Path |> ignore)
            containsAll msg [ dir.File "test_batch.bin"; "does not exist" ]
        }

        test "CIFAR-100 binary: fine labels at Load, coarse on request, names from the files" {
            use dir = new TempDir()
            Files.cifar (dir.File "train.bin") [ [ 19uy; 99uy ], 0; [ 0uy; 42uy ], 1 ]
            Files.cifar (dir.File "test.bin") [ [ 4uy; 7uy ], 2 ]
            let splits = DataSources.Load dir.Path
            use train = splits.Train
            use test = splits.Test
            Expect.equal splits.Format "cifar100-binary" "format"
            expectImages train [ 0; 1 ] [ 99L; 42L ] 32 32
            expectImages test [ 2 ] [ 7L ] 32 32
            Expect.sequenceEqual train.Classes [ for i in 0..99 -> string i ] "no names file: 0..99"
            File.WriteAllLines(dir.File "coarse_label_names.txt", [ for i in 0..19 -> sprintf "group%d" i ])
            use coarse = DataSources.ReadCifar100([ dir.File "train.bin" ], true)
            expectImages coarse [ 0; 1 ] [ 19L; 0L ] 32 32
            Expect.equal coarse.Classes[19] "group19" "coarse names"
            File.WriteAllLines(dir.File "fine_label_names.txt", [ for i in 0..99 -> sprintf "kind%d" i ])
            use fine = DataSources.ReadCifar100([ dir.File "train.bin" ], false)
            Expect.equal fine.Classes[42] "kind42" "fine names"
        }

        test "image folders: classes and files sorted ordinally, exact RGB pixels" {
            use dir = new TempDir()
            let trainIds, trainLabels, testIds, testLabels = Files.imageFolders dir.Path
            let splits = DataSources.Load dir.Path
            use train = splits.Train
            use test = splits.Test
            Expect.equal splits.Format "image-folder" "format"
            Expect.sequenceEqual train.Classes [ "Cat"; "dog" ] "ordinal: upper case first"
            expectImages train trainIds trainLabels 3 4
            expectImages test testIds testLabels 3 4
            Expect.equal train.Source (Path.Combine(dir.Path, "train")) "source"
            use direct = DataSources.ReadImageFolder(Path.Combine(dir.Path, "test"))
            expectImages direct testIds testLabels 3 4
        }

        test "the same image folders as a .tar.gz, with or without a top-level folder" {
            use dir = new TempDir()
            let data = Path.Combine(dir.Path, "pets")
            let trainIds, trainLabels, testIds, testLabels = Files.imageFolders data
            for withTop in [ true; false ] do
                let archive = dir.File(sprintf "pets-%b.tar.gz" withTop)
                Files.tarGz data archive withTop
                let splits = DataSources.Load archive
                use train = splits.Train
                use test = splits.Test
                Expect.equal splits.Format "image-folder" "format"
                Expect.sequenceEqual train.Classes [ "Cat"; "dog" ] "classes"
                expectImages train trainIds trainLabels 3 4
                expectImages test testIds testLabels 3 4
                Expect.equal train.Source (archive + ":" + (if withTop then "pets/" else "") + "train") "source names archive and folder"
        }

        test "the embedded sample: 200 + 100 CIFAR-10 JPEGs per class, decoded exactly as PIL does" {
            let splits = DataSources.Load null
            use train = splits.Train
            use test = splits.Test
            Expect.equal splits.Format "embedded-sample" "format"
            Expect.equal (train.Count, test.Count) (2000L, 1000L) "counts"
            Expect.sequenceEqual train.Classes cifar10Names "classes"
            Expect.sequenceEqual test.Classes cifar10Names "classes"
            Expect.equal (train.Channels, train.Height, train.Width) (3, 32, 32) "shape"
            Expect.sequenceEqual (perClass train) (Array.create 10 200L) "200 training images per class"
            Expect.sequenceEqual (perClass test) (Array.create 10 100L) "100 test images per class"
            // Sums of PIL 9.4's Image.open(..).convert("RGB") over the same files, in the same order.
            use trainSum = train.Images.sum([| 0L; 2L; 3L |], false, torch.ScalarType.Int64)
            Expect.sequenceEqual (longsOf trainSum) [| 257124078L; 252702587L; 233721521L |] "training pixels equal PIL's"
            use testSum = test.Images.sum(torch.ScalarType.Int64)
            Expect.equal (testSum.item<int64>()) 374565327L "test pixels equal PIL's"
            Expect.sequenceEqual (bytesOf (train.Images.narrow(0L, 0L, 1L))).[.. 5] [| 200uy; 202uy; 203uy; 203uy; 207uy; 212uy |] "airplane/0000.jpg, first row"
            let again = DataSources.Load ""
            use t2 = again.Train
            use t3 = again.Test
            Expect.equal t2.Count 2000L "\"\" is the sample too"
        }
    ]

[<Tests>]
let badInputTests =
    let expectFails (f: unit -> unit) parts = containsAll (throwsMessage<DataFormatException> f) parts
    let load (path: string) () = DataSources.Load path |> ignore
    testList "data.bad-input" [
        test "a missing folder or file" {
            use dir = new TempDir()
            expectFails (load (dir.File "nothing")) [ dir.File "nothing"; "no such" ]
            Files.cifar (dir.File "data_batch_1.bin") [ [ 0uy ], 0 ]
            expectFails (load dir.Path) [ dir.File "test_batch.bin"; "no such" ]
            expectFails (fun () -> DataSources.ReadCifar10([ dir.File "data_batch_9.bin" ], cifar10Names) |> ignore) [ dir.File "data_batch_9.bin"; "no such" ]
        }

        test "a CIFAR-10 folder without a training batch names the folder" {
            use dir = new TempDir()
            Files.cifar (dir.File "test_batch.bin") [ [ 0uy ], 0 ]
            expectFails (load dir.Path) [ dir.Path; "data_batch_1.bin" ]
        }

        test "a truncated record: file, record index and byte offset" {
            use dir = new TempDir()
            let file = dir.File "data_batch_1.bin"
            Files.cifar file [ [ 0uy ], 0; [ 1uy ], 1 ]
            File.AppendAllText(file, String('x', 100))
            expectFails (fun () -> DataSources.ReadCifar10([ file ], cifar10Names) |> ignore)
                [ file; "record 2"; "byte offset 6146"; "100 of 3073 bytes"; "not a multiple" ]
            let c100 = dir.File "train.bin"
            File.WriteAllBytes(c100, Array.zeroCreate 3073)
            expectFails (fun () -> DataSources.ReadCifar100([ c100 ], false) |> ignore) [ c100; "record 0"; "byte offset 0"; "3074" ]
            let empty = dir.File "empty.bin"
            File.WriteAllBytes(empty, [||])
            expectFails (fun () -> DataSources.ReadCifar10([ empty ], cifar10Names) |> ignore) [ empty; "empty" ]
        }

        test "a label byte out of range: file, record and byte offset" {
            use dir = new TempDir()
            let file = dir.File "data_batch_1.bin"
            Files.cifar file [ [ 0uy ], 0; [ 10uy ], 1 ]
            expectFails (fun () -> DataSources.ReadCifar10([ file ], cifar10Names) |> ignore)
                [ file; "record 1"; "byte offset 3073"; "label 10"; "0..9" ]
            let c100 = dir.File "train.bin"
            Files.cifar c100 [ [ 1uy; 2uy ], 0; [ 3uy; 100uy ], 1 ]
            expectFails (fun () -> DataSources.ReadCifar100([ c100 ], true) |> ignore)
                [ c100; "record 1"; "byte offset 3075"; "fine label 100"; "0..99" ]
            Files.cifar c100 [ [ 20uy; 2uy ], 0 ]
            expectFails (fun () -> DataSources.ReadCifar100([ c100 ], false) |> ignore) [ c100; "record 0"; "byte offset 0"; "coarse label 20" ]
        }

        test "a names file with the wrong number of names" {
            use dir = new TempDir()
            Files.cifar (dir.File "data_batch_1.bin") [ [ 0uy ], 0 ]
            Files.cifar (dir.File "test_batch.bin") [ [ 0uy ], 0 ]
            File.WriteAllLines(dir.File "batches.meta.txt", [ "a"; "b"; "c" ])
            expectFails (load dir.Path) [ dir.File "batches.meta.txt"; "3 class names, expected 10" ]
        }

        test "a corrupt or truncated image names the file" {
            use dir = new TempDir()
            Files.imageFolders dir.Path |> ignore
            let good = Path.Combine(dir.Path, "train", "dog", "a.png")
            let bytes = File.ReadAllBytes good
            File.WriteAllBytes(good, bytes[.. bytes.Length / 2])
            expectFails (load dir.Path) [ good; "corrupt" ]
            let garbage = Path.Combine(dir.Path, "train", "Cat", "10.png")
            File.WriteAllText(garbage, "this is not a PNG")
            expectFails (load dir.Path) [ garbage; "corrupt" ]
            File.WriteAllBytes(garbage, [||])
            expectFails (load dir.Path) [ garbage; "empty" ]
        }

        test "training images of varying sizes are streamed; a test image of another size than small training images is named" {
            use dir = new TempDir()
            Files.imageFolders dir.Path |> ignore
            Files.png (Path.Combine(dir.Path, "train", "dog", "a.png")) 9 5 3
            Files.png (Path.Combine(dir.Path, "train", "dog", "b.png")) 9 6 3
            do
                use splits = DataSources.Load dir.Path
                Expect.isTrue (splits.Train.IsStreamed && splits.Test.IsStreamed) "varying sizes: every split read per batch"
                Expect.equal splits.Train.Count 5L "all five images"
            Files.png (Path.Combine(dir.Path, "train", "dog", "a.png")) 2 4 3
            Files.png (Path.Combine(dir.Path, "train", "dog", "b.png")) 3 4 3
            let oddTest = Path.Combine(dir.Path, "test", "Cat", "y.png")
            Files.png oddTest 5 6 6
            Files.png (Path.Combine(dir.Path, "test", "dog", "x.png")) 6 6 6
            expectFails (load dir.Path) [ oddTest; "6x6"; "4x3" ]
        }

        test "an empty class folder, an image outside a class folder, classes that differ" {
            use dir = new TempDir()
            Files.imageFolders dir.Path |> ignore
            let empty = Path.Combine(dir.Path, "test", "bird")
            Directory.CreateDirectory empty |> ignore
            expectFails (load dir.Path) [ empty; "empty class folder" ]
            Files.png (Path.Combine(empty, "z.png")) 9 4 3
            expectFails (load dir.Path) [ Path.Combine(dir.Path, "train"); Path.Combine(dir.Path, "test"); "only in test: [bird]" ]
            Directory.Delete(empty, true)
            let stray = Path.Combine(dir.Path, "train", "stray.png")
            Files.png stray 9 4 3
            expectFails (load dir.Path) [ stray; "outside a class folder" ]
            File.Delete stray
            let nested = Path.Combine(dir.Path, "train", "dog", "more", "n.png")
            Files.png nested 9 4 3
            expectFails (load dir.Path) [ nested; "sub-folder" ]
        }

        test "archives: a corrupt entry, an empty class, a misplaced image, a damaged archive" {
            use dir = new TempDir()
            let data = Path.Combine(dir.Path, "pets")
            Files.imageFolders data |> ignore
            let archive = dir.File "pets.tar.gz"
            let corrupt = Path.Combine(data, "train", "dog", "b.png")
            File.WriteAllText(corrupt, "garbage")
            Files.tarGz data archive true
            expectFails (load archive) [ archive; "entry 'pets/train/dog/b.png'"; "corrupt" ]
            Files.png corrupt 3 4 3
            Directory.CreateDirectory(Path.Combine(data, "test", "bird")) |> ignore
            Files.tarGz data archive true
            expectFails (load archive) [ archive; "entry 'pets/test/bird/'"; "empty class folder" ]
            Directory.Delete(Path.Combine(data, "test", "bird"))
            Files.png (Path.Combine(data, "train", "loose.png")) 9 4 3
            Files.tarGz data archive false
            expectFails (load archive) [ archive; "entry 'train/loose.png'"; "outside" ]
            File.Delete(Path.Combine(data, "train", "loose.png"))
            Files.tarGz data archive true
            let bytes = File.ReadAllBytes archive
            File.WriteAllBytes(archive, bytes[.. bytes.Length / 2])
            expectFails (load archive) [ archive; "not a readable .tar.gz" ]
            File.WriteAllText(archive, "not gzip at all")
            expectFails (load archive) [ archive; "not a readable .tar.gz" ]
        }

        test "an unknown format lists the layouts expected" {
            use dir = new TempDir()
            let docs = Path.Combine(dir.Path, "docs")
            Directory.CreateDirectory docs |> ignore
            File.WriteAllText(Path.Combine(docs, "readme.txt"), "hello")
            expectFails (load docs) [ docs; "CIFAR-10 binary"; "CIFAR-100 binary"; "train/"; ".tar.gz" ]
            expectFails (load (Path.Combine(docs, "readme.txt"))) [ Path.Combine(docs, "readme.txt"); "expected one of" ]
            let other = dir.File "other.tar.gz"
            Files.tarGz docs other false
            expectFails (load other) [ other; "no train/ and test/ folders" ]
        }
    ]

[<Tests>]
let datasetTests =
    testList "data.dataset" [
        test "Take gives the first images, sharing memory; at most all of them" {
            use dir = new TempDir()
            Files.cifar (dir.File "b.bin") [ [ 1uy ], 0; [ 2uy ], 1; [ 3uy ], 2 ]
            use all = DataSources.ReadCifar10([ dir.File "b.bin" ], cifar10Names)
            use two = all.Take 2L
            expectImages two [ 0; 1 ] [ 1L; 2L ] 32 32
            use many = all.Take 10L
            Expect.equal many.Count 3L "clamped to the data set"
            Expect.throwsT<ArgumentOutOfRangeException> (fun () -> all.Take 0L |> ignore) "count 0"
        }

        test "the constructor rejects wrong dtypes, shapes and labels" {
            use images = torch.zeros(2L, 3L, 4L, 4L, dtype = torch.ScalarType.Byte)
            use floats = torch.zeros(2L, 3L, 4L, 4L)
            use labels = torch.tensor([| 0L; 1L |])
            use bad = torch.tensor([| 0L; 2L |])
            let classes = [| "a"; "b" |] :> Collections.Generic.IReadOnlyList<string>
            Expect.throwsT<ArgumentException> (fun () -> new ImageDataset(floats, labels, classes, "x") |> ignore) "float images"
            let msg = throwsMessage<ArgumentException> (fun () -> new ImageDataset(images, bad, classes, "x") |> ignore)
            containsAll msg [ "0..2"; "0..1" ]
        }
    ]

/// A CPU data set of `n` 1x2x2 images, image i filled with the value i, labelled i % 3.
let private numbered n =
    let images = torch.arange(int64 n, dtype = torch.ScalarType.Byte).view(int64 n, 1L, 1L, 1L).expand(int64 n, 1L, 2L, 2L).contiguous()
    let labels = torch.tensor [| for i in 0L .. int64 n - 1L -> i % 3L |]
    new ImageDataset(images, labels, [| "a"; "b"; "c" |], "numbered")

/// The image ids of an epoch's batches, checking each batch's shape, dtype, device and labels.
let private epochIds (loader: BatchLoader) epoch =
    [ for images, labels in loader.Epoch epoch do
        use images = images
        use labels = labels
        Expect.equal images.dtype torch.ScalarType.Byte "uint8 images"
        Expect.equal labels.dtype torch.ScalarType.Int64 "int64 labels"
        Expect.equal images.device_type DeviceType.CPU "on the device"
        Expect.equal labels.device_type DeviceType.CPU "on the device"
        Expect.sequenceEqual images.shape.[1..] [| 1L; 2L; 2L |] "CHW"
        let ids = [ for v in images.select(1L, 0L).select(1L, 0L).select(1L, 0L).data<byte>().ToArray() -> int v ]
        Expect.sequenceEqual (longsOf labels) [ for i in ids -> int64 (i % 3) ] "each label travels with its image"
        yield ids ]

[<Tests>]
let batchTests =
    testList "data.batches" [
        test "every image exactly once per epoch, in batches of the requested size" {
            use data = numbered 10
            let device = TorchBackend.ResolveDevice DeviceRequest.Cpu
            let loader = BatchLoader(data, 4, device, true, 7L, false)
            Expect.equal loader.BatchesPerEpoch 3 "ceil(10/4)"
            let batches = epochIds loader 0
            Expect.sequenceEqual (batches |> List.map List.length) [ 4; 4; 2 ] "batch sizes"
            Expect.sequenceEqual (List.concat batches |> List.sort) [ 0..9 ] "each image once"
            Expect.notEqual (List.concat batches) [ 0..9 ] "shuffled"
        }

        test "the order depends only on (seed, epoch)" {
            use data = numbered 50
            let device = TorchBackend.ResolveDevice DeviceRequest.Cpu
            let loader seed = BatchLoader(data, 8, device, true, seed, false)
            let uninterrupted = loader 42L
            let run = [ for e in 0..2 -> epochIds uninterrupted e ]
            let resumed = epochIds (loader 42L) 2
            Expect.equal resumed run[2] "a fresh loader at epoch 2 sees the same batches"
            Expect.equal (epochIds uninterrupted 1) run[1] "the same epoch again: the same order"
            Expect.notEqual run[0] run[1] "epochs differ"
            Expect.notEqual (epochIds (loader 43L) 0) run[0] "seeds differ"
        }

        test "dropLast drops the partial batch; no shuffle keeps the order" {
            use data = numbered 10
            let device = TorchBackend.ResolveDevice DeviceRequest.Cpu
            let dropping = BatchLoader(data, 4, device, true, 1L, true)
            Expect.equal dropping.BatchesPerEpoch 2 "floor(10/4)"
            let ids = epochIds dropping 3
            Expect.sequenceEqual (ids |> List.map List.length) [ 4; 4 ] "full batches only"
            Expect.equal (List.concat ids |> List.distinct |> List.length) 8 "8 distinct images"
            let ordered = BatchLoader(data, 3, device, false, 1L, false)
            Expect.equal (epochIds ordered 5) [ [ 0; 1; 2 ]; [ 3; 4; 5 ]; [ 6; 7; 8 ]; [ 9 ] ] "in order"
            let msg = throwsMessage<ArgumentException> (fun () -> BatchLoader(data, 11, device, true, 1L, true) |> ignore)
            containsAll msg [ "numbered"; "10 images"; "11" ]
        }
    ]

[<Tests>]
let normalizerTests =
    testList "data.normalizer" [
        test "Apply computes (x/255 - mean)/std per channel, as float32" {
            let n = Normalizer([| 0.5; 0.25 |], [| 0.5; 0.125 |])
            use images = torch.tensor([| 0uy; 255uy; 51uy; 102uy |]).view(1L, 2L, 1L, 2L)
            use out = n.Apply images
            Expect.equal out.dtype torch.ScalarType.Float32 "float32"
            Expect.sequenceEqual out.shape [| 1L; 2L; 1L; 2L |] "same shape"
            let expected = [| (0.0 - 0.5) / 0.5; (1.0 - 0.5) / 0.5; (0.2 - 0.25) / 0.125; (0.4 - 0.25) / 0.125 |]
            for actual, wanted in Array.zip (out.data<float32>().ToArray()) expected do
                Expect.floatClose Accuracy.high (float actual) wanted "value"
            Expect.throwsT<ArgumentException> (fun () -> n.Apply(torch.zeros(1L, 3L, 2L, 2L, dtype = torch.ScalarType.Byte)) |> ignore) "3 channels for 2 values"
        }

        test "CIFAR-10 constants; statistics of a data set" {
            Expect.sequenceEqual Normalizer.Cifar10.Mean [| 0.4914; 0.4822; 0.4465 |] "mean"
            Expect.sequenceEqual Normalizer.Cifar10.Std [| 0.2470; 0.2435; 0.2616 |] "std"
            Normalizer.Cifar10.Mean[0] <- 9.0
            Expect.equal Normalizer.Cifar10.Mean[0] 0.4914 "Mean is a copy"
            // Two 1x2 images. Channel 0: 0 0 | 255 255; channel 1: 51 102 | 51 102; channel 2: 0 255 | 255 255.
            let values = [| 0uy; 0uy; 51uy; 102uy; 0uy; 255uy; 255uy; 255uy; 51uy; 102uy; 255uy; 255uy |]
            let images = torch.tensor(values).view(2L, 3L, 1L, 2L)
            use data = new ImageDataset(images, torch.zeros(2L, dtype = torch.ScalarType.Int64), [| "x" |], "test")
            let stats = Normalizer.FromDataset data
            for actual, wanted in Array.zip stats.Mean [| 0.5; 0.3; 0.75 |] do
                Expect.floatClose Accuracy.high actual wanted "mean"
            for actual, wanted in Array.zip stats.Std [| 0.5; 0.1; sqrt 0.1875 |] do
                Expect.floatClose Accuracy.high actual wanted "population std"
            use flat = new ImageDataset(torch.zeros(1L, 3L, 2L, 2L, dtype = torch.ScalarType.Byte), torch.zeros(1L, dtype = torch.ScalarType.Int64), [| "x" |], "flat.bin")
            let msg = throwsMessage<ArgumentException> (fun () -> Normalizer.FromDataset flat |> ignore)
            containsAll msg [ "flat.bin"; "channel 0"; "std 0" ]
        }
    ]

[<Tests>]
let realDataTests =
    let real () =
        match envFolder "ADVAA_CIFAR10_DIR" with
        | Some dir -> dir
        | None -> skiptest "ADVAA_CIFAR10_DIR is not set: the real CIFAR-10 files are not checked"
    testList "data.real-cifar10" [
        test "the binary batches: 10,000 + 10,000 images, 1,000 per class, the CIFAR-10 names" {
            let dir = real ()
            let splits = DataSources.Load dir
            use train = splits.Train
            use test = splits.Test
            Expect.equal splits.Format "cifar10-binary" "format"
            Expect.equal (train.Count, test.Count) (10000L, 10000L) "counts"
            Expect.stringEnds train.Source "data_batch_1.bin" "from data_batch_1.bin"
            Expect.sequenceEqual train.Classes cifar10Names "batches.meta.txt"
            Expect.sequenceEqual (perClass train) (Array.create 10 1000L) "1,000 per class"
        }

        test "the JPEG archive: 50,000 + 10,000 images of 32x32" {
            let dir = real ()
            let splits = DataSources.Load(Path.Combine(dir, "cifar10-jpeg.tar.gz"))
            use train = splits.Train
            use test = splits.Test
            Expect.equal (train.Count, test.Count) (50000L, 10000L) "counts"
            Expect.sequenceEqual train.Classes cifar10Names "folder names"
            Expect.equal (train.Channels, train.Height, train.Width) (3, 32, 32) "shape"
            Expect.sequenceEqual (perClass test) (Array.create 10 1000L) "1,000 test images per class"
        }
    ]

[<Tests>]
let cliTests =
    testList "data.cli" [
        test "advaa data exits 0 on data and 1 on bad data" {
            use dir = new TempDir()
            Files.imageFolders dir.Path |> ignore
            Expect.equal (AdvAA.Cli.Program.main [| "data"; "--data"; dir.Path |]) 0 "good data"
            Expect.equal (AdvAA.Cli.Program.main [| "data"; "--data"; dir.File "missing" |]) 1 "a missing folder"
        }
    ]
