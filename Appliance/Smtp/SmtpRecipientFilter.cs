using System.Net;
using Appliance.Directory;
using Appliance.Store;
using SmtpServer;
using SmtpServer.Mail;
using SmtpServer.Protocol;
using SmtpServer.Storage;

namespace Appliance.Smtp;

/// <summary>Which port a session came in on: the MX (anyone, for hosted domains) or submission (authenticated users, anywhere).</summary>
internal enum SmtpRole { Mx, Submission }

internal static class SmtpRoles
{
    /// <summary>The role as logs and metrics name it.</summary>
    public static string Name(this SmtpRole role) => role == SmtpRole.Mx ? "mx" : "submission";
}

/// <summary>
/// Policy at MAIL and RCPT time (RFC 5321 §4.1.1.2–3). Hosted recipients must exist (550 5.1.1
/// otherwise, so nothing is accepted that would later bounce); disabled mailboxes get 550
/// 5.2.1, a full mailbox 452 4.2.2, a declared SIZE over the whole quota 552 5.2.2, too many
/// recipients 452 4.5.3.
/// Never an open relay: a recipient outside the hosted domains is accepted only from an
/// authenticated user on the submission port or, on the MX, from a network the administrator
/// listed in Relay:TrustedNetworks (none by default, loopback included); anyone else gets 550
/// 5.7.1 whatever the address looks like. The decision is made on the domain the engine parsed
/// (the part after the last "@", source routes dropped as RFC 5321 §3.6.1 allows): a "%" hack
/// or a quoted local part with an "@" in it stays a local part of a hosted domain (and is
/// unknown there), a trailing dot or an address literal is not a hosted domain.
/// Forwarding is the one exception, and an explicit one: an alias the administrator pointed
/// outside has its outside targets queued (SmtpSessionState.Outbound), whoever sends.
/// On submission the envelope sender must be the user's own address or an alias that delivers
/// to them (RFC 6409 §6.1), and the per-user hourly limits apply.
/// On the MX, for clients outside the trusted networks, the spam defences that need no message
/// (Filtering/SpamFilter.cs): blocked senders at MAIL, DNS block lists and greylisting at RCPT.
/// </summary>
internal sealed class SmtpRecipientFilter(MailDirectory directory, MailStore store, SmtpRole role, long maxMessageSize, int maxRecipients,
    IReadOnlyList<IPNetwork> trustedNetworks, SubmissionLimits? limits, Monitoring.NodeCounters counters, Filtering.SpamFilter? spam = null) : IMailboxFilter
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("smtp");

    public Task<bool> CanAcceptFromAsync(ISessionContext context, IMailbox from, int size, CancellationToken cancellationToken)
    {
        if (size > maxMessageSize)
            throw Reject(context, SmtpReplyCode.SizeLimitExceeded, $"5.3.4 Message size exceeds fixed maximum message size ({maxMessageSize} bytes)", from, null);
        var state = SmtpSessionState.Of(context);
        if (role == SmtpRole.Submission)
        {
            var user = state.User ?? throw Reject(context, SmtpReplyCode.AuthenticationRequired, "5.7.0 Authentication required", from, null);
            var sender = from.AsAddress();
            if (sender.Length == 0 || !directory.MaySendAs(user.Address, sender))
                throw Reject(context, (SmtpReplyCode)553, $"5.7.1 Sender address <{sender}> is not yours to send from (logged in as {user.Address})", from, null);
            if (limits!.MessageRefusal(user.Address) is { } refusal)
                throw Reject(context, (SmtpReplyCode)450, refusal, from, null);
        }
        state.BeginTransaction(size);
        state.Trusted = role == SmtpRole.Mx && IsTrusted(context);
        if (spam is not null && !state.Trusted && spam.IsBlockedSender(from.AsAddress()))
            throw Reject(context, SmtpReplyCode.MailboxUnavailable, $"5.7.1 Sender <{from.AsAddress()}> is blocked here", from, null);
        return Task.FromResult(true);
    }

    public async Task<bool> CanDeliverToAsync(ISessionContext context, IMailbox to, IMailbox from, CancellationToken cancellationToken)
    {
        var state = SmtpSessionState.Of(context);
        var address = to.AsAddress();
        if (state.Recipients >= maxRecipients)
            throw Reject(context, SmtpReplyCode.InsufficientStorage, "4.5.3 Too many recipients", from, address);
        var host = to.Host ?? "";
        if (host.Length > 0 && !host.StartsWith('[') && directory.DomainExists(host.ToLowerInvariant()))
        {
            var (boxes, forwards) = CheckHosted(context, state, address, from);
            if (spam is not null && !state.Trusted) await SpamChecksAsync(context, state, address, from, cancellationToken);
            foreach (var box in boxes)
            {
                state.Mailboxes.TryAdd(box.Address, box);
                if (!state.Addressed.TryGetValue(box.Address, out var addressed)) state.Addressed[box.Address] = addressed = [];
                addressed.Add(address);
            }
            // An alias that forwards outside (set by the administrator): those copies are queued.
            foreach (var forward in forwards)
                if (!state.Outbound.Contains(forward, StringComparer.OrdinalIgnoreCase)) state.Outbound.Add(forward);
        }
        else if (role == SmtpRole.Submission || IsTrusted(context))
        {
            if (host.Length == 0 || host.StartsWith('[') || string.IsNullOrEmpty(to.User))
                throw Reject(context, SmtpReplyCode.MailboxUnavailable, "5.1.3 Address literals and empty domains are not accepted here", from, address);
            state.Outbound.Add(address);
        }
        else
        {
            throw Reject(context, SmtpReplyCode.MailboxUnavailable, "5.7.1 Relay access denied", from, address);
        }
        if (state.User is { } user && limits!.RecipientRefusal(user.Address, state.Recipients + 1) is { } refusal)
        {
            state.Outbound.Remove(address);
            throw Reject(context, (SmtpReplyCode)450, refusal, from, address);
        }
        state.Recipients++;
        return true;
    }

    /// <summary>
    /// Refuses a client on a DNS block list that refuses (554 5.7.1, looked up once per
    /// session) and defers a first-time triplet (450 4.7.1, greylisting), unless the sender
    /// is allowed or the client is on a DNS allow list.
    /// </summary>
    private async Task SpamChecksAsync(ISessionContext context, SmtpSessionState state, string address, IMailbox from, CancellationToken ct)
    {
        if (SmtpSessionState.Remote(context)?.Address is not { } ip) return;
        state.Lists ??= await spam!.ListsAsync(ip, ct);
        if (state.Lists.Refusing is { } list)
            throw Reject(context, SmtpReplyCode.TransactionFailed, $"5.7.1 Service unavailable; client [{ip}] blocked using {list.Zone}", from, address);
        if (spam!.Greylist is not { } greylist || state.Lists.Allowed.Count > 0 || spam.IsAllowedSender(from.AsAddress())) return;
        var decision = greylist.Check(ip, from.AsAddress(), address);
        if (!state.Verdicts.Contains(decision.Verdict)) state.Verdicts.Add(decision.Verdict);
        if (!decision.Pass)
            throw Reject(context, (SmtpReplyCode)450, $"4.7.1 Greylisted: this server is new to us, please try again in {Math.Max(decision.RetryAfterSeconds, 1)} seconds", from, address);
    }

    /// <summary>The mailboxes and outside forwards a hosted recipient resolves to, once it passes every check.</summary>
    private (IReadOnlyCollection<MailboxRecord> Boxes, IReadOnlyCollection<string> Forwards) CheckHosted(ISessionContext context, SmtpSessionState state, string address, IMailbox from)
    {
        var route = directory.Route(address);
        var boxes = route.Mailboxes;
        if (route.IsEmpty)
        {
            // A disabled mailbox is known but must not receive: a permanent, explicit error.
            if (directory.FindMailbox(address.ToLowerInvariant()) is { Enabled: false })
                throw Reject(context, SmtpReplyCode.MailboxUnavailable, "5.2.1 Mailbox disabled, not accepting messages", from, address);
            throw Reject(context, SmtpReplyCode.MailboxUnavailable, "5.1.1 User unknown in local recipient table", from, address);
        }
        // A declared size over the whole quota can never fit: permanent, like the same case at DATA.
        if (state.DeclaredSize > 0 && boxes.Count > 0 && route.Forwards.Count == 0 && boxes.All(b => b.QuotaBytes > 0 && state.DeclaredSize > b.QuotaBytes))
            throw Reject(context, SmtpReplyCode.SizeLimitExceeded, "5.2.2 Message exceeds the recipient's mailbox quota", from, address);
        foreach (var box in boxes)
        {
            if (!store.CanDeliver(box.ToUser()))
                throw Reject(context, (SmtpReplyCode)451, "4.3.2 Mailbox temporarily unavailable on this server, try again later", from, address);
            if (box.QuotaBytes > 0 && store.UsedBytes(box.ToUser()) + Math.Max(state.DeclaredSize, 0) > box.QuotaBytes)
                throw Reject(context, SmtpReplyCode.InsufficientStorage, "4.2.2 Mailbox full", from, address);
        }
        return (boxes, route.Forwards);
    }

    private bool IsTrusted(ISessionContext context)
    {
        if (trustedNetworks.Count == 0 || SmtpSessionState.Remote(context)?.Address is not { } ip) return false;
        if (ip.IsIPv4MappedToIPv6) ip = ip.MapToIPv4();
        return trustedNetworks.Any(n => n.Contains(ip));
    }

    private SmtpResponseException Reject(ISessionContext context, SmtpReplyCode code, string text, IMailbox from, string? rcpt)
    {
        counters.SmtpReply(role.Name(), (int)code, text);
        Log.Info("smtp reject {0} from=<{1}> rcpt=<{2}> {3} {4}", SmtpSessionState.Of(context).Describe(context), from.AsAddress(), rcpt, (int)code, text);
        return new SmtpResponseException(new SmtpResponse(code, text));
    }
}
