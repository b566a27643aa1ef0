module AdvAA.Tests.BackendTests

open System
open System.Collections.Generic
open System.IO
open Expecto
open AdvAA.Core.Backend
open AdvAA.Tests.TestSupport

/// Writes a minimal 64-bit little-endian ELF file holding one string table and either a
/// version-definition section (a fake libstdc++) or a version-need section (a fake wrapper).
module FakeElf =
    let private u16 (w: BinaryWriter) (v: int) = w.Write(uint16 v)
    let private u32 (w: BinaryWriter) (v: int) = w.Write(uint32 v)
    let private u64 (w: BinaryWriter) (v: int64) = w.Write(uint64 v)

    let private strtab (names: string list) =
        let bytes = ResizeArray<byte>([ 0uy ])
        let index =
            [ for n in names ->
                let at = bytes.Count
                bytes.AddRange(Text.Encoding.ASCII.GetBytes n)
                bytes.Add 0uy
                n, at ]
            |> Map.ofList
        bytes.ToArray(), index

    /// sections: (type, content, link, info) after the null section.
    let private write (path: string) (sections: (int * byte[] * int * int) list) =
        use ms = new MemoryStream()
        use w = new BinaryWriter(ms)
        let dataStart = 64L
        let offsets =
            sections |> List.scan (fun off (_, c: byte[], _, _) -> off + int64 c.Length) dataStart
        let shoff = List.last offsets
        // ELF header
        w.Write([| 0x7fuy; byte 'E'; byte 'L'; byte 'F'; 2uy; 1uy; 1uy; 0uy |])
        w.Write(Array.zeroCreate<byte> 8)
        u16 w 3; u16 w 62; u32 w 1; u64 w 0L; u64 w 0L; u64 w shoff
        u32 w 0; u16 w 64; u16 w 0; u16 w 0; u16 w 64; u16 w (sections.Length + 1); u16 w 0
        for (_, c, _, _) in sections do w.Write c
        w.Write(Array.zeroCreate<byte> 64) // null section header
        for ((t, c, link, info), off) in List.zip sections (List.take sections.Length offsets) do
            u32 w 0; u32 w t; u64 w 0L; u64 w 0L; u64 w off; u64 w (int64 c.Length)
            u32 w link; u32 w info; u64 w 1L; u64 w 0L
        File.WriteAllBytes(path, ms.ToArray())

    let private build (f: BinaryWriter -> unit) =
        use ms = new MemoryStream()
        use w = new BinaryWriter(ms)
        f w
        w.Flush()
        ms.ToArray()

    /// A library defining the given versions.
    let library path (versions: string list) =
        let table, idx = strtab versions
        let verdef =
            build (fun w ->
                versions
                |> List.iteri (fun i v ->
                    let last = i = versions.Length - 1
                    u16 w 1; u16 w 0; u16 w (i + 1); u16 w 1; u32 w 0; u32 w 20; u32 w (if last then 0 else 28)
                    u32 w idx[v]; u32 w 0))
        write path [ (3, table, 0, 0); (0x6ffffffd, verdef, 1, versions.Length) ]

    /// A library needing the given versions of libstdc++.so.6 (flags 0 = strict).
    let needing path (versions: string list) =
        let table, idx = strtab ("libstdc++.so.6" :: versions)
        let verneed =
            build (fun w ->
                u16 w 1; u16 w versions.Length; u32 w idx["libstdc++.so.6"]; u32 w 16; u32 w 0
                versions
                |> List.iteri (fun i v ->
                    let last = i = versions.Length - 1
                    u32 w 0; u16 w 0; u16 w (i + 2); u32 w idx[v]; u32 w (if last then 0 else 16)))
        write path [ (3, table, 0, 0); (0x6ffffffe, verneed, 1, 1) ]

let private withEnv (name: string) (value: string) (f: unit -> unit) =
    let before = Environment.GetEnvironmentVariable name
    Environment.SetEnvironmentVariable(name, value)
    try f () finally Environment.SetEnvironmentVariable(name, before)

[<Tests>]
let elfTests =
    testList "backend.libstdc++" [
        test "reads the versions a library defines" {
            use dir = new TempDir()
            let lib = dir.File "libstdc++.so.6"
            FakeElf.library lib [ "GLIBCXX_3.4"; "GLIBCXX_3.4.30" ]
            Expect.isTrue (ElfSymbolVersions.DefinesVersion(lib, "GLIBCXX_3.4.30")) "3.4.30 defined"
            Expect.isFalse (ElfSymbolVersions.DefinesVersion(lib, "GLIBCXX_3.4.32")) "3.4.32 not defined"
        }

        test "makes a version need weak, once" {
            use dir = new TempDir()
            let wrapper = dir.File "libLibTorchSharp.so"
            FakeElf.needing wrapper [ "GLIBCXX_3.4.30"; "GLIBCXX_3.4.32" ]
            let before = File.ReadAllBytes wrapper
            Expect.isTrue (ElfSymbolVersions.NeedsVersionStrictly(wrapper, "GLIBCXX_3.4.32")) "strict before"
            Expect.equal (ElfSymbolVersions.MakeVersionNeedWeak(wrapper, "GLIBCXX_3.4.32")) WeakPatchOutcome.Patched "patched"
            Expect.isFalse (ElfSymbolVersions.NeedsVersionStrictly(wrapper, "GLIBCXX_3.4.32")) "weak after"
            Expect.isTrue (ElfSymbolVersions.NeedsVersionStrictly(wrapper, "GLIBCXX_3.4.30")) "the other need untouched"
            let after = File.ReadAllBytes wrapper
            let changed = Array.zip before after |> Array.filter (fun (a, b) -> a <> b)
            Expect.equal changed.Length 1 "exactly one byte (the weak flag) changed"
            Expect.equal (ElfSymbolVersions.MakeVersionNeedWeak(wrapper, "GLIBCXX_3.4.32")) WeakPatchOutcome.AlreadyWeak "idempotent"
            Expect.equal (File.ReadAllBytes wrapper) after "second call writes nothing"
            Expect.equal (ElfSymbolVersions.MakeVersionNeedWeak(wrapper, "GLIBCXX_9.9")) WeakPatchOutcome.NotNeeded "absent version"
        }

        test "patches only where the libstdc++ lacks the version" {
            use dir = new TempDir()
            let oldLib, newLib, wrapper = dir.File "old.so", dir.File "new.so", dir.File "wrapper.so"
            FakeElf.library oldLib [ "GLIBCXX_3.4.30" ]
            FakeElf.library newLib [ "GLIBCXX_3.4.30"; "GLIBCXX_3.4.32" ]
            FakeElf.needing wrapper [ ElfSymbolVersions.TorchSharpGlibcxx ]
            let untouched = ElfSymbolVersions.FixTorchSharpWrapper(wrapper, newLib)
            Expect.stringContains untouched "nothing to do" "new libstdc++: no change"
            Expect.isTrue (ElfSymbolVersions.NeedsVersionStrictly(wrapper, ElfSymbolVersions.TorchSharpGlibcxx)) "still strict"
            let patched = ElfSymbolVersions.FixTorchSharpWrapper(wrapper, oldLib)
            Expect.stringContains patched "Patched" "old libstdc++: patched"
            Expect.isFalse (ElfSymbolVersions.NeedsVersionStrictly(wrapper, ElfSymbolVersions.TorchSharpGlibcxx)) "now weak"
        }

        test "a truncated or foreign file is an error naming it" {
            use dir = new TempDir()
            let wrapper = dir.File "cut.so"
            FakeElf.needing wrapper [ "GLIBCXX_3.4.32" ]
            let bytes = File.ReadAllBytes wrapper
            File.WriteAllBytes(wrapper, bytes[.. bytes.Length - 40])
            let msg = throwsMessage<InvalidDataException> (fun () -> ElfSymbolVersions.NeedsVersionStrictly(wrapper, "GLIBCXX_3.4.32") |> ignore)
            containsAll msg [ wrapper; "truncated"; "offset" ]
            let text = dir.File "notelf.so"
            File.WriteAllText(text, "hello, this is not an ELF file at all, but it is long enough to have a header ......")
            let msg = throwsMessage<InvalidDataException> (fun () -> ElfSymbolVersions.DefinesVersion(text, "X") |> ignore)
            containsAll msg [ text; "not an ELF" ]
        }

        test "the host's libstdc++ and the loaded wrapper agree" {
            let host = ElfSymbolVersions.HostLibStdCxx()
            Expect.isNotEmpty host "this Linux host has a libstdc++"
            Expect.isTrue (ElfSymbolVersions.DefinesVersion(host, "GLIBCXX_3.4")) "every libstdc++ defines GLIBCXX_3.4"
            let wrapper = TorchBackend.FindWrapper()
            if not (ElfSymbolVersions.DefinesVersion(host, ElfSymbolVersions.TorchSharpGlibcxx)) then
                Expect.isFalse (ElfSymbolVersions.NeedsVersionStrictly(wrapper, ElfSymbolVersions.TorchSharpGlibcxx))
                    "on a libstdc++ without GLIBCXX_3.4.32 the build made the need weak"
        }
    ]

[<Tests>]
let deviceTests =
    testSequenced <| testList "backend.device" [
        test "device names parse; others are an error naming the value" {
            Expect.equal (TorchBackend.ParseDevice "AUTO") DeviceRequest.Auto "auto"
            Expect.equal (TorchBackend.ParseDevice "cpu") DeviceRequest.Cpu "cpu"
            Expect.equal (TorchBackend.ParseDevice "cuda") DeviceRequest.Cuda "cuda"
            let msg = throwsMessage<BackendException> (fun () -> TorchBackend.ParseDevice "tpu" |> ignore)
            containsAll msg [ "'tpu'"; "auto, cpu or cuda" ]
        }

        test "a CPU-only libtorch folder is not taken for CUDA, and the reason is recorded" {
            use dir = new TempDir()
            File.WriteAllText(dir.File "libtorch_cpu.so", "")
            withEnv TorchBackend.LibTorchVariable dir.Path (fun () ->
                let looked = List<string>()
                let found = TorchBackend.FindCuda looked
                if isNull (box found) then
                    Expect.exists looked (fun l -> l.Contains dir.Path && l.Contains "no libtorch_cuda.so") "names the folder and why")
        }

        test "a CUDA libtorch older than TorchSharp's is not taken, naming both versions; a later 2.x is" {
            use dir = new TempDir()
            let lib = dir.File "torch/lib"
            Directory.CreateDirectory lib |> ignore
            File.WriteAllText(Path.Combine(lib, "libtorch_cuda.so"), "")
            let withVersion (version: string) =
                File.WriteAllText(dir.File "torch/version.py", sprintf "__version__ = '%s'\n" version)
                let looked = List<string>()
                let mutable found = Unchecked.defaultof<NativeBackend>
                withEnv TorchBackend.LibTorchVariable lib (fun () -> found <- TorchBackend.FindCuda looked)
                found, List.ofSeq looked
            let found, looked = withVersion "1.13.1+cu117"
            Expect.isTrue (isNull (box found)) "PyTorch 1.13's libtorch is refused"
            Expect.exists looked (fun l -> l.Contains lib && l.Contains "libtorch 1.13.1+cu117" && l.Contains "needs 2.10 or a later 2.x") "names the folder and both versions"
            let found, _ = withVersion "2.11.0+cu130"
            Expect.equal (nonNull found).LibTorchVersion "2.11.0+cu130" "PyTorch 2.11's is taken (verified on an H200: no undefined symbols)"
        }

        test "a missing ADVAA_LIBTORCH folder is recorded" {
            withEnv TorchBackend.LibTorchVariable "/nonexistent/torch/lib" (fun () ->
                let looked = List<string>()
                TorchBackend.FindCuda looked |> ignore
                Expect.exists looked (fun l -> l.Contains "/nonexistent/torch/lib" && l.Contains "no such folder") "recorded")
        }

        test "cpu is the CPU device; cuda without a GPU is a clear error" {
            let cpu = TorchBackend.ResolveDevice DeviceRequest.Cpu
            Expect.equal cpu.``type`` TorchSharp.DeviceType.CPU "cpu"
            let backend = TorchBackend.Current
            Expect.isNotNull (box backend) "a backend is loaded"
            Expect.isTrue (File.Exists(Path.Combine(backend.LibTorchFolder, "libtorch_cpu.so"))) "loaded by full path from a real folder"
            if backend.Kind = "cpu" then
                let msg = throwsMessage<BackendException> (fun () -> TorchBackend.ResolveDevice DeviceRequest.Cuda |> ignore)
                Expect.stringContains msg "CUDA" "the message is about CUDA"
                let auto = TorchBackend.ResolveDevice DeviceRequest.Auto
                Expect.equal auto.``type`` TorchSharp.DeviceType.CPU "auto falls back to the CPU"
        }

        test "threads making the process's first TorchSharp calls at once do not deadlock" {
            // A fresh process (here every test file's top level has run first): dotnet fsi on the CLI build.
            use dir = new TempDir()
            let script = dir.File "first-calls.fsx"
            File.WriteAllText(script, String.concat "\n" [
                sprintf "#I %s" (Text.Json.JsonSerializer.Serialize releaseCli.Value)
                "#r \"AdvAA.Core.dll\""
                "#r \"TorchSharp.dll\""
                "let work i = System.Threading.Tasks.Task.Run(fun () ->"
                "    if i % 2 = 0 then AdvAA.Core.Backend.TorchBackend.ResolveDevice AdvAA.Core.Backend.DeviceRequest.Cpu |> ignore"
                "    TorchSharp.torch.ones(3L).sum().item<float32>())"
                "let all = System.Threading.Tasks.Task.WhenAll [| for i in 0 .. 7 -> work i |]"
                "if not (all.Wait 60000) then (printfn \"deadlock\"; exit 2)"
                "printfn \"sums %A\" all.Result" ])
            let code, out, err = runProcess dir.Path 180 "dotnet" [ "fsi"; "--quiet"; script ]
            Expect.equal code 0 (sprintf "finished; stdout: %s stderr: %s" out err)
            Expect.stringContains out "sums [|3.0f; 3.0f; 3.0f; 3.0f; 3.0f; 3.0f; 3.0f; 3.0f|]" "every thread computed"
        }

        test "TorchSharp runs on the loaded libtorch" {
            use t = TorchSharp.torch.arange(6L).reshape(2L, 3L).to_type(TorchSharp.torch.float32)
            use s = t.matmul(t.t())
            Expect.sequenceEqual (s.data<float32>().ToArray()) [| 5f; 14f; 14f; 50f |] "matmul"
        }
    ]
