// TANDA at CPU scale (scripts/tanda-study.sh runs this): TANDA's low-data CIFAR-10 setting, a
// class-balanced 5,000-image training subset (500 per class), the full 10,000 test images
// (evaluated every 5 epochs and at the end), the small model, 20 epochs of the end model, 2 seeds.
// Arms: standard augmentation only; uniform random TF sequences of TANDA's length 10 (TANDA's
// "random" comparison); TANDA with a mean-field and with an LSTM generator, each trained for 3
// passes over the 5,000 images in stage 1; the last three again on a mild TF set (RUN/stage1: metrics.jsonl with the discriminator's
// accuracy and the generator/random loss ratio, samples.png with random vs learned sequences).
//
//   scripts/tanda-study.sh [CIFAR-10 folder] [study folder]   (default: $ADVAA_CIFAR10_DIR, runs/tanda-study)
#if !ADVAA_HOST
#I "../src/AdvAA.Cli/bin/Release/net10.0"
#r "AdvAA.Core.dll"
#r "AdvAA.Dsl.dll"
#r "TorchSharp.dll"
#endif

open AdvAA.Dsl

let data = DataSource.fromArguments fsi.CommandLineArgs "ADVAA_CIFAR10_DIR" "scripts/tanda-study.sh /data/cifar10"

let common =
    { Experiment.defaults with
        Data = data
        Model = "small"
        Epochs = 20
        BatchSize = 64
        TrainLimit = Some 5000
        EvalEvery = 5 }

let tanda generator = Method.tanda |> Method.set "generator" generator |> Method.set "tan_epochs" 3

// TANDA's own image TFs are mild and label-preserving (small rotations, shears, shifts, colour and
// contrast tweaks); the paper's 160 TFs include Invert, Solarize, SamplePairing and 14-pixel shifts,
// which ten in a row make unrecognisable. The "-mild" arms search this space instead.
let mild =
    Space.ofOps [ "Rotate"; "ShearX"; "ShearY"; "TranslateX"; "TranslateY"; "Contrast"; "Color"; "Brightness"; "Sharpness"; "AutoContrast"; "Equalize" ]
    |> Space.range "Rotate" (0.0, 10.0)
    |> Space.range "ShearX" (0.0, 0.1)
    |> Space.range "ShearY" (0.0, 0.1)
    |> Space.range "TranslateX" (0.0, 3.0)
    |> Space.range "TranslateY" (0.0, 3.0)
    |> Space.range "Contrast" (0.7, 1.3)
    |> Space.range "Color" (0.7, 1.3)
    |> Space.range "Brightness" (0.7, 1.3)
    |> Space.range "Sharpness" (0.7, 1.3)

let study =
    { Name = "tanda-cifar10-5k"
      Seeds = [ 1L; 2L ]
      Arms =
        [ { common with Name = "baseline"; Method = Method.baseline }
          { common with Name = "random-sequences"; Method = tanda "random" }
          { common with Name = "tanda-mean-field"; Method = tanda "mean-field" }
          { common with Name = "tanda-lstm"; Method = tanda "lstm" }
          { common with Name = "random-sequences-mild"; Method = tanda "random"; Space = mild }
          { common with Name = "tanda-mean-field-mild"; Method = tanda "mean-field"; Space = mild }
          { common with Name = "tanda-lstm-mild"; Method = tanda "lstm"; Space = mild } ] }

Experiment.mainStudy study
