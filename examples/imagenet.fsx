// Adversarial AutoAugment on ImageNet with ResNet-50 (Zhang et al. 2020, section 4: top-1 79.40 %;
// the ablation's ResNet-50 arms: baseline 23.69, Fixed 22.70, Random 21.68, Adversarial 20.60 %
// error). Meant for GPUs and many of them (README: More than one GPU or machine):
//
//   advaa run examples/imagenet.fsx /data/imagenet --device cuda
//   mpirun -np 8 advaa run examples/imagenet.fsx /data/imagenet --device cuda --distributed
//   IMAGENET_DIR=/data/imagenet dotnet fsi examples/imagenet.fsx
//
// The data: the script's first argument, else IMAGENET_DIR, else ./imagenet: an image folder with
// train/<class>/*.JPEG and test/<class>/*.JPEG (ILSVRC-2012 as torchvision's ImageFolder reads it,
// the official validation images sorted into class folders as test/). Its JPEGs vary in size, so
// they are streamed: every image is decoded
// per batch by --workers threads, RandomResizedCrop(224) and a flip in training, the centre 224 of
// a 256 resize in evaluation (README: Data of any size).
//
// Settings: ResNet-50 in torchvision's layout (advaa export writes a state dict torchvision
// loads), M = 8 instances as in the paper's ImageNet ablation, 120 epochs, 256 images per
// instance (2,048 per step), SGD with Nesterov momentum 0.9 and weight decay 1e-4, the learning
// rate of Goyal et al.'s linear scaling (0.1 per 256 images of the step: 0.8) after a 5-epoch
// warm-up, ×0.1 at epochs 30, 60 and 90; the paper's 16-op search space with 10 levels, 5
// sub-policies of 2 ops, no Cutout (ImageNet recipes do not use it).
// AdvAA from NuGet (a feed with the packages: see the README's Install), or the working tree with
// `dotnet build -c Release src/AdvAA.Cli` and `dotnet fsi --define:ADVAA_DEV examples/imagenet.fsx`. Under `advaa run`
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
        match Environment.GetEnvironmentVariable "IMAGENET_DIR" with
        | null | "" -> "imagenet"
        | folder -> folder

let instances = 8
let perInstance = 256

let experiment =
    { Experiment.defaults with
        Name = "imagenet-resnet50"
        Data = DataPath dataFolder
        Model = "resnet50"
        ImageSize = Some 224
        Method =
            Method.adversarial
            |> Method.instances (Schedule.constant (float instances))
            |> Method.set "cutout" 0
        Space = Space.paper
        BatchSize = perInstance
        Epochs = 120
        LearningRate =
            Some(Schedule.step (0.1 * float (instances * perInstance) / 256.0) 0.1 [ 30.0; 60.0; 90.0 ] |> Schedule.warmup 5.0)
        Momentum = 0.9
        Nesterov = true
        WeightDecay = 1e-4
        Device = "auto" }

Experiment.main experiment
