using System;
using System.Linq;
using static TorchSharp.torch;

namespace AdvAA.Core.Backend;

/// <summary>
/// Reads of device values on the host, the calls that make the host wait for a GPU. The training
/// step makes them only through here, so they are counted (per thread): a test can see how many a
/// step makes. On a CPU they cost nothing but are counted all the same.
/// </summary>
public static class HostSync
{
    [ThreadStatic] static long count;

    /// <summary>Host reads made on this thread so far.</summary>
    public static long Count => count;

    /// <summary>A tensor's int64 values on the host.</summary>
    public static long[] Longs(Tensor values)
    {
        count++;
        return values.cpu().data<long>().ToArray();
    }

    /// <summary>A one-element tensor's value on the host.</summary>
    public static T Item<T>(Tensor value) where T : unmanaged
    {
        count++;
        return value.item<T>();
    }
}
