// Several methods side by side on the embedded sample, then a comparison table: the paper's
// ablation (Table 4: Baseline, Fixed, Random, Adversarial at M = 4 here), AutoAugment's published
// policy, and a policy written by hand the way the papers print them.
//
//   advaa run examples/baselines.fsx                 (runs/comparison-<time>/<name> for each)
//   advaa run examples/baselines.fsx --out runs/ablation --epochs 5
//
// A script that defines `experiments` (a list) runs them in turn, each in a subfolder of the
// --out folder named after it, and prints a table; --resume <folder> continues such a group.
// AdvAA from NuGet (a feed with the packages: see the README's Install), or the working tree with
// `dotnet build -c Release src/AdvAA.Cli` and `dotnet fsi --define:ADVAA_DEV examples/baselines.fsx`. Under `advaa run`
// the reference is the tool's own assemblies.
#if ADVAA_DEV
#I "../src/AdvAA.Cli/bin/Release/net10.0"
#r "AdvAA.Core.dll"
#r "AdvAA.Dsl.dll"
#r "TorchSharp.dll"
#else
#r "nuget: AdvAA-cpu"
#endif

open AdvAA.Dsl

let common =
    { Experiment.defaults with
        Model = "small"
        BatchSize = 64
        Epochs = 10
        Seed = 1L
        Device = "cpu" }

/// (op, level) pairs: every op of the sub-policy an image draws is applied.
let handWritten =
    Policy.ofPairs
        [ [ "Rotate", 4; "Color", 6 ]
          [ "ShearX", 3; "Equalize", 0 ]
          [ "TranslateY", 5; "Brightness", 7 ]
          [ "Posterize", 6; "Contrast", 5 ] ]

/// The paper's M = 8 copies of each batch cost 8x a baseline step; 4 keeps a CPU run short.
let m = Schedule.constant 4.0

let experiments =
    [ { common with Name = "baseline"; Method = Method.baseline }
      { common with Name = "fixed"; Method = Method.fixedCopies |> Method.instances m }
      { common with Name = "random"; Method = Method.random |> Method.instances m }
      { common with Name = "adversarial"; Method = Method.adversarial |> Method.instances m }
      { common with Name = "autoaugment"; Method = Method.autoAugment }
      { common with Name = "hand-written"; Method = Method.policy handWritten } ]

Experiment.mainAll experiments
