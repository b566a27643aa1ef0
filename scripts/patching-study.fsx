// Model patching at CPU scale (scripts/patching-study.sh runs this): the spurious-patch benchmark
// (`advaa patching make-spurious`: animal vs vehicle from CIFAR-10, an orange 8×8 patch on 99 % of
// the animals' training images and 1 % of the vehicles', balanced validation and test groups), the
// small model, 8 epochs, batch 128, 2 seeds. Arms: ERM (standard crop/flip), group DRO over the four
// groups, class-conditional group DRO, CAMEL's stage 2 with the benchmark's exact counterparts
// (oracle translations) and CAMEL with CycleGAN translations (stage 1: 3 passes over each class's
// larger subgroup, RUN/stage1: metrics.jsonl and grid.png with x, G(x), F(G(x)) per class and direction).
//
//   scripts/patching-study.sh [benchmark folder] [study folder]   (default: runs/spurious-benchmark, runs/patching-study)
#if !ADVAA_HOST
#I "../src/AdvAA.Cli/bin/Release/net10.0"
#r "AdvAA.Core.dll"
#r "AdvAA.Dsl.dll"
#r "TorchSharp.dll"
#endif

open AdvAA.Dsl

let data =
    match fsi.CommandLineArgs |> Array.tryItem 1 with
    | Some folder -> DataPath folder
    | None -> failwith "give the benchmark's folder: scripts/patching-study.sh runs/spurious-benchmark (advaa patching make-spurious writes it)"

let common =
    { Experiment.defaults with
        Data = data
        Model = "small"
        Epochs = 8
        BatchSize = 128
        EvalEvery = 2 }

let study =
    { Name = "patching-spurious"
      Seeds = [ 1L; 2L ]
      Arms =
        [ { common with Name = "erm"; Method = Method.baseline }
          { common with Name = "gdro"; Method = Method.groupDro false }
          { common with Name = "sgdro"; Method = Method.groupDro true }
          { common with Name = "camel-oracle"; Method = Method.camelOracle }
          { common with Name = "camel"; Method = Method.camel |> Method.set "gan_epochs" 3 } ] }

Experiment.mainStudy study
