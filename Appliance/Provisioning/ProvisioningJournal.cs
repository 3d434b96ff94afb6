using System.Text.Json;
using Dapper;
using Microsoft.Data.Sqlite;

namespace Appliance.Provisioning;

// Implementation notes
// - provisioning.db (units/monitor/): the ordered journal of requests and the bulk jobs. SQLite
//   in WAL mode with synchronous=FULL, so an append is on disk when Append returns (an
//   acknowledged request is durable).
// - The journal is also the audit log: who (actor), when, what (kind, target, summary).
// - The sequence is the rowid of an AUTOINCREMENT table: gap-free in practice, strictly
//   increasing always, and never reused.

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

/// <summary>The ordered provisioning journal and the record of bulk jobs.</summary>
public sealed class ProvisioningJournal
{
    private readonly string _connectionString;

    public ProvisioningJournal(string path)
    {
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = true }.ToString();
        using var c = Open();
        c.Execute("""
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS requests(
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                time INTEGER NOT NULL,
                actor TEXT NOT NULL,
                kind TEXT NOT NULL,
                target TEXT NOT NULL,
                summary TEXT NOT NULL,
                payload TEXT NOT NULL,
                error TEXT);
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
        // FULL: the WAL is fsynced at every commit, not only at checkpoints.
        c.Execute("PRAGMA synchronous=FULL");
        return c;
    }

    /// <summary>Appends a request; returns its sequence number once it is durable.</summary>
    public long Append(ProvisioningRequest request, string actor)
    {
        // Serialized first: Dapper.AOT's generator cannot see the JSON generator's types.
        string payload = JsonSerializer.Serialize(request, ProvisioningJson.Default.ProvisioningRequest);
        using var c = Open();
        return c.ExecuteScalar<long>(
            "INSERT INTO requests(time, actor, kind, target, summary, payload) VALUES (@time, @actor, @kind, @target, @summary, @payload) RETURNING seq",
            new
            {
                time = DateTimeOffset.UtcNow.ToUnixTimeSeconds(),
                actor,
                kind = request.Kind,
                target = request.TargetName(),
                summary = request.Summary(),
                payload,
            });
    }

    public long LastSeq
    {
        get
        {
            using var c = Open();
            return c.ExecuteScalar<long?>("SELECT max(seq) FROM requests") ?? 0;
        }
    }

    /// <summary>Requests after <paramref name="afterSeq"/>, in order, at most <paramref name="max"/>.</summary>
    public IReadOnlyList<(long Seq, ProvisioningRequest Request)> ReadAfter(long afterSeq, int max)
    {
        using var c = Open();
        return c.Query<PayloadRow>("SELECT seq AS Seq, payload AS Payload FROM requests WHERE seq > @afterSeq ORDER BY seq LIMIT @max", new { afterSeq, max })
            .Select(r => (r.Seq, JsonSerializer.Deserialize(r.Payload, ProvisioningJson.Default.ProvisioningRequest)!))
            .ToList();
    }

    public ProvisioningRequest? Read(long seq) => ReadAfter(seq - 1, 1) is [var (s, r)] && s == seq ? r : null;

    /// <summary>Records why a request was refused when it was applied (shown in the audit log).</summary>
    public void RecordError(long seq, string error)
    {
        using var c = Open();
        c.Execute("UPDATE requests SET error = @error WHERE seq = @seq", new { error, seq });
    }

    /// <summary>Newest entries first, optionally only those whose actor, kind, target or summary contain <paramref name="search"/>.</summary>
    public (long Total, IReadOnlyList<JournalEntry> Items) List(string? search, int offset, int limit)
    {
        using var c = Open();
        var pattern = string.IsNullOrWhiteSpace(search) ? null : "%" + search.Trim().Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_") + "%";
        const string where = "WHERE @pattern IS NULL OR actor LIKE @pattern ESCAPE '\\' OR kind LIKE @pattern ESCAPE '\\' OR target LIKE @pattern ESCAPE '\\' OR summary LIKE @pattern ESCAPE '\\'";
        var total = c.ExecuteScalar<long>("SELECT count(*) FROM requests " + where, new { pattern });
        var items = c.Query<JournalEntry>(
            "SELECT seq AS Seq, time AS Time, actor AS Actor, kind AS Kind, target AS Target, summary AS Summary, error AS Error FROM requests " + where + " ORDER BY seq DESC LIMIT @limit OFFSET @offset",
            new { pattern, limit, offset }).AsList();
        return (total, items);
    }

    // ---- jobs ----

    public void SaveJob(Job job)
    {
        string errors;
        lock (job) errors = JsonSerializer.Serialize(job.Errors, ProvisioningApiJson.Default.ListJobError);
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

    internal sealed class PayloadRow
    {
        public long Seq { get; set; }
        public string Payload { get; set; } = "";
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
