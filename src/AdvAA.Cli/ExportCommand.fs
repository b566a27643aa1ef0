/// `advaa export RUN --format pytorch --out model.pt|model.safetensors [--epoch E]`: the trained weights
/// as a PyTorch state dict or safetensors, with a Python module beside it that defines the network.
module AdvAA.Cli.ExportCommand

open Argu
open AdvAA.Core.Training
open AdvAA.Dsl

type ExportArgs =
    | [<MainCommand; ExactlyOnce>] Run of folder: string
    | [<Unique>] Format of format: string
    | [<Unique; Mandatory>] Out of file: string
    | [<Unique>] Epoch of epoch: int
    | Force
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Run _ -> "the run folder."
            | Format _ -> "pytorch (the only format, the default): PyTorch reads the weights; a .py file beside them defines the network."
            | Out _ -> "the weights file: model.pt (torch.save's format) or model.safetensors (safetensors); the Python module is written beside it with the same name ending in .py."
            | Epoch _ -> "the epoch to export; a run keeps its last checkpoint only (default: that one)."
            | Force -> "overwrite the weights file or the .py beside it even if an earlier advaa export did not write them."

/// Writes the run's weights and the Python module; returns their paths.
let export (folder: string) (out: string) (epoch: int option) (force: bool) : string * string =
    use trained = TrainedModel.Open(folder, Option.toNullable epoch, "cpu")
    let struct (weights, python) = trained.ExportPyTorch(out, force)
    weights, python

let run (args: ParseResults<ExportArgs>) =
    match args.TryGetResult Format |> Option.map (fun f -> f.Trim().ToLowerInvariant()) with
    | Some f when f <> "pytorch" -> args.Raise(sprintf "--format %s: expected pytorch" f, ErrorCode.CommandLine, false)
    | _ -> ()
    let weights, python = export (args.GetResult Run) (args.GetResult Out) (args.TryGetResult Epoch) (args.Contains Force)
    let name = System.IO.Path.GetFileNameWithoutExtension python
    printfn "weights  %s" weights
    printfn "network  %s" python
    printfn ""
    printfn "In Python, from %s:" (System.IO.Path.GetDirectoryName python)
    printfn "  import importlib.util; spec = importlib.util.spec_from_file_location(\"%s\", \"%s\")" name (System.IO.Path.GetFileName python)
    printfn "  m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)"
    printfn "  net = m.load()                                   # eval mode, the trained weights"
    printfn "  logits = net(m.normalise(images_uint8_nchw, m.MEAN, m.STD))"
    ExitCode.ok
