namespace AdvAA.Dsl

open System
open TorchSharp
open AdvAA.Core.Augment

/// A user op written in F#: `Apply images magnitudes` gets uint8 [n,C,H,W] images (the samples that
/// chose the op, on the batch's device) and their float32 [n] raw magnitudes (after the random sign),
/// and returns uint8 images of the same shape on the same device. Build one with `Space.custom`.
[<NoEquality; NoComparison>]
type CustomOp =
    { Name: string
      Description: string
      /// Raw magnitude at level 0 and at the top level; None for an op without magnitude (it gets 0).
      Range: (float * float) option
      /// Whether each application draws a random sign (the magnitude is then reflected about 0).
      Signed: bool
      Apply: torch.Tensor -> torch.Tensor -> torch.Tensor }

    interface ICustomOp with
        member op.Name = op.Name

        member op.Apply(images, magnitudes) =
            // The user's code runs deep inside a training step: name the op in whatever it throws.
            try
                op.Apply images magnitudes
            with
            | :? AugmentException
            | :? DslException -> reraise ()
            | e ->
                let what = if e.GetType() = typeof<Exception> then e.Message else sprintf "%s: %s" (e.GetType().Name) e.Message
                raise (DslException(sprintf "custom op '%s' failed on %d images: %s" op.Name images.shape[0] what))

/// A search space: the ops the controller chooses from (in order), their magnitude ranges and
/// signs, and the number of magnitude levels. Start from `Space.paper` and change it with the
/// functions of the `Space` module.
[<NoEquality; NoComparison>]
type Space =
    private
        { Ops: OpDefinition list
          Customs: CustomOp list
          Levels: int }

    /// The op names, in controller order.
    member s.OpNames = s.Ops |> List.map (fun o -> o.Name)
    /// The number of magnitude levels.
    member s.LevelCount = s.Levels

/// Building search spaces; every function checks its arguments and names a bad value.
[<RequireQualifiedAccess>]
module Space =
    let private fail message = raise (DslException message)

    let private sameName (a: string) (b: string) = String.Equals(a, b, StringComparison.OrdinalIgnoreCase)

    let private has (s: Space) (name: string) = s.Ops |> List.exists (fun o -> sameName o.Name name)

    let private find (what: string) (s: Space) (name: string) =
        match s.Ops |> List.tryFind (fun o -> sameName o.Name name) with
        | Some o -> o
        | None -> fail (sprintf "%s: unknown op '%s'; this space has %s" what name (s.OpNames |> String.concat ", "))

    /// Core's own checks (valid raw values, levels) as DSL errors.
    let private guard (what: string) (f: unit -> 'T) =
        try f () with :? AugmentException as e -> fail (sprintf "%s: %s" what e.Message)

    let private replace (s: Space) (op: OpDefinition) =
        { s with Ops = s.Ops |> List.map (fun o -> if sameName o.Name op.Name then op else o) }

    /// The Adversarial AutoAugment paper's space (DESIGN.md): 16 ops, their default ranges, 10 levels.
    let paper: Space =
        { Ops = List.ofSeq SearchSpace.Default.Ops
          Customs = []
          Levels = SearchSpace.Default.Levels }

    /// A space of these built-in ops (from the op table, Identity included), in this order, 10 levels.
    let ofOps (names: string list) : Space =
        if List.isEmpty names then fail "Space.ofOps []: a search space needs at least one op"
        match names |> List.countBy (fun n -> n.ToLowerInvariant()) |> List.tryFind (fun (_, k) -> k > 1) with
        | Some(name, _) -> fail (sprintf "Space.ofOps: op '%s' is listed twice" name)
        | None -> ()
        { Ops = names |> List.map (fun n -> guard "Space.ofOps" (fun () -> OpTable.Get n))
          Customs = []
          Levels = 10 }

    /// Removes these ops; removing all of them is an error.
    let without (names: string list) (s: Space) : Space =
        names |> List.iter (find "Space.without" s >> ignore)
        let kept = s.Ops |> List.filter (fun o -> not (names |> List.exists (sameName o.Name)))
        if List.isEmpty kept then
            fail (sprintf "Space.without [%s] leaves an empty search space" (String.concat "; " names))
        { s with
            Ops = kept
            Customs = s.Customs |> List.filter (fun c -> kept |> List.exists (fun o -> sameName o.Name c.Name)) }

    /// Keeps only these ops (in the space's order).
    let only (names: string list) (s: Space) : Space =
        if List.isEmpty names then fail "Space.only []: a search space needs at least one op"
        names |> List.iter (find "Space.only" s >> ignore)
        s |> without (s.OpNames |> List.filter (fun n -> not (names |> List.exists (sameName n))))

    /// Sets an op's magnitude range to [lo, hi] (lo ≤ hi), keeping its direction: an op whose
    /// strength grows as its value falls (Solarize's threshold, Posterize's bits) still goes from hi
    /// at level 0 to lo at the top level.
    let range (name: string) (lo: float, hi: float) (s: Space) : Space =
        let what = sprintf "Space.range %s" name
        let op = find what s name
        if not op.HasMagnitude then fail (sprintf "%s: %s has no magnitude, so no range" what op.Name)
        if not (Double.IsFinite lo && Double.IsFinite hi) then fail (sprintf "%s: the range (%g, %g) must be finite" what lo hi)
        if lo > hi then fail (sprintf "%s: lo = %g is above hi = %g (give the range as (lo, hi))" what lo hi)
        let descending = op.Low > op.High
        replace s (guard what (fun () -> if descending then op.WithRange(hi, lo) else op.WithRange(lo, hi)))

    /// Turns an op's random sign on or off.
    let signed (name: string) (isSigned: bool) (s: Space) : Space =
        let what = sprintf "Space.signed %s" name
        let op = find what s name
        if not op.HasMagnitude && isSigned then fail (sprintf "%s: %s has no magnitude to sign" what op.Name)
        replace s (guard what (fun () -> op.WithSigned isSigned))

    /// Sets the number of magnitude levels (at least 2); levels 0..count−1 map linearly onto each range.
    let levels (count: int) (s: Space) : Space =
        if count < 2 then fail (sprintf "Space.levels %d: a search space needs at least 2 levels" count)
        { s with Levels = count }

    /// Adds a built-in op from the op table (e.g. Identity, which the paper's space leaves out).
    let addBuiltIn (name: string) (s: Space) : Space =
        if has s name then fail (sprintf "Space.addBuiltIn: %s is already in the space" name)
        { s with Ops = s.Ops @ [ guard "Space.addBuiltIn" (fun () -> OpTable.Get name) ] }

    let private checkName (what: string) (name: string) =
        if String.IsNullOrWhiteSpace name then fail (sprintf "%s: an op needs a non-empty name" what)

    /// A custom op whose magnitude goes from `lo` at level 0 to `hi` at the top level, unsigned
    /// (`{ op with Signed = true }` draws a random sign). `apply images magnitudes` is batched:
    /// see `CustomOp`.
    let custom (name: string) (lo: float, hi: float) (apply: torch.Tensor -> torch.Tensor -> torch.Tensor) : CustomOp =
        checkName "Space.custom" name
        if not (Double.IsFinite lo && Double.IsFinite hi) then
            fail (sprintf "Space.custom %s: the range (%g, %g) must be finite" name lo hi)
        { Name = name
          Description = sprintf "user op %s (%g → %g)" name lo hi
          Range = Some(lo, hi)
          Signed = false
          Apply = apply }

    /// A custom op without a magnitude: `apply images` gets uint8 [n,C,H,W] and returns the same shape.
    let customWithoutMagnitude (name: string) (apply: torch.Tensor -> torch.Tensor) : CustomOp =
        checkName "Space.customWithoutMagnitude" name
        { Name = name
          Description = sprintf "user op %s" name
          Range = None
          Signed = false
          Apply = fun images _ -> apply images }

    /// Adds a custom op at the end: it is then sampled, applied and named in policy files like a built-in.
    let add (op: CustomOp) (s: Space) : Space =
        checkName "Space.add" op.Name
        if has s op.Name then fail (sprintf "Space.add: an op named %s is already in the space" op.Name)
        let definition =
            guard (sprintf "Space.add %s" op.Name) (fun () ->
                match op.Range with
                | Some(lo, hi) -> OpDefinition.Custom(op.Name, op.Description, lo, hi, op.Signed)
                | None when op.Signed -> raise (AugmentException "an op without magnitude cannot be signed")
                | None -> OpDefinition.CustomWithoutMagnitude(op.Name, op.Description))
        { s with Ops = s.Ops @ [ definition ]; Customs = s.Customs @ [ op ] }

    /// The Core search space the trainer uses.
    let toCore (s: Space) : SearchSpace =
        guard "search space" (fun () ->
            SearchSpace(Array.ofList s.Ops, s.Levels, s.Customs |> List.map (fun c -> c :> ICustomOp) |> Array.ofList))

    /// The space as it applies to side×side images: default pixel ranges (translate, cutout) scaled to that size, ranges set by hand kept.
    let sizedTo (side: int) (s: Space) : Space =
        { s with Ops = List.ofSeq ((toCore s).SizedTo(side, side).Ops) }

    /// One line per op: name, range (level 0 → top level), sign, and whether it is a user op.
    let describe (s: Space) : string list =
        [ for o in s.Ops ->
              let tags =
                  [ if o.Signed then "±"
                    if o.Kind = OpKind.Custom then "(custom)" ]
                  |> String.concat " "
              (sprintf "%-14s %-16s %s" o.Name o.RangeText tags).TrimEnd() ]
