// Dao et al. (ICML 2019), "A Kernel Theory of Modern Data Augmentation": training on augmented
// data is, to first order, training on each image's averaged transformed features, and to second
// order adds a variance regulariser. Logistic regression on random Fourier features of two CIFAR-10
// classes trains the exact augmented objective and both approximations; the demo shows how close the
// approximations come to the exact model, in objective and predictions, over training.
//
//   advaa run examples/theory/kernel.fsx [CIFAR-10 folder]      (default: the embedded sample)
// AdvAA from NuGet (a feed with the packages: see the README's Install), or the working tree with
// `dotnet build -c Release src/AdvAA.Cli` and `dotnet fsi --define:ADVAA_DEV examples/theory/kernel.fsx`. Under `advaa run`
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
    { Name = "kernel"
      Run = fun out folder -> Theory.Demos.kernel data Theory.Kernel.defaults out folder |> printfn "plot     %s" }

Experiment.mainDemo demo
