using System.Buffers;
using System.Text;

namespace Appliance.ManageSieve;

/// <summary>What <see cref="ManageSieveParser.TryParse"/> found in the buffered input.</summary>
internal enum ManageSieveParseStatus
{
    /// <summary>No whole command yet: read more (nothing consumed).</summary>
    Incomplete,
    /// <summary>One whole command, consumed with its CRLF.</summary>
    Command,
    /// <summary>A syntax error; consumed up to it, the rest of the line is to be skipped.</summary>
    Error,
    /// <summary>A literal over the limit; consumed up to its first byte, its bytes and the rest of the line are to be skipped.</summary>
    LiteralTooLarge,
}

/// <summary>
/// One argument: a string (quoted or literal; <see cref="Text"/> is null when its bytes are not
/// UTF-8) or a number.
/// </summary>
internal sealed record ManageSieveArg(bool IsString, string? Text, long Number = 0, int Bytes = 0);

/// <summary>A command: its upper-cased name (empty for a SASL response line) and arguments.</summary>
internal sealed record ManageSieveCommand(string Name, IReadOnlyList<ManageSieveArg> Args);

/// <summary>
/// RFC 5804 §4 command syntax over bytes, restartable: an incomplete command means "read more"
/// and the next call starts again from the beginning (no saved parser state), as the POP3 and
/// IMAP parsers do. Strings are quoted (\" and \\ escapes, no line breaks) or literals; both
/// {n+} (RFC 5804 literal-c2s) and {n} are taken without a continuation, as ManageSieve
/// servers do. Numbers are unsigned 32-bit. Every part is bounded: the line outside literals,
/// a quoted string, the number of arguments and the literal bytes of one command.
/// </summary>
internal static class ManageSieveParser
{
    /// <summary>Longest command line outside its literals.</summary>
    public const int MaxLineBytes = 8 * 1024;

    /// <summary>Longest quoted string (RFC 5804 §4: quoted strings are for short values).</summary>
    public const int MaxQuotedBytes = 1024;

    private const int MaxArgs = 8;
    private const int MaxNameBytes = 20;

    private static readonly UTF8Encoding StrictUtf8 = new(encoderShouldEmitUTF8Identifier: false, throwOnInvalidBytes: true);

    /// <summary>
    /// Parses one command (or, with <paramref name="saslResponse"/>, one line of arguments only,
    /// the answer to an AUTHENTICATE challenge). <paramref name="maxLiteral"/> bounds the literal
    /// bytes of the command; over it, <paramref name="literalLength"/> tells how many to skip.
    /// </summary>
    public static ManageSieveParseStatus TryParse(ref SequenceReader<byte> reader, long maxLiteral, bool saslResponse,
        out ManageSieveCommand? command, out string error, out long literalLength)
    {
        command = null;
        error = "";
        literalLength = 0;
        var start = reader.Consumed;
        long literalBytes = 0;
        var name = "";
        var args = new List<ManageSieveArg>();

        if (!saslResponse)
        {
            var nameStart = reader.Consumed;
            while (reader.TryPeek(out var b) && IsAtomChar(b))
            {
                reader.Advance(1);
                if (reader.Consumed - nameStart > MaxNameBytes) return Fail(out error, "Command name too long");
            }
            if (reader.End) return ManageSieveParseStatus.Incomplete;
            if (reader.Consumed == nameStart)
                return Fail(out error, reader.TryPeek(out var first) && first is (byte)'\r' or (byte)'\n' ? "Empty command" : "Syntax error: expected a command name");
            name = Encoding.ASCII.GetString(reader.Sequence.Slice(reader.Sequence.GetPosition(nameStart), reader.Position)).ToUpperInvariant();
        }

        // A SASL response line is one string alone; after a name, each argument follows a space.
        var spaced = saslResponse;
        while (true)
        {
            if (reader.Consumed - start - literalBytes > MaxLineBytes) return Fail(out error, "Line too long");
            if (!reader.TryPeek(out var b)) return ManageSieveParseStatus.Incomplete;
            switch (b)
            {
                case (byte)'\r':
                    if (!reader.TryPeek(1, out var next)) return ManageSieveParseStatus.Incomplete;
                    if (next != '\n') return Fail(out error, "Syntax error: CR without LF");
                    reader.Advance(2);
                    command = new ManageSieveCommand(name, args);
                    return ManageSieveParseStatus.Command;
                case (byte)'\n':
                    reader.Advance(1);
                    command = new ManageSieveCommand(name, args);
                    return ManageSieveParseStatus.Command;
                case (byte)' ':
                    reader.Advance(1);
                    spaced = true;
                    continue;
            }
            if (!spaced) return Fail(out error, "Syntax error: expected a space between arguments");
            spaced = false;
            if (args.Count == MaxArgs) return Fail(out error, "Too many arguments");
            ManageSieveParseStatus status;
            ManageSieveArg? arg;
            switch (b)
            {
                case (byte)'"':
                    status = ReadQuoted(ref reader, out arg, out error);
                    break;
                case (byte)'{':
                    status = ReadLiteral(ref reader, maxLiteral - literalBytes, out arg, out error, out literalLength);
                    if (arg is not null) literalBytes += arg.Bytes;
                    break;
                case >= (byte)'0' and <= (byte)'9':
                    status = ReadNumber(ref reader, out arg, out error);
                    break;
                default:
                    return Fail(out error, "Syntax error: expected a string or a number");
            }
            if (status != ManageSieveParseStatus.Command) return status;
            args.Add(arg!);
        }
    }

    private static ManageSieveParseStatus Fail(out string error, string message)
    {
        error = message;
        return ManageSieveParseStatus.Error;
    }

    private static bool IsAtomChar(byte b) => b is >= (byte)'A' and <= (byte)'Z' or >= (byte)'a' and <= (byte)'z';

    private static ManageSieveParseStatus ReadQuoted(ref SequenceReader<byte> reader, out ManageSieveArg? arg, out string error)
    {
        arg = null;
        error = "";
        reader.Advance(1);
        var bytes = new ArrayBufferWriter<byte>();
        while (true)
        {
            if (!reader.TryRead(out var b)) return ManageSieveParseStatus.Incomplete;
            switch (b)
            {
                case (byte)'"':
                    arg = new ManageSieveArg(true, Decode(bytes.WrittenSpan), Bytes: bytes.WrittenCount);
                    return ManageSieveParseStatus.Command;
                case (byte)'\\':
                    if (!reader.TryRead(out var escaped)) return ManageSieveParseStatus.Incomplete;
                    if (escaped is not ((byte)'"' or (byte)'\\')) return Fail(out error, "Syntax error: only \\\" and \\\\ are escapes in a quoted string");
                    b = escaped;
                    break;
                case (byte)'\r' or (byte)'\n' or 0:
                    return Fail(out error, "Syntax error: a quoted string cannot hold a line break; send a literal");
            }
            if (bytes.WrittenCount == MaxQuotedBytes) return Fail(out error, "Quoted string too long; send a literal");
            bytes.Write([b]);
        }
    }

    private static ManageSieveParseStatus ReadLiteral(ref SequenceReader<byte> reader, long maxLiteral, out ManageSieveArg? arg, out string error, out long literalLength)
    {
        arg = null;
        error = "";
        literalLength = 0;
        reader.Advance(1);
        long n = 0;
        var digits = 0;
        while (reader.TryPeek(out var d) && d is >= (byte)'0' and <= (byte)'9')
        {
            reader.Advance(1);
            if (++digits > 10) return Fail(out error, "Syntax error: literal length too long");
            n = n * 10 + (d - '0');
        }
        if (!reader.TryRead(out var b)) return ManageSieveParseStatus.Incomplete;
        if (digits == 0) return Fail(out error, "Syntax error: literal without a length");
        if (b == '+' && !reader.TryRead(out b)) return ManageSieveParseStatus.Incomplete;
        if (b != '}') return Fail(out error, "Syntax error: literal length not closed with }");
        if (!reader.TryRead(out b)) return ManageSieveParseStatus.Incomplete;
        if (b == '\r' && !reader.TryRead(out b)) return ManageSieveParseStatus.Incomplete;
        if (b != '\n') return Fail(out error, "Syntax error: a literal's length must end its line");
        if (n > maxLiteral)
        {
            literalLength = n;
            error = "Literal too large";
            return ManageSieveParseStatus.LiteralTooLarge;
        }
        if (reader.Remaining < n) return ManageSieveParseStatus.Incomplete;
        var data = reader.UnreadSequence.Slice(0, n);
        arg = new ManageSieveArg(true, Decode(data.ToArray()), Bytes: (int)n);
        reader.Advance(n);
        return ManageSieveParseStatus.Command;
    }

    private static ManageSieveParseStatus ReadNumber(ref SequenceReader<byte> reader, out ManageSieveArg? arg, out string error)
    {
        arg = null;
        error = "";
        long n = 0;
        while (reader.TryPeek(out var d) && d is >= (byte)'0' and <= (byte)'9')
        {
            reader.Advance(1);
            n = n * 10 + (d - '0');
            if (n > uint.MaxValue) return Fail(out error, "Number too large");
        }
        if (reader.End) return ManageSieveParseStatus.Incomplete;
        arg = new ManageSieveArg(false, null, n);
        return ManageSieveParseStatus.Command;
    }

    private static string? Decode(ReadOnlySpan<byte> bytes)
    {
        try { return StrictUtf8.GetString(bytes); }
        catch (DecoderFallbackException) { return null; }
    }

    /// <summary>Discards input up to and including the next LF; false when the buffer ended first (all consumed).</summary>
    public static bool SkipPastLineEnd(ref SequenceReader<byte> reader)
    {
        if (reader.TryAdvanceTo((byte)'\n', advancePastDelimiter: true)) return true;
        reader.AdvanceToEnd();
        return false;
    }

    /// <summary>
    /// The length of the literal a line announces at its end ("… {12+}" with or without CR), or
    /// null: what a refused command still has coming after its line.
    /// </summary>
    public static long? LiteralAtLineEnd(ReadOnlySpan<byte> line)
    {
        if (line.EndsWith("\r"u8)) line = line[..^1];
        if (!line.EndsWith("}"u8)) return null;
        line = line[..^1];
        if (line.EndsWith("+"u8)) line = line[..^1];
        var open = line.LastIndexOf((byte)'{');
        var digits = open < 0 ? [] : line[(open + 1)..];
        if (digits.Length is 0 or > 10 || digits.IndexOfAnyExceptInRange((byte)'0', (byte)'9') >= 0) return null;
        long n = 0;
        foreach (var d in digits) n = n * 10 + (d - '0');
        return n;
    }

    /// <summary>
    /// A string as the server sends it (RFC 5804 §4): quoted when short and free of line
    /// breaks, NUL and quotes' escapes only, otherwise a literal {n}.
    /// </summary>
    public static string Quote(string text)
    {
        if (text.Length <= MaxQuotedBytes && !text.AsSpan().ContainsAny('\r', '\n', '\0'))
            return "\"" + text.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";
        return "{" + Encoding.UTF8.GetByteCount(text) + "}\r\n" + text;
    }
}
