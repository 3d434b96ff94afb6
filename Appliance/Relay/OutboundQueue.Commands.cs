using System.Text;
using Appliance.Directory;
using Appliance.Store;

namespace Appliance.Relay;

// Queue management (appliance queue …, the API, the admin panel). Every partition has a copy on
// each node of a pair, so the whole queue is listed from this node's copies; a change goes to
// the node where the entry's partition is active (forwarded over the cluster link when that is
// the other node).
public sealed partial class OutboundQueue
{
    public Task<IReadOnlyList<QueueEntry>> ListQueueAsync() =>
        Task.FromResult<IReadOnlyList<QueueEntry>>([.. _store.PartitionNames.SelectMany(n => _store.Partition(n).ListQueue()).OrderBy(e => e.Created).ThenBy(e => e.Id)]);

    public Task<(QueueEntry Entry, string Headers)> ShowQueuedAsync(string id)
    {
        var (partition, entry) = Find(id);
        var data = partition.QueuedData(entry.Id) ?? [];
        return Task.FromResult((entry, HeaderBlock(data)));
    }

    /// <summary>The header block of a message (up to the first empty line).</summary>
    public static string HeaderBlock(ReadOnlySpan<byte> data)
    {
        var end = data.IndexOf("\r\n\r\n"u8);
        if (end < 0) end = data.IndexOf("\n\n"u8);
        return Encoding.UTF8.GetString(end < 0 ? data : data[..end]);
    }

    public async Task<int> RetryQueuedAsync(string? id, string actor)
    {
        if (id is not null)
        {
            await ChangeAsync(id, "retry", actor);
            return 1;
        }
        var count = await RetryAllHereAsync();
        if (Cluster is { } cluster && _store.PartitionNames.Any(n => !_store.Partition(n).IsPrimary))
        {
            var (exit, lines) = await cluster.ForwardQueueCommandAsync(["retry-all", actor], CancellationToken.None);
            if (exit == 0 && lines.Count > 0 && int.TryParse(lines[0], out var there)) count += there;
            else if (exit != 0) Log.Warn("queue retry --all on {0}: {1}", cluster.PeerName, string.Join(' ', lines));
        }
        Log.Info("queue: every entry queued for immediate retry by {0} ({1})", actor, count);
        return count;
    }

    public Task DeleteQueuedAsync(string id, string actor) => ChangeAsync(id, "delete", actor);

    public Task HoldQueuedAsync(string id, bool hold, string actor) => ChangeAsync(id, hold ? "hold" : "release", actor);

    /// <summary>What each queue command does to an entry (null: it goes).</summary>
    private static Func<QueueEntry, QueueEntry?> Change(string verb) => verb switch
    {
        "retry" => e => e with { NextAttempt = Now },
        "delete" => _ => null,
        "hold" => e => e with { Held = true },
        "release" => e => e with { Held = false, NextAttempt = Now },
        _ => throw new DirectoryException($"unknown queue command {verb}"),
    };

    /// <summary>Makes every entry not on hold in the partitions active here due now.</summary>
    private async Task<int> RetryAllHereAsync()
    {
        var count = 0;
        foreach (var partition in _store.PartitionNames.Select(_store.Partition).Where(p => p.IsPrimary))
            foreach (var entry in partition.ListQueue().Where(e => !e.Held))
                if (await partition.UpdateQueuedAsync(entry.Id, Change("retry"))) count++;
        Kick();
        return count;
    }

    /// <summary>Runs a queue command where the entry's partition is active: here, or forwarded to the peer.</summary>
    private async Task ChangeAsync(string id, string verb, string actor)
    {
        var (partition, _) = Find(id);
        if (partition.IsPrimary)
        {
            if (!await partition.UpdateQueuedAsync(id, Change(verb))) throw new DirectoryException($"no message {id} in the queue", DirectoryError.NotFound);
            Log.Info("queue: {0} {1} by {2}", id, verb, actor);
            Kick();
            return;
        }
        if (Cluster is not { } cluster) throw new DirectoryException($"message {id}: its partition {partition.Name} is not active on this node", DirectoryError.Unavailable);
        var (exit, lines) = await cluster.ForwardQueueCommandAsync([verb, id, actor], CancellationToken.None);
        if (exit != 0) throw new DirectoryException(lines.FirstOrDefault() ?? $"{verb} {id} failed on {cluster.PeerName}", exit == 3 ? DirectoryError.NotFound : DirectoryError.Unavailable);
    }

    /// <summary>A change the peer forwarded (see <see cref="Cluster.ClusterManager.QueueHandler"/>): exit 0 done, 3 no such entry, 1 otherwise.</summary>
    public async Task<(int Exit, List<string> Lines)> HandleForwardedAsync(string[] args)
    {
        try
        {
            switch (args)
            {
                case ["retry-all", var actor]:
                    var count = await RetryAllHereAsync();
                    Log.Info("queue: every entry here queued for immediate retry by {0} ({1})", actor, count);
                    return (0, [count.ToString()]);
                case [var verb, var id, var actor]:
                    // Never forwarded back: the peer sent it here because the partition is active here.
                    if (!Find(id).Partition.IsPrimary) return (1, [$"message {id}: its partition is not active on either node"]);
                    await ChangeAsync(id, verb, actor);
                    return (0, ["done"]);
                default:
                    return (2, ["bad queue command"]);
            }
        }
        catch (DirectoryException ex)
        {
            return (ex.Kind == DirectoryError.NotFound ? 3 : 1, [ex.Message]);
        }
    }

    private (Partition Partition, QueueEntry Entry) Find(string id)
    {
        id = id.Trim().ToUpperInvariant();
        foreach (var name in _store.PartitionNames)
            if (_store.Partition(name).Queued(id) is { } entry) return (_store.Partition(name), entry);
        throw new DirectoryException($"no message {id} in the queue", DirectoryError.NotFound);
    }
}
