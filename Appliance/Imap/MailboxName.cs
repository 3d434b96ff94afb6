using System.Text;
using Appliance.Store;

namespace Appliance.Imap;

/// <summary>
/// Mailbox names on the wire: modified UTF-7 (RFC 3501 §5.1.3) for clients that did not ENABLE
/// UTF8=ACCEPT, raw UTF-8 for those that did (RFC 6855 §3); INBOX in any case means INBOX;
/// '/' is the hierarchy delimiter. Also LIST pattern matching (RFC 9051 §6.3.9: "*" matches
/// anything, "%" anything but the delimiter).
/// </summary>
public static class MailboxName
{
    public const char Delimiter = '/';
    public const int MaxLength = 512;

    /// <summary>Wire form → store name. Throws BAD for invalid modified UTF-7 or names the store cannot hold.</summary>
    public static string Decode(ImapValue value, bool utf8)
    {
        if (!value.IsString) throw ImapException.Bad("mailbox name expected");
        var text = value.Text;
        if (!utf8)
        {
            if (value.Bytes.Any(b => b > 0x7F)) throw ImapException.Bad("8-bit mailbox name without UTF8=ACCEPT");
            text = DecodeUtf7(text) ?? throw ImapException.Bad("invalid modified UTF-7 in mailbox name");
        }
        return Normalize(text);
    }

    /// <summary>Strips a trailing delimiter, maps any spelling of INBOX to "INBOX" (<see cref="MailStore.FolderName"/>), refuses empty levels and control characters.</summary>
    public static string Normalize(string name)
    {
        if (name.Length > 1 && name[^1] == Delimiter) name = name[..^1];
        name = MailStore.FolderName(name);
        if (name.Length == 0 || name.Length > MaxLength) throw ImapException.No("invalid mailbox name", "CANNOT");
        if (name[0] == Delimiter || name.Contains("//", StringComparison.Ordinal) || name.Any(c => c < 0x20 || c == 0x7F))
            throw ImapException.No("invalid mailbox name", "CANNOT");
        return name;
    }

    /// <summary>Store name → wire form.</summary>
    public static string Encode(string name, bool utf8) => utf8 ? name : EncodeUtf7(name);

    public static string EncodeUtf7(string name)
    {
        var sb = new StringBuilder(name.Length);
        int i = 0;
        while (i < name.Length)
        {
            char c = name[i];
            if (c >= 0x20 && c <= 0x7E)
            {
                sb.Append(c == '&' ? "&-" : c.ToString());
                i++;
                continue;
            }
            int start = i;
            while (i < name.Length && (name[i] < 0x20 || name[i] > 0x7E)) i++;
            var utf16 = new byte[(i - start) * 2];
            for (int k = 0; k < i - start; k++)
            {
                utf16[2 * k] = (byte)(name[start + k] >> 8);
                utf16[2 * k + 1] = (byte)name[start + k];
            }
            sb.Append('&').Append(Convert.ToBase64String(utf16).TrimEnd('=').Replace('/', ',')).Append('-');
        }
        return sb.ToString();
    }

    /// <summary>Decodes modified UTF-7; null when malformed (RFC 3501 §5.1.3 forbids non-minimal or unpadded forms that decode badly).</summary>
    public static string? DecodeUtf7(string text)
    {
        if (!text.Contains('&')) return text;
        var sb = new StringBuilder(text.Length);
        int i = 0;
        while (i < text.Length)
        {
            char c = text[i];
            if (c != '&')
            {
                sb.Append(c);
                i++;
                continue;
            }
            int end = text.IndexOf('-', i + 1);
            if (end < 0) return null;
            if (end == i + 1)
            {
                sb.Append('&');
                i = end + 1;
                continue;
            }
            var b64 = text[(i + 1)..end].Replace(',', '/');
            if (b64.Any(ch => !(char.IsAsciiLetterOrDigit(ch) || ch is '+' or '/'))) return null;
            b64 = b64.PadRight((b64.Length + 3) / 4 * 4, '=');
            byte[] bytes;
            try { bytes = Convert.FromBase64String(b64); }
            catch (FormatException) { return null; }
            if (bytes.Length % 2 != 0) return null;
            for (int k = 0; k < bytes.Length; k += 2)
            {
                char u = (char)(bytes[k] << 8 | bytes[k + 1]);
                if (u >= 0x20 && u <= 0x7E) return null; // printable ASCII must be sent as itself
                sb.Append(u);
            }
            i = end + 1;
        }
        return sb.ToString();
    }

    /// <summary>Combines LIST's reference and pattern (RFC 9051 §6.3.9: the reference is a prefix).</summary>
    public static string Combine(string reference, string pattern)
    {
        if (reference.Length == 0 || pattern.StartsWith(Delimiter)) return pattern;
        return reference.EndsWith(Delimiter) ? reference + pattern : reference + Delimiter + pattern;
    }

    /// <summary>Whether <paramref name="name"/> matches a LIST pattern; INBOX matches case-insensitively.</summary>
    public static bool Matches(string pattern, string name)
    {
        if (name == MailStore.Inbox && pattern.Length >= 5 && pattern[..5].Equals("INBOX", StringComparison.OrdinalIgnoreCase))
            pattern = MailStore.Inbox + pattern[5..];
        return Match(pattern, name);
    }

    // Dynamic programming over (pattern, name) prefixes: linear in their product, so a hostile
    // pattern like "*a*a*a*b" cannot make it exponential.
    private static bool Match(string p, string n)
    {
        var row = new bool[n.Length + 1];
        row[0] = true;
        foreach (char c in p)
        {
            var next = new bool[n.Length + 1];
            if (c is '*' or '%')
            {
                for (int k = 0; k <= n.Length; k++)
                {
                    next[k] = row[k] || k > 0 && next[k - 1] && (c == '*' || n[k - 1] != Delimiter);
                }
            }
            else
            {
                for (int k = 1; k <= n.Length; k++) next[k] = row[k - 1] && n[k - 1] == c;
            }
            row = next;
        }
        return row[n.Length];
    }
}
