using System;

namespace AdvAA.Core;

/// <summary>
/// Raised for an experiment setting out of range; the message names the setting and the value, and
/// <see cref="Setting"/> is its path as config.json writes it ("epochs", "method.n"), so a caller can
/// point at where it was set (the script host at the script's line, the CLI at its flag).
/// </summary>
public sealed class ConfigException(string message, string? setting = null) : Exception(message)
{
    /// <summary>The setting's path in config.json's experiment ("batch_size", "method.keep"), or null when the problem is not one setting's.</summary>
    public string? Setting { get; } = setting;
}

/// <summary>Raised for a run folder or record that cannot be created, resumed or read; the message names the file.</summary>
public sealed class RunFolderException(string message, Exception? inner = null) : Exception(message, inner);
