module AdvAA.Tests.DslTests

open System
open System.IO
open System.Text.Json.Nodes
open System.Threading
open Expecto
open TorchSharp
open AdvAA.Core
open AdvAA.Core.Augment
open AdvAA.Core.Backend
open AdvAA.Core.Methods
open AdvAA.Core.Training
open AdvAA.Dsl
open AdvAA.Tests.TestSupport

let private dslError (f: unit -> 'T) = throwsMessage<DslException> (fun () -> f () |> ignore)

let private invalid (e: Experiment) = dslError (fun () -> Experiment.validate e)

/// Tiny, quick settings on the embedded sample.
let private tiny =
    { Experiment.defaults with
        Name = "tiny"
        Epochs = 1
        BatchSize = 32
        Method = Method.adversarial |> Method.instances (Schedule.constant 2.0)
        TrainLimit = Some 64
        TestLimit = Some 50
        Device = "cpu" }

/// A session that writes its progress into `out`.
let session (out: TextWriter) =
    { Display = { Out = out; Live = false }
      Cancel = CancellationToken.None
      Program = [ "advaa"; "run" ]
      Arguments = [ "test.fsx" ]
      Report = false
      Ranks = None }

/// A custom op adding its magnitude to every pixel; it records the magnitudes it was given.
let private adder (seen: ResizeArray<float32>) =
    Space.custom "Add" (0.0, 90.0) (fun images magnitudes ->
        seen.AddRange(magnitudes.data<float32>().ToArray())
        (images.to_type torch.ScalarType.Float32 + magnitudes.view(-1L, 1L, 1L, 1L)).clamp(torch.tensor 0.0f, torch.tensor 255.0f).to_type torch.ScalarType.Byte)

let private opNames (s: Space) = (Space.toCore s).Ops |> Seq.map (fun o -> o.Name) |> List.ofSeq

[<Tests>]
let tests =
    testSequenced <| testList "dsl" [
        test "the paper's space is the op table without Identity, 10 levels" {
            let core = Space.toCore Space.paper
            Expect.equal core.Ops.Count 16 "16 ops"
            Expect.equal core.Levels 10 "10 levels"
            Expect.equal (opNames Space.paper |> List.take 3) [ "ShearX"; "ShearY"; "TranslateX" ] "the table's order"
            Expect.isFalse (Space.paper.OpNames |> List.contains "Identity") "no Identity"
        }

        test "space edits remove, keep, re-range, sign, extend and re-level" {
            let s =
                Space.paper
                |> Space.without [ "invert"; "SamplePairing" ]
                |> Space.range "Rotate" (0.0, 20.0)
                |> Space.signed "ShearX" false
                |> Space.range "Solarize" (128.0, 256.0)
                |> Space.addBuiltIn "Identity"
                |> Space.levels 5
            let core = Space.toCore s
            Expect.equal core.Ops.Count 15 "16 - 2 + 1"
            Expect.equal core.Levels 5 "levels"
            Expect.isFalse (s.OpNames |> List.contains "Invert") "Invert removed (case-insensitive)"
            Expect.equal (List.last s.OpNames) "Identity" "added at the end"
            let op name = core.Ops[core.IndexOf name]
            Expect.equal ((op "Rotate").Low, (op "Rotate").High, (op "Rotate").Signed) (0.0, 20.0, true) "Rotate 0 → 20, still signed"
            Expect.isFalse (op "ShearX").Signed "ShearX unsigned"
            // Solarize gets stronger as its threshold falls: the direction is kept.
            Expect.equal ((op "Solarize").Low, (op "Solarize").High) (256.0, 128.0) "Solarize 256 → 128"
            Expect.equal ((op "Rotate").ValueAt(4.0, 5)) 20.0 "the top of 5 levels is the range's end"
            Expect.equal (Space.paper |> Space.only [ "Color"; "Rotate" ] |> fun s -> s.OpNames) [ "Rotate"; "Color" ] "only keeps the space's order"
            Expect.equal (Space.ofOps [ "Equalize"; "Identity" ]).OpNames [ "Equalize"; "Identity" ] "ofOps"
        }

        test "bad space edits name the value" {
            containsAll (dslError (fun () -> Space.paper |> Space.without [ "Blur" ])) [ "unknown op 'Blur'"; "ShearX" ]
            containsAll (dslError (fun () -> Space.ofOps [ "Rotate" ] |> Space.without [ "Rotate" ])) [ "empty search space" ]
            containsAll (dslError (fun () -> Space.paper |> Space.only [])) [ "at least one op" ]
            containsAll (dslError (fun () -> Space.paper |> Space.range "Rotate" (30.0, 10.0))) [ "Rotate"; "lo = 30"; "hi = 10" ]
            containsAll (dslError (fun () -> Space.paper |> Space.range "Posterize" (2.0, 9.0))) [ "Posterize"; "9"; "0..8" ]
            containsAll (dslError (fun () -> Space.paper |> Space.range "Invert" (0.0, 1.0))) [ "Invert has no magnitude" ]
            containsAll (dslError (fun () -> Space.paper |> Space.signed "Equalize" true)) [ "Equalize"; "no magnitude" ]
            containsAll (dslError (fun () -> Space.paper |> Space.levels 1)) [ "Space.levels 1"; "at least 2" ]
            containsAll (dslError (fun () -> Space.paper |> Space.addBuiltIn "Rotate")) [ "Rotate is already in the space" ]
            containsAll (dslError (fun () -> Space.ofOps [ "Rotate"; "rotate" ])) [ "'rotate' is listed twice" ]
            containsAll (dslError (fun () -> Space.ofOps [ "Blur" ])) [ "unknown op 'Blur'" ]
            let twice = Space.custom "Rotate" (0.0, 1.0) (fun i _ -> i)
            containsAll (dslError (fun () -> Space.paper |> Space.add twice)) [ "an op named Rotate is already in the space" ]
            containsAll (dslError (fun () -> Space.custom "" (0.0, 1.0) (fun i _ -> i))) [ "non-empty name" ]
            containsAll (dslError (fun () -> Space.custom "X" (0.0, nan) (fun i _ -> i))) [ "X"; "finite" ]
        }

        test "a custom op is applied per sample through BatchAugment with its raw magnitudes" {
            TorchBackend.ResolveDevice DeviceRequest.Cpu |> ignore
            let seen = ResizeArray()
            let space = Space.ofOps [ "Identity" ] |> Space.add (adder seen) |> Space.toCore
            use images = torch.full([| 4L; 3L; 2L; 2L |], (10).ToScalar(), dtype = torch.ScalarType.Byte)
            use ops = torch.tensor([| 1L; 0L; 1L; 0L |]).view(4L, 1L)
            use levels = torch.tensor([| 9L; 9L; 3L; 0L |]).view(4L, 1L)
            use result = BatchAugment.Apply(images, space, ops, levels, null)
            let pixels = result.to_type(torch.ScalarType.Int32).amax([| 1L; 2L; 3L |]).data<int>().ToArray()
            Expect.equal pixels [| 100; 10; 40; 10 |] "10 + 90 (level 9), unchanged, 10 + 30 (level 3), unchanged"
            Expect.equal (List.ofSeq seen) [ 90.0f; 30.0f ] "the op saw only its own samples' raw values"
        }

        test "a custom op without magnitude, one with the wrong output and one that throws" {
            TorchBackend.ResolveDevice DeviceRequest.Cpu |> ignore
            let flip = Space.customWithoutMagnitude "Flip" (fun images -> images.flip(3L))
            let floats = Space.custom "Floats" (0.0, 1.0) (fun images _ -> images.to_type torch.ScalarType.Float32)
            let boom = Space.custom "Boom" (0.0, 1.0) (fun _ _ -> failwith "no luck")
            let space = Space.ofOps [ "Identity" ] |> Space.add flip |> Space.add floats |> Space.add boom |> Space.toCore
            Expect.isFalse space.Ops[1].HasMagnitude "Flip has no magnitude"
            use images = torch.arange(24L, dtype = torch.ScalarType.Byte).view(2L, 3L, 2L, 2L)
            let apply (op: int64) =
                use ops = torch.full([| 2L; 1L |], op.ToScalar(), dtype = torch.ScalarType.Int64)
                use levels = torch.zeros([| 2L; 1L |], dtype = torch.ScalarType.Int64)
                BatchAugment.Apply(images, space, ops, levels, null)
            use flipped = apply 1L
            Expect.isTrue (flipped.eq(images.flip(3L)).all().item<bool>()) "Flip applied"
            containsAll (throwsMessage<AugmentException> (fun () -> apply 2L |> ignore)) [ "custom op 'Floats' returned Float"; "expected Byte" ]
            containsAll (throwsMessage<DslException> (fun () -> apply 3L |> ignore)) [ "custom op 'Boom' failed on 2 images: no luck" ]
            containsAll (dslError (fun () -> Space.paper |> Space.add { flip with Signed = true })) [ "Flip"; "cannot be signed" ]
        }

        test "a custom op is sampled by the controller, applied in training and named in policies.jsonl" {
            use dir = new TempDir()
            let seen = ResizeArray()
            let space = Space.ofOps [ "Identity" ] |> Space.add (adder seen) |> Space.without [ "Identity" ]
            let e = { tiny with Space = space }
            use out = new StringWriter()
            let outcome = Runner.run (session out) (Some(dir.File "run")) None e.Name (Experiment.toConfig e)
            Expect.isTrue outcome.Completed (sprintf "completed:\n%O" out)
            Expect.isNonEmpty seen "the op ran"
            Expect.isTrue (seen |> Seq.forall (fun m -> m >= 0.0f && m <= 90.0f)) "magnitudes in its range"
            let line = File.ReadAllLines(dir.File "run/policies.jsonl") |> Array.exactlyOne |> (fun t -> JsonNode.Parse t) |> nonNull
            let items (n: JsonNode | null) = [ for x in (nonNull n).AsArray() -> nonNull x ]
            let stages =
                [ for policy in items line["policies"] do
                    for sub in items policy do
                        for stage in items sub -> (nonNull stage[0]).GetValue<string>() ]
            Expect.equal stages.Length 20 "2 policies x 5 sub-policies x 2 ops"
            Expect.equal (List.distinct stages) [ "Add" ] "all the custom op"
            let config = File.ReadAllText(dir.File "run/config.json") |> (fun t -> JsonNode.Parse t) |> nonNull
            let space = (nonNull config["experiment"])["search_space"] |> nonNull
            let ops = items space["ops"]
            Expect.equal [ for o in ops -> (nonNull o["name"]).GetValue<string>() ] [ "Add" ] "config.json names it"
        }

        test "policies are written as the papers write them" {
            let p = Policy.ofPairs [ [ "Rotate", 4; "Color", 6 ]; [ "Equalize", 0 ] ]
            Expect.isFalse p.PerInstance "one policy for every copy"
            Expect.equal p.Policies[0].SubPolicies.Count 2 "sub-policies"
            Expect.equal (List.ofSeq p.Policies[0].SubPolicies[0].Stages) [ PolicyStage("Rotate", 4, 1.0); PolicyStage("Color", 6, 1.0) ] "pairs: always applied"
            let t = Policy.ofTriples [ [ "Invert", 0.1, 7; "Contrast", 0.2, 6 ] ]
            Expect.equal t.Policies[0].SubPolicies[0].Stages[1] (PolicyStage("Contrast", 6, 0.2)) "(op, probability, level)"
        }

        test "methods by name: every registry method with Core's defaults; the helpers are the named method with its parameters set" {
            for name in MethodRegistry.Names do
                Expect.equal (Method.name (Method.named name)) name "round trip"
                Expect.equal ((Method.named name).ToJson().ToJsonString()) ((MethodRegistry.Defaults name).ToJson().ToJsonString()) (name + ": the registry's defaults")
            Expect.equal (Method.name (Method.named " Adversarial ")) "adversarial" "case and spaces"
            containsAll (dslError (fun () -> Method.named "magic")) [ "unknown method 'magic'"; "adversarial"; "uncertainty" ]
            let json (m: MethodSpec) = m.ToJson().ToJsonString()
            Expect.equal (json (Method.randAugment 3 7)) (json (Method.named "randaugment" |> Method.set "n" 3 |> Method.set "m" 7)) "randAugment"
            Expect.equal (json (Method.uncertainty 6 2)) (json (Method.named "uncertainty" |> Method.set "candidates" 6 |> Method.set "keep" 2)) "uncertainty"
            Expect.equal (Method.groupDro false :?> PatchingSpec).Objective "gdro" "group DRO over all groups"
            Expect.equal (Method.groupDro true :?> PatchingSpec).Objective "sgdro" "class-conditional"
            let oracle = Method.camelOracle |> Method.set "consistency" 20.0 |> Method.set "dro_step" 0.05 :?> PatchingSpec
            Expect.equal (oracle.Name, oracle.Translations, oracle.Consistency, oracle.DroStep) ("camel-oracle", "oracle", 20.0, 0.05) "a parameter set by name"
            let tanda = Method.tanda |> Method.set "generator" "mean-field" |> Method.set "tfs" (Tfs.only [ "Rotate", 7; "ShearX", 3 ]) :?> TandaSpec
            Expect.equal (tanda.Generator, tanda.Tfs) ("mean-field", "Rotate:7, ShearX:3") "TANDA's generator and TFs"
            let scheduled = Method.random |> Method.set "magnitude_scale" (Schedule.linear 0.5 1.0 10.0) :?> RandomSpec
            Expect.equal scheduled.MagnitudeScale.Description "linear 0.5→1 over 10" "a Schedule becomes Core's schedule"
            containsAll (dslError (fun () -> Method.baseline |> Method.set "n" 2)) [ "method 'baseline' has no parameter 'n'"; "cutout" ]
            containsAll (dslError (fun () -> Method.adversarial |> Method.set "hidden" "lots")) [ "adversarial.hidden"; "an integer" ]
        }

        test "an experiment's Core configuration carries every setting" {
            let e =
                { Experiment.defaults with
                    Name = "wrn"
                    Model = "wrn-28-10"
                    Data = DataPath "/data/cifar"
                    Method = Method.randAugment 3 7 |> Method.instances (Schedule.linear 2.0 8.0 100.0)
                    TrainLimit = Some 1000
                    Seed = 9L }
            let c = Experiment.toConfig e
            Expect.equal (c.Method.Name, c.Model, c.Data, c.Epochs, c.BatchSize, c.Seed) ("randaugment", "wrn-28-10", "/data/cifar", 200, 128, 9L) "basics"
            let ra = c.Method :?> RandAugmentSpec
            Expect.equal (ra.N, ra.M, ra.Cutout) (3, 7, 16) "RandAugment's parameters, Cutout by default"
            Expect.equal ra.Instances.Description "linear 2→8 over 100" "M's schedule"
            Expect.equal (ra.InstancesAt 50.0) 5 "M at epoch 50"
            Expect.equal c.TrainLimit (Nullable 1000L) "train limit"
            Expect.isFalse c.TestLimit.HasValue "no test limit"
            Expect.equal c.LearningRate.Description "step 0.1 ×0.2 at 60,120,160" "the paper's step for wrn-28-10 over 200 epochs"
            Expect.equal (c.LearningRate.At 130.0) (0.1 * 0.2 * 0.2) "its value"
            Expect.equal (Experiment.toConfig Experiment.defaults).LearningRate.Description "cosine 0.1→0 over 200" "cosine for the small model"
            let coreDefault = TrainConfig(Model = "wrn-28-10", Epochs = 100).Validate().LearningRate
            Expect.equal coreDefault.Description "step 0.1 ×0.2 at 30,60,80" "Core's own default is the paper's schedule too"
            let fromFlag = Experiment.paperLearningRate 0.2 { Experiment.defaults with Epochs = 10 }
            Expect.equal (Schedule.describe fromFlag) "cosine 0.2→0 over 10" "--lr: the paper's shape from another rate"
            Expect.equal (Schedule.at (Schedule.warmup 1.0 fromFlag) 0.5) (0.5 * Schedule.at fromFlag 0.5) "it composes like any schedule"
            let core = TrainConfig()
            let d = Experiment.defaults
            Expect.equal (d.Epochs, d.BatchSize, d.Model, d.Momentum, d.WeightDecay, d.Precision, d.MemoryFormat) (core.Epochs, core.BatchSize, core.Model, core.Momentum, core.WeightDecay, core.Precision, core.MemoryFormat) "the DSL's defaults are Core's"
            Expect.equal (d.Method.ToJson().ToJsonString()) (core.Method.ToJson().ToJsonString()) "the default method too"
            let p = Policy.ofPairs [ [ "Rotate", 3 ] ]
            let recorded = (Experiment.toConfig { e with Method = Method.policy p }).Method.ToJson()
            Expect.equal ((nonNull recorded["policy"]).ToJsonString()) ((PolicyJson.ToJson p).ToJsonString()) "the policy's content is recorded"
            let o = Experiment.withOverrides { Overrides.None with Parameters = [ "n", "5"; "randaugment.m", "11" ] } e
            let withParams = (Experiment.toConfig o).Method :?> RandAugmentSpec
            Expect.equal (withParams.N, withParams.M) (5, 11) "--param sets any parameter by name"
        }

        test "validation names the bad value" {
            let withMethod (f: unit -> MethodSpec) = dslError (fun () -> Experiment.validate { tiny with Method = f () })
            containsAll (invalid { tiny with Epochs = 0 }) [ "epochs = 0"; "at least 1" ]
            containsAll (withMethod (fun () -> tiny.Method |> Method.instances (Schedule.constant 0.0))) [ "adversarial.instances = 0"; "1..4096" ]
            containsAll (withMethod (fun () -> tiny.Method |> Method.instances (Schedule.linear 8.0 0.0 1.0))) [ "adversarial.instances"; "linear 8→0 over 1"; "epoch" ]
            containsAll (invalid { tiny with LearningRate = Some(Schedule.constant -0.1) }) [ "learning rate = -0.1"; "at epoch 0" ]
            containsAll (withMethod (fun () -> tiny.Method |> Method.set "magnitude_scale" (Schedule.constant 20.0))) [ "adversarial.magnitude_scale = 20"; "0..10" ]
            containsAll (withMethod (fun () -> tiny.Method |> Method.set "policy_probability" (Schedule.linear 0.5 1.5 1.0))) [ "adversarial.policy_probability = linear 0.5→1.5 over 1"; "0..1" ]
            containsAll (invalid { tiny with Model = "vgg" }) [ "unknown model 'vgg'"; "small" ]
            containsAll (invalid { tiny with BatchSize = 0 }) [ "batch size = 0"; "at least 1" ]
            containsAll (invalid { tiny with TrainLimit = Some 0 }) [ "train limit = 0"; "at least 1" ]
            containsAll (invalid { tiny with Device = "tpu" }) [ "device = tpu"; "auto, cpu or cuda" ]
            containsAll (invalid { tiny with Name = "a/b" }) [ "Name = \"a/b\"" ]
            containsAll (invalid { tiny with Data = DataPath "" }) [ "data = \"\""; "a folder or archive" ]
            containsAll (withMethod (fun () -> tiny.Method |> Method.set "sub_policies" 0)) [ "adversarial.sub_policies = 0"; "1..1000" ]
            containsAll (withMethod (fun () -> Method.policy (Policy.ofPairs [ [ "Blur", 3 ] ]))) [ "policy.policy"; "unknown op 'Blur'" ]
            containsAll (withMethod (fun () -> Method.policy (Policy.ofPairs [ [ "Rotate", 12 ] ]))) [ "level 12 of Rotate"; "0..9" ]
            containsAll (withMethod (fun () -> Method.randAugment 0 9)) [ "randaugment.n = 0"; "1..64" ]
            containsAll (withMethod (fun () -> Method.randAugment 2 31)) [ "randaugment.m = 31"; "0..30" ]
            containsAll (withMethod (fun () -> Method.uncertainty 2 3)) [ "uncertainty.keep = 3"; "at most candidates = 2" ]
            containsAll (withMethod (fun () -> Method.uncertainty 4 1 |> Method.instances (Schedule.constant 2.0))) [ "method 'uncertainty' has no parameter 'instances'" ]
            containsAll (withMethod (fun () -> Method.named "policy")) [ "policy.policy = (none)"; "a policy file" ]
            containsAll (withMethod (fun () -> Method.named "transfer")) [ "transfer.from = (none)"; "a path" ]
            containsAll (withMethod (fun () -> tiny.Method |> Method.set "cutout" -1)) [ "adversarial.cutout = -1"; "≥ 0" ]
            containsAll (dslError (fun () -> Experiment.withOverrides { Overrides.None with Parameters = [ "randaugment.n", "3" ] } tiny)) [ "for method 'randaugment'"; "'adversarial'" ]
        }

        test "overrides replace exactly the given settings" {
            let o =
                { Overrides.None with
                    Epochs = Some 3
                    Data = Some "/data"
                    Out = Some "out"
                    TestLimit = Some 10 }
            let e = Experiment.withOverrides o { tiny with Seed = 5L; Out = Some "mine" }
            Expect.equal (e.Epochs, e.Seed, e.Device, e.Out, e.TrainLimit, e.TestLimit) (3, 5L, "cpu", Some "out", Some 64, Some 10) "overridden and kept"
            Expect.equal e.Data (DataPath "/data") "data"
            let same = Experiment.withOverrides Overrides.None tiny
            Expect.equal (same.Epochs, same.Out, same.Data) (tiny.Epochs, tiny.Out, tiny.Data) "no overrides, no change"
        }

        test "a script's validation errors point at its let experiment(s) line" {
            use dir = new TempDir()
            let path = dir.File "exp.fsx"
            File.WriteAllLines(path, [ "open AdvAA.Dsl"; ""; "let base = Experiment.defaults"; "let  experiment = base"; "let experiments = []" ])
            let errors r =
                match r with
                | Ok _ -> failtest "expected errors"
                | Error es -> es |> List.map ScriptError.format
            Expect.equal
                (errors (Experiment.resolveScript path { Overrides.None with Epochs = Some 0 } (ScriptExperiments.Single tiny)))
                [ path + ":4:6: error: epochs = 0: expected at least 1" ]
                "the override is validated, reported at the binding"
            let listed =
                errors (Experiment.resolveScript path Overrides.None (ScriptExperiments.Several [ tiny; { tiny with Out = Some "x"; Epochs = -1 } ]))
            Expect.equal listed.Length 3 "duplicate name, Out in a list, bad epochs"
            containsAll (String.concat "\n" listed) [ path + ":5:5: error: "; "'tiny' is used 2 times"; "Out is set"; "experiment 'tiny': epochs = -1" ]
            let ok = Experiment.resolveScript path { Overrides.None with Out = Some "group" } (ScriptExperiments.Several [ tiny; { tiny with Name = "b" } ])
            match ok with
            | Ok(ScriptExperiments.Several es) -> Expect.isTrue (es |> List.forall (fun e -> e.Out.IsNone)) "--out names the group, not each run"
            | _ -> failtest "expected two experiments"
        }

        test "Core's errors carry the setting's path; the script host points at the field that set it" {
            let settingOf (e: Experiment) =
                try
                    Experiment.toConfig e |> ignore
                    failtest "expected an error"
                    None
                with :? DslException as ex -> ex.Field
            Expect.equal (settingOf { tiny with BatchSize = 0 }) (Some "BatchSize") "batch_size is BatchSize"
            Expect.equal (settingOf { tiny with EvalEvery = 0 }) (Some "EvalEvery") "eval_every is EvalEvery"
            Expect.equal (settingOf { tiny with LearningRate = Some(Schedule.constant -1.0) }) (Some "LearningRate") "learning_rate is LearningRate"
            Expect.equal (settingOf { tiny with Method = tiny.Method |> Method.instances (Schedule.constant 0.0) }) (Some "Method") "method.instances is the method's"
            Expect.equal (settingOf { tiny with Method = Method.randAugment 0 9 }) (Some "Method") "a method's own value"
            use dir = new TempDir()
            let path = dir.File "exp.fsx"
            File.WriteAllLines(
                path,
                [ "open AdvAA.Dsl"
                  "let experiment ="
                  "    { Experiment.defaults with"
                  "        Name = \"tiny\""
                  "        // Method = Method.adversarial"
                  "        Method = Method.adversarial |> Method.set \"hidden\" 0 }" ])
            match Experiment.resolveScript path Overrides.None (ScriptExperiments.Single { tiny with Method = Method.adversarial |> Method.set "hidden" 0 }) with
            | Error [ problem ] -> Expect.equal (problem.Line, problem.Column) (6, 9) "the Method line (not the comment)"
            | other -> failtestf "expected one error, got %A" other
        }

        test "describe shows the resolved experiment" {
            let lines = Experiment.describe { tiny with Space = Space.paper |> Space.add (Space.custom "Noise" (0.0, 8.0) (fun i _ -> i)) }
            let text = String.concat "\n" lines
            containsAll text [ "name           tiny"; "epochs         1, batch 32 per instance"; "instances = 2"; "17 ops, 10 levels"; "Noise          0 → 8            (custom)"; "training images 64" ]
            let baseline = Experiment.describe { tiny with Method = Method.baseline } |> String.concat "\n"
            Expect.isFalse (baseline.Contains "search space") "no space for a method that uses none"
        }

        test "known errors are reported as messages, others are not" {
            Expect.equal (Runner.errorMessage (TrainingDivergedException "loss NaN")) (Some "loss NaN") "diverged"
            Expect.equal (Runner.errorMessage (ConfigException "bad")) (Some "bad") "config"
            Expect.isNone (Runner.errorMessage (NullReferenceException())) "a bug keeps its trace"
        }
    ]
