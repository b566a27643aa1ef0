module AdvAA.Tests.ControllerTests

open System
open Expecto
open TorchSharp
open AdvAA.Core.Search
open AdvAA.Tests.TestSupport

let private floats (t: torch.Tensor) = t.detach().cpu().to_type(torch.float64).data<float>().ToArray()
let private longs (t: torch.Tensor) = t.cpu().data<int64>().ToArray()

/// The controller's parameters as float64 arrays, by state-dict name.
let private weights (c: PolicyController) =
    c.named_parameters() |> Seq.map (fun struct (n, p) -> n, floats p) |> Map.ofSeq

/// An independent rollout in plain arrays: the LSTM cell equations (gates i, f, g, o), the heads and
/// log-softmax, for one policy's given actions. Returns (sum of log-probabilities, sum of entropies).
let private handRollout (c: PolicyController) (ops: int64[]) (levels: int64[]) =
    let w = weights c
    let embeddingSize = w["embedding.weight"].Length / (c.NumOps + c.NumLevels)
    let hidden = w["cell.bias_hh"].Length / 4
    let affine (mat: float[]) (bias: float[]) (x: float[]) =
        Array.init bias.Length (fun r -> bias[r] + Array.fold2 (fun s a b -> s + a * b) 0.0 mat[r * x.Length .. (r + 1) * x.Length - 1] x)
    let sigmoid v = 1.0 / (1.0 + exp -v)
    let step (x: float[]) (h: float[]) (cell: float[]) =
        let gi = affine w["cell.weight_ih"] w["cell.bias_ih"] x
        let gh = affine w["cell.weight_hh"] w["cell.bias_hh"] h
        let g = Array.map2 (+) gi gh
        let c' = Array.init hidden (fun j -> sigmoid g[hidden + j] * cell[j] + sigmoid g[j] * tanh g[2 * hidden + j])
        let h' = Array.init hidden (fun j -> sigmoid g[3 * hidden + j] * tanh c'[j])
        h', c'
    let embed token = w["embedding.weight"][token * embeddingSize .. (token + 1) * embeddingSize - 1]
    let choose (head: string) (h: float[]) (action: int64) =
        let logits = affine w[head + ".weight"] w[head + ".bias"] h
        let top = Array.max logits
        let logZ = top + log (logits |> Array.sumBy (fun l -> exp (l - top)))
        let logp = logits |> Array.map (fun l -> l - logZ)
        logp[int action], -(logp |> Array.sumBy (fun lp -> exp lp * lp))
    let mutable logProb, entropy = 0.0, 0.0
    for q in 0 .. c.SubPolicies - 1 do
        let mutable h, cell, x = Array.zeroCreate hidden, Array.zeroCreate hidden, Array.zeroCreate embeddingSize
        for k in 0 .. c.OpsPerSubPolicy - 1 do
            let i = q * c.OpsPerSubPolicy + k
            let h1, c1 = step x h cell
            let lpOp, entOp = choose "opHead" h1 ops[i]
            let h2, c2 = step (embed (int ops[i])) h1 c1
            let lpLevel, entLevel = choose "levelHead" h2 levels[i]
            h <- h2
            cell <- c2
            x <- embed (c.NumOps + int levels[i])
            logProb <- logProb + lpOp + lpLevel
            entropy <- entropy + entOp + entLevel
    logProb, entropy

let private close = { absolute = 1e-4; relative = 1e-5 }

[<Tests>]
let tests =
    testSequenced <| testList "controller" [
        test "sample shapes, types and ranges" {
            torch.manual_seed 1L |> ignore
            use controller = new PolicyController(16, 10)
            Expect.equal (controller.NumOps, controller.NumLevels, controller.SubPolicies, controller.OpsPerSubPolicy) (16, 10, 5, 2) "sizes"
            use gen = new torch.Generator(5UL)
            use s = controller.Sample(8, gen)
            Expect.sequenceEqual s.Ops.shape [| 8L; 5L; 2L |] "ops [M,Q,K]"
            Expect.sequenceEqual s.Levels.shape [| 8L; 5L; 2L |] "levels [M,Q,K]"
            Expect.equal s.Ops.dtype torch.int64 "ops int64"
            Expect.equal s.Levels.dtype torch.int64 "levels int64"
            Expect.sequenceEqual s.LogProb.shape [| 8L |] "log-prob [M]"
            Expect.sequenceEqual s.Entropy.shape [| 8L |] "entropy [M]"
            Expect.equal s.LogProb.dtype torch.float32 "log-prob float32"
            Expect.isTrue (s.LogProb.requires_grad && s.Entropy.requires_grad) "both carry the graph"
            Expect.all (longs s.Ops) (fun v -> v >= 0L && v < 16L) "ops in 0..15"
            Expect.all (longs s.Levels) (fun v -> v >= 0L && v < 10L) "levels in 0..9"
            // Parameters start in [-0.1, 0.1], so the first policies are near uniform.
            let uniformEntropy = 10.0 * (log 16.0 + log 10.0)
            Expect.all (floats s.Entropy) (fun e -> e > 0.99 * uniformEntropy && e <= uniformEntropy + 1e-4) "entropy near its maximum"
            use c = new PolicyController(4, 3, subPolicies = 2, opsPerSubPolicy = 3)
            use s = c.Sample(1)
            Expect.sequenceEqual s.Ops.shape [| 1L; 2L; 3L |] "other Q, K"
        }

        test "log-probabilities and entropies equal a hand computation from the parameters" {
            torch.manual_seed 2L |> ignore
            use controller = new PolicyController(16, 10)
            // Move away from the near-uniform start so that the check sees non-trivial distributions.
            use noGrad = torch.no_grad()
            for struct (_, p) in controller.named_parameters() do
                p.mul_(torch.tensor 20.0f) |> ignore
            noGrad.Dispose()
            use gen = new torch.Generator(11UL)
            use s = controller.Sample(6, gen)
            let ops, levels = longs s.Ops, longs s.Levels
            let sampledLogProb, sampledEntropy = floats s.LogProb, floats s.Entropy
            let perPolicy = ops.Length / 6
            for m in 0 .. 5 do
                let lp, ent = handRollout controller ops[m * perPolicy .. (m + 1) * perPolicy - 1] levels[m * perPolicy .. (m + 1) * perPolicy - 1]
                Expect.floatClose close sampledLogProb[m] lp (sprintf "log-prob of policy %d" m)
                Expect.floatClose close sampledEntropy[m] ent (sprintf "entropy of policy %d" m)
            Expect.isLessThan (Array.average sampledEntropy) (0.9 * 10.0 * (log 16.0 + log 10.0)) "the scaled controller is not uniform"
            let struct (evaluatedLogProb, evaluatedEntropy) = controller.Evaluate(s.Ops, s.Levels)
            use _ = evaluatedLogProb
            use _ = evaluatedEntropy
            Expect.sequenceEqual (floats evaluatedLogProb) sampledLogProb "Evaluate gives Sample's log-probabilities"
            Expect.sequenceEqual (floats evaluatedEntropy) sampledEntropy "Evaluate gives Sample's entropies"
            Expect.isTrue evaluatedLogProb.requires_grad "Evaluate keeps the graph"
        }

        test "a seeded generator gives the same policies" {
            torch.manual_seed 3L |> ignore
            use controller = new PolicyController(16, 10)
            let draw seed =
                use gen = new torch.Generator(seed)
                use s = controller.Sample(8, gen)
                longs s.Ops, longs s.Levels
            Expect.equal (draw 42UL) (draw 42UL) "same seed, same sample"
            Expect.notEqual (draw 42UL) (draw 43UL) "another seed, another sample"
            torch.manual_seed 3L |> ignore
            use twin = new PolicyController(16, 10)
            use gen = new torch.Generator(42UL)
            use s = twin.Sample(8, gen)
            Expect.equal (longs s.Ops, longs s.Levels) (draw 42UL) "same torch seed, same controller"
        }

        test "bad actions are errors naming the shape or values" {
            use controller = new PolicyController(16, 10)
            use good = torch.zeros([| 4L; 5L; 2L |], dtype = torch.int64)
            use wrongShape = torch.zeros([| 4L; 5L; 3L |], dtype = torch.int64)
            let msg = throwsMessage<ArgumentException> (fun () -> controller.Evaluate(wrongShape, good) |> ignore)
            containsAll msg [ "ops"; "[4, 5, 3]"; "[M, 5, 2]" ]
            use tooBig = torch.full([| 4L; 5L; 2L |], TorchSharp.Scalar.op_Implicit 10L, dtype = torch.int64)
            let msg = throwsMessage<ArgumentException> (fun () -> controller.Evaluate(good, tooBig) |> ignore)
            containsAll msg [ "levels"; "10..10"; "0..9" ]
            use floatOps = torch.zeros([| 4L; 5L; 2L |])
            let msg = throwsMessage<ArgumentException> (fun () -> controller.Evaluate(floatOps, good) |> ignore)
            containsAll msg [ "Float32"; "Int64" ]
            let msg = throwsMessage<ArgumentException> (fun () -> new PolicyController(0, 10) |> ignore)
            containsAll msg [ "numOps 0" ]
        }

        test "losses are normalised with the unbiased standard deviation" {
            let losses = [| 1.0; 2.0; 3.0; 4.0 |]
            let std = sqrt ((1.5 ** 2.0 + 0.5 ** 2.0 + 0.5 ** 2.0 + 1.5 ** 2.0) / 3.0)
            let expected = losses |> Array.map (fun l -> (l - 2.5) / (std + 1e-5))
            Expect.sequenceEqual (ControllerTrainer.NormalizeLosses losses) expected "(L - mean) / (std + 1e-5)"
            Expect.sequenceEqual (ControllerTrainer.NormalizeLosses [| 2.0; 2.0 |]) [| 0.0; 0.0 |] "no spread"
            Expect.sequenceEqual (ControllerTrainer.NormalizeLosses [| 0.7 |]) [| 0.0 |] "one instance"
            let msg = throwsMessage<ArgumentException> (fun () -> ControllerTrainer.NormalizeLosses [| 1.0; 2.0; nan |] |> ignore)
            containsAll msg [ "instance 2"; "NaN"; "finite" ]
        }

        test "an update takes one Adam step on the REINFORCE loss" {
            torch.manual_seed 4L |> ignore
            use controller = new PolicyController(16, 10)
            let trainer = ControllerTrainer(controller)
            use gen = new torch.Generator(9UL)
            use s = controller.Sample(8, gen)
            let losses = [| 2.1; 2.4; 1.9; 2.0; 2.8; 2.2; 2.3; 2.5 |]
            let norm = ControllerTrainer.NormalizeLosses losses
            let lp, ent = floats s.LogProb, floats s.Entropy
            let expectedLoss = (Array.map2 (fun l n -> -l * n) lp norm |> Array.average) - 1e-5 * Array.average ent
            let before = weights controller
            let struct (normalized, loss) = trainer.Update(s.Ops, s.Levels, losses)
            Expect.sequenceEqual normalized norm "returns the normalised losses"
            Expect.floatClose close loss expectedLoss "mean(-logp · L~) - 1e-5 · mean(entropy)"
            let after = weights controller
            for KeyValue (name, values) in before do
                let change = Array.map2 (fun a b -> abs (a - b)) values after[name] |> Array.max
                // Adam's first step moves every parameter with a gradient by about lr.
                Expect.isLessThan change (0.00035 * 1.01) (sprintf "%s moved at most lr" name)
            let opHeadChange = Array.map2 (fun a b -> abs (a - b)) before["opHead.bias"] after["opHead.bias"] |> Array.max
            Expect.floatClose { absolute = 1e-6; relative = 0.01 } opHeadChange 0.00035 "the op head moved by lr"
            Expect.isTrue (trainer.Optimizer :? TorchSharp.Modules.Adam) "Adam"
            use wrongCount = torch.zeros([| 8L; 5L; 2L |], dtype = torch.int64)
            let msg = throwsMessage<ArgumentException> (fun () -> trainer.Update(wrongCount, wrongCount, [| 1.0; 2.0 |]) |> ignore)
            containsAll msg [ "2 mean losses"; "8 policies" ]
        }

        test "a controller rewarded for op 3 learns to pick it" {
            torch.manual_seed 5L |> ignore
            use controller = new PolicyController(16, 10)
            // The default lr (0.00035) gets there too, but slowly: about 60% after 300-350 updates.
            let trainer = ControllerTrainer(controller, learningRate = 0.005)
            use gen = new torch.Generator(17UL)
            let shareOfOp3 () =
                use s = controller.Sample(8, gen)
                let ops = longs s.Ops
                let perPolicy = ops.Length / 8
                let rewards = Array.init 8 (fun m -> ops[m * perPolicy .. (m + 1) * perPolicy - 1] |> Array.averageBy (fun o -> if o = 3L then 1.0 else 0.0))
                trainer.Update(s.Ops, s.Levels, rewards) |> ignore
                Array.average rewards
            let shares = Array.init 150 (fun _ -> shareOfOp3 ())
            Expect.isLessThan shares[0] 0.25 "starts near 1/16"
            let last = shares[130..] |> Array.average
            Expect.isGreaterThan last 0.6 (sprintf "picks op 3 in most choices after 150 updates (last 20: %.2f)" last)
        }
    ]
