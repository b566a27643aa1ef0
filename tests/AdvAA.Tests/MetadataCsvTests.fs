module AdvAA.Tests.MetadataCsvTests

open System
open System.IO
open Expecto
open SkiaSharp
open AdvAA.Core
open AdvAA.Core.Data
open AdvAA.Core.Training
open AdvAA.Tests.TestSupport

let private header = "img_id,img_filename,y,split,place,place_filename"

/// A PNG in three bands across its longer side, red, green, blue, the green one its centre square:
/// resized and centre-cropped, it is all green.
let private png (path: string) (width: int) (height: int) =
    Directory.CreateDirectory(Path.GetDirectoryName path |> nonNull) |> ignore
    use bitmap = new SKBitmap(width, height)
    let side = min width height
    for y in 0 .. height - 1 do
        for x in 0 .. width - 1 do
            let along, start = (if width >= height then x, (width - side) / 2 else y, (height - side) / 2)
            bitmap.SetPixel(x, y, (if along < start then SKColors.Red elif along < start + side then SKColor(0uy, 255uy, 0uy) else SKColors.Blue))
    use data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
    File.WriteAllBytes(path, data.ToArray())

/// One row per (split, class, place), ids from 1; the folder names hold a comma (a quoted field).
let private rows =
    [ for split in 0 .. 2 do
        for y in 0 .. 1 do
            for place in 0 .. 1 do
                let id = split * 4 + y * 2 + place + 1
                id, sprintf "%03d.Bird, %s/img_%02d.png" (y + 1) (if y = 0 then "land" else "water") id, y, split, place ]

/// A Waterbirds-like folder: the rows' images, wide (128x64) for odd ids and tall (48x96) for even
/// ones unless one size is given, and metadata.csv (place_filename with doubled quotes); returns its lines.
let private waterbirds (root: string) (size: (int * int) option) =
    let lines =
        header
        :: [ for id, file, y, split, place in rows ->
                let width, height = defaultArg size (if id % 2 = 1 then 128, 64 else 48, 96)
                png (Path.Combine(root, file)) width height
                sprintf "%d,\"%s\",%d,%d,%d,\"/%s/\"\"place %d\"\".jpg\"" id file y split place (if place = 0 then "l" else "w") id ]
    File.WriteAllLines(Path.Combine(root, "metadata.csv"), lines)
    lines

/// Runs f with ADVAA_IMAGE_SIZE set to value, restoring it after.
let private withSize (value: string) (f: unit -> unit) =
    let old = Environment.GetEnvironmentVariable "ADVAA_IMAGE_SIZE"
    Environment.SetEnvironmentVariable("ADVAA_IMAGE_SIZE", value)
    try f () finally Environment.SetEnvironmentVariable("ADVAA_IMAGE_SIZE", old)

let private groupNames (set: ImageDataset) = [ for g in nonNull set.GroupNames -> string g ]

/// Every pixel is the centre band's green.
let private allGreen (set: ImageDataset) =
    use images = set.Images.to_type TorchSharp.torch.ScalarType.Int64
    use expected = TorchSharp.torch.tensor([| 0L; 255L; 0L |]).view(1L, 3L, 1L, 1L)
    images.eq(expected).all().item<bool>()

[<Tests>]
let tests =
    testSequenced <| testList "metadata-csv" [
        test "a Waterbirds folder: landbird/waterbird by land/water, its val split, images of two sizes resized and centre-cropped to 64x64" {
            use dir = new TempDir()
            waterbirds dir.Path None |> ignore
            use data = DataSources.Load dir.Path
            let validation = nonNull data.Validation
            Expect.equal data.Format "metadata-csv" "format"
            Expect.sequenceEqual data.Train.Classes [ "landbird"; "waterbird" ] "Waterbirds' class names"
            for set in [ data.Train; data.Test; validation ] do
                Expect.sequenceEqual set.Images.shape [| 4L; 3L; 64L; 64L |] "resized to 64x64"
                Expect.equal (groupNames set) [ "landbird/land"; "landbird/water"; "waterbird/land"; "waterbird/water" ] "groups by class, then place"
                Expect.sequenceEqual (set.GroupCounts()) [ 1L; 1L; 1L; 1L ] "one image a group"
                Expect.sequenceEqual (set.Labels.data<int64>().ToArray()) [ 0L; 0L; 1L; 1L ] "labels are y"
                Expect.isTrue (allGreen set) "the centre square, no band of the sides"
            containsAll data.Train.Source [ Path.Combine(dir.Path, "metadata.csv"); "train rows"; "resized to 64×64" ]
            containsAll validation.Source [ "val rows" ]
        }

        test "ADVAA_IMAGE_SIZE sets the side; images of one size are kept; a bad value is an error naming it" {
            use dir = new TempDir()
            waterbirds (dir.File "mixed") None |> ignore
            withSize "16" (fun () ->
                use data = DataSources.Load(dir.File "mixed")
                Expect.sequenceEqual data.Train.Images.shape [| 4L; 3L; 16L; 16L |] "resized to 16x16"
                Expect.isTrue (allGreen data.Train) "shrunk: still the centre square"
                containsAll data.Train.Source [ "resized to 16×16" ])
            waterbirds (dir.File "one") (Some(40, 30)) |> ignore
            use kept = DataSources.Load(dir.File "one")
            Expect.sequenceEqual kept.Train.Images.shape [| 4L; 3L; 30L; 40L |] "one size: kept as it is"
            Expect.isFalse (kept.Train.Source.Contains "resized") "the source says nothing of resizing"
            withSize "32" (fun () ->
                use data = DataSources.Load(dir.File "one")
                Expect.sequenceEqual data.Train.Images.shape [| 4L; 3L; 32L; 32L |] "the override applies to one size too")
            for bad in [ "4"; "2000"; "big" ] do
                withSize bad (fun () ->
                    containsAll (throwsMessage<ConfigException> (fun () -> DataSources.Load(dir.File "mixed") |> ignore)) [ $"ADVAA_IMAGE_SIZE={bad}"; "8 to 1024" ])
        }

        test "other columns: filename, group, split as words; classes named by number, subgroups by value" {
            use dir = new TempDir()
            let splitNames = [| "train"; "val"; "test" |]
            let lines =
                "filename,y,group,split"
                :: [ for _, file, y, split, place in rows ->
                        png (Path.Combine(dir.Path, file)) 32 32
                        sprintf "\"%s\",%d,%s,%s" file y (if place = 0 then "dry" else "wet") splitNames[split] ]
            File.WriteAllLines(dir.File "metadata.csv", lines)
            use data = DataSources.Load dir.Path
            Expect.sequenceEqual data.Train.Classes [ "class 0"; "class 1" ] "classes by number"
            Expect.equal (groupNames data.Test) [ "class 0/dry"; "class 0/wet"; "class 1/dry"; "class 1/wet" ] "subgroups by value"
            Expect.equal (nonNull data.Validation).Count 4L "val rows"
            Expect.sequenceEqual data.Train.Images.shape [| 4L; 3L; 32L; 32L |] "one size, kept"
        }

        test "bad metadata.csv: errors naming the file and the line or value" {
            use dir = new TempDir()
            let made = ref 0
            /// A fresh folder whose metadata.csv lines are edited; the loader's message.
            let bad (edit: string list -> string list) (before: string -> unit) =
                made.Value <- made.Value + 1
                let root = dir.File(sprintf "case%d" made.Value)
                let lines = waterbirds root None
                File.WriteAllLines(Path.Combine(root, "metadata.csv"), edit lines)
                before root
                let csv = Path.Combine(root, "metadata.csv")
                csv, throwsMessage<DataFormatException> (fun () -> DataSources.Load root |> ignore)
            let line (n: int) (text: string) = List.mapi (fun i l -> if i = n - 1 then text else l)
            let field (n: int) (column: int) (value: string) (lines: string list) =
                let id, file, y, split, place = rows[n - 2]
                let fields = [| string id; $"\"{file}\""; string y; string split; string place; "x.jpg" |]
                fields[column] <- value
                line n (String.Join(",", fields)) lines
            let none _ = ()
            /// The header and the rows of the other splits.
            let without (split: int) (lines: string list) =
                List.head lines :: [ for l, (_, _, _, s, _) in List.zip (List.tail lines) rows do if s <> split then l ]
            let csv, msg = bad (line 1 "img_id,img_filename,y,split") none
            containsAll msg [ csv; "line 1"; "no subgroup column (place, group, subgroup, a)"; "the header is: img_id,img_filename,y,split" ]
            let csv, msg = bad (line 1 "img_id,name,y,split,place,place_filename") none
            containsAll msg [ csv; "no image path column (img_filename, filename, image, path)" ]
            let csv, msg = bad (line 3 "2,\"a.png\",0,0,1,x.jpg,extra") none
            containsAll msg [ csv; "line 3: 7 fields, but the header has 6" ]
            let csv, msg = bad (field 4 2 "bird") none
            containsAll msg [ csv; "line 4: y 'bird' is not a class number" ]
            let csv, msg = bad (field 5 3 "x") none
            containsAll msg [ csv; "line 5: split 'x' is not 0 (train), 1 (val), 2 (test)" ]
            let csv, msg = bad (field 6 3 "3") none
            containsAll msg [ csv; "line 6: split '3'" ]
            let csv, msg = bad (field 7 4 "2") none
            containsAll msg [ csv; "line 7: place '2'" ]
            let _, file, _, _, _ = rows[6]
            let csv, msg = bad id (fun root -> File.Delete(Path.Combine(root, file)))
            containsAll msg [ csv; "line 8"; Path.Combine(Path.GetDirectoryName csv |> nonNull, file); "no such image file" ]
            let csv, msg = bad (without 2) none
            containsAll msg [ csv; "no test rows" ]
            let csv, msg = bad (without 0) none
            containsAll msg [ csv; "no train rows" ]
            let csv, msg = bad (field 5 4 "0") none
            containsAll msg [ csv; "class 'waterbird' (y 1) has one subgroup (land) in its train rows" ]
            let csv, msg = bad (field 13 4 "0") none
            containsAll msg [ csv; "the groups of its test rows differ"; "only in train: [waterbird/water]" ]
            let csv, msg = bad (line 13 "12,\"open.png,1,2,1,x.jpg") none
            containsAll msg [ csv; "line 13: a quoted field is never closed" ]
            let csv, msg = bad (line 3 "2,\"a\"b.png,0,0,1,x.jpg") none
            containsAll msg [ csv; "line 3: 'b' after a closing quote" ]
            let csv, msg = bad (line 2 "1,a\"b.png,0,0,0,x.jpg") none
            containsAll msg [ csv; "line 2: a quote inside an unquoted field" ]
        }
    ]
