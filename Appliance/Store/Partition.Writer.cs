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

    private Task<T> SubmitAsync<T>(Func<WriteContext, T> plan) => SubmitAsync(plan, replicated: false);

    private Task<T> SubmitAsync<T>(Func<WriteContext, T> plan, bool replicated)
    {
        if (_faulted is not null) return Task.FromException<T>(new IOException($"partition {Name} is failed: {_faulted.Message}", _faulted));
        // Local writes only where this node is the primary; shipped records only on a replica.
        if (replicated == IsPrimary)
            return Task.FromException<T>(new UnitUnavailableException(replicated ? $"partition {Name} is primary here, it takes no replicated records" : $"partition {Name} is not active on this node"));
        var request = new WriteRequest<T>(plan);
        if (!_requests.Writer.TryWrite(request)) return Task.FromException<T>(new ObjectDisposedException($"partition {Name}"));
        return request.Task;
    }

    /// <summary>
    /// Stops taking local writes and returns once every write accepted before is committed
    /// (and handed to <see cref="Replication"/>): a barrier through the writer loop.
    /// </summary>
    public async Task DemoteAsync()
    {
        IsPrimary = false;
        try
        {
            await SubmitAsync(_ => 0, replicated: true);
        }
        catch (IOException) when (_faulted is not null)
        {
            // A failed partition commits nothing more: there is nothing to wait for.
        }
    }

    /// <summary>Why the writer stopped (a failed commit or journal write: the disk), or null while it works.</summary>
    public Exception? Fault => _faulted;

    private long _trimCheckedAt;
    private long _journalPin = long.MaxValue;

    /// <summary>
    /// Journal bytes kept beyond what this copy needs itself, for a replica that was away to
    /// resync from (older records go once applied; a replica behind them gets a snapshot).
    /// long.MaxValue keeps everything.
    /// </summary>
    public long JournalRetainBytes { get; set; } = long.MaxValue;

    /// <summary>The first record the journal still holds: a replica behind it needs a snapshot.</summary>
    public long JournalFirstSeq => _journal.FirstSeq;

    /// <summary>
    /// Keeps the records after <paramref name="seq"/> whatever the retention (a replica being
    /// caught up or fed a snapshot reads them); long.MaxValue releases the pin.
    /// </summary>
    public void PinJournal(long seq) => Interlocked.Exchange(ref _journalPin, seq);

    /// <summary>
    /// On the writer loop, after a segment rotation: deletes old segments this copy no longer
    /// needs (every record applied; on a replica, its message files synced first, since only
    /// the journal held their bytes) beyond the retention and the pin.
    /// </summary>
    private void TrimJournal()
    {
        if (JournalRetainBytes == long.MaxValue) return;
        if (!IsPrimary)
        {
            FileSystem.SyncFileSystem(_blobDir);
            _lastFileSync = Environment.TickCount64;
        }
        var keepAfter = Math.Min(_journal.LastSeq, Interlocked.Read(ref _journalPin));
        var deleted = _journal.Trim(keepAfter, JournalRetainBytes);
        if (deleted > 0) Log.Info("partition {0}: {1} journal segment(s) trimmed, the journal now starts at seq {2}", Name, deleted, _journal.FirstSeq);
    }

    /// <summary>Tests: the next commit fails as a dying disk would make it.</summary>
    internal Exception? InjectedWriteFailure { get; set; }

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
            IReadOnlyList<JournalRecord> written = [];
            var sink = Replication; // one sink for the whole batch: shipped to, and waited on
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
                        if (InjectedWriteFailure is { } injected) throw injected;
                        SetAppliedSeq(_writer, tx, ctx.NextSeq - 1);
                        written = _journal.Append(ctx.Ops, sink is null ? null : sink.Ship);
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
            if (_journal.Rotations != _trimCheckedAt)
            {
                _trimCheckedAt = _journal.Rotations;
                TrimJournal();
            }
            if (written.Count > 0 && sink is { } replication)
            {
                // Acknowledged means on both disks: the records went to the peer before this
                // node's fsync (above), and the callers hear back once the peer has them too.
                // The loop goes on with the next batch meanwhile (acks are in order).
                var durable = replication.WhenDurableAsync(written[^1].Seq);
                if (!durable.IsCompletedSuccessfully)
                {
                    _ = CompleteWhenDurableAsync(durable, [.. ok]);
                    continue;
                }
            }
            foreach (var r in ok) r.Complete();
        }
    }

    private static async Task CompleteWhenDurableAsync(Task durable, WriteRequest[] requests)
    {
        try
        {
            await durable;
            foreach (var r in requests) r.Complete();
        }
        catch (Exception ex)
        {
            foreach (var r in requests) r.Fail(ex);
        }
    }

    /// <summary>
    /// The planning view of a batch: reads see the batch's own uncommitted writes, and every op
    /// emitted is applied at once and numbered with the next journal sequence.
    /// </summary>
    internal sealed partial class WriteContext(SqliteConnection c, SqliteTransaction tx, long nextSeq)
    {
        internal static string UidJson(IEnumerable<long> uids) => "[" + string.Join(',', uids) + "]";

        private readonly List<string> _removedBlobs = [];
        public List<JournalOp> Ops { get; } = [];
        public long NextSeq => nextSeq + Ops.Count;

        public void Emit(JournalOp op)
        {
            Apply(op);
            Ops.Add(op);
        }

        public void SetMeta(string key, long value) =>
            c.Execute("INSERT OR REPLACE INTO meta(key, value) VALUES (@key, @value)", new { key, value }, tx);

        public void DeleteMeta(string key) => c.Execute("DELETE FROM meta WHERE key = @key", new { key }, tx);

        public void Discard(int count)
        {
            Ops.RemoveRange(count, Ops.Count - count);
        }

        /// <summary>Plans with <paramref name="plan"/> and journals what it emitted as one record (already applied, so only regrouped).</summary>
        public T Atomically<T>(Func<T> plan)
        {
            var mark = Ops.Count;
            var result = plan();
            if (Ops.Count - mark > 1)
            {
                JournalOp[] ops = [.. Ops.Skip(mark).SelectMany(o => o is BatchOp b ? b.Ops : [o])];
                Ops.RemoveRange(mark, Ops.Count - mark);
                Ops.Add(new BatchOp(ops));
            }
            return result;
        }

        /// <summary>The next sequence of the provisioning journal (monitor unit only).</summary>
        public long NextProvisionSeq() => (c.ExecuteScalar<long?>("SELECT max(seq) FROM provisioning", transaction: tx) ?? 0) + 1;

        public long UsedBytes(string account) =>
            c.ExecuteScalar<long?>("SELECT used_bytes FROM accounts WHERE account = @account", new { account }, tx) ?? 0;

        public FolderRow? Folder(string account, string folder) => c.QuerySingleOrDefault<FolderRow>(
            SelectFolder,
            new { account, folder }, tx);

        public FolderRow EnsureFolder(string account, string folder) => Folder(account, folder) ?? CreateFolder(account, folder, null);

        public FolderRow CreateFolder(string account, string folder, string? specialUse)
        {
            // UIDVALIDITY: seconds since the epoch, bumped past any value this partition used, so a
            // recreated folder never reuses one (RFC 9051 §2.3.1.1). The folders of a deleted
            // account are gone, so the high-water mark is kept in meta (set by Apply, hence the
            // same on a replica and after replay).
            var max = c.ExecuteScalar<long?>("SELECT value FROM meta WHERE key = 'max_uidvalidity'", transaction: tx) ?? 0;
            var uidValidity = Math.Max(DateTimeOffset.UtcNow.ToUnixTimeSeconds(), max + 1);
            Emit(new CreateFolderOp(account, folder, uidValidity, specialUse));
            return Folder(account, folder)!;
        }

        /// <summary>The messages among <paramref name="uids"/> that exist, by ascending UID.</summary>
        // json_each drives the join (CROSS JOIN fixes the order): one primary-key lookup per UID,
        // where "uid IN (…)" may scan the whole folder.
        public List<MessageRow> Messages(long folderId, IEnumerable<long> uids) => c.Query<MessageRow>(
            "SELECT " + MessageRow.Columns +
            " FROM json_each(@uids) AS j CROSS JOIN messages AS m WHERE m.folder_id = @folderId AND m.uid = j.value ORDER BY m.uid", new { folderId, uids = UidJson(uids) }, tx).AsList();

        public List<long> AllUids(long folderId) =>
            c.Query<long>("SELECT uid FROM messages WHERE folder_id = @folderId ORDER BY uid", new { folderId }, tx).AsList();

        public List<string> Children(string account, string folder) => c.Query<string>(
            "SELECT name FROM folders WHERE account = @account AND substr(name, 1, length(@folder) + 1) = @folder || '/'",
            new { account, folder }, tx).AsList();

        /// <summary>Applies one op to the index. Shared by primary, recovery and replica.</summary>
        public void Apply(JournalOp op)
        {
            switch (op)
            {
                case CreateFolderOp f:
                    c.Execute("INSERT OR IGNORE INTO accounts(account) VALUES (@Account)", new { f.Account }, tx);
                    c.Execute("INSERT OR IGNORE INTO folders(account, name, uidvalidity, uidnext, highest_modseq, special_use) VALUES (@Account, @Folder, @UidValidity, 1, 1, @SpecialUse)",
                        new { f.Account, f.Folder, f.UidValidity, f.SpecialUse }, tx);
                    c.Execute("INSERT INTO meta(key, value) VALUES ('max_uidvalidity', @UidValidity) ON CONFLICT(key) DO UPDATE SET value = max(value, excluded.value)",
                        new { f.UidValidity }, tx);
                    break;
                case AppendOp a:
                    ApplyAppend(a);
                    break;
                case BatchOp batch:
                    foreach (var item in batch.Ops) Apply(item);
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
                    foreach (var uid in e.Uids) Remove(e.Account, ef.Id, uid, e.ModSeq);
                    c.Execute("UPDATE folders SET highest_modseq = max(highest_modseq, @ModSeq) WHERE id = @id", new { e.ModSeq, id = ef.Id }, tx);
                    break;
                case CopyOp cp:
                    ApplyCopy(cp);
                    break;
                case SubscribeOp sub:
                    if (sub.Subscribed)
                        c.Execute("INSERT OR IGNORE INTO subscriptions(account, name) VALUES (@Account, @Folder)", new { sub.Account, sub.Folder }, tx);
                    else
                        c.Execute("DELETE FROM subscriptions WHERE account = @Account AND name = @Folder", new { sub.Account, sub.Folder }, tx);
                    break;
                case RenameFolderOp r:
                    const string renamed = "account = @Account AND (name = @From OR substr(name, 1, length(@From) + 1) = @From || '/')";
                    c.Execute("UPDATE folders SET name = @To || substr(name, length(@From) + 1) WHERE " + renamed, new { r.Account, r.From, r.To }, tx);
                    // Subscriptions follow the folders (kept when the new name is already subscribed).
                    c.Execute("UPDATE OR IGNORE subscriptions SET name = @To || substr(name, length(@From) + 1) WHERE " + renamed, new { r.Account, r.From, r.To }, tx);
                    c.Execute("DELETE FROM subscriptions WHERE " + renamed, new { r.Account, r.From, r.To }, tx);
                    break;
                case DeleteFolderOp d:
                    if (Folder(d.Account, d.Folder) is not { } df) break;
                    _removedBlobs.AddRange(c.Query<string>("SELECT blob FROM messages WHERE folder_id = @id", new { id = df.Id }, tx));
                    c.Execute(
                        """
                        UPDATE accounts SET used_bytes = used_bytes - (SELECT coalesce(sum(size), 0) FROM messages WHERE folder_id = @id),
                            messages = messages - (SELECT count(*) FROM messages WHERE folder_id = @id)
                        WHERE account = @Account
                        """, new { id = df.Id, d.Account }, tx);
                    c.Execute(
                        """
                        DELETE FROM fts WHERE rowid IN (SELECT id FROM message_index WHERE folder_id = @id);
                        DELETE FROM message_index WHERE folder_id = @id;
                        DELETE FROM tombstones WHERE folder_id = @id;
                        DELETE FROM messages WHERE folder_id = @id;
                        DELETE FROM folders WHERE id = @id;
                        """, new { id = df.Id }, tx);
                    break;
                case ProvisionOp pr:
                    c.Execute("INSERT OR IGNORE INTO provisioning(seq, time, actor, kind, target, summary, payload) VALUES (@ProvisionSeq, @Time, @Actor, @Kind, @Target, @Summary, @Payload)",
                        new { pr.ProvisionSeq, pr.Time, pr.Actor, pr.Kind, pr.Target, pr.Summary, pr.Payload }, tx);
                    break;
                case QueueAddOp or QueueStateOp or QueueRemoveOp:
                    ApplyQueue(op);
                    break;
                case MetricsOp or AlertOp:
                    ApplyMonitoring(op);
                    break;
                case BayesOp b:
                    ApplyBayes(b);
                    break;
                case VacationOp v:
                    c.Execute("DELETE FROM vacation_sent WHERE account = @Account AND until <= @Time", new { v.Account, v.Time }, tx);
                    c.Execute("INSERT OR REPLACE INTO vacation_sent(account, handle, sender, until) VALUES (@Account, @Handle, @Sender, @Until)",
                        new { v.Account, v.Handle, v.Sender, v.Until }, tx);
                    break;
                case SieveScriptOp sieve:
                    ApplySieve(sieve);
                    break;
                case WebmailOp webmail:
                    ApplyWebmail(webmail);
                    break;
                case DeleteAccountOp d:
                    _removedBlobs.AddRange(c.Query<string>("SELECT m.blob FROM messages m JOIN folders f ON f.id = m.folder_id WHERE f.account = @Account", new { d.Account }, tx));
                    c.Execute(
                        """
                        DELETE FROM fts WHERE rowid IN (SELECT i.id FROM message_index i JOIN folders f ON f.id = i.folder_id WHERE f.account = @Account);
                        DELETE FROM message_index WHERE folder_id IN (SELECT id FROM folders WHERE account = @Account);
                        DELETE FROM tombstones WHERE folder_id IN (SELECT id FROM folders WHERE account = @Account);
                        DELETE FROM messages WHERE folder_id IN (SELECT id FROM folders WHERE account = @Account);
                        DELETE FROM folders WHERE account = @Account;
                        DELETE FROM subscriptions WHERE account = @Account;
                        DELETE FROM sieve_scripts WHERE account = @Account;
                        DELETE FROM accounts WHERE account = @Account;
                        DELETE FROM bayes_tokens WHERE account = @Account;
                        DELETE FROM bayes_seen WHERE account = @Account;
                        DELETE FROM bayes_totals WHERE account = @Account;
                        DELETE FROM vacation_sent WHERE account = @Account;
                        """, new { d.Account }, tx);
                    break;
                default:
                    throw new InvalidDataException($"unknown op {op.GetType().Name}");
            }
        }

        private void ApplyAppend(AppendOp a)
        {
            var folder = Folder(a.Account, a.Folder) ?? throw new InvalidDataException($"append to missing folder {a.Account}/{a.Folder}");
            var inserted = c.Execute(
                """
                INSERT OR IGNORE INTO messages(folder_id, uid, size, internal_date, flags, keywords, modseq, blob, envelope, body, bodystructure, part_offsets)
                VALUES (@id, @Uid, @size, @InternalDateUnixMs, @flags, @keywords, @ModSeq, @BlobId, @envelope, @body, @bodystructure, @offsets)
                """,
                new { id = folder.Id, a.Uid, size = (long)a.Data.Length, a.InternalDateUnixMs, flags = (int)a.Flags, keywords = string.Join(' ', a.Keywords), a.ModSeq, a.BlobId, envelope = a.Structure.Envelope, body = a.Structure.Body, bodystructure = a.Structure.BodyStructure, offsets = a.Structure.PartOffsets }, tx);
            if (inserted == 0) return;
            c.Execute("UPDATE folders SET uidnext = max(uidnext, @next), highest_modseq = max(highest_modseq, @ModSeq) WHERE id = @id",
                new { next = a.Uid + 1, a.ModSeq, id = folder.Id }, tx);
            c.Execute("UPDATE accounts SET used_bytes = used_bytes + @size, messages = messages + 1 WHERE account = @Account",
                new { size = (long)a.Data.Length, a.Account }, tx);
            // The primary extracted the index before submitting; a journalled op is re-extracted.
            Index(folder.Id, a.Uid, a.Index ?? MessageIndex.Extract(a.Data, a.InternalDateUnixMs));
        }

        private void ApplyCopy(CopyOp cp)
        {
            if (Folder(cp.Account, cp.Folder) is not { } source || Folder(cp.Account, cp.Target) is not { } target) return;
            for (var i = 0; i < cp.SourceUids.Length; i++)
            {
                var p = new { source = source.Id, suid = cp.SourceUids[i], target = target.Id, tuid = cp.TargetUids[i], modseq = cp.TargetModSeq, cp.Account };
                var inserted = c.Execute(
                    """
                    INSERT OR IGNORE INTO messages(folder_id, uid, size, internal_date, flags, keywords, modseq, blob, envelope, body, bodystructure, part_offsets)
                    SELECT @target, @tuid, size, internal_date, flags, keywords, @modseq, blob, envelope, body, bodystructure, part_offsets
                    FROM messages WHERE folder_id = @source AND uid = @suid
                    """, p, tx);
                if (inserted == 0) continue;
                c.Execute(
                    """
                    UPDATE accounts SET used_bytes = used_bytes + (SELECT size FROM messages WHERE folder_id = @target AND uid = @tuid), messages = messages + 1
                    WHERE account = @Account
                    """, p, tx);
                var id = c.ExecuteScalar<long?>(
                    """
                    INSERT INTO message_index(folder_id, uid, sent_date, base_subject, subject_reply, from_addr, to_addr, cc_addr, display_from, display_to, message_id, in_reply_to, refs, from_name, from_address)
                    SELECT @target, @tuid, sent_date, base_subject, subject_reply, from_addr, to_addr, cc_addr, display_from, display_to, message_id, in_reply_to, refs, from_name, from_address
                    FROM message_index WHERE folder_id = @source AND uid = @suid
                    ON CONFLICT DO NOTHING RETURNING id
                    """, p, tx);
                if (id is not null)
                    c.Execute(
                        """
                        INSERT INTO fts(rowid, hsubject, hfrom, hto, hcc, hbcc, body, headers)
                        SELECT @id, hsubject, hfrom, hto, hcc, hbcc, body, headers FROM fts
                        WHERE rowid = (SELECT id FROM message_index WHERE folder_id = @source AND uid = @suid)
                        """, new { id, source = source.Id, suid = cp.SourceUids[i] }, tx);
            }
            if (cp.TargetUids.Length > 0)
                c.Execute("UPDATE folders SET uidnext = max(uidnext, @next), highest_modseq = max(highest_modseq, @modseq) WHERE id = @id",
                    new { next = cp.TargetUids.Max() + 1, modseq = cp.TargetModSeq, id = target.Id }, tx);
            if (!cp.Move) return;
            foreach (var uid in cp.SourceUids) Remove(cp.Account, source.Id, uid, cp.SourceModSeq);
            c.Execute("UPDATE folders SET highest_modseq = max(highest_modseq, @modseq) WHERE id = @id", new { modseq = cp.SourceModSeq, id = source.Id }, tx);
        }

        /// <summary>Expunges one message: its row, its index rows, a tombstone at <paramref name="modSeq"/>; its file goes after commit unless another copy still uses it.</summary>
        private void Remove(string account, long folderId, long uid, long modSeq)
        {
            var row = c.QuerySingleOrDefault<MessageRow>("SELECT uid AS Uid, size AS Size, blob AS Blob FROM messages WHERE folder_id = @folderId AND uid = @uid", new { folderId, uid }, tx);
            if (row is null) return;
            c.Execute(
                """
                DELETE FROM messages WHERE folder_id = @folderId AND uid = @uid;
                DELETE FROM fts WHERE rowid = (SELECT id FROM message_index WHERE folder_id = @folderId AND uid = @uid);
                DELETE FROM message_index WHERE folder_id = @folderId AND uid = @uid;
                INSERT OR REPLACE INTO tombstones(folder_id, uid, modseq) VALUES (@folderId, @uid, @modSeq);
                """, new { folderId, uid, modSeq }, tx);
            c.Execute("UPDATE accounts SET used_bytes = used_bytes - @Size, messages = messages - 1 WHERE account = @account", new { row.Size, account }, tx);
            _removedBlobs.Add(row.Blob);
        }

        /// <summary>Adds the search and sort rows of a message (once).</summary>
        public void Index(long folderId, long uid, MessageIndex x)
        {
            var id = c.ExecuteScalar<long?>(
                """
                INSERT INTO message_index(folder_id, uid, sent_date, base_subject, subject_reply, from_addr, to_addr, cc_addr, display_from, display_to, message_id, in_reply_to, refs, from_name, from_address)
                VALUES (@folderId, @uid, @SentDateUnixMs, @BaseSubject, @reply, @FromAddr, @ToAddr, @CcAddr, @DisplayFrom, @DisplayTo, @MessageId, @InReplyTo, @References, @FromName, @FromAddress)
                ON CONFLICT DO NOTHING RETURNING id
                """,
                new { folderId, uid, x.SentDateUnixMs, x.BaseSubject, reply = x.SubjectIsReply ? 1 : 0, x.FromAddr, x.ToAddr, x.CcAddr, x.DisplayFrom, x.DisplayTo, x.MessageId, x.InReplyTo, x.References, x.FromName, x.FromAddress }, tx);
            if (id is null) return;
            c.Execute("INSERT INTO fts(rowid, hsubject, hfrom, hto, hcc, hbcc, body, headers) VALUES (@id, @Subject, @From, @To, @Cc, @Bcc, @Body, @Headers)",
                new { id, x.Subject, x.From, x.To, x.Cc, x.Bcc, x.Body, x.Headers }, tx);
        }

        /// <summary>Message files of expunged messages go once the index no longer names them.
        /// Copies share a file, so a file is only deleted when no message row names it any more
        /// (checked after commit, which also keeps a file whose expunge was rolled back).</summary>
        public void DeleteRemovedBlobs(string blobDir)
        {
            foreach (var blob in _removedBlobs.Distinct())
            {
                if (c.ExecuteScalar<long>("SELECT EXISTS(SELECT 1 FROM messages WHERE blob = @blob)", new { blob }) != 0) continue;
                try { File.Delete(BlobPath(blobDir, blob)); }
                catch (IOException ex) { Log.Warn(ex, "could not delete message file {0}", blob); }
            }
        }
    }
}
