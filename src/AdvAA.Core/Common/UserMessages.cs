using System;

namespace AdvAA.Core;

/// <summary>Exception messages as the command line and the DSL show them.</summary>
public static class UserMessages
{
    /// <summary>An <see cref="ArgumentException"/>'s message without the " (Parameter 'name')" that .NET appends.</summary>
    public static string Of(ArgumentException e) =>
        e.ParamName is string p ? e.Message.Replace($" (Parameter '{p}')", "", StringComparison.Ordinal) : e.Message;
}
