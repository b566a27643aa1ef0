module AdvAA.Tests.DistributedTests

open System
open System.Diagnostics
open System.IO
open System.Runtime.InteropServices
open TorchSharp
open Expecto
open AdvAA.Core.Distributed
open AdvAA.Core.Models
open AdvAA.Core.Training
open AdvAA.Tests.TestSupport
open AdvAA.Tests.CliTests

/// Open MPI's launcher, where installed (CI installs openmpi-bin); the tests that need it skip without it.
let private mpirun =
    [ "/usr/bin/mpirun"; "/usr/local/bin/mpirun" ] |> List.tryFind File.Exists

let private needMpirun () =
    match mpirun with
    | Some m -> m
    | None -> skiptest "mpirun is not installed (apt install openmpi-bin): the distributed tests need it"

let private cliDll = Path.Combine(AppContext.BaseDirectory, "advaa.dll")

/// One small adversarial run: 2 instances, frozen batch norm (so that K ranks equal one process), 3 epochs.
/// fp32 also where the CPU has fast bf16 (auto's choice there): bf16 rounding would swamp the 1e-4/1e-5 comparisons below.
let private trainArgs (folder: string) =
    [ "train"; "--method"; "adversarial"; "--model"; "small"; "--epochs"; "3"; "--batch"; "16"; "--train-limit"; "96"; "--test-limit"; "60"
      "--device"; "cpu"; "--precision"; "fp32"; "--instances"; "2"; "--frozen-bn"; "--out"; folder ]

let private mpiArgs (ranks: int) (args: string list) =
    [ "--oversubscribe"; "--allow-run-as-root"; "-np"; string ranks; "dotnet"; cliDll ] @ args @ [ "--distributed" ]

let private startProcess (program: string) (args: string list) (environment: (string * string) list) =
    let info = ProcessStartInfo(program, args)
    info.RedirectStandardOutput <- true
    info.RedirectStandardError <- true
    info.UseShellExecute <- false
    for name, value in environment do info.Environment[name] <- value
    Process.Start info

/// Runs to completion within `seconds`; returns exit code, stdout, stderr.
let private complete (p: Process) (seconds: int) =
    let out = p.StandardOutput.ReadToEndAsync()
    let err = p.StandardError.ReadToEndAsync()
    if not (p.WaitForExit(seconds * 1000)) then
        p.Kill true
        failtestf "%s did not finish within %d s" p.StartInfo.FileName seconds
    p.ExitCode, out.Result, err.Result

let private modelWith (classes: int) (folder: string) =
    let checkpoint = (RunFolder.Open folder).LatestCheckpoint() |> nonNull
    let model = ModelRegistry.Create("small", classes)
    checkpoint.Read("model", fun s -> model.load(s, strict = true) |> ignore)
    [ for p in model.parameters() -> p.detach().clone() ]

let private modelOf = modelWith 10

/// Parameters equal within 1e-4 relative: 1e-4 holds on AVX2 and AVX-512 kernels alike over a few steps; a wrong reduction is far further off.
let private expectSameParameters (one: torch.Tensor list) (other: torch.Tensor list) =
    for a, b in List.zip one other do
        let scale = max (a.abs().max().item<float32>()) 1e-6f
        Expect.isLessThan (a.sub(b).abs().max().item<float32>() / scale) 1e-4f "parameters equal to one process's within 1e-4 relative"

let private children (pid: int) =
    [ for dir in Directory.GetDirectories "/proc" do
        match Int32.TryParse(Path.GetFileName dir) with
        | true, child ->
            try
                let stat = File.ReadAllText(Path.Combine(dir, "stat"))
                // pid (comm) state ppid ...: the fields after the last ')'.
                let fields = stat.Substring(stat.LastIndexOf ')' + 2).Split ' '
                if int fields[1] = pid then yield child
            with _ -> ()
        | _ -> () ]

[<Tests>]
let tests =
    testSequenced <| testList "distributed" [
        test "K = 2 ranks train the parameters one process does, and a killed rank ends the job, which resumes to the same metrics" {
            let launcher = needMpirun ()
            use dir = new TempDir()
            let single, ranks, killed = dir.File "single", dir.File "ranks", dir.File "killed"
            // A few steps (3 of one epoch): beyond that, float rounding (two threads here, one per rank there) grows.
            // 1e-4 relative holds on AVX2 and AVX-512 kernels alike; a wrong reduction (a rank missing, a mean for a sum) is far further off.
            let fewSteps folder = trainArgs folder @ [ "--train-limit"; "48"; "--epochs"; "1" ]
            expectCode (cli (fewSteps single)) 0
            let code, out, err = complete (startProcess launcher (mpiArgs 2 (fewSteps ranks)) []) 300
            Expect.equal code 0 (sprintf "mpirun exit code; stdout:\n%s\nstderr:\n%s" out err)
            containsAll out [ "ranks    2 (mpirun (Open MPI)"; "1 CPU threads each" ]
            // The gradients of the two halves of the N·M batch, summed, are the whole batch's.
            expectSameParameters (modelOf single) (modelOf ranks)
            let metricsOf folder = RunFolder.Open(folder).ReadMetrics()
            for a, b in Seq.zip (metricsOf single) (metricsOf ranks) do
                Expect.floatClose { absolute = 1e-5; relative = 1e-5 } b.TrainLoss a.TrainLoss (sprintf "epoch %d train loss" a.Epoch)
                Expect.equal b.TestAccuracy a.TestAccuracy (sprintf "epoch %d test accuracy" a.Epoch)
                Expect.floatClose { absolute = 1e-5; relative = 1e-5 } ((b.Number "controller_loss").GetValueOrDefault()) ((a.Number "controller_loss").GetValueOrDefault()) "the same REINFORCE step"
            // Three epochs of K = 2, uninterrupted, to compare the killed and resumed run with.
            let whole = dir.File "whole"
            let code, out, err = complete (startProcess launcher (mpiArgs 2 (trainArgs whole)) []) 300
            Expect.equal code 0 (sprintf "mpirun exit code; stdout:\n%s\nstderr:\n%s" out err)

            // kill -9 of one rank after the first epoch: the job ends within 60 s, non-zero, saying so.
            use job = startProcess launcher (mpiArgs 2 (trainArgs killed)) []
            let err = job.StandardError.ReadToEndAsync()
            let seen = ResizeArray<string>()
            let mutable line = job.StandardOutput.ReadLine()
            while not (isNull line) && not (line.StartsWith "epoch 1/3") do
                seen.Add line
                line <- job.StandardOutput.ReadLine()
            if isNull line then failtestf "no epoch line; output:\n%s\n%s" (String.concat "\n" seen) err.Result
            let out = job.StandardOutput.ReadToEndAsync()
            let victim =
                match children job.Id with
                | [] -> failtestf "no rank under mpirun (pid %d)" job.Id
                | ranks -> List.max ranks
            Process.GetProcessById(victim).Kill()
            let clock = Stopwatch.StartNew()
            if not (job.WaitForExit 60_000) then
                job.Kill true
                failtest "the job did not end within 60 s of a rank's death"
            Expect.isLessThan clock.Elapsed.TotalSeconds 60.0 "ended within 60 s"
            Expect.notEqual job.ExitCode 0 "a non-zero exit code"
            containsAll (err.Result + out.Result) [ "signal 9" ]
            // --resume continues from the last complete checkpoint to the metrics of a run never killed.
            let code, out, err = complete (startProcess launcher (mpiArgs 2 [ "train"; "--resume"; killed ]) []) 300
            Expect.equal code 0 (sprintf "resume; stdout:\n%s\nstderr:\n%s" out err)
            Expect.equal (metricsWithoutTiming killed) (metricsWithoutTiming whole) "the resumed run's metrics equal the uninterrupted run's"
        }

        test "streamed data: each of K = 2 ranks decodes its half of every batch, they train what one process does and list each skipped image once" {
            let launcher = needMpirun ()
            use dir = new TempDir()
            let data = dir.File "data"
            StreamingTests.variableFolder data 48 12 40 90
            // Truncated JPEGs spread over the listing: in the shuffled batches some fall in each rank's half.
            let cut = [ for name in [ "a/00000.jpg"; "b/00022.jpg"; "c/00044.jpg" ] -> Path.Combine(data, "train", name) ]
            for file in cut do
                let bytes = File.ReadAllBytes file
                File.WriteAllBytes(file, bytes[.. bytes.Length / 2])
            let args folder =
                [ "train"; "--data"; data; "--method"; "randaugment"; "--model"; "small"; "--epochs"; "1"; "--batch"; "16"; "--image-size"; "16"
                  "--device"; "cpu"; "--precision"; "fp32"; "--frozen-bn"; "--skip-bad-images"; "--workers"; "1"; "--out"; folder ]
            let single, ranks = dir.File "single", dir.File "ranks"
            expectCode (cli (args single)) 0
            let code, out, err = complete (startProcess launcher (mpiArgs 2 (args ranks)) []) 300
            Expect.equal code 0 (sprintf "mpirun exit code; stdout:\n%s\nstderr:\n%s" out err)
            expectSameParameters (modelWith 3 single) (modelWith 3 ranks)
            let listed folder =
                [ for line in RunFolder.Open(folder).ReadLines RunFolder.SkippedImagesFile do
                      for i in line["images"].AsArray() -> string i["during"], string i["file"] ]
            // A rank that decoded the whole batch would list its bad images twice.
            Expect.equal (listed ranks) (listed single) "the ranks together skip what one process does, each image once"
            Expect.equal (listed single |> List.filter (fst >> (=) "epoch 1") |> List.map snd |> List.sort) (List.sort cut) "every bad training image, once"
        }

        test "ranks with other settings, no launcher, no MPI: a clear error, every rank exits non-zero, nothing written" {
            use dir = new TempDir()
            // No launcher: refused before anything else.
            let folder = dir.File "alone"
            let code, _, err = cli (trainArgs folder @ [ "--distributed" ])
            Expect.equal code 1 err
            containsAll err [ "not started by an MPI launcher"; "mpirun -np K advaa" ]
            Expect.isFalse (Directory.Exists folder) "nothing written"
            // A launcher, but no Open MPI where it is said to be.
            let missing = dir.File "nowhere/libmpi.so.40"
            let code, _, err =
                complete (startProcess "dotnet" (cliDll :: trainArgs folder @ [ "--distributed" ]) [ "OMPI_COMM_WORLD_SIZE", "1"; "ADVAA_MPI_LIBRARY", missing ]) 120
            Expect.equal code 1 err
            containsAll err [ "needs Open MPI"; missing; "apt install openmpi-bin" ]
            Expect.isFalse (Directory.Exists folder) "nothing written"
            // Rank 1 with another seed: rank 0 names it, both exit non-zero, no run folder.
            let launcher = needMpirun ()
            let seeded seed = [ "-np"; "1"; "dotnet"; cliDll ] @ trainArgs folder @ [ "--seed"; seed; "--distributed" ]
            let code, out, err = complete (startProcess launcher ([ "--oversubscribe"; "--allow-run-as-root" ] @ seeded "1" @ [ ":" ] @ seeded "2") []) 120
            Expect.notEqual code 0 (sprintf "exit code; stdout:\n%s" out)
            containsAll err [ "the ranks disagree on the run's settings: rank 1 differs from rank 0 in seed (rank 0: 1, rank 1: 2)" ]
            Expect.isFalse (Directory.Exists folder) "nothing written"
        }

        test "--frozen-bn trains with batch norm on its running statistics, which stay as they were" {
            use dir = new TempDir()
            let run = dir.File "frozen"
            expectCode (cli [ "train"; "--method"; "baseline"; "--epochs"; "1"; "--batch"; "16"; "--train-limit"; "32"; "--test-limit"; "20"; "--device"; "cpu"; "--frozen-bn"; "--out"; run ]) 0
            let checkpoint = (RunFolder.Open run).LatestCheckpoint() |> nonNull
            let model = ModelRegistry.Create("small", 10)
            checkpoint.Read("model", fun s -> model.load(s, strict = true) |> ignore)
            let fresh = ModelRegistry.Create("small", 10)
            for (name, trained), (_, initial) in Seq.zip (model.named_buffers()) (fresh.named_buffers()) do
                Expect.isTrue (trained.equal(initial).all().item<bool>()) (sprintf "%s unchanged" name)
            let same (a: TorchSharp.Modules.Parameter) (b: TorchSharp.Modules.Parameter) = a.equal(b).all().item<bool>()
            Expect.isFalse (Seq.forall2 same (model.parameters()) (fresh.parameters())) "the weights trained"
            let recorded = File.ReadAllText(Path.Combine(run, RunFolder.ConfigFile))
            containsAll recorded [ "\"frozen_batch_norm\": true" ]
        }

        test "without NCCL a CUDA reduction names every place it looked" {
            let mutable handle = 0n
            if NativeLibrary.TryLoad("libnccl.so.2", &handle) then skiptest "this machine has NCCL on the loader's path"
            use dir = new TempDir()
            let message = throwsMessage<DistributedException> (fun () -> Nccl.Load(dir.Path) |> ignore)
            containsAll message [ "needs NCCL (libnccl.so.2)"; Path.Combine(dir.Path, "libnccl.so.2"); "nvidia/nccl/lib/libnccl.so.2"; "ADVAA_NCCL_LIBRARY" ]
        }
    ]
