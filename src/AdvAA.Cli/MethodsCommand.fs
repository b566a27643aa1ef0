/// `advaa methods [NAME]`: every training method of the registry with its parameters, defaults and ranges.
module AdvAA.Cli.MethodsCommand

open Argu
open AdvAA.Core.Methods
open AdvAA.Dsl

type MethodsArgs =
    | [<MainCommand>] Names of method: string list
    interface IArgParserTemplate with
        member a.Usage =
            match a with
            | Names _ -> "only these methods (default: all)."

/// One method as lines of text: its name and description, then a row per parameter.
let render (entry: MethodRegistry.Entry) =
    let spec = entry.Defaults
    let rows = [ for p in spec.Parameters -> [ p.Name; p.Kind; p.Format(p.Get spec); p.RangeText; p.Description ] ]
    let widths = [ for c in 0 .. 3 -> rows |> List.map (fun r -> r[c].Length) |> List.fold max 0 ]
    [ yield sprintf "%s  %s" entry.Name entry.Description
      for r in rows ->
          "  " + String.concat "  " [ for c in 0 .. 3 -> r[c].PadRight widths[c] ] + "  " + r[4] ]

let run (args: ParseResults<MethodsArgs>) =
    let entries = args.GetResult(Names, defaultValue = []) |> function [] -> List.ofSeq MethodRegistry.All | names -> names |> List.map MethodRegistry.Get
    entries |> List.iteri (fun i e ->
        if i > 0 then printfn ""
        for line in render e do printfn "%s" line)
    printfn ""
    printfn "Set a parameter with --param name=value (advaa train, advaa run), or in a script with"
    printfn "Method.set: Method = Method.named \"randaugment\" |> Method.set \"n\" 3."
    ExitCode.ok
