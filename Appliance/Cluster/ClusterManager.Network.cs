using System.Net;
using System.Net.Sockets;

namespace Appliance.Cluster;

public sealed partial class ClusterManager
{
    private readonly List<Socket> _heartbeatSockets = [];
    private readonly List<TcpListener> _listeners = [];
    private readonly List<Task> _networkTasks = [];
    private long[] _heardOnLink = [];
    private NodeStatus? _peer;

    private void StartNetwork()
    {
        _heardOnLink = new long[_options.Links.Length];
        for (var i = 0; i < _options.Links.Length; i++)
        {
            var link = _options.Links[i];
            var local = IPAddress.Parse(link.Local);
            var udp = new Socket(local.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
            udp.Bind(new IPEndPoint(local, _options.HeartbeatPort));
            _heartbeatSockets.Add(udp);
            var index = i;
            _networkTasks.Add(Task.Run(() => ReceiveHeartbeatsAsync(udp, index)));
            var tcp = new TcpListener(local, _options.ReplicationPort);
            tcp.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
            tcp.Start();
            _listeners.Add(tcp);
            _networkTasks.Add(Task.Run(() => AcceptAsync(tcp)));
        }
        // Heartbeats have their own timer: a long step of the decision loop (a copy rolled back
        // and rebuilt, a switchover waiting for acks) must not make this node look dead.
        _networkTasks.Add(Task.Run(HeartbeatLoopAsync));
        Log.Info("node {0} (incarnation {1:x}): heartbeats and replication on {2}, peer {3}", _self, _incarnation,
            string.Join(", ", _options.Links.Select(l => $"{l.Local}→{l.Peer}")), _options.Peer);
    }

    private async Task ReceiveHeartbeatsAsync(Socket udp, int link)
    {
        var buffer = new byte[64 * 1024];
        EndPoint from = new IPEndPoint(udp.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        while (!_stop.IsCancellationRequested)
        {
            int n;
            try
            {
                var result = await udp.ReceiveFromAsync(buffer, SocketFlags.None, from, _stop.Token);
                n = result.ReceivedBytes;
            }
            catch (OperationCanceledException) { return; }
            catch (SocketException) { continue; } // ICMP unreachable from a dead peer, for instance
            catch (ObjectDisposedException) { return; }
            if (NodeStatus.Decode(buffer.AsSpan(0, n), _options.Secret) is not { } status || status.Node != _options.Peer) continue;
            lock (_gate)
            {
                Volatile.Write(ref _heardOnLink[link], Now);
                if (_peer is null || status.Incarnation != _peer.Incarnation || status.Seq > _peer.Seq)
                {
                    if (_peer is not null && status.Incarnation != _peer.Incarnation) Log.Info("peer {0} restarted (incarnation {1:x})", status.Node, status.Incarnation);
                    if (Matters(_peer, status)) Wake();
                    _peer = status;
                }
            }
        }
    }

    /// <summary>Whether a new heartbeat may change a decision here (so the loop runs now).</summary>
    private bool Matters(NodeStatus? before, NodeStatus now)
    {
        if (before is null || before.Incarnation != now.Incarnation || before.Standby != now.Standby || before.Ready != now.Ready) return true;
        foreach (var u in now.Units)
        {
            if (before.Unit(u.Name) is not { } b) return true;
            if (b.State != u.State || b.HandOverTo != u.HandOverTo || b.OutdateRequest != u.OutdateRequest
                || b.OutdatedToken != u.OutdatedToken || b.InSync != u.InSync) return true;
        }
        return _units.Exists(u => u.State == UnitState.Starting && now.SeenSeq >= u.StartingSeq && before.SeenSeq < u.StartingSeq);
    }

    /// <summary>The peer's last heartbeat and whether it was heard on any link within the dead-time.</summary>
    private NodeStatus? PeerSnapshot(out bool alive)
    {
        var now = Now;
        alive = false;
        lock (_gate)
        {
            foreach (var heard in _heardOnLink)
                if (heard != 0 && Ms(now - heard) < _options.DeadTimeMs) alive = true;
            return _peer;
        }
    }

    private async Task HeartbeatLoopAsync()
    {
        using var timer = new PeriodicTimer(TimeSpan.FromMilliseconds(_options.HeartbeatIntervalMs));
        try
        {
            while (await timer.WaitForNextTickAsync(_stop.Token)) SendHeartbeats();
        }
        catch (OperationCanceledException) { }
    }

    private void SendHeartbeats()
    {
        var seq = Interlocked.Increment(ref _seq);
        var status = new NodeStatus(_self, _incarnation, seq, _peer?.Seq ?? 0, _standby, _ready,
            [.. _units.Select(u => new UnitStatus(u.Name, u.State, u.Record.Epoch, u.Partition.LastSeq, u.Record.Outdated,
                u.Record.OutdatedToken, u.OutdateRequest, u.ReplicaInSync, u.HandOverTo,
                u.Sender is { } s ? (s.Degraded ? u.Partition.LastSeq : s.AckedSeq) : 0,
                u.Record.History.Count > 0 ? u.Record.History[^1].StartSeq : 0))], _leaving, ProvisionedSeq?.Invoke() ?? 0);
        var datagram = status.Encode(_options.Secret);
        for (var i = 0; i < _heartbeatSockets.Count; i++)
        {
            try { _heartbeatSockets[i].SendTo(datagram, new IPEndPoint(IPAddress.Parse(_options.Links[i].Peer), _options.HeartbeatPort)); }
            catch (SocketException) { /* link down: the others carry the heartbeat */ }
            catch (ObjectDisposedException) { return; /* stopping */ }
        }
    }

    private async Task AcceptAsync(TcpListener listener)
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket socket;
            try { socket = await listener.AcceptSocketAsync(_stop.Token); }
            catch (Exception) when (_stop.IsCancellationRequested) { return; }
            catch (SocketException) { continue; }
            _ = Task.Run(() => ServeAsync(socket));
        }
    }

    private async Task ServeAsync(Socket socket)
    {
        using var _ = socket;
        ClusterWire.Tune(socket);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        try
        {
            using var handshake = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            handshake.CancelAfter(5000);
            var purpose = await ClusterWire.ServerHandshakeAsync(stream, _options.Secret, _self, _options.Peer, handshake.Token);
            switch (purpose)
            {
                case FrameType.Replicate:
                    await ServeReplicaAsync(stream);
                    break;
                case FrameType.Command:
                    await ServeCommandAsync(stream);
                    break;
                case FrameType.Deliver:
                    await ServeDeliveryAsync(stream);
                    break;
                case FrameType.Session:
                    await ServeSessionAsync(stream, socket);
                    break;
                case FrameType.Provision:
                    await ServeProvisionAsync(stream);
                    break;
                default:
                    throw new InvalidDataException($"unknown purpose {purpose}");
            }
        }
        catch (Exception ex) when (ex is IOException or InvalidDataException or OperationCanceledException or SocketException or EndOfStreamException)
        {
            if (!_stop.IsCancellationRequested) Log.Warn("cluster connection from {0}: {1}", socket.RemoteEndPoint, ex.Message);
        }
    }

    private async Task StopNetworkAsync()
    {
        foreach (var l in _listeners) l.Stop();
        foreach (var s in _heartbeatSockets) s.Dispose();
        try { await Task.WhenAll(_networkTasks); } catch (Exception) { /* stopping */ }
    }
}
