using System.Text;

namespace Appliance.Filtering.Sieve;

internal enum SieveComparator { Octet, AsciiCasemap, AsciiNumeric }

/// <summary>
/// A test's match type and comparator (RFC 5228 §2.7, RFC 5231 relational, RFC 4790 comparators):
/// :is, :contains, :matches (* and ?, \ escapes the next character), :count and :value with
/// gt/ge/lt/le/eq/ne. For :matches the substrings each wildcard took are kept for the ${1}..${9}
/// match variables (RFC 5229 §3.2): each * takes as little as it can, leftmost first.
/// </summary>
internal sealed class SieveMatch(string type, string? relation, SieveComparator comparator)
{
    public string Type { get; } = type;

    public static SieveMatch From(SieveNode node)
    {
        var type = node.Has(":contains") ? "contains" : node.Has(":matches") ? "matches"
            : node.Has(":count") ? "count" : node.Has(":value") ? "value" : "is";
        var relation = (node.Tag(":count") ?? node.Tag(":value"))?.String.ToLowerInvariant();
        var comparator = node.Tag(":comparator")?.String.ToLowerInvariant() switch
        {
            "i;octet" => SieveComparator.Octet,
            "i;ascii-numeric" => SieveComparator.AsciiNumeric,
            _ => SieveComparator.AsciiCasemap,
        };
        return new SieveMatch(type, relation, comparator);
    }

    /// <summary>
    /// True when a value matches a key; for :matches, captures receives ${0}..${n} of the first match.
    /// :count compares the number of values (empty ones not counted when countEmpty is false).
    /// </summary>
    public bool Test(IReadOnlyList<string> values, IReadOnlyList<string> keys, Action<List<string>>? captured = null, bool countEmpty = true)
    {
        if (Type == "count")
        {
            var count = (countEmpty ? values.Count : values.Count(v => v.Length > 0)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            return keys.Any(k => Relate(Compare(count, k)));
        }
        foreach (var value in values)
            foreach (var key in keys)
            {
                switch (Type)
                {
                    case "is" when Equal(value, key):
                    case "contains" when Contains(value, key):
                    case "value" when Relate(Compare(value, key)):
                        return true;
                    case "matches":
                        if (Wildcard(value, key) is { } captures)
                        {
                            captured?.Invoke(captures);
                            return true;
                        }
                        break;
                }
            }
        return false;
    }

    private bool Relate(int cmp) => relation switch
    {
        "gt" => cmp > 0,
        "ge" => cmp >= 0,
        "lt" => cmp < 0,
        "le" => cmp <= 0,
        "eq" => cmp == 0,
        _ => cmp != 0,
    };

    private static string Fold(string s)
    {
        if (!s.Any(char.IsAsciiLetterLower)) return s;
        var chars = s.ToCharArray();
        for (var i = 0; i < chars.Length; i++) if (char.IsAsciiLetterLower(chars[i])) chars[i] = (char)(chars[i] - 32);
        return new string(chars);
    }

    private bool Equal(string a, string b) => comparator switch
    {
        SieveComparator.AsciiNumeric => Compare(a, b) == 0,
        SieveComparator.AsciiCasemap => Fold(a) == Fold(b),
        _ => a == b,
    };

    private bool Contains(string value, string key) =>
        comparator == SieveComparator.AsciiCasemap ? Fold(value).Contains(Fold(key), StringComparison.Ordinal) : value.Contains(key, StringComparison.Ordinal);

    /// <summary>Ordering by the comparator: octets of UTF-8 (casemap after folding), or i;ascii-numeric (RFC 4790 §9.1).</summary>
    public int Compare(string a, string b)
    {
        if (comparator == SieveComparator.AsciiNumeric) return CompareNumeric(a, b);
        if (comparator == SieveComparator.AsciiCasemap) (a, b) = (Fold(a), Fold(b));
        return Encoding.UTF8.GetBytes(a).AsSpan().SequenceCompareTo(Encoding.UTF8.GetBytes(b));
    }

    /// <summary>The leading digits as an unbounded number; a string not starting with a digit is positive infinity.</summary>
    private static int CompareNumeric(string a, string b)
    {
        var x = Digits(a);
        var y = Digits(b);
        if (x is null || y is null) return x is null ? (y is null ? 0 : 1) : -1;
        return x.Length != y.Length ? x.Length.CompareTo(y.Length) : string.CompareOrdinal(x, y);

        static string? Digits(string s)
        {
            var n = 0;
            while (n < s.Length && char.IsAsciiDigit(s[n])) n++;
            if (n == 0) return null;
            return s[..n].TrimStart('0');
        }
    }

    /// <summary>The :matches captures (${0} the whole value, then one per wildcard), or null when it does not match.</summary>
    private List<string>? Wildcard(string value, string pattern)
    {
        var fold = comparator == SieveComparator.AsciiCasemap;
        var text = CodePoints(value);
        var folded = fold ? CodePoints(Fold(value)) : text;
        // pattern elements: a code point, -1 for ?, -2 for *
        var elements = new List<int>();
        var p = CodePoints(fold ? Fold(pattern) : pattern);
        for (var k = 0; k < p.Length; k++)
        {
            if (p[k] == '\\' && k + 1 < p.Length) elements.Add(p[++k]);
            else elements.Add(p[k] == '?' ? -1 : p[k] == '*' ? -2 : p[k]);
        }
        var wildcards = elements.Count(e => e < 0);
        var starts = new int[wildcards];
        var lengths = new int[wildcards];
        var index = new int[elements.Count];
        for (int k = 0, w = 0; k < elements.Count; k++) index[k] = elements[k] < 0 ? w++ : -1;

        int pi = 0, si = 0, starP = -1, starS = 0;
        while (si < folded.Length)
        {
            if (pi < elements.Count && elements[pi] == -1)
            {
                (starts[index[pi]], lengths[index[pi]]) = (si, 1);
                pi++; si++;
            }
            else if (pi < elements.Count && elements[pi] >= 0 && elements[pi] == folded[si])
            {
                pi++; si++;
            }
            else if (pi < elements.Count && elements[pi] == -2)
            {
                starP = pi;
                starS = si;
                (starts[index[pi]], lengths[index[pi]]) = (si, 0);
                pi++;
            }
            else if (starP >= 0)
            {
                // the last * takes one more character and the rest of the pattern starts again after it
                starS++;
                lengths[index[starP]] = starS - starts[index[starP]];
                pi = starP + 1;
                si = starS;
            }
            else return null;
        }
        while (pi < elements.Count && elements[pi] == -2)
        {
            (starts[index[pi]], lengths[index[pi]]) = (si, 0);
            pi++;
        }
        if (pi != elements.Count) return null;
        var captures = new List<string>(wildcards + 1) { value };
        for (var w = 0; w < wildcards; w++) captures.Add(Substring(text, starts[w], lengths[w]));
        return captures;
    }

    private static int[] CodePoints(string s)
    {
        var list = new List<int>(s.Length);
        foreach (var rune in s.EnumerateRunes()) list.Add(rune.Value);
        return [.. list];
    }

    private static string Substring(int[] text, int start, int length)
    {
        var sb = new StringBuilder(length);
        for (var k = start; k < start + length; k++) sb.Append(char.ConvertFromUtf32(text[k]));
        return sb.ToString();
    }
}
