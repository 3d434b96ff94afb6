using Appliance.Store;

namespace Appliance.Cluster;

public sealed partial class ClusterManager
{
    /// <summary>
    /// Replica side of a replication connection: tells the primary where this copy stands,
    /// applies the records it ships (each batch durable before its ack), and clears the
    /// outdated mark once the primary says the copy has caught up.
    /// </summary>
    private async Task ServeReplicaAsync(Stream stream)
    {
        // The primary sends at least a ping per heartbeat interval: silence means a dead link.
        var request = await ClusterWire.ReadFrameAsync(stream, ReplicationTimeout, _stop.Token) ?? throw new IOException("closed before naming a unit");
        if (request.Type != FrameType.Replicate) throw new InvalidDataException("expected a unit name");
        string name;
        List<Generation> primaryHistory;
        using (var r = ClusterWire.Reader(request.Payload))
        {
            name = r.ReadString();
            primaryHistory = ReplicationCodec.ReadHistory(r);
        }
        var unit = _units.Find(u => u.Name == name);
        var refusal = unit is null ? $"no unit {name} on {_self}"
            : unit.State != UnitState.Stopped ? $"unit {name} is {unit.State.ToString().ToLowerInvariant()} on {_self}"
            : unit.Diverged ? $"the copy of {name} on {_self} is being rolled back" : null;
        if (refusal is not null)
        {
            await ClusterWire.WriteFrameAsync(stream, FrameType.Refused, ClusterWire.Encode(w => w.Write(refusal)), _stop.Token);
            return;
        }
        await StopReceiverAsync(unit!);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        unit!.ReceiverStop = stop;
        unit.ReceiverTask = done.Task;
        unit.PrimaryHistory = primaryHistory;
        try
        {
            var p = unit.Partition;
            await ClusterWire.WriteFrameAsync(stream, FrameType.ReplicaState, ReplicationCodec.EncodeState(p.LastSeq, unit.Record.History), stop.Token);
            var adopted = false;
            (FrameType Type, byte[] Payload)? next = null;
            while (true)
            {
                var frame = next ?? await ClusterWire.ReadFrameAsync(stream, ReplicationTimeout, stop.Token);
                next = null;
                if (frame is not { } f) return;
                if (f.Type == FrameType.Refused)
                {
                    unit.Diverged = true;
                    Log.Error("ALERT unit {0}: primary {1} refused this copy: {2}", name, _options.Peer, ClusterWire.Reader(f.Payload).ReadString());
                    return;
                }
                if (!adopted)
                {
                    // Accepted as a prefix of the primary's copy: from now on this copy follows
                    // the primary's generations (so it can be promoted after them).
                    unit.Record.History = [.. primaryHistory];
                    unit.Record.Save(unit.Dir);
                    adopted = true;
                }
                switch (f.Type)
                {
                    case FrameType.Records:
                        // Frames already waiting are applied together: one commit and one sync for
                        // all of them (the primary pipelines its batches).
                        var records = ReplicationCodec.DecodeRecords(f.Payload);
                        while (records.Count < 4096 && stream is System.Net.Sockets.NetworkStream { DataAvailable: true })
                        {
                            next = await ClusterWire.ReadFrameAsync(stream, ReplicationTimeout, stop.Token);
                            if (next is not { Type: FrameType.Records } more) break;
                            records.AddRange(ReplicationCodec.DecodeRecords(more.Payload));
                            next = null;
                        }
                        await p.ApplyReplicatedAsync(records);
                        break;
                    case FrameType.InSync:
                        unit.ReplicaInSync = true; // first: the loop must not see "behind and not in sync" in between
                        if (unit.Record.Outdated)
                        {
                            unit.Record.Outdated = false;
                            unit.Record.Save(unit.Dir);
                            Log.Info("unit {0}: this copy caught up with {1} at seq {2}, no longer outdated", name, _options.Peer, p.LastSeq);
                        }
                        break;
                }
                await ClusterWire.WriteFrameAsync(stream, FrameType.Ack, BitConverter.GetBytes(p.LastSeq), stop.Token);
            }
        }
        finally
        {
            unit.ReplicaInSync = false;
            done.TrySetResult();
        }
    }

    private TimeSpan ReplicationTimeout => TimeSpan.FromMilliseconds(_options.ReplicationTimeoutMs);

    private async Task StopReceiverAsync(Unit unit)
    {
        try { unit.ReceiverStop?.Cancel(); }
        catch (ObjectDisposedException) { }
        await unit.ReceiverTask;
    }

    /// <summary>
    /// A copy the primary refused holds records the primary lacks: the tail written by a primary
    /// that died before replicating it (never acknowledged), or both sides of a split brain.
    /// The copy goes back to the last record both share and resyncs from there; the messages of
    /// the tail are saved and delivered anew once it is in sync (ClusterManager.Diverged.cs).
    /// </summary>
    private async Task RollBackAsync(Unit unit, NodeStatus peer)
    {
        var mine = unit.Record.History;
        var theirs = unit.PrimaryHistory ?? [];
        var shared = 0;
        while (shared < mine.Count && shared < theirs.Count && mine[shared] == theirs[shared]) shared++;
        var p = unit.Partition;
        long common = shared == 0 ? 0 : Math.Min(
            shared < mine.Count ? mine[shared].StartSeq - 1 : p.LastSeq,
            shared < theirs.Count ? theirs[shared].StartSeq - 1 : long.MaxValue);
        var kept = Path.Combine(unit.Dir, "diverged", DateTimeOffset.UtcNow.ToString("yyyyMMddTHHmmssfffZ"));
        var saved = await SaveDivergedTailAsync(p, common, kept);
        Log.Error("ALERT unit {0}: rolling this copy back from seq {1} to {2} to resync from {3}; {4} message(s) of the discarded tail kept in {5}{6}",
            unit.Name, p.LastSeq, common, peer.Node, saved, saved > 0 ? kept : "(none)", saved > 0 ? ", to be delivered anew once in sync" : "");
        unit.Partition = await _store.RollBackAsync(p.Name, common);
        unit.Partition.IsPrimary = false;
        unit.Record.History = [.. mine.Take(shared)];
        unit.Record.Save(unit.Dir);
        unit.Diverged = false;
        if (saved > 0) unit.PendingTails++;
    }
}
