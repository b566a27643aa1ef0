/// `advaa policy export RUN [--epoch E] [--window W] --out FILE`: a run's learned policies of one
/// epoch (and window, for a controller that learned several times an epoch) as a policy file that
/// `--policy` (and `Method.policy (Policy.ofFile ...)`) reads.
module AdvAA.Cli.PolicyCommand

open System.IO
open Argu
open AdvAA.Core
open AdvAA.Core.Augment
open AdvAA.Core.Training
open AdvAA.Dsl
open AdvAA.Cli.Common

type ExportArgs =
    | [<MainCommand; ExactlyOnce>] Run of folder: string
    | [<Unique>] Epoch of epoch: int
    | [<Unique>] Window of window: int
    | [<Unique; Mandatory>] Out of file: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Run _ -> "the run folder."
            | Epoch _ -> "the epoch whose policies to export (default: the last one)."
            | Window _ -> "the window of that epoch, from 1, when the run drew policies several times an epoch (updates_per_epoch; default: the last)."
            | Out _ -> "the policy file to write (must not exist)."

type PolicyArgs =
    | [<CliPrefix(CliPrefix.None)>] Export of ParseResults<ExportArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Export _ -> "write a run's learned policies of one epoch as a policy file (one policy per instance)."

/// The policies of `epoch` (default: the last with policies) and `window` (from 1; default: the
/// epoch's last) of the run in `folder`, as a document.
let exportable (folder: string) (epoch: int option) (window: int option) : PolicyDocument =
    let run = RunFolder.Open folder
    let config = run.ReadConfig()
    let records = run.ReadPolicies()
    let method = config.Experiment.Method.Name
    let withPolicies = records |> Seq.filter (fun r -> r.WindowPolicies.Count > 0) |> Seq.map (fun r -> r.Epoch, r.WindowPolicies) |> List.ofSeq
    if withPolicies.IsEmpty then
        raise (RunFolderException(sprintf "%s (method %s) records no policies in %s: only methods that draw or learn policies (adversarial, random, transfer) have some to export" run.Path method RunFolder.PoliciesFile))
    let chosen, windows =
        match epoch with
        | None -> List.last withPolicies
        | Some e ->
            match withPolicies |> List.tryFind (fun (at, _) -> at = e) with
            | Some found -> found
            | None -> raise (RunFolderException(sprintf "%s has no epoch %d: its policies cover epochs %d..%d" run.Path e (fst withPolicies.Head) (fst (List.last withPolicies))))
    let w = defaultArg window windows.Count
    if w < 1 || w > windows.Count then
        raise (RunFolderException(sprintf "--window %d: epoch %d of %s has %d window(s): expected 1..%d" w chosen run.Path windows.Count windows.Count))
    let source = if windows.Count = 1 then sprintf "%s, epoch %d" run.Path chosen else sprintf "%s, epoch %d, window %d of %d" run.Path chosen w windows.Count
    PolicyDocument(windows[w - 1], true, source)

let private export (args: ParseResults<ExportArgs>) =
    let out = Path.GetFullPath(args.GetResult Out)
    if File.Exists out || Directory.Exists out then
        fail (sprintf "%s already exists: choose another --out (an export never overwrites a file)" out)
    else
        let document = exportable (args.GetResult Run) (args.TryGetResult Epoch) (args.TryGetResult Window)
        AtomicFile.Write(out, PolicyJson.Serialize document)
        printfn "wrote %s: %s" out (document.Describe())
        printfn "train with it: advaa train --policy %s  (the ops are the run's; use the same search space)" out
        ExitCode.ok

let run (args: ParseResults<PolicyArgs>) =
    match args.GetSubCommand() with
    | Export a -> export a
