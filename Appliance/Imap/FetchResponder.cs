using System.Buffers;
using System.Globalization;
using System.Runtime.InteropServices;
using System.Text;
using Appliance.Store;
using MimeKit.Encodings;

namespace Appliance.Imap;

// Implementation notes
// One "* n FETCH (...)" response (RFC 9051 §7.5.2, RFC 3516 §4.2, RFC 7162 §3.1.4). It is
// written in two phases: first every item is resolved to byte ranges of the stored message
// (and BINARY parts are decoded once to learn their size and whether they contain NUL), so
// that the one failure a client can cause here, an unknown Content-Transfer-Encoding (NO
// [UNKNOWN-CTE]), happens before a byte of the response is written; then the response is
// written, copying message bytes in chunks and flushing every ~64 KB, so a large message is
// never held in memory. Only header sections (HEADER.FIELDS) are read into memory.
// Offsets come from MessageStructure.PartOffsets: HEADER of a part is BodyStart..InnerBodyStart
// of a message/rfc822 part, MIME is HeaderStart..BodyStart. A section that does not exist is
// returned as the empty string (RFC 9051 §6.4.5 leaves it open; Cyrus does the same).

/// <param name="IncludeUid">UID FETCH: UID is in every response.</param>
/// <param name="IncludeModSeq">CONDSTORE is enabled: MODSEQ is in every response (RFC 7162 §3.1.4).</param>
/// <param name="IncludeFlags">The session set \Seen on this message: FLAGS must be sent (RFC 9051 §6.4.5).</param>
/// <param name="FlushAsync">Sends what the writer holds, so large bodies are streamed.</param>
public sealed record FetchContext(bool IncludeUid, bool IncludeModSeq, bool IncludeFlags, Func<ValueTask> FlushAsync);

public static class FetchResponder
{
    /// <summary>Message bytes written between two flushes.</summary>
    public const int FlushBytes = 64 * 1024;

    /// <summary>One resolved item: a range of the message, bytes built in memory, or (BINARY) a
    /// range with its decoding and the decoded window.</summary>
    private sealed record Plan(long Start, long Length, byte[]? Bytes = null, Cte Cte = Cte.Identity,
        long EncodedLength = 0, long Skip = 0, bool HasNul = false);

    private enum Cte { Identity, Base64, QuotedPrintable }

    /// <summary>Writes one complete <c>* seq FETCH (...)\r\n</c> for <paramref name="m"/>.
    /// <paramref name="structure"/> may be null only when the request does not need it. Throws <see cref="ImapException"/> NO [UNKNOWN-CTE]
    /// before writing anything.</summary>
    public static async ValueTask WriteAsync(ImapWriter w, FetchRequest r, int seq, StoredMessage m,
        MessageStructure? structure, Func<Stream> openMessage, FetchContext ctx, CancellationToken ct)
    {
        // Every stored message has its structure (computed at delivery); the session skips one
        // whose structure it could not read (expunged meanwhile).
        if (structure is null && r.NeedsStructure) throw new ArgumentNullException(nameof(structure), "the request needs the message structure");
        using var reader = new MessageReader(openMessage);

        var plans = new Plan?[r.Items.Count];
        for (int i = 0; i < plans.Length; i++)
        {
            var item = r.Items[i];
            plans[i] = item.Kind switch
            {
                FetchItemKind.Section => await PlanSectionAsync(reader, item, structure, m, ct),
                FetchItemKind.Binary or FetchItemKind.BinarySize => await PlanBinaryAsync(reader, item, structure, m, ct),
                _ => null,
            };
        }

        var output = new Output(w, ctx);
        w.Raw("* "u8).Number(seq).Raw(" FETCH ("u8);
        bool first = true;
        void Next(string label)
        {
            if (!first) w.Space();
            first = false;
            w.Text(label).Space();
        }

        if (ctx.IncludeUid && !r.Items.Any(i => i.Kind == FetchItemKind.Uid))
        {
            Next("UID");
            w.Number(m.Uid);
        }
        for (int i = 0; i < plans.Length; i++)
        {
            var item = r.Items[i];
            var plan = plans[i];
            Next(item.Label);
            switch (item.Kind)
            {
                case FetchItemKind.Uid: w.Number(m.Uid); break;
                case FetchItemKind.Flags: w.WriteFlags(m.Flags, m.Keywords); break;
                case FetchItemKind.InternalDate: w.Raw("\""u8).Text(FormatDate(m.InternalDate)).Raw("\""u8); break;
                case FetchItemKind.Rfc822Size: w.Number(m.Size); break;
                case FetchItemKind.Envelope: w.Text(structure!.Envelope); break;
                case FetchItemKind.Body: w.Text(structure!.Body); break;
                case FetchItemKind.BodyStructure: w.Text(structure!.BodyStructure); break;
                case FetchItemKind.ModSeq: w.Raw("("u8).Number(m.ModSeq).Raw(")"u8); break;
                case FetchItemKind.BinarySize: w.Number(plan!.Length); break;
                case FetchItemKind.Section:
                case FetchItemKind.Binary:
                    await WriteContentAsync(output, reader, plan!, binary: item.Kind == FetchItemKind.Binary, ct);
                    break;
            }
        }
        if (ctx.IncludeFlags && !r.Items.Any(i => i.Kind == FetchItemKind.Flags))
        {
            Next("FLAGS");
            w.WriteFlags(m.Flags, m.Keywords);
        }
        if ((ctx.IncludeModSeq || r.IncludesModSeq) && !r.Items.Any(i => i.Kind == FetchItemKind.ModSeq))
        {
            Next("MODSEQ");
            w.Raw("("u8).Number(m.ModSeq).Raw(")"u8);
        }
        w.Raw(")\r\n"u8);
    }

    /// <summary>RFC 9051 date-time = DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE.</summary>
    public static string FormatDate(DateTimeOffset date)
    {
        var offset = date.Offset;
        int minutes = (int)Math.Abs(offset.TotalMinutes);
        return date.ToString("dd-MMM-yyyy HH:mm:ss ", CultureInfo.InvariantCulture)
            + (offset < TimeSpan.Zero ? "-" : "+")
            + (minutes / 60).ToString("00", CultureInfo.InvariantCulture)
            + (minutes % 60).ToString("00", CultureInfo.InvariantCulture);
    }

    private static async ValueTask<Plan> PlanSectionAsync(MessageReader reader, FetchItem item, MessageStructure? structure, StoredMessage m, CancellationToken ct)
    {
        var s = item.Section!;
        long start, end;
        if (s.Part.Length == 0 && s.Text == FetchSectionText.Content)
        {
            // BODY[] / RFC822: the whole message, RFC822.SIZE octets.
            (start, end) = (0, m.Size);
        }
        else if (!MessageStructure.TryFindPart(structure!.PartOffsets, s.Part, out var p))
        {
            (start, end) = (0, 0);
        }
        else if (s.Part.Length == 0)
        {
            (start, end) = s.Text == FetchSectionText.Text ? (p.BodyStart, p.End) : (p.HeaderStart, p.BodyStart);
        }
        else
        {
            (start, end) = s.Text switch
            {
                FetchSectionText.Content => (p.BodyStart, p.End),
                FetchSectionText.Mime => (p.HeaderStart, p.BodyStart),
                // HEADER / TEXT of a part: only a message/rfc822 part has them.
                _ when p.InnerBodyStart < 0 => (0, 0),
                FetchSectionText.Text => (p.InnerBodyStart, p.End),
                _ => (p.BodyStart, p.InnerBodyStart),
            };
        }
        end = Math.Max(start, end);

        if (s.Text is FetchSectionText.HeaderFields or FetchSectionText.HeaderFieldsNot)
        {
            var header = end > start ? await reader.ReadAsync(start, end - start, ct) : [];
            var bytes = FilterHeader(header, s.Fields, s.Text == FetchSectionText.HeaderFieldsNot);
            var (skip, take) = Window(item, bytes.Length);
            return new Plan(0, take, bytes.AsSpan((int)skip, (int)take).ToArray());
        }
        var (o, n) = Window(item, end - start);
        return new Plan(start + o, n);
    }

    private static async ValueTask<Plan> PlanBinaryAsync(MessageReader reader, FetchItem item, MessageStructure? structure, StoredMessage m, CancellationToken ct)
    {
        var s = item.Section!;
        long start = 0, end = m.Size;
        var cte = Cte.Identity;
        if (s.Part.Length > 0)
        {
            if (!MessageStructure.TryFindPart(structure!.PartOffsets, s.Part, out var p))
            {
                return new Plan(0, 0);
            }
            (start, end) = (p.BodyStart, Math.Max(p.BodyStart, p.End));
            var header = p.BodyStart > p.HeaderStart ? await reader.ReadAsync(p.HeaderStart, p.BodyStart - p.HeaderStart, ct) : [];
            cte = TransferEncoding(header);
        }
        if (cte == Cte.Identity)
        {
            var (o, n) = Window(item, end - start);
            bool nul = false;
            if (item.Kind == FetchItemKind.Binary && n > 0)
            {
                await reader.CopyAsync(start + o, n, chunk => { nul |= chunk.Span.Contains((byte)0); return ValueTask.CompletedTask; }, ct);
            }
            return new Plan(start + o, n, HasNul: nul);
        }

        // First pass: the decoded size, and whether the returned window holds a NUL (then literal8).
        long size = 0;
        long from = item.Origin ?? 0, to = item.Length is { } len ? from + len : long.MaxValue;
        bool hasNul = false;
        await DecodeAsync(reader, start, end - start, cte, chunk =>
        {
            long a = Math.Max(from - size, 0), b = Math.Min(to - size, chunk.Length);
            if (a < b && chunk.Span[(int)a..(int)b].Contains((byte)0)) hasNul = true;
            size += chunk.Length;
            return ValueTask.CompletedTask;
        }, ct);
        if (item.Kind == FetchItemKind.BinarySize)
        {
            return new Plan(start, size, Cte: cte);
        }
        var (skip, take) = Window(item, size);
        return new Plan(start, take, Cte: cte, EncodedLength: end - start, Skip: skip, HasNul: hasNul);
    }

    /// <summary>The partial &lt;origin.length&gt; applied to content of <paramref name="total"/> octets.</summary>
    private static (long Skip, long Take) Window(FetchItem item, long total)
    {
        long skip = Math.Min(item.Origin ?? 0, total);
        long take = total - skip;
        if (item.Length is { } n) take = Math.Min(take, n);
        return (skip, take);
    }

    private static async ValueTask WriteContentAsync(Output output, MessageReader reader, Plan plan, bool binary, CancellationToken ct)
    {
        var w = output.Writer;
        if (plan.Length == 0)
        {
            w.Raw("\"\""u8);
            return;
        }
        if (binary && plan.HasNul) w.Raw("~"u8);
        w.Raw("{"u8).Number(plan.Length).Raw("}\r\n"u8);
        if (plan.Bytes is not null)
        {
            await output.WriteAsync(plan.Bytes);
            return;
        }
        long written = 0;
        if (plan.Cte == Cte.Identity)
        {
            written = await reader.CopyAsync(plan.Start, plan.Length, output.WriteAsync, ct);
        }
        else
        {
            // Second pass over an encoded part: write the decoded window.
            long position = 0, from = plan.Skip, to = plan.Skip + plan.Length;
            await DecodeAsync(reader, plan.Start, plan.EncodedLength, plan.Cte, async chunk =>
            {
                long a = Math.Max(from - position, 0), b = Math.Min(to - position, chunk.Length);
                position += chunk.Length;
                if (a < b)
                {
                    written += b - a;
                    await output.WriteAsync(chunk[(int)a..(int)b]);
                }
            }, ct);
        }
        // The literal length is already on the wire: a stored message shorter than its recorded
        // size leaves the response unfinishable, and the session must close the connection.
        if (written != plan.Length)
            throw new InvalidDataException($"Message shorter than recorded: {written} of {plan.Length} octets");
    }

    private static async ValueTask DecodeAsync(MessageReader reader, long start, long length, Cte cte,
        Func<ReadOnlyMemory<byte>, ValueTask> sink, CancellationToken ct)
    {
        IMimeDecoder decoder = cte == Cte.Base64 ? new Base64Decoder() : new QuotedPrintableDecoder();
        byte[]? decoded = null;
        await reader.CopyAsync(start, length, async chunk =>
        {
            int needed = decoder.EstimateOutputLength(chunk.Length);
            if (decoded is null || decoded.Length < needed) decoded = new byte[needed];
            // Chunks are slices of the reader's array.
            if (!MemoryMarshal.TryGetArray(chunk, out var input)) input = chunk.ToArray();
            int n = decoder.Decode(input.Array!, input.Offset, input.Count, decoded);
            if (n > 0) await sink(decoded.AsMemory(0, n));
        }, ct);
    }

    /// <summary>The part's Content-Transfer-Encoding (RFC 2045 §6.1), 7bit when absent.</summary>
    private static Cte TransferEncoding(byte[] header)
    {
        foreach (var (start, end, name) in HeaderFields(header))
        {
            if (!name.Equals("CONTENT-TRANSFER-ENCODING", StringComparison.OrdinalIgnoreCase)) continue;
            string value = Encoding.ASCII.GetString(header, start, end - start);
            value = value[(value.IndexOf(':', StringComparison.Ordinal) + 1)..];
            int cut = value.IndexOfAny(['(', ';']);
            if (cut >= 0) value = value[..cut];
            value = value.Trim(' ', '\t', '\r', '\n').ToLowerInvariant();
            return value switch
            {
                "" or "7bit" or "8bit" or "binary" => Cte.Identity,
                "base64" => Cte.Base64,
                "quoted-printable" => Cte.QuotedPrintable,
                _ => throw ImapException.No($"Unknown Content-Transfer-Encoding {value}", "UNKNOWN-CTE"),
            };
        }
        return Cte.Identity;
    }

    /// <summary>HEADER.FIELDS / HEADER.FIELDS.NOT: the matching fields as written (folded lines
    /// kept), then the blank line.</summary>
    internal static byte[] FilterHeader(byte[] header, string[] names, bool not)
    {
        var result = new ArrayBufferWriter<byte>(256);
        foreach (var (start, end, name) in HeaderFields(header))
        {
            bool match = names.Contains(name, StringComparer.OrdinalIgnoreCase);
            if (match == not) continue;
            result.Write(header.AsSpan(start, end - start));
            if (header[end - 1] != '\n') result.Write("\r\n"u8);
        }
        result.Write("\r\n"u8);
        return result.WrittenSpan.ToArray();
    }

    /// <summary>The fields of a header block: [start, end) including the line ends of the field
    /// and its continuation lines, and the field name. Stops at the blank line. Lines without
    /// a colon are skipped.</summary>
    private static List<(int Start, int End, string Name)> HeaderFields(byte[] header)
    {
        var fields = new List<(int, int, string)>();
        int i = 0;
        while (i < header.Length)
        {
            int lineEnd = LineEnd(header, i);
            int contentEnd = lineEnd;
            if (contentEnd > i && header[contentEnd - 1] == '\n') contentEnd--;
            if (contentEnd > i && header[contentEnd - 1] == '\r') contentEnd--;
            if (contentEnd == i) break; // the blank line
            int end = lineEnd;
            while (end < header.Length && header[end] is (byte)' ' or (byte)'\t') end = LineEnd(header, end);
            int colon = Array.IndexOf(header, (byte)':', i, lineEnd - i);
            if (colon > i)
            {
                string name = Encoding.ASCII.GetString(header, i, colon - i).TrimEnd(' ', '\t');
                if (name.Length > 0) fields.Add((i, end, name));
            }
            i = end;
        }
        return fields;

        static int LineEnd(byte[] b, int from)
        {
            int lf = Array.IndexOf(b, (byte)'\n', from);
            return lf < 0 ? b.Length : lf + 1;
        }
    }

    /// <summary>Writes literal content into the writer, flushing every <see cref="FlushBytes"/>.</summary>
    private sealed class Output(ImapWriter writer, FetchContext ctx)
    {
        private long _pending;

        public ImapWriter Writer => writer;

        public async ValueTask WriteAsync(ReadOnlyMemory<byte> bytes)
        {
            writer.Raw(bytes.Span);
            _pending += bytes.Length;
            if (_pending >= FlushBytes)
            {
                _pending = 0;
                await ctx.FlushAsync();
            }
        }
    }

    /// <summary>Reads ranges of the message; reopens the stream when it cannot seek back.</summary>
    private sealed class MessageReader(Func<Stream> open) : IDisposable
    {
        private Stream? _stream;
        private long _position;

        public async ValueTask<byte[]> ReadAsync(long start, long length, CancellationToken ct)
        {
            var buffer = new ArrayBufferWriter<byte>((int)Math.Min(length, 1 << 20));
            await CopyAsync(start, length, chunk => { buffer.Write(chunk.Span); return ValueTask.CompletedTask; }, ct);
            return buffer.WrittenSpan.ToArray();
        }

        /// <summary>Passes the bytes [start, start+length) to <paramref name="sink"/> in chunks
        /// (fewer if the message ends first); returns how many were passed.</summary>
        public async ValueTask<long> CopyAsync(long start, long length, Func<ReadOnlyMemory<byte>, ValueTask> sink, CancellationToken ct)
        {
            long copied = 0;
            var stream = await SeekAsync(start, ct);
            var buffer = ArrayPool<byte>.Shared.Rent(FlushBytes);
            try
            {
                while (length > 0)
                {
                    int n = await stream.ReadAsync(buffer.AsMemory(0, (int)Math.Min(buffer.Length, length)), ct);
                    if (n == 0) break;
                    _position += n;
                    length -= n;
                    copied += n;
                    await sink(buffer.AsMemory(0, n));
                }
                return copied;
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }
        }

        private async ValueTask<Stream> SeekAsync(long offset, CancellationToken ct)
        {
            if (_stream is null || (!_stream.CanSeek && _position > offset))
            {
                _stream?.Dispose();
                _stream = open();
                _position = 0;
            }
            if (_stream.CanSeek)
            {
                _stream.Position = offset;
                _position = offset;
                return _stream;
            }
            var skip = new byte[Math.Min(FlushBytes, Math.Max(1, offset - _position))];
            while (_position < offset)
            {
                int n = await _stream.ReadAsync(skip.AsMemory(0, (int)Math.Min(skip.Length, offset - _position)), ct);
                if (n == 0) break;
                _position += n;
            }
            return _stream;
        }

        public void Dispose() => _stream?.Dispose();
    }
}
