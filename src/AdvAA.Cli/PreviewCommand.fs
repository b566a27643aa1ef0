/// `advaa preview`: a PNG grid of augmented images. Rows: the originals, then ops at chosen levels
/// (`--op NAME --level L`, repeatable) and/or draws of a policy (`--policy`); columns: images.
module AdvAA.Cli.PreviewCommand

open System
open System.IO
open Argu
open TorchSharp
open AdvAA.Core.Augment
open AdvAA.Core.Data
open AdvAA.Cli.Common

type PreviewArgs =
    | Op of name: string
    | Level of level: int
    | [<Unique>] Policy of source: string
    | [<Unique>] Rows of count: int
    | [<Unique>] Images of count: int
    | [<Unique>] Out of png: string
    | [<Unique>] Data of path: string
    | [<Unique>] Seed of seed: int
    | [<Unique>] Scale of factor: int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Op _ -> "an op (see `advaa ops`) for one row; repeatable, each with a --level."
            | Level _ -> "the level (0..9) of the --op at the same position."
            | Policy _ -> "a policy file (advaa-policy JSON), or autoaugment, randaugment, trivialaugment."
            | Rows _ -> "rows of policy draws (default 4); every image draws its own sub-policy per row."
            | Images _ -> "images per row (default 8), drawn from the data by --seed."
            | Out _ -> "the PNG to write (default preview.png)."
            | Data _ -> "a data path (e.g. a CIFAR-10 folder); default: the embedded sample."
            | Seed _ -> "seed for the images, signs and policy draws (default 0)."
            | Scale _ -> "pixel enlargement in the PNG (default 3)."

/// A policy source by name, or read from a policy file over the default search space.
let policySource (text: string) : IPolicySource =
    match text.ToLowerInvariant() with
    | "autoaugment" -> AutoAugmentPolicy.Cifar10Source()
    | "randaugment" -> RandAugment()
    | "trivialaugment" -> TrivialAugment()
    | _ -> PolicyAugment(PolicyJson.Read(text, SearchSpace.Default), SearchSpace.Default, (match Path.GetFileName text with null -> text | name -> name))

/// The rows (label, images) of a preview of `images`.
let rows (images: torch.Tensor) (ops: (string * int) list) (policy: IPolicySource option) (draws: int) (g: torch.Generator) =
    let space = SearchSpace(OpTable.ForImageSize(int images.shape[2], int images.shape[3]))
    let n = images.shape[0]
    [ yield "original", images.clone()
      for name, level in ops do
          let op = space.IndexOf name
          let d = space.Ops[op]
          use ids = torch.full([| n; 1L |], (int64 op).ToScalar(), dtype = torch.int64)
          use levels = torch.full([| n; 1L |], (int64 level).ToScalar(), dtype = torch.int64)
          let out = BatchAugment.Apply(images, space, ids, levels, g)
          let value = if d.HasMagnitude then sprintf " = %s%g" (if d.Signed then "±" else "") (d.ValueAt(float level, space.Levels)) else ""
          yield sprintf "%s %d%s" d.Name level value, out
      match policy with
      | Some source ->
          for k in 1 .. draws do
              yield sprintf "%s #%d" source.Name k, source.Augment(images, g)
      | None -> () ]

let run (args: ParseResults<PreviewArgs>) =
    let ops = args.GetResults Op
    let levels = args.GetResults Level
    let count = args.GetResult(Images, defaultValue = 8)
    let draws = args.GetResult(Rows, defaultValue = 4)
    if ops.Length <> levels.Length then
        fail (sprintf "each --op needs a --level: got %d --op and %d --level" ops.Length levels.Length)
    elif ops.IsEmpty && not (args.Contains Policy) then
        fail "nothing to preview: give --op NAME --level L (repeatable) and/or --policy FILE|autoaugment|randaugment|trivialaugment"
    elif count < 1 || draws < 1 then
        fail (sprintf "--images and --rows must be at least 1, got %d and %d" count draws)
    else
        let splits = DataSources.Load(Option.toObj (args.TryGetResult Data))
        use scope = torch.NewDisposeScope()
        use g = new torch.Generator(uint64 (args.GetResult(Seed, defaultValue = 0)))
        let take = min (int64 count) splits.Train.Count
        // Streamed data shows its evaluation crops (224x224 until a model sizes it).
        use chosen = splits.Train.Select(torch.randperm(splits.Train.Count, generator = g).narrow(0L, 0L, take))
        let images = BatchLoader.Decoded chosen
        let policy = args.TryGetResult Policy |> Option.map policySource
        let made = rows images (List.zip ops levels) policy draws g
        let out = args.GetResult(Out, defaultValue = "preview.png")
        ImageGrid.WritePng(out, torch.cat([| for _, t in made -> t |], 0L), int take, [| for label, _ in made -> label |], args.GetResult(Scale, defaultValue = 3))
        printfn "wrote %s: %d rows × %d images (%s)" out made.Length take (String.Join(", ", [ for label, _ in made -> label ]))
        AdvAA.Dsl.ExitCode.ok
