using System.Text;
using MimeKit;
using MimeKit.Utils;

namespace Appliance.Filtering.Sieve;

/// <summary>
/// The pure decisions around a vacation reply (RFC 5230, RFC 3834): whether to answer at all,
/// and the reply itself. The caller keeps the per-sender, per-handle record of :days/:seconds and
/// sends the reply with an empty envelope sender (RFC 5230 §5.1).
/// </summary>
public static class SieveVacation
{
    private static readonly string[] ListFields =
        ["List-Id", "List-Post", "List-Unsubscribe", "List-Help", "List-Subscribe", "List-Owner", "List-Archive"];

    private static readonly string[] RecipientFields = ["To", "Cc", "Bcc", "Resent-To", "Resent-Cc"];

    /// <summary>Null when a reply should go; otherwise why not, short enough for a log line.</summary>
    public static string? WhyNotRespond(SieveContext context, VacationAction vacation)
    {
        var sender = context.EnvelopeFrom.Trim();
        if (sender.Length == 0) return "the envelope sender is empty (a bounce or notification)";
        var local = SieveMessage.Split(sender).Local.ToLowerInvariant();
        if (local is "mailer-daemon" or "listserv" or "majordomo" || local.StartsWith("owner-", StringComparison.Ordinal) || local.EndsWith("-request", StringComparison.Ordinal))
            return $"the sender {sender} is a mailer or list address (RFC 3834 §2)";
        var message = SieveMessage.Load(context.Message);
        var headers = message.Headers;
        if (headers["Auto-Submitted"] is { } autoSubmitted && !autoSubmitted.Split(';')[0].Trim().Equals("no", StringComparison.OrdinalIgnoreCase))
            return $"the message is Auto-Submitted: {autoSubmitted.Trim()}";
        if (ListFields.FirstOrDefault(headers.Contains) is { } listField)
            return $"the message comes from a mailing list ({listField})";
        if (headers["Precedence"]?.Trim().ToLowerInvariant() is "bulk" or "list" or "junk")
            return $"the message has Precedence: {headers["Precedence"]!.Trim()}";
        if (headers["X-Auto-Response-Suppress"] is { } suppress
            && suppress.Split(',').Select(t => t.Trim()).Any(t => t.Equals("OOF", StringComparison.OrdinalIgnoreCase) || t.Equals("All", StringComparison.OrdinalIgnoreCase)))
            return $"the message asks for no auto-reply (X-Auto-Response-Suppress: {suppress.Trim()})";
        if (IsSpam(headers)) return "the message is spam";
        if (message.Body?.ContentType is { } type && type.IsMimeType("multipart", "report"))
            return "the message is a delivery or read report";

        var own = new List<string>([.. context.UserAddresses, .. vacation.Addresses, context.EnvelopeTo]);
        if (vacation.From is not null && MailboxAddress.TryParse(vacation.From, out var from)) own.Add(from.Address);
        own.RemoveAll(a => a.Length == 0);
        if (own.Any(a => SameAddress(a, sender))) return "the sender is the recipient";
        var recipients = RecipientFields.SelectMany(f => headers.Where(h => h.Field.Equals(f, StringComparison.OrdinalIgnoreCase)))
            .SelectMany(h => InternetAddressList.TryParse(ParserOptions.Default, h.RawValue, out var list) ? SieveMessage.Flatten(list) : [])
            .Select(m => m.Address);
        if (!recipients.Any(r => own.Any(a => SameAddress(a, r))))
            return "none of the recipient's addresses is in To, Cc, Bcc, Resent-To or Resent-Cc (RFC 5230 §4.5)";
        return null;
    }

    private static bool IsSpam(HeaderList headers) =>
        headers["X-Spam-Flag"]?.Trim().Equals("YES", StringComparison.OrdinalIgnoreCase) == true
        || headers["X-Spam"]?.Trim().Equals("Yes", StringComparison.OrdinalIgnoreCase) == true
        || headers["X-Spam-Status"]?.TrimStart().StartsWith("Yes", StringComparison.OrdinalIgnoreCase) == true;

    /// <summary>Addresses compared without case, and user+detail as user.</summary>
    private static bool SameAddress(string a, string b)
    {
        if (a.Equals(b, StringComparison.OrdinalIgnoreCase)) return true;
        var (la, da) = SieveMessage.Split(a);
        var (lb, db) = SieveMessage.Split(b);
        static string User(string local) => local.IndexOf('+') is var plus and >= 0 ? local[..plus] : local;
        return da.Equals(db, StringComparison.OrdinalIgnoreCase) && User(la).Equals(User(lb), StringComparison.OrdinalIgnoreCase);
    }

    /// <summary>
    /// The reply (RFC 5230 §5): From the :from or the envelope recipient, To the envelope sender,
    /// Subject the :subject or "Auto: " and the original's, In-Reply-To and References from the
    /// original's Message-ID, Auto-Submitted: auto-replied (RFC 3834 §5); the reason as UTF-8 text,
    /// or with :mime the reason is the MIME entity of the body.
    /// </summary>
    public static byte[] BuildReply(SieveContext context, VacationAction vacation, string hostname, DateTimeOffset now)
    {
        var original = SieveMessage.Load(context.Message);
        var reply = new MimeMessage();
        reply.From.Add(vacation.From is not null && MailboxAddress.TryParse(vacation.From, out var from) ? from : Mailbox(context.EnvelopeTo));
        reply.To.Add(Mailbox(context.EnvelopeFrom));
        reply.Subject = vacation.Subject ?? ("Auto: " + original.Subject?.Trim()).TrimEnd();
        if (!string.IsNullOrEmpty(original.MessageId))
        {
            reply.InReplyTo = original.MessageId;
            foreach (var reference in original.References) reply.References.Add(reference);
            reply.References.Add(original.MessageId);
        }
        reply.Headers.Add("Auto-Submitted", "auto-replied");
        reply.MessageId = MimeUtils.GenerateMessageId(hostname);
        reply.Date = now;
        reply.Body = (vacation.Mime ? MimeBody(vacation.Reason) : null) ?? TextBody(vacation.Reason);
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        using var output = new MemoryStream();
        reply.WriteTo(options, output);
        return output.ToArray();
    }

    private static MailboxAddress Mailbox(string address) =>
        MailboxAddress.TryParse(address, out var mailbox) ? mailbox : new MailboxAddress("", address);

    private static TextPart TextBody(string reason)
    {
        var text = new TextPart("plain");
        text.SetText("utf-8", reason);
        text.ContentTransferEncoding = ContentEncoding.QuotedPrintable;
        return text;
    }

    private static MimeEntity? MimeBody(string reason)
    {
        try
        {
            using var stream = new MemoryStream(Encoding.UTF8.GetBytes(reason));
            return MimeEntity.Load(stream);
        }
        catch (FormatException)
        {
            return null;
        }
    }
}
