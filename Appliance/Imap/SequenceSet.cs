using System.Globalization;
using System.Text;

namespace Appliance.Imap;

/// <summary>
/// RFC 9051 §9 sequence-set: ranges of message sequence numbers or UIDs, "*" standing for the
/// largest number in use. Kept as ranges (never expanded), so "1:4294967295" costs nothing.
/// Ranges are normalised (a:b with a &gt; b becomes b:a). "*" is resolved when the set is used,
/// because its value depends on the mailbox at that moment.
/// </summary>
public sealed class SequenceSet
{
    /// <summary>0 in a bound means "*".</summary>
    private readonly (long From, long To)[] _ranges;

    private SequenceSet((long, long)[] ranges) => _ranges = ranges;

    public const int MaxRanges = 100_000;

    public IReadOnlyList<(long From, long To)> Ranges => _ranges;

    public static bool TryParse(string text, out SequenceSet set)
    {
        set = null!;
        if (text.Length == 0) return false;
        var parts = text.Split(',');
        if (parts.Length > MaxRanges) return false;
        var ranges = new (long, long)[parts.Length];
        for (int i = 0; i < parts.Length; i++)
        {
            var p = parts[i];
            int colon = p.IndexOf(':');
            if (colon < 0)
            {
                if (!TryNumber(p, out var n)) return false;
                ranges[i] = (n, n);
            }
            else
            {
                if (!TryNumber(p[..colon], out var a) || !TryNumber(p[(colon + 1)..], out var b)) return false;
                ranges[i] = (a, b);
            }
        }
        set = new SequenceSet(ranges);
        return true;
    }

    public static bool TryParse(ImapValue value, out SequenceSet set)
    {
        set = null!;
        return value.IsAtom && TryParse(value.Text, out set);
    }

    /// <summary>nz-number or "*" (0 here). Leading zeros are not allowed by the grammar.</summary>
    private static bool TryNumber(string s, out long n)
    {
        n = 0;
        if (s == "*") return true;
        if (s.Length is 0 or > 10 || s[0] == '0') return false;
        if (!long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out n)) return false;
        return n is >= 1 and <= uint.MaxValue;
    }

    /// <summary>True when the set contains <paramref name="n"/>, "*" meaning <paramref name="star"/>.</summary>
    public bool Contains(long n, long star)
    {
        foreach (var (f, t) in _ranges)
        {
            long a = f == 0 ? star : f, b = t == 0 ? star : t;
            if (a > b) (a, b) = (b, a);
            if (n >= a && n <= b) return true;
        }
        return false;
    }

    /// <summary>Resolved ranges with "*" replaced by <paramref name="star"/>, each with From &lt;= To.</summary>
    public IEnumerable<(long From, long To)> Resolve(long star)
    {
        foreach (var (f, t) in _ranges)
        {
            long a = f == 0 ? star : f, b = t == 0 ? star : t;
            yield return a <= b ? (a, b) : (b, a);
        }
    }

    public bool HasStar => _ranges.Any(r => r.From == 0 || r.To == 0);

    /// <summary>Formats ascending numbers compactly ("1:3,7,9:10") for responses (COPYUID, ESEARCH ALL, VANISHED).</summary>
    public static string Format(IEnumerable<long> ascending)
    {
        var sb = new StringBuilder();
        long start = -1, prev = -1;
        foreach (var n in ascending)
        {
            if (start < 0) { start = prev = n; continue; }
            if (n == prev + 1) { prev = n; continue; }
            Append(sb, start, prev);
            start = prev = n;
        }
        if (start >= 0) Append(sb, start, prev);
        return sb.ToString();

        static void Append(StringBuilder sb, long a, long b)
        {
            if (sb.Length > 0) sb.Append(',');
            sb.Append(a.ToString(CultureInfo.InvariantCulture));
            if (b != a) sb.Append(':').Append(b.ToString(CultureInfo.InvariantCulture));
        }
    }

    public override string ToString() =>
        string.Join(',', _ranges.Select(r => r.From == r.To ? N(r.From) : N(r.From) + ":" + N(r.To)));

    private static string N(long n) => n == 0 ? "*" : n.ToString(CultureInfo.InvariantCulture);
}
