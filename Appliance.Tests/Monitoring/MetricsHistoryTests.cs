using System.Globalization;
using System.Text;
using Appliance.Monitoring;
using Appliance.Store;
using Microsoft.Data.Sqlite;

namespace Appliance.Tests.Monitoring;

/// <summary>
/// The monitoring history and alert state in a real monitor partition: samples folded into the
/// 10 s / 5 min / 1 h round-robin tables, read back at the resolution a range needs, pruned by
/// sample time; the last checks per node; alerts; and all of it through the journal (encoding,
/// reopen, rebuild of the index from the journal, a replica fed the records).
/// </summary>
public sealed class MetricsHistoryTests : IAsyncLifetime
{
    // An hour boundary (so also a 5 min and a 10 s one): every bucket below is easy to name.
    private const long T0 = 1_700_006_400;
    private const long Day = 86_400;
    private readonly string _root = Path.Combine(Path.GetTempPath(), "appliance-metrics-" + Guid.NewGuid().ToString("N")[..12]);
    private MailStore _store = null!;

    private Partition Monitor => _store.Monitor;
    private string MonitorDir => Path.Combine(_root, "units", MailStore.MonitorPartition);

    public Task InitializeAsync()
    {
        _store = Open();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        SqliteConnection.ClearAllPools();
        try { System.IO.Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
    }

    private MailStore Open() => MailStore.Open(_root, [MailStore.MonitorPartition], 1 << 20);

    private Task RecordAsync(string node, long time, params (string Name, double Value)[] values) =>
        Monitor.RecordMetricsAsync(new MetricsOp(node, time, [.. values.Select(v => v.Name)], [.. values.Select(v => v.Value)], []));

    private Task RecordChecksAsync(string node, long time, params CheckResult[] checks) =>
        Monitor.RecordMetricsAsync(new MetricsOp(node, time, [], [], checks));

    private static (long Time, double Avg, double Min, double Max) P(long time, double avg, double min, double max) => (time, avg, min, max);

    private static (long Time, double Avg, double Min, double Max) P(long time, double value) => (time, value, value, value);

    private static (long Step, (long Time, double Avg, double Min, double Max)[] Points) History(Partition p, string node, string name, long from, long to, long now, long minStep = 0)
    {
        var (step, points) = p.MetricHistory(node, name, from, to, now, minStep);
        return (step, [.. points.Select(x => (x.Time, x.Avg, x.Min, x.Max))]);
    }

    /// <summary>
    /// Six samples of one series: four in the 10 s bucket T0..T0+9 / T0+10..19, one 5 min later
    /// and one an hour later, so each table holds different buckets.
    /// </summary>
    private async Task RecordSixSamplesAsync()
    {
        await RecordAsync("node1", T0, ("load1", 10));
        await RecordAsync("node1", T0 + 4, ("load1", 20));
        await RecordAsync("node1", T0 + 9, ("load1", 60));
        await RecordAsync("node1", T0 + 10, ("load1", 5));
        await RecordAsync("node1", T0 + 300, ("load1", 100));
        await RecordAsync("node1", T0 + 3600, ("load1", 7));
    }

    [Fact]
    public async Task Samples_AreFoldedIntoTenSecondFiveMinuteAndHourBuckets_AndARangeIsReadFromTheFinestTableCoveringIt()
    {
        await RecordSixSamplesAsync();

        // A range of an hour: the 10 s table. 10, 20, 60 share the bucket T0 (average 30).
        var hour = History(Monitor, "node1", "load1", T0, T0 + 3600, now: T0 + 3600);
        Assert.Equal(10, hour.Step);
        Assert.Equal([P(T0, 30, 10, 60), P(T0 + 10, 5), P(T0 + 300, 100), P(T0 + 3600, 7)], hour.Points);

        // A week back: the 10 s table no longer covers the start, the 5 min one does
        // (10, 20, 60, 5 in the bucket T0: average 23.75).
        var week = History(Monitor, "node1", "load1", T0, T0 + 7 * Day, now: T0 + 7 * Day);
        Assert.Equal(300, week.Step);
        Assert.Equal([P(T0, 23.75, 5, 60), P(T0 + 300, 100), P(T0 + 3600, 7)], week.Points);

        // A year back: the 1 h table (the first five samples share the hour T0: average 39).
        var year = History(Monitor, "node1", "load1", T0, T0 + 365 * Day, now: T0 + 365 * Day);
        Assert.Equal(3600, year.Step);
        Assert.Equal([P(T0, 39, 5, 100), P(T0 + 3600, 7)], year.Points);

        // The range bounds the buckets' start times, in every table.
        Assert.Equal([P(T0 + 10, 5), P(T0 + 300, 100)], History(Monitor, "node1", "load1", T0 + 10, T0 + 300, now: T0 + 3600).Points);
        // Another node's series of the same name, and an unknown series, are other (empty) histories.
        var other = History(Monitor, "node2", "load1", T0, T0 + 3600, now: T0 + 3600);
        Assert.Equal(10, other.Step);
        Assert.Empty(other.Points);
        Assert.Empty(History(Monitor, "node1", "load5", T0, T0 + 3600, now: T0 + 3600).Points);

        var series = Assert.Single(Monitor.ListSeries());
        Assert.Equal(("node1", "load1", T0 + 3600), (series.Node, series.Name, series.Last));
    }

    [Fact]
    public async Task AMinimumStep_MergesBuckets_AverageWeightedBySamples_MinimumOfMinima_MaximumOfMaxima()
    {
        await RecordSixSamplesAsync();

        // Buckets of 5 min from the 10 s table: T0 (3 samples, 30, 10..60) and T0+10 (5) become one
        // point of 4 samples, the same as the 5 min table says: (90 + 5) / 4.
        var merged = History(Monitor, "node1", "load1", T0, T0 + 3600, now: T0 + 3600, minStep: 300);
        Assert.Equal(300, merged.Step);
        Assert.Equal([P(T0, 23.75, 5, 60), P(T0 + 300, 100), P(T0 + 3600, 7)], merged.Points);

        // A step that is no multiple of the table's is rounded up to one (25 s -> 30 s).
        var rounded = History(Monitor, "node1", "load1", T0, T0 + 3600, now: T0 + 3600, minStep: 25);
        Assert.Equal(30, rounded.Step);
        Assert.Equal([P(T0, 23.75, 5, 60), P(T0 + 300, 100), P(T0 + 3600, 7)], rounded.Points);

        // A step below the table's keeps the table's.
        Assert.Equal(10, History(Monitor, "node1", "load1", T0, T0 + 3600, now: T0 + 3600, minStep: 3).Step);

        // Hours from the 5 min table: T0 (4 samples, 23.75, 5..60) and T0+300 (100) -> 39, as the hour table says.
        var hours = History(Monitor, "node1", "load1", T0, T0 + 7 * Day, now: T0 + 7 * Day, minStep: 3600);
        Assert.Equal(3600, hours.Step);
        Assert.Equal([P(T0, 39, 5, 100), P(T0 + 3600, 7)], hours.Points);
    }

    [Fact]
    public async Task ASampleTwoDaysLater_PrunesTheFirstDaysTenSecondRows_ButKeepsItsFiveMinuteAndHourRows()
    {
        await RecordSixSamplesAsync();
        Assert.Equal((4, 3, 2), RowCounts());

        var later = T0 + 2 * Day;
        await RecordAsync("node1", later, ("load1", 1));

        // 10 s rows older than a day before the sample are gone; only the new bucket is left.
        Assert.Equal((1, 4, 3), RowCounts());
        Assert.Equal([P(later, 1)], History(Monitor, "node1", "load1", later - Day, later, now: later).Points);
        // The 5 min and 1 h rows of the first day are still there.
        var fiveMinutes = History(Monitor, "node1", "load1", T0, later, now: later);
        Assert.Equal(300, fiveMinutes.Step);
        Assert.Equal([P(T0, 23.75, 5, 60), P(T0 + 300, 100), P(T0 + 3600, 7), P(later, 1)], fiveMinutes.Points);
        var hours = History(Monitor, "node1", "load1", T0, later, now: later + 60 * Day);
        Assert.Equal(3600, hours.Step);
        Assert.Equal([P(T0, 39, 5, 100), P(T0 + 3600, 7), P(later, 1)], hours.Points);

        // 40 days on, the first day's 5 min rows are gone too; the hours stay (two years).
        var month = later + 40 * Day;
        await RecordAsync("node1", month, ("load1", 2));
        Assert.Equal((1, 1, 4), RowCounts());
        Assert.Equal([P(T0, 39, 5, 100), P(T0 + 3600, 7), P(later, 1), P(month, 2)],
            History(Monitor, "node1", "load1", T0, month, now: month).Points);

        // A series nothing was measured for in two years disappears with its rows.
        var years = T0 + 800 * Day;
        await RecordAsync("node2", years, ("load5", 3));
        Assert.Equal([("node2", "load5", years)], Monitor.ListSeries().Select(s => (s.Node, s.Name, s.Last)));
        Assert.Equal((1, 1, 1), RowCounts());
    }

    [Fact]
    public async Task NonFiniteValues_AreSkipped()
    {
        await RecordAsync("node1", T0, ("load1", 4), ("nan", double.NaN), ("inf", double.PositiveInfinity));
        await RecordAsync("node1", T0 + 1, ("load1", double.NaN), ("nan", 3), ("inf", double.NegativeInfinity));

        // No series for what was never finite; load1's bucket holds only its one finite sample.
        Assert.Equal([("node1", "load1", T0), ("node1", "nan", T0 + 1)], Monitor.ListSeries().Select(s => (s.Node, s.Name, s.Last)));
        Assert.Equal([P(T0, 4)], History(Monitor, "node1", "load1", T0, T0 + 60, now: T0 + 60).Points);
        Assert.Equal([P(T0, 3)], History(Monitor, "node1", "nan", T0, T0 + 60, now: T0 + 60).Points);
        Assert.Empty(History(Monitor, "node1", "inf", T0, T0 + 60, now: T0 + 60).Points);
    }

    [Fact]
    public async Task ASamplesChecks_ReplaceThatNodesPreviousOnes_AndLeaveTheOtherNodes()
    {
        await RecordChecksAsync("node1", T0,
            new CheckResult("smtp", CheckStatus.Ok, "SMTP OK - 220 mx.test in 3 ms on port 25", "time=0.003000s;;;0"),
            new CheckResult("dnsbl", CheckStatus.Critical, "DNSBL CRITICAL - 192.0.2.1 on zen.test"));
        await RecordChecksAsync("node2", T0 + 1, new CheckResult("smtp", CheckStatus.Warning, "SMTP WARNING - slow"));
        await RecordChecksAsync("node1", T0 + 10, new CheckResult("smtp", CheckStatus.Critical, "SMTP CRITICAL - port 25: connection refused"));

        // node1's last sample has no dnsbl check any more (the block lists were turned off):
        // its old verdict must not linger, or the alert on it could never close.
        Assert.Equal(
            [
                new StoredCheck("node1", new CheckResult("smtp", CheckStatus.Critical, "SMTP CRITICAL - port 25: connection refused"), T0 + 10),
                new StoredCheck("node2", new CheckResult("smtp", CheckStatus.Warning, "SMTP WARNING - slow"), T0 + 1),
            ],
            Monitor.ListChecks());
    }

    private static AlertRecord Alert(string id, string check, long opened, long closed = 0) =>
        new(id, "node1", check, closed == 0 ? CheckStatus.Critical : CheckStatus.Ok, $"{check} output", opened, closed == 0 ? opened : closed, closed, "", 0, false, false);

    [Fact]
    public async Task AnAlertSavedTwice_KeepsItsLastState_AndClosedAlertsAreListedOnlyWhenClosedSinceTheTimeAsked()
    {
        var open = Alert("a1", "disk", T0 + 300);
        await Monitor.SaveAlertAsync(open);
        var acked = open with { Status = CheckStatus.Warning, Output = "DISK WARNING - 85%", Changed = T0 + 400, AckedBy = "ops", AckedAt = T0 + 410, Escalated = true, Flapping = true };
        await Monitor.SaveAlertAsync(acked);
        Assert.Equal(acked, Monitor.FindAlert("a1"));
        Assert.Equal([acked], Monitor.ListAlerts(0));

        var closedEarly = Alert("a2", "smtp", T0 + 100, closed: T0 + 150);
        var closedLate = Alert("a3", "imap", T0 + 200, closed: T0 + 250);
        await Monitor.SaveAlertAsync(closedEarly);
        await Monitor.SaveAlertAsync(closedLate);

        // Newest first; open ones always; closed ones when closed at or after the time given.
        Assert.Equal([acked, closedLate, closedEarly], Monitor.ListAlerts(0));
        Assert.Equal([acked, closedLate, closedEarly], Monitor.ListAlerts(T0 + 150));
        Assert.Equal([acked, closedLate], Monitor.ListAlerts(T0 + 151));
        Assert.Equal([acked, closedLate], Monitor.ListAlerts(T0 + 250));
        Assert.Equal([acked], Monitor.ListAlerts(T0 + 251));
        Assert.Null(Monitor.FindAlert("a4"));

        // Closed alerts are forgotten 90 days after they closed (pruned with a sample); open ones stay.
        await RecordAsync("node1", T0 + 150 + 91 * Day, ("load1", 1));
        Assert.Equal([acked], Monitor.ListAlerts(0));
        Assert.Null(Monitor.FindAlert("a2"));
    }

    [Fact]
    public void MetricsAndAlertOps_SurviveTheJournalEncoding()
    {
        var metrics = new MetricsOp("node2", T0 + 7,
            ["load1", "disk_used_percent{fs=\"/var\"}", "nan", "cpu_percent"],
            [0.25, 97.5, double.NaN, -0.0],
            [
                new CheckResult("smtp", CheckStatus.Ok, "SMTP OK - 220 mx.test ESMTP in 3 ms", "time=0.003000s;;;0"),
                new CheckResult("certificate", CheckStatus.Unknown, "CERTIFICATE UNKNOWN - « no certificate »"),
            ]);
        var read = Assert.IsType<MetricsOp>(RoundTrip(metrics));
        Assert.Equal((metrics.Node, metrics.Time), (read.Node, read.Time));
        Assert.Equal(metrics.Names, read.Names);
        Assert.Equal(metrics.Values.Select(BitConverter.DoubleToInt64Bits), read.Values.Select(BitConverter.DoubleToInt64Bits));
        Assert.Equal(metrics.Checks, read.Checks);

        var alert = new AlertOp(new AlertRecord("0a1b2c3d4e5f", "node1", "node", CheckStatus.Critical, "NODE CRITICAL - node1 has sent no sample for 31 s",
            T0, T0 + 5, T0 + 60, "ops@example.test", T0 + 30, true, true));
        Assert.Equal(alert, RoundTrip(alert));
    }

    private static JournalOp RoundTrip(JournalOp op)
    {
        using var buffer = new MemoryStream();
        using (var w = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true)) op.Write(w);
        buffer.Position = 0;
        using var r = new BinaryReader(buffer, Encoding.UTF8);
        var read = JournalOp.Read(op.Type, r);
        Assert.Equal(buffer.Length, buffer.Position); // the whole record, nothing more
        return read;
    }

    /// <summary>A history with every kind of state: three nodes' series over three days, checks, open and closed alerts.</summary>
    private async Task BuildHistoryAsync()
    {
        await RecordSixSamplesAsync();
        await Monitor.SaveAlertAsync(Alert("a1", "disk", T0 + 20));
        for (var i = 0; i < 30; i++)
            await Monitor.RecordMetricsAsync(new MetricsOp(i % 2 == 0 ? "node1" : "node2", T0 + Day + i * 7,
                ["cpu_percent", "queue_messages"], [i * 1.5, i % 4],
                [new CheckResult("queue", i % 3 == 0 ? CheckStatus.Warning : CheckStatus.Ok, $"QUEUE {i}")]));
        await Monitor.SaveAlertAsync(Alert("a1", "disk", T0 + 20, closed: T0 + Day + 100));
        await Monitor.SaveAlertAsync(Alert("a2", "queue", T0 + Day + 150));
        await RecordAsync("node1", T0 + 2 * Day + 5, ("load1", 9)); // prunes the first day's 10 s rows
    }

    /// <summary>Everything the monitor partition answers, each table read on its own, as text.</summary>
    private static string Dump(Partition p)
    {
        var b = new StringBuilder();
        foreach (var s in p.ListSeries())
        {
            b.Append(CultureInfo.InvariantCulture, $"series {s.Node} {s.Name} {s.Last}\n");
            // "now" just past "from" reads the 10 s table, a day on the 5 min one, 30 days on the hours.
            foreach (var now in new[] { 0, Day + 1, 30 * Day + 1 })
                foreach (var x in p.MetricHistory(s.Node, s.Name, 0, long.MaxValue, now, 0).Points)
                    b.Append(CultureInfo.InvariantCulture, $"  {now} {x.Time} {x.Avg:R} {x.Min:R} {x.Max:R}\n");
        }
        foreach (var c in p.ListChecks()) b.Append(CultureInfo.InvariantCulture, $"{c}\n");
        foreach (var a in p.ListAlerts(0)) b.Append(CultureInfo.InvariantCulture, $"{a}\n");
        return b.ToString();
    }

    [Fact]
    public async Task TheHistory_SurvivesAReopen_AndIsRebuiltFromTheJournalAlone_AndOnAReplicaFedTheRecords()
    {
        await BuildHistoryAsync();
        var dump = Dump(Monitor);
        var lastSeq = Monitor.LastSeq;
        Assert.Contains("series node2 queue_messages", dump);
        Assert.Contains("  0 1700092820 4.5 4.5 4.5\n", dump); // node2's cpu_percent at T0 + 1 day + 21 s (i = 3), 10 s table
        Assert.DoesNotContain("  0 1700092800 ", dump); // the 10 s bucket at T0 + 1 day was pruned by the last sample
        Assert.Equal(["a2", "a1"], Monitor.ListAlerts(0).Select(a => a.Id));

        // Reopened as after a restart.
        await _store.DisposeAsync();
        _store = Open();
        Assert.Equal(dump, Dump(Monitor));
        Assert.Equal(lastSeq, Monitor.LastSeq);

        // The index lost: every table is folded again from the journal, pruning included.
        await _store.DisposeAsync();
        foreach (var file in System.IO.Directory.EnumerateFiles(MonitorDir, "index.db*")) File.Delete(file);
        _store = Open();
        Assert.Equal(dump, Dump(Monitor));

        // A replica fed the records reaches the same tables.
        var replicaDir = Path.Combine(_root, "replica");
        await using var replica = Partition.Open(MailStore.MonitorPartition, replicaDir, 1 << 20);
        replica.IsPrimary = false;
        await replica.ApplyReplicatedAsync(Monitor.ReadJournal(0).ToList());
        Assert.Equal(dump, Dump(replica));

        // And the reopened partition goes on recording where it was.
        await RecordAsync("node1", T0 + 2 * Day + 6, ("load1", 11));
        Assert.Equal([P(T0 + 2 * Day, 10, 9, 11)], History(Monitor, "node1", "load1", T0 + 2 * Day, T0 + 3 * Day, now: T0 + 2 * Day + 6).Points);
    }

    /// <summary>Rows in the 10 s, 5 min and 1 h tables (what MetricHistory cannot show: rows older than the range a table is read for).</summary>
    private (long TenSeconds, long FiveMinutes, long Hours) RowCounts()
    {
        using var c = new SqliteConnection(new SqliteConnectionStringBuilder { DataSource = Path.Combine(MonitorDir, "index.db"), Mode = SqliteOpenMode.ReadOnly, Pooling = false }.ToString());
        c.Open();
        long Count(string table)
        {
            using var cmd = c.CreateCommand();
            cmd.CommandText = $"SELECT count(*) FROM {table}";
            return (long)cmd.ExecuteScalar()!;
        }
        return (Count("metrics_10s"), Count("metrics_5m"), Count("metrics_1h"));
    }
}
