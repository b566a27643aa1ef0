using System;
using System.Collections.Concurrent;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Reflection;
using System.Text.Json;
using System.Text.Json.Nodes;
using AdvAA.Core.Augment;

namespace AdvAA.Core.Methods;

/// <summary>
/// Marks a property of a method spec as one of its parameters: its name (as the CLI's --param, the
/// JSON and `advaa methods` write it), what it means and its valid range. For schedules the range
/// bounds every value the schedule takes over the run.
/// </summary>
[AttributeUsage(AttributeTargets.Property)]
public sealed class ParameterAttribute(string name, string description) : Attribute
{
    public string Name { get; } = name;
    public string Description { get; } = description;
    public double Min { get; init; } = double.NegativeInfinity;
    public double Max { get; init; } = double.PositiveInfinity;
    /// <summary>Values must be above <see cref="Min"/>, not equal to it (a learning rate).</summary>
    public bool MinExclusive { get; init; }
    /// <summary>A string that is a word or list, not a path (help texts say "text").</summary>
    public bool Text { get; init; }
    /// <summary>A string or policy that may be left unset (null).</summary>
    public bool Optional { get; init; }
    /// <summary>The value (as text) in effect for a config.json that lacks the parameter, written before it existed; null: the default.</summary>
    public string? Absent { get; init; }
}

/// <summary>
/// A method's parameters with their defaults, validation and JSON form: one record per method (or
/// family), each parameter a property marked <see cref="ParameterAttribute"/>. The registry gives
/// every spec its <see cref="Name"/> and defaults; <see cref="Create"/> makes the method.
/// </summary>
public abstract record MethodSpec
{
    /// <summary>The registry name, e.g. "randaugment".</summary>
    public string Name { get; init; } = "";

    /// <summary>Every method ends with the standard crop/flip and, unless this is 0, Cutout (DeVries &amp; Taylor 2017).</summary>
    [Parameter("cutout", "side of the Cutout square in pixels after the method's augmentation, 0 for none", Min = 0)]
    public int Cutout { get; init; }

    /// <summary>Makes the method for a run (called once per trainer, after <see cref="Validate"/>).</summary>
    public abstract ITrainingMethod Create(MethodContext context);

    /// <summary>Whether the method draws its ops from a search space (so the space is part of what it trains with).</summary>
    public virtual bool UsesSearchSpace => false;

    /// <summary>The values the method records each epoch (<see cref="MethodEpochRecord.Metrics"/>) and how to show them.</summary>
    public virtual IReadOnlyList<MetricDescription> Metrics => [];

    /// <summary>The search space the method's policies are over: the experiment's, unless the method brings its own (a transfer's source).</summary>
    public virtual SearchSpace TrainingSpace(SearchSpace experiment) => experiment;

    /// <summary>The parameters of this spec's type, base record's first.</summary>
    public IReadOnlyList<MethodParameter> Parameters => MethodParameter.Of(GetType());

    /// <summary>The parameter with this name (case-insensitive; "method.name" is accepted for this method).</summary>
    public MethodParameter Parameter(string name)
    {
        string key = name.Trim();
        int dot = key.IndexOf('.');
        if (dot >= 0)
        {
            string method = key[..dot];
            if (!string.Equals(method, Name, StringComparison.OrdinalIgnoreCase))
                throw new ConfigException($"parameter '{name}' is for method '{method}', but the method is '{Name}'", "method");
            key = key[(dot + 1)..];
        }
        return Parameters.FirstOrDefault(p => string.Equals(p.Name, key, StringComparison.OrdinalIgnoreCase))
            ?? throw new ConfigException($"method '{Name}' has no parameter '{key}': its parameters are {string.Join(", ", Parameters.Select(p => p.Name))}", "method");
    }

    public bool HasParameter(string name) => Parameters.Any(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase));

    /// <summary>A copy with one parameter set to a typed value (int, double, bool, string, EpochSchedule, PolicyDocument).</summary>
    public MethodSpec With(string parameter, object? value) => Parameter(parameter).With(this, value);

    /// <summary>A copy with one parameter parsed from text, as `--param name=value` gives it.</summary>
    public MethodSpec WithText(string parameter, string text)
    {
        var p = Parameter(parameter);
        return p.With(this, p.Parse(text, $"{Name}.{p.Name}"));
    }

    /// <summary>
    /// Checks every parameter against its range (schedules at every whole and half epoch of a run of
    /// <paramref name="epochs"/>) and the method's own rules; the first bad one is an error naming it.
    /// </summary>
    /// <returns>The spec ready to train (with its derived values).</returns>
    public MethodSpec Validate(int epochs, SearchSpace space)
    {
        foreach (var p in Parameters)
            if (p.Problem(p.Get(this), epochs) is { } problem)
                throw new ConfigException($"{Name}.{p.Name} = {problem}", p.Setting);
        Check(epochs, space);
        return Resolve(epochs, space);
    }

    /// <summary>
    /// Rules across parameters (e.g. keep ≤ candidates) and against the experiment's search space
    /// (a policy's ops); throw <see cref="ConfigException"/> naming them.
    /// </summary>
    protected virtual void Check(int epochs, SearchSpace space) { }

    /// <summary>An error naming one of this method's parameters and its value.</summary>
    protected ConfigException Bad(string parameter, object? value, string expected) =>
        new($"{Name}.{parameter} = {MethodParameter.Show(value)}: expected {expected}", MethodParameter.SettingOf(parameter));

    /// <summary>
    /// The spec ready to train, after <see cref="Check"/>: values derived from the parameters that the
    /// record must also hold are filled in (e.g. the content hash of a transfer's source run).
    /// </summary>
    protected virtual MethodSpec Resolve(int epochs, SearchSpace space) => this;

    /// <summary>Fields of the record that hold derived values (written by <see cref="AddDerived"/>, read by <see cref="WithDerived"/>).</summary>
    protected internal virtual IReadOnlyCollection<string> DerivedFields => [];

    /// <summary>Adds the derived values to the record.</summary>
    protected virtual void AddDerived(JsonObject record) { }

    /// <summary>A copy with the derived values of a record read back from config.json.</summary>
    protected internal virtual MethodSpec WithDerived(JsonObject record, string where) => this;

    /// <summary>The spec as config.json records it: its name, then every parameter.</summary>
    public JsonObject ToJson()
    {
        var json = new JsonObject { ["name"] = Name };
        foreach (var p in Parameters) json[p.Name] = p.ToJson(p.Get(this));
        AddDerived(json);
        return json;
    }

    /// <summary>The spec as a resumed run must match it: <see cref="ToJson"/> without provenance (where a policy file came from).</summary>
    public JsonObject Identity()
    {
        var json = ToJson();
        foreach (var p in Parameters.Where(p => p.ValueType == typeof(PolicyDocument)))
            (json[p.Name] as JsonObject)?.Remove("source");
        return json;
    }

    /// <summary>"n = 2, m = 9, instances = 1, cutout = 16": the parameters in one line.</summary>
    public string Summary => string.Join(", ", Parameters.Select(p => $"{p.Name} = {p.Format(p.Get(this))}"));
}

/// <summary>One parameter of a method spec, read from its property and <see cref="ParameterAttribute"/>.</summary>
public sealed class MethodParameter
{
    static readonly ConcurrentDictionary<Type, IReadOnlyList<MethodParameter>> cache = new();
    readonly PropertyInfo property;

    MethodParameter(PropertyInfo property, ParameterAttribute attribute)
    {
        this.property = property;
        Name = attribute.Name;
        Description = attribute.Description;
        Min = attribute.Min;
        Max = attribute.Max;
        MinExclusive = attribute.MinExclusive;
        IsText = attribute.Text;
        Optional = attribute.Optional;
        Absent = attribute.Absent;
        ValueType = property.PropertyType;
        if (!(ValueType == typeof(int) || ValueType == typeof(double) || ValueType == typeof(bool) || ValueType == typeof(string)
              || ValueType == typeof(EpochSchedule) || ValueType == typeof(PolicyDocument)))
            throw new InvalidOperationException($"parameter {Name} of {property.DeclaringType?.Name}: type {ValueType.Name} is not a parameter type");
    }

    public string Name { get; }
    public string Description { get; }
    /// <summary>The parameter's path in config.json's experiment ("method.n"), as <see cref="ConfigException.Setting"/> names it.</summary>
    public string Setting => SettingOf(Name);
    public static string SettingOf(string parameter) => $"method.{parameter}";
    public double Min { get; }
    public double Max { get; }
    public bool MinExclusive { get; }
    public bool IsText { get; }
    public bool Optional { get; }
    /// <summary>The value (as text) a config.json that lacks the parameter had in effect, or null for the default.</summary>
    public string? Absent { get; }
    public Type ValueType { get; }

    /// <summary>The kind of value, as help texts name it.</summary>
    public string Kind =>
        ValueType == typeof(int) ? "integer"
        : ValueType == typeof(double) ? "number"
        : ValueType == typeof(bool) ? "true|false"
        : ValueType == typeof(EpochSchedule) ? "schedule"
        : ValueType == typeof(PolicyDocument) ? "policy file"
        : IsText ? "text"
        : "path";

    /// <summary>"1..4096", "≥ 0", "> 0" or "" (any).</summary>
    public string RangeText =>
        (double.IsInfinity(Min), double.IsInfinity(Max)) switch
        {
            (false, false) => MinExclusive ? $"> {Show(Min)}, ≤ {Show(Max)}" : $"{Show(Min)}..{Show(Max)}",
            (false, true) => $"{(MinExclusive ? ">" : "≥")} {Show(Min)}",
            (true, false) => $"≤ {Show(Max)}",
            _ => "",
        };

    public static IReadOnlyList<MethodParameter> Of(Type specType) => cache.GetOrAdd(specType, t =>
    {
        int Depth(Type? type) => type == null ? 0 : 1 + Depth(type.BaseType);
        return t.GetProperties(BindingFlags.Public | BindingFlags.Instance)
            .Select(p => (Property: p, Attribute: p.GetCustomAttribute<ParameterAttribute>()))
            .Where(x => x.Attribute != null)
            .OrderBy(x => Depth(x.Property.DeclaringType))
            .ThenBy(x => x.Property.MetadataToken)
            .Select(x => new MethodParameter(x.Property, x.Attribute!))
            .ToArray();
    });

    public object? Get(MethodSpec spec) => property.GetValue(spec);

    /// <summary>A copy of <paramref name="spec"/> with this parameter set (records copy through their clone method).</summary>
    internal MethodSpec With(MethodSpec spec, object? value)
    {
        object? typed = value switch
        {
            null => null,
            _ when ValueType.IsInstanceOfType(value) => value,
            int i when ValueType == typeof(double) => (double)i,
            double d when ValueType == typeof(EpochSchedule) => EpochSchedule.Constant(d),
            int i when ValueType == typeof(EpochSchedule) => EpochSchedule.Constant(i),
            _ => throw new ConfigException($"{spec.Name}.{Name}: a {value.GetType().Name} cannot be {Article(Kind)}", Setting),
        };
        if (typed == null && ValueType.IsValueType)
            throw new ConfigException($"{spec.Name}.{Name}: {Article(Kind)} is required", Setting);
        var clone = (MethodSpec)spec.GetType().GetMethod("<Clone>$")!.Invoke(spec, null)!;
        property.SetValue(clone, typed);
        return clone;
    }

    /// <summary>Parses a command-line value; a policy file is read from its path.</summary>
    public object Parse(string text, string source)
    {
        string t = text.Trim();
        ConfigException Bad() => new($"{source} = {text}: expected {Article(Kind)}", Setting);
        if (ValueType == typeof(int))
            return int.TryParse(t, NumberStyles.Integer, CultureInfo.InvariantCulture, out int i) ? i : throw Bad();
        if (ValueType == typeof(double) || ValueType == typeof(EpochSchedule))
        {
            if (!double.TryParse(t, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) || !double.IsFinite(d)) throw Bad();
            return ValueType == typeof(double) ? d : EpochSchedule.Constant(d);
        }
        if (ValueType == typeof(bool))
            return bool.TryParse(t, out bool b) ? b : throw Bad();
        if (ValueType == typeof(PolicyDocument))
        {
            try { return PolicyJson.ReadDocument(t); }
            catch (AugmentException e) { throw new ConfigException($"{source}: {e.Message}", Setting); }
        }
        return t.Length > 0 ? t : throw Bad();
    }

    /// <summary>Why a value is not valid (the value and what was expected), or null.</summary>
    internal string? Problem(object? value, int epochs)
    {
        string Expected(double v) => $"{Show(v)}: expected {(RangeText.Length > 0 ? RangeText : "a finite value")}";
        bool InRange(double v) => double.IsFinite(v) && (MinExclusive ? v > Min : v >= Min) && v <= Max;
        switch (value)
        {
            case null when !Optional && (ValueType == typeof(string) || ValueType == typeof(PolicyDocument)):
                return $"(none): expected {Article(Kind)}";
            case int i when !InRange(i):
                return Expected(i);
            case double d when !InRange(d):
                return Expected(d);
            case EpochSchedule s:
                (double Epoch, double Value)? outside;
                try { outside = s.FirstInvalid(epochs, InRange); }
                catch (InvalidOperationException) { return $"{s.Description}: a recorded schedule that cannot be evaluated"; }
                if (outside is var (epoch, v))
                    return $"{s.Description}: {Show(v)} at epoch {Show(epoch)}, expected values in {(RangeText.Length > 0 ? RangeText : "finite numbers")}";
                return null;
            default:
                return null;
        }
    }

    public JsonNode? ToJson(object? value) => value switch
    {
        null => null,
        EpochSchedule s => JsonValue.Create(s.Description),
        PolicyDocument d => PolicyJson.ToJson(d),
        int i => JsonValue.Create(i),
        double d => JsonOptions.Number(d),
        bool b => JsonValue.Create(b),
        string s => JsonValue.Create(s),
        _ => throw new InvalidOperationException($"{Name}: cannot write a {value.GetType().Name}"),
    };

    /// <summary>The value from config.json; <paramref name="where"/> names the place in errors.</summary>
    public object? FromJson(JsonNode? node, string where)
    {
        try
        {
            if (node == null) return null;
            if (ValueType == typeof(EpochSchedule)) return EpochSchedule.Recorded(node.GetValue<string>());
            if (ValueType == typeof(PolicyDocument)) return PolicyJson.ParseDocument(node.ToJsonString(), where);
            if (ValueType == typeof(int)) return node.GetValue<int>();
            if (ValueType == typeof(double)) return node.GetValue<double>();
            if (ValueType == typeof(bool)) return node.GetValue<bool>();
            return node.GetValue<string>();
        }
        catch (Exception e) when (e is InvalidOperationException or FormatException or AugmentException)
        {
            throw new RunFolderException($"{where}: {Name} is {node?.ToJsonString()}: expected {Article(Kind)}", e);
        }
    }

    /// <summary>"an integer", "a number", "true or false", "a schedule".</summary>
    internal static string Article(string kind) =>
        kind == "true|false" ? "true or false" : ("aeiou".Contains(kind[0]) ? "an " : "a ") + kind;

    /// <summary>A value as the summary and `advaa methods` show it.</summary>
    public string Format(object? value) => value switch
    {
        null => "(none)",
        PolicyDocument d => d.Describe(),
        _ => Show(value),
    };

    internal static string Show(object? value) => value switch
    {
        null => "(none)",
        double d => d.ToString("0.######", CultureInfo.InvariantCulture),
        bool b => b ? "true" : "false",
        IFormattable f => f.ToString(null, CultureInfo.InvariantCulture),
        _ => value.ToString() ?? "",
    };
}
