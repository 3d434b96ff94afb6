using System.Text;
using MimeKit;

namespace Appliance.Filtering.Sieve;

/// <summary>
/// The message as the tests see it, parsed once with MimeKit: header values decoded from RFC 2047
/// encoded-words and unfolded, the addresses of address fields (group members included), the
/// body for the body test (RFC 5173) raw or as decoded MIME parts.
/// </summary>
internal sealed class SieveMessage
{
    private readonly byte[] _raw;
    private MimeMessage? _message;

    public SieveMessage(byte[] raw) => _raw = raw;

    public long Size => _raw.LongLength;

    public MimeMessage Mime => _message ??= Load(_raw);

    internal static MimeMessage Load(byte[] raw)
    {
        try
        {
            using var stream = new MemoryStream(raw, writable: false);
            return MimeMessage.Load(stream);
        }
        catch (FormatException)
        {
            return new MimeMessage();
        }
    }

    /// <summary>The values of every field with this name, decoded and unfolded, leading and trailing blanks removed (RFC 5228 §5.7).</summary>
    public List<string> Headers(string name) =>
        [.. Mime.Headers.Where(h => h.Field.Equals(name, StringComparison.OrdinalIgnoreCase)).Select(h => Unfold(h.Value).Trim())];

    public bool Exists(string name) => Mime.Headers.Any(h => h.Field.Equals(name, StringComparison.OrdinalIgnoreCase));

    private static string Unfold(string s) => s.Contains('\n') ? s.Replace("\r\n", "").Replace("\n", "") : s;

    /// <summary>The addresses in every field with this name as (local part, domain); groups give their members (RFC 5228 §5.1).</summary>
    public List<(string Local, string Domain)> Addresses(string name)
    {
        var result = new List<(string, string)>();
        foreach (var header in Mime.Headers.Where(h => h.Field.Equals(name, StringComparison.OrdinalIgnoreCase)))
        {
            if (InternetAddressList.TryParse(ParserOptions.Default, header.RawValue, out var list))
                foreach (var mailbox in Flatten(list)) result.Add((mailbox.LocalPart, mailbox.Domain));
            else
            {
                var value = Unfold(header.Value).Trim();
                if (value.Length > 0) result.Add(Split(value));
            }
        }
        return result;
    }

    public static IEnumerable<MailboxAddress> Flatten(IEnumerable<InternetAddress> list)
    {
        foreach (var address in list)
        {
            if (address is MailboxAddress mailbox) yield return mailbox;
            else if (address is GroupAddress group)
                foreach (var member in Flatten(group.Members)) yield return member;
        }
    }

    /// <summary>local@domain split at the last "@"; no "@" is all local part.</summary>
    public static (string Local, string Domain) Split(string address)
    {
        var at = address.LastIndexOf('@');
        return at < 0 ? (address, "") : (address[..at], address[(at + 1)..]);
    }

    /// <summary>RFC 5173 :raw — the body as it came, undecoded.</summary>
    public string RawBody()
    {
        var span = _raw.AsSpan();
        int start;
        if (span.StartsWith("\r\n"u8)) start = 2;
        else if (span.StartsWith("\n"u8)) start = 1;
        else
        {
            var crlf = span.IndexOf("\r\n\r\n"u8);
            var lf = span.IndexOf("\n\n"u8);
            start = crlf >= 0 && (lf < 0 || crlf < lf) ? crlf + 4 : lf >= 0 ? lf + 2 : span.Length;
        }
        return Encoding.UTF8.GetString(span[start..]);
    }

    /// <summary>
    /// RFC 5173 :content — the decoded text of each part whose type matches one of types ("text"
    /// matches every text/*, "" every part); a matching multipart gives its prologue and epilogue,
    /// a matching message/rfc822 its header; nested parts are searched in every case.
    /// </summary>
    public List<string> BodyParts(IReadOnlyList<string> types)
    {
        var result = new List<string>();
        Walk(Mime.Body, types, result);
        return result;
    }

    private static void Walk(MimeEntity? entity, IReadOnlyList<string> types, List<string> result)
    {
        switch (entity)
        {
            case null:
                return;
            case Multipart multipart:
                if (Matches(multipart.ContentType, types)) result.Add((multipart.Preamble ?? "") + (multipart.Epilogue ?? ""));
                foreach (var child in multipart) Walk(child, types, result);
                return;
            case MessagePart part:
                if (Matches(part.ContentType, types) && part.Message is not null) result.Add(part.Message.Headers.ToString() ?? "");
                if (part.Message is not null) Walk(part.Message.Body, types, result);
                return;
            case TextPart text:
                if (Matches(text.ContentType, types)) result.Add(text.Text ?? "");
                return;
            case MimePart other:
                if (Matches(other.ContentType, types) && other.Content is not null)
                {
                    using var decoded = new MemoryStream();
                    other.Content.DecodeTo(decoded);
                    result.Add(Encoding.UTF8.GetString(decoded.ToArray()));
                }
                return;
        }
    }

    private static bool Matches(ContentType type, IReadOnlyList<string> types) => types.Any(t =>
        t.Length == 0
        || (t.Contains('/') ? t.Equals(type.MimeType, StringComparison.OrdinalIgnoreCase) : t.Equals(type.MediaType, StringComparison.OrdinalIgnoreCase)));
}
