namespace AdvAA.Dsl

open System
open System.Collections.Generic
open System.Diagnostics
open System.IO
open System.Reflection
open System.Runtime.CompilerServices
open System.Runtime.Loader
open System.Security.Cryptography
open System.Text.Json.Nodes
open System.Text.RegularExpressions
open System.Threading
open FSharp.Compiler.Diagnostics

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

/// What a hosted script sees as `fsi`: its command-line arguments (the script, then its own), as
/// `fsi.CommandLineArgs` is under `dotnet fsi`.
[<Sealed>]
type ScriptSettings internal () =
    member val CommandLineArgs: string array = [||] with get, set

/// Whether code runs inside the script host. Kept apart from the host's functions, and free of
/// compiler types, so that a script run by plain `dotnet fsi` can read it without loading the
/// compiler service.
[<Sealed>]
type ScriptHost private () =
    // Async-local rather than thread-static: tasks a script starts still see that it is hosted.
    static let hosting = AsyncLocal<bool>()
    static let settings = ScriptSettings()

    /// True while `ScriptHost.evaluate` runs a script (so a script's final "run it" call can do
    /// nothing and let the host run the value it reads back); false under `dotnet fsi` and elsewhere.
    static member IsHosted = hosting.Value

    /// The `fsi` object of hosted scripts.
    static member Fsi = settings

    static member internal Hosting = hosting

/// A script whose top-level code has run in the script host (compiled to an assembly of its own,
/// loaded in a context of its own, so each evaluation runs the script afresh). Its values are
/// read with `ScriptHost.value`.
[<Sealed>]
type EvaluatedScript internal (path: string, scriptModule: Type option, warnings: ScriptError list, cached: bool) =
    /// The script as the caller named it.
    member _.Path = path
    /// The compiler's warnings and notes about the script.
    member _.Warnings = warnings
    /// Whether the compiled script came from the cache (the script and every file it loads unchanged).
    member _.FromCache = cached
    member internal _.Module = scriptModule

    interface IDisposable with
        // The values read stay valid: the script's assembly stays loaded.
        member _.Dispose() = ()

/// Compiles and runs an F# script in this process (FSharp.Compiler.Service) and reads back a value
/// it defines, bound to the AdvAA assemblies this process has loaded. Compiled scripts are cached
/// by content (see `cacheFolder`).
[<RequireQualifiedAccess>]
module ScriptHost =
    /// Defined while the host compiles a script: `#if !ADVAA_HOST` guards the `#r`s that a script
    /// needs only under `dotnet fsi`.
    [<Literal>]
    let Define = "ADVAA_HOST"

    /// Where compiled scripts are kept: $ADVAA_SCRIPT_CACHE, else $XDG_CACHE_HOME/advaa/scripts,
    /// else ~/.cache/advaa/scripts.
    let cacheFolder () =
        match Environment.GetEnvironmentVariable "ADVAA_SCRIPT_CACHE", Environment.GetEnvironmentVariable "XDG_CACHE_HOME" with
        | NonNull folder, _ when folder <> "" -> Path.GetFullPath folder
        | _, NonNull xdg when xdg <> "" -> Path.Combine(xdg, "advaa", "scripts")
        | _ -> Path.Combine(Environment.GetFolderPath Environment.SpecialFolder.UserProfile, ".cache", "advaa", "scripts")

    /// The assemblies a script is compiled against: by the path they were loaded from, so the
    /// script binds to these very assemblies and not to copies elsewhere; then the runtime's own.
    let private references () =
        let own =
            [ typeof<AdvAA.Core.Backend.TorchBackend>.Assembly
              typeof<Schedule>.Assembly
              typeof<TorchSharp.torch>.Assembly
              typeof<unit>.Assembly ]
            |> List.map (fun a -> a.Location)
        let names = own |> List.map Path.GetFileName |> Set.ofList
        let runtime =
            Directory.GetFiles(Path.GetDirectoryName(typeof<obj>.Assembly.Location) |> nonNull, "*.dll")
            |> Array.filter (fun f -> not (names.Contains(Path.GetFileName f)))
            |> Array.sort
            |> List.ofArray
        own @ runtime |> List.map (fun r -> "-r:" + r)

    /// The identity of what compiles a script: the versions of AdvAA, TorchSharp, FSharp.Core and the compiler.
    let private toolchain =
        lazy
            ([ typeof<AdvAA.Core.Backend.TorchBackend>.Assembly
               typeof<Schedule>.Assembly
               typeof<TorchSharp.torch>.Assembly
               typeof<unit>.Assembly
               typeof<FSharp.Compiler.CodeAnalysis.FSharpChecker>.Assembly ]
             |> List.map (fun a -> a.ManifestModule.ModuleVersionId.ToString())
             |> String.concat " ")

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

    /// The innermost stack frame that lies in the script's own code (its compiled assembly),
    /// searching from the first-thrown exception outwards.
    let private scriptFrame (compiled: Assembly) (e: exn) =
        let inScript (f: StackFrame) =
            // 0xFEEFEE marks compiler-generated code with no source line.
            f.GetFileLineNumber() > 0 && f.GetFileLineNumber() <> 0xFEEFEE
            && (match f.GetMethod() with
                | null -> false
                | m -> m.Module.Assembly = compiled)
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

    /// The files a script `#load`s, transitively, by full path (the script first); read from the
    /// text, so a `#load` inside an `#if` counts too (a harmless extra key for the cache).
    let private sources (fullPath: string) : string list =
        let directive = Regex(@"^\s*#load\s+(.*)$", RegexOptions.Multiline)
        let quoted = Regex("@?\"([^\"]+)\"")
        let rec walk (seen: string list) (file: string) =
            if List.contains file seen then seen
            else
                let seen = seen @ [ file ]
                let text = try File.ReadAllText file with :? IOException | :? UnauthorizedAccessException -> ""
                let dir = Path.GetDirectoryName file |> nonNull
                [ for m in directive.Matches text do
                      for q in quoted.Matches m.Groups[1].Value -> Path.GetFullPath(Path.Combine(dir, q.Groups[1].Value)) ]
                |> List.fold walk seen
        walk [] fullPath

    /// The packages a hosted script gets from this process: AdvAA's own and TorchSharp.
    let private providedPackages = [ "AdvAA-cpu"; "AdvAA.Dsl"; "AdvAA.Core"; "TorchSharp"; "TorchSharp-cpu" ]

    /// AdvAA's package version (Directory.Build.props, with a pre-release suffix where packed with one),
    /// which a script's `#r "nuget: AdvAA…, VERSION"` must admit.
    let version =
        match typeof<Schedule>.Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>() with
        | NonNull a -> a.InformationalVersion.Split('+')[0]
        | Null -> string (typeof<Schedule>.Assembly.GetName().Version)

    /// Whether a `#r "nuget"` version (exact, "0.1.*", "*", a minimum "0.1.0", or a range "[0.1.0, 0.2.0)") admits `version`.
    let private admits (wanted: string) =
        let wanted = wanted.Trim()
        let parse (v: string) : Version option = match Version.TryParse(v.Trim()) with | true, NonNull v -> Some v | _ -> None
        // Ranges compare the numeric part; a pre-release of it counts as that version.
        let own = Version.Parse(version.Split('-')[0])
        if wanted = "" || wanted = "*" || String.Equals(wanted, version, StringComparison.OrdinalIgnoreCase) then true
        elif wanted.EndsWith "*" then version.StartsWith(wanted.TrimEnd '*')
        elif wanted.StartsWith "[" || wanted.StartsWith "(" then
            match wanted.Trim('[', ']', '(', ')').Split ',' with
            | [| low; high |] ->
                let above = match parse low with Some v -> (if wanted.StartsWith "[" then own >= v else own > v) | None -> low.Trim() = ""
                let below = match parse high with Some v -> (if wanted.EndsWith "]" then own <= v else own < v) | None -> high.Trim() = ""
                above && below
            | [| exact |] -> parse exact = Some own
            | _ -> false
        else
            // A bare version is NuGet's minimum version.
            match parse wanted with
            | Some v -> own >= v
            | None -> false

    /// `#r "nuget: …"` and `#i "nuget: …"` in a hosted script: AdvAA's packages (and TorchSharp) are this
    /// process's own assemblies, so such a reference is checked against this version and then blanked
    /// (every other line stays where it was); a package the host cannot provide is an error naming it.
    /// Lines inside `#if !ADVAA_HOST` are left to `dotnet fsi`. Returns the rewritten text of each source that had one.
    let private nugetReferences (files: string list) : Result<(string * string) list, ScriptError list> =
        let directive = Regex("""^\s*#(r|i)\s+@?"nuget:\s*([^"]*)"\s*$""")
        let conditional = Regex(@"^\s*#(if|else|endif)\b\s*(.*)$")
        let results =
            [ for file in files do
                  let lines = try File.ReadAllLines file with :? IOException | :? UnauthorizedAccessException -> [||]
                  // Each enclosing #if block: active under the host (ADVAA_HOST defined, no other symbol), or None where the condition is not one symbol.
                  let active = Stack<bool option>()
                  let evaluate (condition: string) =
                      let symbol = Regex(@"^(!?)\s*\(?\s*([A-Za-z_][A-Za-z0-9_]*)\s*\)?$").Match(condition.Trim())
                      if symbol.Success then Some((symbol.Groups[2].Value = Define) <> (symbol.Groups[1].Value = "!")) else None
                  let mutable changed = false
                  let errors = ResizeArray<ScriptError>()
                  let rewritten =
                      [| for i, line in Array.indexed lines do
                             let m = conditional.Match line
                             if m.Success then
                                 match m.Groups[1].Value with
                                 | "if" -> active.Push(evaluate m.Groups[2].Value)
                                 | "else" -> if active.Count > 0 then active.Push(active.Pop() |> Option.map not)
                                 | _ -> if active.Count > 0 then active.Pop() |> ignore
                                 yield line
                             else
                                 let d = directive.Match line
                                 if not d.Success || active.Contains(Some false) then yield line
                                 else
                                     let at message =
                                         { File = file; Line = i + 1; Column = line.IndexOf '#' + 1; Severity = ScriptSeverity.Error; Code = None; Message = message }
                                     if d.Groups[1].Value = "r" then
                                         let name, wanted =
                                             match d.Groups[2].Value.Split(',', 2) with
                                             | [| name; wanted |] -> name.Trim(), wanted.Trim()
                                             | parts -> parts[0].Trim(), ""
                                         match providedPackages |> List.tryFind (fun p -> String.Equals(p, name, StringComparison.OrdinalIgnoreCase)) with
                                         | None ->
                                             errors.Add(
                                                 at (sprintf "#r \"nuget: %s\": advaa run provides only %s to a script (as this process's own assemblies); run a script that needs other NuGet packages with dotnet fsi, or put the reference inside #if !%s"
                                                         name (String.concat ", " providedPackages) Define))
                                         | Some p when p.StartsWith "AdvAA" && not (admits wanted) ->
                                             errors.Add(
                                                 at (sprintf "#r \"nuget: %s, %s\": this advaa is version %s; install the version the script asks for (dotnet tool update --global advaa --version <version>) or change the reference"
                                                         name wanted version))
                                         | Some _ -> ()
                                     changed <- true
                                     yield "" |]
                  if errors.Count > 0 then Error(List.ofSeq errors)
                  elif changed then Ok(Some(file, String.concat "\n" rewritten))
                  else Ok None ]
        match results |> List.collect (function Error e -> e | Ok _ -> []) with
        | [] -> Ok(results |> List.choose (function Ok r -> r | Error _ -> None))
        | errors -> Error errors

    /// FCS reads sources through its file system: this one serves the blanked text of scripts with `#r "nuget"` lines.
    type private RewrittenSources(texts: IReadOnlyDictionary<string, string>) =
        inherit FSharp.Compiler.IO.DefaultFileSystem()

        override _.OpenFileForReadShim(filePath: string, ?useMemoryMappedFile: bool, ?shouldShadowCopy: bool) =
            match texts.TryGetValue(Path.GetFullPath filePath) with
            | true, text -> new MemoryStream(Text.Encoding.UTF8.GetBytes text) :> Stream
            | _ -> base.OpenFileForReadShim(filePath, ?useMemoryMappedFile = useMemoryMappedFile, ?shouldShadowCopy = shouldShadowCopy)

    /// The cache key: the toolchain, then each source's path and content hash.
    let private cacheKey (files: string list) =
        let hash (bytes: byte array) = Convert.ToHexString(SHA256.HashData bytes).ToLowerInvariant()
        let content (file: string) = try hash (File.ReadAllBytes file) with :? IOException | :? UnauthorizedAccessException -> "missing"
        let lines = "advaa-script 1" :: toolchain.Value :: [ for f in files -> f + " " + content f ]
        (hash (Text.Encoding.UTF8.GetBytes(String.concat "\n" lines)))[..31]

    // The prelude of every hosted script: `fsi`, as `dotnet fsi` gives scripts one.
    let private prelude = "[<AutoOpen>]\nmodule AdvAAScriptPrelude\nlet fsi = AdvAA.Dsl.ScriptHost.Fsi\n"

    let private checker = lazy (FSharp.Compiler.CodeAnalysis.FSharpChecker.Create())
    let private compileGate = obj ()

    let private warningsFile = "warnings.json"
    let private assemblyFile = "script.dll"

    let private writeWarnings (file: string) (warnings: ScriptError list) =
        let array = JsonArray()
        for w in warnings do
            let o = JsonObject()
            o["file"] <- JsonValue.Create w.File
            o["line"] <- JsonValue.Create w.Line
            o["column"] <- JsonValue.Create w.Column
            o["severity"] <- JsonValue.Create(string w.Severity)
            o["code"] <- (match w.Code with Some c -> JsonValue.Create c | None -> null)
            o["message"] <- JsonValue.Create w.Message
            array.Add o
        File.WriteAllText(file, array.ToJsonString())

    let private readWarnings (file: string) : ScriptError list =
        let text (n: JsonNode | null) = match n with null -> None | n -> Some(n.GetValue<string>())
        [ for n in (JsonNode.Parse(File.ReadAllText file) |> nonNull).AsArray() do
              let o = (nonNull n).AsObject()
              { File = text o["file"] |> Option.defaultValue ""
                Line = (nonNull o["line"]).GetValue<int>()
                Column = (nonNull o["column"]).GetValue<int>()
                Severity =
                  (match text o["severity"] with
                   | Some "Error" -> ScriptSeverity.Error
                   | Some "Info" -> ScriptSeverity.Info
                   | _ -> ScriptSeverity.Warning)
                Code = text o["code"]
                Message = text o["message"] |> Option.defaultValue "" } ]

    /// Compiles the script into `folder` (script.dll with its PDB embedded, warnings.json); the
    /// compiler's errors on failure.
    let private compile (path: string) (fullPath: string) (name: string) (folder: string) : Result<ScriptError list, ScriptError list> =
        Directory.CreateDirectory folder |> ignore
        let preludeFile = Path.Combine(folder, "prelude.fs")
        File.WriteAllText(preludeFile, prelude)
        let args =
            [| "fsc.exe"
               "-o:" + Path.Combine(folder, assemblyFile)
               "--target:library"
               "--nologo"
               "--noframework"
               "--optimize-"
               // Stack traces of the script's exceptions carry its lines.
               "--debug:embedded"
               "--define:" + Define
               "--nowarn:988"
               yield! references ()
               preludeFile
               fullPath |]
        let compileWith (rewritten: (string * string) list) =
            if rewritten.IsEmpty then checker.Value.Compile(args, name) |> Async.RunSynchronously
            else
                // One compilation at a time sees the rewritten sources.
                lock compileGate (fun () ->
                    let previous = FSharp.Compiler.IO.FileSystemAutoOpens.FileSystem
                    FSharp.Compiler.IO.FileSystemAutoOpens.FileSystem <- RewrittenSources(readOnlyDict rewritten)
                    try checker.Value.Compile(args, name) |> Async.RunSynchronously
                    finally FSharp.Compiler.IO.FileSystemAutoOpens.FileSystem <- previous)
        nugetReferences (sources fullPath)
        |> Result.mapError (List.map (fun e -> if e.File = fullPath then { e with File = path } else e))
        |> Result.bind (fun rewritten ->
            let diagnostics, failure = compileWith rewritten
            let reported = diagnostics |> Array.choose (ofDiagnostic path fullPath) |> List.ofArray
            match failure with
            | _ when reported |> List.exists (fun d -> d.Severity = ScriptSeverity.Error) -> Error reported
            | Some e -> Error(reported @ [ problem path (sprintf "the script did not compile: %s" e.Message) ])
            | None ->
                writeWarnings (Path.Combine(folder, warningsFile)) reported
                Ok reported)

    /// The compiled script for `fullPath` from the cache, compiling it into the cache on a miss:
    /// its assembly, warnings, whether it came from the cache, and the folder to delete once the
    /// assembly is loaded (a compilation that could not be stored in the cache: a cache folder that
    /// cannot be written falls back to a temporary folder, which does not outlive the evaluation).
    let private compiled (path: string) (fullPath: string) : Result<string * ScriptError list * bool * string option, ScriptError list> =
        let key = cacheKey (sources fullPath)
        let cache = cacheFolder ()
        let entry = Path.Combine(cache, key)
        let dll = Path.Combine(entry, assemblyFile)
        let warnings = Path.Combine(entry, warningsFile)
        let hit =
            try
                if File.Exists dll && File.Exists warnings then Some(readWarnings warnings) else None
            with _ -> None
        match hit with
        | Some w -> Ok(dll, w, true, None)
        | None ->
            let fresh (folder: string) =
                if Directory.Exists folder then Directory.Delete(folder, true)
                Directory.CreateDirectory folder |> ignore
                folder
            let folder, cacheable =
                try fresh (Path.Combine(cache, sprintf "%s.tmp-%d" key Environment.ProcessId)), true
                with :? IOException | :? UnauthorizedAccessException ->
                    fresh (Path.Combine(Path.GetTempPath(), sprintf "advaa-script-%s-%d" key Environment.ProcessId)), false
            match compile path fullPath ("advaa-script-" + key[..15]) folder with
            | Error problems ->
                (try Directory.Delete(folder, true) with _ -> ())
                Error problems
            | Ok reported when cacheable ->
                // A whole entry or none: another process may have stored the same one meanwhile.
                try
                    if Directory.Exists entry then Directory.Delete(entry, true)
                    Directory.Move(folder, entry)
                    Ok(dll, reported, false, None)
                with :? IOException | :? UnauthorizedAccessException ->
                    Ok(Path.Combine(folder, assemblyFile), reported, false, Some folder)
            | Ok reported -> Ok(Path.Combine(folder, assemblyFile), reported, false, Some folder)

    /// The module of the script's own top-level values: `Probe` for probe.fsx.
    let private scriptModule (assembly: Assembly) (fullPath: string) =
        let stem: string = Path.GetFileNameWithoutExtension fullPath |> nonNull
        let name = if stem = "" then stem else string (Char.ToUpperInvariant stem[0]) + stem.Substring 1
        assembly.GetTypes() |> Array.tryFind (fun t -> t.Name = name && not t.IsNested && isNull t.Namespace)

    /// Compiles (or takes from the cache) and runs the script at `path` with ADVAA_HOST defined and
    /// ScriptHost.IsHosted true while it runs; `fsi.CommandLineArgs` is the script followed by
    /// `arguments`, as under `dotnet fsi script.fsx arguments...`. Problems name the script, line
    /// and column; an exception the script throws is reported at the script line that led to it,
    /// with its message and no .NET stack trace.
    let evaluateScriptWith (arguments: string list) (path: string) : Result<EvaluatedScript, ScriptError list> =
        let fullPath = Path.GetFullPath path
        let readable =
            try
                if File.Exists fullPath then
                    File.ReadAllBytes fullPath |> ignore
                    Ok()
                else
                    Error [ problem path "the script file does not exist" ]
            with :? IOException | :? UnauthorizedAccessException as e ->
                Error [ problem path (sprintf "the script cannot be read: %s" e.Message) ]
        // A context of its own per evaluation: the script's top-level code runs afresh each time;
        // its references resolve to this process's assemblies (the default context).
        // From its bytes, not its path: the runtime keeps images by path, so a rewritten entry would load stale.
        let load (dll: string) (uncached: string option) =
            try
                use image = new MemoryStream(File.ReadAllBytes dll)
                AssemblyLoadContext("advaa-script:" + fullPath, isCollectible = false).LoadFromStream image
            finally
                uncached |> Option.iter (fun folder -> try Directory.Delete(folder, true) with _ -> ())
        readable
        |> Result.bind (fun () -> compiled path fullPath)
        |> Result.bind (fun (dll, warnings, cached, uncached) ->
            try Ok(load dll uncached, warnings, cached)
            with :? BadImageFormatException | :? FileLoadException when cached ->
                // A damaged cache entry (a full disk, a killed copy): compile it again.
                (try Directory.Delete(Path.GetDirectoryName dll |> nonNull, true) with _ -> ())
                compiled path fullPath |> Result.map (fun (dll, warnings, cached, uncached) -> load dll uncached, warnings, cached))
        |> Result.bind (fun (assembly, warnings, cached) ->
            let scriptType = scriptModule assembly fullPath
            ScriptHost.Fsi.CommandLineArgs <- Array.ofList (fullPath :: arguments)
            let wasHosted = ScriptHost.Hosting.Value
            ScriptHost.Hosting.Value <- true
            try
                try
                    // The startup classes run each file's top-level code, the script's last.
                    for t in assembly.GetTypes() do
                        match t.Namespace with
                        | NonNull ns when ns.StartsWith("<StartupCode$", StringComparison.Ordinal) -> RuntimeHelpers.RunClassConstructor t.TypeHandle
                        | _ -> ()
                    Ok(new EvaluatedScript(path, scriptType, warnings, cached))
                with thrown ->
                    let e = cause thrown
                    let thrownAt =
                        match scriptFrame assembly thrown with
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
                    Error(warnings @ [ thrownAt ])
            finally
                ScriptHost.Hosting.Value <- wasHosted)

    /// How long `check` and `run` wait for a script to compile and run its top-level code, unless told otherwise.
    let defaultTimeout = TimeSpan.FromSeconds 120.0

    /// `evaluateScriptWith`, given at most `timeout` to compile and run the script's top-level code
    /// (on a thread of its own; a script is code, and one that loops or waits is reported, not
    /// waited for). The thread of a script that overran is left running in the background: the
    /// caller reports the error and ends the process.
    let evaluateScriptWithin (timeout: TimeSpan) (arguments: string list) (path: string) : Result<EvaluatedScript, ScriptError list> =
        let mutable result = None
        // The compiler recurses deeply on large expressions: a main-thread-sized stack.
        let worker = Thread((fun () -> result <- Some(evaluateScriptWith arguments path)), 64 * 1024 * 1024)
        worker.IsBackground <- true
        worker.Start()
        if worker.Join timeout then result.Value
        else
            Error
                [ problem path (
                      sprintf "did not compile and run its top-level code within %g s. A script is code: `advaa check` and `advaa run` run its top level, so look there for a loop, a wait or a long computation; --script-timeout SECONDS allows longer"
                          timeout.TotalSeconds) ]

    /// `evaluateScriptWith` without arguments: `fsi.CommandLineArgs` is the script alone.
    let evaluateScript (path: string) : Result<EvaluatedScript, ScriptError list> = evaluateScriptWith [] path

    let private property (script: EvaluatedScript) (valueName: string) =
        script.Module
        |> Option.bind (fun t -> t.GetProperty(valueName, BindingFlags.Public ||| BindingFlags.Static) |> Option.ofObj)

    /// Whether the evaluated script defines a top-level value `valueName` (of any type).
    let defines (script: EvaluatedScript) (valueName: string) : bool = (property script valueName).IsSome

    /// The evaluated script's top-level value `valueName` as a 'T.
    let value<'T> (script: EvaluatedScript) (valueName: string) : Result<'T, ScriptError list> =
        match property script valueName with
        | None -> Error [ problem script.Path (sprintf "the script defines no top-level value '%s' (expected: let %s = ...)" valueName valueName) ]
        | Some p ->
            let v = p.GetValue null
            let actual =
                match v with
                | null -> p.PropertyType
                | v -> v.GetType()
            if typeof<'T>.IsAssignableFrom p.PropertyType || typeof<'T>.IsAssignableFrom actual then Ok(unbox<'T> v)
            else Error [ problem script.Path (sprintf "the script's value '%s' is a %s, but a %s was expected" valueName (typeName actual) (typeName typeof<'T>)) ]

    /// Evaluates the script at `path` and returns its top-level value `valueName` as a 'T
    /// (`evaluateScript`, then `value`); compiler warnings are dropped.
    let evaluate<'T> (path: string) (valueName: string) : Result<'T, ScriptError list> =
        evaluateScript path
        |> Result.bind (fun script ->
            use script = script
            value<'T> script valueName)
