using Appliance.Monitoring;

namespace Appliance.Cluster;

public sealed partial class ClusterManager
{
    private long _fenceEvents;

    /// <summary>
    /// The pair's gauges as the collector measures them: whether the peer is up, and per unit its state on
    /// this node (<see cref="UnitState"/> as a number), and for a unit active here whether its
    /// replica is in sync and how many journal operations it has not acknowledged yet.
    /// </summary>
    public IEnumerable<MetricValue> Figures()
    {
        PeerSnapshot(out var alive);
        yield return new("peer_up", alive ? 1 : 0);
        foreach (var u in _units)
        {
            yield return new(MetricValue.Series("unit_state", ("unit", u.Name)), (int)u.State);
            if (u.State != UnitState.Active) continue;
            var sender = u.Sender;
            yield return new(MetricValue.Series("replication_in_sync", ("unit", u.Name)), sender is { InSync: true } ? 1 : 0);
            yield return new(MetricValue.Series("replication_lag_operations", ("unit", u.Name)),
                sender is null ? 0 : Math.Max(0, u.Partition.LastSeq - sender.AckedSeq));
        }
    }

    /// <summary>Attempts to power the peer off since this node started (a counter).</summary>
    public long FenceEvents => Interlocked.Read(ref _fenceEvents);

    /// <summary>Counts a fencing attempt (confirmed or not) for the monitoring.</summary>
    private void CountFence() => Interlocked.Increment(ref _fenceEvents);

    /// <summary>Set by the host: takes a sample the peer sent because the monitor unit is active here.</summary>
    public Func<byte[], Task<(int Exit, List<string> Lines)>>? MetricsHandler { get; set; }

    /// <summary>Sends this node's sample to the peer, which holds the monitor unit.</summary>
    public Task<(int Exit, List<string> Lines)> ForwardMetricsAsync(byte[] sample, CancellationToken ct) =>
        ForwardAsync(["metrics", Convert.ToBase64String(sample)], ct);

    /// <summary>Runs an alert acknowledgement on the peer, which holds the monitor unit.</summary>
    public Task<(int Exit, List<string> Lines)> ForwardAlertAckAsync(string id, string actor, CancellationToken ct) =>
        ForwardAsync(["alert-ack", id, actor], ct);

    /// <summary>Set by the host: acknowledges an alert for the peer (exit 0 done, 3 no such alert, 1 refused).</summary>
    public Func<string, string, Task<(int Exit, List<string> Lines)>>? AlertAckHandler { get; set; }

    /// <summary>Whether the monitor unit is active here.</summary>
    public bool HoldsMonitor => IsActiveHere(Store.MailStore.MonitorPartition);
}
