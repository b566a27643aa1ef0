/// Helpers shared by the test files: temporary folders, optional real data, message checks.
module AdvAA.Tests.TestSupport

open System
open System.IO
open Expecto

/// A fresh temporary folder, deleted when disposed.
type TempDir() =
    let path = Path.Combine(Path.GetTempPath(), "advaa-test-" + Guid.NewGuid().ToString("N"))
    do Directory.CreateDirectory path |> ignore
    member _.Path = path
    member _.File(name: string) = Path.Combine(path, name)
    interface IDisposable with
        member _.Dispose() = try Directory.Delete(path, true) with _ -> ()

/// The folder an environment variable names, or None (the test is then skipped with a message).
let envFolder (name: string) =
    match Environment.GetEnvironmentVariable name with
    | null | "" -> None
    | p when Directory.Exists p -> Some p
    | p -> failwithf "%s=%s does not exist" name p

/// Runs `f`, expects an exception of type 'E, and returns its message.
let throwsMessage<'E when 'E :> exn> (f: unit -> unit) : string =
    try
        f ()
        failtestf "expected %s, but nothing was thrown" typeof<'E>.Name
    with
    | :? 'E as e -> e.Message
    | :? AssertException -> reraise ()
    | e -> failtestf "expected %s, got %s: %s" typeof<'E>.Name (e.GetType().Name) e.Message

/// Asserts that `text` contains every part.
let containsAll (text: string) (parts: string list) =
    for p in parts do
        Expect.stringContains text p (sprintf "message should name '%s'" p)
