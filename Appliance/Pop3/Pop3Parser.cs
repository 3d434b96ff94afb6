using System.Buffers;
using System.Text;

namespace Appliance.Pop3;

/// <summary>What <see cref="Pop3Parser.TryReadLine"/> found in the buffered input.</summary>
internal enum Pop3LineStatus
{
    /// <summary>No complete line yet: read more.</summary>
    Incomplete,
    /// <summary>One complete line (CRLF or bare LF stripped).</summary>
    Line,
    /// <summary>A complete line longer than the limit; it has been consumed.</summary>
    TooLong,
    /// <summary>More than the limit without a line end; consumed, keep discarding up to the next LF.</summary>
    TooLongUnterminated,
}

/// <summary>One command line: upper-cased keyword and the raw argument text after the first space.</summary>
internal readonly record struct Pop3Command(string Keyword, string Arguments);

/// <summary>
/// Pure POP3 parsing over bytes: no I/O, no state between calls, so an incomplete line simply
/// means "read more" and the whole class can be unit-tested and fuzzed over byte arrays.
/// </summary>
internal static class Pop3Parser
{
    /// <summary>Longest command line accepted, CRLF included (RFC 2449 §4 allows 255; we are generous).</summary>
    public const int MaxLineLength = 512;

    /// <summary>Longest SASL continuation line (RFC 5034 §4 recommends accepting at least 255 octets).</summary>
    public const int MaxSaslLineLength = 2048;

    /// <summary>Longest keyword accepted (RFC 1939 keywords are 3–4 characters, RFC 2449 allows more).</summary>
    private const int MaxKeywordLength = 8;

    public static Pop3LineStatus TryReadLine(ref SequenceReader<byte> reader, int maxLength, out ReadOnlySequence<byte> line)
    {
        line = default;
        if (reader.TryReadTo(out ReadOnlySequence<byte> raw, (byte)'\n', advancePastDelimiter: true))
        {
            if (raw.Length + 1 > maxLength)
            {
                return Pop3LineStatus.TooLong;
            }

            if (raw.Length > 0 && EndsWithCr(raw))
            {
                raw = raw.Slice(0, raw.Length - 1);
            }

            line = raw;
            return Pop3LineStatus.Line;
        }

        if (reader.Remaining >= maxLength)
        {
            reader.AdvanceToEnd();
            return Pop3LineStatus.TooLongUnterminated;
        }

        return Pop3LineStatus.Incomplete;
    }

    /// <summary>Discards input up to and including the next LF; false when the buffer ended first (all consumed).</summary>
    public static bool SkipPastLineEnd(ref SequenceReader<byte> reader)
    {
        if (reader.TryAdvanceTo((byte)'\n', advancePastDelimiter: true))
        {
            return true;
        }

        reader.AdvanceToEnd();
        return false;
    }

    /// <summary>
    /// Splits a line into keyword and arguments. Fails for empty lines, keywords that are not
    /// 1–8 ASCII letters, and lines with control characters or invalid UTF-8.
    /// </summary>
    public static bool TryParseCommand(ReadOnlySpan<byte> line, out Pop3Command command)
    {
        command = default;
        int space = line.IndexOf((byte)' ');
        var keyword = space < 0 ? line : line[..space];
        if (keyword.Length is 0 or > MaxKeywordLength)
        {
            return false;
        }

        foreach (byte b in keyword)
        {
            if (!char.IsAsciiLetter((char)b))
            {
                return false;
            }
        }

        var arguments = space < 0 ? [] : line[(space + 1)..];
        foreach (byte b in arguments)
        {
            if (b < 0x20 && b != (byte)'\t' || b == 0x7f)
            {
                return false;
            }
        }

        string args;
        try
        {
            args = StrictUtf8.GetString(arguments);
        }
        catch (DecoderFallbackException)
        {
            return false;
        }

        command = new Pop3Command(Encoding.ASCII.GetString(keyword).ToUpperInvariant(), args);
        return true;
    }

    /// <summary>Decodes one SASL client response line (already without CRLF) as text, or null when not valid UTF-8.</summary>
    public static string? DecodeLine(ReadOnlySpan<byte> line)
    {
        try
        {
            return StrictUtf8.GetString(line);
        }
        catch (DecoderFallbackException)
        {
            return null;
        }
    }

    /// <summary>A message number or line count: 1–9 ASCII digits, nothing else.</summary>
    public static bool TryParseNumber(ReadOnlySpan<char> text, out int value)
    {
        value = 0;
        if (text.Length is 0 or > 9)
        {
            return false;
        }

        foreach (char c in text)
        {
            if (!char.IsAsciiDigit(c))
            {
                return false;
            }

            value = value * 10 + (c - '0');
        }

        return true;
    }

    /// <summary>Splits arguments on single spaces (RFC 1939 §3: arguments are separated by one space).</summary>
    public static string[] SplitArguments(string arguments) =>
        arguments.Length == 0 ? [] : arguments.Split(' ');

    /// <summary>
    /// RFC 4616 PLAIN: base64("authzid NUL authcid NUL passwd"). An authzid, when present, must
    /// equal the authcid (no proxy authorization).
    /// </summary>
    public static bool TryDecodeSaslPlain(string base64, out string user, out string password)
    {
        user = password = "";
        byte[] bytes;
        try
        {
            bytes = Convert.FromBase64String(base64);
        }
        catch (FormatException)
        {
            return false;
        }

        ReadOnlySpan<byte> span = bytes;
        int first = span.IndexOf((byte)0);
        if (first < 0)
        {
            return false;
        }

        int second = span[(first + 1)..].IndexOf((byte)0);
        if (second < 0)
        {
            return false;
        }

        second += first + 1;
        if (span[(second + 1)..].IndexOf((byte)0) >= 0)
        {
            return false;
        }

        string? authzid = DecodeLine(span[..first]);
        string? authcid = DecodeLine(span[(first + 1)..second]);
        string? passwd = DecodeLine(span[(second + 1)..]);
        if (authzid is null || authcid is null || passwd is null || authcid.Length == 0)
        {
            return false;
        }

        if (authzid.Length > 0 && !string.Equals(authzid, authcid, StringComparison.OrdinalIgnoreCase))
        {
            return false;
        }

        user = authcid;
        password = passwd;
        return true;
    }

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    private static bool EndsWithCr(ReadOnlySequence<byte> raw)
    {
        var last = raw.Slice(raw.Length - 1);
        return last.FirstSpan[0] == (byte)'\r';
    }
}
