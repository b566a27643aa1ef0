/// Hostile and broken inputs, each made in the test: image bombs, archives, links and pipes, crafted
/// state dicts and pickles, metadata.csv paths outside its folder, an exported model.py of a run
/// whose path holds Python, scripts that never end. Memory bombs run in a child process whose peak
/// resident memory is compared with the same command refusing a missing file.
module AdvAA.Tests.HostileInputTests

open System
open System.Diagnostics
open System.IO
open System.IO.Compression
open System.Text
open System.Text.Json.Nodes
open Expecto
open SkiaSharp
open AdvAA.Core
open AdvAA.Core.Data
open AdvAA.Core.Models
open AdvAA.Core.Training
open AdvAA.Tests.TestSupport
open AdvAA.Tests.CliTests

// ---- Crafted files ----

/// CRC-32 (IEEE), PNG's chunk checksum.
let private crc32 (bytes: byte array) =
    let mutable c = 0xFFFFFFFFu
    for b in bytes do
        c <- c ^^^ uint32 b
        for _ in 1..8 do
            c <- if c &&& 1u <> 0u then 0xEDB88320u ^^^ (c >>> 1) else c >>> 1
    c ^^^ 0xFFFFFFFFu

let private bigEndian (v: uint32) = [| byte (v >>> 24); byte (v >>> 16); byte (v >>> 8); byte v |]

/// A PNG of `width` x `height` 1-bit grey pixels whose IDAT is the zlib stream of `rows` all-zero
/// rows (fewer than the header's height makes a header bomb: a tiny file claiming a huge image).
let pngBomb (width: int) (height: int) (rows: int) =
    let chunk (kind: string) (data: byte array) =
        let body = Array.append (Encoding.ASCII.GetBytes kind) data
        Array.concat [ bigEndian (uint32 data.Length); body; bigEndian (crc32 body) ]
    let header = Array.concat [ bigEndian (uint32 width); bigEndian (uint32 height); [| 1uy; 0uy; 0uy; 0uy; 0uy |] ]
    use compressed = new MemoryStream()
    do
        use z = new ZLibStream(compressed, CompressionLevel.SmallestSize, true)
        let row = Array.zeroCreate<byte> (1 + (width + 7) / 8)
        for _ in 1..rows do
            z.Write(row, 0, row.Length)
    Array.concat [ [| 137uy; 80uy; 78uy; 71uy; 13uy; 10uy; 26uy; 10uy |]; chunk "IHDR" header; chunk "IDAT" (compressed.ToArray()); chunk "IEND" [||] ]

/// A real 32x32 PNG: a pattern of the colour's channels (images of one flat colour cannot be normalised).
let private smallPng (colour: SKColor) =
    use bitmap = new SKBitmap(32, 32)
    for y in 0..31 do
        for x in 0..31 do
            let shade (c: byte) = byte ((int c + 7 * x + 13 * y) % 256)
            bitmap.SetPixel(x, y, SKColor(shade colour.Red, shade colour.Green, shade colour.Blue))
    use data = bitmap.Encode(SKEncodedImageFormat.Png, 100)
    data.ToArray()

/// A readable, seekable stream of `length` zero bytes that holds none of them.
type private Zeros(length: int64) =
    inherit Stream()
    let mutable position = 0L
    override _.CanRead = true
    override _.CanSeek = true
    override _.CanWrite = false
    override _.Length = length
    override _.Position with get () = position and set v = position <- v
    override _.Read(buffer: byte array, offset: int, count: int) =
        let n = int (min (int64 count) (length - position))
        Array.Clear(buffer, offset, n)
        position <- position + int64 n
        n
    override _.Seek(offset: int64, origin: SeekOrigin) =
        position <- (match origin with SeekOrigin.Begin -> offset | SeekOrigin.Current -> position + offset | _ -> length + offset)
        position
    override _.Flush() = ()
    override _.SetLength _ = raise (NotSupportedException())
    override _.Write(_, _, _) = raise (NotSupportedException())

let private megabytes (n: int) = int64 n <<< 20

/// A .tar.gz of (entry name, content) files; a run of zeros compresses to almost nothing.
let private tarGz (path: string) (entries: (string * Stream) list) =
    use file = File.Create path
    use gzip = new GZipStream(file, CompressionLevel.SmallestSize)
    use tar = new Formats.Tar.TarWriter(gzip, Formats.Tar.TarEntryFormat.Pax, false)
    for name, content in entries do
        use content = content
        tar.WriteEntry(Formats.Tar.PaxTarEntry(Formats.Tar.TarEntryType.RegularFile, name, DataStream = content))

/// Pickle opcodes written by hand, for crafted state dicts.
type private Pickle() =
    let bytes = ResizeArray<byte>([ 0x80uy; 2uy ])
    member _.Bytes = bytes.ToArray()
    member p.Op(c: char) = bytes.Add(byte c); p
    member p.Raw(b: byte array) = bytes.AddRange b; p
    member p.Global (m: string) (n: string) = p.Op('c').Raw(Encoding.ASCII.GetBytes(m + "\n" + n + "\n"))
    member p.Text(s: string) = let u = Encoding.UTF8.GetBytes s in p.Op('X').Raw(BitConverter.GetBytes u.Length).Raw(u)
    member p.Int(v: int) = p.Op('J').Raw(BitConverter.GetBytes v)
    member p.Long(v: int64) = p.Raw([| 0x8auy; 8uy |]).Raw(BitConverter.GetBytes v)
    member p.Ints(vs: int64 list) = (vs |> List.fold (fun (q: Pickle) v -> q.Long v) (p.Op '(')).Op 't'
    /// `name: _rebuild_tensor_v2(storage key, offset 0, shape, stride)` of a float storage inside an open SETITEMS mark.
    member p.Tensor (name: string) (key: string) (elements: int64) (shape: int64 list) (stride: int64 list) = p.TypedTensor "FloatStorage" name key elements shape stride
    /// As Tensor, of a storage type ("LongStorage", ...).
    member p.TypedTensor (storageType: string) (name: string) (key: string) (elements: int64) (shape: int64 list) (stride: int64 list) =
        p.Text(name).Global "torch._utils" "_rebuild_tensor_v2" |> ignore
        p.Op('(').Op('(').Text("storage").Global "torch" storageType |> ignore
        p.Text(key).Text("cpu").Long(elements).Op('t').Op('Q').Int(0).Ints(shape).Ints(stride).Raw([| 0x89uy |]) |> ignore
        (p.Global "collections" "OrderedDict").Op(')').Op('R').Op('t').Op('R')
    member p.Dict() = (p.Global "collections" "OrderedDict").Op(')').Op('R').Op('(')
    member p.End() = p.Op('u').Op('.')

/// A torch.save-shaped zip: archive/data.pkl, the records (stored or deflated) and archive/version.
let private weightsFile (path: string) (pickle: byte array) (records: (string * (Stream -> unit) * CompressionLevel) list) =
    use zip = ZipFile.Open(path, ZipArchiveMode.Create)
    let add (name: string) (level: CompressionLevel) (write: Stream -> unit) =
        use s = zip.CreateEntry(name, level).Open()
        write s
    add "archive/data.pkl" CompressionLevel.NoCompression (fun s -> s.Write(pickle, 0, pickle.Length))
    for key, write, level in records do
        add ("archive/data/" + key) level write
    add "archive/version" CompressionLevel.NoCompression (fun s -> s.Write("3\n"B, 0, 2))

/// The small model's weights written as a state dict (.pt) or safetensors, one tensor filled with `value` first.
let private smallWeights (path: string) (tensor: string) (value: float) =
    use model = ModelRegistry.Create("small", 10)
    let target = model.state_dict()[tensor]
    using (TorchSharp.torch.no_grad()) (fun _ -> target.fill_(value) |> ignore)
    WeightFiles.Write(model, path, WeightFiles.IsSafetensors path)

/// A safetensors file: the 8-byte header length, the header's JSON text, then `data`.
let private safetensorsFile (path: string) (header: string) (data: byte array) =
    let json = Text.Encoding.UTF8.GetBytes header
    File.WriteAllBytes(path, Array.concat [ BitConverter.GetBytes(uint64 json.Length); json; data ])

// ---- Child processes and their peak memory ----

let private cliDll = Path.Combine(AppContext.BaseDirectory, "advaa.dll")

/// `advaa args` in a child process (killed after `timeoutSeconds`): exit code, stdout, stderr and
/// its peak resident memory in MB (getrusage, through this test program's --peak-rss mode).
let private advaaPeak (timeoutSeconds: int) (args: string list) =
    let tests = Reflection.Assembly.GetEntryAssembly() |> nonNull
    let code, out, err = runProcess (Path.GetTempPath()) timeoutSeconds "dotnet" ([ tests.Location; "--peak-rss"; "dotnet"; cliDll ] @ args)
    let lines = err.TrimEnd().Split('\n')
    let last = lines[lines.Length - 1]
    Expect.stringStarts last "peak-rss-kb " "the helper reports the peak"
    code, out, String.Join("\n", lines[.. lines.Length - 2]), float (int64 (last.Substring 12)) / 1024.0

/// Asserts that the refusal of a bomb peaked within 150 MB of `baseline` (the same command refusing a missing file).
let private withinBaseline (baseline: float) (peak: float) (what: string) =
    Expect.isLessThan peak (baseline + 150.0) (sprintf "%s: peak %.0f MB vs %.0f MB for a missing file" what peak baseline)

/// One `advaa:` line on stderr, no stack trace, the exit code given.
let private oneMessage (code, out: string, err: string) (expected: int) =
    expectCode (code, out, err) expected
    let lines = err.Trim().Split('\n') |> Array.filter (fun l -> l.Trim() <> "")
    Expect.equal lines.Length 1 (sprintf "one line on stderr:\n%s" err)
    Expect.stringStarts lines[0] "advaa: " "the line is advaa's"
    noTrace err

[<Tests>]
let tests =
    testSequenced <| testList "hostile inputs" [
        test "images: a header bomb, a 20000x20000 PNG, a link to /dev/zero, a FIFO and archive bombs are refused by name without their memory" {
            use dir = new TempDir()
            let missing = dir.File "missing"
            let baselineCode, _, _, baseline = advaaPeak 120 [ "data"; "--data"; missing ]
            Expect.equal baselineCode 1 "a missing folder is bad input"
            // An image folder holding one bad image among good ones.
            let folderWith (name: string) (bad: string -> unit) =
                let root = dir.File name
                for split in [ "train"; "test" ] do
                    Directory.CreateDirectory(Path.Combine(root, split, "a")) |> ignore
                    File.WriteAllBytes(Path.Combine(root, split, "a", "0.png"), smallPng SKColors.Red)
                bad (Path.Combine(root, "train", "a"))
                root
            let refused (root: string) (parts: string list) =
                let code, out, err, peak = advaaPeak 120 [ "data"; "--data"; root ]
                oneMessage (code, out, err) 1
                containsAll err parts
                withinBaseline baseline peak root
            // The 588-byte PNG whose header claims 65536x16385 pixels: refused on its header (the 32-bit size wrapped and crashed Skia).
            let bomb = folderWith "header-bomb" (fun a -> File.WriteAllBytes(Path.Combine(a, "bomb.png"), pngBomb 65536 16385 1))
            refused bomb [ "bomb.png"; "65536x16385"; "1073807360 pixels"; "more than the limit of 178956970 pixels"; "ADVAA_MAX_IMAGE_PIXELS" ]
            // A 48 KB PNG of 20000x20000 real (all-zero) rows: 400 M pixels, refused before decoding.
            let big = folderWith "big" (fun a -> File.WriteAllBytes(Path.Combine(a, "big.png"), pngBomb 20000 20000 20000))
            Expect.isLessThan (FileInfo(Path.Combine(big, "train", "a", "big.png"))).Length 200_000L "a small file"
            refused big [ "big.png"; "20000x20000"; "more than the limit" ]
            // A link to /dev/zero and a FIFO named as images: refused without reading (or waiting on) them.
            let zero = folderWith "zero" (fun a -> File.CreateSymbolicLink(Path.Combine(a, "zero.png"), "/dev/zero") |> ignore)
            refused zero [ "zero.png"; "not a regular file" ]
            let fifo = folderWith "fifo" (fun a -> expectCode (runProcess a 10 "mkfifo" [ "x.png" ]) 0)
            refused fifo [ "x.png"; "not a regular file" ]
            // Archives: a 512 MB entry that is no image is skipped unread; one named .png is refused after its first megabyte.
            let archive (name: string) (extra: string) =
                let path = dir.File name
                tarGz path
                    [ "data/train/a/0.png", new MemoryStream(smallPng SKColors.Red)
                      "data/test/a/0.png", new MemoryStream(smallPng SKColors.Blue)
                      extra, new Zeros(megabytes 512) ]
                Expect.isLessThan (FileInfo path).Length 3_000_000L "a small archive"
                path
            let junk = archive "junk.tar.gz" "data/train/notes.bin"
            let code, out, err, peak = advaaPeak 120 [ "data"; "--data"; junk ]
            expectCode (code, out, err) 0
            containsAll out [ "train      1 images" ]
            withinBaseline baseline peak "an archive with a 512 MB entry that is no image"
            let zipBomb = archive "bomb.tar.gz" "data/train/a/1.png"
            let code, out, err, peak = advaaPeak 120 [ "data"; "--data"; zipBomb ]
            oneMessage (code, out, err) 1
            containsAll err [ zipBomb; "entry 'data/train/a/1.png'"; "corrupt image" ]
            withinBaseline baseline peak "an archive with a 512 MB entry named .png"
            // The limit is a setting; a bad value is named.
            Environment.SetEnvironmentVariable(ImageFiles.PixelsVariable, "many")
            try containsAll (throwsMessage<ConfigException> (fun () -> ImageFiles.MaxPixels |> ignore)) [ "ADVAA_MAX_IMAGE_PIXELS=many"; "a whole number from 1" ]
            finally Environment.SetEnvironmentVariable(ImageFiles.PixelsVariable, null)
        }

        test "state dicts: a stride-0 tensor, a 2 GiB string, a deflated record bomb are refused within their memory; damaged pickles, duplicate keys and NaN weights are named" {
            use dir = new TempDir()
            let train (init: string) = [ "train"; "--method"; "baseline"; "--epochs"; "1"; "--batch"; "32"; "--train-limit"; "64"; "--test-limit"; "20"; "--device"; "cpu"; "--out"; dir.File "never"; "--init"; init ]
            let _, _, _, baseline = advaaPeak 120 (train (dir.File "missing.pt"))
            let refusedInit (file: string) (parts: string list) =
                let code, out, err, peak = advaaPeak 120 (train file)
                oneMessage (code, out, err) 1
                containsAll err (file :: parts)
                withinBaseline baseline peak file
                Expect.isFalse (Directory.Exists(dir.File "never")) "nothing written"
            let storage (elements: int) = "0", (fun (s: Stream) -> s.Write(Array.zeroCreate<byte> (4 * elements), 0, 4 * elements)), CompressionLevel.NoCompression
            // A one-value storage viewed as 2^30 values by a stride of 0.
            let stride0 = dir.File "stride0.pt"
            weightsFile stride0 (Pickle().Dict().Tensor "conv1.weight" "0" 1L [ 1L <<< 30 ] [ 0L ] |> fun p -> p.End().Bytes) [ storage 1 ]
            Expect.isLessThan (FileInfo stride0).Length 1000L "a tiny file"
            refusedInit stride0 [ "is not a state dict of small with 10 classes"; "conv1.weight is [1073741824] in the file" ]
            // BINBYTES claiming 2 GiB in a pickle of a few bytes.
            let huge = dir.File "huge-string.pt"
            weightsFile huge (Pickle().Dict().Op('B').Raw(BitConverter.GetBytes Int32.MaxValue).Bytes) []
            refusedInit huge [ "BINBYTES claiming 2147483647 bytes" ]
            // Every tensor of the small model, one record a deflated 512 MB of zeros.
            let deflated = dir.File "deflated.pt"
            use model = ModelRegistry.Create("small", 10)
            let entries = [ for kv in model.state_dict() -> kv.Key, kv.Value.shape, int (kv.Value.element_size()) ] |> List.indexed
            let pickle =
                (entries |> List.fold (fun (p: Pickle) (i, (name, shape, size)) ->
                    let n = Array.fold (*) 1L shape
                    let strides = [ for d in 0 .. shape.Length - 1 -> Array.fold (*) 1L shape[d + 1 ..] ]
                    p.TypedTensor (if size = 8 then "LongStorage" else "FloatStorage") name (string i) (if i = 0 then 128L <<< 20 else n) (List.ofArray shape) strides) (Pickle().Dict())).End().Bytes
            let records =
                [ for i, (_, shape, size) in entries ->
                    let bytes = size * int (Array.fold (*) 1L shape)
                    if i = 0 then string i, (fun (s: Stream) -> (new Zeros(megabytes 512)).CopyTo s), CompressionLevel.Optimal
                    else string i, (fun (s: Stream) -> s.Write(Array.zeroCreate<byte> bytes, 0, bytes)), CompressionLevel.NoCompression ]
            weightsFile deflated pickle records
            Expect.isLessThan (FileInfo deflated).Length 4_000_000L "a small file"
            refusedInit deflated [ "storages hold"; "far more than the" ]

            // Damaged pickles: one advaa: line each, no stack trace (in process: none of them allocates).
            let pickleCase (name: string) (pickle: byte array) (parts: string list) =
                let file = dir.File name
                weightsFile file pickle [ storage 1 ]
                let code, out, err = cli (train file)
                oneMessage (code, out, err) 1
                containsAll err (file :: parts)
            pickleCase "stack-global.pt" (Pickle().Raw([| byte 'K'; 1uy; byte 'K'; 2uy; 0x93uy |]).Bytes) [ "STACK_GLOBAL of Int64 and Int64" ]
            pickleCase "mark.pt" (Pickle().Int(1).Op('(').Raw([| 0x85uy |]).Bytes) [ "nothing on the stack" ]
            pickleCase "no-mark.pt" (Pickle().Int(1).Op('t').Bytes) [ "without its MARK" ]
            pickleCase "negative.pt" (Pickle().Op('X').Raw(BitConverter.GetBytes -1).Bytes) [ "BINUNICODE claiming 4294967295 bytes" ]
            pickleCase "long4.pt" (Pickle().Raw([| 0x8buy |]).Raw(BitConverter.GetBytes -5).Bytes) [ "LONG4 claiming -5 bytes" ]
            pickleCase "storage-size.pt" (Pickle().Dict().Tensor "conv1.weight" "0" (1L <<< 62) [ 1L ] [ 1L ] |> fun p -> p.End().Bytes)
                [ "declares 4611686018427387904 values of Float32, but its data record holds 4 bytes" ]
            pickleCase "overflow.pt" (Pickle().Dict().Tensor "conv1.weight" "0" 1L [ 1L <<< 40; 1L <<< 40 ] [ 1L; 1L ] |> fun p -> p.End().Bytes) [ "whose size overflows" ]
            // A duplicate key, and NaN weights: refused at load, naming the entry.
            let twice = dir.File "twice.pt"
            weightsFile twice (Pickle().Dict().Tensor "conv1.weight" "0" 1L [ 1L ] [ 1L ] |> fun p -> p.Tensor "conv1.weight" "0" 1L [ 1L ] [ 1L ] |> fun p -> p.End().Bytes) [ storage 1 ]
            let code, out, err = cli (train twice)
            oneMessage (code, out, err) 1
            containsAll err [ twice; "the entry 'conv1.weight' appears twice" ]
            for nanFile in [ dir.File "nan.pt"; dir.File "nan.safetensors" ] do
                smallWeights nanFile "layers.0.0.conv2.weight" nan
                let code, out, err = cli (train nanFile)
                oneMessage (code, out, err) 1
                containsAll err [ nanFile; "the tensor layers.0.0.conv2.weight holds 2304 NaN or infinite values" ]
        }

        test "safetensors: a header bomb, bytes outside the file, a shape that is not its bytes, an unknown dtype and another network are named before anything is read" {
            use dir = new TempDir()
            let train (init: string) = [ "train"; "--method"; "baseline"; "--epochs"; "1"; "--batch"; "32"; "--train-limit"; "64"; "--test-limit"; "20"; "--device"; "cpu"; "--out"; dir.File "never"; "--init"; init ]
            let _, _, _, baseline = advaaPeak 120 (train (dir.File "missing.safetensors"))
            let refused (name: string) (write: string -> unit) (parts: string list) =
                let file = dir.File name
                write file
                let code, out, err, peak = advaaPeak 120 (train file)
                oneMessage (code, out, err) 1
                containsAll err (file :: parts)
                withinBaseline baseline peak file
                Expect.isFalse (Directory.Exists(dir.File "never")) "nothing written"
            // A header length of 2^62 in a file of a few bytes.
            refused "bomb.safetensors" (fun f -> File.WriteAllBytes(f, Array.append (BitConverter.GetBytes(1UL <<< 62)) "{}"B)) [ "its header claims 4611686018427387904 bytes" ]
            refused "outside.safetensors" (fun f -> safetensorsFile f """{"conv1.weight": {"dtype": "F32", "shape": [1], "data_offsets": [0, 1073741824]}}""" (Array.zeroCreate 4))
                [ "conv1.weight's bytes [0, 1073741824) are not inside the file's 4 bytes" ]
            refused "shape.safetensors" (fun f -> safetensorsFile f """{"conv1.weight": {"dtype": "F32", "shape": [1073741824, 1073741824], "data_offsets": [0, 4]}}""" (Array.zeroCreate 4))
                [ "conv1.weight [1073741824,1073741824] of Float32 does not take its 4 bytes" ]
            refused "dtype.safetensors" (fun f -> safetensorsFile f """{"conv1.weight": {"dtype": "F8_E4M3", "shape": [1], "data_offsets": [0, 1]}}""" (Array.zeroCreate 1))
                [ "'conv1.weight' has dtype F8_E4M3" ]
            refused "json.safetensors" (fun f -> safetensorsFile f "{\"conv1.weight\": " [||]) [ "its header is not JSON" ]
            refused "other.safetensors" (fun f ->
                use wrn = ModelRegistry.Create("wrn-10-1", 10)
                WeightFiles.Write(wrn, f, true)) [ "is not a state dict of small with 10 classes"; "missing"; "not in the model" ]
        }

        test "metadata.csv: paths outside its folder are refused without being opened; bad rows, duplicates and a trailing blank line" {
            use dir = new TempDir()
            let root = dir.File "data"
            let write (file: string) = Directory.CreateDirectory(Path.GetDirectoryName file |> nonNull) |> ignore; File.WriteAllBytes(file, smallPng SKColors.Green)
            let rows =
                [ for split in 0..2 do
                    for y in 0..1 do
                        for place in 0..1 ->
                            let file = sprintf "img/%d-%d-%d.png" split y place
                            write (Path.Combine(root, file))
                            sprintf "%s,%d,%d,%d" file y split place ]
            let csv = Path.Combine(root, "metadata.csv")
            let load (lines: string list) =
                File.WriteAllLines(csv, "img_filename,y,split,place" :: lines)
                DataSources.Load root
            let refusedNaming (lines: string list) (parts: string list) =
                File.WriteAllLines(csv, "img_filename,y,split,place" :: lines)
                let code, out, err = cli [ "data"; "--data"; root ]
                oneMessage (code, out, err) 1
                containsAll err parts
                err
            let refused (lines: string list) (parts: string list) = refusedNaming lines (csv :: parts)
            // Outside the folder: the message is the same whether the file there exists or not, and a FIFO there is never opened.
            let outside = dir.File "outside"
            Directory.CreateDirectory outside |> ignore
            write (Path.Combine(outside, "exists.png"))
            expectCode (runProcess outside 10 "mkfifo" [ "pipe.png" ]) 0
            let replace (line: int) (path: string) = rows |> List.mapi (fun i r -> if i = line - 2 then path + r.Substring(r.IndexOf ',') else r)
            let existing = refused (replace 3 "../outside/exists.png") [ "line 3"; "'../outside/exists.png' leads outside " + root ]
            let absent = refused (replace 3 "../outside/absent.png") [ "line 3"; "'../outside/absent.png' leads outside " + root ]
            Expect.equal (existing.Replace("exists", "X")) (absent.Replace("absent", "X")) "no hint of which file exists"
            refused (replace 4 "../outside/pipe.png") [ "line 4"; "leads outside" ] |> ignore
            refused (replace 5 (Path.Combine(outside, "exists.png"))) [ "line 5"; "is an absolute path" ] |> ignore
            File.CreateSymbolicLink(Path.Combine(root, "img", "link.png"), Path.Combine(outside, "exists.png")) |> ignore
            File.CreateSymbolicLink(Path.Combine(root, "away"), outside) |> ignore
            refused (replace 6 "img/link.png") [ "line 6"; "'img/link.png' leads outside"; "through a link" ] |> ignore
            refused (replace 6 "away/absent.png") [ "line 6"; "'away/absent.png' leads outside"; "through a link" ] |> ignore
            // An image that does not decode: one message naming it (the parallel decode's AggregateException was a stack trace).
            File.WriteAllText(Path.Combine(root, "img", "0-0-0.png"), "not an image")
            refusedNaming rows [ Path.Combine(root, "img", "0-0-0.png"); "corrupt image" ] |> ignore
            write (Path.Combine(root, "img", "0-0-0.png"))
            // A huge class number: named, not allocated.
            refused (rows @ [ "img/0-0-0.png,2000000000,0,0" ]) [ "y 2000000000"; "classes are numbered 0, 1" ] |> ignore
            // A trailing blank line loads; repeated rows and images in both train and test load with a warning that counts them.
            use data = load (rows @ [ ""; "" ])
            Expect.equal data.Train.Count 4L "the blank lines are no rows"
            Expect.isEmpty data.Warnings "nothing to warn about"
            use data = load (rows @ [ rows[0]; rows[0]; (rows[1].Replace(",0,0,", ",0,2,")) ])
            Expect.equal data.Warnings.Count 2 "two warnings"
            containsAll data.Warnings[0] [ csv; "3 rows name an image that an earlier row names (2 images"; "line 14 repeats line 2" ]
            containsAll data.Warnings[1] [ "1 image is in both the train and the test rows"; Path.Combine(root, "img", "0-0-1.png"); "the test accuracy overstates" ]
            let code, out, err = cli [ "data"; "--data"; root ]
            expectCode (code, out, err) 0
            containsAll out [ "warning    " + csv + ": 3 rows name an image" ]
        }

        test "export: a run folder whose path holds Python exports a model.py that runs nothing; a file export did not write is not overwritten" {
            use dir = new TempDir()
            let plain = dir.File "plain"
            expectCode (cli [ "train"; "--method"; "baseline"; "--out"; plain; "--epochs"; "1"; "--batch"; "32"; "--train-limit"; "64"; "--test-limit"; "20"; "--device"; "cpu" ]) 0
            // Python in the folder's name: it would create PWNED in the folder Python runs in (this test's).
            let pwned = dir.File "PWNED"
            let hostile = dir.File "run\nimport os; os.system('touch PWNED')\n#"
            Directory.Move(plain, hostile)
            let out = dir.File "proj/model.pt"
            expectCode (cli [ "export"; hostile; "--out"; out ]) 0
            let python = File.ReadAllText(Path.ChangeExtension(out, ".py"))
            Expect.stringStarts python TrainedModel.ExportMarker "the marker line first"
            Expect.isFalse (python.Split('\n') |> Array.exists (fun l -> l.StartsWith "import os")) "the path's line break is escaped"
            containsAll python [ "RUN = \"" + dir.Path + "/run\\nimport os; os.system('touch PWNED')\\n#\"" ]
            Expect.equal (TrainedModel.PythonLiteral "a\"b\\c\u0000é\U0001F600") "\"a\\\"b\\\\c\\x00\\xe9\\U0001f600\"" "escapes"
            // Imported by Python (with a stand-in torch, so that no PyTorch is needed): nothing runs, RUN is the path.
            let stub = dir.File "stub"
            Directory.CreateDirectory(Path.Combine(stub, "torch", "nn")) |> ignore
            File.WriteAllText(Path.Combine(stub, "torch", "__init__.py"), "from . import nn\n")
            File.WriteAllText(Path.Combine(stub, "torch", "nn", "__init__.py"), "from . import functional\nclass Module:\n    pass\n")
            File.WriteAllText(Path.Combine(stub, "torch", "nn", "functional.py"), "")
            let check = "import sys, importlib.util; sys.path.insert(0, sys.argv[1]); spec = importlib.util.spec_from_file_location('model', sys.argv[2]); m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); print(m.RUN == sys.argv[3], m.CLASSES[0])"
            match (try Some(runProcess dir.Path 60 "python3" [ "-c"; check; stub; Path.ChangeExtension(out, ".py"); hostile ]) with _ -> None) with
            | Some(code, stdout, stderr) ->
                Expect.equal code 0 stderr
                Expect.equal (stdout.Trim()) "True airplane" "RUN holds the path exactly"
            | None -> ()
            Expect.isFalse (File.Exists pwned) "nothing in the path ran"
            // A file export did not write is refused, naming it; --force overwrites; an earlier export is replaced.
            let train = dir.File "proj/train.pt"
            File.WriteAllText(dir.File "proj/train.py", "my training script")
            let code, _, err = cli [ "export"; hostile; "--out"; train ]
            Expect.equal code 1 err
            containsAll err [ dir.File "proj/train.py"; "was not written by advaa export"; "--force" ]
            Expect.equal (File.ReadAllText(dir.File "proj/train.py")) "my training script" "untouched"
            Expect.isFalse (File.Exists train) "no weights written either"
            expectCode (cli [ "export"; hostile; "--out"; out ]) 0
            expectCode (cli [ "export"; hostile; "--out"; train; "--force" ]) 0
            Expect.stringStarts (File.ReadAllText(dir.File "proj/train.py")) TrainedModel.ExportMarker "--force overwrote it"
        }

        test "resume with other epochs and learning rate records an amendment; out of memory keeps the last checkpoint and says so" {
            use dir = new TempDir()
            let run = dir.File "run"
            let flags = [ "train"; "--method"; "baseline"; "--batch"; "32"; "--train-limit"; "64"; "--test-limit"; "20"; "--device"; "cpu" ]
            expectCode (cli (flags @ [ "--epochs"; "1"; "--out"; run ])) 0
            let code, out, err = cli (flags @ [ "--epochs"; "2"; "--lr"; "0.05"; "--resume"; run ])
            expectCode (code, out, err) 0
            containsAll out [ "amended  after epoch 1: epochs 1 → 2, learning_rate \"cosine 0.1→0 over 1\" → \"cosine 0.05→0 over 2\"" ]
            let config = RunFolder.Open(run).ReadConfig()
            Expect.equal config.Experiment.Epochs 2 "config.json holds the settings the run goes on with"
            let amendment = Seq.exactlyOne (nonNull config.Amendments)
            Expect.equal amendment.AfterEpoch 1 "after epoch 1"
            Expect.equal [ for struct (s, _, _) in amendment.Changes -> s ] [ "epochs"; "learning_rate" ] "each change"
            // Out of memory: under an address-space limit low enough for libtorch's allocations to fail, but not so low that it cannot load.
            let attempt (kb: int) =
                runProcess dir.Path 180 "sh" ([ "-c"; sprintf "ulimit -v %d; exec dotnet \"$@\"" kb; "sh"; cliDll ] @ flags @ [ "--epochs"; "3"; "--resume"; run ])
            match [ 3_500_000; 4_000_000; 4_500_000; 5_000_000 ] |> List.tryPick (fun kb -> let _, _, err = attempt kb in if err.Contains "while training into" then Some err else None) with
            | None -> skiptest "no address-space limit between loading libtorch and finishing the epoch ran out of memory on this machine"
            | Some err ->
                oneMessage (1, "", err) 1
                containsAll err [ "advaa: out of memory"; run; "it keeps epoch 2, its last complete checkpoint"; "--resume " + run ]
                Expect.equal (epochsOf run) [ 1; 2 ] "the logs follow the last complete checkpoint"
        }

        test "scripts: check gives up on a script that never ends; an unwritable cache falls back to a temporary folder and removes it" {
            use dir = new TempDir()
            let loop = dir.File "loop.fsx"
            File.WriteAllText(loop, "let rec spin () = spin ()\nspin ()\n")
            let clock = Stopwatch.StartNew()
            let code, _, err = runProcess dir.Path 120 "dotnet" [ cliDll; "check"; loop; "--script-timeout"; "15" ]
            Expect.equal code 3 err
            containsAll err [ loop; "did not compile and run its top-level code within 15 s"; "A script is code"; "--script-timeout" ]
            Expect.isLessThan clock.Elapsed.TotalSeconds 90.0 "it gave up"
            // A cache folder that exists but cannot be written (even by root: /proc): compiled to a temporary folder, removed after.
            let script = dir.File "ok.fsx"
            File.WriteAllText(script, "#if !ADVAA_HOST\n#r \"AdvAA.Dsl.dll\"\n#endif\nopen AdvAA.Dsl\nlet experiment = { Experiment.defaults with Epochs = 1 }\n")
            let tmp = dir.File "tmp"
            Directory.CreateDirectory tmp |> ignore
            let info = ProcessStartInfo("dotnet", [ cliDll; "check"; script ])
            info.Environment["ADVAA_SCRIPT_CACHE"] <- "/proc"
            info.Environment["TMPDIR"] <- tmp
            info.RedirectStandardOutput <- true
            info.RedirectStandardError <- true
            use p = Process.Start info
            let out = p.StandardOutput.ReadToEndAsync()
            let err = p.StandardError.ReadToEnd()
            p.WaitForExit()
            Expect.equal p.ExitCode 0 (err + out.Result)
            containsAll out.Result [ "epochs         1" ]
            Expect.isEmpty (Directory.GetFileSystemEntries tmp |> Array.filter (fun e -> (Path.GetFileName e).StartsWith "advaa-script-")) "the temporary compilation is removed"
        }
    ]
