using Dapper;
using Microsoft.Data.Sqlite;

namespace Appliance.Directory;

// Implementation notes
// - Every change takes a DirectoryTransaction the caller owns: the one-change methods of
//   MailDirectory.cs wrap one each, the provisioning agent applies a whole journal request (a
//   bulk of thousands of mailboxes) and records the request's sequence number in the same
//   transaction, so a request is applied exactly once even across a crash. A validation is the
//   same change rolled back.
// - A refusal is a DirectoryException; the transaction is then rolled back by its owner.

/// <summary>An open write transaction on directory.db.</summary>
public sealed class DirectoryTransaction(SqliteConnection connection, SqliteTransaction transaction) : IDisposable
{
    public SqliteConnection Connection { get; } = connection;
    public SqliteTransaction Transaction { get; } = transaction;
    /// <summary>Mailboxes per partition, counted once per transaction for placing new mailboxes.</summary>
    internal Dictionary<string, long>? PartitionCounts { get; set; }
    private List<Action>? _afterCommit;

    /// <summary>Runs <paramref name="action"/> once the transaction has committed (not when it is rolled back).</summary>
    internal void AfterCommit(Action action) => (_afterCommit ??= []).Add(action);

    public void Commit()
    {
        Transaction.Commit();
        foreach (var action in _afterCommit ?? []) action();
    }

    public void Dispose()
    {
        Transaction.Dispose();
        Connection.Dispose();
    }
}

public sealed partial class MailDirectory
{
    private const string SelectDeleted = "SELECT address AS Address, partition AS Partition, deleted AS Deleted, purge_after AS PurgeAfter FROM deleted_mailboxes";

    /// <summary>Mailbox partitions new mailboxes are spread over.</summary>
    public IReadOnlyList<string> Partitions => _partitions;

    public DirectoryTransaction BeginTransaction()
    {
        var c = Open();
        // Microsoft.Data.Sqlite begins IMMEDIATE: the write lock is taken now, so a
        // read-then-write never fails half-way as busy.
        return new DirectoryTransaction(c, c.BeginTransaction());
    }

    private T InTransaction<T>(Func<DirectoryTransaction, T> change)
    {
        using var c = Open();
        using var tx = c.BeginTransaction();
        var t = new DirectoryTransaction(c, tx);
        var result = change(t);
        t.Commit();
        return result;
    }

    public string AddDomain(DirectoryTransaction t, string name)
    {
        var domain = Addresses.NormalizeDomain(name, out var reason) ?? throw new DirectoryException(reason);
        if (t.Connection.Execute("INSERT OR IGNORE INTO domains(name, created) VALUES (@domain, @now)", new { domain, now = Now() }, t.Transaction) == 0)
            throw new DirectoryException($"domain {domain} already exists", DirectoryError.Conflict);
        return domain;
    }

    public string RemoveDomain(DirectoryTransaction t, string name)
    {
        var domain = Addresses.NormalizeDomain(name, out var reason) ?? throw new DirectoryException(reason);
        var (c, tx) = (t.Connection, t.Transaction);
        if (c.ExecuteScalar<long>("SELECT count(*) FROM domains WHERE name = @domain", new { domain }, tx) == 0)
            throw new DirectoryException($"no such domain {domain}", DirectoryError.NotFound);
        var boxes = c.ExecuteScalar<long>("SELECT count(*) FROM mailboxes WHERE domain = @domain", new { domain }, tx);
        if (boxes > 0) throw new DirectoryException($"domain {domain} still has {boxes} mailbox(es); remove them first", DirectoryError.Conflict);
        c.Execute("DELETE FROM aliases WHERE domain = @domain", new { domain }, tx);
        c.Execute("DELETE FROM domains WHERE name = @domain", new { domain }, tx);
        t.AfterCommit(ForgetDkimKeys); // its DKIM key goes with it
        return domain;
    }

    /// <summary>Sets the quota of every mailbox of a domain; returns how many there are.</summary>
    public long SetDomainQuota(DirectoryTransaction t, string name, long quotaBytes)
    {
        var domain = Addresses.NormalizeDomain(name, out var reason) ?? throw new DirectoryException(reason);
        if (quotaBytes < 0) throw new DirectoryException("quota must be zero (unlimited) or positive");
        if (t.Connection.ExecuteScalar<long>("SELECT count(*) FROM domains WHERE name = @domain", new { domain }, t.Transaction) == 0)
            throw new DirectoryException($"no such domain {domain}", DirectoryError.NotFound);
        return t.Connection.Execute("UPDATE mailboxes SET quota_bytes = @quotaBytes WHERE domain = @domain", new { quotaBytes, domain }, t.Transaction);
    }

    /// <summary>
    /// Records a new mailbox with an already hashed password, on <paramref name="partition"/> when
    /// given (the journal carries the placement chosen when the request was made), else on the
    /// least used partition.
    /// </summary>
    public MailboxRecord AddMailbox(DirectoryTransaction t, string address, string passwordHash, long quotaBytes, string? partition, DateTimeOffset? now)
    {
        var a = Addresses.NormalizeAddress(address, out var reason) ?? throw new DirectoryException(reason);
        if (!PasswordHasher.IsKnownScheme(passwordHash)) throw new DirectoryException(UnsupportedHash);
        if (quotaBytes < 0) throw new DirectoryException("quota must be zero (unlimited) or positive");
        var domain = Addresses.DomainOf(a);
        var (c, tx) = (t.Connection, t.Transaction);
        if (c.ExecuteScalar<long>("SELECT count(*) FROM domains WHERE name = @domain", new { domain }, tx) == 0)
            throw new DirectoryException($"unknown domain {domain}; add it first", DirectoryError.NotFound);
        if (c.ExecuteScalar<long>("SELECT count(*) FROM mailboxes WHERE address = @a", new { a }, tx) > 0)
            throw new DirectoryException($"mailbox {a} already exists", DirectoryError.Conflict);
        if (c.ExecuteScalar<long>("SELECT count(*) FROM aliases WHERE source = @a", new { a }, tx) > 0)
            throw new DirectoryException($"{a} is an alias; remove the alias first", DirectoryError.Conflict);
        if (c.QuerySingleOrDefault<DeletedMailbox>(SelectDeleted + " WHERE address = @a", new { a }, tx) is { } old)
            throw new DirectoryException($"{a} was removed and its mail is kept until {DateTimeOffset.FromUnixTimeSeconds(old.PurgeAfter):yyyy-MM-dd}; purge it first (appliance mailbox purge {a})", DirectoryError.Conflict);
        var counts = t.PartitionCounts ??= c.Query<PartitionCount>("SELECT partition AS Partition, count(*) AS Count FROM mailboxes GROUP BY partition", transaction: tx)
            .ToDictionary(p => p.Partition, p => p.Count);
        if (partition is not null && !_partitions.Contains(partition)) throw new DirectoryException($"unknown partition {partition}");
        partition ??= _partitions.OrderBy(p => counts.GetValueOrDefault(p)).ThenBy(p => p, StringComparer.Ordinal).First();
        counts[partition] = counts.GetValueOrDefault(partition) + 1;
        var record = new MailboxRecord { Address = a, Domain = domain, PasswordHash = passwordHash, QuotaBytes = quotaBytes, Partition = partition, Enabled = true };
        c.Execute("INSERT INTO mailboxes(address, domain, password_hash, quota_bytes, partition, enabled, created) VALUES (@Address, @Domain, @PasswordHash, @QuotaBytes, @Partition, 1, @now)",
            new { record.Address, record.Domain, record.PasswordHash, record.QuotaBytes, record.Partition, now = (now ?? DateTimeOffset.UtcNow).ToUnixTimeSeconds() }, tx);
        return record;
    }

    /// <summary>Changes a mailbox; <paramref name="passwordHash"/> is already hashed. Returns the normalized address.</summary>
    public string UpdateMailbox(DirectoryTransaction t, string address, string? passwordHash, long? quotaBytes, bool? enabled)
    {
        var a = Addresses.NormalizeAddress(address, out var reason) ?? throw new DirectoryException(reason);
        if (quotaBytes < 0) throw new DirectoryException("quota must be zero (unlimited) or positive");
        if (passwordHash is not null && !PasswordHasher.IsKnownScheme(passwordHash)) throw new DirectoryException(UnsupportedHash);
        var (c, tx) = (t.Connection, t.Transaction);
        if (c.ExecuteScalar<long>("SELECT count(*) FROM mailboxes WHERE address = @a", new { a }, tx) == 0)
            throw new DirectoryException($"no such mailbox {a}", DirectoryError.NotFound);
        if (passwordHash is not null) c.Execute("UPDATE mailboxes SET password_hash = @passwordHash WHERE address = @a", new { passwordHash, a }, tx);
        if (quotaBytes is { } q) c.Execute("UPDATE mailboxes SET quota_bytes = @q WHERE address = @a", new { q, a }, tx);
        if (enabled is { } e) c.Execute("UPDATE mailboxes SET enabled = @e WHERE address = @a", new { e, a }, tx);
        return a;
    }

    /// <summary>Most entries a mailbox's allow and block lists may hold together.</summary>
    public const int MaxSenderListEntries = 1000;

    /// <summary>
    /// Replaces a mailbox's own sender lists (its spam filter's allow and block lists). An entry is
    /// "user@domain", "@domain" or "domain" (and its subdomains), kept lower-cased; one on both
    /// lists, or not of these forms, is refused.
    /// </summary>
    public string SetSenderLists(DirectoryTransaction t, string address, IReadOnlyList<string> allow, IReadOnlyList<string> block)
    {
        var a = Addresses.NormalizeAddress(address, out var reason) ?? throw new DirectoryException(reason);
        var (c, tx) = (t.Connection, t.Transaction);
        if (c.ExecuteScalar<long>("SELECT count(*) FROM mailboxes WHERE address = @a", new { a }, tx) == 0)
            throw new DirectoryException($"no such mailbox {a}", DirectoryError.NotFound);
        var allowed = allow.Select(SenderEntry).Distinct().ToList();
        var blocked = block.Select(SenderEntry).Distinct().ToList();
        if (allowed.Count + blocked.Count > MaxSenderListEntries) throw new DirectoryException($"at most {MaxSenderListEntries} entries in the sender lists");
        if (allowed.Intersect(blocked).FirstOrDefault() is { } both) throw new DirectoryException($"{both} is on both the allow and the block list");
        c.Execute("DELETE FROM sender_lists WHERE mailbox = @a", new { a }, tx);
        foreach (var (entries, isBlock) in new[] { (allowed, 0L), (blocked, 1L) })
            foreach (var entry in entries)
                c.Execute("INSERT INTO sender_lists(mailbox, entry, block) VALUES (@a, @entry, @isBlock)", new { a, entry, isBlock }, tx);
        return a;
    }

    /// <summary>One sender list entry, checked and lower-cased.</summary>
    private static string SenderEntry(string raw)
    {
        var e = raw.Trim().ToLowerInvariant();
        var at = e.LastIndexOf('@');
        var domain = at < 0 ? e : e[(at + 1)..];
        var ok = e.Length is > 0 and <= 254 && domain.Length > 0 && !domain.StartsWith('.') && !domain.EndsWith('.')
            && domain.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '.' or '-' || ch > 127)
            && (at <= 0 || Addresses.NormalizeAddress(e, out _) is not null);
        return ok ? e : throw new DirectoryException($"\"{raw}\" is not an address, @domain or domain");
    }

    /// <summary>
    /// Removes a mailbox (and alias targets pointing at it). With <paramref name="retainUntil"/>
    /// its mail stays in its partition until then (<see cref="DeletedMailboxes"/>), else the
    /// caller deletes the mail now.
    /// </summary>
    public MailboxRecord RemoveMailbox(DirectoryTransaction t, string address, DateTimeOffset? retainUntil)
    {
        var a = Addresses.NormalizeAddress(address, out var reason) ?? throw new DirectoryException(reason);
        var (c, tx) = (t.Connection, t.Transaction);
        var record = c.QuerySingleOrDefault<MailboxRecord>(SelectMailbox, new { address = a }, tx)
            ?? throw new DirectoryException($"no such mailbox {a}", DirectoryError.NotFound);
        c.Execute("DELETE FROM aliases WHERE target = @a", new { a }, tx);
        c.Execute("DELETE FROM sender_lists WHERE mailbox = @a", new { a }, tx);
        c.Execute("DELETE FROM mailboxes WHERE address = @a", new { a }, tx);
        if (retainUntil is { } until)
            c.Execute("INSERT OR REPLACE INTO deleted_mailboxes(address, partition, deleted, purge_after) VALUES (@a, @p, @now, @until)",
                new { a, p = record.Partition, now = Now(), until = until.ToUnixTimeSeconds() }, tx);
        return record;
    }

    public string AddAlias(DirectoryTransaction t, string source, IReadOnlyList<string> targets)
    {
        var s = Addresses.NormalizeAliasSource(source, out var reason) ?? throw new DirectoryException(reason);
        if (targets.Count == 0) throw new DirectoryException("an alias needs at least one target");
        var domain = Addresses.DomainOf(s);
        var (c, tx) = (t.Connection, t.Transaction);
        if (c.ExecuteScalar<long>("SELECT count(*) FROM domains WHERE name = @domain", new { domain }, tx) == 0)
            throw new DirectoryException($"unknown domain {domain}; add it first", DirectoryError.NotFound);
        if (c.ExecuteScalar<long>("SELECT count(*) FROM mailboxes WHERE address = @s", new { s }, tx) > 0)
            throw new DirectoryException($"{s} is a mailbox", DirectoryError.Conflict);
        foreach (var target in targets)
        {
            var tg = Addresses.NormalizeAddress(target, out reason) ?? throw new DirectoryException(reason);
            if (tg == s) throw new DirectoryException("an alias cannot point to itself");
            // A target outside the hosted domains is forwarding: the administrator's explicit
            // choice, and the only way mail from anyone leaves for elsewhere (never an open relay).
            var local = c.ExecuteScalar<long>("SELECT (SELECT count(*) FROM mailboxes WHERE address = @tg) + (SELECT count(*) FROM aliases WHERE source = @tg)", new { tg }, tx);
            var hosted = c.ExecuteScalar<long>("SELECT count(*) FROM domains WHERE name = @d", new { d = Addresses.DomainOf(tg) }, tx) > 0;
            if (local == 0 && hosted) throw new DirectoryException($"target {tg} is neither a mailbox nor an alias");
            c.Execute("INSERT OR IGNORE INTO aliases(source, target, domain) VALUES (@s, @tg, @domain)", new { s, tg, domain }, tx);
        }
        return s;
    }

    public string RemoveAlias(DirectoryTransaction t, string source, string? target)
    {
        var s = Addresses.NormalizeAliasSource(source, out var reason) ?? throw new DirectoryException(reason);
        var n = target is null
            ? t.Connection.Execute("DELETE FROM aliases WHERE source = @s", new { s }, t.Transaction)
            : t.Connection.Execute("DELETE FROM aliases WHERE source = @s AND target = @tg", new { s, tg = target.Trim().ToLowerInvariant() }, t.Transaction);
        if (n == 0) throw new DirectoryException(target is null ? $"no such alias {s}" : $"alias {s} has no target {target}", DirectoryError.NotFound);
        return s;
    }

    // ---- deleted mailboxes kept for their retention period ----

    /// <summary>Removed mailboxes whose mail is still kept, with when it may be purged.</summary>
    public IReadOnlyList<DeletedMailbox> DeletedMailboxes()
    {
        using var c = Open();
        return c.Query<DeletedMailbox>(SelectDeleted + " ORDER BY purge_after").AsList();
    }

    /// <summary>Whether the address is a removed mailbox whose mail is still kept.</summary>
    public bool IsRetained(string address)
    {
        using var c = Open();
        return c.ExecuteScalar<long>("SELECT count(*) FROM deleted_mailboxes WHERE address = @address", new { address }) > 0;
    }

    /// <summary>Forgets a removed mailbox whose mail is being purged; returns it (its partition holds the mail).</summary>
    public DeletedMailbox ForgetDeleted(DirectoryTransaction t, string address)
    {
        var a = address.Trim().ToLowerInvariant();
        var deleted = t.Connection.QuerySingleOrDefault<DeletedMailbox>(SelectDeleted + " WHERE address = @a",
            new { a }, t.Transaction) ?? throw new DirectoryException($"{a} is not a removed mailbox with kept mail", DirectoryError.NotFound);
        t.Connection.Execute("DELETE FROM deleted_mailboxes WHERE address = @a", new { a }, t.Transaction);
        return deleted;
    }
}

public sealed class DeletedMailbox
{
    public string Address { get; set; } = "";
    public string Partition { get; set; } = "";
    public long Deleted { get; set; }
    public long PurgeAfter { get; set; }
}

public sealed class AppliedRequest
{
    public long Seq { get; set; }
    public string Digest { get; set; } = "";
    public string Summary { get; set; } = "";
}

internal sealed class ProvisioningErrorRow
{
    public long Seq { get; set; }
    public string Error { get; set; } = "";
}

public sealed class DomainSummary
{
    public string Name { get; set; } = "";
    public long Created { get; set; }
    public long Mailboxes { get; set; }
    public long Aliases { get; set; }
}

/// <summary>How far this node's directory has applied the provisioning journal.</summary>
public sealed class ProvisioningState
{
    /// <summary>Last request applied to directory.db (in the same transaction as its change).</summary>
    public long AppliedSeq { get; set; }
    /// <summary>Last request whose mailbox-store part (folders, purge) is done.</summary>
    public long StoreSeq { get; set; }
    public string? LastError { get; set; }
    public long? ErrorSeq { get; set; }
    public long Updated { get; set; }
}

public sealed partial class MailDirectory
{
    public ProvisioningState ReadProvisioningState()
    {
        using var c = Open();
        return c.QuerySingle<ProvisioningState>("SELECT applied_seq AS AppliedSeq, store_seq AS StoreSeq, last_error AS LastError, error_seq AS ErrorSeq, updated AS Updated FROM provisioning_state WHERE id = 1");
    }

    /// <summary>
    /// Records, inside the transaction of the request's change, that request <paramref name="seq"/>
    /// is applied; false when it already was (the caller rolls back).
    /// </summary>
    public bool MarkApplied(DirectoryTransaction t, long seq, string digest, string summary, string? error)
    {
        if (t.Connection.Execute(
            "UPDATE provisioning_state SET applied_seq = @seq, updated = @now, last_error = CASE WHEN @error IS NULL THEN last_error ELSE @error END, error_seq = CASE WHEN @error IS NULL THEN error_seq ELSE @seq END WHERE id = 1 AND applied_seq < @seq",
            new { seq, now = Now(), error }, t.Transaction) != 1) return false;
        t.Connection.Execute("INSERT OR REPLACE INTO provisioning_applied(seq, digest, summary) VALUES (@seq, @digest, @summary)", new { seq, digest, summary }, t.Transaction);
        if (error is not null) t.Connection.Execute("INSERT OR REPLACE INTO provisioning_errors(seq, error) VALUES (@seq, @error)", new { seq, error }, t.Transaction);
        return true;
    }

    /// <summary>The requests applied here from <paramref name="fromSeq"/> on, newest first (digest and summary).</summary>
    public IReadOnlyList<AppliedRequest> AppliedSince(long fromSeq)
    {
        using var c = Open();
        return c.Query<AppliedRequest>("SELECT seq AS Seq, digest AS Digest, summary AS Summary FROM provisioning_applied WHERE seq >= @fromSeq ORDER BY seq DESC", new { fromSeq }).AsList();
    }

    /// <summary>
    /// Goes back to having applied up to <paramref name="seq"/> (the journal was rolled back
    /// past what this node applied): the requests after it are applied again from the journal.
    /// </summary>
    public void RewindProvisioning(long seq, string error)
    {
        using var c = Open();
        using var tx = c.BeginTransaction();
        c.Execute("UPDATE provisioning_state SET applied_seq = @seq, store_seq = min(store_seq, @seq), last_error = @error, error_seq = @seq, updated = @now WHERE id = 1",
            new { seq, error, now = Now() }, tx);
        c.Execute("DELETE FROM provisioning_applied WHERE seq > @seq", new { seq }, tx);
        c.Execute("DELETE FROM provisioning_errors WHERE seq > @seq", new { seq }, tx);
        tx.Commit();
    }

    /// <summary>Why this node refused some of the given requests when it applied them.</summary>
    public Dictionary<long, string> ProvisioningErrors(IEnumerable<long> seqs)
    {
        var list = seqs.ToList();
        if (list.Count == 0) return [];
        using var c = Open();
        return c.Query<ProvisioningErrorRow>("SELECT seq AS Seq, error AS Error FROM provisioning_errors WHERE seq BETWEEN @min AND @max", new { min = list.Min(), max = list.Max() })
            .ToDictionary(r => r.Seq, r => r.Error);
    }

    public void MarkStoreApplied(long seq)
    {
        using var c = Open();
        c.Execute("UPDATE provisioning_state SET store_seq = max(store_seq, @seq) WHERE id = 1", new { seq });
    }
}

public sealed partial class MailDirectory
{
    public long CountDisabled()
    {
        using var c = Open();
        return c.ExecuteScalar<long>("SELECT count(*) FROM mailboxes WHERE enabled = 0");
    }
}
