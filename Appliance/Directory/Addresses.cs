using System.Globalization;

namespace Appliance.Directory;

/// <summary>Validation and normalisation of addresses and domain names as the directory stores them.</summary>
public static class Addresses
{
    private static readonly IdnMapping Idn = new();

    /// <summary>Lower-case ASCII form of a domain (IDNs as punycode), or null with a reason.</summary>
    public static string? NormalizeDomain(string input, out string reason)
    {
        reason = "";
        var d = input.Trim().TrimEnd('.');
        try { d = Idn.GetAscii(d).ToLowerInvariant(); }
        catch (ArgumentException) { reason = $"invalid domain name '{input}'"; return null; }
        if (d.Length is 0 or > 253) { reason = $"invalid domain name '{input}'"; return null; }
        foreach (var label in d.Split('.'))
        {
            if (label.Length is 0 or > 63 || label[0] == '-' || label[^1] == '-' ||
                !label.All(ch => ch is >= 'a' and <= 'z' or >= '0' and <= '9' or '-'))
            {
                reason = $"invalid domain name '{input}'";
                return null;
            }
        }
        if (!d.Contains('.')) { reason = $"invalid domain name '{input}': a fully qualified name is needed"; return null; }
        return d;
    }

    /// <summary>Lower-case local@domain with a dot-atom local part (RFC 5322 §3.4.1), or null with a reason.</summary>
    public static string? NormalizeAddress(string input, out string reason)
    {
        var s = input.Trim();
        var at = s.LastIndexOf('@');
        if (at <= 0 || at == s.Length - 1) { reason = $"invalid address '{input}': expected local@domain"; return null; }
        var local = s[..at].ToLowerInvariant();
        if (!IsDotAtom(local)) { reason = $"invalid address '{input}': bad local part"; return null; }
        var domain = NormalizeDomain(s[(at + 1)..], out reason);
        if (domain is null) { reason = $"invalid address '{input}': bad domain"; return null; }
        return local + "@" + domain;
    }

    /// <summary>A catch-all alias source is written "@domain".</summary>
    public static string? NormalizeAliasSource(string input, out string reason)
    {
        var s = input.Trim();
        if (s.StartsWith('@'))
        {
            var d = NormalizeDomain(s[1..], out reason);
            return d is null ? null : "@" + d;
        }
        return NormalizeAddress(s, out reason);
    }

    public static string DomainOf(string address) => address[(address.LastIndexOf('@') + 1)..];

    internal static bool IsDotAtom(string local)
    {
        if (local.Length is 0 or > 64 || local[0] == '.' || local[^1] == '.' || local.Contains("..")) return false;
        foreach (var ch in local)
            if (!(char.IsAsciiLetterOrDigit(ch) || "!#$%&'*+-/=?^_`{|}~.".Contains(ch))) return false;
        return true;
    }
}
