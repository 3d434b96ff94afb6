using System.Collections.Concurrent;
using Appliance.Directory;
using Appliance.Filtering.Sieve;
using Appliance.Relay;
using Appliance.Store;

namespace Appliance.Filtering;

// Implementation notes: final delivery of one hosted recipient's copy under their active Sieve
// script (RFC 5228; the script is managed over ManageSieve, RFC 5804). The script is parsed once
// per content and cached; it runs on the copy as stored (our Received, Authentication-Results
// and X-Spam fields included, so a rule can test them). Its actions are carried out in order:
// - keep: the folder delivery would have chosen (INBOX, or Junk when the spam filter said so);
//   fileinto: that folder (created first with :create; a missing one falls back to INBOX, as
//   RFC 5228 §4.1 allows, and says so in the log). imap4flags set the new message's flags.
// - redirect: the message is queued for the address, from the original envelope sender.
// - reject/ereject: returned to the caller, which refuses at SMTP when it can (one recipient)
//   or sends the sender a bounce (RFC 5429 §2.1).
// - vacation: replied to once per sender per period (:days, RFC 5230 §4.1), the claim
//   journalled in the mailbox's partition, from the null sender (§4.6), never to lists, bulk or
//   automatic mail (SieveVacation.WhyNotRespond).
// A script that cannot be run (an error) keeps the message: nothing is ever lost to a rule.

/// <summary>What became of one recipient's copy: stored (or discarded), over quota, or refused by a rule (with its reason).</summary>
public sealed record LocalOutcome(bool OverQuota, string? Rejected);

public sealed class SieveDelivery(MailStore store, OutboundQueue? queue, string hostname)
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("sieve");
    private readonly ConcurrentDictionary<string, (string Content, SieveScript? Script, string? Error)> _scripts = new();

    /// <param name="user">The recipient's mailbox.</param>
    /// <param name="envelopeFrom">MAIL FROM ("" for the null sender).</param>
    /// <param name="envelopeTo">The RCPT addresses that led to this mailbox (its own, or aliases).</param>
    /// <param name="copy">The copy as it would be stored (Return-Path first).</param>
    /// <param name="returnPathLength">Bytes of the Return-Path field at its start (left out of what is sent on).</param>
    /// <param name="folder">Where the message goes without a rule.</param>
    public async Task<LocalOutcome> DeliverAsync(MailUser user, string envelopeFrom, IReadOnlyList<string> envelopeTo, byte[] copy, int returnPathLength,
        MessageStructure structure, string folder, List<string> verdicts, CancellationToken ct)
    {
        var active = store.GetActiveSieveScript(user);
        if (active is null) return await StoreAsync(user, folder, copy, structure, [], false, verdicts, ct);
        var script = Parsed(user.Address, active.Content);
        if (script.Script is null)
        {
            verdicts.Add($"sieve=error({active.Name}: {script.Error})");
            return await StoreAsync(user, folder, copy, structure, [], false, verdicts, ct);
        }
        // Read from this node's copy (a replica, when the partition is active on the other node): no writes here.
        var folders = (await store.For(user).ListFolderInfosAsync(user.Address, ct)).Select(f => f.Name).ToHashSet(StringComparer.Ordinal);
        var context = new SieveContext(envelopeFrom, envelopeTo.Count > 0 ? envelopeTo[0] : user.Address, copy)
        {
            UserAddresses = [user.Address, .. envelopeTo.Where(a => !a.Equals(user.Address, StringComparison.OrdinalIgnoreCase))],
            ExistingFolders = folders,
        };
        var outcome = SieveInterpreter.Evaluate(script.Script, context);
        if (outcome.Error is { } error)
        {
            verdicts.Add($"sieve=error({error})");
            Log.Warn("sieve script {0} of {1} failed, message kept: {2}", active.Name, user.Address, error);
        }
        LocalOutcome? stored = null;
        string? rejected = null;
        var done = new List<string>();
        // Redirects first: one that cannot be queued fails the delivery (451, retried) before
        // anything is stored; vacation last, once the message is in the mailbox.
        foreach (var action in outcome.Actions.OrderBy(a => a switch { RedirectAction => 0, VacationAction => 2, _ => 1 }))
        {
            switch (action)
            {
                case KeepAction keep:
                    stored = Merge(stored, await StoreAsync(user, folder, copy, structure, keep.Flags, false, verdicts, ct));
                    done.Add("keep");
                    break;
                case FileIntoAction into:
                    stored = Merge(stored, await StoreAsync(user, into.Folder, copy, structure, into.Flags, into.Create, verdicts, ct));
                    done.Add($"fileinto({into.Folder})");
                    break;
                case RedirectAction redirect:
                    await RedirectAsync(user, envelopeFrom, redirect.Address, copy.AsMemory(returnPathLength).ToArray());
                    done.Add($"redirect({redirect.Address})");
                    break;
                case RejectAction reject:
                    rejected = reject.Reason;
                    done.Add("reject");
                    break;
                case DiscardAction:
                    done.Add("discard");
                    break;
                case VacationAction vacation:
                    done.Add(await VacationAsync(user, context, vacation, ct));
                    break;
            }
        }
        verdicts.Add($"sieve={string.Join(',', done)}");
        return stored ?? new LocalOutcome(false, rejected);
    }

    private static LocalOutcome Merge(LocalOutcome? before, LocalOutcome now) => before is { OverQuota: true } ? before : now;

    private (string Content, SieveScript? Script, string? Error) Parsed(string account, string content)
    {
        if (_scripts.TryGetValue(account, out var cached) && cached.Content == content) return cached;
        (string, SieveScript?, string?) parsed;
        // Stored means accepted under the limits of its day: no size limit again here (the
        // parser's 64 KiB default would refuse a script ManageSieve:MaxScriptBytes allowed).
        try { parsed = (content, SieveScript.Parse(content, int.MaxValue), null); }
        catch (SieveException ex) { parsed = (content, null, ex.Message); }
        _scripts[account] = parsed;
        return parsed;
    }

    private async Task<LocalOutcome> StoreAsync(MailUser user, string folder, byte[] copy, MessageStructure structure, IReadOnlyList<string> flags, bool create,
        List<string> verdicts, CancellationToken ct)
    {
        var state = DeliveryStateOf(flags, create);
        long? uid;
        if (folder == MailStore.Inbox) uid = await store.DeliverAsync(user, folder, copy, structure, state, ct);
        else
        {
            try { uid = await store.DeliverAsync(user, folder, copy, structure, state, ct); }
            catch (FolderNotFoundException)
            {
                verdicts.Add($"folder={folder}(missing,INBOX)");
                uid = await store.DeliverAsync(user, MailStore.Inbox, copy, structure, state, ct);
            }
        }
        return new LocalOutcome(uid is null, null);
    }

    /// <summary>imap4flags' flag names as the store keeps them: system flags, and keywords that are IMAP atoms.</summary>
    internal static DeliveryState DeliveryStateOf(IReadOnlyList<string> flags, bool create)
    {
        var system = MessageFlags.None;
        var keywords = new List<string>();
        foreach (var flag in flags)
        {
            switch (flag.ToLowerInvariant())
            {
                case "\\seen": system |= MessageFlags.Seen; break;
                case "\\answered": system |= MessageFlags.Answered; break;
                case "\\flagged": system |= MessageFlags.Flagged; break;
                case "\\deleted": system |= MessageFlags.Deleted; break;
                case "\\draft": system |= MessageFlags.Draft; break;
                default:
                    if (flag.Length is > 0 and <= 64 && !flag.StartsWith('\\') && flag.All(c => c > ' ' && c < 127 && !"(){%*\"\\]".Contains(c))
                        && !keywords.Contains(flag, StringComparer.OrdinalIgnoreCase))
                        keywords.Add(flag);
                    break;
            }
        }
        return new DeliveryState(system, [.. keywords], create);
    }

    private async Task RedirectAsync(MailUser user, string envelopeFrom, string address, byte[] message)
    {
        if (queue is null) throw new UnitUnavailableException("no outbound queue to redirect through");
        await queue.EnqueueAsync(user.Partition, envelopeFrom, user.Address, [new OutboundQueue.Recipient(address)], null, null, message);
    }

    private async Task<string> VacationAsync(MailUser user, SieveContext context, VacationAction vacation, CancellationToken ct)
    {
        if (SieveVacation.WhyNotRespond(context, vacation) is { } why) return $"vacation(not sent: {why})";
        if (queue is null) return "vacation(not sent: no queue)";
        var now = DateTimeOffset.UtcNow;
        var sender = context.EnvelopeFrom.ToLowerInvariant();
        try
        {
            if (!await store.ClaimVacationAsync(user, vacation.Handle, sender, now, now + vacation.Period, ct))
                return "vacation(already replied)";
        }
        catch (Exception ex) when (ex is UnitUnavailableException or IOException)
        {
            // The message itself is stored; a reply we cannot account for is not sent (never twice).
            Log.Warn("vacation reply of {0} to {1} not sent: {2}", user.Address, sender, ex.Message);
            return "vacation(not sent: the mailbox's unit is unavailable)";
        }
        var reply = SieveVacation.BuildReply(context, vacation, hostname, now);
        // RFC 5230 §4.6 / RFC 3834 §3.3: from the null sender, so nothing bounces back or answers it.
        await queue.EnqueueAsync(user.Partition, "", user.Address, [new OutboundQueue.Recipient(context.EnvelopeFrom)], null, null, reply);
        return "vacation(sent)";
    }
}
