// Wu et al. (ICML 2020), §4: mixup within a class lowers the variance of a model's predictions when
// it is retrained: a one-hidden-layer network on CIFAR-10 pixels, trained several times on the same
// images from different initialisations and data orders, with and without same-class mixup.
// 300 images and 120 epochs: the effect shows once training goes well past fitting the images
// (Theory.Stability.defaults; a shorter run on more images shows none, see Theory.fs).
//
//   advaa run examples/theory/mixup-stability.fsx [CIFAR-10 folder]      (default: the embedded sample)
// AdvAA from NuGet (a feed with the packages: see the README's Install), or the working tree with
// `dotnet build -c Release src/AdvAA.Cli` and `dotnet fsi --define:ADVAA_DEV examples/theory/mixup-stability.fsx`. Under `advaa run`
// the reference is the tool's own assemblies.
#if ADVAA_DEV
#I "../../src/AdvAA.Cli/bin/Release/net10.0"
#r "AdvAA.Core.dll"
#r "AdvAA.Dsl.dll"
#r "TorchSharp.dll"
#else
#r "nuget: AdvAA-cpu"
#endif

open AdvAA.Core.Data
open AdvAA.Dsl

/// The script's first argument, else the embedded sample.
let data = DataSources.Load(Array.tryItem 1 fsi.CommandLineArgs |> Option.toObj)

let demo =
    { Name = "mixup-stability"
      Run = fun out folder -> Theory.Demos.stability data Theory.Stability.defaults out folder |> printfn "plot     %s" }

Experiment.mainDemo demo
