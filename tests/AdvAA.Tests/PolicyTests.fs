/// Policies: the JSON format, the built-in policy sources and their per-sample sampling.
module AdvAA.Tests.PolicyTests

open System.IO
open Expecto
open TorchSharp
open AdvAA.Core.Augment
open AdvAA.Tests.TestSupport
open AdvAA.Tests.AugmentSupport
open AdvAA.Tests.AugmentTests

let private policy (subs: (string * int * float) list list) =
    Policy([| for s in subs -> SubPolicy([| for (op, level, p) in s -> PolicyStage(op, level, p) |]) |])

/// Every image `space` can make from `image` with one op at one of `levels` (both signs): key -> (op, level).
let private candidates (space: SearchSpace) (image: torch.Tensor) (levels: int list) =
    let cases =
        [ for op in 0 .. space.Ops.Count - 1 do
            for level in levels do
                let d = space.Ops[op]
                let v = d.ValueAt(float level, space.Levels)
                yield op, level, float32 v
                if d.Signed then yield op, level, float32 (d.Reflect v) ]
    use batch = copies image cases.Length
    use ids = longs [ for op, _, _ in cases -> int64 op ]
    use values = floats [ for _, _, v in cases -> v ]
    use out = BatchAugment.ApplyValues(batch, space, ids, values, null)
    cases |> List.mapi (fun i (op, level, _) -> key out[int64 i], (space.Ops[op].Name, level)) |> Map.ofList

[<Tests>]
let jsonTests =
    testList "policy.json" [
        test "an op or level the search space lacks is named with the file and the stage's JSON path" {
            use dir = new TempDir()
            let path = dir.File "p.json"
            let check (json: string) =
                File.WriteAllText(path, json)
                let document = PolicyJson.ReadDocument path
                throwsMessage<AugmentException> (fun () -> PolicyJson.CheckAgainst(document, SearchSpace.Default))
            containsAll (check """{ "format": "advaa-policy", "version": 1, "subPolicies": [ [ { "op": "Rotate", "level": 4 }, { "op": "Wobble", "level": 3 } ] ] }""")
                [ path + ": $.subPolicies[0][1].op: unknown op 'Wobble'"; "this search space has: ShearX" ]
            containsAll (check """{ "format": "advaa-policy", "version": 2, "policies": [ [ [ { "op": "Rotate", "level": 4 } ] ], [ [ { "op": "Color", "level": 12 } ] ] ] }""")
                [ path + ": $.policies[1][0][0].level is 12; expected a whole number in 0..9" ]
        }

        test "policies survive a JSON round trip (file and string)" {
            let p = policy [ [ "Invert", 0, 0.1; "Contrast", 6, 0.2 ]; [ "Rotate", 9, 1.0 ]; [ "Add", 3, 0.25; "Equalize", 0, 1.0; "ShearX", 1, 0.5 ] ]
            Expect.equal (PolicyJson.Parse(PolicyJson.Serialize p)) p "string"
            use dir = new TempDir()
            let path = dir.File "p.json"
            PolicyJson.Write(AutoAugmentPolicy.Cifar10, path)
            Expect.equal (PolicyJson.Read path) AutoAugmentPolicy.Cifar10 "file"
            let text = File.ReadAllText path
            containsAll text [ "\"format\": \"advaa-policy\""; "\"version\": 1"; "\"subPolicies\"" ]
            Expect.isFalse ((PolicyJson.Serialize(policy [ [ "Rotate", 2, 1.0 ] ])).Contains "probability") "probability 1 is left out"
        }

        test "bad files are errors naming the source, the JSON path and the value" {
            let bad (json: string) (parts: string list) =
                containsAll (throwsMessage<AugmentException> (fun () -> PolicyJson.Parse(json, "p.json") |> ignore)) ("p.json" :: parts)
            let wrap (subs: string) = sprintf """{"format": "advaa-policy", "version": 1, "subPolicies": %s}""" subs
            bad """{"format": "other", "version": 1, "subPolicies": []}""" [ "$.format"; "\"other\""; "advaa-policy" ]
            bad """{"format": "advaa-policy", "version": 3, "subPolicies": [[{"op": "Invert", "level": 0}]]}""" [ "$.version"; "3"; "1 or 2" ]
            bad """{"format": "advaa-policy", "version": 2, "subPolicies": [[{"op": "Invert", "level": 0}]]}""" [ "$.subPolicies is not a field"; "policies" ]
            bad """{"format": "advaa-policy", "version": 2, "policies": [[[{"op": "Invert", "level": 0}]]]}""" [ "holds 1 policy for one instance each"; "version 1" ]
            bad """{"format": "advaa-policy", "version": 1}""" [ "$.subPolicies"; "missing" ]
            bad (wrap "[]") [ "$.subPolicies"; "non-empty" ]
            bad (wrap """[[{"op": "Invert", "level": 0}], []]""") [ "$.subPolicies[1]"; "[]"; "stages" ]
            bad (wrap """[[{"op": "Invert", "level": -1}]]""") [ "$.subPolicies[0][0].level"; "-1"; "whole number" ]
            bad (wrap """[[{"op": "Invert", "level": 0}, {"op": "Rotate", "level": 1.5}]]""") [ "$.subPolicies[0][1].level"; "1.5" ]
            bad (wrap """[[{"op": "Invert", "level": 0, "probability": 2}]]""") [ "$.subPolicies[0][0].probability"; "2"; "0..1" ]
            bad (wrap """[[{"op": 3, "level": 0}]]""") [ "$.subPolicies[0][0].op"; "3"; "op name" ]
            bad (wrap """[[{"op": "Invert", "levle": 0}]]""") [ "$.subPolicies[0][0].levle"; "not a field"; "level" ]
            bad """{"format": "advaa-policy", "version": 1, "subPolicies": [[{"op": "Invert" """ [ "not valid JSON"; "line 1" ]
            let withSpace (json: string) = PolicyJson.Parse(json, "p.json", SearchSpace.Default) |> ignore
            containsAll (throwsMessage<AugmentException> (fun () -> withSpace (wrap """[[{"op": "Blur", "level": 0}]]""")))
                [ "p.json"; "$.subPolicies[0][0].op"; "'Blur'"; "Rotate" ]
            containsAll (throwsMessage<AugmentException> (fun () -> withSpace (wrap """[[{"op": "Rotate", "level": 10}]]""")))
                [ "$.subPolicies[0][0].level"; "10"; "0..9" ]
            containsAll (throwsMessage<AugmentException> (fun () -> PolicyJson.Read "/nonexistent/p.json" |> ignore)) [ "/nonexistent/p.json"; "cannot read" ]
        }

        test "binding a policy to a space checks op names and levels" {
            containsAll (throwsMessage<AugmentException> (fun () -> PolicyAugment(policy [ [ "Rotate", 1, 1.0 ]; [ "Blur", 0, 1.0 ] ], SearchSpace.Default) |> ignore))
                [ "sub-policy 1, stage 0"; "'Blur'" ]
            containsAll (throwsMessage<AugmentException> (fun () -> PolicyAugment(policy [ [ "Rotate", 12, 1.0 ] ], SearchSpace.Default) |> ignore))
                [ "sub-policy 0, stage 0"; "level 12"; "0..9" ]
        }
    ]

[<Tests>]
let samplingTests =
    testList "policy.sampling" [
        test "a fixed policy picks a sub-policy per sample, uniformly, and fires each stage with its probability" {
            let n = 400
            use image = testImages 17 1 3 16 16
            use images = copies image[0L] n
            let source = PolicyAugment(policy [ [ "Invert", 0, 1.0 ]; [ "Posterize", 9, 1.0 ] ], SearchSpace.Default)
            use g = new torch.Generator(1UL)
            use out = source.Augment(images, g)
            use inverted = image.neg().add((255).ToScalar()).to_type(torch.uint8)
            use posterized = image.bitwise_and(torch.tensor(0xF0uy))
            let kinds = [ for i in 0L .. int64 n - 1L -> if same out[i] (inverted[0L]) then "invert" elif same out[i] (posterized[0L]) then "posterize" else "other" ]
            Expect.isFalse (List.contains "other" kinds) "every sample got one of the two sub-policies"
            let inverts = kinds |> List.filter ((=) "invert") |> List.length
            Expect.isTrue (inverts > 150 && inverts < 250) (sprintf "about half each (%d of %d inverted)" inverts n)
            let rare = PolicyAugment(policy [ [ "Invert", 0, 0.3 ] ], SearchSpace.Default)
            use some = rare.Augment(images, g)
            let fired = [ for i in 0L .. int64 n - 1L -> same some[i] (inverted[0L]) ] |> List.filter id |> List.length
            let unchanged = [ for i in 0L .. int64 n - 1L -> same some[i] (image[0L]) ] |> List.filter id |> List.length
            Expect.equal (fired + unchanged) n "a stage either fires or leaves the image alone"
            Expect.isTrue (fired > 80 && fired < 160) (sprintf "probability 0.3 (%d of %d fired)" fired n)
        }

        test "AutoAugment's CIFAR-10 policy: 25 sub-policies of 2 stages, per-sample draws, reproducible" {
            let p = AutoAugmentPolicy.Cifar10
            Expect.equal p.SubPolicies.Count 25 "25 sub-policies"
            Expect.isTrue (p.SubPolicies |> Seq.forall (fun s -> s.Stages.Count = 2)) "2 stages each"
            Expect.equal p.SubPolicies[0].Stages[1] (PolicyStage("Contrast", 6, 0.2)) "the first sub-policy's second stage"
            let source = AutoAugmentPolicy.Cifar10Source()
            use image = testImages 23 1 3 32 32
            use images = copies image[0L] 300
            use g1 = new torch.Generator(7UL)
            use g2 = new torch.Generator(7UL)
            use a = source.Augment(images, g1)
            use b = source.Augment(images, g2)
            Expect.equal (differences a b) 0L "same seed, same result"
            let distinct = [ for i in 0L .. 299L -> key a[i] ] |> List.distinct |> List.length
            Expect.isGreaterThan distinct 30 "identical images come out differently: each sample draws its own"
        }

        test "RandAugment: each sample gets n ops drawn from the space at level m" {
            let source = RandAugment(1, 30)
            Expect.equal (source.Space.Ops.Count, source.Space.Levels) (14, 31) "RandAugment's 14 ops, 31 levels"
            use image = testImages 29 1 3 32 32
            use images = copies image[0L] 300
            let made = candidates source.Space image[0L] [ 30 ]
            use g = new torch.Generator(3UL)
            use out = source.Augment(images, g)
            let ops = [ for i in 0L .. 299L -> made.TryFind(key out[i]) ]
            Expect.isTrue (ops |> List.forall Option.isSome) "each output is one op at level 30"
            Expect.isGreaterThanOrEqual (ops |> List.choose id |> List.map fst |> List.distinct |> List.length) 12 "most ops drawn"
            containsAll (throwsMessage<AugmentException> (fun () -> RandAugment(2, 31) |> ignore)) [ "m"; "31"; "0..30" ]
            containsAll (throwsMessage<AugmentException> (fun () -> RandAugment(0, 9) |> ignore)) [ "n"; "0" ]
        }

        test "TrivialAugment: each sample gets one op at one level, both uniform (wide and standard spaces)" {
            for wide in [ true; false ] do
                let source = TrivialAugment(wide)
                Expect.equal (source.Space.Ops.Count, source.Space.Levels) (14, 31) source.Name
                use image = testImages 31 1 3 32 32
                use images = copies image[0L] 400
                let made = candidates source.Space image[0L] [ 0 .. source.Space.Levels - 1 ]
                use g = new torch.Generator(11UL)
                use out = source.Augment(images, g)
                let drawn = [ for i in 0L .. 399L -> made.TryFind(key out[i]) ]
                Expect.isTrue (drawn |> List.forall Option.isSome) (sprintf "%s: each output is one op at one level" source.Name)
                Expect.isGreaterThan (drawn |> List.choose id |> List.map snd |> List.distinct |> List.length) 15 "many levels drawn"
            let wideRotate = TrivialAugment.WideSpace.Ops |> Seq.find (fun o -> o.Name = "Rotate")
            Expect.equal wideRotate.High 135.0 "wide: rotate up to 135°"
        }

        test "policies name custom ops like built-ins" {
            let space = SearchSpace([| OpTable.Get "Invert"; OpDefinition.Custom("Add", "adds v", 0.0, 90.0) |], 10, [| AddOp() :> ICustomOp |])
            let p = PolicyJson.Parse("""{"format": "advaa-policy", "version": 1, "subPolicies": [[{"op": "add", "level": 9}]]}""", "custom.json", space)
            Expect.equal p.SubPolicies[0].Stages[0].Op "Add" "the name as the space spells it"
            use images = testImages 37 5 3 8 8
            use g = new torch.Generator(1UL)
            use out = PolicyAugment(p, space).Augment(images, g)
            Expect.sequenceEqual (bytesOf out) (bytesOf images |> Array.map (fun b -> byte (min 255 (int b + 90)))) "Add 90 on every sample"
        }
    ]
