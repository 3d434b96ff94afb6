using System.Text;

namespace Appliance.Filtering.Sieve;

internal enum SieveTokenKind { Identifier, Tag, Number, String, Punctuation, End }

/// <summary>One token; Text is the identifier, the tag without its colon, the string's value or the punctuation character.</summary>
internal readonly record struct SieveToken(SieveTokenKind Kind, string Text, long Number, int Line)
{
    public string Describe() => Kind switch
    {
        SieveTokenKind.Identifier => $"\"{Text}\"",
        SieveTokenKind.Tag => $"\":{Text}\"",
        SieveTokenKind.Number => $"the number {Number}",
        SieveTokenKind.String => "a string",
        SieveTokenKind.Punctuation => $"\"{Text}\"",
        _ => "the end of the script",
    };
}

/// <summary>
/// RFC 5228 §8.1 lexical tokens: identifiers, tags, numbers with K/M/G, quoted strings with \\ and
/// \" escapes (any other backslash is dropped, §2.4.2), text: multi-line strings with dot-stuffing
/// (whose lines end in CRLF whatever the script used), # and /* */ comments. Encoded characters
/// (RFC 5228 §2.4.2.4) depend on require and are decoded by the parser.
/// </summary>
internal static class SieveLexer
{
    public const int MaxStringLength = 32 * 1024;

    public static List<SieveToken> Tokenize(string s)
    {
        var tokens = new List<SieveToken>();
        int i = 0, line = 1;
        while (true)
        {
            if (i >= s.Length)
            {
                tokens.Add(new(SieveTokenKind.End, "", 0, line));
                return tokens;
            }
            var c = s[i];
            if (c == '\n') { line++; i++; continue; }
            if (c is ' ' or '\t' or '\r') { i++; continue; }
            if (c == '#')
            {
                while (i < s.Length && s[i] != '\n') i++;
                continue;
            }
            if (c == '/' && i + 1 < s.Length && s[i + 1] == '*')
            {
                var end = s.IndexOf("*/", i + 2, StringComparison.Ordinal);
                if (end < 0) throw new SieveException("comment \"/*\" is never closed with \"*/\"", line);
                line += Count(s, i, end, '\n');
                i = end + 2;
                continue;
            }
            if (c == '"')
            {
                tokens.Add(Quoted(s, ref i, ref line));
                continue;
            }
            if (c == ':')
            {
                var start = ++i;
                while (i < s.Length && IsIdentifierChar(s[i], i == start)) i++;
                if (i == start) throw new SieveException("expected a tag name after \":\"", line);
                tokens.Add(new(SieveTokenKind.Tag, s[start..i].ToLowerInvariant(), 0, line));
                continue;
            }
            if (char.IsAsciiDigit(c))
            {
                tokens.Add(Number(s, ref i, line));
                continue;
            }
            if (IsIdentifierChar(c, first: true))
            {
                var start = i;
                while (i < s.Length && IsIdentifierChar(s[i], i == start)) i++;
                var word = s[start..i];
                if (i < s.Length && s[i] == ':' && word.Equals("text", StringComparison.OrdinalIgnoreCase))
                {
                    i++;
                    tokens.Add(MultiLine(s, ref i, ref line));
                    continue;
                }
                tokens.Add(new(SieveTokenKind.Identifier, word.ToLowerInvariant(), 0, line));
                continue;
            }
            if (c is '[' or ']' or '(' or ')' or ',' or ';' or '{' or '}')
            {
                tokens.Add(new(SieveTokenKind.Punctuation, c.ToString(), 0, line));
                i++;
                continue;
            }
            throw new SieveException($"unexpected character \"{c}\"", line);
        }
    }

    private static bool IsIdentifierChar(char c, bool first) =>
        char.IsAsciiLetter(c) || c == '_' || (!first && char.IsAsciiDigit(c));

    private static int Count(string s, int from, int to, char c)
    {
        var n = 0;
        for (var k = from; k < to; k++) if (s[k] == c) n++;
        return n;
    }

    private static SieveToken Number(string s, ref int i, int line)
    {
        var start = i;
        while (i < s.Length && char.IsAsciiDigit(s[i])) i++;
        if (!long.TryParse(s.AsSpan(start, i - start), out var value) || value > uint.MaxValue)
            throw new SieveException($"the number {s[start..i]} is too large", line);
        if (i < s.Length && char.ToUpperInvariant(s[i]) is 'K' or 'M' or 'G')
        {
            value <<= char.ToUpperInvariant(s[i]) switch { 'K' => 10, 'M' => 20, _ => 30 };
            i++;
        }
        if (i < s.Length && IsIdentifierChar(s[i], first: false))
            throw new SieveException($"\"{s[start..(i + 1)]}\" is not a number (digits, then K, M or G)", line);
        return new(SieveTokenKind.Number, "", value, line);
    }

    private static SieveToken Quoted(string s, ref int i, ref int line)
    {
        var startLine = line;
        var sb = new StringBuilder();
        i++;
        while (true)
        {
            if (i >= s.Length) throw new SieveException("string is never closed with '\"'", startLine);
            var c = s[i++];
            if (c == '"') break;
            if (c == '\\')
            {
                if (i >= s.Length) throw new SieveException("string is never closed with '\"'", startLine);
                c = s[i++]; // \\ and \" are the escapes; any other backslash is dropped (§2.4.2)
            }
            if (c == '\n') line++;
            sb.Append(c);
            if (sb.Length > MaxStringLength) throw new SieveException($"string longer than {MaxStringLength} characters", startLine);
        }
        return new(SieveTokenKind.String, sb.ToString(), 0, startLine);
    }

    private static SieveToken MultiLine(string s, ref int i, ref int line)
    {
        var startLine = line;
        while (i < s.Length && s[i] is ' ' or '\t') i++;
        if (i < s.Length && s[i] == '#')
            while (i < s.Length && s[i] != '\n') i++;
        if (i < s.Length && s[i] == '\r') i++;
        if (i >= s.Length || s[i] != '\n') throw new SieveException("\"text:\" must be followed by the end of the line", startLine);
        i++;
        line++;
        var sb = new StringBuilder();
        while (true)
        {
            if (i >= s.Length) throw new SieveException("\"text:\" string is never closed with a line holding only \".\"", startLine);
            var end = s.IndexOf('\n', i);
            var next = end < 0 ? s.Length : end + 1;
            var text = s[i..(end < 0 ? s.Length : end)].TrimEnd('\r');
            i = next;
            if (end >= 0) line++;
            if (text == ".") break;
            if (end < 0) throw new SieveException("\"text:\" string is never closed with a line holding only \".\"", startLine);
            sb.Append(text.StartsWith('.') ? text[1..] : text).Append("\r\n");
            if (sb.Length > MaxStringLength) throw new SieveException($"string longer than {MaxStringLength} characters", startLine);
        }
        return new(SieveTokenKind.String, sb.ToString(), 0, startLine);
    }
}
