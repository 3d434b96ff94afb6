using Appliance.Directory;
using Appliance.Store;
using SmtpServer;
using SmtpOptions = Appliance.Hosting.SmtpOptions;
using SmtpServer.Mail;
using SmtpServer.Protocol;
using SmtpServer.Storage;

namespace Appliance.Smtp;

/// <summary>
/// MX policy at MAIL and RCPT time (RFC 5321 §4.1.1.2–3): only existing local recipients are
/// accepted (550 5.1.1 otherwise, so nothing is accepted that would later bounce), disabled
/// mailboxes get 550 5.2.1, a full mailbox 452 4.2.2, a declared SIZE over the whole quota 552
/// 5.2.2, too many recipients 452 4.5.3.
/// </summary>
internal sealed class SmtpRecipientFilter(MailDirectory directory, MailStore store, SmtpOptions options) : IMailboxFilter
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("smtp");

    public Task<bool> CanAcceptFromAsync(ISessionContext context, IMailbox from, int size, CancellationToken cancellationToken)
    {
        if (size > options.MaxMessageSize)
            throw Reject(context, SmtpReplyCode.SizeLimitExceeded, $"5.3.4 Message size exceeds fixed maximum message size ({options.MaxMessageSize} bytes)", from, null);
        var state = SmtpSessionState.Of(context);
        state.DeclaredSize = size;
        state.Recipients = 0;
        state.Mailboxes.Clear();
        return Task.FromResult(true);
    }

    public Task<bool> CanDeliverToAsync(ISessionContext context, IMailbox to, IMailbox from, CancellationToken cancellationToken)
    {
        var state = SmtpSessionState.Of(context);
        var address = to.AsAddress();
        if (state.Recipients >= options.MaxRecipients)
            throw Reject(context, SmtpReplyCode.InsufficientStorage, "4.5.3 Too many recipients", from, address);
        if (string.IsNullOrEmpty(to.Host) || !directory.DomainExists(to.Host.ToLowerInvariant()))
            throw Reject(context, SmtpReplyCode.MailboxUnavailable, "5.7.1 Relay access denied", from, address);
        var boxes = directory.Resolve(address);
        if (boxes.Count == 0)
        {
            // A disabled mailbox is known but must not receive: a permanent, explicit error.
            if (directory.FindMailbox(address.ToLowerInvariant()) is { Enabled: false })
                throw Reject(context, SmtpReplyCode.MailboxUnavailable, "5.2.1 Mailbox disabled, not accepting messages", from, address);
            throw Reject(context, SmtpReplyCode.MailboxUnavailable, "5.1.1 User unknown in local recipient table", from, address);
        }
        // A declared size over the whole quota can never fit: permanent, like the same case at DATA.
        if (state.DeclaredSize > 0 && boxes.All(b => b.QuotaBytes > 0 && state.DeclaredSize > b.QuotaBytes))
            throw Reject(context, SmtpReplyCode.SizeLimitExceeded, "5.2.2 Message exceeds the recipient's mailbox quota", from, address);
        foreach (var box in boxes)
        {
            if (!store.CanDeliver(box.ToUser()))
                throw Reject(context, (SmtpReplyCode)451, "4.3.2 Mailbox temporarily unavailable on this server, try again later", from, address);
            if (box.QuotaBytes > 0 && store.UsedBytes(box.ToUser()) + Math.Max(state.DeclaredSize, 0) > box.QuotaBytes)
                throw Reject(context, SmtpReplyCode.InsufficientStorage, "4.2.2 Mailbox full", from, address);
        }
        state.Recipients++;
        foreach (var box in boxes) state.Mailboxes.TryAdd(box.Address, box);
        return Task.FromResult(true);
    }

    private static SmtpResponseException Reject(ISessionContext context, SmtpReplyCode code, string text, IMailbox from, string? rcpt)
    {
        Log.Info("smtp reject {0} from=<{1}> rcpt=<{2}> {3} {4}", SmtpSessionState.Of(context).Describe(context), from.AsAddress(), rcpt, (int)code, text);
        return new SmtpResponseException(new SmtpResponse(code, text));
    }
}
