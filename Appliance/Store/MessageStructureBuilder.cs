using System.Globalization;
using System.Text;
using MimeKit;
using static Appliance.Store.ImapStringWriter;

namespace Appliance.Store;

/// <summary>Collects entity offsets from <see cref="MimeParser"/> events, then writes
/// ENVELOPE, BODY and BODYSTRUCTURE (RFC 3501 §7.4.2, RFC 9051 §7.5.2).</summary>
internal sealed class MessageStructureBuilder(long origin)
{
    private readonly record struct Span(long Begin, long HeadersEnd, long End, int Lines);

    private static readonly Encoding _utf8 = new UTF8Encoding(false, false);

    private readonly Dictionary<object, long> _begins = new(ReferenceEqualityComparer.Instance);
    private readonly Dictionary<object, Span> _spans = new(ReferenceEqualityComparer.Instance);

    public void Attach(MimeParser parser)
    {
        parser.MimeEntityBegin += (_, e) => _begins[e.Entity] = e.BeginOffset - origin;
        parser.MimeEntityEnd += (_, e) => _spans[e.Entity] = new Span(
            _begins.GetValueOrDefault(e.Entity), e.HeadersEndOffset - origin, e.EndOffset - origin, Math.Max(0, e.Lines));
        parser.MimeMessageBegin += (_, e) => _begins[e.Message] = e.BeginOffset - origin;
        parser.MimeMessageEnd += (_, e) => _spans[e.Message] = new Span(
            _begins.GetValueOrDefault(e.Message), e.HeadersEndOffset - origin, e.EndOffset - origin, 0);
    }

    public MessageStructure Build(MimeMessage message)
    {
        var offsets = new StringBuilder();
        var root = _spans.GetValueOrDefault(message);
        AppendOffsets(offsets, "", root, -1);

        var envelope = new StringBuilder();
        AppendEnvelope(envelope, message.Headers);
        var body = new StringBuilder();
        AppendMessageBody(body, message, "", extended: false, null);
        var bodyStructure = new StringBuilder();
        AppendMessageBody(bodyStructure, message, "", extended: true, offsets);
        return new MessageStructure(envelope.ToString(), body.ToString(), bodyStructure.ToString(), offsets.ToString());
    }

    // RFC 3501 §7.4.2 ENVELOPE: date, subject, from, sender, reply-to, to, cc, bcc,
    // in-reply-to, message-id.
    private static void AppendEnvelope(StringBuilder sb, HeaderList headers)
    {
        sb.Append('(');
        // "If the Date, Subject, In-Reply-To, and Message-ID header lines are absent ...
        // NIL; if these header lines are present but empty ... the empty string."
        AppendNString(sb, RawHeader(headers, HeaderId.Date));
        sb.Append(' ');
        AppendNString(sb, RawHeader(headers, HeaderId.Subject));
        sb.Append(' ');
        var from = Addresses(headers, HeaderId.From);
        AppendAddresses(sb, from);
        sb.Append(' ');
        // "If the Sender or Reply-To lines are absent ... or are present but empty, the server
        // sets the corresponding member of the envelope to be the same value as the from member."
        AppendAddresses(sb, Addresses(headers, HeaderId.Sender) ?? from);
        sb.Append(' ');
        AppendAddresses(sb, Addresses(headers, HeaderId.ReplyTo) ?? from);
        sb.Append(' ');
        AppendAddresses(sb, Addresses(headers, HeaderId.To));
        sb.Append(' ');
        AppendAddresses(sb, Addresses(headers, HeaderId.Cc));
        sb.Append(' ');
        AppendAddresses(sb, Addresses(headers, HeaderId.Bcc));
        sb.Append(' ');
        AppendNString(sb, RawHeader(headers, HeaderId.InReplyTo));
        sb.Append(' ');
        AppendNString(sb, RawHeader(headers, HeaderId.MessageId));
        sb.Append(')');
    }

    private static List<ImapAddress>? Addresses(HeaderList headers, HeaderId id)
    {
        string? raw = RawHeader(headers, id);
        if (raw is null)
        {
            return null;
        }
        var list = ImapAddressParser.Parse(raw);
        return list.Count == 0 ? null : list;
    }

    // RFC 3501 §7.4.2: address = "(" addr-name SP addr-adl SP addr-mailbox SP addr-host ")",
    // an address list is "(" 1*address ")" / nil, groups as (NIL NIL "name" NIL) … (NIL NIL NIL NIL).
    private static void AppendAddresses(StringBuilder sb, List<ImapAddress>? list)
    {
        if (list is null)
        {
            AppendNil(sb);
            return;
        }
        sb.Append('(');
        foreach (var a in list)
        {
            sb.Append('(');
            AppendNString(sb, a.Name);
            sb.Append(' ');
            AppendNString(sb, a.Route);
            sb.Append(' ');
            AppendNString(sb, a.Mailbox);
            sb.Append(' ');
            AppendNString(sb, a.Host);
            sb.Append(')');
        }
        sb.Append(')');
    }

    /// <summary>The body of a message (top level or encapsulated): a multipart body's children
    /// are numbered under <paramref name="section"/>, a single part is "section.1".</summary>
    private void AppendMessageBody(StringBuilder sb, MimeMessage message, string section, bool extended, StringBuilder? offsets)
    {
        var body = message.Body;
        if (body is null)
        {
            var span = _spans.GetValueOrDefault(message);
            AppendOffsets(offsets, Child(section, 1), span, -1);
            AppendPlainText(sb, Math.Max(0, span.End - span.HeadersEnd), 0, extended);
        }
        else if (body is Multipart)
        {
            AppendEntity(sb, body, null, section, extended, offsets);
        }
        else
        {
            string own = Child(section, 1);
            AppendEntity(sb, body, own, own, extended, offsets);
        }
    }

    private static string Child(string section, int index) =>
        section.Length == 0
            ? index.ToString(CultureInfo.InvariantCulture)
            : string.Create(CultureInfo.InvariantCulture, $"{section}.{index}");

    private void AppendEntity(StringBuilder sb, MimeEntity entity, string? own, string childBase, bool extended, StringBuilder? offsets)
    {
        var span = _spans.GetValueOrDefault(entity);
        var headers = entity.Headers;
        string? contentType = RawHeader(headers, HeaderId.ContentType);
        var contentParams = contentType is null ? [] : Parameters(contentType, skipValue: true);

        if (entity is Multipart multipart)
        {
            if (own is not null)
            {
                AppendOffsets(offsets, own, span, -1);
            }
            // RFC 3501 §7.4.2 body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]
            sb.Append('(');
            int index = 0;
            foreach (var child in multipart)
            {
                string number = Child(childBase, ++index);
                AppendEntity(sb, child, number, number, extended, offsets);
            }
            if (index == 0)
            {
                // 1*body: a multipart without parts (no boundary found) is described as one
                // text part holding its whole body, so the content stays reachable as "x.1".
                AppendOffsets(offsets, Child(childBase, 1), span, -1);
                AppendPlainText(sb, Math.Max(0, span.End - span.HeadersEnd), span.Lines, extended);
            }
            sb.Append(' ');
            AppendString(sb, entity.ContentType.MediaSubtype.ToUpperInvariant());
            if (extended)
            {
                // body-ext-mpart = body-fld-param [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc]]]
                sb.Append(' ');
                AppendParameters(sb, contentParams);
                AppendDispositionLanguageLocation(sb, headers);
            }
            sb.Append(')');
            return;
        }

        string type = entity.ContentType.MediaType.ToUpperInvariant();
        string subtype = entity.ContentType.MediaSubtype.ToUpperInvariant();
        bool isText = type == "TEXT";
        // RFC 9051 §7.5.2: MESSAGE/RFC822 and MESSAGE/GLOBAL always carry envelope, body and lines.
        bool isMessage = type == "MESSAGE" && subtype is "RFC822" or "GLOBAL";
        var inner = isMessage && entity is MessagePart messagePart ? messagePart.Message : null;
        long innerBodyStart = inner is null ? -1 : _spans.GetValueOrDefault(inner).HeadersEnd;
        if (own is not null)
        {
            AppendOffsets(offsets, own, span, innerBodyStart);
        }

        // RFC 2045 §5.2 / RFC 2046 §4.1.2: text defaults to charset us-ascii.
        if (isText && !contentParams.Exists(p => p.Name.Equals("charset", StringComparison.OrdinalIgnoreCase)))
        {
            contentParams.Insert(0, ("CHARSET", "US-ASCII"));
        }

        // RFC 3501 §7.4.2 body-fields = body-fld-param SP body-fld-id SP body-fld-desc SP
        // body-fld-enc SP body-fld-octets
        sb.Append('(');
        AppendString(sb, type);
        sb.Append(' ');
        AppendString(sb, subtype);
        sb.Append(' ');
        AppendParameters(sb, contentParams);
        sb.Append(' ');
        AppendNString(sb, RawHeader(headers, HeaderId.ContentId));
        sb.Append(' ');
        AppendNString(sb, RawHeader(headers, HeaderId.ContentDescription));
        sb.Append(' ');
        string? encoding = RawHeader(headers, HeaderId.ContentTransferEncoding);
        AppendString(sb, string.IsNullOrEmpty(encoding) ? "7BIT" : encoding.ToUpperInvariant());
        sb.Append(' ');
        AppendNumber(sb, Math.Max(0, span.End - span.HeadersEnd));

        if (isMessage)
        {
            // body-type-msg = media-message SP body-fields SP envelope SP body SP body-fld-lines
            sb.Append(' ');
            if (inner is null)
            {
                // Unparsable encapsulated message (e.g. base64-encoded): keep the grammar.
                sb.Append(MessageStructure.NilEnvelope).Append(' ');
                AppendPlainText(sb, 0, 0, extended);
            }
            else
            {
                AppendEnvelope(sb, inner.Headers);
                sb.Append(' ');
                AppendMessageBody(sb, inner, own ?? childBase, extended, offsets);
            }
            sb.Append(' ');
            AppendNumber(sb, span.Lines);
        }
        else if (isText)
        {
            // body-type-text = media-text SP body-fields SP body-fld-lines
            sb.Append(' ');
            AppendNumber(sb, span.Lines);
        }

        if (extended)
        {
            // body-ext-1part = body-fld-md5 [SP body-fld-dsp [SP body-fld-lang [SP body-fld-loc]]]
            sb.Append(' ');
            AppendNString(sb, RawHeader(headers, HeaderId.ContentMd5));
            AppendDispositionLanguageLocation(sb, headers);
        }
        sb.Append(')');
    }

    private static void AppendPlainText(StringBuilder sb, long octets, long lines, bool extended)
    {
        sb.Append("(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" ");
        AppendNumber(sb, octets);
        sb.Append(' ');
        AppendNumber(sb, lines);
        sb.Append(extended ? " NIL NIL NIL NIL)" : ")");
    }

    // RFC 3501 §7.4.2 body-fld-dsp (RFC 2183), body-fld-lang (RFC 3282), body-fld-loc (RFC 2557).
    private static void AppendDispositionLanguageLocation(StringBuilder sb, HeaderList headers)
    {
        sb.Append(' ');
        string? disposition = RawHeader(headers, HeaderId.ContentDisposition);
        int semicolon = disposition is null ? -1 : disposition.IndexOf(';', StringComparison.Ordinal);
        string? dispositionType = disposition is null ? null : (semicolon < 0 ? disposition : disposition[..semicolon]).Trim();
        if (string.IsNullOrEmpty(dispositionType))
        {
            AppendNil(sb);
        }
        else
        {
            sb.Append('(');
            AppendString(sb, dispositionType.ToUpperInvariant());
            sb.Append(' ');
            AppendParameters(sb, Parameters(disposition!, skipValue: true));
            sb.Append(')');
        }

        sb.Append(' ');
        string? language = RawHeader(headers, HeaderId.ContentLanguage);
        var tags = language?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
        if (tags.Length == 0)
        {
            AppendNil(sb);
        }
        else if (tags.Length == 1)
        {
            AppendString(sb, tags[0]);
        }
        else
        {
            sb.Append('(');
            for (int i = 0; i < tags.Length; i++)
            {
                if (i > 0)
                {
                    sb.Append(' ');
                }
                AppendString(sb, tags[i]);
            }
            sb.Append(')');
        }

        sb.Append(' ');
        AppendNString(sb, RawHeader(headers, HeaderId.ContentLocation));
    }

    // body-fld-param = "(" string SP string *(SP string SP string) ")" / nil
    private static void AppendParameters(StringBuilder sb, List<(string Name, string Value)> parameters)
    {
        if (parameters.Count == 0)
        {
            AppendNil(sb);
            return;
        }
        sb.Append('(');
        for (int i = 0; i < parameters.Count; i++)
        {
            if (i > 0)
            {
                sb.Append(' ');
            }
            AppendString(sb, parameters[i].Name.ToUpperInvariant());
            sb.Append(' ');
            AppendString(sb, parameters[i].Value);
        }
        sb.Append(')');
    }

    /// <summary>RFC 2045 §5.1 parameters after the value, as written: quoted strings are
    /// unquoted, RFC 2231 continuations and charsets are left for the client (as Dovecot
    /// and Cyrus send them).</summary>
    internal static List<(string Name, string Value)> Parameters(string value, bool skipValue)
    {
        var result = new List<(string, string)>();
        var segments = new List<string>();
        var current = new StringBuilder();
        bool quoted = false;
        for (int i = 0; i < value.Length; i++)
        {
            char c = value[i];
            if (quoted && c == '\\' && i + 1 < value.Length)
            {
                current.Append(c).Append(value[++i]);
                continue;
            }
            if (c == '"')
            {
                quoted = !quoted;
            }
            if (c == ';' && !quoted)
            {
                segments.Add(current.ToString());
                current.Clear();
                continue;
            }
            current.Append(c);
        }
        segments.Add(current.ToString());
        foreach (var segment in segments.Skip(skipValue ? 1 : 0))
        {
            int equals = segment.IndexOf('=', StringComparison.Ordinal);
            if (equals <= 0)
            {
                continue;
            }
            string name = segment[..equals].Trim();
            string raw = segment[(equals + 1)..].Trim();
            if (name.Length == 0)
            {
                continue;
            }
            result.Add((name, raw.StartsWith('"') ? Unquote(raw) : raw));
        }
        return result;
    }

    private static string Unquote(string raw)
    {
        var sb = new StringBuilder(raw.Length);
        for (int i = 1; i < raw.Length; i++)
        {
            char c = raw[i];
            if (c == '\\' && i + 1 < raw.Length)
            {
                sb.Append(raw[++i]);
            }
            else if (c == '"')
            {
                break;
            }
            else
            {
                sb.Append(c);
            }
        }
        return sb.ToString();
    }

    /// <summary>The first such header as written, unfolded (RFC 5322 §2.2.3: CRLF removed,
    /// the following whitespace kept) and trimmed; null when absent.</summary>
    internal static string? RawHeader(HeaderList headers, HeaderId id)
    {
        int index = headers.IndexOf(id);
        if (index < 0)
        {
            return null;
        }
        string value = _utf8.GetString(headers[index].RawValue);
        if (value.AsSpan().IndexOfAny('\r', '\n') >= 0)
        {
            value = value.Replace("\r", "", StringComparison.Ordinal).Replace("\n", "", StringComparison.Ordinal);
        }
        return value.Trim(' ', '\t');
    }

    private static void AppendOffsets(StringBuilder? offsets, string section, Span span, long innerBodyStart)
    {
        if (offsets is null)
        {
            return;
        }
        if (offsets.Length > 0)
        {
            offsets.Append(' ');
        }
        offsets.Append(section).Append(':')
            .Append(span.Begin.ToString(CultureInfo.InvariantCulture)).Append(',')
            .Append(span.HeadersEnd.ToString(CultureInfo.InvariantCulture)).Append(',')
            .Append(span.End.ToString(CultureInfo.InvariantCulture));
        if (innerBodyStart >= 0)
        {
            offsets.Append(',').Append(innerBodyStart.ToString(CultureInfo.InvariantCulture));
        }
    }
}
