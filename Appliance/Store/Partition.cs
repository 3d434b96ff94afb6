using System.Security.Cryptography;
using System.Text;
using System.Threading.Channels;
using Dapper;
using Microsoft.Data.Sqlite;

namespace Appliance.Store;

/// <summary>
/// One mailbox partition (units/store-NAME): index.db + blobs/ + journal/.
/// Implementation notes (invariants):
/// - All mutations run on one writer loop. A batch of requests is planned inside one SQLite
///   transaction (each request under its own savepoint, so a failing request leaves no trace),
///   the resulting ops are appended to the journal and fsynced once (group commit), and only
///   then is the transaction committed and the callers released. So an acknowledged mutation
///   is in the journal on disk and in the committed index.
/// - Ops carry absolute values (UIDs, MODSEQs, final flags, bytes). The same apply code serves
///   the primary, crash recovery (replay of journal records past meta.applied_seq) and a
///   replica, which therefore reaches the same state.
/// - Message files are immutable and written (fsynced) before their op is journalled. A copy
///   shares its source's file; a file is deleted once no message row names it (after commit).
/// - Derived data (message_index sort keys, the fts full-text rows) is not journalled: the
///   primary extracts it from the bytes before submitting (AppendOp.Index: the MimeKit work is
///   off the writer loop; the FTS5 insert, which tokenizes the text, is on it). An AppendOp read
///   back from the journal carries its bytes and is extracted again when applied (crash replay,
///   a replica: ApplyReplicatedAsync extracts before submitting). Copies copy the rows. Messages
///   stored by a version without these tables are indexed from their files at the first open
///   after the upgrade (meta index_backfill).
/// - A request whose ops must stand or fall together (MULTIAPPEND, a STORE, renaming INBOX)
///   journals them as one BatchOp record (WriteContext.Atomically): a torn tail cuts whole requests.
/// - Every expunge (EXPUNGE, MOVE, the INBOX rename) leaves a tombstone (folder, uid, MODSEQ)
///   for QRESYNC; tombstones go with their folder.
/// </summary>
public sealed partial class Partition : IAsyncDisposable
{
    private const string SelectFolder = "SELECT " + FolderRow.Columns + " FROM folders WHERE account = @account AND name = @folder";
    private readonly string _blobDir;
    private readonly SqliteConnection _writer;
    private readonly Journal _journal;
    private readonly Channel<WriteRequest> _requests = Channel.CreateUnbounded<WriteRequest>(new() { SingleReader = true });
    private readonly Task _writerLoop;
    private readonly string _connectionString;

    public string Name { get; }
    public long LastSeq => _journal.LastSeq;

    /// <summary>
    /// Whether local writes are accepted (the unit is active on this node). A single node is
    /// always primary; in a pair the cluster manager flips it on promotion and demotion, and a
    /// replica takes only <see cref="ApplyReplicatedAsync"/>.
    /// </summary>
    public bool IsPrimary
    {
        get => _isPrimary;
        set
        {
            CancellationTokenSource? ended;
            lock (_tenureGate)
            {
                if (value == _isPrimary) return;
                _isPrimary = value;
                ended = value ? null : _tenure;
                if (value) _tenure = new CancellationTokenSource();
            }
            // Asynchronously: the callbacks (sessions ending) must not run on the demoting thread.
            _ = ended?.CancelAsync();
        }
    }

    /// <summary>
    /// Cancelled when the partition stops being active here (demotion, rollback): IMAP and POP
    /// sessions of its mailboxes end then, so their clients reconnect to where it went.
    /// Already cancelled when the partition is not active here.
    /// </summary>
    public CancellationToken Tenure
    {
        get
        {
            lock (_tenureGate) return _isPrimary ? _tenure.Token : new CancellationToken(canceled: true);
        }
    }

    private readonly Lock _tenureGate = new();
    private bool _isPrimary = true;
    private CancellationTokenSource _tenure = new();

    /// <summary>Where a primary ships its records and waits for them to be durable (null: alone).</summary>
    public IReplicationSink? Replication { get; set; }

    private Partition(string name, string dir, SqliteConnection writer, Journal journal, string connectionString)
    {
        Name = name;
        _blobDir = Path.Combine(dir, "blobs");
        _writer = writer;
        _journal = journal;
        _connectionString = connectionString;
        _writerLoop = Task.Run(WriterLoopAsync);
    }

    /// <summary>Opens (or creates) the partition and replays journal records the index has not applied yet.</summary>
    public static Partition Open(string name, string dir, long journalSegmentBytes)
    {
        System.IO.Directory.CreateDirectory(Path.Combine(dir, "blobs"));
        var connectionString = new SqliteConnectionStringBuilder
        {
            DataSource = Path.Combine(dir, "index.db"),
            Pooling = true,
        }.ToString();
        var writer = new SqliteConnection(connectionString);
        writer.Open();
        PartitionSchema.CreateOrUpgrade(writer);
        // The journal is fsynced per batch, so the index may lag on power loss: replay fixes it.
        writer.Execute("PRAGMA synchronous=NORMAL");
        var journal = Journal.Open(Path.Combine(dir, "journal"), journalSegmentBytes);
        var applied = writer.ExecuteScalar<long>("SELECT value FROM meta WHERE key = 'applied_seq'");
        RestoreUnsyncedFiles(writer, journal, Path.Combine(dir, "blobs"), applied);
        var pending = applied < journal.LastSeq ? journal.ReadFrom(applied).ToList() : [];
        if (pending.Count > 0)
        {
            using var tx = writer.BeginTransaction();
            var ctx = new WriteContext(writer, tx, 0);
            foreach (var record in pending)
            {
                foreach (var append in JournalOp.AppendsOf(record.Op)) EnsureBlob(Path.Combine(dir, "blobs"), append);
                ctx.Apply(record.Op);
            }
            SetAppliedSeq(writer, tx, pending[^1].Seq);
            tx.Commit();
            ctx.DeleteRemovedBlobs(Path.Combine(dir, "blobs"));
        }
        IndexUnindexed(writer, Path.Combine(dir, "blobs"));
        FillFromColumns(writer, Path.Combine(dir, "blobs"));
        return new Partition(name, dir, writer, journal, connectionString);
    }

    /// <summary>
    /// A replica writes message files without an fsync each (the journal, fsynced, holds their
    /// bytes) and syncs the file system about once a second. While its files lag, meta
    /// files_synced_seq says up to where every file is durable (no row: all of them, as on a
    /// primary, whose files are fsynced before their ops). After a crash the files of the records
    /// past that point are checked and written again from the journal.
    /// </summary>
    private static void RestoreUnsyncedFiles(SqliteConnection writer, Journal journal, string blobDir, long applied)
    {
        var synced = writer.ExecuteScalar<long?>("SELECT value FROM meta WHERE key = 'files_synced_seq'") ?? applied;
        if (synced >= applied) return;
        var restored = 0;
        foreach (var record in journal.ReadFrom(synced))
        {
            if (record.Seq > applied) break;
            foreach (var append in JournalOp.AppendsOf(record.Op))
                if (EnsureBlob(blobDir, append, flush: false)) restored++;
        }
        FileSystem.SyncFileSystem(blobDir);
        writer.Execute("DELETE FROM meta WHERE key = 'files_synced_seq'");
        if (restored > 0) Log.Warn("restored {0} message files from the journal after a crash", restored);
    }

    /// <summary>Builds the search and sort rows of messages stored before they existed (older data directories).</summary>
    private static void IndexUnindexed(SqliteConnection writer, string blobDir)
    {
        if (writer.ExecuteScalar<long?>("SELECT value FROM meta WHERE key = 'index_backfill'") is null) return;
        var missing = writer.Query<UnindexedRow>(
            """
            SELECT m.folder_id AS FolderId, m.uid AS Uid, m.blob AS Blob, m.internal_date AS InternalDate FROM messages m
            WHERE NOT EXISTS (SELECT 1 FROM message_index i WHERE i.folder_id = m.folder_id AND i.uid = m.uid)
            """).AsList();
        using var tx = writer.BeginTransaction();
        var ctx = new WriteContext(writer, tx, 0);
        int indexed = 0;
        foreach (var m in missing)
        {
            var path = BlobPath(blobDir, m.Blob);
            if (!File.Exists(path)) continue;
            ctx.Index(m.FolderId, m.Uid, MessageIndex.Extract(File.ReadAllBytes(path), m.InternalDate));
            indexed++;
        }
        writer.Execute("DELETE FROM meta WHERE key = 'index_backfill'", transaction: tx);
        tx.Commit();
        Log.Info("indexed {0} messages for search", indexed);
    }

    /// <summary>
    /// Gives the message_index rows of an index.db from before the listing columns their sender
    /// (from_name, from_address), extracted again from the message files, once (meta index_from_backfill).
    /// </summary>
    private static void FillFromColumns(SqliteConnection writer, string blobDir)
    {
        if (writer.ExecuteScalar<long?>("SELECT value FROM meta WHERE key = 'index_from_backfill'") is null) return;
        var rows = writer.Query<UnindexedRow>(
            """
            SELECT i.folder_id AS FolderId, i.uid AS Uid, m.blob AS Blob, m.internal_date AS InternalDate
            FROM message_index i JOIN messages m ON m.folder_id = i.folder_id AND m.uid = i.uid
            """).AsList();
        using var tx = writer.BeginTransaction();
        int filled = 0;
        foreach (var m in rows)
        {
            var path = BlobPath(blobDir, m.Blob);
            if (!File.Exists(path)) continue;
            var x = MessageIndex.Extract(File.ReadAllBytes(path), m.InternalDate);
            writer.Execute("UPDATE message_index SET from_name = @FromName, from_address = @FromAddress WHERE folder_id = @FolderId AND uid = @Uid",
                new { x.FromName, x.FromAddress, m.FolderId, m.Uid }, tx);
            filled++;
        }
        writer.Execute("DELETE FROM meta WHERE key = 'index_from_backfill'", transaction: tx);
        tx.Commit();
        Log.Info("read the sender of {0} messages for the folder listing", filled);
    }

    /// <summary>The op with the index of its messages extracted (done before submitting, off the writer loop).</summary>
    private static JournalOp WithIndex(JournalOp op) => op switch
    {
        AppendOp { Index: null } a => a with { Index = MessageIndex.Extract(a.Data, a.InternalDateUnixMs) },
        BatchOp b => new BatchOp([.. b.Ops.Select(WithIndex)]),
        _ => op,
    };

    // ---- reads (own connections; WAL lets them run beside the writer) ----

    internal SqliteConnection OpenReader()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        return c;
    }

    public async Task<FolderStatus?> GetFolderAsync(string account, string folder, CancellationToken ct)
    {
        await using var c = OpenReader();
        var f = await c.QuerySingleOrDefaultAsync<FolderRow>(
            SelectFolder,
            new { account, folder });
        if (f is null) return null;
        var count = await c.ExecuteScalarAsync<long>("SELECT count(*) FROM messages WHERE folder_id = @id", new { id = f.Id });
        return new FolderStatus(f.Name, f.UidValidity, f.UidNext, f.HighestModSeq, (int)count);
    }

    public async Task<IReadOnlyList<StoredMessage>> ListAsync(string account, string folder, CancellationToken ct)
    {
        await using var c = OpenReader();
        var rows = await c.QueryAsync<MessageRow>(
            "SELECT " + MessageRow.Columns +
            " FROM messages m JOIN folders f ON f.id = m.folder_id WHERE f.account = @account AND f.name = @folder ORDER BY m.uid", new { account, folder });
        return rows.Select(r => r.ToStored()).ToList();
    }

    /// <summary>One message of a folder by UID, or null when there is none.</summary>
    public async Task<StoredMessage?> GetMessageAsync(string account, string folder, long uid, CancellationToken ct)
    {
        await using var c = OpenReader();
        var row = await c.QuerySingleOrDefaultAsync<MessageRow>(
            "SELECT " + MessageRow.Columns +
            " FROM messages m JOIN folders f ON f.id = m.folder_id WHERE f.account = @account AND f.name = @folder AND m.uid = @uid", new { account, folder, uid });
        return row?.ToStored();
    }

    public long UsedBytes(string account) => Usage(account).Bytes;

    public string BlobPath(string blobId) => BlobPath(_blobDir, blobId);

    private static string BlobPath(string blobDir, string blobId) => Path.Combine(blobDir, blobId[..2], blobId);

    // ---- writes ----

    /// <summary>
    /// Delivers one message (a one-message append: the folder must exist, INBOX is created when
    /// missing): writes its file (fsync), then journals and indexes it. Returns the
    /// UID, or null when the account's quota (bytes, 0 = unlimited) would be exceeded.
    /// </summary>
    public async Task<long?> AppendAsync(string account, string folder, ReadOnlyMemory<byte> data, MessageStructure structure,
        DateTimeOffset internalDate, MessageFlags flags, long quotaBytes, CancellationToken ct) =>
        (await AppendAsync(account, folder, [new NewMessage(data, structure, internalDate, flags, [])], quotaBytes, ct))?.Uids[0];

    /// <summary>Creates the folder if it does not exist yet.</summary>
    public Task CreateFolderAsync(string account, string folder) =>
        SubmitAsync(ctx => { ctx.EnsureFolder(account, folder); return 0; });

    /// <summary>Sets the final flags and keywords of the given messages.</summary>
    public Task SetFlagsAsync(string account, string folder, IReadOnlyCollection<long> uids, MessageFlags flags, string[] keywords) =>
        SubmitAsync(ctx =>
        {
            var f = ctx.Folder(account, folder);
            if (f is null || uids.Count == 0) return 0;
            ctx.Emit(new SetFlagsOp(account, folder, f.HighestModSeq + 1, uids.Order().ToArray(), flags, keywords));
            return 0;
        });

    public Task ExpungeAsync(string account, string folder, IReadOnlyCollection<long> uids) =>
        SubmitAsync(ctx =>
        {
            var f = ctx.Folder(account, folder);
            if (f is null || uids.Count == 0) return 0;
            ctx.Emit(new ExpungeOp(account, folder, f.HighestModSeq + 1, uids.Order().ToArray()));
            return 0;
        });

    public Task DeleteAccountAsync(string account) =>
        SubmitAsync(ctx => { ctx.Emit(new DeleteAccountOp(account)); return 0; });

    /// <summary>
    /// Applies records shipped from the primary (replica side, and the replay test). Records at
    /// or below <see cref="LastSeq"/> are skipped (idempotent); a gap is refused, the replica then
    /// needs a resync.
    /// </summary>
    public async Task ApplyReplicatedAsync(IReadOnlyList<JournalRecord> records)
    {
        // Only for records not applied yet: re-shipped records of messages expunged since would
        // otherwise recreate files that nothing references (and nothing ever deletes).
        var lastSeq = _journal.LastSeq;
        // Files are written without an fsync each: the journal (fsynced before the ack) holds
        // their bytes, and a sync about once a second bounds what a crash makes Open rewrite.
        if (_filesUnsynced && Environment.TickCount64 - _lastFileSync > 1000)
        {
            FileSystem.SyncFileSystem(_blobDir);
            _lastFileSync = Environment.TickCount64;
            _filesUnsynced = false;
        }
        var wrote = false;
        foreach (var r in records)
            if (r.Seq > lastSeq)
                foreach (var append in JournalOp.AppendsOf(r.Op))
                    wrote |= EnsureBlob(_blobDir, append, flush: false);
        // Files start to lag: everything up to lastSeq is durable (recorded with this batch).
        long? filesSynced = wrote && !_filesUnsynced ? lastSeq : null;
        _filesUnsynced |= wrote;
        records = [.. records.Select(r => r.Seq > lastSeq ? r with { Op = WithIndex(r.Op) } : r)];
        await SubmitAsync(ctx =>
        {
            if (filesSynced is { } synced) ctx.SetMeta("files_synced_seq", synced);
            foreach (var r in records)
            {
                if (r.Seq <= ctx.NextSeq - 1) continue;
                if (r.Seq != ctx.NextSeq) throw new InvalidDataException($"journal gap: expected seq {ctx.NextSeq}, got {r.Seq}");
                ctx.Emit(r.Op);
            }
            return 0;
        }, replicated: true);
    }

    private bool _filesUnsynced;
    private long _lastFileSync = Environment.TickCount64;

    /// <summary>Makes the files a replica wrote durable (before the partition is promoted).</summary>
    public async Task SyncFilesAsync()
    {
        if (!_filesUnsynced) return;
        FileSystem.SyncFileSystem(_blobDir);
        _filesUnsynced = false;
        _lastFileSync = Environment.TickCount64;
        await SubmitAsync(ctx => { ctx.DeleteMeta("files_synced_seq"); return 0; }, replicated: !IsPrimary);
    }

    /// <summary>Where the message files live (a snapshot sends them as they are: they never change).</summary>
    public string BlobDirectory => _blobDir;

    /// <summary>
    /// Writes a consistent copy of the index to <paramref name="path"/> (SQLite VACUUM INTO, from
    /// one read transaction, beside the writer) and returns the journal seq it reflects: a
    /// replica installing it continues with the records after that.
    /// </summary>
    public async Task<long> SnapshotIndexAsync(string path)
    {
        await using (var c = OpenReader()) await c.ExecuteAsync("VACUUM INTO @path", new { path });
        var cs = new SqliteConnectionStringBuilder { DataSource = path, Pooling = false }.ToString();
        await using var copy = new SqliteConnection(cs);
        await copy.OpenAsync();
        // A replica's files are made durable before it installs: no lag to record.
        await copy.ExecuteAsync("DELETE FROM meta WHERE key = 'files_synced_seq'");
        return await copy.ExecuteScalarAsync<long>("SELECT value FROM meta WHERE key = 'applied_seq'");
    }

    /// <summary>Journal records after <paramref name="afterSeq"/> (to ship to a replica).</summary>
    public IEnumerable<JournalRecord> ReadJournal(long afterSeq) => _journal.ReadFrom(afterSeq);

    /// <summary>Writes a message file from its op unless it is already there; true when written.</summary>
    private static bool EnsureBlob(string blobDir, AppendOp op, bool flush = true)
    {
        var path = BlobPath(blobDir, op.BlobId);
        if (File.Exists(path) && new FileInfo(path).Length == op.Data.Length) return false;
        System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        using var file = new FileStream(path, FileMode.Create, FileAccess.Write);
        file.Write(op.Data);
        file.Flush(flushToDisk: flush);
        return true;
    }

    private static void SetAppliedSeq(SqliteConnection c, SqliteTransaction tx, long seq) =>
        c.Execute("UPDATE meta SET value = @seq WHERE key = 'applied_seq'", new { seq }, tx);

    public async ValueTask DisposeAsync()
    {
        _requests.Writer.TryComplete();
        await _writerLoop;
        _journal.Dispose();
        await _writer.DisposeAsync();
        // Pooled connections would otherwise stay open on these files after the partition is
        // gone: a partition reopened at the same path (restart, a unit moving back, an index
        // rebuilt from the journal) must not be read through them.
        using var forPool = new SqliteConnection(_connectionString);
        SqliteConnection.ClearPool(forPool);
    }

    /// <summary>A canonical text form of the whole partition state, used to compare replicas.</summary>
    public async Task<string> DumpAsync()
    {
        await using var c = OpenReader();
        var sb = new StringBuilder();
        foreach (var a in await c.QueryAsync<AccountRow>("SELECT account AS Account, used_bytes AS UsedBytes, messages AS Messages FROM accounts ORDER BY account"))
            sb.Append("account ").Append(a.Account).Append(' ').Append(a.UsedBytes).Append(' ').Append(a.Messages).Append('\n');
        foreach (var s in await c.QueryAsync<TextRow>("SELECT 0 AS Uid, account || ' ' || name AS Text FROM subscriptions ORDER BY account, name"))
            sb.Append("subscribed ").Append(s.Text).Append('\n');
        foreach (var s in await c.QueryAsync<SieveRow>("SELECT " + SieveRow.Columns + " FROM sieve_scripts ORDER BY account, name"))
            sb.Append($"sieve {s.Account} {s.Name} {(s.Active != 0 ? "active" : "inactive")} {Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(s.Content)))}\n");
        foreach (var w in await c.QueryAsync<WebmailRow>("SELECT " + WebmailRow.Columns + ", data AS Data FROM webmail_items ORDER BY account, kind, id"))
            sb.Append($"webmail {w.Account} {w.Kind} {w.Id} parent={w.Parent} name={w.Name} {w.Size} {w.Updated} {Convert.ToHexStringLower(SHA256.HashData(w.Data ?? []))}\n");
        foreach (var q in await c.QueryAsync<QueueRow>("SELECT " + QueueRow.Columns + " FROM outbound ORDER BY id"))
        {
            var data = c.ExecuteScalar<byte[]>("SELECT data FROM outbound_data WHERE id = @Id", new { q.Id });
            sb.Append($"queued {q.Id} {q.Created} <{q.Sender}> {q.Size} held={q.Held} attempts={q.Attempts} next={q.NextAttempt} {q.Recipients} {Convert.ToHexStringLower(SHA256.HashData(data ?? []))}\n");
        }
        foreach (var b in await c.QueryAsync<TextRow>(
            "SELECT 0 AS Uid, t.account || ' ' || t.spam || ' ' || t.ham || ' ' || (SELECT count(*) || ' ' || sum(spam) || ' ' || sum(ham) FROM bayes_tokens k WHERE k.account = t.account) || ' ' || " +
            "(SELECT group_concat(message || ':' || spam, ',') FROM (SELECT message, spam FROM bayes_seen s WHERE s.account = t.account ORDER BY message)) AS Text FROM bayes_totals t ORDER BY t.account"))
            sb.Append("bayes ").Append(b.Text).Append('\n');
        var folders = await c.QueryAsync<FolderRow>("SELECT " + FolderRow.Columns + " FROM folders ORDER BY account, name");
        foreach (var f in folders)
        {
            sb.Append($"folder {f.Account} {f.Name} {f.UidValidity} {f.UidNext} {f.HighestModSeq} {f.SpecialUse}\n");
            var tombstones = await c.QueryAsync<TextRow>("SELECT uid AS Uid, CAST(modseq AS TEXT) AS Text FROM tombstones WHERE folder_id = @Id ORDER BY uid", new { f.Id });
            sb.Append("expunged [").AppendJoin(' ', tombstones.Select(t => $"{t.Uid}:{t.Text}")).Append("]\n");
            var indexed = await c.QueryAsync<TextRow>(
                "SELECT i.uid AS Uid, i.base_subject || '|' || i.from_name || '|' || i.from_address || '|' || length(x.body) || '|' || length(x.headers) AS Text FROM message_index i JOIN fts x ON x.rowid = i.id WHERE i.folder_id = @Id ORDER BY i.uid", new { f.Id });
            sb.Append("indexed [").AppendJoin(' ', indexed.Select(t => $"{t.Uid}:{t.Text}")).Append("]\n");
            foreach (var m in await ListAsync(f.Account, f.Name, CancellationToken.None))
            {
                var hash = Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(BlobPath(m.BlobId))));
                sb.Append($"  {m.Uid} {m.Size} {m.InternalDate.ToUnixTimeMilliseconds()} {(int)m.Flags} [{string.Join(' ', m.Keywords)}] {m.ModSeq} {hash}\n");
            }
        }
        return sb.ToString();
    }
}

internal sealed class AccountRow
{
    public string Account { get; set; } = "";
    public long UsedBytes { get; set; }
    public long Messages { get; set; }
}
