using System.Globalization;
using System.Text;
using Appliance.Hosting;
using Appliance.Store;

namespace Appliance.Monitoring;

/// <summary>
/// The collector of one node (issue 9). Every Monitoring:IntervalSeconds it measures the system
/// (<see cref="SystemStats"/>) and the mail figures (SMTP replies, queue, sessions, failed
/// logins, replication, units, fencing), runs the node's checks (<see cref="NodeChecks"/>), and
/// hands the sample to the monitor unit: written here when the unit is active here, else sent
/// to the peer that holds it. Where the monitor unit is active, the <see cref="Alerter"/> then
/// looks at every node's checks. The last sample also answers /metrics and `appliance check`.
/// </summary>
public sealed class MonitoringService
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("monitoring");
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private readonly ApplianceHost _host;
    private readonly MonitoringOptions _options;
    private readonly SystemStats _system;
    private readonly NodeChecks _checks;
    private Dictionary<string, long>? _previousCounters;
    private DateTimeOffset _previousTime;
    private volatile Sample? _latest;
    private bool _forwardFailed;

    /// <summary>What one round measured: gauges, rates per minute of the counters, the counters' totals, and the checks.</summary>
    public sealed record Sample(DateTimeOffset Time, IReadOnlyList<MetricValue> Gauges, IReadOnlyList<MetricValue> Rates,
        IReadOnlyList<MetricValue> Counters, IReadOnlyList<CheckResult> Checks);

    public MonitoringService(ApplianceHost host)
    {
        _host = host;
        _options = host.Options.Monitoring;
        _system = new SystemStats(watchedPaths: [host.DataDirectory]);
        _checks = new NodeChecks(_options, () => host.Endpoints, host.Certificate, host.Options.Dns.Servers,
            TimeSpan.FromSeconds(host.Options.Security.LoginFailureWindowSeconds),
            host.Options.Antivirus.Clamd.Trim() is { Length: > 0 } clamd ? new Filtering.ClamdClient(clamd, TimeSpan.FromSeconds(host.Options.Monitoring.ProbeTimeoutSeconds)) : null,
            host.Spam.Rspamd);
        Alerter = new Alerter(_options, host.Store, host.Queue, host.Identity.Name, host.Options.Node.Hostname,
            host.Options.Cluster.Enabled ? [host.Identity.Name, host.Options.Cluster.Peer] : [host.Identity.Name]);
    }

    public Alerter Alerter { get; }

    /// <summary>The last round, or null before the first.</summary>
    public Sample? Latest => _latest;

    /// <summary>Samples until stopped.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        if (_options.IntervalSeconds <= 0) return;
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(_options.IntervalSeconds));
        do
        {
            try { await RoundAsync(ct); }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { return; }
            catch (Exception ex) when (ex is IOException or InvalidOperationException or Microsoft.Data.Sqlite.SqliteException or UnitUnavailableException)
            {
                Log.Warn("monitoring round: {0}", ex.Message);
            }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Whatever one round trips on, the next one runs: a dead collector would be a silent monitoring.
                Log.Error(ex, "monitoring round failed");
            }
        }
        while (await WaitAsync(timer, ct));
    }

    /// <summary>One round: measure, check, record (or send), and evaluate alerts where the monitor unit is active.</summary>
    public async Task RoundAsync(CancellationToken ct)
    {
        var sample = await MeasureAsync(DateTimeOffset.UtcNow, ct);
        _latest = sample;
        var op = new MetricsOp(_host.Identity.Name, sample.Time.ToUnixTimeSeconds(),
            [.. sample.Gauges.Select(v => v.Name), .. sample.Rates.Select(v => v.Name)],
            [.. sample.Gauges.Select(v => v.Value), .. sample.Rates.Select(v => v.Value)], [.. sample.Checks]);
        var monitor = _host.Store.Monitor;
        if (monitor.IsPrimary)
        {
            await monitor.RecordMetricsAsync(op);
            await Alerter.EvaluateAsync(sample.Time, Math.Max(1, _options.IntervalSeconds), ct);
        }
        else if (_host.Cluster is { PeerHoldsMonitor: true } cluster)
        {
            var (exit, lines) = await cluster.ForwardMetricsAsync(Encode(op), ct);
            if (exit != 0 && !_forwardFailed) Log.Warn("monitoring: the peer did not take this node's sample: {0}", string.Join(' ', lines));
            _forwardFailed = exit != 0;
        }
    }

    /// <summary>Takes a sample the peer sent (the monitor unit is active here): exit 0 recorded, 1 refused.</summary>
    public async Task<(int Exit, List<string> Lines)> RecordForwardedAsync(byte[] encoded)
    {
        MetricsOp op;
        try { op = MetricsOp.ReadBody(new BinaryReader(new MemoryStream(encoded))); }
        catch (Exception ex) when (ex is EndOfStreamException or InvalidDataException or IOException) { return (1, [$"bad sample: {ex.Message}"]); }
        if (!_host.Store.Monitor.IsPrimary) return (1, ["the monitor unit is not active here"]);
        await _host.Store.Monitor.RecordMetricsAsync(op);
        return (0, []);
    }

    internal static byte[] Encode(MetricsOp op)
    {
        using var buffer = new MemoryStream();
        using (var w = new BinaryWriter(buffer, Encoding.UTF8, leaveOpen: true)) op.Write(w);
        return buffer.ToArray();
    }

    /// <summary>
    /// The checks as they stand now, for `appliance check`: the services are probed afresh; disk,
    /// queue and replication come from the last sample (measured now if there is none yet).
    /// </summary>
    public async Task<IReadOnlyList<CheckResult>> CheckNowAsync(CancellationToken ct)
    {
        var gauges = _latest?.Gauges ?? await Task.Run(() => Gauges(DateTimeOffset.UtcNow), ct);
        return await _checks.RunAsync(gauges, ct);
    }

    private async Task<Sample> MeasureAsync(DateTimeOffset now, CancellationToken ct)
    {
        var gauges = Gauges(now);
        var counters = Counters();
        var rates = new List<MetricValue>();
        var seconds = (now - _previousTime).TotalSeconds;
        if (_previousCounters is { } previous && seconds > 0)
        {
            foreach (var c in counters)
            {
                var before = previous.GetValueOrDefault(c.Name);
                if (c.Value < before) continue;
                rates.Add(new(RateName(c.Name), (c.Value - before) * 60 / seconds));
            }
        }
        _previousCounters = counters.ToDictionary(c => c.Name, c => (long)c.Value);
        _previousTime = now;
        var checks = await _checks.RunAsync(gauges, ct);
        return new Sample(now, gauges, rates, counters, checks);
    }

    /// <summary>smtp_rejected_total{…} is graphed as smtp_rejected_per_minute{…}.</summary>
    internal static string RateName(string counter)
    {
        var family = MetricValue.FamilyOf(counter);
        var stem = family.EndsWith("_total", StringComparison.Ordinal) ? family[..^"_total".Length] : family;
        return stem + "_per_minute" + counter[family.Length..];
    }

    private List<MetricValue> Gauges(DateTimeOffset now)
    {
        var values = new List<MetricValue>(_system.Read(now));
        long queued = 0, oldest = long.MaxValue;
        foreach (var name in _host.Store.PartitionNames)
        {
            var partition = _host.Store.Partition(name);
            if (!partition.IsPrimary) continue;
            var (count, first) = partition.QueueSummary();
            queued += count;
            if (count > 0) oldest = Math.Min(oldest, first);
        }
        values.Add(new("queue_messages", queued));
        values.Add(new("queue_oldest_seconds", queued == 0 ? 0 : Math.Max(0, (now.ToUnixTimeMilliseconds() - oldest) / 1000.0)));
        values.Add(new("imap_sessions", _host.ImapSessions));
        values.Add(new("pop3_sessions", _host.Pop3Sessions));
        values.Add(new("managesieve_sessions", _host.ManageSieveSessions));
        if (_host.Cluster is { } cluster) values.AddRange(cluster.Figures());
        return values;
    }

    private List<MetricValue> Counters()
    {
        var values = _host.Counters.Snapshot().Select(c => new MetricValue(c.Series, c.Value)).ToList();
        values.Add(new("login_failures_total", _host.Throttle.FailuresTotal));
        if (_host.Cluster is { } cluster) values.Add(new("fence_events_total", cluster.FenceEvents));
        // Families that have not happened yet are still there, at 0, so a graph and a counter exist from the start.
        foreach (var role in new[] { "mx", "submission" })
        {
            var accepted = MetricValue.Series("smtp_accepted_total", ("role", role));
            if (!values.Any(v => v.Name == accepted)) values.Add(new(accepted, 0));
        }
        return values;
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken ct)
    {
        try { return await timer.WaitForNextTickAsync(ct); }
        catch (OperationCanceledException) { return false; }
    }

    // ---- /metrics ----

    private static readonly Dictionary<string, string> Help = new(StringComparer.Ordinal)
    {
        ["cpu_percent"] = "Busy share of all CPUs over the last interval, in percent.",
        ["cpu_iowait_percent"] = "Share of CPU time waiting for I/O over the last interval, in percent.",
        ["load1"] = "Load average over 1 minute.",
        ["load5"] = "Load average over 5 minutes.",
        ["load15"] = "Load average over 15 minutes.",
        ["memory_total_bytes"] = "Memory installed.",
        ["memory_available_bytes"] = "Memory available to new work without swapping.",
        ["memory_used_percent"] = "Memory in use, in percent of the total.",
        ["swap_used_bytes"] = "Swap in use.",
        ["disk_total_bytes"] = "Size of a file system.",
        ["disk_used_bytes"] = "Space used on a file system.",
        ["disk_used_percent"] = "Space used on a file system, in percent.",
        ["disk_inodes_used_percent"] = "Inodes used on a file system, in percent.",
        ["disk_read_bytes_per_second"] = "Bytes read from a disk per second over the last interval.",
        ["disk_write_bytes_per_second"] = "Bytes written to a disk per second over the last interval.",
        ["disk_busy_percent"] = "Time a disk was busy over the last interval, in percent.",
        ["net_receive_bytes_per_second"] = "Bytes received on an interface per second over the last interval.",
        ["net_transmit_bytes_per_second"] = "Bytes sent on an interface per second over the last interval.",
        ["net_receive_errors_per_second"] = "Receive errors on an interface per second over the last interval.",
        ["net_transmit_errors_per_second"] = "Transmit errors on an interface per second over the last interval.",
        ["queue_messages"] = "Messages waiting in the outbound queues of the units active on this node.",
        ["queue_oldest_seconds"] = "Age of the oldest message waiting in those queues.",
        ["imap_sessions"] = "IMAP sessions open now.",
        ["pop3_sessions"] = "POP3 sessions open now.",
        ["managesieve_sessions"] = "ManageSieve sessions open now.",
        ["peer_up"] = "1 while the other node of the pair is heard, else 0.",
        ["unit_state"] = "State of a unit on this node: 0 stopped, 1 starting, 2 active, 3 stopping, 4 failed.",
        ["replication_in_sync"] = "1 when the replica of a unit active here is in sync, else 0.",
        ["replication_lag_operations"] = "Journal operations of a unit active here the replica has not acknowledged.",
        ["smtp_accepted_total"] = "SMTP transactions accepted (250 after DATA).",
        ["smtp_rejected_total"] = "SMTP commands or transactions refused for good (5xx), by reason.",
        ["smtp_deferred_total"] = "SMTP commands or transactions refused for now (4xx), by reason.",
        ["login_failures_total"] = "Failed logins on every protocol and the admin panel.",
        ["fence_events_total"] = "Attempts to power the peer off.",
    };

    /// <summary>
    /// The last sample in the Prometheus text format (version 0.0.4): gauges and counters with
    /// HELP and TYPE, every family under the appliance_ prefix, plus each check's status (0–3).
    /// </summary>
    public string PrometheusText()
    {
        var sample = _latest;
        var b = new StringBuilder();
        b.Append("# HELP appliance_up 1 while the node runs; the other families appear after its first sample.\n# TYPE appliance_up gauge\nappliance_up 1\n");
        if (sample is null) return b.ToString();
        Families(b, sample.Gauges, "gauge");
        Families(b, sample.Counters, "counter");
        b.Append("# HELP appliance_check_status Status of a check: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.\n# TYPE appliance_check_status gauge\n");
        foreach (var c in sample.Checks)
            b.Append("appliance_check_status").Append(MetricValue.Series("", ("check", c.Name))).Append(' ').Append((int)c.Status).Append('\n');
        b.Append("# HELP appliance_sample_timestamp_seconds When the last sample was taken (unix time).\n# TYPE appliance_sample_timestamp_seconds gauge\n")
            .Append("appliance_sample_timestamp_seconds ").Append(sample.Time.ToUnixTimeSeconds()).Append('\n');
        return b.ToString();
    }

    private static void Families(StringBuilder b, IReadOnlyList<MetricValue> values, string type)
    {
        foreach (var family in values.GroupBy(v => MetricValue.FamilyOf(v.Name)).OrderBy(g => g.Key, StringComparer.Ordinal))
        {
            var help = Help.GetValueOrDefault(family.Key, $"Appliance measurement {family.Key}.");
            b.Append("# HELP appliance_").Append(family.Key).Append(' ').Append(help).Append('\n');
            b.Append("# TYPE appliance_").Append(family.Key).Append(' ').Append(type).Append('\n');
            foreach (var v in family)
                b.Append("appliance_").Append(v.Name).Append(' ').Append(Number(v.Value)).Append('\n');
        }
    }

    private static string Number(double v) =>
        double.IsNaN(v) ? "NaN" : double.IsPositiveInfinity(v) ? "+Inf" : double.IsNegativeInfinity(v) ? "-Inf" : v.ToString("R", Inv);
}
