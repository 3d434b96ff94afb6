using Appliance.Monitoring;
using Dapper;

namespace Appliance.Store;

// The monitoring history and alert state live in the monitor unit's partition (DESIGN.md §2–3,
// units/monitor/): every node's samples arrive as MetricsOps and alerts as AlertOps, replicated
// and failed over like the provisioning journal, so graphs and acknowledgements survive a
// failover. The history is round-robin, as RRDtool keeps it: a sample is folded into a 10 s, a
// 5 min and a 1 h bucket (average, minimum, maximum), and each table keeps its span (a day, 30
// days, 2 years). Folding happens when an op is applied, from the op's own time, so every copy
// holds the same tables.

/// <summary>One point of a series: a bucket's start (unix seconds) and its average, minimum and maximum.</summary>
public sealed class MetricPoint
{
    public long Time { get; set; }
    public double Avg { get; set; }
    public double Min { get; set; }
    public double Max { get; set; }
}

/// <summary>A node's series and when it was last measured.</summary>
public sealed class MetricSeriesRow
{
    public string Node { get; set; } = "";
    public string Name { get; set; } = "";
    public long Last { get; set; }
}

internal sealed class CheckRow
{
    public string Node { get; set; } = "";
    public string Name { get; set; } = "";
    public long Status { get; set; }
    public string Output { get; set; } = "";
    public string Perfdata { get; set; } = "";
    public long Time { get; set; }
}

internal sealed class AlertRow
{
    public const string Columns = "id AS Id, node AS Node, check_name AS CheckName, status AS Status, output AS Output, opened AS Opened, changed AS Changed, closed AS Closed, acked_by AS AckedBy, acked_at AS AckedAt, escalated AS Escalated, flapping AS Flapping";
    public string Id { get; set; } = "";
    public string Node { get; set; } = "";
    public string CheckName { get; set; } = "";
    public long Status { get; set; }
    public string Output { get; set; } = "";
    public long Opened { get; set; }
    public long Changed { get; set; }
    public long Closed { get; set; }
    public string AckedBy { get; set; } = "";
    public long AckedAt { get; set; }
    public long Escalated { get; set; }
    public long Flapping { get; set; }

    public AlertRecord ToRecord() => new(Id, Node, CheckName, (CheckStatus)Status, Output, Opened, Changed, Closed, AckedBy, AckedAt, Escalated != 0, Flapping != 0);
}

/// <summary>The node's last verdict of one check, as the monitor unit holds it.</summary>
public sealed record StoredCheck(string Node, CheckResult Result, long Time);

public sealed partial class Partition
{
    /// <summary>The three round-robin tables: bucket width and span, both in seconds.</summary>
    public static readonly (string Table, long Step, long Span)[] MetricTables =
    [
        ("metrics_10s", 10, 86_400),
        ("metrics_5m", 300, 30 * 86_400),
        ("metrics_1h", 3600, 730 * 86_400),
    ];

    /// <summary>Records a node's sample; returns once durable here and, in a pair, on the replica.</summary>
    public Task RecordMetricsAsync(MetricsOp sample) => SubmitAsync(ctx => { ctx.Emit(sample); return 0; });

    /// <summary>Records an alert's new state.</summary>
    public Task SaveAlertAsync(AlertRecord alert) => SubmitAsync(ctx => { ctx.Emit(new AlertOp(alert)); return 0; });

    public IReadOnlyList<MetricSeriesRow> ListSeries()
    {
        using var c = OpenReader();
        return c.Query<MetricSeriesRow>("SELECT node AS Node, name AS Name, last AS Last FROM metric_series ORDER BY node, name").AsList();
    }

    /// <summary>
    /// A series between two times (unix seconds), from the finest table that still covers
    /// <paramref name="from"/>, in buckets of at least <paramref name="minStep"/> seconds.
    /// Returns the step used and the points, oldest first; empty buckets are left out.
    /// </summary>
    public (long Step, IReadOnlyList<MetricPoint> Points) MetricHistory(string node, string name, long from, long to, long now, long minStep)
    {
        var (table, step, _) = MetricTables.FirstOrDefault(t => from >= now - t.Span, MetricTables[^1]);
        step = Math.Max(step, (minStep + step - 1) / step * step);
        using var c = OpenReader();
        var series = c.QueryFirstOrDefault<long?>("SELECT id FROM metric_series WHERE node = @node AND name = @name", new { node, name });
        if (series is null) return (step, []);
        var points = c.Query<MetricPoint>(
            $"SELECT (time / @step) * @step AS Time, avg(avg) AS Avg, min(min) AS Min, max(max) AS Max FROM {table} " +
            "WHERE series = @series AND time >= @from AND time <= @to GROUP BY time / @step ORDER BY 1",
            new { step, series, from, to }).AsList();
        return (step, points);
    }

    public IReadOnlyList<StoredCheck> ListChecks()
    {
        using var c = OpenReader();
        return [.. c.Query<CheckRow>("SELECT node AS Node, name AS Name, status AS Status, output AS Output, perfdata AS Perfdata, time AS Time FROM checks ORDER BY node, name")
            .Select(r => new StoredCheck(r.Node, new CheckResult(r.Name, (CheckStatus)r.Status, r.Output, r.Perfdata), r.Time))];
    }

    /// <summary>Open alerts and those closed at or after <paramref name="closedSince"/>, newest first.</summary>
    public IReadOnlyList<AlertRecord> ListAlerts(long closedSince)
    {
        using var c = OpenReader();
        return [.. c.Query<AlertRow>("SELECT " + AlertRow.Columns + " FROM alerts WHERE closed = 0 OR closed >= @closedSince ORDER BY opened DESC, id", new { closedSince })
            .Select(r => r.ToRecord())];
    }

    public AlertRecord? FindAlert(string id)
    {
        using var c = OpenReader();
        return c.QueryFirstOrDefault<AlertRow>("SELECT " + AlertRow.Columns + " FROM alerts WHERE id = @id", new { id })?.ToRecord();
    }

    internal sealed partial class WriteContext
    {
        private void ApplyMonitoring(JournalOp op)
        {
            switch (op)
            {
                case MetricsOp m:
                    for (var i = 0; i < m.Names.Length; i++)
                    {
                        var node = m.Node;
                        var name = m.Names[i];
                        var time = m.Time;
                        var value = m.Values[i];
                        if (!double.IsFinite(value)) continue;
                        var series = c.ExecuteScalar<long>(
                            "INSERT INTO metric_series(node, name, last) VALUES (@node, @name, @time) ON CONFLICT(node, name) DO UPDATE SET last = max(last, excluded.last) RETURNING id",
                            new { node, name, time }, tx);
                        foreach (var (table, step, _) in MetricTables)
                        {
                            var bucket = time - (time % step + step) % step;
                            c.Execute(
                                $"INSERT INTO {table}(series, time, avg, min, max, n) VALUES (@series, @bucket, @value, @value, @value, 1) " +
                                "ON CONFLICT(series, time) DO UPDATE SET avg = (avg * n + excluded.avg) / (n + 1), min = min(min, excluded.min), max = max(max, excluded.max), n = n + 1",
                                new { series, bucket, value }, tx);
                        }
                    }
                    foreach (var check in m.Checks)
                    {
                        var node = m.Node;
                        var name = check.Name;
                        var status = (long)check.Status;
                        var output = check.Output;
                        var perfdata = check.Perfdata;
                        var time = m.Time;
                        c.Execute("INSERT OR REPLACE INTO checks(node, name, status, output, perfdata, time) VALUES (@node, @name, @status, @output, @perfdata, @time)",
                            new { node, name, status, output, perfdata, time }, tx);
                    }
                    PruneMetrics(m.Time);
                    break;
                case AlertOp { Alert: var a }:
                    c.Execute(
                        """
                        INSERT OR REPLACE INTO alerts(id, node, check_name, status, output, opened, changed, closed, acked_by, acked_at, escalated, flapping)
                        VALUES (@Id, @Node, @CheckName, @Status, @Output, @Opened, @Changed, @Closed, @AckedBy, @AckedAt, @Escalated, @Flapping)
                        """,
                        new AlertRow
                        {
                            Id = a.Id, Node = a.Node, CheckName = a.Check, Status = (long)a.Status, Output = a.Output, Opened = a.Opened, Changed = a.Changed,
                            Closed = a.Closed, AckedBy = a.AckedBy, AckedAt = a.AckedAt, Escalated = a.Escalated ? 1 : 0, Flapping = a.Flapping ? 1 : 0,
                        }, tx);
                    break;
            }
        }

        /// <summary>
        /// Drops what each table no longer spans, once per 5 minutes of sample time (the op's
        /// time, so every copy prunes alike); closed alerts go after 90 days.
        /// </summary>
        private void PruneMetrics(long time)
        {
            var last = c.ExecuteScalar<long?>("SELECT value FROM meta WHERE key = 'metrics_pruned'", transaction: tx) ?? 0;
            if (time / 300 == last / 300) return;
            foreach (var (table, _, span) in MetricTables)
            {
                var before = time - span;
                c.Execute($"DELETE FROM {table} WHERE time < @before", new { before }, tx);
            }
            var stale = time - 730 * 86_400;
            c.Execute("DELETE FROM metric_series WHERE last < @stale", new { stale }, tx);
            var closed = time - 90 * 86_400;
            c.Execute("DELETE FROM alerts WHERE closed > 0 AND closed < @closed", new { closed }, tx);
            SetMeta("metrics_pruned", time);
        }
    }
}
