// TANDA (Ratner et al. 2017) on the CIFAR-10 sample embedded in AdvAA, on the CPU:
//
//   advaa run examples/tanda.fsx                  (or: dotnet fsi examples/tanda.fsx)
//   advaa run examples/tanda.fsx --param tan_epochs=1 --epochs 2     (a quick look)
//
// Stage 1 (RUN/stage1) trains a generator of transformation sequences against a discriminator
// that tells real training images from transformed ones: sequences whose images still look real,
// and are not too close to the original, are rewarded. RUN/stage1/samples.png shows random vs
// learned sequences; metrics.jsonl there has the discriminator's accuracy and the generator/random
// loss ratio (below 1: the learned sequences look more real than random ones). Stage 2 trains the
// classifier with every image transformed by a sequence the generator draws for it.
// AdvAA from NuGet (a feed with the packages: see the README's Install), or the working tree with
// `dotnet build -c Release src/AdvAA.Cli` and `dotnet fsi --define:ADVAA_DEV examples/tanda.fsx`. Under `advaa run`
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

let experiment =
    { Experiment.defaults with
        Name = "tanda"
        Data = EmbeddedSample
        Model = "small"
        // TANDA's parameters by name, as `advaa methods tanda` lists them.
        Method =
            Method.tanda
            |> Method.set "generator" "lstm" // or "mean-field"; "random" is TANDA's uniform comparison
            |> Method.set "length" 10
            // TFs: ops of the experiment's search space at fixed levels; Tfs.all is every op at every level.
            |> Method.set "tfs" (Tfs.only [ for op in [ "Rotate"; "ShearX"; "TranslateY"; "Color"; "Contrast"; "Brightness"; "Equalize"; "Posterize" ] do
                                                for level in [ 2; 5; 8 ] -> op, level ])
            |> Method.set "tan_epochs" 5
            |> Method.set "generator_lr" 0.001
            |> Method.set "diversity" 0.0025
        BatchSize = 64
        Epochs = 15 }

Experiment.main experiment
