using Dapper;

namespace Appliance.Store;

// The provisioning journal lives in the monitor unit's partition (DESIGN.md §4): requests are
// ProvisionOps, replicated and acknowledged like mail, and indexed in its "provisioning" table
// on both nodes. Only the monitor partition takes them; nothing else reads that table.

/// <summary>A provisioning request as stored in the monitor unit.</summary>
public sealed class ProvisionRow
{
    public long Seq { get; set; }
    public long Time { get; set; }
    public string Actor { get; set; } = "";
    public string Kind { get; set; } = "";
    public string Target { get; set; } = "";
    public string Summary { get; set; } = "";
    public string Payload { get; set; } = "";
}

public sealed partial class Partition
{
    /// <summary>Appends a provisioning request; returns its sequence once durable here and, in a pair, on the replica.</summary>
    public Task<long> AppendProvisionAsync(long time, string actor, string kind, string target, string summary, string payload) =>
        SubmitAsync(ctx =>
        {
            var seq = ctx.NextProvisionSeq();
            ctx.Emit(new ProvisionOp(seq, time, actor, kind, target, summary, payload));
            return seq;
        });

    public long LastProvisionSeq()
    {
        using var c = OpenReader();
        return c.ExecuteScalar<long?>("SELECT max(seq) FROM provisioning") ?? 0;
    }

    /// <summary>Requests after <paramref name="afterSeq"/> in order, at most <paramref name="max"/>.</summary>
    public IReadOnlyList<ProvisionRow> ProvisionsAfter(long afterSeq, int max)
    {
        using var c = OpenReader();
        return c.Query<ProvisionRow>(
            "SELECT seq AS Seq, time AS Time, actor AS Actor, kind AS Kind, target AS Target, summary AS Summary, payload AS Payload FROM provisioning WHERE seq > @afterSeq ORDER BY seq LIMIT @max",
            new { afterSeq, max }).AsList();
    }

    /// <summary>Newest first, optionally only those whose actor, kind, target or summary contain <paramref name="search"/> (payloads left out).</summary>
    public (long Total, IReadOnlyList<ProvisionRow> Items) ListProvisions(string? search, int offset, int limit)
    {
        using var c = OpenReader();
        var pattern = string.IsNullOrWhiteSpace(search) ? null : "%" + search.Trim().Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_") + "%";
        const string where = "WHERE @pattern IS NULL OR actor LIKE @pattern ESCAPE '\\' OR kind LIKE @pattern ESCAPE '\\' OR target LIKE @pattern ESCAPE '\\' OR summary LIKE @pattern ESCAPE '\\'";
        var total = c.ExecuteScalar<long>("SELECT count(*) FROM provisioning " + where, new { pattern });
        var items = c.Query<ProvisionRow>(
            "SELECT seq AS Seq, time AS Time, actor AS Actor, kind AS Kind, target AS Target, summary AS Summary, '' AS Payload FROM provisioning " + where + " ORDER BY seq DESC LIMIT @limit OFFSET @offset",
            new { pattern, limit, offset }).AsList();
        return (total, items);
    }
}
