using System;
using System.Collections.Generic;
using System.Globalization;
using System.IO;
using System.Linq;
using System.Text;

namespace AdvAA.Core.Data;

/// <summary>
/// The Waterbirds/WILDS convention: a folder with metadata.csv, one row per image, whose columns give
/// the image's path (relative to the folder), its class <c>y</c> (an integer), its subgroup and its
/// split (0 = train, 1 = val, 2 = test, or those words). Groups are (class, subgroup) pairs, as in
/// image folders with subgroups; images of several sizes are resized to one square size.
/// </summary>
internal static class MetadataCsv
{
    internal const string FileName = "metadata.csv";
    /// <summary>The environment variable that sets the side the images are resized to.</summary>
    internal const string SizeVariable = "ADVAA_IMAGE_SIZE";
    /// <summary>The side of the square images when they differ in size and <see cref="SizeVariable"/> is not set.</summary>
    internal const int DefaultSize = 64;
    const int MinSize = 8, MaxSize = 1024;

    /// <summary>The image's column: the first of these in the header.</summary>
    static readonly string[] PathColumns = ["img_filename", "filename", "image", "path"];
    /// <summary>The subgroup's column: the first of these in the header (Waterbirds' place first, WILDS' attribute "a" last).</summary>
    static readonly string[] GroupColumns = ["place", "group", "subgroup", "a"];
    static readonly string[] SplitNames = ["train", "val", "test"];

    /// <summary>Waterbirds' names for its classes (y) and places, known by its header's place_filename column.</summary>
    static readonly string[] WaterbirdsClasses = ["landbird", "waterbird"], WaterbirdsPlaces = ["land", "water"];

    /// <summary>The splits' listings, the side to resize every image to (null: they have one size, kept), and what looks wrong but loads.</summary>
    internal sealed record Listings(ImageFolders.Listing Train, ImageFolders.Listing Test, ImageFolders.Listing? Validation, int? Square, IReadOnlyList<string> Warnings);

    /// <summary>One image row: its line in the file, its file, class and subgroup name, and split index.</summary>
    sealed record Row(int Line, string Image, int Label, string Subgroup, int Split);

    /// <summary>Reads and checks <c>&lt;folder&gt;/metadata.csv</c>; every error names the file and, for a row, its line.</summary>
    internal static Listings List(string folder)
    {
        string root = Path.GetFullPath(folder);
        string file = Path.Combine(root, FileName);
        List<(int Line, string[] Fields)> records = Records(DataFormatException.Reading(file, () => File.ReadAllText(ImageFiles.Regular(file).FullName)), file);
        if (records.Count == 0) throw new DataFormatException($"{file}: empty; expected a header line and a row per image");
        string[] header = records[0].Fields;
        int Column(string what, params string[] names)
        {
            int found = names.Select(n => Array.IndexOf(header, n)).FirstOrDefault(i => i >= 0, -1);
            return found >= 0 ? found
                : throw new DataFormatException($"{file}: line 1: no {what} column ({string.Join(", ", names)}); the header is: {string.Join(",", header)}");
        }
        int pathColumn = Column("image path", PathColumns), classColumn = Column("class", "y"),
            groupColumn = Column("subgroup", GroupColumns), splitColumn = Column("split", "split");
        bool waterbirds = header.Contains("place_filename");
        string realRoot = ImageFiles.RealPath(root) ?? root;
        var rows = new List<Row>();
        foreach ((int line, string[] fields) in records.Skip(1))
        {
            string At(string problem) => $"{file}: line {line}: {problem}";
            if (fields.Length != header.Length)
                throw new DataFormatException(At($"{fields.Length} fields, but the header has {header.Length}"));
            string y = fields[classColumn], group = fields[groupColumn], image = fields[pathColumn];
            if (!int.TryParse(y, NumberStyles.None, CultureInfo.InvariantCulture, out int label))
                throw new DataFormatException(At($"y '{y}' is not a class number (a whole number from 0)"));
            if (waterbirds && label >= WaterbirdsClasses.Length)
                throw new DataFormatException(At($"y {label}, but Waterbirds' classes are 0 ({WaterbirdsClasses[0]}) and 1 ({WaterbirdsClasses[1]})"));
            if (group.Length == 0) throw new DataFormatException(At($"no {header[groupColumn]} (the subgroup)"));
            if (waterbirds && group is not ("0" or "1"))
                throw new DataFormatException(At($"place '{group}', but Waterbirds' places are 0 ({WaterbirdsPlaces[0]}) and 1 ({WaterbirdsPlaces[1]})"));
            string subgroup = waterbirds ? WaterbirdsPlaces[group[0] - '0'] : group;
            int split = SplitOf(fields[splitColumn]) ?? throw new DataFormatException(
                At($"split '{fields[splitColumn]}' is not 0 (train), 1 (val), 2 (test) or one of those words"));
            if (image.Length == 0) throw new DataFormatException(At($"no {header[pathColumn]} (the image's path)"));
            rows.Add(new Row(line, ImagePath(root, realRoot, image, At), label, subgroup, split));
        }
        // Every class needs train rows (two subgroups' worth), so a class number beyond the rows is a typo, not a class.
        if (rows.Count > 0 && rows.MaxBy(r => r.Label) is { } highest && highest.Label >= rows.Count)
            throw new DataFormatException($"{file}: line {highest.Line}: y {highest.Label}, but the {rows.Count} rows can hold classes 0 to {rows.Count - 1} at most; classes are numbered 0, 1, … and each needs train rows");
        int classCount = rows.Count == 0 ? 0 : rows.Max(r => r.Label) + 1;
        string[] classes = waterbirds ? WaterbirdsClasses
            : Enumerable.Range(0, classCount).Select(c => $"class {c.ToString(CultureInfo.InvariantCulture)}").ToArray();
        Row[][] bySplit = SplitNames.Select((_, s) => rows.Where(r => r.Split == s).ToArray()).ToArray();
        foreach (int s in new[] { 0, 2 })
            if (bySplit[s].Length == 0)
                throw new DataFormatException($"{file}: no {SplitNames[s]} rows (split {s} or {SplitNames[s]})");
        SubgroupName[] groups = Groups(bySplit[0], classes, file, header[groupColumn]);
        for (int s = 1; s < SplitNames.Length; s++)
            if (bySplit[s].Length > 0) CheckSameGroups(groups, Groups(bySplit[s], classes, null, header[groupColumn]), SplitNames[s], file);
        bool oneSize = ImageFolders.OneSize(rows.Select(r => new ImageFolders.EncodedImage(r.Label, r.Image, null)).ToArray());
        int? square = RequestedSize() ?? (oneSize ? null : DefaultSize);
        ImageFolders.Listing Listed(int s) => new(classes,
            bySplit[s].Select(r => new ImageFolders.EncodedImage(r.Label, r.Image, null, Array.FindIndex(groups, g => g.Class == r.Label && g.Subgroup == r.Subgroup))).ToArray(),
            $"{file} ({SplitNames[s]} rows{(square is { } side ? $", resized to {side}×{side}" : "")})", groups);
        return new Listings(Listed(0), Listed(2), bySplit[1].Length > 0 ? Listed(1) : null, square, Warnings(rows, file));
    }

    /// <summary>
    /// The image file of a row: <paramref name="image"/> relative to <paramref name="root"/> (whose
    /// links followed give <paramref name="realRoot"/>), refused
    /// (without looking at the file) when it is absolute or leads outside the folder, and, after its
    /// links are followed, when it lands outside the folder; a missing file inside it is named.
    /// </summary>
    static string ImagePath(string root, string realRoot, string image, Func<string, string> at)
    {
        if (Path.IsPathRooted(image))
            throw new DataFormatException(at($"'{image}' is an absolute path; image paths are relative to the folder of {FileName} and stay inside it"));
        string path = Path.GetFullPath(Path.Combine(root, image));
        if (!path.StartsWith(root + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new DataFormatException(at($"'{image}' leads outside {root}; image paths stay inside the folder of {FileName}"));
        // The deepest part of the path that exists, links followed: a link that leaves the folder is refused whether or not its target exists.
        string? real = null;
        for (string? part = path; part != null && part.Length > root.Length && real == null; part = Path.GetDirectoryName(part))
            real = ImageFiles.RealPath(part);
        if (real != null && !real.StartsWith(realRoot + Path.DirectorySeparatorChar, StringComparison.Ordinal))
            throw new DataFormatException(at($"'{image}' leads outside {root} through a link; image paths stay inside the folder of {FileName}"));
        if (!File.Exists(path)) throw new DataFormatException(at($"{path}: no such image file"));
        return path;
    }

    /// <summary>What loads but is probably a mistake: rows naming an image twice, and images in both the train and the test rows.</summary>
    static List<string> Warnings(List<Row> rows, string file)
    {
        var warnings = new List<string>();
        var repeats = rows.GroupBy(r => r.Image, StringComparer.Ordinal).Where(g => g.Count() > 1).ToList();
        if (repeats.Count > 0)
        {
            Row[] first = repeats[0].Take(2).ToArray();
            warnings.Add($"{file}: {repeats.Sum(g => g.Count() - 1)} rows name an image that an earlier row names ({repeats.Count} images; first: line {first[1].Line} repeats line {first[0].Line}, {first[0].Image})");
        }
        var trainImages = rows.Where(r => r.Split == 0).GroupBy(r => r.Image, StringComparer.Ordinal).ToDictionary(g => g.Key, g => g.First(), StringComparer.Ordinal);
        var leaked = rows.Where(r => r.Split == 2 && trainImages.ContainsKey(r.Image)).DistinctBy(r => r.Image).ToList();
        if (leaked.Count > 0)
            warnings.Add($"{file}: {leaked.Count} image{(leaked.Count == 1 ? " is" : "s are")} in both the train and the test rows (first: {leaked[0].Image}, lines {trainImages[leaked[0].Image].Line} and {leaked[0].Line}); the test accuracy overstates");
        return warnings;
    }

    /// <summary>The split index of a split field: 0, 1, 2, or the words train, val, test; null otherwise.</summary>
    static int? SplitOf(string field)
    {
        if (int.TryParse(field, NumberStyles.None, CultureInfo.InvariantCulture, out int number)) return number < SplitNames.Length ? number : null;
        int named = Array.FindIndex(SplitNames, n => string.Equals(n, field, StringComparison.OrdinalIgnoreCase));
        return named >= 0 ? named : null;
    }

    /// <summary>
    /// The (class, subgroup) groups of these rows, ordered by class and then subgroup name, as image
    /// folders with subgroups list them; with <paramref name="file"/> (the training rows), every class
    /// must have two or more.
    /// </summary>
    static SubgroupName[] Groups(Row[] rows, string[] classes, string? file, string column)
    {
        SubgroupName[] groups = rows.Select(r => (r.Label, r.Subgroup)).Distinct()
            .OrderBy(g => g.Label).ThenBy(g => g.Subgroup, StringComparer.Ordinal)
            .Select(g => new SubgroupName(g.Label, classes[g.Label], g.Subgroup)).ToArray();
        if (file != null)
            for (int c = 0; c < classes.Length; c++)
            {
                string[] subgroups = groups.Where(g => g.Class == c).Select(g => g.Subgroup).ToArray();
                if (subgroups.Length < 2)
                    throw new DataFormatException($"{file}: class '{classes[c]}' (y {c}) has {(subgroups.Length == 0 ? "no train rows" : $"one subgroup ({subgroups[0]})")} in its train rows; data with subgroups needs two or more {column} values per class");
            }
        return groups;
    }

    static void CheckSameGroups(SubgroupName[] train, SubgroupName[] other, string split, string file)
    {
        string[] a = train.Select(g => g.ToString()).ToArray(), b = other.Select(g => g.ToString()).ToArray();
        if (a.SequenceEqual(b, StringComparer.Ordinal)) return;
        throw new DataFormatException(
            $"{file}: the groups of its {split} rows differ from its train rows': only in train: [{string.Join(", ", a.Except(b))}]; only in {split}: [{string.Join(", ", b.Except(a))}]");
    }

    /// <summary>The side set by <see cref="SizeVariable"/>, or null when it is not set.</summary>
    static int? RequestedSize()
    {
        string? text = Environment.GetEnvironmentVariable(SizeVariable);
        if (string.IsNullOrEmpty(text)) return null;
        if (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out int side) && side is >= MinSize and <= MaxSize) return side;
        throw new ConfigException($"{SizeVariable}={text}: expected the side of the square images in pixels, a whole number from {MinSize} to {MaxSize}");
    }

    /// <summary>
    /// The records of a CSV text (RFC 4180: a quoted field may hold commas, line breaks and doubled
    /// quotes), each with the line it starts on; a final line break ends the last record, and blank
    /// lines are no records (as pandas and most CSV readers skip them).
    /// </summary>
    internal static List<(int Line, string[] Fields)> Records(string text, string file)
    {
        var records = new List<(int, string[])>();
        var fields = new List<string>();
        var field = new StringBuilder();
        int line = 1, start = 1, at = 0;
        bool quoted = false;
        void EndRecord()
        {
            fields.Add(field.ToString());
            field.Clear();
            if (fields.Count > 1 || fields[0].Length > 0 || quoted) records.Add((start, fields.ToArray()));
            fields.Clear();
            quoted = false;
        }
        while (at < text.Length)
        {
            char c = text[at];
            if (c == '"' && field.Length == 0)
            {
                quoted = true;
                int opened = line;
                at++;
                while (true)
                {
                    if (at >= text.Length) throw new DataFormatException($"{file}: line {opened}: a quoted field is never closed");
                    if (text[at] == '"')
                    {
                        if (at + 1 < text.Length && text[at + 1] == '"') { field.Append('"'); at += 2; continue; }
                        at++;
                        break;
                    }
                    if (text[at] == '\n') line++;
                    field.Append(text[at++]);
                }
                if (at < text.Length && text[at] is not (',' or '\r' or '\n'))
                    throw new DataFormatException($"{file}: line {line}: '{text[at]}' after a closing quote; a field is either quoted whole or not at all");
                continue;
            }
            if (c == '"') throw new DataFormatException($"{file}: line {line}: a quote inside an unquoted field; quote the field and double the quote");
            at++;
            if (c == ',') { fields.Add(field.ToString()); field.Clear(); }
            else if (c == '\n') { EndRecord(); start = ++line; }
            else if (c != '\r') field.Append(c);
        }
        if (field.Length > 0 || fields.Count > 0) EndRecord();
        return records;
    }
}
