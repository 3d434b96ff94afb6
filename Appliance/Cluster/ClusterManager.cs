using System.Diagnostics;
using System.Security.Cryptography;
using Appliance.Store;

namespace Appliance.Cluster;

/// <summary>
/// The cluster manager of one node of a pair (DESIGN.md §2): heartbeats, the state of every
/// logical unit, fencing and takeover, planned switchover and failback.
/// Implementation notes (invariants):
/// - All decisions run on one loop, once per heartbeat interval or at once when a heartbeat
///   changes something they depend on, from a snapshot of the peer's last heartbeat; the
///   network tasks only record what they heard (heartbeats are sent on their own timer).
/// - A unit becomes active here only (a) with the peer alive, after the peer has seen this node
///   announce "starting" and still reports the unit inactive on its side, or (b) with the peer
///   silent on every link for the dead-time, after a confirmed fence. A copy marked outdated is
///   never promoted.
/// - A primary whose replica is unreachable holds every acknowledgement until the peer agrees
///   (over any heartbeat link) to be outdated, or is fenced: so no acknowledged write exists
///   only on a node that may lose the unit.
/// - Every promotion starts a new generation (epoch, node, first seq) in the unit's history.
/// </summary>
public sealed partial class ClusterManager : IAsyncDisposable
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("cluster");
    private readonly ClusterOptions _options;
    private readonly string _self;
    private readonly MailStore _store;
    private readonly string _dataDir;
    private readonly Fencing.IFenceDriver _fence;
    private readonly Func<string[], bool, CancellationToken, Task> _addresses;
    private readonly List<Unit> _units = [];
    private readonly long _incarnation = BitConverter.ToInt64(RandomNumberGenerator.GetBytes(8)) & long.MaxValue;
    private readonly CancellationTokenSource _stop = new();
    private readonly CancellationTokenSource _loopStop = new();
    private readonly SemaphoreSlim _wake = new(0, 1);
    private volatile bool _leaving;
    private volatile bool _crashed;
    private readonly Lock _gate = new();
    private Task _loop = Task.CompletedTask;
    private long _seq;
    private bool _ready;
    private bool _standby;
    private bool _peerWasAlive;
    private bool _peerEverSeen;
    /// <summary>The peer is known not to run any unit: fenced, granted away by the witness, or it left cleanly.</summary>
    private volatile bool _peerOff;
    private Task? _fencing;
    private CancellationTokenSource? _fencingStop;
    private long _outdateTokens;
    private readonly WitnessClient? _witness;
    /// <summary>This node holds the witness's grant (renewed while the peer is dead).</summary>
    private volatile bool _witnessHeld;
    private long _witnessRenewedAt;
    private Task _witnessRenewal = Task.CompletedTask;
    /// <summary>Set when this node lost the witness: the loop stops every unit it runs.</summary>
    private volatile bool _selfFence;

    /// <param name="fence">Powers the peer off before a takeover.</param>
    /// <param name="addresses">Adds (true) or removes (false) a unit's floating addresses.</param>
    public ClusterManager(ClusterOptions options, string self, MailStore store, string dataDir,
        Fencing.IFenceDriver fence,
        Func<string[], bool, CancellationToken, Task> addresses)
    {
        Validate(options, self, store.PartitionNames);
        _options = options;
        _self = self;
        _store = store;
        _dataDir = dataDir;
        _fence = fence;
        _addresses = addresses;
        _standby = File.Exists(StandbyMarker);
        if (options.Witness.Length > 0) _witness = new WitnessClient(options.Witness, options.Secret, self, options.Peer);
        foreach (var u in UnitsOf(options, store, self))
        {
            var partition = store.Partition(MailStore.PartitionOfUnit(u.Name)!);
            var dir = Path.Combine(dataDir, "units", u.Name);
            var unit = new Unit(u.Name, partition, dir, UnitRecord.Load(dir), u.Preferred, u.Addresses) { PendingTails = PendingTails(dir).Count };
            // Every copy starts as a replica; the loop decides what becomes active here.
            partition.IsPrimary = false;
            _units.Add(unit);
        }
        _outdateTokens = _incarnation & 0xFFFF_FFFF_0000;
    }

    /// <summary>Refuses a pair section that cannot work, naming the key (before any data is opened).</summary>
    public static void Validate(ClusterOptions options, string self, IEnumerable<string> partitions)
    {
        if (options.Secret.Length < 16) throw new InvalidOperationException("Cluster:Secret must be set (16 characters or more) on both nodes");
        if (options.Links.Length == 0) throw new InvalidOperationException("Cluster:Links must list at least one link to the peer");
        if (options.Peer == self) throw new InvalidOperationException($"Cluster:Peer names this node ({self})");
        foreach (var link in options.Links)
            if (!System.Net.IPAddress.TryParse(link.Local, out _) || !System.Net.IPAddress.TryParse(link.Peer, out _))
                throw new InvalidOperationException($"Cluster:Links: '{link.Local}' → '{link.Peer}' are not IP addresses");
        if (options.Witness.Length > 0) WitnessClient.ParseEndpoint(options.Witness);
        if (options.Units.Length > 0)
            foreach (var p in partitions.Where(p => !MailStore.IsServicePartition(p)))
                if (!options.Units.Any(u => u.Name == MailStore.UnitName(p)))
                    throw new InvalidOperationException($"Cluster:Units has no unit {MailStore.UnitName(p)} for partition {p}");
        foreach (var u in options.Units)
            if (MailStore.PartitionOfUnit(u.Name) is null)
                throw new InvalidOperationException($"Cluster:Units: unknown unit '{u.Name}' (store-NAME for a mailbox partition, {string.Join(" or ", MailStore.ServicePartitions)})");
        foreach (var address in options.Units.SelectMany(u => u.Addresses)) FloatingAddress.Parse(address);
    }

    private string StandbyMarker => Path.Combine(_dataDir, "standby");

    /// <summary>
    /// The configured units, or one per hosted mail partition preferring the two nodes in turn
    /// (by name order); then each service unit (monitor, db) that is not configured, preferring
    /// the first node.
    /// </summary>
    /// <remarks>
    /// DESIGN.md's table puts the monitor on node2. It defaults to the first node instead so that
    /// the first node still holds more units than the second: after a cut between two live
    /// nodes the one holding fewer units waits before fencing, and that keeps the first node
    /// the survivor as before the monitor unit existed. The db unit is on node1 as DESIGN.md has
    /// it (beside the webmail unit it serves). Cluster:Units can place either anywhere.
    /// </remarks>
    private static IEnumerable<UnitOptions> UnitsOf(ClusterOptions options, MailStore store, string self)
    {
        string[] nodes = [.. new[] { self, options.Peer }.Order(StringComparer.Ordinal)];
        if (options.Units.Length > 0)
        {
            // (Validate made sure every hosted partition belongs to a unit: a partition outside
            // any would take writes on both nodes.)
            foreach (var u in options.Units) yield return u;
        }
        else
        {
            var i = 0;
            foreach (var p in store.MailboxPartitionNames)
                yield return new UnitOptions { Name = MailStore.UnitName(p), Preferred = nodes[i++ % 2] };
        }
        foreach (var service in MailStore.ServicePartitions)
            if (!options.Units.Any(u => u.Name == service))
                yield return new UnitOptions { Name = service, Preferred = nodes[0] };
    }

    public async Task StartAsync()
    {
        StartNetwork();
        _ready = _options.StartWithoutPeer;
        if (!_ready) Log.Info("waiting for peer {0} before taking any unit (two-node start rule; Cluster:StartWithoutPeer overrides)", _options.Peer);
        _loop = Task.Run(LoopAsync);
    }

    /// <summary>
    /// Ticks every heartbeat interval, or at once when the peer's heartbeat changed something
    /// a decision depends on (a unit state, a handover, an outdate request, the echo of a
    /// "starting"): a switchover is a few round trips, not a few intervals.
    /// </summary>
    private async Task LoopAsync()
    {
        var interval = TimeSpan.FromMilliseconds(_options.HeartbeatIntervalMs);
        while (!_loopStop.IsCancellationRequested)
        {
            Volatile.Write(ref _tickStarted, Now);
            try { await TickAsync(); }
            catch (Exception ex) { Log.Error(ex, "cluster loop"); }
            Volatile.Write(ref _tickEnded, Now);
            try { await _wake.WaitAsync(interval, _loopStop.Token); }
            catch (OperationCanceledException) { return; }
        }
    }

    private long _tickStarted, _tickEnded;

    /// <summary>
    /// For the service watchdog: null while the decision loop runs, else what is wrong. A step
    /// may take long (a copy rolled back and rebuilt from its journal), so only a loop that
    /// stopped ticking, or a step stuck for minutes, counts.
    /// </summary>
    public string? Health()
    {
        if (_loop is null) return null;
        if (_loop.IsCompleted && !_loopStop.IsCancellationRequested) return "the cluster loop ended";
        var started = Volatile.Read(ref _tickStarted);
        var ended = Volatile.Read(ref _tickEnded);
        if (started == 0) return null;
        if (ended < started && Ms(Now - started) > 300_000) return $"a cluster step has been running for {Ms(Now - started) / 1000} s";
        if (ended >= started && Ms(Now - ended) > 30_000) return $"no cluster step for {Ms(Now - ended) / 1000} s";
        return null;
    }

    private void Wake()
    {
        try { _wake.Release(); }
        catch (SemaphoreFullException) { /* already due */ }
    }

    private async Task TickAsync()
    {
        var peer = PeerSnapshot(out var peerAlive);
        if (peerAlive)
        {
            if (!_peerWasAlive) Log.Info("peer {0} is up", _options.Peer);
            _peerEverSeen = true;
            _peerOff = false;
            _fencingStop?.Cancel();
            if (!_ready) Log.Info("peer {0} seen: units may start", _options.Peer);
            _ready = true;
        }
        else if (_peerWasAlive && peer is { Leaving: true } && Array.TrueForAll(peer.Units, u => u.State is UnitState.Stopped or UnitState.Failed))
        {
            Log.Info("peer {0} left the pair cleanly with its units stopped: taking them over without fencing", _options.Peer);
            _peerOff = true;
        }
        else if (_peerWasAlive || (_ready && !_peerEverSeen && _fencing is null))
        {
            Log.Warn(_peerWasAlive ? "peer {0} silent on every link for {1} ms: declared dead" : "starting without peer {0}: it must be fenced first", _options.Peer, _options.DeadTimeMs);
            StartFencing(peer);
        }
        if (!peerAlive && _peerWasAlive) EndForwardedSessions();
        if (peerAlive && !_peerWasAlive) ReleaseWitness();
        if (!peerAlive) RenewWitness();
        _peerWasAlive = peerAlive;
        if (_selfFence)
        {
            _selfFence = false;
            foreach (var unit in _units.Where(u => u.State == UnitState.Active))
            {
                Log.Error("ALERT unit {0} stopped on {1}: the peer is silent and the witness did not grant this node the pair", unit.Name, _self);
                await DemoteAsync(unit, handOver: false);
            }
        }
        foreach (var unit in _units)
        {
            await DecideAsync(unit, peerAlive ? peer : null);
            RedeliverDivergedIfDue(unit, peerAlive ? peer : null);
        }
        SendHeartbeats();
    }

    /// <summary>The units and their state here, for <c>appliance cluster status</c>.</summary>
    public IReadOnlyList<string> Status()
    {
        var peer = PeerSnapshot(out var alive);
        var lines = new List<string>
        {
            $"node {_self}: {(_standby ? "standby" : "online")}{(_ready ? "" : ", waiting for peer")}",
            $"peer {_options.Peer}: {(alive ? "up" : _peerOff ? "down (fenced)" : _peerEverSeen ? "down" : "not seen")}{(peer?.Standby == true ? ", standby" : "")}",
        };
        foreach (var u in _units)
        {
            var ps = alive ? peer?.Unit(u.Name) : null;
            var where = u.State == UnitState.Active ? _self : ps?.State == UnitState.Active ? _options.Peer : "-";
            var replication = u.State == UnitState.Active
                ? u.Sender is { } s ? s.InSync ? "in sync" : s.Degraded ? "degraded" : s.Connected ? "resyncing" : "disconnected" : "-"
                : u.ReplicaInSync ? "in sync" : u.Record.Outdated ? "outdated" : "-";
            lines.Add($"unit {u.Name}: {UnitStateName(u, ps)} on {where}, epoch {u.Record.Epoch}, seq {u.Partition.LastSeq}, replication {replication}, preferred {u.Preferred}" +
                (u.State == UnitState.Failed ? $", FAILED on {_self}: {u.FailedReason}" : ""));
        }
        return lines;
    }

    private string UnitStateName(Unit u, UnitStatus? ps) => u.State switch
    {
        UnitState.Active => "active",
        UnitState.Stopped or UnitState.Failed when ps?.State == UnitState.Active => "active",
        var s => s.ToString().ToLowerInvariant(),
    };

    /// <summary>Whether the unit is active on this node (front-ends serve it locally).</summary>
    public bool IsActiveHere(string unit) => _units.Find(u => u.Name == unit)?.State == UnitState.Active;

    private long NextOutdateToken() => Interlocked.Increment(ref _outdateTokens);

    /// <summary>
    /// A clean stop: the loop ends, every active unit is handed to the peer when it can take it
    /// (else stopped), and the last heartbeats say "leaving", so the peer takes what is left
    /// without fencing this node.
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        _loopStop.Cancel();
        _fencingStop?.Cancel();
        try { await _loop; } catch (OperationCanceledException) { }
        await Task.WhenAll(_units.Select(u => u.Redelivery)); // they end on _loopStop
        if (!_crashed) await LeaveAsync();
        // (After a simulated crash the network goes first: the peer hears nothing more.)
        _stop.Cancel();
        await StopNetworkAsync();
        foreach (var u in _units)
        {
            if (u.State == UnitState.Active) await DemoteAsync(u, handOver: false);
            await StopReceiverAsync(u);
        }
    }

    private async Task LeaveAsync()
    {
        _leaving = true;
        var peer = PeerSnapshot(out var alive);
        var handed = new List<string>();
        foreach (var u in _units.Where(u => u.State == UnitState.Active))
        {
            var handOver = alive && peer is { Standby: false, Ready: true } && u.Sender is { InSync: true };
            if (handOver && await DemoteAsync(u, handOver: true)) handed.Add(u.Name);
            else if (u.State == UnitState.Active) await DemoteAsync(u, handOver: false);
        }
        SendHeartbeats();
        // The peer's start handshake needs this node's echo: stay a moment for what was handed over.
        for (var i = 0; i < 60 && handed.Count > 0; i++)
        {
            if (handed.TrueForAll(name => PeerSnapshot(out _)?.Unit(name)?.State == UnitState.Active)) break;
            await Task.Delay(50);
        }
        Log.Info("node {0} leaves the pair{1}", _self, handed.Count > 0 ? ", handed " + string.Join(", ", handed) + " to " + _options.Peer : "");
        SendHeartbeats();
    }

    /// <summary>Tests: the next stop behaves like a crash (no handover, no "leaving" heartbeat).</summary>
    internal void SimulateCrashOnStop() => _crashed = true;

    private sealed class Unit(string name, Partition partition, string dir, UnitRecord record, string preferred, string[] addresses)
    {
        public string Name { get; } = name;
        public Partition Partition { get; set; } = partition;
        public string Dir { get; } = dir;
        public UnitRecord Record { get; } = record;
        public string Preferred { get; } = preferred;
        public string[] Addresses { get; } = addresses;
        public UnitState State { get; set; }
        public ReplicationSender? Sender { get; set; }
        public long OutdateRequest { get; set; }
        public string HandOverTo { get; set; } = "";
        /// <summary>Heartbeat seq that first announced Starting.</summary>
        public long StartingSeq { get; set; }
        /// <summary>Set by the switchover command: hand the unit to the peer as soon as it can take it.</summary>
        public bool SwitchoverRequested { get; set; }
        public long PeerInSyncSince { get; set; }
        public bool LoggedCannotTakeOver { get; set; }
        /// <summary>Placed here by hand (switchover, standby): no failback to the preferred node.</summary>
        public bool Pinned { get; set; }
        // Replica side (written by the replication connection).
        public volatile bool ReplicaInSync;
        public volatile bool Diverged;
        /// <summary>The history the primary sent on the last replication connection.</summary>
        public List<Generation>? PrimaryHistory;
        public CancellationTokenSource? ReceiverStop;
        public Task ReceiverTask = Task.CompletedTask;
        /// <summary>Diverged tails saved here and not yet delivered anew (ClusterManager.Diverged.cs).</summary>
        public string FailedReason = "";
        public int PendingTails;
        public Task Redelivery = Task.CompletedTask;
    }

    private static long Now => Stopwatch.GetTimestamp();
    private static long Ms(long ticks) => (long)(ticks * 1000.0 / Stopwatch.Frequency);
}
