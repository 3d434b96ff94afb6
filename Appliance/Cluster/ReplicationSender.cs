using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Threading.Channels;
using Appliance.Store;

namespace Appliance.Cluster;

/// <summary>
/// The primary's side of one unit's replication (DRBD protocol C semantics): ships each
/// committed batch of journal records to the peer's replica and completes
/// <see cref="WhenDurableAsync"/> once the peer says they are on its disk.
/// Implementation notes (invariants):
/// - One connection at a time, over the first link that answers. At connect the replica tells
///   its last seq and generation history; a copy that is not a prefix of ours is refused
///   (split brain or an unacknowledged tail: the cluster manager resolves it), otherwise it is
///   caught up from the journal and then fed the live batches (a gap falls back to the journal).
/// - A waiter is released only by the peer's ack or by <see cref="Degraded"/>, which the cluster
///   manager sets once the peer can no longer take the unit over (it agreed to be outdated, it
///   was fenced, or no automatic takeover is configured). Until then a broken link stalls the
///   acknowledgements, never loses one.
/// - A connection silent for ReplicationTimeoutMs is dropped (a cut link sends no RST).
/// </summary>
internal sealed class ReplicationSender : IReplicationSink, IAsyncDisposable
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("cluster");
    private const int MaxRecordsPerFrame = 512;
    private const long MaxBytesPerFrame = 8 << 20;
    private readonly ClusterOptions _options;
    private readonly string _self;
    private readonly string _unit;
    private readonly Partition _partition;
    private readonly Func<UnitRecord> _record;
    private readonly Channel<IReadOnlyList<JournalRecord>> _live = Channel.CreateUnbounded<IReadOnlyList<JournalRecord>>(new() { SingleReader = true });
    private readonly Lock _gate = new();
    private readonly SortedList<long, List<TaskCompletionSource>> _waiters = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private long _acked;
    private bool _degraded;
    private volatile bool _connected;
    private volatile bool _inSync;

    public ReplicationSender(ClusterOptions options, string self, string unit, Partition partition, Func<UnitRecord> record)
    {
        _options = options;
        _self = self;
        _unit = unit;
        _partition = partition;
        _record = record;
        _loop = Task.Run(RunAsync);
    }

    /// <summary>Connected and the replica has everything committed so far.</summary>
    public bool InSync => _connected && _inSync;
    public bool Connected => _connected;
    public long AckedSeq => Interlocked.Read(ref _acked);
    /// <summary>Waiters stall (a write is waiting for the peer and the link is down).</summary>
    public bool Stalled
    {
        get { lock (_gate) return !_degraded && !_connected && _waiters.Count > 0; }
    }

    /// <summary>Acknowledge on the local disk alone (the peer cannot take over); cleared by a resync.</summary>
    public bool Degraded
    {
        get { lock (_gate) return _degraded; }
        set
        {
            List<TaskCompletionSource> release = [];
            lock (_gate)
            {
                if (_degraded == value) return;
                _degraded = value;
                if (value)
                {
                    foreach (var list in _waiters.Values) release.AddRange(list);
                    _waiters.Clear();
                }
            }
            foreach (var w in release) w.TrySetResult();
        }
    }

    public void Ship(IReadOnlyList<JournalRecord> records)
    {
        if (_connected) _live.Writer.TryWrite(records);
    }

    public Task WhenDurableAsync(long seq)
    {
        lock (_gate)
        {
            if (_degraded || seq <= _acked) return Task.CompletedTask;
            var tcs = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
            if (!_waiters.TryGetValue(seq, out var list)) _waiters[seq] = list = [];
            list.Add(tcs);
            return tcs.Task;
        }
    }

    /// <summary>
    /// The replica has everything up to <paramref name="seq"/>: its waiters go, and the journal
    /// keeps what comes after (the replica may still need it to catch up).
    /// </summary>
    private void Acked(long seq, bool reset = false)
    {
        List<TaskCompletionSource> release = [];
        lock (_gate)
        {
            if (seq <= _acked && !reset) return;
            _acked = seq;
            while (_waiters.Count > 0 && _waiters.Keys[0] <= seq)
            {
                release.AddRange(_waiters.Values[0]);
                _waiters.RemoveAt(0);
            }
        }
        _partition.PinJournal(seq);
        foreach (var w in release) w.TrySetResult();
    }

    private async Task RunAsync()
    {
        var attempt = 0;
        while (!_stop.IsCancellationRequested)
        {
            foreach (var link in _options.Links)
            {
                if (_stop.IsCancellationRequested) break;
                try
                {
                    await ReplicateOverAsync(link);
                }
                catch (Exception ex) when (ex is not OperationCanceledException || !_stop.IsCancellationRequested)
                {
                    if (attempt++ % 20 == 0) Log.Warn("unit {0}: replication to {1} over {2}: {3}", _unit, _options.Peer, link.Peer, ex.Message);
                }
                finally
                {
                    if (_connected) Log.Warn("unit {0}: replication to {1} lost at seq {2}", _unit, _options.Peer, AckedSeq);
                    _connected = false;
                    _inSync = false;
                    while (_live.Reader.TryRead(out _)) { }
                }
            }
            try { await Task.Delay(_options.HeartbeatIntervalMs, _stop.Token); }
            catch (OperationCanceledException) { }
        }
    }

    private async Task ReplicateOverAsync(LinkOptions link)
    {
        using var connectTimeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        connectTimeout.CancelAfter(_options.ReplicationTimeoutMs);
        await using var stream = await ClusterWire.ConnectAsync(_options, _self, link, FrameType.Replicate, connectTimeout.Token);
        var record = _record();
        await ClusterWire.WriteFrameAsync(stream, FrameType.Replicate, ClusterWire.Encode(w => { w.Write(_unit); ReplicationCodec.WriteHistory(w, record.History); }), connectTimeout.Token);
        var reply = await ClusterWire.ReadFrameAsync(stream, connectTimeout.Token) ?? throw new IOException("replica closed the connection");
        if (reply.Type == FrameType.Refused) throw new InvalidOperationException("replica refused: " + ClusterWire.Reader(reply.Payload).ReadString());
        if (reply.Type != FrameType.ReplicaState) throw new InvalidDataException("unexpected reply " + reply.Type);
        var (replicaSeq, replicaHistory) = ReplicationCodec.ReadState(reply.Payload);
        if (!record.Extends(replicaHistory, replicaSeq))
        {
            var reason = $"the replica (seq {replicaSeq}, epoch {(replicaHistory.Count > 0 ? replicaHistory[^1].Epoch : 0)}) has records this primary does not (epoch {record.Epoch}, seq {_partition.LastSeq}): it must resync";
            await ClusterWire.WriteFrameAsync(stream, FrameType.Refused, ClusterWire.Encode(w => w.Write(reason)), _stop.Token);
            throw new InvalidOperationException(reason);
        }
        Log.Info("unit {0}: replica on {1} connected over {2} at seq {3}, primary at {4}", _unit, _options.Peer, link.Peer, replicaSeq, _partition.LastSeq);
        ResetAcked(replicaSeq); // and pins the journal there: the catch-up reads from it
        _connected = true;

        using var session = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        var reader = Task.Run(async () =>
        {
            try
            {
                // The replica answers every frame, pings included: silence (or its end) ends the session.
                while (await ClusterWire.ReadFrameAsync(stream, TimeSpan.FromMilliseconds(_options.ReplicationTimeoutMs), session.Token) is { } frame)
                {
                    if (frame.Type == FrameType.Ack) Acked(BitConverter.ToInt64(frame.Payload));
                    else if (frame.Type == FrameType.Refused) throw new InvalidOperationException("replica: " + ClusterWire.Reader(frame.Payload).ReadString());
                }
            }
            finally { session.Cancel(); }
        });
        try
        {
            // Catch up from the journal first (large frames), then stop acknowledging alone: from
            // here every new write waits for the replica. Everything acknowledged alone is at or
            // below the seq read after that switch, so the replica is in sync once it has acked it.
            if (replicaSeq < _partition.JournalFirstSeq - 1)
            {
                Log.Warn("unit {0}: the replica on {1} is at seq {2} and the journal starts at {3}: sending it a full copy", _unit, _options.Peer, replicaSeq, _partition.JournalFirstSeq);
                replicaSeq = await SendSnapshotAsync(stream, session.Token);
            }
            var sent = await SendFromJournalAsync(stream, replicaSeq, session.Token);
            if (Degraded)
            {
                Degraded = false;
                Log.Info("unit {0}: replica on {1} caught up to seq {2} from the journal, new writes wait for it again", _unit, _options.Peer, sent);
            }
            var syncTarget = _partition.LastSeq;
            var pingEvery = TimeSpan.FromMilliseconds(_options.HeartbeatIntervalMs);
            while (!session.IsCancellationRequested)
            {
                if (sent < _partition.LastSeq && !_live.Reader.TryPeek(out _))
                    sent = await SendFromJournalAsync(stream, sent, session.Token);
                else
                {
                    using var wait = CancellationTokenSource.CreateLinkedTokenSource(session.Token);
                    wait.CancelAfter(pingEvery);
                    IReadOnlyList<JournalRecord>? batch = null;
                    try { batch = await _live.Reader.ReadAsync(wait.Token); }
                    catch (OperationCanceledException) when (!session.IsCancellationRequested) { }
                    if (batch is null)
                    {
                        await ClusterWire.WriteFrameAsync(stream, FrameType.Ping, BitConverter.GetBytes(sent), session.Token);
                    }
                    else if (batch[^1].Seq > sent)
                    {
                        if (batch[0].Seq > sent + 1) sent = await SendFromJournalAsync(stream, sent, session.Token);
                        else
                        {
                            var fresh = batch.Where(r => r.Seq > sent).ToList();
                            await SendAsync(stream, fresh, session.Token);
                            sent = fresh[^1].Seq;
                        }
                    }
                }
                if (!_inSync && sent >= syncTarget && AckedSeq >= syncTarget)
                {
                    _inSync = true;
                    await ClusterWire.WriteFrameAsync(stream, FrameType.InSync, BitConverter.GetBytes(syncTarget), session.Token);
                    Log.Info("unit {0}: replica on {1} in sync at seq {2}", _unit, _options.Peer, syncTarget);
                }
            }
        }
        finally
        {
            session.Cancel();
            _partition.PinJournal(long.MaxValue);
            try { await reader; } catch (Exception) { /* the reason is the one thrown above, or the stop */ }
        }
    }

    /// <summary>
    /// Sends a full copy: the index as of one seq (VACUUM INTO, pings meanwhile so the replica
    /// does not time out), then every message file (files never change; one expunged meanwhile
    /// is skipped, the records after the seq remove it anyway). Returns the seq; the journal is
    /// pinned there so the records after it are still there to send.
    /// </summary>
    private async Task<long> SendSnapshotAsync(Stream stream, CancellationToken ct)
    {
        var index = Path.Combine(Path.GetDirectoryName(_partition.BlobDirectory)!, "snapshot-out.db");
        File.Delete(index);
        _partition.PinJournal(_partition.LastSeq);
        var vacuum = _partition.SnapshotIndexAsync(index);
        while (await Task.WhenAny(vacuum, Task.Delay(_options.HeartbeatIntervalMs, ct)) != vacuum)
            await ClusterWire.WriteFrameAsync(stream, FrameType.Ping, BitConverter.GetBytes(AckedSeq), ct);
        var seq = await vacuum;
        _partition.PinJournal(seq);
        try
        {
            await ClusterWire.WriteFrameAsync(stream, FrameType.SnapshotBegin, BitConverter.GetBytes(seq), ct);
            long files = 0, bytes = await SendFileAsync(stream, index, "index.db", ct);
            foreach (var file in System.IO.Directory.EnumerateFiles(_partition.BlobDirectory, "*", SearchOption.AllDirectories))
            {
                try { bytes += await SendFileAsync(stream, file, "blobs/" + Path.GetRelativePath(_partition.BlobDirectory, file).Replace('\\', '/'), ct); }
                catch (Exception ex) when (ex is FileNotFoundException or DirectoryNotFoundException) { continue; }
                files++;
            }
            await ClusterWire.WriteFrameAsync(stream, FrameType.SnapshotEnd, BitConverter.GetBytes(seq), ct);
            Log.Info("unit {0}: full copy at seq {1} sent to {2}: the index and {3} message files, {4} bytes", _unit, seq, _options.Peer, files, bytes);
            return seq;
        }
        finally
        {
            File.Delete(index);
        }
    }

    private static async Task<long> SendFileAsync(Stream stream, string path, string name, CancellationToken ct)
    {
        await using var file = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16, useAsync: true);
        var buffer = new byte[Math.Min(Math.Max(file.Length, 1), SnapshotChunkBytes)];
        long offset = 0;
        while (true)
        {
            var n = await file.ReadAtLeastAsync(buffer, buffer.Length, throwOnEndOfStream: false, ct);
            var last = n < buffer.Length || offset + n == file.Length;
            await ClusterWire.WriteFrameAsync(stream, FrameType.SnapshotChunk, ClusterWire.Encode(w =>
            {
                w.Write(name); w.Write(offset); w.Write(last); w.Write(n); w.Write(buffer, 0, n);
            }), ct);
            offset += n;
            if (last) return offset;
        }
    }

    private const int SnapshotChunkBytes = 1 << 20;

    /// <summary>At a new session: the replica holds what it says, no more (its copy may have been rolled back or wiped).</summary>
    private void ResetAcked(long seq) => Acked(seq, reset: true);

    private async Task<long> SendFromJournalAsync(Stream stream, long after, CancellationToken ct)
    {
        var chunk = new List<JournalRecord>();
        long bytes = 0;
        foreach (var r in _partition.ReadJournal(after))
        {
            chunk.Add(r);
            bytes += r.Op is AppendOp a ? a.Data.Length : 64;
            if (chunk.Count >= MaxRecordsPerFrame || bytes >= MaxBytesPerFrame)
            {
                await SendAsync(stream, chunk, ct);
                after = chunk[^1].Seq;
                chunk.Clear();
                bytes = 0;
            }
        }
        if (chunk.Count > 0)
        {
            await SendAsync(stream, chunk, ct);
            after = chunk[^1].Seq;
        }
        return after;
    }

    private static Task SendAsync(Stream stream, IReadOnlyList<JournalRecord> records, CancellationToken ct) =>
        ClusterWire.WriteFrameAsync(stream, FrameType.Records, ReplicationCodec.EncodeRecords(records), ct);

    /// <summary>Ends replication; waiters still pending fail (the unit is being demoted).</summary>
    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        try { await _loop; } catch (OperationCanceledException) { }
        List<TaskCompletionSource> fail = [];
        lock (_gate)
        {
            foreach (var list in _waiters.Values) fail.AddRange(list);
            _waiters.Clear();
        }
        foreach (var w in fail) w.TrySetException(new UnitUnavailableException($"unit {_unit} stopped before its peer confirmed the write"));
    }
}
