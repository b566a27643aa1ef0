/// Helpers for the augmentation tests: test images, small tensors, per-image references.
module AdvAA.Tests.AugmentSupport

open System
open TorchSharp
open AdvAA.Core.Augment


let longs (xs: int64 seq) = torch.tensor(Seq.toArray xs)
let floats (xs: float32 seq) = torch.tensor(Seq.toArray xs)
let bytesOf (t: torch.Tensor) : byte[] = t.contiguous().data<byte>().ToArray()
/// An image's bytes as a string, to put images in sets.
let key (t: torch.Tensor) = Convert.ToBase64String(bytesOf t)

/// Test images with work for every op: per image a random intensity range, a horizontal ramp and noise.
let testImages (seed: int) (n: int) (channels: int) (h: int) (w: int) =
    use g = new torch.Generator(uint64 seed)
    let shape = [| int64 n; int64 channels; int64 h; int64 w |]
    use noise = torch.rand(shape, generator = g)
    use ramp = torch.linspace(0.0, 1.0, int64 w).view(1L, 1L, 1L, int64 w)
    use low = torch.rand([| int64 n; 1L; 1L; 1L |], generator = g).mul(100.0.ToScalar())
    use span = torch.rand([| int64 n; 1L; 1L; 1L |], generator = g).mul(155.0.ToScalar()).add(1.0.ToScalar())
    noise.mul(0.6.ToScalar()).add(ramp.mul(0.4.ToScalar())).mul(span).add(low).floor().clamp(0.0.ToScalar(), 255.0.ToScalar()).to_type(torch.uint8)

/// n copies of one image.
let copies (image: torch.Tensor) (n: int) = image.unsqueeze(0L).expand(int64 n, -1L, -1L, -1L).contiguous()

/// One stage applied to image i alone (with its SamplePairing partner, image (i+1) mod N, beside it).
let applyOne (space: SearchSpace) (images: torch.Tensor) (i: int) (op: int64) (value: float32) =
    let n = int images.shape[0]
    use pair = torch.stack([| images[int64 i]; images[int64 ((i + 1) % n)] |])
    use ids = longs [ op; -1L ]
    use values = floats [ value; 0.0f ]
    use out = BatchAugment.ApplyValues(pair, space, ids, values, null)
    out[0L].clone()

/// A random valid raw value for an op: uniform over its range, with a random sign where signed.
let randomValue (rng: Random) (op: OpDefinition) =
    let v = op.Low + (op.High - op.Low) * rng.NextDouble()
    let v = if op.IsInteger then Math.Truncate v else v
    float32 (if op.Signed && rng.Next 2 = 0 then op.Reflect v else v)

/// Counts the positions where two uint8 tensors differ.
let differences (a: torch.Tensor) (b: torch.Tensor) =
    use ne = a.ne(b)
    ne.sum().item<int64>()

/// Whether two uint8 tensors have the same shape and values.
let same (a: torch.Tensor) (b: torch.Tensor) = a.shape = b.shape && differences a b = 0L
