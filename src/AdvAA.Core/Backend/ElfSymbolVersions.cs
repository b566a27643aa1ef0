// Reads and patches ELF symbol-version tables (PLATFORM.md §1).
//
// This one file is compiled twice: into AdvAA.Core (run-time check, for hosts such as `dotnet fsi`
// that never run our build) and, by Directory.Build.targets, into an MSBuild inline task that
// patches TorchSharp's native wrapper before it is copied to bin/. The inline task compiles
// against netstandard2.0 without ADVAA_CORE defined, so keep this file to that language surface.
using System;
using System.IO;
using System.Text;
#if !ADVAA_CORE
using Microsoft.Build.Framework;
using Microsoft.Build.Utilities;
#endif

namespace AdvAA.Core.Backend
{
    /// <summary>What <see cref="ElfSymbolVersions.MakeVersionNeedWeak"/> did to a file.</summary>
    public enum WeakPatchOutcome
    {
        /// <summary>The file does not need the version at all.</summary>
        NotNeeded,
        /// <summary>The need was already weak (patched before).</summary>
        AlreadyWeak,
        /// <summary>The need was made weak now.</summary>
        Patched,
    }

    /// <summary>
    /// Symbol-version facts about 64-bit little-endian ELF shared objects: which versions a library
    /// defines (<c>.gnu.version_d</c>) and which it needs (<c>.gnu.version_r</c>).
    /// </summary>
    public static class ElfSymbolVersions
    {
        /// <summary>The libstdc++ version TorchSharp 0.107's wrapper needs and Debian 12 lacks.</summary>
        public const string TorchSharpGlibcxx = "GLIBCXX_3.4.32";

        const uint ShtGnuVerdef = 0x6ffffffd;
        const uint ShtGnuVerneed = 0x6ffffffe;
        const ushort VerFlgWeak = 0x2;

        struct Section
        {
            public uint Type;
            public long Offset;
            public long Size;
            public int Link;
            public int Info;
        }

        /// <summary>True when the library at <paramref name="path"/> defines the symbol version.</summary>
        public static bool DefinesVersion(string path, string version)
        {
            byte[] elf = File.ReadAllBytes(path);
            Section[] sections = ReadSections(elf, path);
            foreach (Section verdef in sections)
            {
                if (verdef.Type != ShtGnuVerdef) continue;
                Section strtab = sections[verdef.Link];
                long entry = verdef.Offset;
                for (int i = 0; i < verdef.Info; i++)
                {
                    ushort count = U16(elf, entry + 6, path);
                    long aux = entry + U32(elf, entry + 12, path);
                    for (int j = 0; j < count; j++)
                    {
                        if (ReadString(elf, strtab, U32(elf, aux, path), path) == version) return true;
                        aux += U32(elf, aux + 4, path);
                    }
                    uint next = U32(elf, entry + 16, path);
                    if (next == 0) break;
                    entry += next;
                }
            }
            return false;
        }

        /// <summary>
        /// Where the library needs <paramref name="version"/>, sets VER_FLG_WEAK on that need so the
        /// dynamic loader only notes a missing version instead of refusing to load. Idempotent.
        /// </summary>
        public static WeakPatchOutcome MakeVersionNeedWeak(string path, string version)
        {
            byte[] elf = File.ReadAllBytes(path);
            long flagsOffset = FindVersionNeedFlags(elf, version, path);
            if (flagsOffset < 0) return WeakPatchOutcome.NotNeeded;
            ushort flags = U16(elf, flagsOffset, path);
            if ((flags & VerFlgWeak) != 0) return WeakPatchOutcome.AlreadyWeak;
            flags |= VerFlgWeak;
            using (var file = new FileStream(path, FileMode.Open, FileAccess.Write, FileShare.Read))
            {
                file.Position = flagsOffset;
                file.WriteByte((byte)(flags & 0xff));
                file.WriteByte((byte)(flags >> 8));
            }
            return WeakPatchOutcome.Patched;
        }

        /// <summary>True when the library needs the version and the need is not weak.</summary>
        public static bool NeedsVersionStrictly(string path, string version)
        {
            byte[] elf = File.ReadAllBytes(path);
            long flagsOffset = FindVersionNeedFlags(elf, version, path);
            return flagsOffset >= 0 && (U16(elf, flagsOffset, path) & VerFlgWeak) == 0;
        }

        // Offset of vna_flags of the Elf64_Vernaux naming `version`, or -1.
        static long FindVersionNeedFlags(byte[] elf, string version, string path)
        {
            Section[] sections = ReadSections(elf, path);
            foreach (Section verneed in sections)
            {
                if (verneed.Type != ShtGnuVerneed) continue;
                Section strtab = sections[verneed.Link];
                long entry = verneed.Offset;
                for (int i = 0; i < verneed.Info; i++)
                {
                    ushort count = U16(elf, entry + 2, path);
                    long aux = entry + U32(elf, entry + 8, path);
                    for (int j = 0; j < count; j++)
                    {
                        if (ReadString(elf, strtab, U32(elf, aux + 8, path), path) == version) return aux + 4;
                        uint nextAux = U32(elf, aux + 12, path);
                        if (nextAux == 0) break;
                        aux += nextAux;
                    }
                    uint next = U32(elf, entry + 12, path);
                    if (next == 0) break;
                    entry += next;
                }
            }
            return -1;
        }

        static Section[] ReadSections(byte[] elf, string path)
        {
            if (elf.Length < 64 || elf[0] != 0x7f || elf[1] != (byte)'E' || elf[2] != (byte)'L' || elf[3] != (byte)'F')
                throw new InvalidDataException($"{path}: not an ELF file");
            if (elf[4] != 2 || elf[5] != 1)
                throw new InvalidDataException($"{path}: only 64-bit little-endian ELF is supported");
            long shoff = (long)U64(elf, 0x28, path);
            ushort shentsize = U16(elf, 0x3A, path);
            ushort shnum = U16(elf, 0x3C, path);
            var sections = new Section[shnum];
            for (int i = 0; i < shnum; i++)
            {
                long h = shoff + (long)i * shentsize;
                sections[i] = new Section
                {
                    Type = U32(elf, h + 4, path),
                    Offset = (long)U64(elf, h + 0x18, path),
                    Size = (long)U64(elf, h + 0x20, path),
                    Link = (int)U32(elf, h + 0x28, path),
                    Info = (int)U32(elf, h + 0x2C, path),
                };
            }
            return sections;
        }

        static string ReadString(byte[] elf, Section strtab, uint index, string path)
        {
            long start = strtab.Offset + index;
            long end = start;
            while (end < elf.Length && elf[end] != 0) end++;
            if (end >= elf.Length) throw Truncated(path, start);
            return Encoding.ASCII.GetString(elf, (int)start, (int)(end - start));
        }

        static ushort U16(byte[] b, long at, string path)
        {
            if (at < 0 || at + 2 > b.Length) throw Truncated(path, at);
            return (ushort)(b[at] | b[at + 1] << 8);
        }

        static uint U32(byte[] b, long at, string path)
        {
            if (at < 0 || at + 4 > b.Length) throw Truncated(path, at);
            return (uint)(b[at] | b[at + 1] << 8 | b[at + 2] << 16 | b[at + 3] << 24);
        }

        static ulong U64(byte[] b, long at, string path) =>
            U32(b, at, path) | (ulong)U32(b, at + 4, path) << 32;

        static InvalidDataException Truncated(string path, long offset) =>
            new InvalidDataException($"{path}: truncated ELF file (read past the end at byte offset {offset})");

        /// <summary>
        /// The libstdc++ this process runs with (the .NET host loads it), else the usual paths;
        /// "" on hosts without one (Windows, macOS). (No nullable annotations: the inline task
        /// compiles this file as C# 7.3.)
        /// </summary>
        public static string HostLibStdCxx()
        {
            try
            {
                foreach (string line in File.ReadAllLines("/proc/self/maps"))
                {
                    int slash = line.IndexOf('/');
                    if (slash >= 0 && line.IndexOf("libstdc++.so.6", slash, StringComparison.Ordinal) >= 0)
                        return line.Substring(slash).Trim();
                }
            }
            catch (IOException) { }
            catch (UnauthorizedAccessException) { }
            foreach (string candidate in new[] { "/usr/lib/x86_64-linux-gnu/libstdc++.so.6", "/lib/x86_64-linux-gnu/libstdc++.so.6", "/usr/lib64/libstdc++.so.6", "/usr/lib/libstdc++.so.6" })
                if (File.Exists(candidate)) return candidate;
            return "";
        }

        /// <summary>
        /// Applies the Debian-12 fix to TorchSharp's wrapper when <paramref name="libstdcxx"/> (by
        /// default the host's) lacks the version it needs; leaves every other host untouched.
        /// Returns what happened, in words.
        /// </summary>
        public static string FixTorchSharpWrapper(string wrapperPath, string libstdcxx = "")
        {
            if (libstdcxx.Length == 0) libstdcxx = HostLibStdCxx();
            if (libstdcxx.Length == 0) return "no libstdc++ on this host: nothing to do";
            if (DefinesVersion(libstdcxx, TorchSharpGlibcxx))
                return libstdcxx + " defines " + TorchSharpGlibcxx + ": nothing to do";
            WeakPatchOutcome outcome = MakeVersionNeedWeak(wrapperPath, TorchSharpGlibcxx);
            return libstdcxx + " lacks " + TorchSharpGlibcxx + ": " + wrapperPath + " " + outcome;
        }
    }

#if !ADVAA_CORE
    /// <summary>MSBuild task: patches each given libLibTorchSharp.so for this host.</summary>
    public class PatchLibTorchSharp : Task
    {
        [Required]
        public ITaskItem[] Files { get; set; } = new ITaskItem[0];

        public override bool Execute()
        {
            if (!System.Runtime.InteropServices.RuntimeInformation.IsOSPlatform(System.Runtime.InteropServices.OSPlatform.Linux))
                return true;
            foreach (ITaskItem item in Files)
            {
                string path = item.GetMetadata("FullPath");
                try
                {
                    Log.LogMessage(MessageImportance.Normal, ElfSymbolVersions.FixTorchSharpWrapper(path));
                }
                catch (Exception e)
                {
                    Log.LogError($"AdvAA: could not patch {path} for this host's libstdc++: {e.Message}");
                }
            }
            return !Log.HasLoggedErrors;
        }
    }
#endif
}
