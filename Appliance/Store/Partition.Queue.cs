using System.Text.Json;
using System.Text.Json.Serialization;
using Dapper;

namespace Appliance.Store;

// The outbound queue (issue 5) lives in the partitions like mail: a queued message is a
// QueueAddOp carrying its bytes, every attempt's outcome a QueueStateOp with the entry's whole
// new state, and its end a QueueRemoveOp. So the queue is fsynced before the 250, replicated
// synchronously, resynced, snapshotted, and moves with its unit on failover; the node where the
// unit is active delivers it. Bytes sit in outbound_data (read only to send), the rest in
// outbound (recipients as JSON: they are always read and written with their entry).

internal sealed class QueueRow
{
    public const string Columns = "id AS Id, created AS Created, sender AS Sender, account AS Account, size AS Size, held AS Held, attempts AS Attempts, next_attempt AS NextAttempt, delay_notified AS DelayNotified, last_error AS LastError, envid AS EnvId, ret AS Ret, recipients AS Recipients";
    public string Id { get; set; } = "";
    public long Created { get; set; }
    public string Sender { get; set; } = "";
    public string Account { get; set; } = "";
    public long Size { get; set; }
    public long Held { get; set; }
    public long Attempts { get; set; }
    public long NextAttempt { get; set; }
    public long DelayNotified { get; set; }
    public string LastError { get; set; } = "";
    public string? EnvId { get; set; }
    public string? Ret { get; set; }
    public string Recipients { get; set; } = "[]";

    public QueueEntry ToEntry(string partition) => new(Id, Created, Sender, Account, Size, Held != 0, (int)Attempts, NextAttempt, DelayNotified != 0,
        LastError, EnvId, Ret, JsonSerializer.Deserialize(Recipients, QueueJson.Default.QueuedRecipientArray) ?? []) { Partition = partition };
}

[JsonSerializable(typeof(QueuedRecipient[]))]
internal sealed partial class QueueJson : JsonSerializerContext;

public sealed partial class Partition
{
    /// <summary>Puts a message in this partition's queue; returns once durable here and, in a pair, on the replica.</summary>
    public Task EnqueueAsync(QueueEntry entry, byte[] data) =>
        SubmitAsync(ctx => { ctx.Emit(new QueueAddOp(entry, data)); return 0; });

    /// <summary>
    /// Changes an entry as it stands now (read in the write transaction, so an attempt's outcome
    /// and an admin's change never overwrite each other): <paramref name="change"/> returns the new
    /// state, or null to remove it. The messages in <paramref name="add"/> (the reports the change
    /// causes) are queued in the same journal record, and only if the entry is still there.
    /// False when there is no such entry.
    /// </summary>
    public Task<bool> UpdateQueuedAsync(string id, Func<QueueEntry, QueueEntry?> change, IReadOnlyList<(QueueEntry Entry, byte[] Data)>? add = null) =>
        SubmitAsync(ctx =>
        {
            if (ctx.Queued(id, Name) is not { } current) return false;
            var next = change(current);
            ctx.Atomically(() =>
            {
                foreach (var (entry, data) in add ?? []) ctx.Emit(new QueueAddOp(entry, data));
                ctx.Emit(next is null ? new QueueRemoveOp(id) : new QueueStateOp(next with { Partition = "" }));
                return 0;
            });
            return true;
        });

    public IReadOnlyList<QueueEntry> ListQueue()
    {
        using var c = OpenReader();
        return [.. c.Query<QueueRow>("SELECT " + QueueRow.Columns + " FROM outbound ORDER BY created, id").Select(r => r.ToEntry(Name))];
    }

    /// <summary>How many entries wait in this partition's queue, and when the oldest was queued (unix ms; 0 when none).</summary>
    public (long Count, long Oldest) QueueSummary()
    {
        using var c = OpenReader();
        var count = c.ExecuteScalar<long>("SELECT count(*) FROM outbound");
        var oldest = c.ExecuteScalar<long?>("SELECT min(created) FROM outbound") ?? 0;
        return (count, oldest);
    }

    public QueueEntry? Queued(string id)
    {
        using var c = OpenReader();
        return c.QuerySingleOrDefault<QueueRow>("SELECT " + QueueRow.Columns + " FROM outbound WHERE id = @id", new { id })?.ToEntry(Name);
    }

    /// <summary>Entries not on hold whose next attempt is due at <paramref name="now"/> (unix ms), soonest first.</summary>
    public IReadOnlyList<QueueEntry> DueQueue(long now, int max)
    {
        using var c = OpenReader();
        return [.. c.Query<QueueRow>("SELECT " + QueueRow.Columns + " FROM outbound WHERE held = 0 AND next_attempt <= @now ORDER BY next_attempt LIMIT @max", new { now, max })
            .Select(r => r.ToEntry(Name))];
    }

    /// <summary>When the next entry not on hold is due (unix ms), or null when none is.</summary>
    public long? NextQueueAttempt()
    {
        using var c = OpenReader();
        return c.ExecuteScalar<long?>("SELECT min(next_attempt) FROM outbound WHERE held = 0");
    }

    public byte[]? QueuedData(string id)
    {
        using var c = OpenReader();
        return c.QueryFirstOrDefault<byte[]>("SELECT data FROM outbound_data WHERE id = @id", new { id });
    }

    internal sealed partial class WriteContext
    {
        public QueueEntry? Queued(string id, string partition) =>
            c.QuerySingleOrDefault<QueueRow>("SELECT " + QueueRow.Columns + " FROM outbound WHERE id = @id", new { id }, tx)?.ToEntry(partition);

        private void ApplyQueue(JournalOp op)
        {
            switch (op)
            {
                case QueueAddOp add:
                    {
                        var e = add.Entry;
                        var p = QueueParameters(e);
                        if (c.Execute(
                            """
                            INSERT OR IGNORE INTO outbound(id, created, sender, account, size, held, attempts, next_attempt, delay_notified, last_error, envid, ret, recipients)
                            VALUES (@Id, @Created, @Sender, @Account, @Size, @Held, @Attempts, @NextAttempt, @DelayNotified, @LastError, @EnvId, @Ret, @Recipients)
                            """, p, tx) > 0)
                        {
                            var data = add.Data;
                            var id = e.Id;
                            c.Execute("INSERT OR REPLACE INTO outbound_data(id, data) VALUES (@id, @data)", new { id, data }, tx);
                        }
                        break;
                    }
                case QueueStateOp state:
                    c.Execute(
                        """
                        UPDATE outbound SET held = @Held, attempts = @Attempts, next_attempt = @NextAttempt, delay_notified = @DelayNotified,
                            last_error = @LastError, recipients = @Recipients WHERE id = @Id
                        """, QueueParameters(state.Entry), tx);
                    break;
                case QueueRemoveOp remove:
                    {
                        var id = remove.Id;
                        c.Execute("DELETE FROM outbound WHERE id = @id; DELETE FROM outbound_data WHERE id = @id", new { id }, tx);
                        break;
                    }
            }
        }

        private static QueueRow QueueParameters(QueueEntry e) => new()
        {
            Id = e.Id, Created = e.Created, Sender = e.Sender, Account = e.Account, Size = e.Size, Held = e.Held ? 1 : 0,
            Attempts = e.Attempts, NextAttempt = e.NextAttempt, DelayNotified = e.DelayNotified ? 1 : 0, LastError = e.LastError,
            EnvId = e.EnvId, Ret = e.Ret, Recipients = JsonSerializer.Serialize(e.Recipients, QueueJson.Default.QueuedRecipientArray),
        };
    }
}
