/// CONTRIBUTING.md stays true: the files it names exist, and every method and model of the
/// registries is documented in the README.
module AdvAA.Tests.ContributingTests

open System.IO
open System.Text.RegularExpressions
open Expecto
open AdvAA.Core.Methods
open AdvAA.Core.Models
open AdvAA.Tests.TestSupport

let private read (file: string) = File.ReadAllText(Path.Combine(repoRoot, file))

[<Tests>]
let tests =
    testList "contributing" [
        test "every path CONTRIBUTING.md names exists" {
            let paths =
                [ for m in Regex.Matches(read "CONTRIBUTING.md", @"`((?:src|tests|scripts|examples|docs)/[^`<>* ]+)`") -> m.Groups[1].Value ]
            Expect.isGreaterThan paths.Length 20 "it names the files to touch"
            for path in paths do
                let full = Path.Combine(repoRoot, path)
                Expect.isTrue (File.Exists full || Directory.Exists full) (sprintf "CONTRIBUTING.md names %s, which does not exist" path)
        }

        test "every method and model of the registries is in the README" {
            let readme = read "README.md"
            for name in MethodRegistry.Names do
                Expect.stringContains readme (sprintf "`%s`" name) (sprintf "the README documents method %s" name)
            for architecture in ModelRegistry.Table do
                for name in architecture.Pattern :: List.ofSeq architecture.Presets do
                    Expect.stringContains readme (sprintf "`%s`" name) (sprintf "the README documents model %s" name)
        }
    ]
