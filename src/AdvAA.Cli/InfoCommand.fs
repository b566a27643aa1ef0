/// `advaa info`: versions, the libtorch backend, devices, the machine, CPU threads.
module AdvAA.Cli.InfoCommand

open System
open Argu
open TorchSharp
open AdvAA.Core.Backend
open AdvAA.Cli.Common
open AdvAA.Dsl

type InfoArgs =
    | Device of string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Device _ -> "auto|cpu|cuda (default: auto, or ADVAA_DEVICE)."

let run (args: ParseResults<InfoArgs>) =
    let request = deviceRequest (args.TryGetResult InfoArgs.Device)
    let device = TorchBackend.ResolveDevice request
    let b = TorchBackend.Initialize request
    printfn "AdvAA        %s" (versionOf typeof<NativeBackend>)
    printfn "TorchSharp   %s" (versionOf typeof<torch>)
    printfn "libtorch     %s" b.LibTorchVersion
    printfn "backend      %s (%s)" b.Kind b.Source
    printfn "  libtorch   %s" b.LibTorchFolder
    printfn "  wrapper    %s" b.WrapperPath
    printfn "device       %O (requested: %s)" device ((string request).ToLowerInvariant())
    let cuda = torch.cuda.is_available()
    printfn "CUDA         %s" (if cuda then sprintf "available, %d device(s)" (torch.cuda.device_count()) else "not available")
    printfn "machine      %s" (Machine.Describe())
    printfn "CPU threads  %d (of %d cores)" (torch.get_num_threads()) Environment.ProcessorCount
    match Precisions.AutoRule device with
    | NonNull rule -> printfn "precision    auto → %s: %s" (Precisions.Name rule.Precision) rule.Reason
    | _ ->
        let probes = ProbeCache.All ProbeCache.DefaultFile |> Seq.map (fun struct (key, choice) -> key, choice) |> Seq.filter (fun (key, _) -> key.StartsWith(Machine.Describe() + ";", StringComparison.Ordinal)) |> List.ofSeq
        printfn "precision    auto → the faster of fp32 and bf16 for each model, by a timed probe of its training step at its first run (this CPU has bf16 instructions, which are not faster everywhere); probes in %s%s"
            ProbeCache.DefaultFile (if probes.IsEmpty then ": none yet" else ":")
        for key, choice in probes do
            printfn "  %s → %s (%s)" (key.Substring(key.IndexOf(';') + 2)) (Precisions.Name choice.Precision) choice.Reason
    ExitCode.ok
