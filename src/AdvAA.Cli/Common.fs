/// What every command shares: device flags, error reporting, the console.
module AdvAA.Cli.Common

open System
open AdvAA.Core.Backend
open AdvAA.Dsl

/// The device request from a --device flag, else ADVAA_DEVICE, else auto.
let deviceRequest (flag: string option) =
    match flag with
    | Some t -> TorchBackend.ParseDevice t
    | None -> TorchBackend.RequestFromEnvironment()

/// Prints an error the way every command does: `advaa: message` on stderr.
let fail (message: string) =
    eprintfn "advaa: %s" message
    ExitCode.failed

/// A session of runs started by `advaa <command>` with these arguments (without --out and
/// --resume); `report`: write each finished run's report.
let session (command: string) (arguments: string list) (report: bool) =
    { Display = Display.Console
      Cancel = Threading.CancellationToken.None
      Program = [ "advaa"; command ]
      Arguments = arguments
      Report = report
      Ranks = None }

/// The informational version of the assembly that defines `t`.
let versionOf (t: Type) =
    let a = t.Assembly
    match a.GetCustomAttributes(typeof<Reflection.AssemblyInformationalVersionAttribute>, false) with
    | [| :? Reflection.AssemblyInformationalVersionAttribute as v |] -> v.InformationalVersion.Split('+').[0]
    | _ -> string (a.GetName().Version)
