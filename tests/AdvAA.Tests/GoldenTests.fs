/// The ops against PIL 9.4's outputs (../shared/golden/ops): run alone with `-- --filter-test-list golden`;
/// on the device ADVAA_DEVICE names (scripts/gpu-check.sh runs them on CUDA).
module AdvAA.Tests.GoldenTests

open System
open System.IO
open System.Text.Json
open Expecto
open TorchSharp
open AdvAA.Core.Augment
open AdvAA.Core.Backend

/// ADVAA_GOLDEN_OPS, else ../shared/golden/ops from the current directory; None when absent.
let goldenFolder () =
    match Environment.GetEnvironmentVariable "ADVAA_GOLDEN_OPS" with
    | null | "" ->
        let fallback = Path.GetFullPath(Path.Combine("..", "shared", "golden", "ops"))
        if File.Exists(Path.Combine(fallback, "manifest.json")) then Some fallback else None
    | p when File.Exists(Path.Combine(p, "manifest.json")) -> Some p
    | p -> failwithf "ADVAA_GOLDEN_OPS=%s has no manifest.json" p

type GoldenCase = { Op: string; Value: float; File: string }

/// N x H x W x C uint8 (NHWC) as a uint8 NCHW tensor.
let readNhwc (path: string) n h w c =
    let bytes = File.ReadAllBytes path
    if bytes.LongLength <> int64 (n * h * w * c) then
        failwithf "%s holds %d bytes; expected %d x %d x %d x %d" path bytes.Length n h w c
    torch.tensor(bytes, dimensions = System.ReadOnlySpan<int64>([| int64 n; int64 h; int64 w; int64 c |])).permute(0L, 3L, 1L, 2L).contiguous()

/// Mean absolute error and largest difference between two uint8 tensors.
let errors (a: torch.Tensor) (b: torch.Tensor) =
    use d = a.to_type(torch.int32).sub(b.to_type(torch.int32)).abs()
    d.to_type(torch.float64).mean().item<float>(), d.max().item<int>()

[<Tests>]
let goldenTests =
    testList "golden" [
        test "every op matches PIL 9.4 (MAE <= 0.5, no value off by more than 2)" {
            match goldenFolder () with
            | None -> skiptest "golden ops folder not found: set ADVAA_GOLDEN_OPS (e.g. ../shared/golden/ops)"
            | Some folder ->
                use manifest = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "manifest.json")))
                let root = manifest.RootElement
                let geti (name: string) = root.GetProperty(name).GetInt32()
                let n, h, w, c = geti "n", geti "height", geti "width", geti "channels"
                Expect.equal (root.GetProperty("layout").GetString()) "NHWC" "layout"
                let device = TorchBackend.ResolveDevice(TorchBackend.RequestFromEnvironment())
                use inputs = (readNhwc (Path.Combine(folder, root.GetProperty("inputs").GetString())) n h w c).``to`` device
                let cases =
                    [ for e in root.GetProperty("cases").EnumerateArray() ->
                        { Op = e.GetProperty("op").GetString()
                          Value = e.GetProperty("value").GetDouble()
                          File = e.GetProperty("file").GetString() } ]
                let space = SearchSpace(OpTable.Defaults)
                let results =
                    [ for case in cases ->
                        let op = space.IndexOf case.Op
                        use expected = readNhwc (Path.Combine(folder, case.File)) n h w c
                        use ids = torch.full(int64 n, int64 op, dtype = torch.int64)
                        use values = torch.full(int64 n, case.Value, dtype = torch.float32)
                        use actual = BatchAugment.ApplyValues(inputs, space, ids, values, null).cpu()
                        let mae, worst = errors actual expected
                        case, mae, worst ]
                let failed = results |> List.filter (fun (_, mae, worst) -> mae > 0.5 || worst > 2)
                printfn "golden ops on %O: %s: %d of %d cases passed" device folder (results.Length - failed.Length) results.Length
                for case, mae, worst in results do
                    printfn "  %-14s %10.4f  MAE %.4f  max %d" case.Op case.Value mae worst
                let report = [ for case, mae, worst in failed -> sprintf "%s(%g) in %s: MAE %.3f, max %d" case.Op case.Value case.File mae worst ]
                Expect.isEmpty report (sprintf "cases over the tolerance: %s" (String.concat "; " report))
        }
    ]
