using System.Net;
using System.Security.Cryptography.X509Certificates;
using Appliance.Directory;
using Appliance.Store;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using MimeKit.Utils;

namespace Appliance.Web.Webmail;

// Implementation notes
// - The webmail sends like any mail client: over SMTP to this node's own submission service,
//   signed in as the user with the password of the webmail session (STARTTLS, the node's own
//   certificate being the only one accepted). So a message from the webmail meets exactly the
//   rules of one from Thunderbird (who may send as whom, DKIM signing, size, rate limits, local
//   delivery and the queue), and the SMTP reply is what the user is shown when it is refused.
// - The copy in Sent is the message as composed (with its Bcc), filed after the 250, like a
//   client's own copy: if the mailbox is full the mail is still sent and the answer says so.

/// <summary>Builds messages from the compose form and sends them, or files them as drafts.</summary>
public sealed class WebmailComposer(MailStore store, IPEndPoint? submission, X509Certificate2 certificate, long maxMessageSize)
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("webmail");

    public long MaxMessageSize => maxMessageSize;

    /// <summary>The message the form describes. Addresses that do not parse are refused with the one at fault.</summary>
    public async Task<MimeMessage> BuildAsync(MailUser user, WebmailSession session, ComposeRequest form, WebmailSettings settings, bool forSending, CancellationToken ct)
    {
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress(settings.DisplayName?.Trim() ?? "", user.Address));
        if (!string.IsNullOrWhiteSpace(settings.ReplyTo)) message.ReplyTo.AddRange(Addresses(settings.ReplyTo, "Reply-To (in the settings)"));
        message.To.AddRange(Addresses(form.To, "To"));
        message.Cc.AddRange(Addresses(form.Cc, "Cc"));
        message.Bcc.AddRange(Addresses(form.Bcc, "Bcc"));
        if (forSending && message.To.Count + message.Cc.Count + message.Bcc.Count == 0) throw new WebmailException(400, "add at least one recipient");
        message.Subject = form.Subject ?? "";
        message.Date = DateTimeOffset.Now;
        message.MessageId = MimeUtils.GenerateMessageId(user.Address[(user.Address.IndexOf('@') + 1)..]);
        if (form.InReplyTo is { Folder: { Length: > 0 } folder, Uid: > 0 } re)
        {
            var original = await WebmailReader.LoadAsync(store, user, folder, re.Uid, ct);
            if (original.MessageId is { Length: > 0 } id)
            {
                message.InReplyTo = id;
                foreach (var r in original.References) message.References.Add(r);
                message.References.Add(id);
            }
        }
        var body = new BodyBuilder { TextBody = (form.Text ?? "").Replace("\r\n", "\n").Replace("\n", "\r\n") };
        if (!string.IsNullOrEmpty(form.Html)) body.HtmlBody = HtmlSanitizer.Sanitize(form.Html, new SanitizeOptions { AllowRemoteImages = true }).Html;
        foreach (var id in form.Attachments ?? [])
        {
            if (!session.Uploads.TryGetValue(id, out var upload)) throw new WebmailException(400, "an attachment is no longer there (uploads are kept for an hour); attach it again");
            var part = body.Attachments.Add(upload.Name, upload.Data, ContentType.TryParse(upload.Type, out var type) ? type : new ContentType("application", "octet-stream"));
            // Base64 for every attachment, text ones included: in 7bit or quoted-printable a text
            // file's LF line ends travel (and come back) as CRLF, so the bytes would not be the file's.
            if (part is MimePart mime) mime.ContentTransferEncoding = ContentEncoding.Base64;
        }
        message.Body = body.ToMessageBody();
        return message;
    }

    private static IEnumerable<InternetAddress> Addresses(string? text, string field)
    {
        if (string.IsNullOrWhiteSpace(text)) return [];
        if (!InternetAddressList.TryParse(text.Trim().TrimEnd(',', ';'), out var list))
            throw new WebmailException(400, $"{field}: \"{Shorten(text)}\" is not an e-mail address or a list of them (name <user@example.com>, separated by commas)");
        foreach (var mailbox in list.Mailboxes)
            if (mailbox.Address.IndexOf('@') is var at && (at <= 0 || at == mailbox.Address.Length - 1))
                throw new WebmailException(400, $"{field}: \"{Shorten(mailbox.Address)}\" is not an e-mail address");
        return list;
    }

    private static string Shorten(string s) => s.Length > 60 ? s[..60] + "…" : s;

    /// <summary>Sends through the submission service as the user; the SMTP server's refusal becomes the user's error.</summary>
    public async Task SendAsync(MailUser user, WebmailSession session, MimeMessage message, CancellationToken ct)
    {
        if (submission is null) throw new WebmailException(503, "this node has no submission service (Listen:Submission) to send through");
        var host = submission.Address.Equals(IPAddress.Any) ? IPAddress.Loopback
            : submission.Address.Equals(IPAddress.IPv6Any) ? IPAddress.IPv6Loopback : submission.Address;
        using var client = new SmtpClient();
        var thumbprint = certificate.GetCertHashString();
        client.ServerCertificateValidationCallback = (_, cert, _, _) => cert is not null && cert.GetCertHashString() == thumbprint;
        client.LocalDomain = "webmail.localhost";
        try
        {
            await client.ConnectAsync(host.ToString(), submission.Port, SecureSocketOptions.StartTlsWhenAvailable, ct);
            await client.AuthenticateAsync(user.Address, session.Password, ct);
            await client.SendAsync(message, ct);
            await client.DisconnectAsync(true, ct);
        }
        catch (SmtpCommandException ex)
        {
            Log.Info("webmail send refused user={0} code={1} {2}", user.Address, (int)ex.StatusCode, ex.Message);
            var who = ex.Mailbox is { } m ? $" ({m.Address})" : "";
            throw new WebmailException(ex.ErrorCode == SmtpErrorCode.RecipientNotAccepted ? 400 : 502, $"the mail server refused the message{who}: {(int)ex.StatusCode} {ex.Message}");
        }
        catch (AuthenticationException)
        {
            throw new WebmailException(401, "the mail server did not accept your password; sign in again");
        }
        catch (Exception ex) when (ex is IOException or System.Net.Sockets.SocketException or SmtpProtocolException or SslHandshakeException)
        {
            Log.Warn("webmail send failed user={0}: {1}", user.Address, ex.Message);
            throw new WebmailException(503, "the mail server could not be reached; the message was not sent, try again");
        }
    }

    /// <summary>Files a message into a folder (a sent copy, a draft) with the given flags; null when the mailbox is full.</summary>
    public async Task<long?> FileAsync(MailUser user, string folder, MimeMessage message, MessageFlags flags, CancellationToken ct)
    {
        using var data = new MemoryStream();
        await message.WriteToAsync(FormatOptions.Default, data, ct);
        var bytes = data.ToArray();
        data.Position = 0;
        var structure = MessageStructure.Parse(data);
        var result = await store.AppendAsync(user, folder, [new NewMessage(bytes, structure, DateTimeOffset.UtcNow, flags, [])], ct);
        return result?.Uids[0];
    }
}
