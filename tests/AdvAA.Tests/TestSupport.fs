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

/// A run folder's metrics.jsonl lines without the timing fields (what two equal runs share).
let metricsWithoutTiming (folder: string) =
    [ for m in AdvAA.Core.Training.RunFolder.Open(folder).ReadMetrics() ->
        let json = m.ToJson()
        for f in AdvAA.Core.Training.EpochMetrics.TimingFields do json.Remove f |> ignore
        json.ToJsonString() ]

/// The repository checkout these tests were built from.
let repoRoot = Path.GetFullPath(Path.Combine(__SOURCE_DIRECTORY__, "..", ".."))

/// Runs a program to completion (killed after `timeoutSeconds`); returns exit code, stdout, stderr.
let runProcess (workingDirectory: string) (timeoutSeconds: int) (program: string) (args: string list) =
    let info = Diagnostics.ProcessStartInfo(program, args)
    info.WorkingDirectory <- workingDirectory
    info.RedirectStandardOutput <- true
    info.RedirectStandardError <- true
    info.UseShellExecute <- false
    use p = Diagnostics.Process.Start info
    let stdout = p.StandardOutput.ReadToEndAsync()
    let stderr = p.StandardError.ReadToEndAsync()
    if not (p.WaitForExit(timeoutSeconds * 1000)) then
        p.Kill true
        failtestf "%s %s did not finish in %d s" program (String.concat " " args) timeoutSeconds
    p.ExitCode, stdout.Result, stderr.Result

/// The Release build of the CLI that scripts run by `dotnet fsi` reference (`#I` in their prelude),
/// brought up to date once per test run: an incremental build is quick when nothing changed, and
/// a stale or missing folder would test old assemblies or nothing.
let releaseCli =
    lazy
        (let code, out, err =
            runProcess repoRoot 900 "dotnet" [ "build"; "-c"; "Release"; "-nologo"; "-v"; "q"; "-nodeReuse:false"; "src/AdvAA.Cli" ]
         if code <> 0 then failtestf "dotnet build -c Release src/AdvAA.Cli failed (%d):\n%s%s" code out err
         Path.Combine(repoRoot, "src", "AdvAA.Cli", "bin", "Release", "net10.0"))
