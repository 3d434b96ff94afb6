using Dapper;
using Microsoft.Data.Sqlite;

namespace Appliance.Store;

public sealed partial class Partition
{
    private const int MaxBatch = 256;
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("store");
    private Exception? _faulted;

    private abstract class WriteRequest
    {
        public abstract void Plan(WriteContext ctx);
        public abstract void Complete();
        public abstract void Fail(Exception ex);
    }

    private sealed class WriteRequest<T>(Func<WriteContext, T> plan) : WriteRequest
    {
        private readonly TaskCompletionSource<T> _tcs = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private T _result = default!;
        public Task<T> Task => _tcs.Task;
        public override void Plan(WriteContext ctx) => _result = plan(ctx);
        public override void Complete() => _tcs.TrySetResult(_result);
        public override void Fail(Exception ex) => _tcs.TrySetException(ex);
    }

    private Task<T> SubmitAsync<T>(Func<WriteContext, T> plan)
    {
        if (_faulted is not null) return Task.FromException<T>(new IOException($"partition {Name} is failed: {_faulted.Message}", _faulted));
        var request = new WriteRequest<T>(plan);
        if (!_requests.Writer.TryWrite(request)) return Task.FromException<T>(new ObjectDisposedException($"partition {Name}"));
        return request.Task;
    }

    private async Task WriterLoopAsync()
    {
        var batch = new List<WriteRequest>(MaxBatch);
        var ok = new List<WriteRequest>(MaxBatch);
        while (await _requests.Reader.WaitToReadAsync())
        {
            batch.Clear();
            ok.Clear();
            while (batch.Count < MaxBatch && _requests.Reader.TryRead(out var r)) batch.Add(r);
            if (_faulted is not null)
            {
                foreach (var r in batch) r.Fail(new IOException($"partition {Name} is failed", _faulted));
                continue;
            }
            WriteContext ctx;
            using (var tx = _writer.BeginTransaction())
            {
                ctx = new WriteContext(_writer, tx, _journal.LastSeq + 1);
                foreach (var r in batch)
                {
                    var mark = ctx.Ops.Count;
                    _writer.Execute("SAVEPOINT req", transaction: tx);
                    try
                    {
                        r.Plan(ctx);
                        _writer.Execute("RELEASE req", transaction: tx);
                        ok.Add(r);
                    }
                    catch (Exception ex)
                    {
                        _writer.Execute("ROLLBACK TO req; RELEASE req", transaction: tx);
                        ctx.Discard(mark);
                        r.Fail(ex);
                    }
                }
                try
                {
                    if (ctx.Ops.Count > 0)
                    {
                        SetAppliedSeq(_writer, tx, ctx.NextSeq - 1);
                        _journal.Append(ctx.Ops);
                    }
                    tx.Commit();
                }
                catch (Exception ex)
                {
                    // The journal may hold records the index lacks; a restart replays them.
                    _faulted = ex;
                    Log.Error(ex, "partition {0}: write failed, partition stopped", Name);
                    foreach (var r in ok) r.Fail(new IOException($"partition {Name} write failed", ex));
                    continue;
                }
            }
            // Files of expunged messages go before the callers hear back, so an acknowledged
            // expunge has left nothing behind (unlinks are cheap next to the fsync above).
            ctx.DeleteRemovedBlobs(_blobDir);
            foreach (var r in ok) r.Complete();
        }
    }

    /// <summary>
    /// The planning view of a batch: reads see the batch's own uncommitted writes, and every op
    /// emitted is applied at once and numbered with the next journal sequence.
    /// </summary>
    internal sealed class WriteContext(SqliteConnection c, SqliteTransaction tx, long nextSeq)
    {
        private readonly List<string> _removedBlobs = [];
        public List<JournalOp> Ops { get; } = [];
        public long NextSeq => nextSeq + Ops.Count;

        public void Emit(JournalOp op)
        {
            Apply(op);
            Ops.Add(op);
        }

        public void Discard(int count)
        {
            Ops.RemoveRange(count, Ops.Count - count);
        }

        public long UsedBytes(string account) =>
            c.ExecuteScalar<long?>("SELECT used_bytes FROM accounts WHERE account = @account", new { account }, tx) ?? 0;

        public FolderRow? Folder(string account, string folder) => c.QuerySingleOrDefault<FolderRow>(
            SelectFolder,
            new { account, folder }, tx);

        public FolderRow EnsureFolder(string account, string folder)
        {
            if (Folder(account, folder) is { } f) return f;
            // UIDVALIDITY: seconds since the epoch, bumped past any value this partition used, so a
            // recreated folder never reuses one (RFC 9051 §2.3.1.1). The folders of a deleted
            // account are gone, so the high-water mark is kept in meta (set by Apply, hence the
            // same on a replica and after replay).
            var max = c.ExecuteScalar<long?>("SELECT value FROM meta WHERE key = 'max_uidvalidity'", transaction: tx) ?? 0;
            var uidValidity = Math.Max(DateTimeOffset.UtcNow.ToUnixTimeSeconds(), max + 1);
            Emit(new CreateFolderOp(account, folder, uidValidity));
            return Folder(account, folder)!;
        }

        /// <summary>Applies one op to the index. Shared by primary, recovery and replica.</summary>
        public void Apply(JournalOp op)
        {
            switch (op)
            {
                case CreateFolderOp f:
                    c.Execute("INSERT OR IGNORE INTO accounts(account) VALUES (@Account)", new { f.Account }, tx);
                    c.Execute("INSERT OR IGNORE INTO folders(account, name, uidvalidity, uidnext, highest_modseq) VALUES (@Account, @Folder, @UidValidity, 1, 1)",
                        new { f.Account, f.Folder, f.UidValidity }, tx);
                    c.Execute("INSERT INTO meta(key, value) VALUES ('max_uidvalidity', @UidValidity) ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
                        new { f.UidValidity }, tx);
                    break;
                case AppendOp a:
                    var folder = Folder(a.Account, a.Folder) ?? throw new InvalidDataException($"append to missing folder {a.Account}/{a.Folder}");
                    var inserted = c.Execute(
                        """
                        INSERT OR IGNORE INTO messages(folder_id, uid, size, internal_date, flags, keywords, modseq, blob, envelope, body, bodystructure, part_offsets)
                        VALUES (@id, @Uid, @size, @InternalDateUnixMs, @flags, @keywords, @ModSeq, @BlobId, @envelope, @body, @bodystructure, @offsets)
                        """,
                        new { id = folder.Id, a.Uid, size = (long)a.Data.Length, a.InternalDateUnixMs, flags = (int)a.Flags, keywords = string.Join(' ', a.Keywords), a.ModSeq, a.BlobId, envelope = a.Structure.Envelope, body = a.Structure.Body, bodystructure = a.Structure.BodyStructure, offsets = a.Structure.PartOffsets }, tx);
                    if (inserted == 0) break;
                    c.Execute("UPDATE folders SET uidnext = max(uidnext, @next), highest_modseq = max(highest_modseq, @ModSeq) WHERE id = @id",
                        new { next = a.Uid + 1, a.ModSeq, id = folder.Id }, tx);
                    c.Execute("UPDATE accounts SET used_bytes = used_bytes + @size, messages = messages + 1 WHERE account = @Account",
                        new { size = (long)a.Data.Length, a.Account }, tx);
                    break;
                case SetFlagsOp s:
                    if (Folder(s.Account, s.Folder) is not { } sf) break;
                    var keywords = string.Join(' ', s.Keywords);
                    foreach (var uid in s.Uids)
                        c.Execute("UPDATE messages SET flags = @flags, keywords = @keywords, modseq = @ModSeq WHERE folder_id = @id AND uid = @uid",
                            new { flags = (int)s.Flags, keywords, s.ModSeq, id = sf.Id, uid }, tx);
                    c.Execute("UPDATE folders SET highest_modseq = max(highest_modseq, @ModSeq) WHERE id = @id", new { s.ModSeq, id = sf.Id }, tx);
                    break;
                case ExpungeOp e:
                    if (Folder(e.Account, e.Folder) is not { } ef) break;
                    foreach (var uid in e.Uids)
                    {
                        var row = c.QuerySingleOrDefault<MessageRow>("SELECT uid AS Uid, size AS Size, blob AS Blob FROM messages WHERE folder_id = @id AND uid = @uid", new { id = ef.Id, uid }, tx);
                        if (row is null) continue;
                        c.Execute("DELETE FROM messages WHERE folder_id = @id AND uid = @uid", new { id = ef.Id, uid }, tx);
                        c.Execute("UPDATE accounts SET used_bytes = used_bytes - @Size, messages = messages - 1 WHERE account = @Account", new { row.Size, e.Account }, tx);
                        _removedBlobs.Add(row.Blob);
                    }
                    c.Execute("UPDATE folders SET highest_modseq = max(highest_modseq, @ModSeq) WHERE id = @id", new { e.ModSeq, id = ef.Id }, tx);
                    break;
                case DeleteAccountOp d:
                    _removedBlobs.AddRange(c.Query<string>("SELECT m.blob FROM messages m JOIN folders f ON f.id = m.folder_id WHERE f.account = @Account", new { d.Account }, tx));
                    c.Execute("DELETE FROM messages WHERE folder_id IN (SELECT id FROM folders WHERE account = @Account)", new { d.Account }, tx);
                    c.Execute("DELETE FROM folders WHERE account = @Account", new { d.Account }, tx);
                    c.Execute("DELETE FROM accounts WHERE account = @Account", new { d.Account }, tx);
                    break;
                default:
                    throw new InvalidDataException($"unknown op {op.GetType().Name}");
            }
        }

        /// <summary>Message files of expunged messages go once the index no longer names them.</summary>
        public void DeleteRemovedBlobs(string blobDir)
        {
            foreach (var blob in _removedBlobs)
            {
                try { File.Delete(BlobPath(blobDir, blob)); }
                catch (IOException ex) { Log.Warn(ex, "could not delete message file {0}", blob); }
            }
        }
    }
}
