module AdvAA.Tests.TandaTests

open System
open System.IO
open System.Text.Json.Nodes
open System.Threading
open Expecto
open TorchSharp
open AdvAA.Core
open AdvAA.Core.Augment
open AdvAA.Core.Data
open AdvAA.Core.Methods
open AdvAA.Core.Search
open AdvAA.Core.Training
open AdvAA.Tests.TestSupport
open AdvAA.Tests.TrainingTests

let private space = SearchSpace.Default.SizedTo(32, 32)

/// Ops without a random sign or placement: applying them is a function of the image alone.
let private deterministic = TransformationSet.Parse(space, "Posterize:3, Solarize:5, Equalize:0, AutoContrast:0, Invert:0, Contrast:8")

/// `steps` REINFORCE updates of a mean-field generator over `tfs` TFs of length `length`, where a
/// sequence's step losses come from `stepLosses` (int64 [N, L] sequences → float32 [N, L+1]).
let private reinforce (tfs: int) (length: int) (steps: int) (lr: float) (stepLosses: torch.Tensor -> torch.Tensor) =
    let generator = new MeanFieldGenerator(tfs, length)
    use optimizer = torch.optim.SGD(generator.parameters(), lr)
    use draws = new torch.Generator(11UL)
    for _ in 1 .. steps do
        use scope = torch.NewDisposeScope()
        let sequences = generator.Sample(64, draws)
        let returns = TanObjective.Returns(TanObjective.StepDeltas(stepLosses sequences), 0.5)
        let loss = TanObjective.PolicyLoss(generator.LogProbs sequences, returns)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step() |> ignore
    generator

/// The share of each TF at every position under the generator.
let private shares (g: SequenceGenerator) =
    use m = g.Marginals(1, null)
    m.mean([| 0L |]).data<float32>().ToArray()

let private tandaConfig (tanEpochs: int) (epochs: int) =
    let spec = (MethodRegistry.Defaults "tanda").With("tan_epochs", tanEpochs).With("samples", 2).With("tan_batch", 32).With("length", 4)
    (Tiny.Config("tanda", epochs = epochs, trainLimit = 96L)).WithMethod(spec)

/// Trains a TANDA config on the embedded sample; cancels after stage-1 epoch `stopStage` or target epoch `stopEpoch`.
let private trainTanda (config: TrainConfig) (folder: RunFolder) (stopStage: int option) (stopEpoch: int option) =
    fst (trainStaged config (sample.Force()) folder stopStage stopEpoch)

[<Tests>]
let tests =
    testSequenced <| testList "tanda" [
        test "TF sets: all ops at all levels, or listed ones; bad entries are named" {
            let all = TransformationSet.Parse(space, "all")
            Expect.equal all.Count (space.Ops.Count * space.Levels) "every op at every level"
            Expect.equal (all.Name 0) (space.Ops[0].Name + ":0") "op:level names"
            Expect.equal deterministic.Count 6 "six listed"
            Expect.equal (deterministic.Name 1) "Solarize:5" "in order"
            let bad text = throwsMessage<AugmentException> (fun () -> TransformationSet.Parse(space, text) |> ignore)
            containsAll (bad "") [ "TF set is empty" ]
            containsAll (bad "Wobble:3") [ "TF 'Wobble:3'"; "unknown op 'Wobble'" ]
            containsAll (bad "Rotate:10") [ "level 10 is outside"; "0..9" ]
            containsAll (bad "Rotate") [ "expected Op:level" ]
            containsAll (bad "Rotate:1, Rotate:1") [ "listed twice" ]
        }

        test "incremental transforms equal applying the first k TFs; a sequence is applied in one pass as step by step" {
            let sample = DataSources.EmbeddedSample()
            use images = sample.Train.Images.narrow(0L, 0L, 16L)
            use draws = new torch.Generator(3UL)
            use sequences = torch.randint(int64 deterministic.Count, [| 16L; 4L |], generator = draws, dtype = torch.ScalarType.Int64)
            let steps = deterministic.ApplyIncremental(images, sequences, null)
            Expect.equal steps.Count 5 "the originals, then one image per step"
            Expect.isTrue (steps[0].equal(images).all().item<bool>()) "step 0 is the original"
            for k in 1 .. 4 do
                use prefix = deterministic.ApplySequences(images, sequences.narrow(1L, 0L, int64 k), null)
                Expect.isTrue (steps[k].equal(prefix).all().item<bool>()) (sprintf "after %d steps: the first %d TFs applied" k k)
                use one = deterministic.Apply(steps[k - 1], sequences.select(1L, int64 (k - 1)), null)
                Expect.isTrue (steps[k].equal(one).all().item<bool>()) "each step is one TF per image"
        }

        test "the generators' log-probabilities match a direct computation; sampling is per sample and seeded" {
            let mf = new MeanFieldGenerator(5, 3, 2.0)
            use _ = torch.no_grad()
            for p in mf.parameters() do p.copy_(torch.tensor([| for i in 0 .. 14 -> float32 (i % 5) - 2.0f |]).view(3L, 5L)) |> ignore
            use sequences = torch.tensor([| 0L; 1L; 4L; 3L; 3L; 2L |]).view(2L, 3L)
            use logProbs = mf.LogProbs sequences
            let raw = [| -2.0; -1.0; 0.0; 1.0; 2.0 |]
            let bounded = raw |> Array.map (fun r -> 2.0 * tanh r)
            let logZ = log (bounded |> Array.sumBy exp)
            let expected = [| for tf in [ 0; 1; 4; 3; 3; 2 ] -> float32 (bounded[tf] - logZ) |]
            Expect.sequenceEqual (logProbs.flatten().data<float32>().ToArray() |> Array.map (fun v -> Math.Round(float v, 5))) (expected |> Array.map (fun v -> Math.Round(float v, 5))) "log softmax of range · tanh(logits), per position"
            // The LSTM's step-t distribution, enumerated over every TF with the same prefix, sums to 1,
            // and depends on the prefix only.
            let lstm = new LstmGenerator(7, 4, hidden = 8, seed = 3L)
            use prefix = torch.tensor([| 2L; 5L |])
            use enumerated = torch.cat([| prefix.repeat(7L, 1L); torch.arange(7L).unsqueeze(1); torch.zeros(7L, 1L, dtype = torch.ScalarType.Int64) |], 1L)
            use lp = lstm.LogProbs enumerated
            Expect.floatClose Accuracy.high (lp.select(1L, 2L).exp().sum().item<float32>() |> float) 1.0 "step 2's probabilities over all TFs sum to 1"
            Expect.isTrue (lp.select(1L, 0L).allclose(lp[0L, 0L].expand(7L))) "earlier steps do not depend on later TFs"
            use a = lstm.Sample(32, new torch.Generator(9UL))
            use b = lstm.Sample(32, new torch.Generator(9UL))
            Expect.isTrue (a.equal(b).all().item<bool>()) "a seed gives the same sequences"
            Expect.equal (a.shape |> List.ofArray) [ 32L; 4L ] "[N, L]"
            let distinct = [ for i in 0L .. 31L -> a[i].data<int64>().ToArray() |> List.ofArray ] |> List.distinct
            Expect.isGreaterThan distinct.Length 20 "each sample draws its own sequence"
        }

        test "the objective's sign: a TF the discriminator finds realistic is what the generator learns to pick" {
            // The step loss is 1 for every TF but TF 2, which the "discriminator" scores as real (loss 0).
            let realistic (sequences: torch.Tensor) =
                let steps = sequences.ne(torch.tensor 2L).to_type(torch.ScalarType.Float32)
                torch.cat([| torch.ones(sequences.shape[0], 1L); steps |], 1L)
            let g = reinforce 5 2 300 0.01 realistic
            let s = shares g
            Expect.isGreaterThan s[2] 0.9f (sprintf "TF 2 dominates after 300 steps: %A" s)
        }

        test "the diversity term keeps the generator off a TF that leaves images unchanged" {
            // TF 0 changes nothing (distance 0), TFs 1 and 2 change the image; the discriminator's loss is the same for all.
            let losses (diversity: float) (sequences: torch.Tensor) =
                let moved = sequences.ne(torch.tensor 0L).to_type(torch.ScalarType.Float32).cumsum(1L).clamp(0.0f.ToScalar(), 1.0f.ToScalar())
                let distances = torch.cat([| torch.zeros(sequences.shape[0], 1L); moved |], 1L)
                let logits = torch.zeros_like distances
                TanObjective.StepLosses(logits, distances, diversity)
            let without = shares (reinforce 3 1 200 0.01 (losses 0.0))
            Expect.floatClose { absolute = 0.05; relative = 0.0 } (float without[0]) (1.0 / 3.0) (sprintf "no preference without the term: %A" without)
            let withTerm = shares (reinforce 3 1 200 1e-6 (losses 0.0025))
            Expect.isLessThan withTerm[0] 0.05f (sprintf "with it, the identity-like TF is avoided: %A" withTerm)
        }

        test "stage 1 and stage 2 resume after an interruption with the metrics of an uninterrupted run" {
            use dir = new TempDir()
            let config = tandaConfig 2 2
            let whole = RunFolder.Create(dir.File "whole")
            let lines = trainTanda config whole None None
            Expect.equal lines.Length 2 "two stage-1 epochs reported"
            containsAll lines[0] [ "stage 1  epoch 1/2"; "generator/random loss" ]
            let stage = Path.Combine(whole.Path, TandaMethod.StageFolder)
            Expect.isTrue (File.Exists(Path.Combine(stage, TanTrainer.SamplesFile))) "the sample grid"
            let stageMetrics = JsonLines.Read(Path.Combine(stage, TanTrainer.MetricsFile))
            Expect.equal stageMetrics.Count 2 "stage 1's metrics per epoch"
            let index = AdvAA.Dsl.RunReport.write [ whole.Path ] None 4
            for png in [ "tanda-stage1.png"; "tanda-ops.png"; "tanda-samples.png" ] do
                Expect.isTrue (File.Exists(Path.Combine(whole.Path, "report", png))) (png + " in the report")
            Expect.stringContains (File.ReadAllText index) "tanda-samples" "and on its page"
            let last: JsonObject = stageMetrics[1]
            let ratio = (nonNull last["generator_random_ratio"]).GetValue<float>()
            Expect.isTrue (Double.IsFinite ratio && ratio > 0.0) "the generator/random loss ratio"
            Expect.equal ((nonNull last["tfs"]).AsObject().Count) (space.Ops.Count * space.Levels) "the TF distribution"
            let parted = RunFolder.Create(dir.File "parted")
            trainTanda config parted (Some 1) None |> ignore
            Expect.isFalse (File.Exists(parted.File RunFolder.MetricsFile) && File.ReadAllText(parted.File RunFolder.MetricsFile) <> "") "stopped in stage 1: the target did not train"
            trainTanda config (RunFolder.Open parted.Path) None (Some 1) |> ignore
            trainTanda config (RunFolder.Open parted.Path) None None |> ignore
            let stageFile (run: RunFolder) = Path.Combine(run.Path, TandaMethod.StageFolder, TanTrainer.MetricsFile)
            Expect.sequenceEqual (withoutTiming (stageFile parted)) (withoutTiming (stageFile whole)) "identical stage-1 metrics"
            Expect.sequenceEqual (withoutTiming (parted.File RunFolder.MetricsFile)) (withoutTiming (whole.File RunFolder.MetricsFile)) "identical target metrics"
            // from: another run reuses the trained generator, with no stage 1 of its own.
            let reused = RunFolder.Create(dir.File "reused")
            let lines = trainTanda (config.WithMethod(config.Method.With("from", whole.Path))) reused None None
            containsAll (List.exactlyOne lines) [ "the generator of " + whole.Path; "epoch 2" ]
            Expect.isFalse (Directory.Exists(Path.Combine(reused.Path, TandaMethod.StageFolder))) "no stage 1 of its own"
            Expect.equal (reused.ReadMetrics().Count) 2 "and trains the classifier"
        }

        test "advaa train: --from with --method tanda reuses a generator; without it --from still means transfer" {
            let parse (args: string list) =
                let parser = Argu.ArgumentParser.Create<AdvAA.Cli.TrainCommand.TrainArgs>()
                AdvAA.Cli.TrainCommand.experiment (parser.ParseCommandLine(Array.ofList args))
            match (parse [ "--method"; "tanda"; "--from"; "runs/x" ]).Method with
            | :? TandaSpec as t -> Expect.equal t.From (System.IO.Path.GetFullPath "runs/x") "tanda.from"
            | m -> failtestf "expected tanda, got %s" (AdvAA.Dsl.Method.name m)
            Expect.equal (AdvAA.Dsl.Method.name (parse [ "--from"; "runs/x" ]).Method) "transfer" "--from alone: transfer"
        }

        test "bad input: an empty TF set, a length < 1, an unknown op, --from a run without a generator are named" {
            use dir = new TempDir()
            let bad (spec: MethodSpec) =
                throwsMessage<ConfigException> (fun () -> (Tiny.Config("tanda", epochs = 1)).WithMethod(spec).Validate() |> ignore)
            let tanda = MethodRegistry.Defaults "tanda"
            containsAll (bad (tanda.With("tfs", " , "))) [ "tanda.tfs"; "TF set is empty" ]
            containsAll (bad (tanda.With("length", 0))) [ "tanda.length = 0" ]
            containsAll (bad (tanda.With("tfs", "Wobble:2"))) [ "tanda.tfs = Wobble:2"; "unknown op 'Wobble'" ]
            containsAll (bad (tanda.With("generator", "gru"))) [ "tanda.generator = gru"; "lstm, mean-field, random" ]
            let baseline = RunFolder.Create(dir.File "baseline")
            train (Tiny.Config("baseline", epochs = 1)) baseline None |> ignore
            containsAll (bad (tanda.With("from", baseline.Path))) [ baseline.Path; "did not train a TANDA generator" ]
            containsAll (bad (tanda.With("from", dir.File "nowhere"))) [ dir.File "nowhere"; "does not exist" ]
        }
    ]
