using Appliance.Store;

namespace Appliance.Relay;

// What an attempt leaves behind: each recipient's new state, when the entry is tried again
// (exponential back-off, RFC 5321 §4.5.4.1), and the reports owed to the sender (RFC 3461/3464):
// a bounce for recipients failed for good (or still undelivered when the queue lifetime ends),
// a success notice where NOTIFY=SUCCESS asked for one, and one delay notice once a message has
// waited Relay:DelayWarningHours. A null sender (a bounce itself) is never sent a report.
public sealed partial class OutboundQueue
{
    /// <summary>
    /// Writes an attempt's outcome. The new state and the reports are worked out here, off the
    /// partition's writer loop, from the entry as the attempt began; only one attempt runs per
    /// entry, so what an admin may have changed meanwhile is all the write has to respect: a
    /// deleted entry stays deleted (outcome and reports dropped), a hold stays on.
    /// </summary>
    private async Task RecordAsync(Partition partition, QueueEntry entry, IReadOnlyList<RecipientOutcome> outcomes, byte[] data, IReadOnlyList<(QueueEntry, byte[])> forwarded)
    {
        var (next, reports) = Advance(entry, outcomes, data);
        reports.InsertRange(0, forwarded);
        var found = await partition.UpdateQueuedAsync(entry.Id, current => next is null ? null : next with { Held = current.Held }, reports);
        if (!found) Log.Info("relay id={0}: deleted during the attempt, outcome dropped", entry.Id);
        else if (next is null) Log.Info("relay id={0}: done, removed from the queue", entry.Id);
        if (reports.Count > 0) Kick();
    }

    /// <summary>The entry after an attempt (null once every recipient is done) and the reports it owes the sender.</summary>
    internal (QueueEntry? Next, List<(QueueEntry, byte[])> Reports) Advance(QueueEntry current, IReadOnlyList<RecipientOutcome> outcomes, byte[] data)
    {
        var now = Now;
        var reports = new List<(QueueEntry, byte[])>();
        var byAddress = outcomes.ToDictionary(o => o.Address, StringComparer.OrdinalIgnoreCase);
        var expired = now - current.Created >= (long)(_options.QueueLifetimeHours * 3_600_000);
        var failed = new List<(QueuedRecipient, RecipientOutcome)>();
        var delivered = new List<(QueuedRecipient, RecipientOutcome)>();
        var recipients = current.Recipients.Select(r =>
        {
            if (r.State != RecipientState.Queued || !byAddress.TryGetValue(r.Address, out var o)) return r;
            if (o.State == RecipientState.Queued && expired)
                o = o with { State = RecipientState.Failed, Status = "4.4.7", Reply = "delivery time expired; last answer: " + o.Reply };
            var updated = r with { State = o.State, Reply = o.Reply, Updated = now };
            if (o.State == RecipientState.Failed) failed.Add((updated, o));
            if (o.State == RecipientState.Sent && Wants(updated, "SUCCESS", byDefault: false)) delivered.Add((updated, o));
            return updated;
        }).ToArray();
        var pending = recipients.Where(r => r.State == RecipientState.Queued).ToList();
        var lastError = outcomes.Where(o => o.State == RecipientState.Queued).Select(o => o.Reply).LastOrDefault() ?? current.LastError;

        if (current.Sender.Length > 0)
        {
            var lines = failed.Where(f => Wants(f.Item1, "FAILURE", byDefault: true)).Select(f => Line(f.Item1, f.Item2, DsnAction.Failed, null))
                .Concat(delivered.Select(d => Line(d.Item1, d.Item2, DsnAction.Delivered, null))).ToList();
            if (lines.Count > 0) reports.Add(Report(current, lines, data));
        }
        var delayNotified = current.DelayNotified;
        var retryUntil = DateTimeOffset.FromUnixTimeMilliseconds(current.Created).AddHours(_options.QueueLifetimeHours);
        if (pending.Count > 0 && !delayNotified && now - current.Created >= (long)(_options.DelayWarningHours * 3_600_000))
        {
            delayNotified = true;
            var lines = pending.Where(p => Wants(p, "DELAY", byDefault: true))
                .Select(p => Line(p, byAddress.GetValueOrDefault(p.Address), DsnAction.Delayed, retryUntil)).ToList();
            if (current.Sender.Length > 0 && lines.Count > 0) reports.Add(Report(current, lines, data));
        }
        if (pending.Count == 0) return (null, reports);
        var attempts = current.Attempts + 1;
        var backoff = Math.Min(_options.RetryMaxSeconds, _options.RetryMinSeconds * Math.Pow(2, Math.Min(attempts - 1, 30)));
        return (current with
        {
            Recipients = recipients, Attempts = attempts, NextAttempt = now + (long)(backoff * 1000), DelayNotified = delayNotified, LastError = lastError,
        }, reports);
    }

    /// <summary>Whether the recipient's NOTIFY (RFC 3461 §4.1) asks for this kind of report; without NOTIFY, <paramref name="byDefault"/>.</summary>
    private static bool Wants(QueuedRecipient r, string kind, bool byDefault) =>
        string.IsNullOrEmpty(r.Notify) ? byDefault : r.Notify.Split(',', StringSplitOptions.TrimEntries).Contains(kind, StringComparer.OrdinalIgnoreCase);

    private static DsnRecipient Line(QueuedRecipient r, RecipientOutcome? o, DsnAction action, DateTimeOffset? retryUntil)
    {
        var reply = o?.Reply ?? r.Reply;
        return new(r.Address, r.Orcpt, action, o?.Status ?? (action == DsnAction.Delayed ? "4.0.0" : "5.0.0"), o?.RemoteMta,
            reply.Length == 0 ? null : reply, DateTimeOffset.FromUnixTimeMilliseconds(r.Updated), retryUntil);
    }

    /// <summary>A report to the sender, queued from the null sender (never reported on in turn).</summary>
    private (QueueEntry, byte[]) Report(QueueEntry about, IReadOnlyList<DsnRecipient> lines, byte[] data)
    {
        var bytes = DeliveryReports.Build(_hostname, about.EnvId, about.Sender, DateTimeOffset.FromUnixTimeMilliseconds(about.Created), lines, data,
            headersOnly: string.Equals(about.Ret, "HDRS", StringComparison.OrdinalIgnoreCase));
        var entry = NewEntry("", "", [new Recipient(about.Sender, Notify: "NEVER")], null, null, bytes.Length);
        Log.Info("relay id={0}: {1} report for <{2}> queued as {3}", about.Id,
            lines.Any(l => l.Action == DsnAction.Failed) ? "bounce" : lines.Any(l => l.Action == DsnAction.Delayed) ? "delay" : "delivery", about.Sender, entry.Id);
        return (entry, bytes);
    }
}
