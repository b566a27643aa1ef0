using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Numerics;
using System.Text;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Models;

/// <summary>A dict from a pickle (an OrderedDict or a plain dict), its items in order.</summary>
internal sealed class PickleDict
{
    public List<(object? Key, object? Value)> Items { get; } = [];
}

/// <summary>
/// Reads the pickles inside PyTorch weights files: the value opcodes of protocols 2 to 5 and the few
/// globals a state dict is made of (OrderedDict, the tensor and parameter rebuilders, the storage
/// types). Any other global is an error naming it, so a file never runs code, unlike Python's
/// unpickler.
/// </summary>
internal sealed class PickleReader(Stream stream, string file, Func<string, byte[]> record) : IDisposable
{
    readonly BinaryReader r = new(stream, Encoding.UTF8);
    readonly List<object?> stack = [];
    readonly Stack<int> marks = new();
    readonly Dictionary<long, object?> memo = [];
    readonly Dictionary<string, Tensor> storages = [];

    sealed record Global(string Module, string Name);
    sealed record Storage(Tensor Flat);
    sealed record Build(Global Callable);

    /// <summary>A short description of a value read from a pickle, for messages.</summary>
    public static string Describe(object? value) => value switch
    {
        null => "None",
        string s => $"'{s}'",
        Tensor t => $"tensor [{string.Join(",", t.shape)}]",
        PickleDict => "dict",
        object?[] => "tuple",
        List<object?> => "list",
        Global g => $"{g.Module}.{g.Name}",
        _ => value.GetType().Name,
    };

    /// <summary>Frees the storages; the tensors read keep what they view.</summary>
    public void Dispose()
    {
        foreach (Tensor t in storages.Values) t.Dispose();
    }

    public object? Load()
    {
        while (true)
        {
            int op = stream.ReadByte();
            switch (op)
            {
                case -1: throw new EndOfStreamException();
                case 0x80: r.ReadByte(); break; // PROTO
                case 0x95: r.ReadUInt64(); break; // FRAME: the frame's length; its opcodes follow inline
                case '.': return Pop(); // STOP
                case '(': marks.Push(stack.Count); break;
                case ')': Push(Array.Empty<object?>()); break;
                case 't': Push(PopMark().ToArray()); break;
                case 0x85: Push(new[] { Pop() }); break;
                case 0x86: { var b = Pop(); var a = Pop(); Push(new[] { a, b }); break; }
                case 0x87: { var c = Pop(); var b = Pop(); var a = Pop(); Push(new[] { a, b, c }); break; }
                case '}': Push(new PickleDict()); break;
                case ']': Push(new List<object?>()); break;
                case 'a': { var v = Pop(); ((List<object?>)Peek("APPEND", typeof(List<object?>))!).Add(v); break; }
                case 'e': { var items = PopMark(); ((List<object?>)Peek("APPENDS", typeof(List<object?>))!).AddRange(items); break; }
                case 's': { var v = Pop(); var k = Pop(); ((PickleDict)Peek("SETITEM", typeof(PickleDict))!).Items.Add((k, v)); break; }
                case 'u':
                {
                    var items = PopMark();
                    var dict = (PickleDict)Peek("SETITEMS", typeof(PickleDict))!;
                    for (int i = 0; i + 1 < items.Count; i += 2) dict.Items.Add((items[i], items[i + 1]));
                    break;
                }
                case 'b': Pop(); break; // BUILD: the state of an OrderedDict (its _metadata) is not needed
                case 'N': Push(null); break;
                case 0x88: Push(true); break;
                case 0x89: Push(false); break;
                case 'K': Push((long)r.ReadByte()); break;
                case 'M': Push((long)r.ReadUInt16()); break;
                case 'J': Push((long)r.ReadInt32()); break;
                case 0x8a: Push(Long(r.ReadByte())); break;
                case 0x8b: Push(Long(r.ReadInt32())); break;
                case 'G': Push(BitConverter.Int64BitsToDouble(System.Buffers.Binary.BinaryPrimitives.ReadInt64BigEndian(r.ReadBytes(8)))); break;
                case 'X': Push(Utf8(r.ReadInt32())); break;
                case 0x8c: Push(Utf8(r.ReadByte())); break;
                case 0x8d: Push(Utf8(checked((int)r.ReadInt64()))); break;
                case 'U': Push(Encoding.Latin1.GetString(Bytes(r.ReadByte()))); break;
                case 'T': Push(Encoding.Latin1.GetString(Bytes(r.ReadInt32()))); break;
                case 'C': Push(Bytes(r.ReadByte())); break;
                case 'B': Push(Bytes(r.ReadInt32())); break;
                case 'c': Push(new Global(Line(), Line())); break;
                case 0x93: { var name = (string)Pop()!; var module = (string)Pop()!; Push(new Global(module, name)); break; }
                case 'q': memo[r.ReadByte()] = Peek("BINPUT", null); break;
                case 'r': memo[r.ReadUInt32()] = Peek("LONG_BINPUT", null); break;
                case 0x94: memo[memo.Count] = Peek("MEMOIZE", null); break;
                case 'h': Push(Memo(r.ReadByte())); break;
                case 'j': Push(Memo(r.ReadUInt32())); break;
                case 'Q': Push(PersistentLoad(Pop())); break;
                case 'R': { var args = Pop(); var callable = Pop(); Push(Reduce(callable, args)); break; }
                default: throw Bad($"pickle opcode 0x{op:x2}, which a state dict does not use");
            }
        }
    }

    ModelFileException Bad(string what) => new($"{file}: data.pkl holds {what}; AdvAA reads state dicts written by torch.save(model.state_dict(), ...)");

    void Push(object? value) => stack.Add(value);

    object? Pop()
    {
        if (stack.Count == 0) throw Bad("an opcode with nothing on the stack (the pickle is damaged)");
        object? v = stack[^1];
        stack.RemoveAt(stack.Count - 1);
        return v;
    }

    object? Peek(string opcode, Type? expected)
    {
        if (stack.Count == 0 || (expected != null && (stack[^1] is null || !expected.IsInstanceOfType(stack[^1]))))
            throw Bad($"{opcode} without a {(expected == typeof(PickleDict) ? "dict" : expected == null ? "value" : "list")} under it (the pickle is damaged)");
        return stack[^1];
    }

    List<object?> PopMark()
    {
        if (marks.Count == 0) throw Bad("a sequence without its MARK (the pickle is damaged)");
        int start = marks.Pop();
        var items = stack.GetRange(start, stack.Count - start);
        stack.RemoveRange(start, stack.Count - start);
        return items;
    }

    object? Memo(long key) => memo.TryGetValue(key, out var v) ? v : throw Bad($"a reference to memo entry {key}, which was never stored (the pickle is damaged)");

    byte[] Bytes(int count)
    {
        byte[] b = r.ReadBytes(count);
        return b.Length == count ? b : throw new EndOfStreamException();
    }

    string Utf8(int count) => Encoding.UTF8.GetString(Bytes(count));

    object Long(int count)
    {
        var v = new BigInteger(Bytes(count), isUnsigned: false, isBigEndian: false);
        return v >= long.MinValue && v <= long.MaxValue ? (long)v : throw Bad($"an integer of {count} bytes");
    }

    string Line()
    {
        var b = new StringBuilder();
        for (int c = stream.ReadByte(); c != '\n'; c = stream.ReadByte())
        {
            if (c < 0) throw new EndOfStreamException();
            b.Append((char)c);
        }
        return b.ToString();
    }

    /// <summary>('storage', torch.XStorage, key, location, numel): the record's bytes as a flat CPU tensor of that dtype.</summary>
    object PersistentLoad(object? id)
    {
        if (id is not object?[] { Length: 5 } t || t[0] is not "storage" || t[1] is not Global type || t[2] is not string key)
            throw Bad($"a persistent id {Describe(id)} that is not a tensor storage");
        ScalarType dtype = type.Module == "torch" && PyTorchStateDict.StorageType(type.Name) is ScalarType s
            ? s
            : throw Bad($"storage type {type.Module}.{type.Name}");
        if (!storages.TryGetValue(key, out Tensor? flat))
        {
            byte[] data = record(key);
            long size = torch.empty(0, dtype).element_size();
            if (data.Length % size != 0) throw new ModelFileException($"{file}: the tensor data record {key} has {data.Length} bytes, not a whole number of {dtype} values");
            flat = torch.empty(data.Length / size, dtype);
            flat.bytes = data;
            storages[key] = flat;
        }
        return new Storage(flat);
    }

    object? Reduce(object? callable, object? args)
    {
        if (callable is not Global g) throw Bad($"a call of {Describe(callable)}");
        object?[] a = args as object?[] ?? throw Bad($"a call of {g.Module}.{g.Name} without an argument tuple");
        switch (g.Module, g.Name)
        {
            case ("collections", "OrderedDict") when a.Length == 0:
                return new PickleDict();
            case ("torch._utils", "_rebuild_tensor_v2") when a.Length >= 4 && a[0] is Storage storage && a[1] is long offset:
                long[] shape = Longs(a[2], "size");
                long[] strides = Longs(a[3], "stride");
                long last = offset + shape.Zip(strides, (n, st) => n == 0 ? 0 : (n - 1) * st).Sum();
                if (shape.Contains(0L)) return torch.empty(shape, storage.Flat.dtype);
                if (offset < 0 || last >= storage.Flat.numel())
                    throw new ModelFileException($"{file}: a tensor [{string.Join(",", shape)}] reaches past its storage of {storage.Flat.numel()} values");
                return storage.Flat.as_strided(shape, strides, offset).contiguous();
            case ("torch._utils", "_rebuild_parameter") when a.Length >= 1 && a[0] is Tensor data:
                return data;
            default:
                throw Bad($"a call of {g.Module}.{g.Name}");
        }
    }

    long[] Longs(object? value, string what) =>
        value is object?[] items && items.All(i => i is long) ? items.Select(i => (long)i!).ToArray() : throw Bad($"a tensor {what} {Describe(value)}");
}
