using System.Text;
using System.Text.RegularExpressions;
using Appliance.Directory;
using Appliance.Store;
using MimeKit;
using MimeKit.Text;

namespace Appliance.Web.Webmail;

// Implementation notes
// - A message is parsed with MimeKit from its stored file each time it is opened (the reading
//   pane asks twice: the view, then the iframe's document); parts are named by MimeKit's
//   IMAP-style path specifiers ("1", "1.2"), the same in the view and in the part download.
// - The body document for the iframe is the HTML part after HtmlSanitizer, or the text part
//   escaped (format=flowed unwrapped, links made clickable by MimeKit's converter, which
//   escapes everything else). It goes out with its own CSP (no script, nothing remote unless
//   the user allowed images) and `sandbox`, so even a sanitizer miss could not run anything.

/// <summary>Reads stored messages for the webmail: the view, the iframe's document, parts, and what a reply or forward starts from.</summary>
public static class WebmailReader
{
    /// <summary>Parts shown as attachments: everything with a file name or an attachment disposition, and non-text leaves that are not inline images of the HTML.</summary>
    public static bool HasAttachments(MessageStructure structure) =>
        structure.BodyStructure.Contains("(\"attachment\"", StringComparison.OrdinalIgnoreCase)
        || structure.BodyStructure.Contains("\"name\"", StringComparison.OrdinalIgnoreCase);

    public static async Task<MimeMessage> LoadAsync(MailStore store, MailUser user, string folder, long uid, CancellationToken ct) =>
        (await OpenAsync(store, user, folder, uid, ct)).Message;

    /// <summary>A message's row (flags, arrival) and its parsed text; 404 when the folder has no such UID.</summary>
    public static async Task<(StoredMessage Stored, MimeMessage Message)> OpenAsync(MailStore store, MailUser user, string folder, long uid, CancellationToken ct)
    {
        var stored = await store.GetMessageAsync(user, folder, uid, ct) ?? throw new WebmailException(404, "that message is gone (moved or deleted meanwhile)");
        await using var stream = store.OpenMessage(user, stored);
        return (stored, await MimeMessage.LoadAsync(stream, ct));
    }

    public static IReadOnlyList<MailAddress> Addresses(InternetAddressList list) =>
        [.. list.Mailboxes.Select(m => new MailAddress(m.Name ?? "", m.Address ?? ""))];

    /// <summary>The attachments of a message, by path: every leaf that is not the body shown.</summary>
    public static List<(string Part, MimePart Entity)> Attachments(MimeMessage message)
    {
        var list = new List<(string, MimePart)>();
        var iter = new MimeIterator(message);
        var textBody = message.TextBody is null ? null : message.BodyParts.OfType<TextPart>().FirstOrDefault(p => p.IsPlain && !p.IsAttachment);
        var htmlBody = message.HtmlBody is null ? null : message.BodyParts.OfType<TextPart>().FirstOrDefault(p => p.IsHtml && !p.IsAttachment);
        while (iter.MoveNext())
        {
            if (iter.Current is not MimePart part) continue;
            if (ReferenceEquals(part, textBody) || ReferenceEquals(part, htmlBody)) continue;
            if (part is TextPart { IsAttachment: false } && part.FileName is null) continue; // another inline text part (shown with the body)
            if (!part.IsAttachment && part.ContentId is not null && htmlBody is not null && part.ContentType.MediaType == "image") continue; // an image of the HTML
            list.Add((iter.PathSpecifier, part));
        }
        return list;
    }

    public static string AttachmentName(MimePart part, string path) =>
        part.FileName is { Length: > 0 } name ? name : $"part-{path}.{(part.ContentType.MediaSubtype is { Length: > 0 and < 10 } sub ? sub : "bin")}";

    public static long DecodedSize(MimePart part)
    {
        if (part.Content is null) return 0;
        using var counter = new CountingStream();
        part.Content.DecodeTo(counter);
        return counter.Length;
    }

    /// <summary>The leaf part at an IMAP-style path ("2", "1.2"), or the one with a Content-ID.</summary>
    public static MimePart? FindPart(MimeMessage message, string? path, string? cid)
    {
        var iter = new MimeIterator(message);
        while (iter.MoveNext())
        {
            if (iter.Current is not MimePart part) continue;
            if (path is not null && iter.PathSpecifier == path) return part;
            if (cid is not null && part.ContentId is { } id && id.Trim('<', '>') == cid) return part;
        }
        return null;
    }

    /// <summary>The largest inline image put into a reading document (decoded bytes).</summary>
    public const int MaxInlineImageBytes = 4 * 1024 * 1024;

    /// <summary>The image a cid: URL names, as a data: URI; null for a missing part, a part that is
    /// not a raster image (SVG can carry script), or one too large to inline.</summary>
    public static string? InlineImage(MimeMessage message, string cid)
    {
        if (FindPart(message, null, cid) is not { Content: { } content } part) return null;
        var type = part.ContentType.MimeType.ToLowerInvariant();
        if (type is not ("image/png" or "image/gif" or "image/jpeg" or "image/webp")) return null;
        using var bytes = new MemoryStream();
        content.DecodeTo(bytes);
        if (bytes.Length is 0 or > MaxInlineImageBytes) return null;
        return $"data:{type};base64,{Convert.ToBase64String(bytes.GetBuffer(), 0, (int)bytes.Length)}";
    }

    /// <summary>
    /// The document of the reading iframe. Inline images (cid:) go into it as data: URIs: the frame
    /// is sandboxed without allow-same-origin, so its own requests carry no session cookie.
    /// </summary>
    public static string BodyDocument(MimeMessage message, bool allowRemote)
    {
        string content;
        if (message.HtmlBody is { } html)
        {
            content = HtmlSanitizer.Sanitize(html, new SanitizeOptions { AllowRemoteImages = allowRemote, ResolveCid = cid => InlineImage(message, cid) }).Html;
        }
        else if (message.TextBody is { } text)
        {
            var part = message.BodyParts.OfType<TextPart>().FirstOrDefault(p => p.IsPlain);
            TextConverter converter = part is not null && part.IsFlowed
                ? new FlowedToHtml { OutputHtmlFragment = true, DeleteSpace = part.ContentType.Parameters["delsp"]?.Equals("yes", StringComparison.OrdinalIgnoreCase) == true }
                : new TextToHtml { OutputHtmlFragment = true };
            content = "<div class=\"plain\">" + converter.Convert(text) + "</div>";
        }
        else
        {
            content = "<p class=\"empty\">(this message has no text)</p>";
        }
        return $$"""
            <!doctype html><html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer"><base target="_blank">
            <style>body{font:14px/1.45 system-ui,sans-serif;color:#1d2330;margin:12px;overflow-wrap:anywhere}img{max-width:100%;height:auto}
            .plain{font-family:ui-monospace,monospace;white-space:pre-wrap}.empty{color:#777}blockquote{border-left:3px solid #ccd;margin:0 0 0 4px;padding-left:10px;color:#445}</style>
            </head><body>{{content}}</body></html>
            """;
    }

    /// <summary>The policy of the reading iframe's document: no script at all, images only from here (or anywhere once allowed).</summary>
    public static string BodyPolicy(bool allowRemote) =>
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:" + (allowRemote ? " http: https:" : "")
        + "; font-src data:; frame-ancestors 'self'; base-uri 'none'; form-action 'none'; sandbox allow-popups allow-popups-to-escape-sandbox";

    /// <summary>The text a reply or forward quotes: the text part, else the HTML turned into text.</summary>
    public static string QuotableText(MimeMessage message)
    {
        if (message.TextBody is { } text) return text;
        if (message.HtmlBody is { } html) return HtmlText(html);
        return "";
    }

    private static readonly HashSet<string> LineBreaking = new(StringComparer.OrdinalIgnoreCase)
    {
        "br", "p", "div", "tr", "li", "h1", "h2", "h3", "h4", "h5", "h6", "blockquote", "pre", "table", "ul", "ol", "hr",
    };

    /// <summary>The text of an HTML body, for quoting: text runs decoded, a line break at block elements, script and style left out.</summary>
    public static string HtmlText(string html)
    {
        var sb = new StringBuilder();
        var tokenizer = new HtmlTokenizer(new StringReader(html));
        string? skipping = null;
        while (tokenizer.ReadNextToken(out var token))
        {
            switch (token)
            {
                case HtmlTagToken tag when skipping is not null:
                    if (tag.IsEndTag && tag.Name.Equals(skipping, StringComparison.OrdinalIgnoreCase)) skipping = null;
                    break;
                case HtmlTagToken tag when !tag.IsEndTag && !tag.IsEmptyElement && tag.Name is "script" or "style" or "head" or "title":
                    skipping = tag.Name;
                    break;
                case HtmlTagToken tag when LineBreaking.Contains(tag.Name):
                    if (sb.Length > 0 && sb[^1] != '\n') sb.Append('\n');
                    break;
                case HtmlDataToken data when skipping is null:
                    sb.Append(Regex.Replace(data.Data, @"[ \t\r\n]+", " "));
                    break;
            }
        }
        return string.Join('\n', sb.ToString().Split('\n').Select(l => l.Trim())).Trim();
    }

    public static string Quote(string text) =>
        string.Join("\n", text.Replace("\r\n", "\n").TrimEnd('\n').Split('\n').Select(l => l.StartsWith('>') ? ">" + l : "> " + l));

    public static string Prefixed(string prefix, string? subject)
    {
        subject = (subject ?? "").Trim();
        return subject.StartsWith(prefix, StringComparison.OrdinalIgnoreCase) ? subject : prefix + " " + subject;
    }

    public static string Join(IEnumerable<MailboxAddress> addresses) => string.Join(", ", addresses.Select(a => a.ToString(true)));

    /// <summary>Reply, reply to all, or forward: the compose form's starting point.</summary>
    public static (string To, string Cc, string Subject, string Text) Reply(MimeMessage original, string mode, IReadOnlySet<string> own)
    {
        var from = original.From.Mailboxes.FirstOrDefault();
        var date = original.Date == DateTimeOffset.MinValue ? "" : original.Date.ToString("ddd, d MMM yyyy HH:mm zzz", System.Globalization.CultureInfo.InvariantCulture);
        if (mode == "forward")
        {
            var header = new StringBuilder("\n\n---------- Forwarded message ----------\n");
            header.Append("From: ").Append(Join(original.From.Mailboxes)).Append('\n');
            if (date.Length > 0) header.Append("Date: ").Append(date).Append('\n');
            header.Append("Subject: ").Append(original.Subject ?? "").Append('\n');
            header.Append("To: ").Append(Join(original.To.Mailboxes)).Append('\n');
            if (original.Cc.Count > 0) header.Append("Cc: ").Append(Join(original.Cc.Mailboxes)).Append('\n');
            return ("", "", Prefixed("Fwd:", original.Subject), header.Append('\n').Append(QuotableText(original)).ToString());
        }
        var replyTo = original.ReplyTo.Mailboxes.Any() ? original.ReplyTo.Mailboxes.ToList() : original.From.Mailboxes.ToList();
        var to = replyTo.Where(m => !own.Contains(m.Address.ToLowerInvariant())).ToList();
        if (to.Count == 0) to = original.To.Mailboxes.ToList(); // a reply to one's own sent message goes to its recipients
        var cc = new List<MailboxAddress>();
        if (mode == "all")
        {
            var seen = new HashSet<string>(to.Select(m => m.Address.ToLowerInvariant()), StringComparer.Ordinal);
            foreach (var m in original.To.Mailboxes.Concat(original.Cc.Mailboxes))
                if (!own.Contains(m.Address.ToLowerInvariant()) && seen.Add(m.Address.ToLowerInvariant())) cc.Add(m);
        }
        var intro = $"\n\n{(date.Length > 0 ? "On " + date + ", " : "")}{(from is null ? "someone" : from.ToString(true))} wrote:\n";
        return (Join(to), Join(cc), Prefixed("Re:", original.Subject), intro + Quote(QuotableText(original)));
    }

    /// <summary>A stream that only counts what is written to it.</summary>
    private sealed class CountingStream : Stream
    {
        private long _length;
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => _length;
        public override long Position { get => _length; set => throw new NotSupportedException(); }
        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) => _length += count;
    }
}
