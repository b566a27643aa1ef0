module AdvAA.Tests.Main

open System
open Expecto
open Expecto.Impl

/// Drops ANSI escape sequences (ESC '[' parameters, then a final letter) from what passes through:
/// Expecto resets colours after each line even with colours off.
type private PlainWriter(inner: IO.TextWriter) =
    inherit IO.TextWriter()
    let mutable state = 0 // 0 text, 1 after ESC, 2 inside the sequence
    override _.Encoding = inner.Encoding
    override _.Write(c: char) =
        match state, c with
        | 0, '\u001b' -> state <- 1
        | 0, c -> inner.Write c
        | 1, '[' -> state <- 2
        | 1, _ -> state <- 0
        | _, c when Char.IsAsciiLetter c || c = '~' -> state <- 0
        | _ -> ()
    override _.Flush() = inner.Flush()

/// getrusage(2): the resource use of this process's finished children (RUSAGE_CHILDREN = -1).
[<Runtime.InteropServices.DllImport("libc", SetLastError = true)>]
extern int getrusage(int who, byte[] usage)

/// `--peak-rss PROGRAM ARGS...`: runs the program, passing its output and exit code through, and
/// prints `peak-rss-kb N` (its peak resident memory) as the last line on stderr. A process of its
/// own, so that the peak is that one child's (getrusage reports the largest child waited for).
let private peakRss (command: string array) =
    let info = Diagnostics.ProcessStartInfo(command[0], command[1..])
    info.UseShellExecute <- false
    use child = Diagnostics.Process.Start info
    child.WaitForExit()
    // struct rusage on 64-bit Linux: two struct timevals (16 bytes each), then ru_maxrss (long, KiB).
    let usage = Array.zeroCreate<byte> 256
    if getrusage (-1, usage) <> 0 then failwith "getrusage failed"
    eprintfn "peak-rss-kb %d" (BitConverter.ToInt64(usage, 32))
    child.ExitCode

/// Runs the tests in this assembly; ends with the plain line CI reads: `N passed, N failed, N skipped`.
let private runTests (argv: string array) =
    // Expecto's own summary is coloured and padded; CI reads one plain line, so capture the counts.
    let mutable summary: TestRunSummary option = None
    let printer =
        { TestPrinters.defaultPrinter with
            // a skipped test says why, visibly (Expecto logs it only at debug level)
            ignored = fun name reason -> async { printfn "skipped: %s: %s" name reason }
            summary = fun config s -> async {
                do! TestPrinters.defaultPrinter.summary config s
                summary <- Some s } }
    // In a CI log or a file, plain text: no colours, no spinner (both write escape sequences).
    let plain =
        if Console.IsOutputRedirected then
            Console.SetOut(new PlainWriter(Console.Out))
            [ CLIArguments.Colours 0; CLIArguments.No_Spinner ]
        else []
    let result =
        runTestsInAssemblyWithCLIArgs (CLIArguments.Printer printer :: plain) argv
    match summary with
    | Some s ->
        let stdout = Console.OpenStandardOutput()
        let line = sprintf "\n%d passed, %d failed, %d skipped\n" s.passed.Length (s.failed.Length + s.errored.Length) s.ignored.Length
        let bytes = Text.Encoding.UTF8.GetBytes line
        Console.Out.Flush()
        stdout.Write(bytes, 0, bytes.Length)
        stdout.Flush()
    | None -> ()
    result

[<EntryPoint>]
let main argv =
    if argv.Length > 1 && argv[0] = "--peak-rss" then peakRss argv[1..] else runTests argv
