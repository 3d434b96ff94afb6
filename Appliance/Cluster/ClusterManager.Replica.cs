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
            string? staging = null;
            long snapshotSeq = 0;
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
                    case FrameType.SnapshotBegin:
                        snapshotSeq = BitConverter.ToInt64(f.Payload);
                        MarkOutdated(unit, unit.Record.OutdatedToken, $"the journal of {_options.Peer} no longer reaches this copy (seq {p.LastSeq}): " +
                            $"receiving a full copy at seq {snapshotSeq}, outdated until it is installed and in sync");
                        staging = Path.Combine(unit.Dir, "snapshot-in");
                        if (System.IO.Directory.Exists(staging)) System.IO.Directory.Delete(staging, recursive: true);
                        System.IO.Directory.CreateDirectory(staging);
                        break;
                    case FrameType.SnapshotChunk:
                        await WriteSnapshotChunkAsync(staging ?? throw new InvalidDataException("snapshot data without a beginning"), f.Payload, stop.Token);
                        break;
                    case FrameType.SnapshotEnd:
                        if (staging is null) throw new InvalidDataException("snapshot end without a beginning");
                        FileSystem.SyncFileSystem(staging);
                        unit.Partition = p = await _store.InstallSnapshotAsync(p.Name, staging, snapshotSeq);
                        System.IO.Directory.Delete(staging, recursive: true);
                        staging = null;
                        Log.Warn("unit {0}: this copy was replaced by a full copy of {1} at seq {2}; it catches up from there", name, _options.Peer, snapshotSeq);
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

    /// <summary>Writes one piece of a snapshot file under the staging directory (paths from the primary are checked: index.db or blobs/…).</summary>
    private static async Task WriteSnapshotChunkAsync(string staging, byte[] payload, CancellationToken ct)
    {
        using var r = ClusterWire.Reader(payload);
        var name = r.ReadString();
        var offset = r.ReadInt64();
        r.ReadBoolean(); // last piece: nothing to do, the file is complete when the next one starts
        var data = r.ReadBytes(r.ReadInt32());
        if (name != "index.db" && !(name.StartsWith("blobs/", StringComparison.Ordinal) && !name.Split('/').Any(part => part is "" or "." or "..")))
            throw new InvalidDataException($"unexpected file {name} in a snapshot");
        var path = Path.GetFullPath(Path.Combine(staging, name));
        if (!path.StartsWith(Path.GetFullPath(staging) + Path.DirectorySeparatorChar, StringComparison.Ordinal)) throw new InvalidDataException($"unexpected file {name} in a snapshot");
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        await using var file = new FileStream(path, offset == 0 ? FileMode.Create : FileMode.Open, FileAccess.Write);
        if (file.Length != offset) throw new InvalidDataException($"snapshot file {name}: piece at {offset}, file has {file.Length} bytes");
        file.Seek(offset, SeekOrigin.Begin);
        await file.WriteAsync(data, ct);
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
        var journalStart = p.JournalFirstSeq;
        if (journalStart > 1)
        {
            // The journal no longer reaches back to rebuild the copy at the shared record: it is
            // emptied and the primary sends a full copy. Tail records trimmed already (a long
            // degraded run) have their message files only: those are kept too.
            var oldFiles = journalStart > common + 1 ? Path.Combine(kept, "all-files-of-the-old-copy") : null;
            unit.Partition = await _store.WipeAsync(p.Name, oldFiles);
            unit.Record.History = [];
            if (oldFiles is not null)
                Log.Error("ALERT unit {0}: part of the discarded tail (seq {1} to {2}) is no longer in the journal; every message file of the old copy is kept in {3}",
                    unit.Name, common + 1, journalStart - 1, oldFiles);
        }
        else
        {
            unit.Partition = await _store.RollBackAsync(p.Name, common);
            unit.Record.History = [.. mine.Take(shared)];
        }
        unit.Partition.IsPrimary = false;
        unit.Record.Save(unit.Dir);
        unit.Diverged = false;
        if (saved > 0) unit.PendingTails++;
    }
}
