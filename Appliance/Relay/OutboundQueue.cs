using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Appliance.Directory;
using Appliance.Hosting;
using Appliance.Store;

namespace Appliance.Relay;

/// <summary>
/// The outbound queue of this node and its delivery (issue 5).
/// Implementation notes (invariants):
/// - A message is queued in a partition active on this node (the sender's own when it is here),
///   as a QueueAddOp: on disk and, in a pair, on the peer before the submission's 250. The queue
///   thus moves with its unit: the node where a partition is active delivers that partition's
///   queue, and after a failover the other node goes on from the last journaled state.
/// - One attempt at a time per entry (<see cref="_inFlight"/>). Its outcome and reports are
///   worked out from the entry as the attempt began, off the partition's writer loop, and
///   written with UpdateQueuedAsync, which reads the entry in the write transaction: an admin's
///   hold made meanwhile stays on, a deleted entry stays deleted (its outcome is dropped).
/// - An entry leaves the queue in the same journal record that queues the reports it causes
///   (bounce, delay notice): a crash never loses a bounce nor sends it twice.
/// - Delivery is at least once: a session lost after DATA is retried, since whether the remote
///   kept the message cannot be known.
/// </summary>
public sealed partial class OutboundQueue : IQueueCommands
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("relay");
    private readonly MailStore _store;
    private readonly MailDirectory _directory;
    private readonly RelayOptions _options;
    private readonly string _hostname;
    private readonly SmtpTransport _transport;
    private readonly ConcurrentDictionary<string, byte> _inFlight = new();
    private readonly SemaphoreSlim _slots;
    private readonly SemaphoreSlim _kick = new(0, 1);

    public OutboundQueue(MailStore store, MailDirectory directory, RelayOptions options, string hostname, IReadOnlyList<string> dnsServers)
    {
        _store = store;
        _directory = directory;
        _options = options;
        _hostname = hostname;
        _transport = new SmtpTransport(options, hostname, new MxResolver(dnsServers));
        _slots = new SemaphoreSlim(Math.Max(1, options.MaxParallelDeliveries));
    }

    /// <summary>In a pair: runs queue changes for entries whose unit is active on the other node.</summary>
    public Cluster.ClusterManager? Cluster { get; set; }

    private static long Now => DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();

    public static string NewId() => Convert.ToHexString(RandomNumberGenerator.GetBytes(6));

    /// <summary>A recipient as the client gave it, with its RFC 3461 parameters.</summary>
    public sealed record Recipient(string Address, string? Orcpt = null, string? Notify = null);

    /// <summary>A new entry, due now, every recipient queued.</summary>
    private static QueueEntry NewEntry(string sender, string account, IReadOnlyList<Recipient> recipients, string? envId, string? ret, long size, string? id = null)
    {
        var now = Now;
        return new QueueEntry(id ?? NewId(), now, sender, account, size, Held: false, Attempts: 0, NextAttempt: now, DelayNotified: false,
            LastError: "", envId, ret, [.. recipients.Select(r => new QueuedRecipient(r.Address, RecipientState.Queued, "", now, r.Orcpt, r.Notify))]);
    }

    /// <summary>
    /// Queues a message; returns its queue id once it is durable. The partition is
    /// <paramref name="preferredPartition"/> when active here, else the first one that is.
    /// </summary>
    public async Task<string> EnqueueAsync(string? preferredPartition, string sender, string account, IReadOnlyList<Recipient> recipients,
        string? envId, string? ret, byte[] data, string? id = null)
    {
        var partition = PickPartition(preferredPartition)
            ?? throw new UnitUnavailableException("no mailbox partition is active on this node to queue the message in");
        var entry = NewEntry(sender, account, recipients, envId, ret, data.Length, id);
        await partition.EnqueueAsync(entry, data);
        Log.Info("queued id={0} partition={1} from=<{2}> to=<{3}> size={4}", entry.Id, partition.Name, sender, string.Join(">,<", recipients.Select(r => r.Address)), data.Length);
        Kick();
        return entry.Id;
    }

    /// <summary>
    /// Queues again an entry a rolled-back copy had (a diverged tail, see
    /// <see cref="Cluster.ClusterManager.Requeue"/>): same id, same recipients, due now.
    /// </summary>
    public async Task RequeueAsync(QueueEntry entry, byte[] data)
    {
        var partition = PickPartition(null) ?? throw new UnitUnavailableException("no partition is active on this node to queue the message in");
        await partition.EnqueueAsync(entry with { NextAttempt = Now, Held = false, Partition = "" }, data);
        Log.Warn("queued again id={0} partition={1} from=<{2}>: it was in the rolled-back history of a copy", entry.Id, partition.Name, entry.Sender);
        Kick();
    }

    private Partition? PickPartition(string? preferred)
    {
        if (preferred is not null && _store.Hosts(preferred) && _store.Partition(preferred).IsPrimary) return _store.Partition(preferred);
        // Mailbox partitions before the monitor unit's, whose node is busy with the journal. Never
        // the db unit's: it holds the webmail's data and nothing else, so that data can one day
        // move to another engine (DESIGN.md §1, the farm) without carrying mail, and its journal,
        // already heavy with file uploads, does not hold up mail. The monitor unit defaults to
        // the same node as db, so this costs nothing there; a node where db alone is active
        // answers a submission 451 4.3.0, as one where nothing is.
        return _store.MailboxPartitionNames.Append(MailStore.MonitorPartition).Where(_store.Hosts)
            .Select(_store.Partition).FirstOrDefault(p => p.IsPrimary);
    }

    /// <summary>Wakes the delivery loop (a new entry, a retry).</summary>
    public void Kick()
    {
        try { _kick.Release(); }
        catch (SemaphoreFullException) { }
    }

    /// <summary>Delivers due entries of the partitions active here until stopped.</summary>
    public async Task RunAsync(CancellationToken ct)
    {
        var attempts = new List<Task>();
        while (!ct.IsCancellationRequested)
        {
            try
            {
                foreach (var name in _store.PartitionNames)
                {
                    var partition = _store.Partition(name);
                    if (!partition.IsPrimary) continue;
                    // Due entries not being attempted already, as slots free up: each attempt's
                    // end wakes this loop (Kick), so a long queue drains without waiting for the tick.
                    foreach (var entry in partition.DueQueue(Now, _slots.CurrentCount + _inFlight.Count))
                    {
                        if (_inFlight.ContainsKey(entry.Id)) continue;
                        if (!await _slots.WaitAsync(0, ct)) break;
                        if (!_inFlight.TryAdd(entry.Id, 0)) { _slots.Release(); continue; }
                        attempts.Add(AttemptAsync(partition, entry, ct));
                    }
                }
                attempts.RemoveAll(t => t.IsCompleted);
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested) { break; }
            catch (Exception ex) when (ex is IOException or UnitUnavailableException or InvalidOperationException or Microsoft.Data.Sqlite.SqliteException)
            {
                Log.Warn("queue scan: {0}", ex.Message);
            }
            await _transport.CloseIdleAsync();
            try { await _kick.WaitAsync(TimeSpan.FromSeconds(1), ct); }
            catch (OperationCanceledException) { break; }
        }
        await Task.WhenAll(attempts);
        await _transport.CloseIdleAsync(all: true);
    }

    private async Task AttemptAsync(Partition partition, QueueEntry entry, CancellationToken ct)
    {
        byte[]? data = null;
        var open = entry.Recipients.Where(r => r.State == RecipientState.Queued).ToList();
        try
        {
            await Task.Yield();
            data = partition.QueuedData(entry.Id);
            if (data is null) return;
            var outcomes = new List<RecipientOutcome>();
            var forwarded = new List<(QueueEntry, byte[])>();
            var local = open.Where(r => _directory.DomainExists(Addresses.DomainOf(r.Address))).ToList();
            foreach (var r in local) outcomes.Add(await DeliverLocallyAsync(entry, r, data, forwarded, ct));
            var remote = open.Except(local).ToList();
            var groups = _options.SmartHost.Trim().Length > 0
                ? remote.Count > 0 ? [remote] : []
                : remote.GroupBy(r => Addresses.DomainOf(r.Address), StringComparer.OrdinalIgnoreCase).Select(g => g.ToList()).ToList();
            var results = await Task.WhenAll(groups.Select(g => _transport.DeliverAsync(Addresses.DomainOf(g[0].Address), entry.Sender, g, data, entry.EnvId, entry.Ret, ct)));
            foreach (var result in results) outcomes.AddRange(result);
            foreach (var o in outcomes)
                Log.Info("relay id={0} to=<{1}> relay={2} status={3} result=\"{4}\"", entry.Id, o.Address,
                    o.RemoteMta ?? (local.Any(r => r.Address == o.Address) ? "local" : "none"),
                    o.State switch { RecipientState.Sent => "sent", RecipientState.Failed => "bounced", _ => "deferred" }, o.Reply);
            await RecordAsync(partition, entry, outcomes, data, forwarded);
        }
        catch (OperationCanceledException) when (ct.IsCancellationRequested) { }
        catch (UnitUnavailableException ex)
        {
            // The partition moved away meanwhile: the node that has it now tries again.
            Log.Warn("relay id={0}: outcome not recorded here: {1}", entry.Id, ex.Message);
        }
        catch (Exception ex)
        {
            // Our own failure (not the remote's): the entry must not stay due, or the loop would
            // retry it at once, forever. It is deferred like any temporary failure, so it still
            // ends in a bounce when the queue lifetime is over.
            Log.Error(ex, "relay id={0}: attempt failed", entry.Id);
            await DeferAfterFailureAsync(partition, entry, open, data, ex);
        }
        finally
        {
            _inFlight.TryRemove(entry.Id, out _);
            _slots.Release();
            Kick();
        }
    }

    private async Task DeferAfterFailureAsync(Partition partition, QueueEntry entry, IReadOnlyList<QueuedRecipient> open, byte[]? data, Exception failure)
    {
        try
        {
            var reply = "451 4.3.0 Local problem while sending: " + failure.Message;
            await RecordAsync(partition, entry, [.. open.Select(r => new RecipientOutcome(r.Address, RecipientState.Queued, "4.3.0", reply, null))], data ?? [], []);
        }
        catch (Exception again) when (again is not OperationCanceledException)
        {
            try
            {
                await partition.UpdateQueuedAsync(entry.Id, e => e with
                {
                    Attempts = e.Attempts + 1, NextAttempt = Now + (long)(_options.RetryMaxSeconds * 1000), LastError = "local problem: " + failure.Message,
                });
            }
            catch (Exception last) when (last is not OperationCanceledException)
            {
                Log.Error(last, "relay id={0}: cannot defer the entry", entry.Id);
            }
        }
    }

    /// <summary>
    /// Into a hosted mailbox (here or, in a pair, on the node where its partition is active). An
    /// alias forwarding outside adds a queue entry for its outside targets to <paramref name="forwarded"/>
    /// (queued in the same journal record as this attempt's outcome).
    /// </summary>
    private async Task<RecipientOutcome> DeliverLocallyAsync(QueueEntry entry, QueuedRecipient r, byte[] data, List<(QueueEntry, byte[])> forwarded, CancellationToken ct)
    {
        var route = _directory.Route(r.Address);
        if (route.IsEmpty)
            return _directory.FindMailbox(r.Address.ToLowerInvariant()) is { Enabled: false }
                ? new(r.Address, RecipientState.Failed, "5.2.1", "550 5.2.1 Mailbox disabled, not accepting messages", null)
                : new(r.Address, RecipientState.Failed, "5.1.1", "550 5.1.1 User unknown in local recipient table", null);
        if (route.Mailboxes.Count > 0)
        {
            byte[] bytes = [.. Encoding.UTF8.GetBytes($"Return-Path: <{entry.Sender}>\r\n"), .. data];
            MessageStructure structure;
            using (var ms = new MemoryStream(bytes, writable: false)) structure = MessageStructure.Parse(ms);
            foreach (var box in route.Mailboxes)
            {
                try
                {
                    if (await _store.DeliverAsync(box.ToUser(), MailStore.Inbox, bytes, structure, ct) is null)
                        return new(r.Address, RecipientState.Queued, "4.2.2", "452 4.2.2 Mailbox full", null);
                }
                catch (Exception ex) when (ex is IOException or UnitUnavailableException or InvalidOperationException)
                {
                    return new(r.Address, RecipientState.Queued, "4.3.0", "451 4.3.0 Mailbox temporarily unavailable: " + ex.Message, null);
                }
            }
        }
        if (route.Forwards.Count > 0)
        {
            var copy = NewEntry(entry.Sender, entry.Account, [.. route.Forwards.Select(f => new Recipient(f, r.Orcpt, r.Notify))], entry.EnvId, entry.Ret, data.Length);
            forwarded.Add((copy, data));
            Log.Info("relay id={0}: <{1}> forwarded to <{2}> as {3}", entry.Id, r.Address, string.Join(">,<", route.Forwards), copy.Id);
            return new(r.Address, RecipientState.Sent, "2.0.0", $"250 2.0.0 forwarded to {string.Join(", ", route.Forwards)} (queued as {copy.Id})", null);
        }
        return new(r.Address, RecipientState.Sent, "2.0.0", "250 2.0.0 delivered to the local mailbox", null);
    }
}
