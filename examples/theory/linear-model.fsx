// Wu et al. (ICML 2020), "On the Generalization Effects of Linear Transformations in Data
// Augmentation", §3: an over-parameterised ridge regression whose training data lie in a
// low-dimensional subspace S. Shows (i) label-invariant transforms that leave S lower the error,
// those inside S do not; (ii) mixup shrinks the estimator like a stronger ridge penalty; (iii) a
// composition of two label-invariant transforms can lower or raise the error (one example each).
//
//   advaa run examples/theory/linear-model.fsx        (or dotnet fsi; plot in --out, else runs/linear-model)
// AdvAA from NuGet (a feed with the packages: see the README's Install), or the working tree with
// `dotnet build -c Release src/AdvAA.Cli` and `dotnet fsi --define:ADVAA_DEV examples/theory/linear-model.fsx`. Under `advaa run`
// the reference is the tool's own assemblies.
#if ADVAA_DEV
#I "../../src/AdvAA.Cli/bin/Release/net10.0"
#r "AdvAA.Core.dll"
#r "AdvAA.Dsl.dll"
#r "TorchSharp.dll"
#else
#r "nuget: AdvAA-cpu"
#endif

open AdvAA.Dsl

let demo =
    { Name = "linear-model"
      Run = fun out folder -> Theory.Demos.linear Theory.Linear.defaults out folder |> printfn "plot     %s" }

Experiment.mainDemo demo
