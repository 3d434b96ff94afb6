using System.Globalization;
using System.Text;
using MimeKit;

namespace Appliance.Store;

// Implementation notes
// Computed once at delivery and stored next to the message, so FETCH ENVELOPE / BODY /
// BODYSTRUCTURE never re-parse. MimeKit parses in persistent mode (content is not copied)
// and its parser events give, for every entity, the offsets of its headers, its body and
// its end; octets and lines are therefore those of the body as stored, in its transfer
// encoding, excluding the CRLF that belongs to the following boundary (RFC 2046 §5.1.1),
// which is what RFC 3501 §7.4.2 body-fld-octets / body-fld-lines ask for.
// Header-derived strings are the raw header bytes, unfolded (RFC 5322 §2.2.3) and not
// decoded: a client that did not ENABLE UTF8=ACCEPT expects RFC 2047 encoded words.
// Strings are returned as .NET strings to be written as UTF-8; a header with 8-bit bytes is
// decoded as UTF-8 (invalid sequences become U+FFFD) and sent as a literal whose length
// counts UTF-8 octets.
// Broken input never throws: MimeKit is lenient, and when even it gives up (no header at
// all) the whole message is described as one text/plain body.

/// <summary>The IMAP representations of one message (RFC 9051 §7.5.2, RFC 3501 §7.4.2).</summary>
/// <param name="Envelope">The parenthesized ENVELOPE, e.g. <c>("date" "subject" ((...)) ...)</c>.</param>
/// <param name="Body">BODY: the structure without extension data.</param>
/// <param name="BodyStructure">BODYSTRUCTURE: the structure with extension data.</param>
/// <param name="PartOffsets">Byte offsets of every section, see <see cref="TryFindPart"/>.</param>
public sealed record MessageStructure(string Envelope, string Body, string BodyStructure, string PartOffsets)
{
    /// <summary>The envelope of a message with no usable header.</summary>
    internal const string NilEnvelope = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)";

    /// <summary>Describes the message read from the current position to the end of the stream.
    /// A stream that cannot seek is copied to memory first.</summary>
    public static MessageStructure Parse(Stream messageBytes)
    {
        ArgumentNullException.ThrowIfNull(messageBytes);
        Stream stream = messageBytes;
        if (!stream.CanSeek)
        {
            var copy = new MemoryStream();
            stream.CopyTo(copy);
            copy.Position = 0;
            stream = copy;
        }
        long origin = stream.Position;
        try
        {
            var builder = new MessageStructureBuilder(origin);
            var parser = new MimeParser(stream, MimeFormat.Entity, persistent: true);
            builder.Attach(parser);
            var message = parser.ParseMessage();
            return builder.Build(message);
        }
        catch (Exception ex) when (ex is not (IOException or OperationCanceledException or ObjectDisposedException))
        {
            stream.Position = origin;
            return Fallback(stream);
        }
    }

    /// <summary>Describes a message already loaded. Offsets refer to the message as MimeKit
    /// writes it back with CRLF line ends, which equals the original bytes for a message
    /// parsed from a CRLF stream.</summary>
    public static MessageStructure Parse(MimeMessage message)
    {
        ArgumentNullException.ThrowIfNull(message);
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        using var buffer = new MemoryStream();
        message.WriteTo(options, buffer);
        buffer.Position = 0;
        return Parse(buffer);
    }

    /// <summary>
    /// Finds a section in <see cref="PartOffsets"/>. The format is space-separated entries
    /// <c>section:headerStart,bodyStart,end[,innerBodyStart]</c>; the whole message has the
    /// empty section. Sections are numbered as in RFC 9051 §6.4.5 (BODY[section]): a
    /// non-multipart message has part "1", the body of a message/rfc822 part "2" is "2.1" or
    /// its children "2.1", "2.2"…; for message/rfc822 parts <c>innerBodyStart</c> is where the
    /// encapsulated message's own header ends (for "2.HEADER" / "2.TEXT").
    /// </summary>
    public static bool TryFindPart(string partOffsets, string section, out MessagePartRange range)
    {
        ArgumentNullException.ThrowIfNull(partOffsets);
        ArgumentNullException.ThrowIfNull(section);
        foreach (var entry in partOffsets.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int colon = entry.IndexOf(':', StringComparison.Ordinal);
            if (colon < 0 || !entry.AsSpan(0, colon).SequenceEqual(section))
            {
                continue;
            }
            var numbers = entry[(colon + 1)..].Split(',');
            if (numbers.Length < 3)
            {
                break;
            }
            long Number(int i) => i < numbers.Length
                && long.TryParse(numbers[i], NumberStyles.None, CultureInfo.InvariantCulture, out long n) ? n : -1;
            range = new MessagePartRange(Number(0), Number(1), Number(2), Number(3));
            return true;
        }
        range = default;
        return false;
    }

    private static MessageStructure Fallback(Stream stream)
    {
        long length = 0, lines = 0;
        int last = -1;
        var buffer = new byte[64 * 1024];
        int read;
        while ((read = stream.Read(buffer, 0, buffer.Length)) > 0)
        {
            length += read;
            lines += buffer.AsSpan(0, read).Count((byte)'\n');
            last = buffer[read - 1];
        }
        if (length > 0 && last != '\n')
        {
            lines++;
        }
        string basic = string.Create(CultureInfo.InvariantCulture,
            $"(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" {length} {lines}");
        string offsets = string.Create(CultureInfo.InvariantCulture, $":0,0,{length} 1:0,0,{length}");
        return new MessageStructure(NilEnvelope, basic + ")", basic + " NIL NIL NIL NIL)", offsets);
    }
}

/// <summary>Byte offsets of one section, relative to the start of the message.</summary>
/// <param name="HeaderStart">Start of the section's (MIME) header.</param>
/// <param name="BodyStart">Start of its body, after the blank line.</param>
/// <param name="End">End of its body (before the CRLF preceding the next boundary).</param>
/// <param name="InnerBodyStart">For message/rfc822 parts, the end of the encapsulated
/// message's header; otherwise -1.</param>
public readonly record struct MessagePartRange(long HeaderStart, long BodyStart, long End, long InnerBodyStart);
