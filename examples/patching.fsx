// Model patching (CAMEL, Goel et al. 2020) on the spurious-patch benchmark, on the CPU:
//
//   advaa run examples/patching.fsx [BENCHMARK]          (or: dotnet fsi examples/patching.fsx [BENCHMARK])
//   advaa run examples/patching.fsx --epochs 2 --param gan_epochs=1     (a quick look)
//
// BENCHMARK is a folder `advaa patching make-spurious` wrote (animal vs vehicle, an orange patch on
// 99 % of the animals' training images and 1 % of the vehicles'); without one, a small one is built
// from the CIFAR-10 sample embedded in AdvAA into runs/spurious-sample. Stage 1 (RUN/stage1) trains
// a CycleGAN per class between its two subgroups (grid.png: x, G(x), F(G(x))); stage 2 trains the
// classifier on each image and its versions in both subgroups of its class, with the subgroup
// consistency loss and class-conditional group DRO. Every evaluated epoch prints the robust (worst
// group) accuracy; metrics.jsonl has each group's accuracy, the subgroup gaps and the DRO weights.
// AdvAA from NuGet (a feed with the packages: see the README's Install), or the working tree with
// `dotnet build -c Release src/AdvAA.Cli` and `dotnet fsi --define:ADVAA_DEV examples/patching.fsx`. Under `advaa run`
// the reference is the tool's own assemblies.
#if ADVAA_DEV
#I "../src/AdvAA.Cli/bin/Release/net10.0"
#r "AdvAA.Core.dll"
#r "AdvAA.Dsl.dll"
#r "TorchSharp.dll"
#else
#r "nuget: AdvAA-cpu"
#endif

open System.IO
open AdvAA.Core.Data
open AdvAA.Dsl

let benchmark =
    match fsi.CommandLineArgs |> Array.tryItem 1 with
    | Some folder when not (folder.StartsWith "--") -> folder
    | _ ->
        let folder = Path.Combine("runs", "spurious-sample")
        if not (Directory.Exists folder) then
            use sample = DataSources.EmbeddedSample()
            let d = SpuriousBenchmark.Settings.AnimalVsVehicle
            let settings = SpuriousBenchmark.Settings(d.FirstName, d.First, d.SecondName, d.Second, TrainPerClass = 800, ValPerGroup = 50, TestPerGroup = 100)
            SpuriousBenchmark.Write(sample, folder, settings) |> ignore
        folder

let experiment =
    { Experiment.defaults with
        Name = "patching"
        Data = DataPath benchmark
        Model = "small"
        // Method.camelOracle uses the benchmark's exact counterparts instead of stage 1's translations;
        // Method.groupDro true is class-conditional group DRO alone, Method.baseline plain ERM.
        // CAMEL's parameters by name, as `advaa methods camel` lists them.
        Method =
            Method.camel
            |> Method.set "consistency" 10.0
            |> Method.set "gan_epochs" 3
            |> Method.set "gan_filters" 16
            |> Method.set "gan_blocks" 3
        BatchSize = 128
        Epochs = 10
        EvalEvery = 2 }

Experiment.main experiment
