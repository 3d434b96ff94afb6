using System.Buffers;
using System.Diagnostics;
using System.Text;
using Appliance.Directory;
using Appliance.Store;
using SmtpServer;
using SmtpServer.Protocol;
using SmtpServer.Storage;

namespace Appliance.Smtp;

/// <summary>
/// Final delivery of an accepted message (the DATA reply). The 250 is returned only after the
/// message is durable in every recipient mailbox (file fsynced, journal fsynced, index
/// committed). A recipient whose quota no longer fits turns the whole transaction into a
/// temporary 452 4.2.2 (nothing is half-delivered silently; on retry the RCPT check refuses just
/// that recipient), or 552 5.2.2 when the message can never fit (RFC 5321 §4.5.3.1.10).
/// </summary>
internal sealed class SmtpDelivery(MailStore store, string hostname, long maxMessageSize) : IMessageStore
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("smtp");

    public async Task<SmtpResponse> SaveAsync(ISessionContext context, IMessageTransaction transaction, ReadOnlySequence<byte> buffer, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var state = SmtpSessionState.Of(context);
        var from = transaction.From.AsAddress();
        var rcpts = transaction.To.Select(t => t.AsAddress()).ToList();
        var id = Convert.ToHexString(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6));
        SmtpResponse response;
        try
        {
            response = await DeliverAsync(context, transaction, buffer, id, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.Error(ex, "smtp delivery failed id={0}", id);
            response = new SmtpResponse((SmtpReplyCode)451, "4.3.0 Temporary local problem, try again later");
        }
        Log.Info("smtp {0} id={1} from=<{2}> to=<{3}> size={4} result=\"{5} {6}\" ms={7:F1}",
            state.Describe(context), id, from, string.Join(">,<", rcpts), buffer.Length, (int)response.ReplyCode, response.Message,
            Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return response;
    }

    private async Task<SmtpResponse> DeliverAsync(ISessionContext context, IMessageTransaction transaction, ReadOnlySequence<byte> buffer, string id, CancellationToken ct)
    {
        if (buffer.Length > maxMessageSize)
            return new SmtpResponse(SmtpReplyCode.SizeLimitExceeded, $"5.3.4 Message size exceeds fixed maximum message size ({maxMessageSize} bytes)");

        var boxes = SmtpSessionState.Of(context).Mailboxes; // resolved once, at RCPT
        if (boxes.Count == 0) return new SmtpResponse(SmtpReplyCode.MailboxUnavailable, "5.1.1 No valid recipients");

        var trace = TraceHeaders(context, transaction, id);
        // SmtpServer hands over the data without the CRLF of "<CRLF>.<CRLF>", but that CRLF ends
        // the message's last line (RFC 5321 §4.1.1.4): put it back so the stored message is
        // byte-identical to what the client sent.
        var crlf = buffer.Length > 0 ? 2 : 0;
        var data = new byte[trace.Length + buffer.Length + crlf];
        trace.CopyTo(data, 0);
        buffer.CopyTo(data.AsSpan(trace.Length));
        if (crlf > 0) "\r\n"u8.CopyTo(data.AsSpan(data.Length - 2));
        MessageStructure structure;
        using (var ms = new MemoryStream(data, writable: false)) structure = MessageStructure.Parse(ms);

        var full = boxes.Values.Where(b => b.QuotaBytes > 0 && store.UsedBytes(b.ToUser()) + data.Length > b.QuotaBytes).ToList();
        if (full.Count > 0)
        {
            return full.Count == boxes.Count && full.All(b => data.Length > b.QuotaBytes)
                ? new SmtpResponse(SmtpReplyCode.SizeLimitExceeded, "5.2.2 Message exceeds the recipient's mailbox quota")
                : new SmtpResponse(SmtpReplyCode.InsufficientStorage, "4.2.2 Mailbox full, try again later");
        }

        var results = await Task.WhenAll(boxes.Values.Select(b => store.DeliverAsync(b.ToUser(), MailStore.Inbox, data, structure, ct)));
        if (results.Any(r => r is null))
            return new SmtpResponse(SmtpReplyCode.InsufficientStorage, "4.2.2 Mailbox full, try again later");
        return new SmtpResponse(SmtpReplyCode.Ok, $"2.0.0 Ok: delivered as {id}");
    }

    /// <summary>Return-Path (RFC 5321 §4.4) and Received (RFC 5321 §4.4, "with ESMTPS" per RFC 3848).</summary>
    private byte[] TraceHeaders(ISessionContext context, IMessageTransaction transaction, string id)
    {
        var state = SmtpSessionState.Of(context);
        var remote = SmtpSessionState.Remote(context);
        var with = context.Pipe is { IsSecure: true } ? "ESMTPS" : "ESMTP";
        var helo = Sanitize(state.Helo.Length > 0 ? state.Helo : "unknown");
        var forClause = transaction.To.Count == 1 ? $"\r\n\tfor <{transaction.To[0].AsAddress()}>" : "";
        var sb = new StringBuilder();
        sb.Append("Return-Path: <").Append(transaction.From.AsAddress()).Append(">\r\n");
        sb.Append("Received: from ").Append(helo).Append(" ([").Append(remote?.Address.ToString() ?? "unknown").Append("])\r\n\tby ")
          .Append(hostname).Append(" (Appliance) with ").Append(with).Append(" id ").Append(id).Append(forClause).Append(";\r\n\t")
          .Append(MimeKit.Utils.DateUtils.FormatDate(DateTimeOffset.Now)).Append("\r\n");
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    private static string Sanitize(string s)
    {
        var clean = new string(s.Where(c => c > ' ' && c < 127 && c != '(' && c != ')').Take(255).ToArray());
        return clean.Length == 0 ? "unknown" : clean;
    }
}

internal static class MailboxExtensions
{
    /// <summary>The address as local@host, "" for the null reverse path.</summary>
    public static string AsAddress(this SmtpServer.Mail.IMailbox mailbox) =>
        mailbox is null || string.IsNullOrEmpty(mailbox.User) ? "" : $"{mailbox.User}@{mailbox.Host}";
}
