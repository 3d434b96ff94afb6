using System.Net;
using System.Net.Sockets;

namespace Appliance.Cluster;

public sealed partial class ClusterManager
{
    /// <summary>
    /// <c>appliance cluster status|switchover UNIT|standby NODE|online NODE</c>. A command about
    /// the other node, or about a unit active there, is forwarded to it over a cluster link.
    /// Exit 0 done, 1 refused (with the reason), 2 bad usage.
    /// </summary>
    public async Task<(int Exit, List<string> Lines)> ExecuteAsync(string[] args, bool forwarded, CancellationToken ct)
    {
        var verb = args.Length > 0 ? args[0] : "";
        var target = args.Length > 1 ? args[1] : "";
        switch (verb)
        {
            case "status" when args.Length == 1:
                return (0, [.. Status()]);
            case "switchover" when args.Length == 2:
                {
                    var unit = _units.Find(u => u.Name == target);
                    if (unit is null) return (1, [$"no unit {target} (units: {string.Join(", ", _units.Select(u => u.Name))})"]);
                    if (unit.State != UnitState.Active)
                        return forwarded ? (1, [$"unit {target} is not active on {_self}"]) : await ForwardAsync(args, ct);
                    PeerSnapshot(out var alive);
                    if (!alive || unit.Sender is not { Connected: true }) return (1, [$"unit {target} stays on {_self}: {_options.Peer} is {(alive ? "not connected for replication" : "down")}"]);
                    unit.SwitchoverRequested = true;
                    for (var i = 0; i < 200 && unit.State != UnitState.Stopped && unit.SwitchoverRequested; i++) await Task.Delay(50, ct);
                    if (unit.State != UnitState.Stopped) return (1, [$"unit {target}: switchover did not complete, it stays on {_self}"]);
                    for (var i = 0; i < 200 && PeerSnapshot(out _)?.Unit(target)?.State != UnitState.Active; i++) await Task.Delay(50, ct);
                    return (0, [$"unit {target} moved from {_self} to {_options.Peer}"]);
                }
            case "standby" or "online" when args.Length == 2:
                if (target == _options.Peer && !forwarded) return await ForwardAsync(args, ct);
                if (target != _self) return (1, [$"no node {target} (nodes: {_self}, {_options.Peer})"]);
                _standby = verb == "standby";
                if (_standby) await File.WriteAllTextAsync(StandbyMarker, "standby\n", ct);
                else File.Delete(StandbyMarker);
                Log.Info("node {0} is now {1}", _self, _standby ? "in standby: its units move to the peer when it can take them" : "online");
                return (0, [$"node {_self} {(_standby ? "in standby; its units move to " + _options.Peer + " once it is in sync" : "online")}"]);
            case "queue" when forwarded && QueueHandler is { } queue:
                return await queue(args[1..]);
            case "metrics" when forwarded && args.Length == 2 && MetricsHandler is { } metrics:
                return await metrics(Convert.FromBase64String(args[1]));
            case "alert-ack" when forwarded && args.Length == 3 && AlertAckHandler is { } ack:
                return await ack(args[1], args[2]);
            case "vacation" when forwarded && args.Length == 7:
                return await ServeVacationClaimAsync(args);
            default:
                return (2, ["usage: appliance cluster status | switchover UNIT | standby NODE | online NODE"]);
        }
    }

    /// <summary>Set by the host: runs a queue change the peer forwarded (the entry's unit is active here).</summary>
    public Func<string[], Task<(int Exit, List<string> Lines)>>? QueueHandler { get; set; }

    /// <summary>Runs a queue change on the peer (its <see cref="QueueHandler"/>).</summary>
    public Task<(int Exit, List<string> Lines)> ForwardQueueCommandAsync(string[] args, CancellationToken ct) => ForwardAsync(["queue", .. args], ct);

    private async Task<(int Exit, List<string> Lines)> ForwardAsync(string[] args, CancellationToken ct)
    {
        foreach (var link in _options.Links)
        {
            try
            {
                using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
                timeout.CancelAfter(TimeSpan.FromSeconds(30));
                await using var stream = await ClusterWire.ConnectAsync(_options, _self, link, FrameType.Command, timeout.Token);
                await ClusterWire.WriteFrameAsync(stream, FrameType.Command, ClusterWire.Encode(w => { w.Write(args.Length); foreach (var a in args) w.Write(a); }), timeout.Token);
                var reply = await ClusterWire.ReadFrameAsync(stream, timeout.Token) ?? throw new IOException("no reply");
                using var r = ClusterWire.Reader(reply.Payload);
                var exit = r.ReadInt32();
                var lines = new List<string>();
                for (var n = r.ReadInt32(); n > 0; n--) lines.Add(r.ReadString());
                return (exit, lines);
            }
            catch (Exception ex) when (ex is IOException or SocketException or InvalidDataException or OperationCanceledException)
            {
                Log.Warn("forwarding '{0}' to {1} over {2}: {3}", string.Join(" ", args) is { Length: > 120 } text ? text[..120] + "…" : string.Join(" ", args), _options.Peer, link.Peer, ex.Message);
            }
        }
        return (1, [$"{_options.Peer} cannot be reached to run this command"]);
    }

    private async Task ServeCommandAsync(Stream stream)
    {
        var frame = await ClusterWire.ReadFrameAsync(stream, _stop.Token) ?? throw new IOException("closed before the command");
        string[] args;
        using (var r = ClusterWire.Reader(frame.Payload))
        {
            var n = r.ReadInt32();
            if (n is < 0 or > 16) throw new InvalidDataException("bad command");
            args = new string[n];
            for (var i = 0; i < n; i++) args[i] = r.ReadString();
        }
        var (exit, lines) = await ExecuteAsync(args, forwarded: true, _stop.Token);
        await ClusterWire.WriteFrameAsync(stream, FrameType.Reply, ClusterWire.Encode(w => { w.Write(exit); w.Write(lines.Count); foreach (var l in lines) w.Write(l); }), _stop.Token);
    }
}
