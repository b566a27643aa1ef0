// Wu et al. (ICML 2020), "On the Generalization Effects of Linear Transformations in Data
// Augmentation", §3: an over-parameterised ridge regression whose training data lie in a
// low-dimensional subspace S. Shows (i) label-invariant transforms that leave S lower the error,
// those inside S do not; (ii) mixup shrinks the estimator like a stronger ridge penalty; (iii) a
// composition of two label-invariant transforms can lower or raise the error (one example each).
//
//   advaa run examples/theory/linear-model.fsx        (or dotnet fsi; plot in --out, else runs/linear-model)
#if !ADVAA_HOST
#I "../../src/AdvAA.Cli/bin/Release/net10.0"
#r "AdvAA.Core.dll"
#r "AdvAA.Dsl.dll"
#r "TorchSharp.dll"
#endif

open AdvAA.Dsl

let demo =
    { Name = "linear-model"
      Run = fun out folder -> Theory.Demos.linear Theory.Linear.defaults out folder |> printfn "plot     %s" }

Experiment.mainDemo demo
