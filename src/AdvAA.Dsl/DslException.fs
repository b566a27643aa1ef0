namespace AdvAA.Dsl

open System

/// A DSL value that cannot be built (a bad argument, an inconsistent declaration); the message
/// names the value and what was expected. From a script, the script host adds the line.
type DslException(message: string) =
    inherit Exception(message)
