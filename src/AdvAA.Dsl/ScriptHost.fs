namespace AdvAA.Dsl

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Reflection
open System.Threading
open FSharp.Compiler.Diagnostics
open FSharp.Compiler.Interactive.Shell

/// How serious a script problem is.
[<RequireQualifiedAccess>]
type ScriptSeverity =
    | Error
    | Warning
    | Info

/// A problem with a script: a compiler diagnostic, an exception its code threw, or a problem
/// reading the script or the value it should define.
type ScriptError =
    {
        /// The script as the caller named it, or the file a diagnostic is about (e.g. a #load-ed one).
        File: string
        /// 1-based; 0 when no source position is known.
        Line: int
        /// 1-based; 0 when no source position is known.
        Column: int
        Severity: ScriptSeverity
        /// The compiler's code, e.g. "FS0001"; None for problems that are not compiler diagnostics.
        Code: string option
        Message: string
    }

/// Printing script problems.
module ScriptError =
    /// `file:line:column: error FS0001: message`; the position and the code are left out when unknown.
    let format (e: ScriptError) =
        let where = if e.Line > 0 then sprintf "%s:%d:%d" e.File e.Line e.Column else e.File
        let severity =
            match e.Severity with
            | ScriptSeverity.Error -> "error"
            | ScriptSeverity.Warning -> "warning"
            | ScriptSeverity.Info -> "info"
        let code = e.Code |> Option.map ((+) " ") |> Option.defaultValue ""
        sprintf "%s: %s%s: %s" where severity code e.Message

/// Whether code runs inside the script host. Kept apart from the host's functions, and free of
/// compiler types, so that a script run by plain `dotnet fsi` can read it without loading the
/// compiler service.
[<Sealed>]
type ScriptHost private () =
    // Async-local rather than thread-static: tasks a script starts still see that it is hosted.
    static let hosting = AsyncLocal<bool>()

    /// True while `ScriptHost.evaluate` runs a script (so a script's final "run it" call can do
    /// nothing and let the host run the value it reads back); false under `dotnet fsi` and elsewhere.
    static member IsHosted = hosting.Value

    static member internal Hosting = hosting

/// A script whose top-level code has run in the script host. Its values can be read with
/// `ScriptHost.value` until it is disposed (values already read stay valid).
[<Sealed>]
type EvaluatedScript internal (path: string, session: FsiEvaluationSession, warnings: ScriptError list) =
    /// The script as the caller named it.
    member _.Path = path
    /// The compiler's warnings and notes about the script.
    member _.Warnings = warnings
    member internal _.Session = session

    interface IDisposable with
        member _.Dispose() = (session :> IDisposable).Dispose()

/// Compiles and runs an F# script in this process (FSharp.Compiler.Service) and reads back a value
/// it defines, bound to the AdvAA assemblies this process has loaded.
[<RequireQualifiedAccess>]
module ScriptHost =
    /// Defined while the host compiles a script: `#if !ADVAA_HOST` guards the `#r`s that a script
    /// needs only under `dotnet fsi`.
    [<Literal>]
    let Define = "ADVAA_HOST"

    /// The assemblies a script is compiled against: by the path they were loaded from, so the
    /// script binds to these very assemblies and not to copies elsewhere.
    let private references () =
        [ typeof<AdvAA.Core.Backend.TorchBackend>.Assembly
          typeof<Schedule>.Assembly
          typeof<TorchSharp.torch>.Assembly
          typeof<unit>.Assembly
          typeof<FsiEvaluationSession>.Assembly ] // for the `fsi` object, see `evaluateScript`
        |> List.map (fun a -> "-r:" + a.Location)

    let private problem (file: string) (message: string) =
        { File = file
          Line = 0
          Column = 0
          Severity = ScriptSeverity.Error
          Code = None
          Message = message }

    let private ofDiagnostic (shownPath: string) (fullPath: string) (d: FSharpDiagnostic) =
        let severity =
            match d.Severity with
            | FSharpDiagnosticSeverity.Error -> Some ScriptSeverity.Error
            | FSharpDiagnosticSeverity.Warning -> Some ScriptSeverity.Warning
            | FSharpDiagnosticSeverity.Info -> Some ScriptSeverity.Info
            | FSharpDiagnosticSeverity.Hidden -> None
        let positioned = d.StartLine > 0
        severity
        |> Option.map (fun severity ->
            { File = (if d.FileName = fullPath then shownPath else d.FileName)
              Line = (if positioned then d.StartLine else 0)
              Column = (if positioned then d.StartColumn + 1 else 0) // FCS columns are 0-based
              Severity = severity
              Code = Some d.ErrorNumberText
              Message = d.Message.TrimEnd() })

    /// The exceptions from the outermost to the one first thrown.
    let rec private chain (e: exn | null) =
        match e with
        | null -> []
        | e -> e :: chain e.InnerException

    /// The exception the script's code threw, without the reflection wrappers around it.
    let rec private cause (e: exn) =
        match e, e.InnerException with
        | (:? TargetInvocationException | :? TypeInitializationException), NonNull inner -> cause inner
        | :? AggregateException as a, _ when a.InnerExceptions.Count = 1 -> cause a.InnerExceptions[0]
        | _ -> e

    /// The innermost stack frame that lies in the script's own code (an assembly the session
    /// compiled), searching from the first-thrown exception outwards.
    let private scriptFrame (compiled: HashSet<Assembly>) (e: exn) =
        let inScript (f: StackFrame) =
            // 0xFEEFEE marks compiler-generated code with no source line.
            f.GetFileLineNumber() > 0 && f.GetFileLineNumber() <> 0xFEEFEE
            && (match f.GetMethod() with
                | null -> false
                | m -> compiled.Contains m.Module.Assembly)
        chain e
        |> List.rev
        |> List.tryPick (fun x -> StackTrace(x, true).GetFrames() |> Array.tryFind inScript)

    /// Plain messages for failwith and AdvAA's own exceptions; other exceptions keep their type.
    let private exceptionMessage (e: exn) =
        let t = e.GetType()
        let own =
            match t.Namespace with
            | null -> false
            | ns -> ns.StartsWith("AdvAA", StringComparison.Ordinal)
        if t = typeof<Exception> || own then e.Message else sprintf "%s: %s" t.Name e.Message

    let rec private typeName (t: Type) =
        if t.IsGenericType then
            let name = t.Name.Substring(0, t.Name.IndexOf '`')
            let ns =
                match t.Namespace with
                | null -> ""
                | ns -> ns + "."
            sprintf "%s%s<%s>" ns name (t.GetGenericArguments() |> Array.map typeName |> String.concat ", ")
        else
            match t.FullName with
            | null -> t.Name
            | name -> name

    /// Compiles and runs the script at `path` with ADVAA_HOST defined and ScriptHost.IsHosted true
    /// while it runs; `fsi.CommandLineArgs` is the script followed by `arguments`, as under
    /// `dotnet fsi script.fsx arguments...`. Problems name the script, line and column; an exception
    /// the script throws is reported at the script line that led to it, with its message and no
    /// .NET stack trace.
    let evaluateScriptWith (arguments: string list) (path: string) : Result<EvaluatedScript, ScriptError list> =
        let fullPath = Path.GetFullPath path
        let text =
            try
                if File.Exists fullPath then Ok(File.ReadAllText fullPath)
                else Error [ problem path "the script file does not exist" ]
            with :? IOException | :? UnauthorizedAccessException as e ->
                Error [ problem path (sprintf "the script cannot be read: %s" e.Message) ]
        let args =
            [| "fsi.exe"
               "--noninteractive"
               "--nologo"
               "--gui-"
               // Each interaction becomes an assembly with a PDB: stack traces carry script lines.
               "--multiemit+"
               "--define:" + Define
               yield! references () |]
        let evaluateIn (session: FsiEvaluationSession) (text: string) =
            // `dotnet fsi` gives scripts an `fsi` object (fsi.CommandLineArgs, fsi.AddPrinter) from an
            // SDK library that FCS does not ship; bind FCS's own settings object to that name, so
            // such scripts compile here too. Its arguments are the script and then its own, as under `dotnet fsi`.
            Settings.fsi.CommandLineArgs <- Array.ofList (fullPath :: arguments)
            match session.EvalInteractionNonThrowing("let fsi = FSharp.Compiler.Interactive.Shell.Settings.fsi") with
            | Choice2Of2 e, _ -> failwithf "the script host could not define the fsi object: %s" e.Message
            | Choice1Of2 _, _ -> ()
            let wasHosted = ScriptHost.Hosting.Value
            ScriptHost.Hosting.Value <- true
            let result, diagnostics =
                try session.EvalInteractionNonThrowing(text, fullPath)
                finally ScriptHost.Hosting.Value <- wasHosted
            let reported = diagnostics |> Array.choose (ofDiagnostic path fullPath) |> List.ofArray
            match result with
            | _ when reported |> List.exists (fun d -> d.Severity = ScriptSeverity.Error) -> Error reported
            | Choice2Of2 thrown ->
                let e = cause thrown
                let thrownAt =
                    match scriptFrame (HashSet<Assembly>(session.DynamicAssemblies)) thrown with
                    | Some frame ->
                        let file =
                            match frame.GetFileName() with
                            | null -> path
                            | file when file = fullPath -> path
                            | file -> file
                        { problem file (exceptionMessage e) with
                            Line = frame.GetFileLineNumber()
                            Column = max 1 (frame.GetFileColumnNumber()) }
                    | None -> problem path (exceptionMessage e)
                Error(reported @ [ thrownAt ])
            | Choice1Of2 _ -> Ok reported
        text
        |> Result.bind (fun text ->
            // FSI echoes every binding ("val x: int = 1") and its own error notes: none of that is wanted.
            let session =
                FsiEvaluationSession.Create(FsiEvaluationSession.GetDefaultConfiguration(), args, new StringReader(""), TextWriter.Null, TextWriter.Null, collectible = false)
            try
                match evaluateIn session text with
                | Ok warnings -> Ok(new EvaluatedScript(path, session, warnings))
                | Error problems ->
                    (session :> IDisposable).Dispose()
                    Error problems
            with _ ->
                (session :> IDisposable).Dispose()
                reraise ())

    /// `evaluateScriptWith` without arguments: `fsi.CommandLineArgs` is the script alone.
    let evaluateScript (path: string) : Result<EvaluatedScript, ScriptError list> = evaluateScriptWith [] path

    /// Whether the evaluated script defines a top-level value `valueName` (of any type).
    let defines (script: EvaluatedScript) (valueName: string) : bool =
        (script.Session.TryFindBoundValue valueName).IsSome

    /// The evaluated script's top-level value `valueName` as a 'T.
    let value<'T> (script: EvaluatedScript) (valueName: string) : Result<'T, ScriptError list> =
        match script.Session.TryFindBoundValue valueName with
        | None -> Error [ problem script.Path (sprintf "the script defines no top-level value '%s' (expected: let %s = ...)" valueName valueName) ]
        | Some bound when typeof<'T>.IsAssignableFrom bound.Value.ReflectionType -> Ok(bound.Value.ReflectionValue :?> 'T)
        | Some bound ->
            Error [ problem script.Path (sprintf "the script's value '%s' is a %s, but a %s was expected" valueName (typeName bound.Value.ReflectionType) (typeName typeof<'T>)) ]

    /// Evaluates the script at `path` and returns its top-level value `valueName` as a 'T
    /// (`evaluateScript`, then `value`); compiler warnings are dropped.
    let evaluate<'T> (path: string) (valueName: string) : Result<'T, ScriptError list> =
        evaluateScript path
        |> Result.bind (fun script ->
            use script = script
            value<'T> script valueName)
