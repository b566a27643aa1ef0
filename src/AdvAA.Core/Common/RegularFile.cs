using System.IO;

namespace AdvAA.Core;

/// <summary>
/// The check every reader of a user's file makes before opening it: the path names a regular file
/// with content, links followed. A device, pipe or socket is refused without being opened: reading
/// /dev/zero never ends, and opening a FIFO waits for a writer that never comes.
/// </summary>
public static class RegularFile
{
    /// <summary>The file <paramref name="path"/> names, links followed to their final target, or what is wrong with it (without the path).</summary>
    public static FileInfo? Resolve(string path, out string? problem)
    {
        try
        {
            var info = new FileInfo(path);
            if (info.LinkTarget != null)
            {
                if (info.ResolveLinkTarget(returnFinalTarget: true) is not FileInfo target || !target.Exists)
                {
                    problem = $"a link to {info.LinkTarget}, which does not exist";
                    return null;
                }
                info = target;
            }
            // Devices, pipes and sockets report no size; so does an empty file, which holds nothing to read either.
            problem = !info.Exists ? Directory.Exists(path) ? "a folder, not a file" : "no such file"
                : info.Length == 0 ? "empty, or not a regular file (a device, pipe or socket)"
                : null;
            return problem is null ? info : null;
        }
        catch (System.Exception e) when (e is IOException or System.UnauthorizedAccessException)
        {
            problem = e.Message;
            return null;
        }
    }
}
