using System;
using System.IO;

namespace AdvAA.Core.Data;

/// <summary>
/// Raised for data that cannot be loaded. The message always names the file (full path, or archive
/// path and entry name) and, where relevant, the record index or byte offset.
/// </summary>
public sealed class DataFormatException(string message, Exception? inner = null) : Exception(message, inner)
{
    /// <summary>Runs a file-system call, turning an I/O failure into a message that names the file.</summary>
    internal static T Reading<T>(string path, Func<T> read)
    {
        try { return read(); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new DataFormatException($"{path}: {e.Message}", e);
        }
    }
}
