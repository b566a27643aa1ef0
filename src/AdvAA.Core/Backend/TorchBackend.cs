using System;
using System.Collections.Generic;
using System.Diagnostics;
using System.IO;
using System.Linq;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using TorchSharp;

namespace AdvAA.Core.Backend;

/// <summary>The device a user asks for: <c>auto</c> picks CUDA when it works.</summary>
public enum DeviceRequest { Auto, Cpu, Cuda }

/// <summary>A libtorch folder this process loaded (or will load).</summary>
/// <param name="Kind">"cpu" or "cuda".</param>
/// <param name="LibTorchFolder">Folder holding libc10.so, libtorch_cpu.so, libtorch.so (and CUDA libraries).</param>
/// <param name="WrapperPath">TorchSharp's libLibTorchSharp.so.</param>
/// <param name="Source">Where the folder came from, in words.</param>
/// <param name="LibTorchVersion">The libtorch version, where it can be read.</param>
public sealed record NativeBackend(string Kind, string LibTorchFolder, string WrapperPath, string Source, string LibTorchVersion);

/// <summary>Raised when the requested device or libtorch cannot be used; the message says what was looked for.</summary>
public sealed class BackendException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>
/// Loads libtorch by full path before TorchSharp touches it (PLATFORM.md §1–2), so that a system
/// libtorch (Debian's python3-torch puts 1.13 in /lib) never shadows ours, and so that a CUDA
/// libtorch of an installed PyTorch can be used instead of the bundled CPU one.
/// </summary>
public static class TorchBackend
{
    /// <summary>Environment variable naming a libtorch folder (e.g. a PyTorch installation's torch/lib).</summary>
    public const string LibTorchVariable = "ADVAA_LIBTORCH";
    /// <summary>Environment variable with the device request used when the program gives none.</summary>
    public const string DeviceVariable = "ADVAA_DEVICE";

    static readonly object Gate = new();
    static NativeBackend? loaded;
    static readonly Dictionary<string, IntPtr> Handles = new(StringComparer.Ordinal);

#pragma warning disable CA2255 // a library initializer is the point: it must run before TorchSharp's first native call
    [ModuleInitializer]
#pragma warning restore CA2255
    internal static void RegisterResolver()
    {
        // Any native load TorchSharp asks for first initialises the backend from the environment.
        if (OperatingSystem.IsLinux())
            NativeLibrary.SetDllImportResolver(typeof(torch).Assembly, Resolve);
    }

    [ThreadStatic] static bool initializing;

    static IntPtr Resolve(string name, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (initializing) return IntPtr.Zero;
        EnsureInitialized();
        string file = name.StartsWith("lib", StringComparison.Ordinal) ? name : "lib" + name;
        if (!file.EndsWith(".so", StringComparison.Ordinal)) file += ".so";
        lock (Gate) return Handles.TryGetValue(file, out IntPtr handle) ? handle : IntPtr.Zero;
    }

    /// <summary>The handle of a native library the backend loaded, by file name (e.g. libtorch_cpu.so), or zero.</summary>
    internal static IntPtr Handle(string file)
    {
        EnsureInitialized();
        lock (Gate) return Handles.TryGetValue(file, out IntPtr handle) ? handle : IntPtr.Zero;
    }

    /// <summary>The backend loaded in this process, or null before the first TorchSharp call.</summary>
    public static NativeBackend? Current { get { lock (Gate) return loaded; } }

    /// <summary>Parses auto|cpu|cuda (case-insensitive).</summary>
    public static DeviceRequest ParseDevice(string text) => text.Trim().ToLowerInvariant() switch
    {
        "auto" => DeviceRequest.Auto,
        "cpu" => DeviceRequest.Cpu,
        "cuda" or "gpu" => DeviceRequest.Cuda,
        _ => throw new BackendException($"unknown device '{text}': expected auto, cpu or cuda"),
    };

    /// <summary>The request from ADVAA_DEVICE, else auto.</summary>
    public static DeviceRequest RequestFromEnvironment()
    {
        string? text = Environment.GetEnvironmentVariable(DeviceVariable);
        return string.IsNullOrWhiteSpace(text) ? DeviceRequest.Auto : ParseDevice(text);
    }

    /// <summary>Initialises from the environment unless already initialised.</summary>
    public static NativeBackend EnsureInitialized()
    {
        lock (Gate) if (loaded != null) return loaded;
        return Initialize(RequestFromEnvironment());
    }

    /// <summary>
    /// Loads the libtorch that serves <paramref name="request"/>. Once per process: a later call
    /// with a request the loaded backend cannot serve is an error.
    /// </summary>
    public static NativeBackend Initialize(DeviceRequest request)
    {
        NativeBackend backend;
        lock (Gate)
        {
            if (loaded != null)
            {
                if (request == DeviceRequest.Cuda && loaded.Kind != "cuda")
                    throw new BackendException($"the CPU libtorch ({loaded.LibTorchFolder}) is already loaded in this process; CUDA must be chosen before the first tensor operation");
                return loaded;
            }
            initializing = true;
            try { loaded = backend = LoadFor(request); }
            finally { initializing = false; }
        }
        // Outside the lock: TorchSharp's static constructor, running on another thread, may be
        // waiting in the resolver for this lock.
        if (backend.Kind == "cuda") torch.InitializeDeviceType(DeviceType.CUDA);
        return backend;
    }

    static NativeBackend LoadFor(DeviceRequest request)
    {
        var looked = new List<string>();
        NativeBackend? backend = request == DeviceRequest.Cpu ? null : FindCuda(looked);
        if (backend == null && request == DeviceRequest.Cuda)
            throw new BackendException("--device cuda needs a libtorch built with CUDA, and none was found. Looked at:\n  "
                + string.Join("\n  ", looked)
                + $"\nSet {LibTorchVariable} to a PyTorch installation's torch/lib (python3 -c \"import torch,os;print(os.path.dirname(torch.__file__)+'/lib')\"), or use --device cpu.");
        backend ??= BundledCpu();
        Load(backend);
        return backend;
    }

    /// <summary>
    /// The torch device for a request: cpu; cuda (an error when no GPU is usable); auto = cuda
    /// when a CUDA libtorch is loaded and a GPU answers, else cpu.
    /// </summary>
    public static torch.Device ResolveDevice(DeviceRequest request)
    {
        NativeBackend backend = Initialize(request);
        if (request == DeviceRequest.Cpu) return torch.CPU;
        bool cuda = backend.Kind == "cuda" && torch.cuda.is_available();
        if (request == DeviceRequest.Cuda && !cuda)
            throw new BackendException($"--device cuda: libtorch with CUDA was loaded from {backend.LibTorchFolder} ({backend.Source}), but no CUDA device is available (driver missing or no GPU visible)");
        return cuda ? torch.CUDA : torch.CPU;
    }

    /// <summary>Environment variable: set to 0 to keep glibc's default allocator settings.</summary>
    public const string MallocTuningVariable = "ADVAA_MALLOC_TUNING";

    [DllImport("libc", EntryPoint = "mallopt")]
    static extern int Mallopt(int parameter, int value);

    /// <summary>
    /// glibc serves every allocation above 32 MB with a fresh mmap and unmaps it on free, so each
    /// training step at a large batch (N·M images) pays page faults on all its activations again:
    /// 5-8x slower steps at batch 1024 on a CPU. Keeping large blocks in the heap (no mmap, no trim)
    /// lets libtorch reuse them, as jemalloc or tcmalloc would.
    /// </summary>
    static void TuneAllocator()
    {
        if (Environment.GetEnvironmentVariable(MallocTuningVariable) == "0") return;
        const int TrimThreshold = -1, MmapMax = -4;
        try
        {
            Mallopt(MmapMax, 0);
            Mallopt(TrimThreshold, int.MaxValue);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            // not glibc: nothing to tune
        }
    }

    static void Load(NativeBackend backend)
    {
        if (!OperatingSystem.IsLinux()) return; // elsewhere TorchSharp's own loader is right
        TuneAllocator();
        FixWrapperIfNeeded(backend.WrapperPath);
        string[] torchLibs = backend.Kind == "cuda"
            ? ["libc10.so", "libtorch_cpu.so", "libc10_cuda.so", "libtorch_cuda.so", "libtorch.so"]
            : ["libc10.so", "libtorch_cpu.so", "libtorch.so"];
        foreach (string lib in torchLibs)
            LoadOne(Path.Combine(backend.LibTorchFolder, lib), backend);
        LoadOne(backend.WrapperPath, backend);
    }

    static void LoadOne(string path, NativeBackend backend)
    {
        try
        {
            Handles[Path.GetFileName(path)] = NativeLibrary.Load(path);
        }
        catch (DllNotFoundException e)
        {
            throw new BackendException($"cannot load {path} ({backend.Source}): {e.Message}", e);
        }
    }

    static void FixWrapperIfNeeded(string wrapper)
    {
        try
        {
            ElfSymbolVersions.FixTorchSharpWrapper(wrapper);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new BackendException($"{wrapper} needs {ElfSymbolVersions.TorchSharpGlibcxx}, which this host's libstdc++ lacks, and it could not be patched: {e.Message}. Make the file writable and run again (AdvAA patches it in place, once), or rebuild from source (the build patches it).", e);
        }
    }

    /// <summary>The folder TorchSharp.dll was loaded from (no native load happens).</summary>
    static string ManagedFolder => Path.GetDirectoryName(typeof(torch).Assembly.Location)
        ?? throw new BackendException("cannot locate TorchSharp.dll");

    /// <summary>TorchSharp's native wrapper in bin/ (with or without a RID) or in the NuGet cache.</summary>
    public static string FindWrapper()
    {
        string dir = ManagedFolder;
        string[] candidates =
        [
            Path.Combine(dir, "libLibTorchSharp.so"),
            Path.Combine(dir, "runtimes", "linux-x64", "native", "libLibTorchSharp.so"),
            // NuGet-cache layout: <packages>/torchsharp/<ver>/lib/net8.0/TorchSharp.dll
            Path.GetFullPath(Path.Combine(dir, "..", "..", "runtimes", "linux-x64", "native", "libLibTorchSharp.so")),
        ];
        return candidates.FirstOrDefault(File.Exists)
            ?? throw new BackendException("TorchSharp's native wrapper libLibTorchSharp.so was not found; looked at:\n  " + string.Join("\n  ", candidates));
    }

    /// <summary>
    /// The libtorch version the build bundles (recorded at build time: reading TorchSharp's own
    /// would run its static constructor, which needs the very libraries being loaded).
    /// </summary>
    static string BundledLibTorchVersion =>
        typeof(TorchBackend).Assembly.GetCustomAttributes<AssemblyMetadataAttribute>()
            .FirstOrDefault(a => a.Key == "LibTorchVersion")?.Value ?? "unknown";

    static NativeBackend BundledCpu()
    {
        string dir = ManagedFolder;
        string version = BundledLibTorchVersion;
        var candidates = new List<string> { dir, Path.Combine(dir, "runtimes", "linux-x64", "native") };
        // NuGet-cache layout: the CPU libtorch is a sibling package.
        string packages = Path.GetFullPath(Path.Combine(dir, "..", "..", "..", ".."));
        candidates.Add(Path.Combine(packages, "libtorch-cpu-linux-x64", version, "runtimes", "linux-x64", "native"));
        string? folder = candidates.FirstOrDefault(c => File.Exists(Path.Combine(c, "libtorch_cpu.so")));
        if (folder == null)
            throw new BackendException("the CPU libtorch (libtorch_cpu.so, package libtorch-cpu-linux-x64) was not found; looked at:\n  " + string.Join("\n  ", candidates));
        return new NativeBackend("cpu", folder, FindWrapper(), "TorchSharp-cpu package", version);
    }

    /// <summary>
    /// The CUDA libtorch this machine offers (ADVAA_LIBTORCH, then python3's torch), or null;
    /// <paramref name="looked"/> receives each place looked at and why it did not serve.
    /// </summary>
    public static NativeBackend? FindCuda(List<string> looked)
    {
        string? fromEnv = Environment.GetEnvironmentVariable(LibTorchVariable);
        if (!string.IsNullOrWhiteSpace(fromEnv))
        {
            NativeBackend? b = CudaFolder(fromEnv, $"{LibTorchVariable}={fromEnv}", looked);
            if (b != null) return b;
        }
        else looked.Add($"{LibTorchVariable}: not set");
        string? fromPython = PythonTorchLib(looked);
        return fromPython == null ? null : CudaFolder(fromPython, "python3's torch", looked);
    }

    static NativeBackend? CudaFolder(string folder, string source, List<string> looked)
    {
        if (!Directory.Exists(folder)) { looked.Add($"{folder} ({source}): no such folder"); return null; }
        if (!File.Exists(Path.Combine(folder, "libtorch_cuda.so"))) { looked.Add($"{folder} ({source}): no libtorch_cuda.so (a CPU-only libtorch)"); return null; }
        string versionFile = Path.Combine(folder, "..", "version.py");
        string version = "unknown";
        if (File.Exists(versionFile))
            foreach (string line in File.ReadLines(versionFile))
                if (line.StartsWith("__version__", StringComparison.Ordinal))
                    version = line.Split('=', 2)[1].Trim().Trim('\'', '"');
        // TorchSharp's wrapper needs the libtorch it was built against or a later one of the same major version.
        if (MajorMinor(version) is { } found && MajorMinor(BundledLibTorchVersion) is { } needed
            && (found.Major != needed.Major || found.Minor < needed.Minor))
        {
            looked.Add($"{folder} ({source}): libtorch {version}, but TorchSharp {typeof(torch).Assembly.GetName().Version?.ToString(3)} needs {needed.Major}.{needed.Minor} or a later {needed.Major}.x (PyTorch {needed.Major}.{needed.Minor}+)");
            return null;
        }
        return new NativeBackend("cuda", Path.GetFullPath(folder), FindWrapper(), source, version);
    }

    /// <summary>"2.11.0+cu130" → (2, 11); null for a version that does not start with two numbers.</summary>
    static (int Major, int Minor)? MajorMinor(string version)
    {
        string[] parts = version.Split('+')[0].Split('.');
        return parts.Length >= 2 && int.TryParse(parts[0], out int major) && int.TryParse(parts[1], out int minor) ? (major, minor) : null;
    }

    /// <summary>Asks python3 where torch is, without importing it (fast, no CUDA start-up).</summary>
    static string? PythonTorchLib(List<string> looked)
    {
        try
        {
            var info = new ProcessStartInfo("python3", ["-c", "import importlib.util as u,os;s=u.find_spec('torch');print(os.path.join(s.submodule_search_locations[0],'lib') if s else '')"])
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                UseShellExecute = false,
            };
            using Process p = Process.Start(info)!;
            string output = p.StandardOutput.ReadToEnd().Trim();
            if (!p.WaitForExit(10_000)) { p.Kill(); looked.Add("python3: did not answer in 10 s"); return null; }
            if (output.Length == 0) { looked.Add("python3: no torch package installed"); return null; }
            return output;
        }
        catch (System.ComponentModel.Win32Exception)
        {
            looked.Add("python3: not found on PATH");
            return null;
        }
    }
}
