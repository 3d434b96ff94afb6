using System.Text;

namespace Appliance.Store;

/// <summary>
/// The i;ascii-casemap collation (RFC 4790 §9.2) that RFC 5256 SORT and THREAD compare strings
/// with: ASCII letters fold to upper case, everything else compares by code point (UTF-8 octet order).
/// </summary>
public static class AsciiCaseMap
{
    public static int Compare(string a, string b)
    {
        var ea = a.EnumerateRunes();
        var eb = b.EnumerateRunes();
        while (true)
        {
            bool ha = ea.MoveNext(), hb = eb.MoveNext();
            if (!ha || !hb) return ha == hb ? 0 : ha ? 1 : -1;
            int r = Fold(ea.Current).CompareTo(Fold(eb.Current));
            if (r != 0) return r;
        }

        static int Fold(Rune r) => r.Value is >= 'a' and <= 'z' ? r.Value - 32 : r.Value;
    }

    /// <summary>The equality key of a string under the collation (base subjects in THREAD).</summary>
    public static string Key(string s)
    {
        var chars = s.ToCharArray();
        for (int i = 0; i < chars.Length; i++)
        {
            if (chars[i] is >= 'a' and <= 'z') chars[i] = (char)(chars[i] - 32);
        }
        return new string(chars);
    }
}
