// A script that runs unchanged under `dotnet fsi probe.fsx` and under AdvAA's script host:
// the ScriptHost tests read its values back, and run it with `dotnet fsi` to compare.
#if !ADVAA_HOST
// Plain F# Interactive takes AdvAA from the built CLI (dotnet build -c Release src/AdvAA.Cli),
// whose folder also holds TorchSharp and its native libtorch. The host binds its own assemblies.
#I "../../../src/AdvAA.Cli/bin/Release/net10.0"
#r "AdvAA.Core.dll"
#r "AdvAA.Dsl.dll"
#r "TorchSharp.dll"
#endif

open AdvAA.Dsl
open TorchSharp

let lr = Schedule.warmup 5 (Schedule.step 0.1 0.2 [ 60; 120; 160 ])

let answer = 42

let hostDefined =
#if ADVAA_HOST
    true
#else
    false
#endif

let hostedAtTopLevel = ScriptHost.IsHosted
let hostedInTask = System.Threading.Tasks.Task.Run(fun () -> ScriptHost.IsHosted).Result
let sourceDirectory = __SOURCE_DIRECTORY__
let commandLineArgs = fsi.CommandLineArgs

// A tensor operation after touching an AdvAA type: libtorch must be AdvAA's, loaded by full path.
let backendDevice = AdvAA.Core.Backend.TorchBackend.ResolveDevice AdvAA.Core.Backend.DeviceRequest.Cpu
let tensorSum =
    use t = torch.arange(6L, device = backendDevice).reshape(2L, 3L)
    use s = t.sum()
    s.item<int64>()

// What an experiment script's final "run it" call does: act under `dotnet fsi`, nothing under the host.
if not ScriptHost.IsHosted then
    printfn "hostDefined=%b" hostDefined
    printfn "hostedAtTopLevel=%b" hostedAtTopLevel
    printfn "hostedInTask=%b" hostedInTask
    printfn "commandLineArgs=%s" (String.concat " " commandLineArgs)
    printfn "tensorSum=%d" tensorSum
    printfn "libtorch=%s" (AdvAA.Core.Backend.TorchBackend.Current.LibTorchFolder)
    printfn "lr=%s" (Schedule.describe lr)
    printfn "lr@2.5=%s" ((Schedule.at lr 2.5).ToString "R")
