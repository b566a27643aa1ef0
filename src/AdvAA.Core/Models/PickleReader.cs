using System;
using System.Collections.Generic;
using System.IO;
using System.Linq;
using System.Numerics;
using System.Text;
using System.Buffers.Binary;
using TorchSharp;
using static TorchSharp.torch;

namespace AdvAA.Core.Models;

/// <summary>A dict from a pickle (an OrderedDict or a plain dict), its items in order.</summary>
internal sealed class PickleDict
{
    public List<(object? Key, object? Value)> Items { get; } = [];
}

/// <summary>A tensor storage record of a weights file as its pickle declares it: key, dtype and number of values (not yet read).</summary>
internal sealed record StorageRecord(string Key, ScalarType Type, long Elements)
{
    /// <summary>Bytes per value of <see cref="Type"/>.</summary>
    public int ElementSize => Type switch
    {
        ScalarType.Float64 or ScalarType.Int64 => 8,
        ScalarType.Float32 or ScalarType.Int32 => 4,
        ScalarType.Float16 or ScalarType.BFloat16 or ScalarType.Int16 => 2,
        _ => 1,
    };
}

/// <summary>A tensor as a state dict's pickle describes it: a strided view of a storage record, checked to lie inside it, not yet read.</summary>
internal sealed record TensorView(StorageRecord Storage, long Offset, long[] Shape, long[] Strides)
{
    /// <summary>The number of values the tensor has (checked against overflow when the view was made).</summary>
    public long Elements => Shape.Aggregate(1L, (a, n) => a * n);
}

/// <summary>
/// Reads the pickles inside PyTorch weights files: the value opcodes of protocols 2 to 5 and the few
/// globals a state dict is made of (OrderedDict, the tensor and parameter rebuilders, the storage
/// types). Any other global is an error naming it, so a file never runs code, unlike Python's
/// unpickler. The pickle is read from memory: a length an opcode claims is checked against the bytes
/// that remain before anything is allocated, and tensors come back as <see cref="TensorView"/>s,
/// whose records the caller reads once it has checked them.
/// </summary>
internal sealed class PickleReader(byte[] pickle, string file, Func<string, long> recordBytes)
{
    readonly List<object?> stack = [];
    readonly Stack<int> marks = new();
    readonly Dictionary<long, object?> memo = [];
    readonly Dictionary<string, StorageRecord> storages = [];
    int at;

    sealed record Global(string Module, string Name);

    /// <summary>A short description of a value read from a pickle, for messages.</summary>
    public static string Describe(object? value) => value switch
    {
        null => "None",
        string s => $"'{s}'",
        TensorView t => $"tensor [{string.Join(",", t.Shape)}]",
        PickleDict => "dict",
        object?[] => "tuple",
        List<object?> => "list",
        Global g => $"{g.Module}.{g.Name}",
        _ => value.GetType().Name,
    };

    public object? Load()
    {
        while (true)
        {
            int op = Byte();
            switch (op)
            {
                case 0x80: Byte(); break; // PROTO
                case 0x95: Bytes(8); break; // FRAME: the frame's length; its opcodes follow inline
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
                case 'K': Push((long)Byte()); break;
                case 'M': Push((long)BinaryPrimitives.ReadUInt16LittleEndian(Bytes(2))); break;
                case 'J': Push((long)BinaryPrimitives.ReadInt32LittleEndian(Bytes(4))); break;
                case 0x8a: Push(Long(Byte())); break;
                case 0x8b: Push(Long(Length(BinaryPrimitives.ReadInt32LittleEndian(Bytes(4)), "LONG4"))); break;
                case 'G': Push(BitConverter.Int64BitsToDouble(BinaryPrimitives.ReadInt64BigEndian(Bytes(8)))); break;
                case 'X': Push(Utf8(Length(BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4)), "BINUNICODE"))); break;
                case 0x8c: Push(Utf8(Byte())); break;
                case 0x8d: Push(Utf8(Length(BinaryPrimitives.ReadUInt64LittleEndian(Bytes(8)), "BINUNICODE8"))); break;
                case 'U': Push(Encoding.Latin1.GetString(Bytes(Byte()))); break;
                case 'T': Push(Encoding.Latin1.GetString(Bytes(Length(BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4)), "BINSTRING")))); break;
                case 'C': Push(Bytes(Byte()).ToArray()); break;
                case 'B': Push(Bytes(Length(BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4)), "BINBYTES")).ToArray()); break;
                case 'c': Push(new Global(Line(), Line())); break;
                case 0x93:
                {
                    var name = Pop();
                    var module = Pop();
                    if (module is not string m || name is not string n) throw Bad($"STACK_GLOBAL of {Describe(module)} and {Describe(name)}, not two names (the pickle is damaged)");
                    Push(new Global(m, n));
                    break;
                }
                case 'q': memo[Byte()] = Peek("BINPUT", null); break;
                case 'r': memo[BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4))] = Peek("LONG_BINPUT", null); break;
                case 0x94: memo[memo.Count] = Peek("MEMOIZE", null); break;
                case 'h': Push(Memo(Byte())); break;
                case 'j': Push(Memo(BinaryPrimitives.ReadUInt32LittleEndian(Bytes(4)))); break;
                case 'Q': Push(PersistentLoad(Pop())); break;
                case 'R': { var args = Pop(); var callable = Pop(); Push(Reduce(callable, args)); break; }
                default: throw Bad($"pickle opcode 0x{op:x2} at byte {at - 1}, which a state dict does not use");
            }
        }
    }

    ModelFileException Bad(string what) => new($"{file}: data.pkl holds {what}; AdvAA reads state dicts written by torch.save(model.state_dict(), ...)");

    void Push(object? value) => stack.Add(value);

    /// <summary>The stack above the innermost MARK: what an opcode may take (Python's unpickler keeps the rest aside).</summary>
    int Floor => marks.Count > 0 ? marks.Peek() : 0;

    object? Pop()
    {
        if (stack.Count <= Floor) throw Bad("an opcode with nothing on the stack (the pickle is damaged)");
        object? v = stack[^1];
        stack.RemoveAt(stack.Count - 1);
        return v;
    }

    object? Peek(string opcode, Type? expected)
    {
        if (stack.Count <= Floor || (expected != null && (stack[^1] is null || !expected.IsInstanceOfType(stack[^1]))))
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

    int Byte() => at < pickle.Length ? pickle[at++] : throw new EndOfStreamException();

    /// <summary>The next <paramref name="count"/> bytes; a count beyond the pickle's end is an error before anything is allocated.</summary>
    ReadOnlySpan<byte> Bytes(int count)
    {
        if (count > pickle.Length - at) throw new EndOfStreamException();
        var span = pickle.AsSpan(at, count);
        at += count;
        return span;
    }

    /// <summary>A length an opcode claims, when it fits in what is left of the pickle.</summary>
    int Length(long claimed, string opcode) =>
        claimed >= 0 && claimed <= pickle.Length - at
            ? (int)claimed
            : throw Bad($"{opcode} claiming {claimed} bytes at byte {at}, but {pickle.Length - at} remain (the pickle is damaged)");

    int Length(ulong claimed, string opcode) => Length(claimed > long.MaxValue ? -1 : (long)claimed, opcode);

    string Utf8(int count) => Encoding.UTF8.GetString(Bytes(count));

    object Long(int count)
    {
        var v = new BigInteger(Bytes(count), isUnsigned: false, isBigEndian: false);
        return v >= long.MinValue && v <= long.MaxValue ? (long)v : throw Bad($"an integer of {count} bytes");
    }

    string Line()
    {
        int end = Array.IndexOf(pickle, (byte)'\n', at);
        if (end < 0) throw new EndOfStreamException();
        string line = Encoding.ASCII.GetString(pickle, at, end - at);
        at = end + 1;
        return line;
    }

    /// <summary>('storage', torch.XStorage, key, location, numel): the record, its declared size checked against the file's.</summary>
    StorageRecord PersistentLoad(object? id)
    {
        if (id is not object?[] { Length: 5 } t || t[0] is not "storage" || t[1] is not Global type || t[2] is not string key || t[4] is not long elements)
            throw Bad($"a persistent id {Describe(id)} that is not a tensor storage");
        ScalarType dtype = type.Module == "torch" && PyTorchStateDict.StorageType(type.Name) is ScalarType s
            ? s
            : throw Bad($"storage type {type.Module}.{type.Name}");
        if (storages.TryGetValue(key, out StorageRecord? known)) return known;
        var record = new StorageRecord(key, dtype, elements);
        long available = recordBytes(key);
        if (elements < 0 || elements > available / record.ElementSize)
            throw new ModelFileException($"{file}: the tensor storage {key} declares {elements} values of {dtype}, but its data record holds {available} bytes");
        return storages[key] = record;
    }

    object? Reduce(object? callable, object? args)
    {
        if (callable is not Global g) throw Bad($"a call of {Describe(callable)}");
        object?[] a = args as object?[] ?? throw Bad($"a call of {g.Module}.{g.Name} without an argument tuple");
        switch (g.Module, g.Name)
        {
            // OrderedDict() as pickle writes it, or OrderedDict(()) of an empty tuple (TorchSharp.PyBridge's writing).
            case ("collections", "OrderedDict") when a.Length == 0 || (a.Length == 1 && a[0] is object?[] { Length: 0 }):
                return new PickleDict();
            case ("torch._utils", "_rebuild_tensor_v2") when a.Length >= 4 && a[0] is StorageRecord storage && a[1] is long offset:
                return View(storage, offset, Longs(a[2], "size"), Longs(a[3], "stride"));
            case ("torch._utils", "_rebuild_parameter") when a.Length >= 1 && a[0] is TensorView data:
                return data;
            default:
                throw Bad($"a call of {g.Module}.{g.Name}");
        }
    }

    /// <summary>A view whose every element lies inside its storage, its sizes computed without overflow.</summary>
    TensorView View(StorageRecord storage, long offset, long[] shape, long[] strides)
    {
        string described = $"a tensor of size [{string.Join(",", shape)}] and stride [{string.Join(",", strides)}] at offset {offset}";
        if (shape.Length != strides.Length || shape.Any(n => n < 0) || strides.Any(s => s < 0) || offset < 0)
            throw Bad($"{described}, which is not a valid view");
        try
        {
            long elements = shape.Aggregate(1L, (p, n) => checked(p * n));
            if (elements == 0) return new TensorView(storage, 0, shape, strides);
            long last = checked(offset + shape.Zip(strides, (n, st) => checked((n - 1) * st)).Aggregate(0L, (p, x) => checked(p + x)));
            if (last >= storage.Elements)
                throw new ModelFileException($"{file}: {described} reaches past its storage {storage.Key} of {storage.Elements} values");
            return new TensorView(storage, offset, shape, strides);
        }
        catch (OverflowException)
        {
            throw Bad($"{described}, whose size overflows");
        }
    }

    long[] Longs(object? value, string what) =>
        value is object?[] items && items.All(i => i is long) ? items.Select(i => (long)i!).ToArray() : throw Bad($"a tensor {what} {Describe(value)}");
}
