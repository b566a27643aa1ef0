/// What every command shares: device flags, exit codes, error reporting.
module AdvAA.Cli.Common

open System
open AdvAA.Core.Backend

/// Exit codes (documented in the README).
module ExitCode =
    let ok = 0
    /// Bad input: a data file, a checkpoint, a value out of range, a device that is not there.
    let failed = 1
    /// The command line itself is wrong (Argu usage error).
    let usage = 2
    /// A script did not compile or its experiment did not validate.
    let script = 3

/// The device request from a --device flag, else ADVAA_DEVICE, else auto.
let deviceRequest (flag: string option) =
    match flag with
    | Some t -> TorchBackend.ParseDevice t
    | None -> TorchBackend.RequestFromEnvironment()

/// Prints an error the way every command does: `advaa: message` on stderr.
let fail (message: string) =
    eprintfn "advaa: %s" message
    ExitCode.failed

/// The informational version of the assembly that defines `t`.
let versionOf (t: Type) =
    let a = t.Assembly
    match a.GetCustomAttributes(typeof<Reflection.AssemblyInformationalVersionAttribute>, false) with
    | [| :? Reflection.AssemblyInformationalVersionAttribute as v |] -> v.InformationalVersion.Split('+').[0]
    | _ -> string (a.GetName().Version)
