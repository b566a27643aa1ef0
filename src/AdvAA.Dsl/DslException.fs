namespace AdvAA.Dsl

open System

/// A DSL value that cannot be built (a bad argument, an inconsistent declaration); the message
/// names the value and what was expected, and `Field` the experiment field at fault as a script
/// writes it (`BatchSize`, `Method`), when it is one. From a script, the script host adds the
/// line that sets that field.
type DslException(message: string, field: string option) =
    inherit Exception(message)
    new(message: string) = DslException(message, None)
    member _.Field = field
