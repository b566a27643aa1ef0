using System;
using System.IO;
using System.Text;

namespace AdvAA.Core;

/// <summary>
/// Files written whole or not at all (a temporary name, then a rename): a crash or a full disk
/// leaves the previous complete version, never half a file. Every writer of run folders, reports,
/// exports and caches uses it.
/// </summary>
public static class AtomicFile
{
    /// <summary>Writes a whole file atomically; a failed write (a full disk) leaves neither the temporary file nor a changed target.</summary>
    public static void Write(string path, string text) =>
        Write(path, temp =>
        {
            using var stream = new FileStream(temp, FileMode.Create, FileAccess.Write, FileShare.None);
            stream.Write(new UTF8Encoding(false).GetBytes(text));
            stream.Flush(flushToDisk: true);
        });

    /// <summary>Writes a whole file atomically: <paramref name="write"/> writes a temporary file, which then replaces <paramref name="path"/>.</summary>
    public static void Write(string path, Action<string> write)
    {
        string temp = $"{path}{TempMarker}{Environment.ProcessId}";
        try
        {
            write(temp);
            File.Move(temp, path, overwrite: true);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            TryDelete(temp);
            // The message names the file asked for, not the temporary one; the code (a full disk) stays.
            string reason = e switch
            {
                DirectoryNotFoundException => $"the folder {Path.GetDirectoryName(path)} does not exist",
                UnauthorizedAccessException => "permission denied",
                _ => e.Message.Replace(temp, path, StringComparison.Ordinal),
            };
            if (e is UnauthorizedAccessException) throw new UnauthorizedAccessException($"{path} cannot be written: {reason}", e);
            throw new IOException($"{path} cannot be written: {reason}", e.HResult);
        }
        catch
        {
            TryDelete(temp);
            throw;
        }
    }

    /// <summary>What temporary names carry before the writer's process id.</summary>
    public const string TempMarker = ".tmp-";

    /// <summary>Deletes a file if it can; what cannot be deleted stays.</summary>
    internal static void TryDelete(string file)
    {
        try { File.Delete(file); }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
    }
}
