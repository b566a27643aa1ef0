// The setting of the CPU-scale studies (scripts/study.fsx, scripts/strength-study.fsx): CIFAR-10 from
// the script's first argument or ADVAA_CIFAR10_DIR, a class-balanced 2,000-image training subset, a
// disjoint 1,000-image validation split, the full test set every 5 epochs and at the end, the small
// model, 60 epochs, N = 64. A study `#load`s it and changes the method per arm.
#if !ADVAA_HOST
#I "../src/AdvAA.Cli/bin/Release/net10.0"
#r "AdvAA.Core.dll"
#r "AdvAA.Dsl.dll"
#r "TorchSharp.dll"
#endif

// Its values are Setting2k.* where it is loaded (the module is the file's name).
open AdvAA.Dsl

/// The setting, reading the data as `usage` (the study's own command line) says.
let common (usage: string) =
    { Experiment.defaults with
        Data = DataSource.fromArguments fsi.CommandLineArgs "ADVAA_CIFAR10_DIR" usage
        Model = "small"
        Epochs = 60
        BatchSize = 64
        TrainLimit = Some 2000
        ValidationSize = Some 1000
        EvalEvery = 5 }
