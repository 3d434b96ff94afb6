using System.Globalization;
using System.Text;
using Appliance.Monitoring;
using Appliance.Store;
using Appliance.Tests.Cluster;

namespace Appliance.Tests.Monitoring;

/// <summary>
/// Monitoring in a real pair sampling every second: both nodes' samples end up in the monitor
/// unit (node2's sent over the cluster link to node1, which holds it) and are replicated to
/// node2's copy; when node1 dies, node2 takes the unit over with the history, goes on
/// recording, and raises the "node" alert for the node that went silent.
/// </summary>
public sealed class MonitoringPairTests
{
    private static readonly string[] BothNodes = ["node1", "node2"];

    // What a test node runs: a probe per listener (SMTP, POP3, POP3S, IMAP, IMAPS; no DNSBL configured) and the node's own checks.
    private static readonly string[] CheckNames = ["certificate", "disk", "imap", "imaps", "managesieve", "pop3", "pop3s", "queue", "replication", "smtp"];

    private static Task<TestPair> StartAsync() => TestPair.StartPlacedAsync(o => o.Monitoring.IntervalSeconds = 1);

    private static long Now() => DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    /// <summary>The time of a node's last sample in a copy of the monitor unit (-1: none yet).</summary>
    private static long LastSample(Partition monitor, string node) =>
        monitor.ListSeries().Where(s => s.Node == node).Select(s => s.Last).DefaultIfEmpty(-1).Max();

    private static HashSet<(string, string)> Keys(IEnumerable<MetricSeriesRow> series) => [.. series.Select(s => (s.Node, s.Name))];

    /// <summary>
    /// The 10 s buckets of the given series up to <paramref name="end"/> in one copy, as text
    /// (every bucket compared must be complete on both copies: it ends before their last sample).
    /// </summary>
    private static string Dump(Partition monitor, IEnumerable<(string Node, string Name)> series, long end)
    {
        var b = new StringBuilder();
        foreach (var (node, name) in series.Order())
        {
            var (step, points) = monitor.MetricHistory(node, name, end - 3600, end, Now(), 0);
            b.Append(CultureInfo.InvariantCulture, $"{node} {name} step {step}\n");
            foreach (var p in points) b.Append(CultureInfo.InvariantCulture, $"  {p.Time} {p.Avg:R} {p.Min:R} {p.Max:R}\n");
        }
        return b.ToString();
    }

    /// <summary>A node's queue_messages points in a copy (the queues are empty in these tests: every point must be 0).</summary>
    private static IReadOnlyList<MetricPoint> Queue(Partition monitor, string node, long from, long to) =>
        monitor.MetricHistory(node, "queue_messages", from, to, Now(), 0).Points;

    [Fact]
    public async Task BothNodesSamples_AreRecordedInTheMonitorUnit_AndReplicatedToTheOtherCopy()
    {
        await using var pair = await StartAsync();
        await pair.WaitActiveAsync(pair.Node1, "monitor");
        await pair.WaitInSyncAsync(pair.Node1, "monitor");
        var holder = pair.Node1.Store.Monitor;
        var replica = pair.Node2.Store.Monitor;
        Assert.True(holder.IsPrimary);
        Assert.False(replica.IsPrimary);

        // node1 records its own samples, node2 sends its own to node1 over the cluster link.
        await pair.WaitForAsync(() => BothNodes.All(n => LastSample(holder, n) > 0), "samples of node1 and node2 in the monitor unit on node1", 30);
        var started = Now();
        // A few complete 10 s buckets of each node: waited for in the data, not on the clock.
        await pair.WaitForAsync(() => BothNodes.All(n => LastSample(holder, n) >= started + 20), "20 s of samples of both nodes", 60);
        var cutoff = Now();
        var seriesAtCutoff = Keys(holder.ListSeries());
        // Every sample taken up to the cutoff is in both copies once each node has a later one there.
        await pair.WaitForAsync(() => BothNodes.All(n => LastSample(holder, n) > cutoff && LastSample(replica, n) > cutoff),
            "samples after the cutoff on both copies", 30);

        var holderSeries = holder.ListSeries();
        var replicaSeries = replica.ListSeries();
        foreach (var node in BothNodes)
        {
            Assert.Contains((node, "queue_messages"), seriesAtCutoff);
            Assert.Contains((node, "load1"), seriesAtCutoff);
            Assert.Contains((node, "peer_up"), seriesAtCutoff);
            // Every unit's state on every node, the service units added by themselves (the pair configures store-a and store-b).
            foreach (var unit in new[] { "store-a", "store-b", "monitor", "db" })
                Assert.Contains((node, MetricValue.Series("unit_state", ("unit", unit))), seriesAtCutoff);
        }
        Assert.Equal(BothNodes, holderSeries.Select(s => s.Node).Distinct());
        // The replica is behind the holder at most: it has every series the holder had at the cutoff, and none the holder lacks.
        Assert.Subset(Keys(replicaSeries), seriesAtCutoff);
        Assert.Subset(Keys(holderSeries), Keys(replicaSeries));

        // Complete buckets (those ending at or before the cutoff) are the same, to the last bit, in both copies.
        var end = cutoff / 10 * 10 - 1;
        var onHolder = Dump(holder, seriesAtCutoff, end);
        Assert.Equal(onHolder, Dump(replica, seriesAtCutoff, end));
        foreach (var node in BothNodes)
        {
            var points = Queue(replica, node, started - 3600, end);
            Assert.NotEmpty(points);
            Assert.All(points, p => Assert.Equal((0.0, 0.0, 0.0), (p.Avg, p.Min, p.Max)));
        }

        // Both nodes' checks are in the monitor unit, on both copies, from a sample after the cutoff.
        foreach (var copy in new[] { holder, replica })
        {
            var checks = copy.ListChecks();
            foreach (var node in BothNodes)
            {
                var mine = checks.Where(c => c.Node == node).ToList();
                Assert.Equal(CheckNames, mine.Select(c => c.Result.Name));
                Assert.All(mine, c => Assert.True(c.Time > cutoff, $"{node}/{c.Result.Name} from {c.Time}, not after {cutoff}"));
                var smtp = mine.Single(c => c.Result.Name == "smtp").Result;
                Assert.Equal(CheckStatus.Ok, smtp.Status);
                Assert.StartsWith("SMTP OK - 220 ", smtp.Output);
                Assert.Equal(CheckStatus.Ok, mine.Single(c => c.Result.Name == "queue").Result.Status);
            }
        }
    }

    [Fact]
    public async Task WhenTheMonitorHolderDies_TheOtherNodeKeepsTheHistory_GoesOnRecording_AndAlertsThatTheDeadNodeIsSilent()
    {
        await using var pair = await StartAsync();
        await pair.WaitActiveAsync(pair.Node1, "monitor");
        await pair.WaitInSyncAsync(pair.Node1, "monitor");
        var replica = pair.Node2.Store.Monitor;
        await pair.WaitForAsync(() => BothNodes.All(n => LastSample(replica, n) > 0), "samples of both nodes in node2's copy", 30);
        var started = Now();
        await pair.WaitForAsync(() => BothNodes.All(n => LastSample(replica, n) >= started + 12), "a complete 10 s bucket of both nodes", 60);
        var mark = Now();
        await pair.WaitForAsync(() => BothNodes.All(n => LastSample(replica, n) > mark), "samples after the mark in node2's copy", 30);
        var end = mark / 10 * 10 - 1;
        var series = Keys(replica.ListSeries());
        var onHolder = Dump(pair.Node1.Store.Monitor, series, end);
        var onReplica = Dump(replica, series, end);
        Assert.Equal(onHolder, onReplica);
        foreach (var node in BothNodes) Assert.NotEmpty(Queue(replica, node, started - 3600, end));

        await pair.Node1.CrashAsync();
        var crashed = Now();
        await pair.WaitForAsync(() => pair.Node2.Store.Monitor.IsPrimary, "the monitor unit active on node2", 60);
        await pair.WaitForAsync(() => pair.Node2.Store.Db.IsPrimary, "the db unit, node1's too, active on node2", 10);
        var monitor = pair.Node2.Store.Monitor;
        var takeover = Now();

        // The history of both nodes from before the crash is there, as it was on node1.
        Assert.Equal(onHolder, Dump(monitor, series, end));
        foreach (var node in BothNodes)
        {
            var points = Queue(monitor, node, started - 3600, end);
            Assert.NotEmpty(points);
            Assert.All(points, p => Assert.True(p.Time < crashed, $"{node} point at {p.Time}, crash at {crashed}"));
        }

        // node2 records its own samples in the unit it now holds; node1's stop at the crash.
        var nextBucket = (takeover / 10 + 1) * 10; // the first 10 s bucket that starts after the takeover
        await pair.WaitForAsync(() => LastSample(monitor, "node2") > nextBucket, "node2's samples recorded on node2 after the takeover", 30);
        Assert.NotEmpty(Queue(monitor, "node2", nextBucket, Now()));
        var lastOfNode1 = LastSample(monitor, "node1");
        Assert.InRange(lastOfNode1, mark + 1, crashed);

        // node1 has been silent for more than 30 s (3 intervals, at least 30 s): a CRITICAL "node" alert on node2.
        AlertRecord? silent = null;
        await pair.WaitForAsync(() => (silent = monitor.ListAlerts(0).FirstOrDefault(a => a.Node == "node1" && a.Check == "node")) is not null,
            "the node alert for node1 on node2", 90);
        Assert.Equal(CheckStatus.Critical, silent!.Status);
        Assert.True(silent.IsOpen);
        Assert.StartsWith("NODE CRITICAL - node1 has sent no sample for ", silent.Output);
        Assert.True(silent.Opened > lastOfNode1 + 30, $"opened at {silent.Opened}, node1's last sample at {lastOfNode1}");
        Assert.Equal("", silent.AckedBy);
        // node2 reports: no alert for it being silent.
        Assert.DoesNotContain(monitor.ListAlerts(0), a => a.Node == "node2" && a.Check == "node");
        Assert.Equal(lastOfNode1, LastSample(monitor, "node1"));
    }
}
