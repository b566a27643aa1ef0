/// `advaa ops`: the op table (names, ranges, signs, kinds, descriptions), read from OpTable.
module AdvAA.Cli.OpsCommand

open Argu
open AdvAA.Core.Augment
open AdvAA.Dsl
open AdvAA.Cli.Common

type OpsArgs =
    | Image_Size of pixels: int
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Image_Size _ -> "side of the (square) images the pixel ranges are for (default: 32, CIFAR)."

/// The table as lines of text.
let render (ops: OpDefinition seq) =
    let rows =
        [ for o in ops ->
            [ o.Name; o.RangeText; (if o.Signed then "±" else ""); string o.Kind; o.Description ] ]
    let header = [ "op"; "range (level 0 → top)"; "sign"; "kind"; "what it does" ]
    let widths = [ for c in 0 .. 3 -> (header :: rows) |> List.map (fun r -> r[c].Length) |> List.max ]
    let line (r: string list) = String.concat "  " [ for c in 0 .. 3 -> r[c].PadRight widths[c] ] + "  " + r[4]
    [ yield line header
      yield! rows |> List.map line
      yield ""
      yield sprintf "Levels 0..%d map linearly onto each range; whole-unit ops (pixels, bits, thresholds) truncate." (SearchSpace.Default.Levels - 1)
      yield "± = the sign is drawn per sample (the value is reflected about the op's neutral value)."
      yield sprintf "The default search space (the paper's) has the %d ops other than Identity." SearchSpace.Default.Ops.Count ]

let run (args: ParseResults<OpsArgs>) =
    let size = args.GetResult(Image_Size, defaultValue = OpTable.DefaultImageSize)
    for l in render (OpTable.ForImageSize(size, size)) do printfn "%s" l
    ExitCode.ok
