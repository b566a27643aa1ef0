namespace AdvAA.Dsl

open System
open System.Globalization

/// Argument checks and number formatting shared by the schedule type and its module.
module internal ScheduleArgs =
    /// Shortest round-trip text, invariant culture: 0.1 → "0.1", 60.0 → "60".
    let num (v: float) = v.ToString("R", CultureInfo.InvariantCulture)

    let fail message = raise (DslException message)

    let finite (what: string) (v: float) =
        if Double.IsNaN v || Double.IsInfinity v then
            fail (sprintf "%s must be a finite number, got %s" what (num v))

    let positive (what: string) (v: float) =
        finite what v
        if v <= 0.0 then fail (sprintf "%s must be > 0, got %s" what (num v))

/// A value over training progress, measured in (fractional) epochs from 0: a learning rate, a
/// magnitude scale, the number of instances M, a probability. Build it with the functions of the
/// `Schedule` module, evaluate it with `Schedule.at`. `a * b` multiplies two schedules, `k * s`
/// scales one.
[<NoEquality; NoComparison>]
type Schedule =
    private
    | Constant of value: float
    | Linear of first: float * last: float * epochs: float
    | Cosine of first: float * last: float * epochs: float
    | Step of initial: float * factor: float * milestones: float list
    | Warmup of start: float * epochs: float * target: Schedule
    /// (end epoch, schedule) pieces in order, then the rest; each sees epochs from its own start.
    | Piecewise of pieces: (float * Schedule) list * rest: Schedule
    | Product of Schedule * Schedule
    | Map of (float -> float) * Schedule
    | Clamp of lo: float * hi: float * Schedule
    /// A schedule AdvAA.Core made (the paper's learning rate).
    | FromCore of AdvAA.Core.EpochSchedule

    static member (*) (a: Schedule, b: Schedule) = Product(a, b)

    static member (*) (k: float, s: Schedule) =
        ScheduleArgs.finite "a schedule's scale factor" k
        Product(Constant k, s)

    static member (*) (s: Schedule, k: float) =
        ScheduleArgs.finite "a schedule's scale factor" k
        Product(s, Constant k)

/// Building, evaluating, describing and validating schedules.
[<RequireQualifiedAccess>]
module Schedule =
    open ScheduleArgs

    /// The same value throughout.
    let constant (value: float) =
        finite "Schedule.constant: the value" value
        Constant value

    /// From `first` at epoch 0 to `last` at `epochs`, in a straight line; then holds `last`.
    let linear (first: float) (last: float) (epochs: float) =
        finite "Schedule.linear: the start value" first
        finite "Schedule.linear: the end value" last
        positive "Schedule.linear: the length in epochs" epochs
        Linear(first, last, epochs)

    /// From `first` at epoch 0 to `last` at `epochs` along a half cosine; then holds `last`.
    let cosine (first: float) (last: float) (epochs: float) =
        finite "Schedule.cosine: the start value" first
        finite "Schedule.cosine: the end value" last
        positive "Schedule.cosine: the length in epochs" epochs
        Cosine(first, last, epochs)

    /// `initial`, multiplied by `factor` at each milestone epoch (from that epoch on):
    /// `step 0.1 0.2 [60; 120; 160]` is the paper's learning rate.
    let step (initial: float) (factor: float) (milestones: float list) =
        finite "Schedule.step: the initial value" initial
        finite "Schedule.step: the factor" factor
        milestones |> List.iter (positive "Schedule.step: a milestone epoch")
        for a, b in List.pairwise milestones do
            if b <= a then fail (sprintf "Schedule.step: milestones must increase, but %s follows %s" (num b) (num a))
        Step(initial, factor, milestones)

    /// Ramps linearly from `start` at epoch 0 to `target`'s value at `epochs`, following `target`
    /// (which keeps its own epochs: milestones stay where they are); then `target` alone.
    let warmupFrom (start: float) (epochs: float) (target: Schedule) =
        finite "Schedule.warmupFrom: the start value" start
        positive "Schedule.warmup: the length in epochs" epochs
        Warmup(start, epochs, target)

    /// `warmupFrom 0.0`: ramps from 0 to `target` over the first `epochs`.
    let warmup (epochs: float) (target: Schedule) = warmupFrom 0.0 epochs target

    /// Each (end epoch, schedule) piece in turn, then `rest`; every piece sees epochs counted from
    /// its own start: `piecewise [ 5.0, linear 0.0 1.0 5.0 ] (cosine 1.0 0.0 195.0)`.
    let piecewise (pieces: (float * Schedule) list) (rest: Schedule) =
        if List.isEmpty pieces then
            fail "Schedule.piecewise: give at least one (end epoch, schedule) piece before the last schedule"
        pieces |> List.iteri (fun i (until, _) -> positive (sprintf "Schedule.piecewise: the end epoch of piece %d" (i + 1)) until)
        pieces
        |> List.pairwise
        |> List.iteri (fun i ((a, _), (b, _)) ->
            if b <= a then
                fail (sprintf "Schedule.piecewise: end epochs must increase, but piece %d ends at %s and piece %d at %s" (i + 1) (num a) (i + 2) (num b)))
        Piecewise(pieces, rest)

    /// `first` until `epoch`, then `next` with epochs counted from `epoch`:
    /// `linear 0.0 1.0 5.0 |> Schedule.andThen 5.0 (cosine 1.0 0.0 195.0)`.
    let andThen (epoch: float) (next: Schedule) (first: Schedule) =
        positive "Schedule.andThen: the switch epoch" epoch
        match first with
        // Extending a piecewise schedule past its last piece keeps one flat list (and one readable description).
        | Piecewise(pieces, rest) when epoch > fst (List.last pieces) -> Piecewise(pieces @ [ epoch, rest ], next)
        | _ -> Piecewise([ epoch, first ], next)

    /// Every value multiplied by `k`.
    let scale (k: float) (s: Schedule) = k * s

    /// `f` applied to every value.
    let map (f: float -> float) (s: Schedule) = Map(f, s)

    /// Every value limited to [lo, hi].
    let clamp (lo: float) (hi: float) (s: Schedule) =
        finite "Schedule.clamp: the lower bound" lo
        finite "Schedule.clamp: the upper bound" hi
        if lo > hi then fail (sprintf "Schedule.clamp: the lower bound %s is above the upper bound %s" (num lo) (num hi))
        Clamp(lo, hi, s)

    /// The value at `epoch` (fractional: epoch 2.5 is half-way through the third epoch).
    let rec at (s: Schedule) (epoch: float) : float =
        match s with
        | Constant v -> v
        | Linear(a, b, n) ->
            if epoch <= 0.0 then a
            elif epoch >= n then b
            else a + (b - a) * epoch / n
        | Cosine(a, b, n) ->
            if epoch <= 0.0 then a
            elif epoch >= n then b
            else b + (a - b) * (1.0 + cos (Math.PI * epoch / n)) / 2.0
        | Step(v0, f, milestones) -> milestones |> List.fold (fun v m -> if epoch >= m then v * f else v) v0
        | Warmup(start, n, target) ->
            let v = at target epoch
            if epoch >= n then v
            elif epoch <= 0.0 then start
            else start + (v - start) * epoch / n
        | Piecewise(pieces, rest) ->
            let rec from start pieces =
                match pieces with
                | (until, piece) :: more -> if epoch < until then at piece (epoch - start) else from until more
                | [] -> at rest (epoch - start)
            from 0.0 pieces
        | Product(a, b) -> at a epoch * at b epoch
        | Map(f, inner) -> f (at inner epoch)
        | FromCore s -> s.At epoch
        | Clamp(lo, hi, inner) -> Math.Clamp(at inner epoch, lo, hi)

    /// The value at `epoch` rounded to the nearest integer (halves away from zero), e.g. for M.
    let atRounded (s: Schedule) (epoch: float) : int =
        int (Math.Round(at s epoch, MidpointRounding.AwayFromZero))

    /// A readable formula, e.g. "warmup 5 (step 0.1 ×0.2 at 60,120,160)".
    let rec describe (s: Schedule) : string =
        let wrapped s = "(" + describe s + ")"
        let operand s =
            match s with
            | Constant v -> num v
            | _ -> wrapped s
        match s with
        | Constant v -> num v
        | Linear(a, b, n) -> sprintf "linear %s→%s over %s" (num a) (num b) (num n)
        | Cosine(a, b, n) -> sprintf "cosine %s→%s over %s" (num a) (num b) (num n)
        | Step(v0, f, milestones) ->
            sprintf "step %s ×%s at %s" (num v0) (num f) (milestones |> List.map num |> String.concat ",")
        | Warmup(0.0, n, target) -> sprintf "warmup %s %s" (num n) (wrapped target)
        | Warmup(start, n, target) -> sprintf "warmup %s from %s %s" (num n) (num start) (wrapped target)
        | Piecewise(pieces, rest) ->
            let part s =
                match s with
                | Piecewise _ -> wrapped s
                | _ -> describe s
            let parts = pieces |> List.map (fun (until, p) -> sprintf "%s until %s" (part p) (num until))
            String.concat ", then " (parts @ [ part rest ])
        | Product(a, b) -> sprintf "%s × %s" (operand a) (operand b)
        | Map(_, inner) -> sprintf "map %s" (wrapped inner)
        | Clamp(lo, hi, inner) -> sprintf "clamp %s..%s %s" (num lo) (num hi) (wrapped inner)
        | FromCore s -> s.Description

    /// Epochs where the schedule changes shape (milestones, ends of ramps, piece boundaries):
    /// validation checks them besides its uniform grid, so jumps are never stepped over.
    /// Epochs where the schedule changes shape (steps, the ends of pieces and warm-ups): validation checks them besides its grid.
    let rec breakpoints (s: Schedule) : float list =
        match s with
        | Constant _ -> []
        | Linear(_, _, n)
        | Cosine(_, _, n) -> [ n ]
        | Step(_, _, milestones) -> milestones
        | Warmup(_, n, target) -> n :: breakpoints target
        | Piecewise(pieces, rest) ->
            let starts = 0.0 :: List.map fst pieces
            let parts = List.map snd pieces @ [ rest ]
            List.zip starts parts
            |> List.collect (fun (start, p) -> start :: (breakpoints p |> List.map ((+) start)))
        | Product(a, b) -> breakpoints a @ breakpoints b
        | Map(_, inner)
        | Clamp(_, _, inner) -> breakpoints inner
        | FromCore s -> List.ofSeq s.Breakpoints

    /// The schedule as a delegate from epoch to value, for AdvAA.Core.
    let toFunc (s: Schedule) : Func<float, float> = Func<float, float>(at s)

    /// The schedule as AdvAA.Core takes it: its values, its description and its breakpoints.
    let toCore (s: Schedule) =
        match s with
        | FromCore core -> core
        | _ -> AdvAA.Core.EpochSchedule(toFunc s, describe s, List.toArray (breakpoints s))

    /// A schedule of AdvAA.Core as a DSL schedule (it composes with the others).
    let ofCore (s: AdvAA.Core.EpochSchedule) = FromCore s

    /// Ok when `s` stays within [lo, hi] over epochs 0..totalEpochs (Core's check of every
    /// schedule: a fine grid, every whole and half epoch and every breakpoint); else an error naming
    /// the schedule, the first epoch where it leaves the range and its value there.
    let validate (name: string) (lo: float) (hi: float) (totalEpochs: int) (s: Schedule) : Result<unit, string> =
        if not (lo <= hi) then
            Error(sprintf "schedule '%s': the allowed range [%s, %s] is empty" name (num lo) (num hi))
        elif totalEpochs < 1 then
            Error(sprintf "schedule '%s': the run length must be at least 1 epoch, got %d" name totalEpochs)
        else
            match (toCore s).FirstInvalid(totalEpochs, fun v -> v >= lo && v <= hi) |> Option.ofNullable with
            | None -> Ok()
            | Some(struct (epoch, value)) ->
                let range = if Double.IsPositiveInfinity hi then sprintf "[%s, ∞)" (num lo) else sprintf "[%s, %s]" (num lo) (num hi)
                Error(sprintf "schedule '%s' = %s leaves %s at epoch %s: its value there is %s" name (describe s) range (num epoch) (num value))

