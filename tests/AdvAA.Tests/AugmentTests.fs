/// The op table, batched per-sample application, standard augmentation, errors and custom ops.
module AdvAA.Tests.AugmentTests

open System
open Expecto
open TorchSharp
open AdvAA.Core.Augment
open AdvAA.Tests.TestSupport
open AdvAA.Tests.AugmentSupport

/// A user op that adds its magnitude (rounded) to every pixel, clipped: easy to recognise.
type AddOp() =
    interface ICustomOp with
        member _.Name = "Add"
        member _.Apply(images, magnitudes) =
            use shift = magnitudes.round().to_type(torch.int32).view(-1L, 1L, 1L, 1L)
            images.to_type(torch.int32).add(shift).clamp(0.0.ToScalar(), 255.0.ToScalar()).to_type(torch.uint8)

/// A user op that breaks the contract: it returns float32.
type BadOp() =
    interface ICustomOp with
        member _.Name = "Bad"
        member _.Apply(images, _) = images.to_type(torch.float32)

let private opNames = [ "ShearX"; "ShearY"; "TranslateX"; "TranslateY"; "Rotate"; "AutoContrast"; "Invert"; "Equalize"
                        "Solarize"; "Posterize"; "Contrast"; "Color"; "Brightness"; "Sharpness"; "Cutout"; "SamplePairing"; "Identity" ]

let private stage (space: SearchSpace) (images: torch.Tensor) (ops: int64 list) (values: float32 list) =
    use ids = longs ops
    use v = floats values
    BatchAugment.ApplyValues(images, space, ids, v, null)

let private single (name: string) (value: float32) (images: torch.Tensor) =
    let space = SearchSpace(OpTable.Defaults)
    let n = int images.shape[0]
    stage space images (List.replicate n (int64 (space.IndexOf name))) (List.replicate n value)

/// The bounding box (y0, y1, x0, x1) of pixels equal to 128 in a one-channel-or-more image of zeros, or None.
let private greyBox (image: torch.Tensor) =
    let c, h, w = int image.shape[0], int image.shape[1], int image.shape[2]
    let data = bytesOf image
    let grey = [ for y in 0 .. h - 1 do for x in 0 .. w - 1 do if data[y * w + x] = 128uy then yield y, x ]
    for ch in 1 .. c - 1 do
        Expect.sequenceEqual data[ch * h * w .. (ch + 1) * h * w - 1] data[0 .. h * w - 1] "every channel is cut alike"
    if grey.IsEmpty then None
    else
        let ys, xs = List.map fst grey, List.map snd grey
        let y0, y1, x0, x1 = List.min ys, List.max ys + 1, List.min xs, List.max xs + 1
        Expect.equal grey.Length ((y1 - y0) * (x1 - x0)) "the grey pixels form one rectangle"
        Some(y0, y1, x0, x1)

/// Checks that a box is a side×side square centred in the image, clipped at the borders.
let private isClippedSquare side h w (y0, y1, x0, x1) =
    let extentOk start stop size = stop - start = side || (start = 0 && stop - start < side) || (stop = size && stop - start < side)
    extentOk y0 y1 h && extentOk x0 x1 w

[<Tests>]
let tableTests =
    testList "augment.table" [
        test "the table has the 17 ops of DESIGN.md with their ranges, signs and kinds" {
            Expect.sequenceEqual [ for o in OpTable.Defaults -> o.Name ] opNames "names in order"
            let o = OpTable.Get "shearx"
            Expect.equal (o.Name, o.Low, o.High, o.Signed, o.Kind) ("ShearX", 0.0, 0.3, true, OpKind.Geometric) "ShearX"
            let t = OpTable.Get "TranslateX"
            Expect.equal (t.High, t.Signed, t.IsInteger) (0.45 * 32.0, true, true) "TranslateX: 0.45·W at W = 32"
            Expect.equal ((OpTable.ForImageSize(64, 48) |> Seq.find (fun o -> o.Name = "TranslateY")).High) (0.45 * 64.0) "TranslateY scales with H"
            let s = OpTable.Get "Solarize"
            Expect.equal (s.Low, s.High, s.Signed, s.Kind) (256.0, 0.0, false, OpKind.Color) "Solarize 256 -> 0"
            let p = OpTable.Get "Posterize"
            Expect.equal (p.Low, p.High, p.IsInteger) (8.0, 4.0, true) "Posterize 8 -> 4 bits"
            for name in [ "Contrast"; "Color"; "Brightness"; "Sharpness" ] do
                let e = OpTable.Get name
                Expect.equal (e.Low, e.High, e.Kind, e.Neutral) (0.1, 1.9, OpKind.Blend, 1.0) name
            Expect.equal (OpTable.Get "Cutout").High (0.2 * 32.0) "Cutout 0 -> 0.2·W"
            Expect.equal (OpTable.Get "SamplePairing").High 0.4 "SamplePairing 0 -> 0.4"
            for name in [ "AutoContrast"; "Invert"; "Equalize"; "Identity" ] do
                Expect.isFalse (OpTable.Get name).HasMagnitude name
        }

        test "levels map linearly Low -> High; whole-unit ops truncate the distance from Low" {
            let v (name: string) level = (OpTable.Get name).ValueAt(level, 10)
            Expect.floatClose Accuracy.veryHigh (v "ShearX" 9.0) 0.3 "top level"
            Expect.floatClose Accuracy.veryHigh (v "ShearX" 3.0) 0.1 "level 3"
            Expect.floatClose Accuracy.veryHigh (v "Contrast" 0.0) 0.1 "level 0"
            Expect.equal (v "TranslateX" 9.0) 14.0 "14.4 truncated"
            Expect.equal (v "TranslateX" 5.0) 8.0 "8.0"
            Expect.equal (v "Posterize" 3.0) 7.0 "8 - trunc(4·3/9)"
            Expect.equal (v "Posterize" 9.0) 4.0 "top level: 4 bits"
            Expect.equal (v "Solarize" 1.0) 228.0 "256 - trunc(256/9)"
            Expect.equal (v "Solarize" 9.0) 0.0 "threshold 0"
            Expect.equal (v "Invert" 5.0) 0.0 "no magnitude"
            Expect.equal ((OpTable.Get "Rotate").ValueAt(30.0, 31)) 30.0 "31 levels"
            let msg = throwsMessage<AugmentException> (fun () -> v "ShearX" 10.0 |> ignore)
            containsAll msg [ "ShearX"; "level 10"; "0..9" ]
        }

        test "the default space is the paper's 16 ops (no Identity) with 10 levels" {
            let s = SearchSpace.Default
            Expect.equal s.Ops.Count 16 "16 ops"
            Expect.equal s.Levels 10 "10 levels"
            Expect.isFalse (s.Ops |> Seq.exists (fun o -> o.Kind = OpKind.Identity)) "no Identity"
            Expect.equal (s.IndexOf "rotate") 4 "case-insensitive index"
        }

        test "copies with other ranges and signs are validated" {
            let wide = (OpTable.Get "Rotate").WithRange(0.0, 135.0)
            Expect.equal (wide.High, wide.Signed) (135.0, true) "Rotate 0..135"
            let factor = (OpTable.Get "Contrast").WithRange(1.0, 1.9).WithSigned(true)
            Expect.floatClose Accuracy.veryHigh (factor.Reflect 1.9) 0.1 "signed about 1"
            containsAll (throwsMessage<AugmentException> (fun () -> (OpTable.Get "Solarize").WithRange(300.0, 0.0) |> ignore))
                [ "Solarize"; "300"; "0..256" ]
            containsAll (throwsMessage<AugmentException> (fun () -> (OpTable.Get "Posterize").WithSigned(true) |> ignore))
                [ "Posterize"; "12"; "0..8" ]
            containsAll (throwsMessage<AugmentException> (fun () -> (OpTable.Get "Invert").WithRange(0.0, 1.0) |> ignore))
                [ "Invert"; "no magnitude" ]
            containsAll (throwsMessage<AugmentException> (fun () -> (OpTable.Get "ShearX").WithRange(0.0, nan) |> ignore))
                [ "ShearX"; "NaN" ]
        }

        test "unknown ops are errors naming them and listing the known ones" {
            containsAll (throwsMessage<AugmentException> (fun () -> OpTable.Get "Blur" |> ignore)) [ "'Blur'"; "ShearX"; "SamplePairing" ]
            containsAll (throwsMessage<AugmentException> (fun () -> SearchSpace.Default.IndexOf "Identity" |> ignore))
                [ "'Identity'"; "Rotate"; "Cutout" ]
        }

        test "search spaces are validated" {
            containsAll (throwsMessage<AugmentException> (fun () -> SearchSpace([||]) |> ignore)) [ "at least one op" ]
            containsAll (throwsMessage<AugmentException> (fun () -> SearchSpace([| OpTable.Get "Invert" |], 1) |> ignore)) [ "at least 2 levels"; "1" ]
            containsAll (throwsMessage<AugmentException> (fun () -> SearchSpace([| OpTable.Get "Invert"; OpTable.Get "invert" |]) |> ignore))
                [ "'Invert'"; "2 times" ]
        }
    ]

[<Tests>]
let batchTests =
    testList "augment.batch" [
        test "a batched stage equals applying the same op to each image alone (all deterministic ops, 1 and 3 channels)" {
            let space = SearchSpace(OpTable.Defaults)
            let rng = Random 5
            let usable = [ for i in 0 .. space.Ops.Count - 1 do if space.Ops[i].Name <> "Cutout" then yield i ]
            for channels in [ 3; 1 ] do
                let n = if channels = 3 then 300 else 90
                use images = testImages 11 n channels 32 32
                let ops = [ for _ in 1 .. n -> if rng.Next 20 = 0 then -1 else usable[rng.Next usable.Length] ]
                let values = [ for op in ops -> if op < 0 then 0.0f else randomValue rng space.Ops[op] ]
                use batched = stage space images (List.map int64 ops) values
                let mismatched =
                    [ for i in 0 .. n - 1 do
                        use one = applyOne space images i (int64 ops[i]) values[i]
                        if not (same one (batched[int64 i])) then
                            yield sprintf "image %d: %s(%g)" i (if ops[i] < 0 then "none" else space.Ops[ops[i]].Name) values[i] ]
                Expect.isEmpty mismatched (sprintf "%d channel(s): batched differs from image by image" channels)
        }

        test "Apply runs stages in order with each level's value (ValueAt)" {
            // Unsigned copies of the deterministic ops, so the values are known.
            let ops = [| for o in OpTable.Defaults do if o.Name <> "Cutout" && o.Name <> "Identity" then yield (if o.Signed then o.WithSigned false else o) |]
            let space = SearchSpace(ops)
            let rng = Random 3
            let n, k = 120, 3
            use images = testImages 4 n 3 32 32
            let opIds = Array2D.init n k (fun _ _ -> int64 (rng.Next ops.Length))
            let levels = Array2D.init n k (fun _ _ -> int64 (rng.Next 10))
            use ids = torch.tensor(opIds)
            use lv = torch.tensor(levels)
            use g = new torch.Generator(1UL)
            use actual = BatchAugment.Apply(images, space, ids, lv, g)
            let mutable expected = images.clone()
            for s in 0 .. k - 1 do
                let next = stage space expected [ for i in 0 .. n - 1 -> opIds[i, s] ]
                                                [ for i in 0 .. n - 1 -> float32 (ops[int opIds[i, s]].ValueAt(float levels[i, s], 10)) ]
                expected.Dispose()
                expected <- next
            Expect.equal (differences actual expected) 0L "three stages"
            expected.Dispose()
        }

        test "signed ops draw a random sign per sample" {
            let space = SearchSpace.Default
            let n = 200
            use image = testImages 8 1 3 32 32
            use images = copies image[0L] n
            let rotate = int64 (space.IndexOf "Rotate")
            use ids = torch.full([| int64 n; 1L |], rotate.ToScalar(), dtype = torch.int64)
            use levels = torch.full([| int64 n; 1L |], 9L.ToScalar(), dtype = torch.int64)
            use g = new torch.Generator(42UL)
            use out = BatchAugment.Apply(images, space, ids, levels, g)
            use plus = single "Rotate" 30.0f image
            use minus = single "Rotate" -30.0f image
            let signs = [ for i in 0L .. int64 n - 1L -> if same out[i] (plus[0L]) then 1 elif same out[i] (minus[0L]) then -1 else 0 ]
            Expect.isFalse (List.contains 0 signs) "each output is the +30° or the -30° rotation"
            let positives = signs |> List.filter ((=) 1) |> List.length
            Expect.isTrue (positives > 60 && positives < 140) (sprintf "both signs about equally often (%d of %d positive)" positives n)
        }

        test "every op does what the table says" {
            use images = testImages 21 6 3 32 32
            let data = bytesOf images
            let check name value (f: int -> byte -> byte) =
                use out = single name value images
                let expected = data |> Array.mapi (fun i b -> f i b)
                Expect.sequenceEqual (bytesOf out) expected (sprintf "%s(%g)" name value)
            check "Invert" 0.0f (fun _ b -> 255uy - b)
            check "Solarize" 100.0f (fun _ b -> if b >= 100uy then 255uy - b else b)
            check "Posterize" 3.0f (fun _ b -> b &&& 0xE0uy)
            check "Posterize" 0.0f (fun _ _ -> 0uy)
            check "Brightness" 0.0f (fun _ _ -> 0uy)
            for name in [ "Contrast"; "Color"; "Brightness"; "Sharpness"; "Identity" ] do
                check name 1.0f (fun _ b -> b)
            check "SamplePairing" 0.0f (fun _ b -> b)
            let plane = 3 * 32 * 32
            check "SamplePairing" 1.0f (fun i _ -> data[(i + plane) % data.Length])
            // TranslateX by 3: out(x, y) = in(x + 3, y); the last 3 columns are fill.
            check "TranslateX" 3.0f (fun i b -> let x = i % 32 in if x + 3 < 32 then data[i + 3] else 128uy)
            check "TranslateY" -2.0f (fun i b -> let y = (i / 32) % 32 in if y >= 2 then data[i - 64] else 128uy)
            // Rotate 90 (counter-clockwise) of a square image is an exact quarter turn.
            use quarter = single "Rotate" 90.0f images
            use turned = images.rot90(1L, struct (2L, 3L))
            Expect.equal (differences quarter turned) 0L "Rotate 90 = rot90"
            // Contrast 0: the uniform mean grey; AutoContrast: every channel spans 0..255.
            use flat = single "Contrast" 0.0f images
            use lows = flat.amin([| 1L; 2L; 3L |])
            use highs = flat.amax([| 1L; 2L; 3L |])
            Expect.isTrue (same lows (highs)) "Contrast 0 gives one grey per image"
            use stretched = single "AutoContrast" 0.0f images
            Expect.isTrue (stretched.amin([| 2L; 3L |]).eq(0.0.ToScalar()).all().item<bool>()) "AutoContrast: min 0"
            Expect.isTrue (stretched.amax([| 2L; 3L |]).eq(255.0.ToScalar()).all().item<bool>()) "AutoContrast: max 255"
            use constant = torch.full([| 2L; 3L; 8L; 8L |], (77).ToScalar(), dtype = torch.uint8)
            use equalized = single "Equalize" 0.0f constant
            Expect.equal (differences equalized constant) 0L "Equalize leaves a one-level image alone"
        }

        test "Cutout fills one clipped v×v square with 128 per sample" {
            let n = 300
            use zeros = torch.zeros([| int64 n; 3L; 20L; 20L |], dtype = torch.uint8)
            use g = new torch.Generator(9UL)
            let space = SearchSpace(OpTable.Defaults)
            use ids = torch.full([| int64 n |], (int64 (space.IndexOf "Cutout")).ToScalar(), dtype = torch.int64)
            use values = torch.full([| int64 n |], 6.0.ToScalar(), dtype = torch.float32)
            use out = BatchAugment.ApplyValues(zeros, space, ids, values, g)
            let boxes = [ for i in 0L .. int64 n - 1L -> greyBox out[i] ]
            Expect.isTrue (boxes |> List.forall Option.isSome) "every sample has a square"
            for box in List.choose id boxes do
                Expect.isTrue (isClippedSquare 6 20 20 box) (sprintf "6×6 square clipped at the borders: %A" box)
            Expect.isGreaterThan (boxes |> List.distinct |> List.length) 100 "centres differ per sample"
        }

        test "errors name the bad value and what was expected" {
            let space = SearchSpace.Default
            use good = torch.zeros([| 2L; 3L; 8L; 8L |], dtype = torch.uint8)
            let apply (images: torch.Tensor) (ids: int64 list) (values: float32 list) = stage space images ids values |> ignore
            use floatImages = torch.zeros([| 2L; 3L; 8L; 8L |])
            containsAll (throwsMessage<AugmentException> (fun () -> apply floatImages [ 0L; 0L ] [ 0.0f; 0.0f ])) [ "uint8 [N,C,H,W]"; "Float32"; "[2,3,8,8]" ]
            use fourChannels = torch.zeros([| 2L; 4L; 8L; 8L |], dtype = torch.uint8)
            containsAll (throwsMessage<AugmentException> (fun () -> apply fourChannels [ 0L; 0L ] [ 0.0f; 0.0f ])) [ "C = 1 or 3"; "[2,4,8,8]" ]
            use threeD = torch.zeros([| 3L; 8L; 8L |], dtype = torch.uint8)
            containsAll (throwsMessage<AugmentException> (fun () -> StandardAugment.CropFlip(threeD, null) |> ignore)) [ "uint8 [N,C,H,W]"; "[3,8,8]" ]
            containsAll (throwsMessage<AugmentException> (fun () -> apply good [ 0L; 16L ] [ 0.0f; 0.0f ])) [ "sample 1"; "op id 16"; "-1..15" ]
            let posterize = int64 (space.IndexOf "Posterize")
            containsAll (throwsMessage<AugmentException> (fun () -> apply good [ 0L; posterize ] [ 0.1f; 9.0f ])) [ "sample 1"; "Posterize"; "9"; "0..8" ]
            containsAll (throwsMessage<AugmentException> (fun () -> apply good [ 4L; 0L ] [ nanf; 0.0f ])) [ "sample 0"; "Rotate"; "NaN" ]
            let level (ids: int64[,]) (levels: torch.Tensor) =
                use i = torch.tensor(ids)
                BatchAugment.Apply(good, space, i, levels, null) |> ignore
            use tooHigh = torch.tensor(array2D [ [ 3L ]; [ 10L ] ])
            containsAll (throwsMessage<AugmentException> (fun () -> level (array2D [ [ 0L ]; [ 2L ] ]) tooHigh)) [ "sample 1"; "level 10"; "0..9"; "TranslateX" ]
            use fractional = torch.tensor(array2D [ [ 2.5f ]; [ 1.0f ] ])
            containsAll (throwsMessage<AugmentException> (fun () -> level (array2D [ [ 0L ]; [ 2L ] ]) fractional)) [ "sample 0"; "level 2.5"; "whole number" ]
            use int32Levels = torch.tensor(array2D [ [ 1 ]; [ 1 ] ])
            containsAll (throwsMessage<AugmentException> (fun () -> level (array2D [ [ 0L ]; [ 2L ] ]) int32Levels)) [ "levels"; "float32 or int64"; "Int32" ]
            use wrongIds = floats [ 0.0f; 1.0f ]
            use values = floats [ 0.0f; 0.0f ]
            containsAll (throwsMessage<AugmentException> (fun () -> BatchAugment.ApplyValues(good, space, wrongIds, values, null) |> ignore)) [ "opIds"; "int64"; "Float32" ]
        }
    ]

[<Tests>]
let standardTests =
    testList "augment.standard" [
        test "CropFlip takes a random crop of the zero-padded image, flipped or not, per sample" {
            let n = 200
            use image = testImages 13 1 3 16 16
            use images = copies image[0L] n
            use padded = torch.nn.functional.pad(image, [| 4L; 4L; 4L; 4L |])
            let candidates =
                set [ for dy in 0L .. 8L do
                        for dx in 0L .. 8L do
                            use crop = padded[0L].narrow(1L, dy, 16L).narrow(2L, dx, 16L)
                            use flipped = crop.flip(2L)
                            yield key crop
                            yield key flipped ]
            use g = new torch.Generator(5UL)
            use out = StandardAugment.CropFlip(images, g)
            let keys = [ for i in 0L .. int64 n - 1L -> key out[i] ]
            Expect.isTrue (keys |> List.forall candidates.Contains) "each output is a crop or a flipped crop"
            Expect.isGreaterThan (List.distinct keys).Length 60 "samples draw their own offsets and flips"
            use g2 = new torch.Generator(5UL)
            use again = StandardAugment.CropFlip(images, g2)
            Expect.equal (differences out again) 0L "same seed, same result"
            use noPad = StandardAugment.CropFlip(images, g, padding = 0)
            use mirror = image.flip(3L)
            let plain = [ for i in 0L .. int64 n - 1L -> same noPad[i] (image[0L]) || same noPad[i] (mirror[0L]) ]
            Expect.allEqual plain true "padding 0: the image or its mirror"
        }

        test "Cutout puts one size×size square (clipped) of 128 on each image" {
            let n = 300
            use zeros = torch.zeros([| int64 n; 3L; 32L; 32L |], dtype = torch.uint8)
            use g = new torch.Generator(3UL)
            use out = StandardAugment.Cutout(zeros, 16, g)
            let boxes = [ for i in 0L .. int64 n - 1L -> greyBox out[i] ]
            for box in boxes do
                Expect.isTrue (box.IsSome && isClippedSquare 16 32 32 box.Value) (sprintf "16×16 clipped: %A" box)
            Expect.isTrue (boxes |> List.exists (fun b -> b = Some(0, 16, 0, 16) || (let (y0, y1, x0, x1) = b.Value in y1 - y0 = 16 && x1 - x0 = 16)))
                "whole squares where the centre is inside"
            Expect.isGreaterThan (List.distinct boxes).Length 100 "centres differ per sample"
        }
    ]

[<Tests>]
let customTests =
    testList "augment.custom" [
        test "a custom op registered in a space is applied to the samples that chose it, with their magnitudes" {
            let space = SearchSpace([| OpTable.Get "Invert"; OpDefinition.Custom("Add", "adds v to every pixel", 0.0, 90.0) |], 10, [| AddOp() :> ICustomOp |])
            use images = testImages 2 4 3 8 8
            use out = stage space images [ 1L; 0L; 1L; -1L ] [ 10.0f; 0.0f; 30.0f; 0.0f ]
            let expect i (f: byte -> byte) = Expect.sequenceEqual (bytesOf out[int64 i]) (bytesOf images[int64 i] |> Array.map f) (sprintf "image %d" i)
            expect 0 (fun b -> byte (min 255 (int b + 10)))
            expect 1 (fun b -> 255uy - b)
            expect 2 (fun b -> byte (min 255 (int b + 30)))
            expect 3 id
            use ids = torch.tensor(array2D [ [ 1L ]; [ 1L ]; [ 0L ]; [ 1L ] ])
            use levels = torch.tensor(array2D [ [ 3L ]; [ 9L ]; [ 0L ]; [ 0L ] ])
            use viaLevels = BatchAugment.Apply(images, space, ids, levels, null)
            Expect.sequenceEqual (bytesOf viaLevels[0L]) (bytesOf images[0L] |> Array.map (fun b -> byte (min 255 (int b + 30)))) "level 3 of 0..90 is 30"
            Expect.sequenceEqual (bytesOf viaLevels[1L]) (bytesOf images[1L] |> Array.map (fun b -> byte (min 255 (int b + 90)))) "level 9 is 90"
            Expect.sequenceEqual (bytesOf viaLevels[3L]) (bytesOf images[3L]) "level 0 is 0"
        }

        test "custom ops must be paired with a definition and keep the image contract" {
            let add = OpDefinition.Custom("Add", "adds v")
            containsAll (throwsMessage<AugmentException> (fun () -> SearchSpace([| add |]) |> ignore)) [ "'Add'"; "custom"; "ICustomOp" ]
            containsAll (throwsMessage<AugmentException> (fun () -> SearchSpace([| OpTable.Get "Invert" |], 10, [| AddOp() :> ICustomOp |]) |> ignore))
                [ "custom op 'Add'"; "OpDefinition.Custom"; "Invert" ]
            let space = SearchSpace([| OpDefinition.CustomWithoutMagnitude("Bad", "returns floats") |], 10, [| BadOp() :> ICustomOp |])
            use images = torch.zeros([| 2L; 3L; 4L; 4L |], dtype = torch.uint8)
            containsAll (throwsMessage<AugmentException> (fun () -> stage space images [ 0L; 0L ] [ 0.0f; 0.0f ] |> ignore))
                [ "custom op 'Bad'"; "Float32"; "expected Byte [2,3,4,4]" ]
        }
    ]

[<Tests>]
let cliTests =
    testList "augment.cli" [
        test "advaa ops lists every op of the table with its range, sign and kind" {
            let lines = AdvAA.Cli.OpsCommand.render OpTable.Defaults
            for name in opNames do
                Expect.exists lines (fun l -> l.StartsWith(name + " ")) (sprintf "a row for %s" name)
            let shear = lines |> List.find (fun l -> l.StartsWith "ShearX ")
            containsAll shear [ "0 → 0.3"; "±"; "Geometric" ]
            containsAll (lines |> List.find (fun l -> l.StartsWith "Posterize ")) [ "8 → 4"; "Color"; "bits" ]
        }

        test "ImageGrid writes the images as a PNG grid, enlarged, with labels beside the rows" {
            use dir = new TempDir()
            let path = dir.File "grid.png"
            use images = torch.zeros([| 6L; 3L; 4L; 5L |], dtype = torch.uint8)
            images[3L].fill_((200).ToScalar()) |> ignore             // row 1, column 0
            ImageGrid.WritePng(path, images, 3, [| "a"; "b" |], scale = 2)
            use bitmap = SkiaSharp.SKBitmap.Decode path
            let plain = dir.File "plain.png"
            ImageGrid.WritePng(plain, images, 3, scale = 2)
            use unlabeled = SkiaSharp.SKBitmap.Decode plain
            Expect.equal (unlabeled.Width, unlabeled.Height) (3 * (5 * 2 + 2) + 2, 2 * (4 * 2 + 2) + 2) "3 × 2 cells of 10 × 8 with 2-pixel gaps"
            Expect.isGreaterThan bitmap.Width unlabeled.Width "labels take a column"
            let left = bitmap.Width - unlabeled.Width
            Expect.equal (bitmap.GetPixel(left + 2, 2)).Red 0uy "row 0, column 0 is black"
            Expect.equal (bitmap.GetPixel(left + 2, 2 + 10)).Red 200uy "row 1, column 0 is 200"
            containsAll (throwsMessage<AugmentException> (fun () -> ImageGrid.WritePng(path, images, 4))) [ "6 images"; "4 columns" ]
        }

        test "preview rows: the originals, each op at its level, then policy draws" {
            use images = testImages 41 4 3 32 32
            use g = new torch.Generator(1UL)
            let made = AdvAA.Cli.PreviewCommand.rows images [ "Rotate", 9; "Invert", 0 ] (Some(AutoAugmentPolicy.Cifar10Source() :> IPolicySource)) 2 g
            Expect.sequenceEqual [ for label, _ in made -> label ]
                [ "original"; "Rotate 9 = ±30"; "Invert 0"; "autoaugment-cifar10 #1"; "autoaugment-cifar10 #2" ] "labels"
            let _, inverted = made[2]
            Expect.sequenceEqual (bytesOf inverted) (bytesOf images |> Array.map (fun b -> 255uy - b)) "the Invert row"
            for _, t in made do t.Dispose()
        }
    ]
