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
            let withMissing = ControllerTrainer.NormalizeLosses [| 1.0; nan; 3.0 |]
            Expect.isTrue (Double.IsNaN withMissing[1]) "a unit without a reward (NaN) stays without one"
            Expect.floatClose close withMissing[2] (1.0 / (sqrt 2.0 + 1e-5)) "the others are normalised among themselves"
            let msg = throwsMessage<ArgumentException> (fun () -> ControllerTrainer.NormalizeLosses [| 1.0; 2.0; infinity |] |> ignore)
            containsAll msg [ "unit 2"; "Infinity"; "finite" ]
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
            let step = trainer.Update(s.Ops, s.Levels, losses)
            Expect.sequenceEqual step.Normalized norm "returns the normalised losses"
            Expect.floatClose close step.Loss expectedLoss "mean(-logp · L~) - 1e-5 · mean(entropy)"
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

        test "sub-policy log-probabilities sum to the policy's, and each is its own sub-policy's" {
            torch.manual_seed 6L |> ignore
            use controller = new PolicyController(5, 4, subPolicies = 3, opsPerSubPolicy = 2, embeddingSize = 6, hiddenSize = 7, seed = 3L)
            use gen = new torch.Generator(2UL)
            use s = controller.Sample(4, gen)
            use e = controller.EvaluateSubPolicies(s.Ops, s.Levels)
            Expect.equal e.LogProb.shape [| 4L; 3L |] "[M, Q]"
            let perSub = floats (e.LogProb.sum(1L))
            Expect.sequenceEqual (perSub |> Array.map (fun v -> Math.Round(v, 4))) (floats s.LogProb |> Array.map (fun v -> Math.Round(v, 4))) "they sum to the policy's log-probability"
            // Sub-policies start from a zero state: sub-policy q of a policy has the probability a one-sub-policy rollout of its actions has.
            let ops, levels = longs s.Ops, longs s.Levels
            let sub = floats e.LogProb
            for m in 0 .. 3 do
                let whole, _ = handRollout controller ops[m * 6 .. m * 6 + 5] levels[m * 6 .. m * 6 + 5]
                Expect.floatClose close (Array.sum sub[m * 3 .. m * 3 + 2]) whole (sprintf "policy %d by hand" m)
        }

        test "with zero heads and a prior the untrained controller draws from the prior, at KL 0" {
            let prior = ControllerPrior.FromWeights([| 1.0; 2.0; 3.0; 4.0 |], [| 5.0; 1.0; 1.0 |])
            use controller = new PolicyController(4, 3, subPolicies = 2, opsPerSubPolicy = 2, seed = 1L, zeroHeads = true, prior = prior)
            let marginals = controller.Marginals()
            Expect.isTrue marginals.Exact "exact: few histories"
            let struct (ops, levels) = prior.Probabilities
            for i in 0 .. 3 do Expect.floatClose close marginals.Ops[i] ops[i] (sprintf "op %d's share is the prior's" i)
            for l in 0 .. 2 do Expect.floatClose close marginals.Levels[l] levels[l] (sprintf "level %d's share is the prior's" l)
            use gen = new torch.Generator(4UL)
            use s = controller.Sample(16, gen)
            use e = controller.EvaluateSubPolicies(s.Ops, s.Levels, prior)
            Expect.isLessThan (floats (e.Kl.abs().max()) |> Array.head) 1e-6 "KL(controller ‖ prior) = 0 before any step"
            use uniform = new PolicyController(4, 3, subPolicies = 2, opsPerSubPolicy = 2, seed = 1L, zeroHeads = true)
            Expect.sequenceEqual ((uniform.Marginals()).Ops |> Array.map (fun p -> Math.Round(p, 6))) [| 0.25; 0.25; 0.25; 0.25 |] "zero heads without a prior: uniform"
            let msg = throwsMessage<ArgumentException> (fun () -> ControllerPrior.FromWeights([| 1.0; 0.0 |], [| 1.0 |]) |> ignore)
            containsAll msg [ "ops"; "> 0" ]
        }

        test "the exact distribution is the expected share of each op and level, enumerated by hand" {
            use controller = new PolicyController(3, 2, subPolicies = 1, opsPerSubPolicy = 2, embeddingSize = 4, hiddenSize = 5, seed = 11L)
            // Every sub-policy (o1, l1, o2, l2), its probability from the hand rollout, and its ops' and levels' shares.
            let opShare, levelShare = Array.zeroCreate 3, Array.zeroCreate 2
            for o1 in 0L .. 2L do
                for l1 in 0L .. 1L do
                    for o2 in 0L .. 2L do
                        for l2 in 0L .. 1L do
                            let logProb, _ = handRollout controller [| o1; o2 |] [| l1; l2 |]
                            let p = exp logProb
                            opShare[int o1] <- opShare[int o1] + p / 2.0
                            opShare[int o2] <- opShare[int o2] + p / 2.0
                            levelShare[int l1] <- levelShare[int l1] + p / 2.0
                            levelShare[int l2] <- levelShare[int l2] + p / 2.0
            let exact = controller.Marginals()
            Expect.isTrue exact.Exact "18 histories: exact"
            for i in 0 .. 2 do Expect.floatClose close exact.Ops[i] opShare[i] (sprintf "op %d" i)
            for l in 0 .. 1 do Expect.floatClose close exact.Levels[l] levelShare[l] (sprintf "level %d" l)
            use gen = new torch.Generator(5UL)
            let estimate = controller.Marginals(maxHistories = 1, rollouts = 4000, generator = gen)
            Expect.isFalse estimate.Exact "over the limit: averaged along rollouts"
            Expect.equal estimate.Rollouts 4000 "rollouts recorded"
            for i in 0 .. 2 do Expect.floatClose { absolute = 0.01; relative = 0.0 } estimate.Ops[i] opShare[i] (sprintf "op %d, estimated" i)
        }

        test "a sub-policy update weights each unit's own log-probability and skips units no image drew" {
            torch.manual_seed 8L |> ignore
            use controller = new PolicyController(6, 3, subPolicies = 2, opsPerSubPolicy = 1, seed = 2L)
            let trainer = ControllerTrainer(controller, klWeight = 0.5)
            use gen = new torch.Generator(3UL)
            use s = controller.Sample(3, gen)
            let rewards = [| 0.4; nan; -0.2; 0.9; 0.1; 0.3 |]
            let normalized = ControllerTrainer.NormalizeLosses rewards
            use e = controller.EvaluateSubPolicies(s.Ops, s.Levels)
            let lp, ent, kl = floats e.LogProb, floats e.PolicyEntropy, floats (e.Kl.sum(1L))
            let present = [ for i in 0 .. 5 do if not (Double.IsNaN rewards[i]) then yield i ]
            let expected = (present |> List.sumBy (fun i -> -lp[i] * normalized[i])) / 5.0 - 1e-5 * Array.average ent + 0.5 * Array.average kl
            let step = trainer.UpdateSubPolicies(s.Ops, s.Levels, rewards)
            Expect.floatClose close step.Loss expected "Σ over the 5 drawn units of −log p · r̃, / 5, − entropy bonus + 0.5 · KL"
            Expect.floatClose close step.Kl (Array.average kl) "the mean KL from the (uniform) prior"
            Expect.isTrue (Double.IsNaN step.Normalized[1]) "the unit no image drew has no reward"
            let msg = throwsMessage<ArgumentException> (fun () -> trainer.UpdateSubPolicies(s.Ops, s.Levels, [| 1.0; 2.0 |]) |> ignore)
            containsAll msg [ "2 rewards"; "one per instance and sub-policy" ]
        }
    ]
