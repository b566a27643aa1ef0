/// `advaa policy export RUN [--epoch E] --out FILE`: a run's learned policies of one epoch as a
/// policy file that `--policy` (and `Method.policy (Policy.ofFile ...)`) reads.
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
    | [<Unique; Mandatory>] Out of file: string
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Run _ -> "the run folder."
            | Epoch _ -> "the epoch whose policies to export (default: the last one)."
            | Out _ -> "the policy file to write (must not exist)."

type PolicyArgs =
    | [<CliPrefix(CliPrefix.None)>] Export of ParseResults<ExportArgs>
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Export _ -> "write a run's learned policies of one epoch as a policy file (one policy per instance)."

/// The policies of `epoch` (default: the last with policies) of the run in `folder`, as a document.
let exportable (folder: string) (epoch: int option) : PolicyDocument =
    let run = RunFolder.Open folder
    let config = run.ReadConfig()
    let records = run.ReadPolicies()
    let method = config.Experiment.Method.Name
    let withPolicies = records |> Seq.choose (fun r -> match r.Policies with null -> None | p -> Some(r.Epoch, p)) |> List.ofSeq
    if withPolicies.IsEmpty then
        raise (RunFolderException(sprintf "%s (method %s) records no policies in %s: only methods that draw or learn policies (adversarial, random, transfer) have some to export" run.Path method RunFolder.PoliciesFile))
    let chosen, policies =
        match epoch with
        | None -> List.last withPolicies
        | Some e ->
            match withPolicies |> List.tryFind (fun (at, _) -> at = e) with
            | Some found -> found
            | None -> raise (RunFolderException(sprintf "%s has no epoch %d: its policies cover epochs %d..%d" run.Path e (fst withPolicies.Head) (fst (List.last withPolicies))))
    PolicyDocument(policies, true, sprintf "%s, epoch %d" run.Path chosen)

let private export (args: ParseResults<ExportArgs>) =
    let out = Path.GetFullPath(args.GetResult Out)
    if File.Exists out || Directory.Exists out then
        fail (sprintf "%s already exists: choose another --out (an export never overwrites a file)" out)
    else
        let document = exportable (args.GetResult Run) (args.TryGetResult Epoch)
        AtomicFile.Write(out, PolicyJson.Serialize document)
        printfn "wrote %s: %s" out (document.Describe())
        printfn "train with it: advaa train --policy %s  (the ops are the run's; use the same search space)" out
        ExitCode.ok

let run (args: ParseResults<PolicyArgs>) =
    match args.GetSubCommand() with
    | Export a -> export a
