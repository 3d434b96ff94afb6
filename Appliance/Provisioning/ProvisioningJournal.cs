using System.Text.Json;
using Dapper;
using Appliance.Directory;
using Appliance.Store;
using Microsoft.Data.Sqlite;

namespace Appliance.Provisioning;

// Implementation notes
// - The journal itself is the monitor unit's partition (Store/Partition.Provisioning.cs):
//   appending is a partition write, durable (fsync) here and, in a pair, acknowledged by the
//   peer's copy before it returns; both nodes read their own copy. Only the node where the
//   monitor unit is active appends.
// - The journal is also the audit log: who (actor), when, what (kind, target, summary). Why a
//   request was refused when a node applied it is that node's own record (directory.db).
// - Bulk jobs are the business of the node that runs them: jobs.db in the data directory.

/// <summary>A request read from the journal to be applied.</summary>
public sealed record JournalRequest(long Seq, ProvisioningRequest Request, string Digest, string Summary);

/// <summary>A journal entry as the audit log and the provisioning page show it.</summary>
public sealed class JournalEntry
{
    public long Seq { get; set; }
    public long Time { get; set; }
    public string Actor { get; set; } = "";
    public string Kind { get; set; } = "";
    public string Target { get; set; } = "";
    public string Summary { get; set; } = "";
    public string? Error { get; set; }
}

/// <summary>The ordered provisioning journal (in the monitor unit) and this node's bulk jobs.</summary>
public sealed class ProvisioningJournal
{
    private readonly MailStore _store;
    private readonly MailDirectory _directory;
    private readonly string _connectionString;

    public ProvisioningJournal(MailStore store, MailDirectory directory, string jobsPath)
    {
        _store = store;
        _directory = directory;
        _connectionString = new SqliteConnectionStringBuilder { DataSource = jobsPath, Pooling = true }.ToString();
        using var c = Open();
        c.Execute("""
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS jobs(
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                actor TEXT NOT NULL,
                created INTEGER NOT NULL,
                state TEXT NOT NULL,
                phase TEXT NOT NULL,
                done INTEGER NOT NULL,
                total INTEGER NOT NULL,
                errors TEXT NOT NULL,
                seq INTEGER);
            """);
    }

    private SqliteConnection Open()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        return c;
    }

    /// <summary>Whether requests can be appended on this node (the monitor unit is active here).</summary>
    public bool IsWritable => _store.Monitor.IsPrimary;

    /// <summary>Appends a request; returns its sequence number once it is durable (on both nodes of a pair while they are connected).</summary>
    public Task<long> AppendAsync(ProvisioningRequest request, string actor)
    {
        string payload = JsonSerializer.Serialize(request, ProvisioningJson.Default.ProvisioningRequest);
        return _store.Monitor.AppendProvisionAsync(DateTimeOffset.UtcNow.ToUnixTimeSeconds(), actor, request.Kind, request.TargetName(), request.Summary(), payload);
    }

    public long LastSeq => _store.Monitor.LastProvisionSeq();

    /// <summary>Requests after <paramref name="afterSeq"/>, in order, at most <paramref name="max"/>.</summary>
    public IReadOnlyList<JournalRequest> ReadAfter(long afterSeq, int max) =>
        _store.Monitor.ProvisionsAfter(afterSeq, max)
            .Select(r => new JournalRequest(r.Seq, JsonSerializer.Deserialize(r.Payload, ProvisioningJson.Default.ProvisioningRequest)!, Digest(r), r.Summary))
            .ToList();

    /// <summary>The digest of the request at <paramref name="seq"/> in this copy, or null when it has none there.</summary>
    public string? DigestAt(long seq) => _store.Monitor.ProvisionsAfter(seq - 1, 1) is [var r] && r.Seq == seq ? Digest(r) : null;

    /// <summary>What identifies a request across copies: a copy rolled back after a split brain may hold another request under the same sequence.</summary>
    private static string Digest(ProvisionRow r) =>
        Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"{r.Time}\n{r.Actor}\n{r.Payload}")))[..32];

    /// <summary>Newest entries first, optionally only those whose actor, kind, target or summary contain <paramref name="search"/>.</summary>
    public (long Total, IReadOnlyList<JournalEntry> Items) List(string? search, int offset, int limit)
    {
        var (total, rows) = _store.Monitor.ListProvisions(search, offset, limit);
        var errors = _directory.ProvisioningErrors(rows.Select(r => r.Seq));
        return (total, rows.Select(r => new JournalEntry
        {
            Seq = r.Seq, Time = r.Time, Actor = r.Actor, Kind = r.Kind, Target = r.Target, Summary = r.Summary,
            Error = errors.GetValueOrDefault(r.Seq),
        }).ToList());
    }

    // ---- jobs ----

    public void SaveJob(Job job)
    {
        string errors = JsonSerializer.Serialize(job.Errors, ProvisioningApiJson.Default.ListJobError);
        using var c = Open();
        c.Execute("""
            INSERT INTO jobs(id, kind, actor, created, state, phase, done, total, errors, seq)
            VALUES (@Id, @Kind, @Actor, @Created, @State, @Phase, @Done, @Total, @errors, @Seq)
            ON CONFLICT(id) DO UPDATE SET state = excluded.state, phase = excluded.phase, done = excluded.done,
                total = excluded.total, errors = excluded.errors, seq = excluded.seq
            """,
            new { job.Id, job.Kind, job.Actor, job.Created, job.State, job.Phase, job.Done, job.Total, errors, job.Seq });
    }

    public Job? LoadJob(string id)
    {
        using var c = Open();
        var row = c.QuerySingleOrDefault<JobRow>(
            "SELECT id AS Id, kind AS Kind, actor AS Actor, created AS Created, state AS State, phase AS Phase, done AS Done, total AS Total, errors AS Errors, seq AS Seq FROM jobs WHERE id = @id",
            new { id });
        return row is null ? null : new Job
        {
            Id = row.Id, Kind = row.Kind, Actor = row.Actor, Created = row.Created, State = row.State, Phase = row.Phase,
            Done = row.Done, Total = row.Total, Seq = row.Seq,
            Errors = JsonSerializer.Deserialize(row.Errors, ProvisioningApiJson.Default.ListJobError) ?? [],
        };
    }

    /// <summary>Jobs a stopped process left running: they end failed (nothing of them was journaled, or all of it).</summary>
    public void FailInterruptedJobs()
    {
        using var c = Open();
        c.Execute("UPDATE jobs SET state = 'failed', errors = '[{\"reason\":\"interrupted by a restart before it was journaled; nothing was changed\"}]' WHERE state = 'running' AND seq IS NULL");
        c.Execute("UPDATE jobs SET state = 'done', phase = 'done', done = total WHERE state = 'running' AND seq IS NOT NULL");
    }

    internal sealed class JobRow
    {
        public string Id { get; set; } = "";
        public string Kind { get; set; } = "";
        public string Actor { get; set; } = "";
        public long Created { get; set; }
        public string State { get; set; } = "";
        public string Phase { get; set; } = "";
        public long Done { get; set; }
        public long Total { get; set; }
        public string Errors { get; set; } = "[]";
        public long? Seq { get; set; }
    }
}
