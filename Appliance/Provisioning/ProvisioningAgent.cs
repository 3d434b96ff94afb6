using Appliance.Directory;
using Appliance.Store;

namespace Appliance.Provisioning;

// Implementation notes
// - The agent applies journal requests in sequence order, each exactly once: a request's
//   directory change and the new applied sequence commit in one directory.db transaction
//   (MailDirectory.MarkApplied refuses a sequence already applied).
// - The mailbox-store part of a request (deleting the mail of a purged mailbox) comes after that
//   commit and is idempotent; provisioning_state.store_seq records how far it got, so after a
//   crash the store parts between store_seq and applied_seq are done again. New mailboxes need
//   no store part: their folders are made at first login (MailStore.EnsureMailboxAsync).
// - A removed mailbox's mail is kept for the retention period; its address cannot be used
//   again until it is purged (a request too, made by the node holding the journal when the
//   period ends, or by an admin), so new mail never lands beside the old.
// - A request the directory refuses at apply time (it was validated when submitted, so this is
//   rare) is recorded as this node's last error and on the journal entry, and skipped: the same
//   refusal would happen on every node.
// - Only the store parts of partitions active on this node are done here; in a pair the node
//   holding the partition does its own. A message the peer hands over for an address whose old
//   mail is still kept here makes this node apply its pending requests first (the peer may have
//   applied the purge and the new mailbox already; ClusterManager.BeforeDelivery). While the
//   pair is degraded this node's copy may lack them: such a message would still land beside
//   the old mail and go with its purge.
// - One lock serialises applying and purging.

/// <summary>Applies the provisioning journal to this node's directory and mailbox store.</summary>
public sealed class ProvisioningAgent(MailDirectory directory, MailStore store, ProvisioningJournal journal)
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("provisioning");
    private readonly SemaphoreSlim _lock = new(1, 1);
    /// <summary>The last request applied here and its digest (the directory has the durable values).</summary>
    private sealed record Applied(long Seq, string? Digest);

    private volatile Applied _applied = LastApplied(directory);

    private static Applied LastApplied(MailDirectory directory)
    {
        var seq = directory.ReadProvisioningState().AppliedSeq;
        return new(seq, directory.AppliedSince(seq).FirstOrDefault(a => a.Seq == seq)?.Digest);
    }

    /// <summary>The last request applied here (for the heartbeat).</summary>
    public long AppliedSeq => _applied.Seq;

    /// <summary>
    /// Applies what arrives in this node's copy of the journal: requests made here are applied
    /// at once by their submitter; those made on the peer reach this copy by replication.
    /// </summary>
    public async Task RunAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1));
        try
        {
            while (await timer.WaitForNextTickAsync(ct))
            {
                try
                {
                    if (journal.LastSeq != AppliedSeq || Diverged()) await ApplyPendingAsync();
                }
                catch (Exception ex) when (ex is IOException or InvalidOperationException or Microsoft.Data.Sqlite.SqliteException or UnitUnavailableException or System.Text.Json.JsonException)
                {
                    // A copy being replaced by a full resync, a store that cannot write: next second.
                    Log.Warn("applying the provisioning journal: {0}", ex.Message);
                }
            }
        }
        catch (OperationCanceledException) { }
    }

    /// <summary>Applies every request not applied yet.</summary>
    public async Task ApplyPendingAsync()
    {
        await _lock.WaitAsync();
        try
        {
            if (Diverged()) Rewind();
            var state = directory.ReadProvisioningState();
            if (state.StoreSeq < state.AppliedSeq)
                foreach (var r in journal.ReadAfter(state.StoreSeq, (int)Math.Min(int.MaxValue, state.AppliedSeq - state.StoreSeq)))
                {
                    if (r.Seq > state.AppliedSeq) break;
                    await ApplyStoreAsync(r.Request);
                    directory.MarkStoreApplied(r.Seq);
                }
            while (true)
            {
                var batch = journal.ReadAfter(state.AppliedSeq, 100);
                if (batch.Count == 0) break;
                foreach (var r in batch)
                {
                    await ApplyAsync(r);
                    state.AppliedSeq = r.Seq;
                    _applied = new(r.Seq, r.Digest);
                }
            }
        }
        finally
        {
            _lock.Release();
        }
    }

    /// <summary>
    /// Whether the journal no longer holds, under the last sequence applied here, the request
    /// that was applied: this node's copy of the monitor unit was rolled back after a split
    /// brain (both nodes journaled while cut apart) and the survivor's history replaced it.
    /// </summary>
    private bool Diverged()
    {
        var applied = _applied;
        // A copy that does not reach that far yet (being rebuilt, resynced) is not evidence:
        // only another request under the same sequence is.
        return applied is { Seq: > 0, Digest: { } recorded } && journal.DigestAt(applied.Seq) is { } digest && digest != recorded;
    }

    /// <summary>
    /// After a rollback of the journal: goes back to the last request both histories share and
    /// applies the survivor's from there. What was applied here from the dropped history stays
    /// in this node's directory (it cannot be undone request by request); the alert lists it so
    /// an administrator can make those changes again, where they belong, or undo them.
    /// </summary>
    private void Rewind()
    {
        var applied = directory.AppliedSince(0);
        var common = applied.FirstOrDefault(a => journal.DigestAt(a.Seq) == a.Digest)?.Seq ?? 0;
        var dropped = applied.Where(a => a.Seq > common).OrderBy(a => a.Seq).Select(a => $"{a.Seq} ({a.Summary})").ToList();
        var error = $"ALERT the provisioning journal was rolled back (split brain): requests {string.Join(", ", dropped)} applied here are not in it any more; "
            + "their changes stay in this node's directory: make them again if they are wanted";
        Log.Error(error);
        directory.RewindProvisioning(common, error);
        _applied = LastApplied(directory);
    }

    private async Task ApplyAsync(JournalRequest r)
    {
        var (seq, request) = (r.Seq, r.Request);
        string? error = null;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using (var t = directory.BeginTransaction())
        {
            try
            {
                ApplyToDirectory(directory, t, request, errors: null);
                if (!directory.MarkApplied(t, seq, r.Digest, r.Summary, null)) return;
                t.Commit();
            }
            catch (DirectoryException ex)
            {
                error = ex.Message;
            }
        }
        if (error is not null)
        {
            using (var t = directory.BeginTransaction())
            {
                if (directory.MarkApplied(t, seq, r.Digest, r.Summary, error)) t.Commit();
            }
            Log.Warn("request {0} ({1}) refused here: {2}", seq, request.Summary(), error);
        }
        else
        {
            var directoryMs = clock.ElapsedMilliseconds;
            await ApplyStoreAsync(request);
            Log.Info("request {0} applied in {1} ms (directory {2} ms): {3}", seq, clock.ElapsedMilliseconds, directoryMs, request.Summary());
        }
        directory.MarkStoreApplied(seq);
    }

    /// <summary>
    /// The directory part of a request inside <paramref name="t"/>. With <paramref name="errors"/>
    /// (validation of a bulk request) a refused mailbox is recorded there by its index and the rest
    /// still checked; without, the first refusal throws.
    /// </summary>
    public static void ApplyToDirectory(MailDirectory directory, DirectoryTransaction t, ProvisioningRequest r, List<(int Index, string Reason)>? errors)
    {
        switch (r.Kind)
        {
            case RequestKinds.DomainAdd:
                var added = directory.AddDomain(t, Need(r.Domain));
                if (r.DkimSelector is not null) directory.SetDkimKey(t, added, r.DkimSelector, Need(r.DkimPrivateKey));
                break;
            case RequestKinds.DomainDkim: directory.SetDkimKey(t, Need(r.Domain), Need(r.DkimSelector), Need(r.DkimPrivateKey)); break;
            case RequestKinds.DomainRemove: directory.RemoveDomain(t, Need(r.Domain)); break;
            case RequestKinds.DomainQuota: directory.SetDomainQuota(t, Need(r.Domain), r.QuotaBytes ?? 0); break;
            case RequestKinds.MailboxAdd:
                r.Partition = directory.AddMailbox(t, Need(r.Address), Need(r.PasswordHash), r.QuotaBytes ?? 0, r.Partition, null).Partition;
                break;
            case RequestKinds.MailboxSet: directory.UpdateMailbox(t, Need(r.Address), r.PasswordHash, r.QuotaBytes, r.Enabled); break;
            case RequestKinds.MailboxSenderLists: directory.SetSenderLists(t, Need(r.Address), r.Allow ?? [], r.Block ?? []); break;
            case RequestKinds.MailboxRemove:
                r.Partition = directory.RemoveMailbox(t, Need(r.Address), r.RetainUntil is { } until ? DateTimeOffset.FromUnixTimeSeconds(until) : null).Partition;
                break;
            case RequestKinds.MailboxPurge:
                r.Partition = directory.ForgetDeleted(t, Need(r.Address)).Partition;
                break;
            case RequestKinds.MailboxBulk:
                var boxes = r.Mailboxes ?? [];
                for (var i = 0; i < boxes.Count; i++)
                {
                    try { boxes[i].Partition = directory.AddMailbox(t, boxes[i].Address, boxes[i].PasswordHash, boxes[i].QuotaBytes, boxes[i].Partition, null).Partition; }
                    catch (DirectoryException ex) when (errors is not null) { errors.Add((i, ex.Message)); }
                }
                break;
            case RequestKinds.AliasAdd: directory.AddAlias(t, Need(r.Source), r.Targets ?? []); break;
            case RequestKinds.AliasRemove: directory.RemoveAlias(t, Need(r.Source), r.Target); break;
            case RequestKinds.TokenCreate: directory.AddToken(t, Need(r.TokenId), Need(r.Name), Need(r.PasswordHash), Need(r.Scopes)); break;
            case RequestKinds.AdminPassword: directory.SetAdminPassword(t, Need(r.Name), Need(r.PasswordHash)); break;
            case RequestKinds.AdminTotp: directory.SetAdminTotp(t, Need(r.Name), r.TotpSecret); break;
            default: throw new DirectoryException($"unknown request kind '{r.Kind}'");
        }
    }

    private static string Need(string? value) => value ?? throw new DirectoryException("incomplete request");

    private async Task ApplyStoreAsync(ProvisioningRequest r)
    {
        var purged = r.Kind switch
        {
            RequestKinds.MailboxRemove when r.RetainUntil is null => true,
            RequestKinds.MailboxPurge => true,
            _ => false,
        };
        if (!purged || r.Address is null || r.Partition is null) return;
        // Each part (the mail, the webmail items) is deleted by the node where its unit is active.
        await store.DeleteMailboxAsync(new MailUser(r.Address.Trim().ToLowerInvariant(), r.Partition, 0));
    }

    /// <summary>The addresses of removed mailboxes whose retention period is over (purged by the node holding the journal).</summary>
    public IReadOnlyList<string> ExpiredRetentions(DateTimeOffset now) =>
        directory.DeletedMailboxes().Where(d => d.PurgeAfter <= now.ToUnixTimeSeconds()).Select(d => d.Address).ToList();
}
