namespace Appliance.Store;

// Implementation notes
// ENVELOPE must carry header values as they appear in the message (RFC 3501 §7.4.2:
// names stay in their RFC 2047 encoded form), so addresses are parsed here from the raw,
// unfolded header text rather than from MimeKit's decoded InternetAddress objects.
// The parser is lenient in the way IMAP servers are: it never throws, a display name
// falls back to a comment (`user@host (Full Name)`), and a missing local part or domain
// becomes MISSING_MAILBOX / MISSING_DOMAIN as Dovecot does, because a NIL host would
// turn the address into a group marker.

/// <summary>One member of an ENVELOPE address list; <c>Host == null</c> marks a group
/// start (<c>Mailbox</c> = group name) or end (<c>Mailbox == null</c>), RFC 3501 §7.4.2.</summary>
internal readonly record struct ImapAddress(string? Name, string? Route, string? Mailbox, string? Host);

internal static class ImapAddressParser
{
    internal const string MissingMailbox = "MISSING_MAILBOX";
    internal const string MissingDomain = "MISSING_DOMAIN";

    private enum Kind { Atom, Quoted, DomainLiteral, Special, Comment }

    /// <param name="Value">Unescaped content (quoted strings, comments) or the raw text.</param>
    /// <param name="Raw">The token as written.</param>
    /// <param name="SpaceBefore">Whitespace or a comment preceded the token.</param>
    private readonly record struct Token(Kind Kind, string Value, string Raw, bool SpaceBefore)
    {
        public bool Is(char c) => Kind == Kind.Special && Value[0] == c;
    }

    /// <summary>Parses an RFC 5322 §3.4 address-list (with groups). Never throws.</summary>
    public static List<ImapAddress> Parse(string value)
    {
        var tokens = Lex(value);
        var result = new List<ImapAddress>();
        var current = new List<Token>();
        bool inGroup = false;
        bool sawAngle = false, sawAt = false;
        for (int i = 0; i < tokens.Count; i++)
        {
            var t = tokens[i];
            if (t.Is('<'))
            {
                // Take the whole angle-addr, so a route's ':' and ',' are not separators.
                sawAngle = true;
                for (; i < tokens.Count; i++)
                {
                    current.Add(tokens[i]);
                    if (tokens[i].Is('>'))
                    {
                        break;
                    }
                }
                continue;
            }
            if (t.Is(','))
            {
                AddMailbox(current, result);
                current.Clear();
                sawAngle = sawAt = false;
                continue;
            }
            if (t.Is(':') && !inGroup && !sawAngle && !sawAt)
            {
                // RFC 5322 §3.4 group = display-name ":" [group-list] ";"
                result.Add(new ImapAddress(null, null, Phrase(current) ?? "", null));
                current.Clear();
                inGroup = true;
                continue;
            }
            if (t.Is(';') && inGroup)
            {
                AddMailbox(current, result);
                current.Clear();
                sawAngle = sawAt = false;
                result.Add(new ImapAddress(null, null, null, null));
                inGroup = false;
                continue;
            }
            if (t.Is('@'))
            {
                sawAt = true;
            }
            current.Add(t);
        }
        AddMailbox(current, result);
        if (inGroup)
        {
            result.Add(new ImapAddress(null, null, null, null));
        }
        return result;
    }

    private static void AddMailbox(List<Token> tokens, List<ImapAddress> result)
    {
        if (!tokens.Exists(t => t.Kind != Kind.Comment && !t.Is(';')))
        {
            return;
        }
        int lt = tokens.FindIndex(t => t.Is('<'));
        string? name;
        string? route = null;
        List<Token> spec;
        if (lt >= 0)
        {
            // RFC 5322 §3.4 name-addr = [display-name] angle-addr
            name = Phrase(tokens.GetRange(0, lt));
            int gt = tokens.FindIndex(lt, t => t.Is('>'));
            spec = tokens.GetRange(lt + 1, (gt < 0 ? tokens.Count : gt) - lt - 1);
            spec.RemoveAll(t => t.Kind == Kind.Comment);
            if (spec.Count > 0 && spec[0].Is('@'))
            {
                // RFC 5322 §4.4 obs-route = obs-domain-list ":"
                int colon = spec.FindIndex(t => t.Is(':'));
                if (colon >= 0)
                {
                    route = Concat(spec.GetRange(0, colon));
                    spec = spec.GetRange(colon + 1, spec.Count - colon - 1);
                }
            }
            if (name is null)
            {
                name = LastComment(tokens);
            }
        }
        else
        {
            spec = tokens.FindAll(t => t.Kind != Kind.Comment);
            name = LastComment(tokens);
        }
        int at = spec.FindLastIndex(t => t.Is('@'));
        string local = at < 0 ? Concat(spec) : Concat(spec.GetRange(0, at));
        string host = at < 0 ? "" : Concat(spec.GetRange(at + 1, spec.Count - at - 1));
        result.Add(new ImapAddress(
            name,
            string.IsNullOrEmpty(route) ? null : route,
            local.Length == 0 ? MissingMailbox : local,
            host.Length == 0 ? MissingDomain : host));
    }

    private static string? LastComment(List<Token> tokens)
    {
        int i = tokens.FindLastIndex(t => t.Kind == Kind.Comment && t.Value.Trim().Length > 0);
        return i < 0 ? null : tokens[i].Value.Trim();
    }

    /// <summary>A display name: words joined by single spaces, quoted strings unquoted,
    /// encoded words left encoded (RFC 3501 §7.4.2).</summary>
    private static string? Phrase(List<Token> tokens)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var t in tokens)
        {
            if (t.Kind == Kind.Comment)
            {
                continue;
            }
            if (t.SpaceBefore && sb.Length > 0)
            {
                sb.Append(' ');
            }
            sb.Append(t.Value);
        }
        return sb.Length == 0 ? null : sb.ToString();
    }

    /// <summary>Local part, domain or route as written (quotes kept), without CFWS.</summary>
    private static string Concat(List<Token> tokens)
    {
        var sb = new System.Text.StringBuilder();
        foreach (var t in tokens)
        {
            if (t.Kind != Kind.Comment)
            {
                sb.Append(t.Raw);
            }
        }
        return sb.ToString();
    }

    // RFC 5322 §3.2.3 specials, minus those that open a construct ( " [ and stray closers.
    private static bool IsSpecial(char c) => c is '<' or '>' or '@' or ',' or ';' or ':' or '.';

    private static List<Token> Lex(string s)
    {
        var tokens = new List<Token>();
        bool space = false;
        int i = 0;
        while (i < s.Length)
        {
            char c = s[i];
            if (c is ' ' or '\t' or '\r' or '\n')
            {
                space = true;
                i++;
            }
            else if (c == '(')
            {
                // RFC 5322 §3.2.2 comment, nested, with quoted-pairs.
                var sb = new System.Text.StringBuilder();
                int depth = 0;
                for (; i < s.Length; i++)
                {
                    char d = s[i];
                    if (d == '\\' && i + 1 < s.Length)
                    {
                        sb.Append(s[++i]);
                        continue;
                    }
                    if (d == '(' && depth++ == 0)
                    {
                        continue;
                    }
                    if (d == ')' && --depth == 0)
                    {
                        i++;
                        break;
                    }
                    sb.Append(d);
                }
                tokens.Add(new Token(Kind.Comment, sb.ToString(), "", space));
                space = true;
            }
            else if (c == '"')
            {
                // RFC 5322 §3.2.4 quoted-string.
                int start = i++;
                var sb = new System.Text.StringBuilder();
                for (; i < s.Length; i++)
                {
                    char d = s[i];
                    if (d == '\\' && i + 1 < s.Length)
                    {
                        sb.Append(s[++i]);
                        continue;
                    }
                    if (d == '"')
                    {
                        i++;
                        break;
                    }
                    sb.Append(d);
                }
                tokens.Add(new Token(Kind.Quoted, sb.ToString(), s[start..Math.Min(i, s.Length)], space));
                space = false;
            }
            else if (c == '[')
            {
                // RFC 5322 §3.4.1 domain-literal.
                int end = s.IndexOf(']', i);
                end = end < 0 ? s.Length : end + 1;
                string raw = s[i..end];
                tokens.Add(new Token(Kind.DomainLiteral, raw, raw, space));
                i = end;
                space = false;
            }
            else if (IsSpecial(c))
            {
                string raw = c.ToString();
                tokens.Add(new Token(Kind.Special, raw, raw, space));
                i++;
                space = false;
            }
            else
            {
                int start = i;
                while (i < s.Length && s[i] is not (' ' or '\t' or '\r' or '\n' or '(' or '"' or '[') && !IsSpecial(s[i]))
                {
                    i++;
                }
                string raw = s[start..i];
                tokens.Add(new Token(Kind.Atom, raw, raw, space));
                space = false;
            }
        }
        return tokens;
    }
}
