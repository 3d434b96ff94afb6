using System.Text;
using Appliance.Directory;
using Appliance.Store;
using MimeKit;

namespace Appliance.Cluster;

/// <summary>
/// What happens to the records of a copy that is rolled back (see <see cref="RollBackAsync"/>):
/// the tail written by a primary that died before replicating it, or one side of a split brain.
/// Policy: messages are never lost, everything else follows the surviving copy.
/// - Every message added in the tail (delivered, appended, or copied in with its bytes) is
///   saved as a file under units/NAME/diverged/STAMP/ with a manifest (pending.tsv), and,
///   once this copy is in sync again, delivered anew into its folder (INBOX when that folder
///   no longer exists) on the node where the partition is active: it gets a new UID there
///   (UIDs keep growing, so UIDVALIDITY stays), arrives unflagged, and a message whose
///   Message-ID the folder already holds is skipped (an SMTP client's retry of a 250 it never
///   saw was delivered again on the other side).
/// - Every message the tail put in the outbound queue and had not finished there is saved
///   the same way (queue/ID.op: the whole entry as queued) and queued anew, under its id unless
///   the surviving copy holds it already (<see cref="Requeue"/>): sent at least once, never lost.
/// - Flag changes, expunges and folder operations of the tail are dropped: the surviving
///   copy's state wins (a message expunged in the tail is back, a message moved in the tail
///   is in its old folder).
/// The files stay (the manifest becomes done.tsv) for the administrator to inspect.
/// </summary>
public sealed partial class ClusterManager
{
    private const string PendingManifest = "pending.tsv";
    private const string DoneManifest = "done.tsv";
    private const string Progress = "redelivered.tsv";
    /// <summary>The manifest's mark of a saved queue entry ("FILE\tqueue", where a message's line has three fields).</summary>
    private const string QueueLine = "queue";

    /// <summary>Set by the host: queues a message of a diverged tail anew (entry as it was queued, bytes).</summary>
    public Func<QueueEntry, byte[], Task>? Requeue { get; set; }

    /// <summary>Saves the messages added after <paramref name="fromSeq"/> and their manifest; returns the count.</summary>
    private static async Task<int> SaveDivergedTailAsync(Partition p, long fromSeq, string kept)
    {
        var manifest = new StringBuilder();
        var saved = 0;
        // One pass over the tail: its messages are written out as they come; its queue entries
        // are followed to the end of the tail (only those it did not finish are kept).
        var queued = new Dictionary<string, QueueAddOp>();
        foreach (var record in p.ReadJournal(fromSeq))
        {
            foreach (var add in JournalOp.QueueAddsOf(record.Op)) queued[add.Entry.Id] = add;
            foreach (var id in JournalOp.QueueRemovalsOf(record.Op)) queued.Remove(id);
            foreach (var append in JournalOp.AppendsOf(record.Op))
            {
                var file = Path.Combine(Sanitize(append.Account), Sanitize(append.Folder), $"{record.Seq}-{append.Uid}-{saved}.eml");
                System.IO.Directory.CreateDirectory(Path.GetDirectoryName(Path.Combine(kept, file))!);
                await File.WriteAllBytesAsync(Path.Combine(kept, file), append.Data);
                manifest.Append(file).Append('\t').Append(Escape(append.Account)).Append('\t').Append(Escape(append.Folder)).Append('\n');
                saved++;
            }
        }
        foreach (var add in queued.Values)
        {
            var file = Path.Combine("queue", Sanitize(add.Entry.Id) + ".op");
            System.IO.Directory.CreateDirectory(Path.Combine(kept, "queue"));
            using (var ms = new MemoryStream())
            {
                using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true)) add.Write(w);
                await File.WriteAllBytesAsync(Path.Combine(kept, file), ms.ToArray());
            }
            manifest.Append(file).Append('\t').Append(QueueLine).Append('\n');
            saved++;
        }
        if (saved > 0) await WriteDurablyAsync(Path.Combine(kept, PendingManifest), manifest.ToString());
        return saved;
    }

    /// <summary>Diverged tails of this unit still to deliver (their directories), oldest first.</summary>
    private static List<string> PendingTails(string unitDir)
    {
        var root = Path.Combine(unitDir, "diverged");
        if (!System.IO.Directory.Exists(root)) return [];
        return [.. System.IO.Directory.EnumerateDirectories(root).Where(d => File.Exists(Path.Combine(d, PendingManifest))).Order(StringComparer.Ordinal)];
    }

    /// <summary>
    /// From the decision loop: starts delivering the unit's pending tails when the partition is
    /// active here, or active on the peer with this copy in sync (so the duplicate check reads
    /// a copy that has everything the primary has). One run per unit at a time.
    /// </summary>
    private void RedeliverDivergedIfDue(Unit unit, NodeStatus? peer)
    {
        if (unit.PendingTails == 0 || !unit.Redelivery.IsCompleted || _loopStop.IsCancellationRequested) return;
        var here = unit.State == UnitState.Active;
        var there = unit.ReplicaInSync && !unit.Record.Outdated && peer?.Unit(unit.Name) is { State: UnitState.Active };
        if (!here && !there) return;
        unit.Redelivery = Task.Run(() => RedeliverAsync(unit));
    }

    private async Task RedeliverAsync(Unit unit)
    {
        foreach (var tail in PendingTails(unit.Dir))
        {
            try
            {
                var (delivered, skipped) = await RedeliverTailAsync(unit.Partition, tail, _loopStop.Token);
                File.Move(Path.Combine(tail, PendingManifest), Path.Combine(tail, DoneManifest), overwrite: true);
                Log.Warn("ALERT unit {0}: the diverged tail in {1} is back in its mailboxes: {2} message(s) delivered anew, {3} already there (same Message-ID)",
                    unit.Name, tail, delivered, skipped);
            }
            catch (Exception ex) when (ex is UnitUnavailableException or IOException or InvalidOperationException or ObjectDisposedException or OperationCanceledException)
            {
                // The partition moved or the peer went away in the middle: the next run goes on
                // from what redelivered.tsv records.
                if (!_loopStop.IsCancellationRequested) Log.Warn("unit {0}: re-delivery of {1} interrupted: {2}", unit.Name, tail, ex.Message);
                return;
            }
        }
        unit.PendingTails = PendingTails(unit.Dir).Count;
    }

    private async Task<(int Delivered, int Skipped)> RedeliverTailAsync(Partition copy, string tail, CancellationToken ct)
    {
        var progressPath = Path.Combine(tail, Progress);
        var done = File.Exists(progressPath) ? new HashSet<string>(await File.ReadAllLinesAsync(progressPath, ct), StringComparer.Ordinal) : [];
        int delivered = 0, skipped = 0;
        await using var progress = new StreamWriter(progressPath, append: true);
        foreach (var line in await File.ReadAllLinesAsync(Path.Combine(tail, PendingManifest), ct))
        {
            var fields = line.Split('\t');
            if (fields.Length == 2 && fields[1] == QueueLine && !done.Contains(fields[0]))
            {
                QueueAddOp op;
                using (var r = new BinaryReader(File.OpenRead(Path.Combine(tail, fields[0])), Encoding.UTF8)) op = QueueAddOp.ReadBody(r);
                if (_store.PartitionNames.Any(n => _store.Partition(n).Queued(op.Entry.Id) is not null)) skipped++;
                else
                {
                    await (Requeue ?? throw new UnitUnavailableException("the outbound queue is not ready"))(op.Entry, op.Data);
                    delivered++;
                }
                await progress.WriteLineAsync(fields[0].AsMemory(), ct);
                await progress.FlushAsync(ct);
                continue;
            }
            if (fields.Length != 3 || done.Contains(fields[0])) continue;
            var account = Unescape(fields[1]);
            var user = new MailUser(account, copy.Name, 0); // accepted once already: no quota refusal now
            var data = await File.ReadAllBytesAsync(Path.Combine(tail, fields[0]), ct);
            var named = Unescape(fields[2]);
            var folder = await copy.GetFolderInfoAsync(account, named, ct) is null ? MailStore.Inbox : named;
            if (MessageIdOf(data) is { Length: > 0 } id && await HoldsMessageIdAsync(copy, account, folder, id, ct))
            {
                skipped++;
            }
            else
            {
                MessageStructure structure;
                using (var ms = new MemoryStream(data, writable: false)) structure = MessageStructure.Parse(ms);
                await _store.DeliverAsync(user, folder, data, structure, ct);
                delivered++;
            }
            await progress.WriteLineAsync(fields[0].AsMemory(), ct);
            await progress.FlushAsync(ct);
        }
        return (delivered, skipped);
    }

    private static async Task<bool> HoldsMessageIdAsync(Partition copy, string account, string folder, string messageId, CancellationToken ct)
    {
        try
        {
            return (await copy.SearchTextAsync(account, folder, TextField.Header, messageId, "Message-ID", ct)).Count > 0;
        }
        catch (FolderNotFoundException)
        {
            return false; // no INBOX yet: delivering creates it
        }
    }

    private static string? MessageIdOf(byte[] data)
    {
        try
        {
            using var ms = new MemoryStream(data, writable: false);
            var headers = HeaderList.Load(ms);
            var raw = headers[HeaderId.MessageId];
            return raw is null ? null : MimeKit.Utils.MimeUtils.ParseMessageId(raw) ?? raw.Trim();
        }
        catch (FormatException)
        {
            return null;
        }
    }

    private static async Task WriteDurablyAsync(string path, string text)
    {
        await using (var f = new FileStream(path + ".tmp", FileMode.Create, FileAccess.Write))
        {
            await f.WriteAsync(Encoding.UTF8.GetBytes(text));
            f.Flush(flushToDisk: true);
        }
        File.Move(path + ".tmp", path, overwrite: true);
    }

    // Names may hold any character but a tab or a line break needs escaping in the manifest.
    private static string Escape(string s) => s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\t", "\\t", StringComparison.Ordinal).Replace("\n", "\\n", StringComparison.Ordinal);

    private static string Unescape(string s)
    {
        var sb = new StringBuilder(s.Length);
        for (var i = 0; i < s.Length; i++)
        {
            if (s[i] != '\\' || i + 1 == s.Length) { sb.Append(s[i]); continue; }
            var c = s[++i];
            sb.Append(c switch { 't' => '\t', 'n' => '\n', _ => c });
        }
        return sb.ToString();
    }

    private static string Sanitize(string name) =>
        string.Concat(name.Select(c => char.IsLetterOrDigit(c) || c is '.' or '@' or '-' or '_' ? c : '_'));
}
