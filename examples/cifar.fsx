// The paper's CIFAR-10 setup (Zhang et al. 2020, Table 2): WideResNet-28-10, 200 epochs,
// M = 8 instances of batch 128, SGD 0.1 (Nesterov, weight decay 5e-4) × 0.2 at epochs 60, 120
// and 160, 5 sub-policies of 2 ops from the 16-op space. Meant for a GPU:
//
//   advaa run examples/cifar.fsx /data/cifar-10-batches-bin --device cuda
//   CIFAR10_DIR=/data/cifar-10-batches-bin dotnet fsi examples/cifar.fsx
//
// The data: the script's first argument, else the CIFAR10_DIR environment variable, else
// ./cifar-10-batches-bin (the folder the official binary archive unpacks to).
// AdvAA from NuGet (a feed with the packages: see the README's Install), or the working tree with
// `dotnet build -c Release src/AdvAA.Cli` and `dotnet fsi --define:ADVAA_DEV examples/cifar.fsx`. Under `advaa run`
// the reference is the tool's own assemblies.
#if ADVAA_DEV
#I "../src/AdvAA.Cli/bin/Release/net10.0"
#r "AdvAA.Core.dll"
#r "AdvAA.Dsl.dll"
#r "TorchSharp.dll"
#else
#r "nuget: AdvAA-cpu"
#endif

open System
open AdvAA.Dsl

let dataFolder =
    // fsi.CommandLineArgs: the script, then its own arguments, then AdvAA's flags.
    match List.ofArray fsi.CommandLineArgs with
    | _ :: folder :: _ when not (folder.StartsWith "--") -> folder
    | _ ->
        match Environment.GetEnvironmentVariable "CIFAR10_DIR" with
        | null | "" -> "cifar-10-batches-bin"
        | folder -> folder

let experiment =
    { Experiment.defaults with
        Name = "cifar10-wrn-28-10"
        Data = DataPath dataFolder
        Model = "wrn-28-10"
        Method = Method.adversarial |> Method.instances (Schedule.constant 8.0)
        Space = Space.paper
        BatchSize = 128
        Epochs = 200
        LearningRate = Some(Schedule.step 0.1 0.2 [ 60.0; 120.0; 160.0 ])
        Momentum = 0.9
        Nesterov = true
        WeightDecay = 5e-4
        Device = "auto" }

Experiment.main experiment
