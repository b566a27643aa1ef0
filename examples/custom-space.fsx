// A search space of your own: ops written in F# over tensors, a restricted and extended op list,
// changed ranges, and a magnitude schedule that ramps the strength of every op up over the run.
//
//   advaa run examples/custom-space.fsx
//   advaa check examples/custom-space.fsx      (prints the resolved space)
// AdvAA from NuGet (a feed with the packages: see the README's Install), or the working tree with
// `dotnet build -c Release src/AdvAA.Cli` and `dotnet fsi --define:ADVAA_DEV examples/custom-space.fsx`. Under `advaa run`
// the reference is the tool's own assemblies.
#if ADVAA_DEV
#I "../src/AdvAA.Cli/bin/Release/net10.0"
#r "AdvAA.Core.dll"
#r "AdvAA.Dsl.dll"
#r "TorchSharp.dll"
#else
#r "nuget: AdvAA-cpu"
#endif

open TorchSharp
open AdvAA.Dsl

// A custom op gets the images that chose it (uint8 [n,C,H,W], on the training device) and their
// magnitudes (float32 [n], one per image) and returns uint8 images of the same shape: batched
// tensor code, no loop over images. Tensors made here are freed by the caller's dispose scope.

/// Gaussian noise whose standard deviation (in pixel values) is the magnitude: 0 → 32 over the levels.
let noise =
    Space.custom "GaussianNoise" (0.0, 32.0) (fun images sigma ->
        let x = images.to_type torch.ScalarType.Float32
        let noisy = x + torch.randn_like(x) * sigma.view(-1L, 1L, 1L, 1L)
        noisy.round().clamp(0.0.ToScalar(), 255.0.ToScalar()).to_type torch.ScalarType.Byte)

/// Swaps the red and blue channels (no magnitude).
let swapRedBlue = Space.customWithoutMagnitude "SwapRedBlue" (fun images -> images.flip(1L))

let space =
    Space.paper
    |> Space.without [ "Invert"; "SamplePairing" ] // restricted: two ops the search may not use
    |> Space.range "Rotate" (0.0, 20.0) // gentler rotations (still with a random sign)
    |> Space.range "Solarize" (128.0, 256.0) // never solarize below a threshold of 128
    |> Space.addBuiltIn "Identity" // extended: a built-in op outside the paper's space
    |> Space.add noise // extended: the user ops
    |> Space.add swapRedBlue

let epochs = 10

let experiment =
    { Experiment.defaults with
        Name = "custom-space"
        Space = space
        Method =
            Method.adversarial
            |> Method.instances (Schedule.constant 4.0)
            // Every sampled level is multiplied by this (rounded down): from 30% to full strength.
            |> Method.set "magnitude_scale" (Schedule.linear 0.3 1.0 (float epochs))
        BatchSize = 64
        Epochs = epochs
        Device = "cpu" }

Experiment.main experiment
