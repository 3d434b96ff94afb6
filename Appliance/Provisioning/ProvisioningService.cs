using System.Collections.Concurrent;
using System.Security.Cryptography;
using Appliance.Directory;

namespace Appliance.Provisioning;

// Implementation notes
// - The front door of every administrative change (CLI, API, admin panel): a request is
//   validated (its directory change done and rolled back), journaled (fsync), then applied by
//   this node's agent before the caller hears "done". One gate orders validation and append, so
//   a request validated against the directory is the next one the agent applies.
// - Passwords are hashed before a request enters the journal and outside the gate (Argon2id
//   takes a core for ~0.1 s). A bulk request hashes on every core and reports progress.
// - A bulk request is validated as a whole: with any bad entry nothing is journaled and the
//   job lists every reason. It is validated again under the gate, after hashing, because the
//   directory may have changed meanwhile.

/// <summary>One mailbox of a bulk request or CSV import, before hashing.</summary>
public sealed record BulkEntry(int? Line, int? Index, string Address, string? Password, string? PasswordHash, long? QuotaBytes);

/// <summary>A node's progress through the journal (the admin panel's provisioning queue).</summary>
public sealed record NodeProgress(string Node, long AppliedSeq, long Pending, string? LastError, long Updated, bool Up);

/// <summary>The other node of a pair, as provisioning needs it (implemented by the cluster manager).</summary>
public interface IProvisioningPeer
{
    string PeerName { get; }
    /// <summary>The monitor unit (the journal) is active on the peer.</summary>
    bool PeerHoldsMonitor { get; }
    /// <summary>The peer's applied sequence (from its heartbeats) and whether it is up.</summary>
    (long AppliedSeq, bool Alive) PeerProgress { get; }
    /// <summary>Has the peer journal a request; its sequence, or <see cref="DirectoryException"/> when refused.</summary>
    Task<long> ForwardProvisionAsync(string payload, string actor, CancellationToken ct);
}

public sealed class ProvisioningService : IProvisioningCommands
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("provisioning");
    private readonly MailDirectory _directory;
    private readonly ProvisioningAgent _agent;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private const string PendingHash = "$argon2id$pending";
    private readonly ConcurrentDictionary<string, Job> _jobs = new();
    private readonly long _defaultQuotaBytes;
    private readonly TimeSpan _retention;
    private readonly string _nodeName;

    public ProvisioningService(MailDirectory directory, ProvisioningJournal journal, ProvisioningAgent agent, long defaultQuotaBytes, TimeSpan retention, string nodeName)
    {
        _directory = directory;
        Journal = journal;
        _agent = agent;
        _defaultQuotaBytes = defaultQuotaBytes;
        _retention = retention;
        _nodeName = nodeName;
        journal.FailInterruptedJobs();
    }

    public ProvisioningJournal Journal { get; }
    public MailDirectory Directory => _directory;

    /// <summary>In a pair: the other node, which may hold the monitor unit (and so the journal).</summary>
    public IProvisioningPeer? Peer { get; set; }

    /// <summary>
    /// Validates, journals and applies one request here; throws <see cref="DirectoryException"/>
    /// when refused. On the node without the monitor unit the request is journaled by the peer
    /// and then applied here from this node's copy of the journal.
    /// </summary>
    public async Task<long> SubmitAsync(ProvisioningRequest request, string actor)
    {
        if (Journal.IsWritable) return await SubmitHereAsync(request, actor);
        if (Peer is not { PeerHoldsMonitor: true } peer)
            throw new DirectoryException("provisioning is unavailable: the monitor unit is not active on either node", DirectoryError.Unavailable);
        string payload = System.Text.Json.JsonSerializer.Serialize(request, ProvisioningJson.Default.ProvisioningRequest);
        long seq;
        try { seq = await peer.ForwardProvisionAsync(payload, actor, CancellationToken.None); }
        catch (Store.UnitUnavailableException ex) { throw new DirectoryException(ex.Message, DirectoryError.Unavailable); }
        // Replicated to this node's copy before the peer answered (while the two are connected).
        for (var i = 0; i < 50 && _agent.AppliedSeq < seq; i++)
        {
            await _agent.ApplyPendingAsync();
            if (_agent.AppliedSeq < seq) await Task.Delay(100);
        }
        return seq;
    }

    /// <summary>A request from the peer (which does not hold the monitor unit), journaled here.</summary>
    public Task<long> SubmitForwardedAsync(string payload, string actor)
    {
        var request = System.Text.Json.JsonSerializer.Deserialize(payload, ProvisioningJson.Default.ProvisioningRequest)
            ?? throw new DirectoryException("empty provisioning request");
        if (!Journal.IsWritable) throw new DirectoryException("the monitor unit is not active here any more; try again", DirectoryError.Unavailable);
        return SubmitHereAsync(request, actor);
    }

    private async Task<long> SubmitHereAsync(ProvisioningRequest request, string actor)
    {
        await _gate.WaitAsync();
        try
        {
            // A dry run (rolled back); a bulk request lists every refused mailbox.
            var refused = new List<(int Index, string Reason)>();
            using (var t = _directory.BeginTransaction())
                ProvisioningAgent.ApplyToDirectory(_directory, t, request, request.Kind == RequestKinds.MailboxBulk ? refused : null);
            if (refused.Count > 0)
                throw new DirectoryException(string.Join("; ", refused.Take(10).Select(e => $"entry {e.Index}: {e.Reason}")) + (refused.Count > 10 ? $"; and {refused.Count - 10} more" : "")) { Entries = refused };
            long seq;
            try { seq = await Journal.AppendAsync(request, actor); }
            catch (Store.UnitUnavailableException ex) { throw new DirectoryException(ex.Message, DirectoryError.Unavailable); }
            await _agent.ApplyPendingAsync();
            var state = _directory.ReadProvisioningState();
            if (state.ErrorSeq == seq) throw new DirectoryException(state.LastError ?? "refused");
            return seq;
        }
        finally
        {
            _gate.Release();
        }
    }

    // ---- the changes, as the CLI and the API ask for them ----

    /// <summary>Adds a domain with a DKIM key of its own (made here, carried in the request so every node has the same).</summary>
    public async Task<string> AddDomainAsync(string name, string actor)
    {
        var domain = Addresses.NormalizeDomain(name, out var reason) ?? throw new DirectoryException(reason);
        if (_directory.DomainExists(domain)) throw new DirectoryException($"domain {domain} already exists", DirectoryError.Conflict);
        var key = await Task.Run(() => DkimKey.Generate(domain, DateTimeOffset.UtcNow, null));
        await SubmitAsync(new ProvisioningRequest { Kind = RequestKinds.DomainAdd, Domain = domain, DkimSelector = key.Selector, DkimPrivateKey = key.PrivateKeyPem }, actor);
        return domain;
    }

    /// <summary>
    /// A new DKIM key for an existing domain (a new selector), on every node. Mail is signed with
    /// it from now on: until its record is published, receivers cannot verify the signatures.
    /// </summary>
    public async Task<Relay.DkimRecord> NewDkimKeyAsync(string name, string actor)
    {
        var domain = Addresses.NormalizeDomain(name, out var reason) ?? throw new DirectoryException(reason);
        if (!_directory.DomainExists(domain)) throw new DirectoryException($"no such domain {domain}", DirectoryError.NotFound);
        var current = _directory.DkimKey(domain)?.Selector;
        var key = await Task.Run(() => DkimKey.Generate(domain, DateTimeOffset.UtcNow, current));
        await SubmitAsync(new ProvisioningRequest { Kind = RequestKinds.DomainDkim, Domain = domain, DkimSelector = key.Selector, DkimPrivateKey = key.PrivateKeyPem }, actor);
        return Relay.DkimSigning.Record(key);
    }

    public Task<Relay.DkimRecord?> GetDkimRecordAsync(string name)
    {
        var domain = Addresses.NormalizeDomain(name, out var reason) ?? throw new DirectoryException(reason);
        if (!_directory.DomainExists(domain)) throw new DirectoryException($"no such domain {domain}", DirectoryError.NotFound);
        return Task.FromResult(_directory.DkimKey(domain) is { } key ? Relay.DkimSigning.Record(key) : null);
    }

    public Task RemoveDomainAsync(string name, string actor) =>
        SubmitAsync(new ProvisioningRequest { Kind = RequestKinds.DomainRemove, Domain = name.Trim().ToLowerInvariant() }, actor);

    public async Task<MailboxRecord> AddMailboxAsync(string address, string? password, string? passwordHash, long? quotaBytes, string actor)
    {
        var a = Addresses.NormalizeAddress(address, out var reason) ?? throw new DirectoryException(reason);
        var hash = await HashAsync(password, passwordHash);
        await SubmitAsync(new ProvisioningRequest { Kind = RequestKinds.MailboxAdd, Address = a, PasswordHash = hash, QuotaBytes = quotaBytes ?? _defaultQuotaBytes }, actor);
        return _directory.FindMailbox(a)!;
    }

    public async Task<MailboxRecord> UpdateMailboxAsync(string address, string? password, long? quotaBytes, bool? enabled, string actor)
    {
        var a = Addresses.NormalizeAddress(address, out var reason) ?? throw new DirectoryException(reason);
        if (password is null && quotaBytes is null && enabled is null) throw new DirectoryException("nothing to change");
        var hash = password is null ? null : await HashAsync(password, null);
        await SubmitAsync(new ProvisioningRequest { Kind = RequestKinds.MailboxSet, Address = a, PasswordHash = hash, QuotaBytes = quotaBytes, Enabled = enabled }, actor);
        return _directory.FindMailbox(a)!;
    }

    /// <summary>Replaces a mailbox's sender allow and block lists; returns them as stored once the change is durable.</summary>
    public async Task<(IReadOnlyList<string> Allow, IReadOnlyList<string> Block)> SetSenderListsAsync(string address, string[] allow, string[] block, string actor)
    {
        var a = Addresses.NormalizeAddress(address, out var reason) ?? throw new DirectoryException(reason);
        await SubmitAsync(new ProvisioningRequest { Kind = RequestKinds.MailboxSenderLists, Address = a, Allow = allow, Block = block }, actor);
        return _directory.SenderLists(a);
    }

    /// <summary>
    /// Removes a mailbox; its mail is kept for the retention period unless <paramref name="purge"/>.
    /// With <paramref name="purge"/>, an address already removed has its kept mail deleted.
    /// </summary>
    public async Task<ProvisioningRequest> RemoveMailboxAsync(string address, bool purge, string actor)
    {
        var a = Addresses.NormalizeAddress(address, out var reason) ?? throw new DirectoryException(reason);
        if (purge && _directory.FindMailbox(a) is null)
        {
            var purgeRequest = new ProvisioningRequest { Kind = RequestKinds.MailboxPurge, Address = a };
            await SubmitAsync(purgeRequest, actor);
            return purgeRequest;
        }
        var request = new ProvisioningRequest
        {
            Kind = RequestKinds.MailboxRemove, Address = a,
            RetainUntil = purge || _retention <= TimeSpan.Zero ? null : DateTimeOffset.UtcNow.Add(_retention).ToUnixTimeSeconds(),
        };
        await SubmitAsync(request, actor);
        return request;
    }

    public async Task<string> AddAliasAsync(string source, IReadOnlyList<string> targets, string actor)
    {
        var s = Addresses.NormalizeAliasSource(source, out var reason) ?? throw new DirectoryException(reason);
        await SubmitAsync(new ProvisioningRequest { Kind = RequestKinds.AliasAdd, Source = s, Targets = [.. targets.Select(x => x.Trim().ToLowerInvariant())] }, actor);
        return s;
    }

    public Task RemoveAliasAsync(string source, string? target, string actor) =>
        SubmitAsync(new ProvisioningRequest { Kind = RequestKinds.AliasRemove, Source = source.Trim().ToLowerInvariant(), Target = target?.Trim().ToLowerInvariant() }, actor);

    /// <summary>Purges the kept mail of removed mailboxes whose retention period is over (on the node holding the journal).</summary>
    public async Task PurgeExpiredAsync(DateTimeOffset now)
    {
        if (!Journal.IsWritable) return;
        foreach (var address in _agent.ExpiredRetentions(now))
        {
            try { await SubmitAsync(new ProvisioningRequest { Kind = RequestKinds.MailboxPurge, Address = address }, "system"); }
            catch (DirectoryException ex) { Log.Warn("purging removed mailbox {0}: {1}", address, ex.Message); }
        }
    }

    /// <summary>Creates an API token on every node; returns it (shown once: only a hash of its secret is kept).</summary>
    public async Task<string> CreateTokenAsync(string name, string scopes, string actor)
    {
        MailDirectory.CheckScopes(scopes);
        var (token, id, hash) = MailDirectory.NewToken();
        await SubmitAsync(new ProvisioningRequest { Kind = RequestKinds.TokenCreate, Name = name, TokenId = id, PasswordHash = hash, Scopes = scopes }, actor);
        return token;
    }

    /// <summary>Sets an admin's password on every node (creating the admin if needed).</summary>
    public async Task SetAdminPasswordAsync(string name, string password, string actor)
    {
        var hash = await HashAsync(password, null);
        await SubmitAsync(new ProvisioningRequest { Kind = RequestKinds.AdminPassword, Name = name, PasswordHash = hash }, actor);
    }

    /// <summary>Turns an admin's TOTP on (a confirmed secret) or off (null), on every node.</summary>
    public Task SetAdminTotpAsync(string name, string? secret, string actor) =>
        SubmitAsync(new ProvisioningRequest { Kind = RequestKinds.AdminTotp, Name = name, TotpSecret = secret }, actor);

    private static async Task<string> HashAsync(string? password, string? passwordHash)
    {
        if (passwordHash is not null)
            return PasswordHasher.IsKnownScheme(passwordHash) ? passwordHash : throw new DirectoryException(MailDirectory.UnsupportedHash);
        if (string.IsNullOrEmpty(password)) throw new DirectoryException("a password is needed");
        MailDirectory.CheckPassword(password);
        return await Task.Run(() => PasswordHasher.Hash(password));
    }

    // ---- the CLI's view (IProvisioningCommands) ----

    public Task<IReadOnlyList<string>> ListDomainsAsync() => Task.FromResult(_directory.ListDomains());
    public Task<IReadOnlyList<MailboxRecord>> ListMailboxesAsync(string? domain) => Task.FromResult(_directory.ListMailboxes(domain?.ToLowerInvariant()));
    public Task<IReadOnlyList<AliasRecord>> ListAliasesAsync(string? domain) => Task.FromResult(_directory.ListAliases(domain?.ToLowerInvariant()));
    public Task<Job> StartDomainQuotaAsync(string domain, long quotaBytes, string actor) => Task.FromResult(StartDomainQuota(domain, quotaBytes, actor));
    public Task<Job?> GetJobAsync(string id) => Task.FromResult(GetJob(id));

    public Task<Job> StartImportAsync(string csv, string actor)
    {
        var (entries, errors) = ParseCsv(csv);
        if (entries.Count == 0 && errors.Count == 0) throw new DirectoryException("the CSV has no lines (address,password[,quota])");
        return Task.FromResult(StartBulk(entries, errors, actor));
    }

    async Task<string> IProvisioningCommands.RemoveMailboxAsync(string address, bool purge, string actor) =>
        (await RemoveMailboxAsync(address, purge, actor)).Summary();

    // ---- bulk jobs ----

    public Job? GetJob(string id) => _jobs.TryGetValue(id, out var job) ? job : Journal.LoadJob(id);

    private Job NewJob(string kind, string actor, long total)
    {
        var job = new Job
        {
            Id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)),
            Kind = kind, Actor = actor, Created = DateTimeOffset.UtcNow.ToUnixTimeSeconds(), Total = total,
        };
        _jobs[job.Id] = job;
        Journal.SaveJob(job);
        return job;
    }

    /// <summary>
    /// Ends a job. Its errors are gathered apart and set here once, sorted by line or index:
    /// GET /api/v1/jobs/ID serialises the job while the run goes on.
    /// </summary>
    private void Finish(Job job, string state, List<JobError>? errors = null)
    {
        if (errors is { Count: > 0 })
            job.Errors = [.. errors.OrderBy(e => e.Line ?? e.Index ?? int.MaxValue)];
        job.State = state;
        if (state == "done") { job.Phase = "done"; job.Done = job.Total; }
        Journal.SaveJob(job);
        // Finished jobs are read from the journal database from now on; keep memory bounded.
        _jobs.TryRemove(job.Id, out _);
    }

    /// <summary>Starts creating mailboxes in one request; the job ends failed, with every reason, if any entry is bad.</summary>
    public Job StartBulk(IReadOnlyList<BulkEntry> entries, IReadOnlyList<JobError> parseErrors, string actor)
    {
        var job = NewJob(RequestKinds.MailboxBulk, actor, entries.Count + parseErrors.Count);
        _ = Task.Run(async () =>
        {
            try { await RunBulkAsync(job, entries, parseErrors); }
            catch (Exception ex)
            {
                Log.Error(ex, "bulk job {0} failed", job.Id);
                Finish(job, "failed", [new JobError { Reason = "internal error: " + ex.Message }]);
            }
        });
        return job;
    }

    private async Task RunBulkAsync(Job job, IReadOnlyList<BulkEntry> entries, IReadOnlyList<JobError> parseErrors)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var errors = new List<JobError>(parseErrors);
        // Validating: what can be checked without the directory, then a dry run of the whole request.
        var seen = new HashSet<string>();
        var boxes = new List<BulkMailbox>(entries.Count);
        var origin = new List<BulkEntry>(entries.Count);
        foreach (var e in entries)
        {
            string? problem = null;
            var address = Addresses.NormalizeAddress(e.Address, out var reason);
            if (address is null) problem = reason;
            else if (!seen.Add(address)) problem = $"{address} appears more than once";
            else if (e.PasswordHash is not null) { if (!PasswordHasher.IsKnownScheme(e.PasswordHash)) problem = MailDirectory.UnsupportedHash; }
            else if (string.IsNullOrEmpty(e.Password)) problem = "missing password";
            else if (e.Password.Length < 8) problem = "password too short (at least 8 characters)";
            else if (e.Password.Length > 1024) problem = "password too long";
            if (problem is null && e.QuotaBytes < 0) problem = "quota must be zero (unlimited) or positive";
            if (problem is not null) { errors.Add(new JobError { Line = e.Line, Index = e.Index, Reason = problem }); continue; }
            // Until hashing, a plain password stands as a placeholder hash the dry run accepts.
            boxes.Add(new BulkMailbox { Address = address!, PasswordHash = e.PasswordHash ?? PendingHash, QuotaBytes = e.QuotaBytes ?? _defaultQuotaBytes });
            origin.Add(e);
        }
        // With passwords to hash, the directory is asked first, so that a bad line costs no
        // hashing; the request is checked against it again, as a whole, when it is journaled.
        if (origin.Any(e => e.PasswordHash is null)) DryRunBulk(errors, boxes, origin);
        if (errors.Count > 0) { Finish(job, "failed", errors); return; }

        var validated = clock.ElapsedMilliseconds;
        // Hashing on every core, in the order of the entries.
        job.Phase = "hashing";
        job.Done = 0;
        Journal.SaveJob(job);
        long hashed = 0;
        await Parallel.ForAsync(0, boxes.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, (i, _) =>
        {
            if (origin[i].PasswordHash is null) boxes[i].PasswordHash = PasswordHasher.Hash(origin[i].Password!);
            var n = Interlocked.Increment(ref hashed);
            lock (job) if (n > job.Done) job.Done = n; // never backwards for a reader
            return ValueTask.CompletedTask;
        });

        var hashedAt = clock.ElapsedMilliseconds;
        // Applying: journaled as one request (validated again by the node holding the journal,
        // the directory may have changed while hashing), then applied here.
        job.Phase = "applying";
        job.Done = 0;
        Journal.SaveJob(job);
        var request = new ProvisioningRequest { Kind = RequestKinds.MailboxBulk, Mailboxes = boxes };
        try
        {
            job.Seq = await SubmitAsync(request, job.Actor);
        }
        catch (DirectoryException ex)
        {
            if (ex.Entries.Count == 0) errors.Add(new JobError { Reason = ex.Message });
            foreach (var (i, reason) in ex.Entries) errors.Add(new JobError { Line = origin[i].Line, Index = origin[i].Index, Reason = reason });
            Finish(job, "failed", errors);
            return;
        }
        Finish(job, "done");
        Log.Info("bulk job {0}: {1} mailboxes, validated in {2} ms, hashed in {3} ms, journaled and applied in {4} ms",
            job.Id, boxes.Count, validated, hashedAt - validated, clock.ElapsedMilliseconds - hashedAt);
    }

    /// <summary>Runs the bulk request's directory change and rolls it back, adding every refusal to <paramref name="into"/>.</summary>
    private void DryRunBulk(List<JobError> into, List<BulkMailbox> boxes, List<BulkEntry> origin)
    {
        var errors = new List<(int Index, string Reason)>();
        using (var t = _directory.BeginTransaction())
            ProvisioningAgent.ApplyToDirectory(_directory, t, new ProvisioningRequest { Kind = RequestKinds.MailboxBulk, Mailboxes = boxes }, errors);
        foreach (var (i, reason) in errors) into.Add(new JobError { Line = origin[i].Line, Index = origin[i].Index, Reason = reason });
    }

    /// <summary>
    /// Parses a CSV import: "address,password[,quota]" per line, an optional header line,
    /// blank lines and # comments skipped; a password starting with "{" is a migrated hash.
    /// </summary>
    public static (List<BulkEntry> Entries, List<JobError> Errors) ParseCsv(string text)
    {
        var entries = new List<BulkEntry>();
        var errors = new List<JobError>();
        var lines = text.Split('\n');
        for (var i = 0; i < lines.Length; i++)
        {
            var line = lines[i].Trim();
            var number = i + 1;
            if (line.Length == 0 || line.StartsWith('#') || (entries.Count == 0 && errors.Count == 0 && line.StartsWith("address", StringComparison.OrdinalIgnoreCase))) continue;
            var parts = line.Split(',');
            if (parts.Length > 3) { errors.Add(new JobError { Line = number, Reason = "too many fields (address,password[,quota])" }); continue; }
            long? quota = null;
            if (parts.Length > 2 && parts[2].Trim().Length > 0)
            {
                if (Sizes.Parse(parts[2]) is not { } q) { errors.Add(new JobError { Line = number, Reason = $"bad quota '{parts[2].Trim()}'" }); continue; }
                quota = q;
            }
            var secret = parts.Length > 1 ? parts[1].Trim() : "";
            var isHash = secret.StartsWith('{');
            entries.Add(new BulkEntry(number, null, parts[0].Trim(), isHash ? null : secret, isHash ? secret : null, quota));
        }
        return (entries, errors);
    }

    /// <summary>Sets the quota of every mailbox of a domain as one request.</summary>
    public Job StartDomainQuota(string domain, long quotaBytes, string actor)
    {
        var d = Addresses.NormalizeDomain(domain, out var reason) ?? throw new DirectoryException(reason);
        if (!_directory.DomainExists(d)) throw new DirectoryException($"no such domain {d}", DirectoryError.NotFound);
        if (quotaBytes < 0) throw new DirectoryException("quota must be zero (unlimited) or positive");
        var job = NewJob(RequestKinds.DomainQuota, actor, _directory.ListMailboxes(d).Count);
        _ = Task.Run(async () =>
        {
            job.Phase = "applying";
            try
            {
                await SubmitAsync(new ProvisioningRequest { Kind = RequestKinds.DomainQuota, Domain = d, QuotaBytes = quotaBytes }, actor);
                Finish(job, "done");
            }
            catch (Exception ex)
            {
                Finish(job, "failed", [new JobError { Reason = ex.Message }]);
            }
        });
        return job;
    }

    /// <summary>This node's progress and, in a pair, the peer's as its heartbeats tell it.</summary>
    public IReadOnlyList<NodeProgress> Progress()
    {
        var last = Journal.LastSeq;
        var s = _directory.ReadProvisioningState();
        var here = new NodeProgress(_nodeName, s.AppliedSeq, Math.Max(0, last - s.AppliedSeq), s.LastError, s.Updated, true);
        if (Peer is not { } peer) return [here];
        var (applied, alive) = peer.PeerProgress;
        return [here, new NodeProgress(peer.PeerName, applied, Math.Max(0, last - applied), alive ? null : "down: its requests wait until it returns", 0, alive)];
    }
}
