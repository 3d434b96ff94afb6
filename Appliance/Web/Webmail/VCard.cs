using System.Text;

namespace Appliance.Web.Webmail;

/// <summary>
/// The address book's vCards: written as vCard 3.0 (RFC 2426, what every address book reads),
/// read from 2.1, 3.0 and 4.0 (RFC 6350): FN (else N), EMAIL, TEL, NOTE, CATEGORIES; folded
/// lines, escapes, and QUOTED-PRINTABLE values of 2.1. Other properties are ignored.
/// </summary>
public static class VCard
{
    public const int MaxImportBytes = 5 * 1024 * 1024;
    public const int MaxCards = 10_000;

    public static string Write(IEnumerable<Contact> contacts)
    {
        var sb = new StringBuilder();
        foreach (var c in contacts)
        {
            sb.Append("BEGIN:VCARD\r\nVERSION:3.0\r\n");
            Line(sb, "FN", Escape(c.Name ?? ""));
            Line(sb, "N", Escape(c.Name ?? "") + ";;;;");
            foreach (var e in c.Emails ?? []) Line(sb, "EMAIL;TYPE=INTERNET", Escape(e));
            if (!string.IsNullOrEmpty(c.Phone)) Line(sb, "TEL", Escape(c.Phone));
            if (!string.IsNullOrEmpty(c.Notes)) Line(sb, "NOTE", Escape(c.Notes));
            if (c.Groups is { Length: > 0 } groups) Line(sb, "CATEGORIES", string.Join(',', groups.Select(Escape)));
            sb.Append("END:VCARD\r\n");
        }
        return sb.ToString();
    }

    /// <summary>Folds at 75 octets (RFC 2426 §2.6), never inside a UTF-8 sequence.</summary>
    private static void Line(StringBuilder sb, string name, string value)
    {
        var line = name + ":" + value;
        var width = 0;
        foreach (var rune in line.EnumerateRunes())
        {
            var bytes = rune.Utf8SequenceLength;
            if (width + bytes > 75) { sb.Append("\r\n "); width = 1; }
            sb.Append(rune.ToString());
            width += bytes;
        }
        sb.Append("\r\n");
    }

    private static string Escape(string s) => s.Replace("\\", "\\\\").Replace(",", "\\,").Replace(";", "\\;").Replace("\r\n", "\\n").Replace("\n", "\\n");

    public static List<Contact> Read(string text)
    {
        var cards = new List<Contact>();
        Contact? current = null;
        string? structuredName = null;
        foreach (var line in Unfold(text))
        {
            var colon = line.IndexOf(':');
            if (colon <= 0) continue;
            var head = line[..colon];
            var value = line[(colon + 1)..];
            var parts = head.Split(';');
            var name = parts[0];
            var dot = name.IndexOf('.');
            if (dot >= 0) name = name[(dot + 1)..]; // item1.EMAIL (Apple's groups)
            name = name.ToUpperInvariant();
            if (parts.Skip(1).Any(p => p.Equals("ENCODING=QUOTED-PRINTABLE", StringComparison.OrdinalIgnoreCase) || p.Equals("QUOTED-PRINTABLE", StringComparison.OrdinalIgnoreCase)))
                value = QuotedPrintable(value);
            if (name == "BEGIN" && value.Trim().Equals("VCARD", StringComparison.OrdinalIgnoreCase))
            {
                current = new Contact { Emails = [], Groups = [] };
                structuredName = null;
                continue;
            }
            if (current is null) continue;
            switch (name)
            {
                case "END":
                    if (string.IsNullOrWhiteSpace(current.Name) && structuredName is not null) current.Name = structuredName;
                    if (cards.Count < MaxCards) cards.Add(current);
                    current = null;
                    break;
                case "FN":
                    current.Name = Unescape(value).Trim();
                    break;
                case "N":
                    var n = SplitUnescaped(value, ';');
                    structuredName = string.Join(' ', new[] { n.ElementAtOrDefault(3), n.ElementAtOrDefault(1), n.ElementAtOrDefault(2), n.ElementAtOrDefault(0), n.ElementAtOrDefault(4) }
                        .Where(x => !string.IsNullOrWhiteSpace(x))).Trim();
                    break;
                case "EMAIL":
                    var email = Unescape(value).Trim();
                    if (email.StartsWith("mailto:", StringComparison.OrdinalIgnoreCase)) email = email[7..];
                    if (email.Length > 0) current.Emails = [.. current.Emails!, email];
                    break;
                case "TEL":
                    if (string.IsNullOrEmpty(current.Phone)) current.Phone = Unescape(value).Trim();
                    break;
                case "NOTE":
                    current.Notes = Unescape(value);
                    break;
                case "CATEGORIES":
                    current.Groups = [.. current.Groups!, .. SplitUnescaped(value, ',').Select(g => g.Trim()).Where(g => g.Length > 0)];
                    break;
            }
        }
        return cards;
    }

    private static IEnumerable<string> Unfold(string text)
    {
        var sb = new StringBuilder();
        foreach (var raw in text.Replace("\r\n", "\n").Split('\n'))
        {
            if (raw.Length > 0 && (raw[0] == ' ' || raw[0] == '\t')) { sb.Append(raw, 1, raw.Length - 1); continue; }
            // vCard 2.1 quoted-printable soft line breaks: a line ending in '=' continues.
            if (sb.Length > 0 && sb[^1] == '=' && sb.ToString().Contains("QUOTED-PRINTABLE", StringComparison.OrdinalIgnoreCase))
            {
                sb.Length--;
                sb.Append(raw);
                continue;
            }
            if (sb.Length > 0) yield return sb.ToString();
            sb.Clear().Append(raw);
        }
        if (sb.Length > 0) yield return sb.ToString();
    }

    private static string Unescape(string s)
    {
        var sb = new StringBuilder(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\' && i + 1 < s.Length)
            {
                var next = s[++i];
                sb.Append(next is 'n' or 'N' ? '\n' : next);
            }
            else sb.Append(s[i]);
        }
        return sb.ToString();
    }

    /// <summary>Splits on a separator not preceded by a backslash, then unescapes each piece.</summary>
    private static List<string> SplitUnescaped(string s, char separator)
    {
        var list = new List<string>();
        var start = 0;
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '\\') { i++; continue; }
            if (s[i] == separator) { list.Add(Unescape(s[start..i])); start = i + 1; }
        }
        list.Add(Unescape(s[start..]));
        return list;
    }

    private static string QuotedPrintable(string s)
    {
        var bytes = new List<byte>(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] == '=' && i + 2 < s.Length && Uri.IsHexDigit(s[i + 1]) && Uri.IsHexDigit(s[i + 2]))
            {
                bytes.Add(Convert.ToByte(s.Substring(i + 1, 2), 16));
                i += 2;
            }
            else bytes.AddRange(Encoding.UTF8.GetBytes(s[i].ToString()));
        }
        return Encoding.UTF8.GetString([.. bytes]);
    }
}
