// Adversarial AutoAugment on the CIFAR-10 sample embedded in AdvAA, on the CPU, in minutes:
//
//   advaa run examples/quickstart.fsx               (or: dotnet fsi examples/quickstart.fsx)
//   advaa run examples/quickstart.fsx --epochs 3    (flags override the script; see advaa run --help)
//
// The controller samples M policies per epoch; each batch of N images becomes M augmented
// copies, one per policy; the target trains on all of them and the controller learns to pick
// the policies whose copies are hardest.
// AdvAA from NuGet (a feed with the packages: see the README's Install), or the working tree with
// `dotnet build -c Release src/AdvAA.Cli` and `dotnet fsi --define:ADVAA_DEV examples/quickstart.fsx`. Under `advaa run`
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
        Name = "quickstart"
        Data = EmbeddedSample
        Model = "small"
        // The paper's M = 8 and N = 128 cost 1,024 images per step; a quarter keeps a CPU run short.
        Method = Method.adversarial |> Method.instances (Schedule.constant 4.0)
        BatchSize = 64
        Epochs = 12
        // LearningRate = None: the paper's for this model, a cosine from 0.1 to 0 over the epochs.
        Device = "cpu" }

Experiment.main experiment
