using System;

namespace AdvAA.Core;

/// <summary>Raised for an experiment setting out of range; the message names the setting and the value.</summary>
public sealed class ConfigException(string message) : Exception(message);

/// <summary>Raised for a run folder or record that cannot be created, resumed or read; the message names the file.</summary>
public sealed class RunFolderException(string message, Exception? inner = null) : Exception(message, inner);
