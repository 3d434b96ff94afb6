using System.Security.Cryptography;
using Dapper;

namespace Appliance.Store;

// The folder-level operations behind MailStore.Folders.cs. Names arrive normalized (INBOX
// spelled so). Planning (checks, UIDs, MODSEQs) runs on the writer loop; everything costly
// (message files, text extraction) is done by the caller before it submits.
public sealed partial class Partition
{
    private const string FolderInfoSelect = """
        SELECT f.name AS Name, f.uidvalidity AS UidValidity, f.uidnext AS UidNext, f.highest_modseq AS HighestModSeq, f.special_use AS SpecialUse,
            count(m.uid) AS Messages, coalesce(sum((m.flags & 1) = 0), 0) AS Unseen, coalesce(sum((m.flags & 8) != 0), 0) AS Deleted,
            coalesce(sum(m.size), 0) AS Size,
            EXISTS(SELECT 1 FROM subscriptions s WHERE s.account = f.account AND s.name = f.name) AS Subscribed
        FROM folders f LEFT JOIN messages m ON m.folder_id = f.id
        """;

    // ---- reads ----

    public async Task<bool> HasSpecialFoldersAsync(string account)
    {
        await using var c = OpenReader();
        return await c.ExecuteScalarAsync<long>("SELECT count(*) FROM folders WHERE account = @account AND special_use IS NOT NULL", new { account }) > 0;
    }

    public async Task<IReadOnlyList<FolderInfo>> ListFolderInfosAsync(string account, CancellationToken ct)
    {
        await using var c = OpenReader();
        var rows = await c.QueryAsync<FolderInfoRow>(
            FolderInfoSelect + " WHERE f.account = @account GROUP BY f.id ORDER BY f.name <> 'INBOX', f.name", new { account });
        return rows.Select(r => r.ToInfo()).ToList();
    }

    public async Task<FolderInfo?> GetFolderInfoAsync(string account, string folder, CancellationToken ct)
    {
        await using var c = OpenReader();
        var row = await c.QuerySingleOrDefaultAsync<FolderInfoRow>(
            FolderInfoSelect + " WHERE f.account = @account AND f.name = @folder GROUP BY f.id", new { account, folder });
        return row?.ToInfo();
    }

    public async Task<IReadOnlyList<string>> ListSubscriptionsAsync(string account, CancellationToken ct)
    {
        await using var c = OpenReader();
        return (await c.QueryAsync<string>("SELECT name FROM subscriptions WHERE account = @account ORDER BY name", new { account })).AsList();
    }

    public async Task<FolderChanges> GetChangesAsync(string account, string folder, long sinceModSeq, CancellationToken ct)
    {
        await using var c = OpenReader();
        // One snapshot for the folder, its messages and tombstones. Deferred: a plain BEGIN on a
        // reader would be BEGIN IMMEDIATE, taking the write lock the partition's writer needs.
        await using var tx = c.BeginTransaction(deferred: true);
        var f = await c.QuerySingleOrDefaultAsync<FolderRow>(SelectFolder, new { account, folder }, tx) ?? throw new FolderNotFoundException(folder);
        var changed = await c.QueryAsync<MessageRow>(
            "SELECT " + MessageRow.Columns + " FROM messages m WHERE m.folder_id = @Id AND m.modseq > @sinceModSeq", new { f.Id, sinceModSeq }, tx);
        var expunged = await c.QueryAsync<long>(
            "SELECT uid FROM tombstones WHERE folder_id = @Id AND modseq > @sinceModSeq", new { f.Id, sinceModSeq }, tx);
        // Sorted here, not by ORDER BY uid: that made SQLite walk the whole folder in UID order
        // instead of using the modseq indexes, and these results are small.
        return new FolderChanges(f.HighestModSeq, f.UidNext, changed.Select(r => r.ToStored()).OrderBy(m => m.Uid).ToList(), expunged.Order().ToList());
    }

    public async Task<IReadOnlyDictionary<long, MessageStructure>> GetStructuresAsync(string account, string folder, IReadOnlyCollection<long> uids, CancellationToken ct)
    {
        await using var c = OpenReader();
        var rows = await c.QueryAsync<StructureRow>(
            """
            SELECT m.uid AS Uid, m.envelope AS Envelope, m.body AS Body, m.bodystructure AS BodyStructure, m.part_offsets AS PartOffsets
            FROM messages m JOIN folders f ON f.id = m.folder_id
            WHERE f.account = @account AND f.name = @folder AND m.uid IN (SELECT value FROM json_each(@uids))
            """, new { account, folder, uids = WriteContext.UidJson(uids) });
        return rows.ToDictionary(r => r.Uid, r => new MessageStructure(r.Envelope, r.Body, r.BodyStructure, r.PartOffsets));
    }

    public async Task<IReadOnlyList<MessageSortInfo>> GetSortInfoAsync(string account, string folder, IReadOnlyCollection<long> uids, CancellationToken ct)
    {
        await using var c = OpenReader();
        var rows = await c.QueryAsync<SortRow>(
            "SELECT " + SortRow.Columns + """
             FROM message_index WHERE folder_id = (SELECT id FROM folders WHERE account = @account AND name = @folder)
            AND uid IN (SELECT value FROM json_each(@uids)) ORDER BY uid
            """, new { account, folder, uids = WriteContext.UidJson(uids) });
        return rows.Select(r => r.ToInfo()).ToList();
    }

    /// <summary>
    /// RFC 9051 §6.4.4 substring search through the fts table. A text of 3 or more characters is
    /// a trigram phrase query (index-assisted, case-insensitive with Unicode folding); a shorter
    /// one cannot use trigrams, so the folder's texts are scanned and compared here.
    /// </summary>
    public async Task<IReadOnlySet<long>> SearchTextAsync(string account, string folder, TextField field, string text, string? headerName, CancellationToken ct)
    {
        await using var c = OpenReader();
        var f = await c.QuerySingleOrDefaultAsync<FolderRow>(SelectFolder, new { account, folder }) ?? throw new FolderNotFoundException(folder);
        var column = field switch
        {
            TextField.Subject => 0,
            TextField.From => 1,
            TextField.To => 2,
            TextField.Cc => 3,
            TextField.Bcc => 4,
            TextField.Body => 5,
            TextField.Header => 6,
            _ => 7,
        };
        var indexed = text.EnumerateRunes().Count() >= 3;
        string? query = null;
        if (indexed)
        {
            var columns = column switch
            {
                0 => "hsubject",
                1 => "hfrom",
                2 => "hto",
                3 => "hcc",
                4 => "hbcc",
                5 => "body",
                6 => "headers",
                _ => "headers body",
            };
            query = "{" + columns + "} : \"" + text.Replace("\"", "\"\"", StringComparison.Ordinal) + "\"";
        }
        if (field != TextField.Header)
        {
            if (indexed)
                return (await c.QueryAsync<long>(
                    "SELECT i.uid FROM fts JOIN message_index i ON i.id = fts.rowid WHERE fts MATCH @query AND i.folder_id = @Id",
                    new { query, f.Id })).ToHashSet();
            if (text.Length == 0)
                return (await c.QueryAsync<long>("SELECT uid FROM messages WHERE folder_id = @Id", new { f.Id })).ToHashSet();
            var texts = await c.QueryAsync<TextRow>(
                """
                SELECT i.uid AS Uid, CASE @column WHEN 0 THEN x.hsubject WHEN 1 THEN x.hfrom WHEN 2 THEN x.hto WHEN 3 THEN x.hcc
                    WHEN 4 THEN x.hbcc WHEN 5 THEN x.body ELSE x.headers || char(10) || x.body END AS Text
                FROM fts x JOIN message_index i ON i.id = x.rowid WHERE i.folder_id = @Id
                """, new { column, f.Id });
            return texts.Where(t => t.Text.Contains(text, StringComparison.OrdinalIgnoreCase)).Select(t => t.Uid).ToHashSet();
        }
        // A header field: candidates from the header block, then the named field's lines ("Name: value").
        ArgumentException.ThrowIfNullOrEmpty(headerName);
        var candidates = indexed
            ? await c.QueryAsync<TextRow>(
                "SELECT i.uid AS Uid, x.headers AS Text FROM fts x JOIN message_index i ON i.id = x.rowid WHERE fts MATCH @query AND i.folder_id = @Id",
                new { query, f.Id })
            : await c.QueryAsync<TextRow>(
                "SELECT i.uid AS Uid, x.headers AS Text FROM fts x JOIN message_index i ON i.id = x.rowid WHERE i.folder_id = @Id", new { f.Id });
        var prefix = headerName + ":";
        return candidates.Where(t => t.Text.Split('\n').Any(line =>
                line.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)
                && line.AsSpan(prefix.Length).Contains(text, StringComparison.OrdinalIgnoreCase)))
            .Select(t => t.Uid).ToHashSet();
    }

    public (long Bytes, long Messages) Usage(string account)
    {
        using var c = OpenReader();
        var row = c.QuerySingleOrDefault<AccountRow>("SELECT account AS Account, used_bytes AS UsedBytes, messages AS Messages FROM accounts WHERE account = @account", new { account });
        return row is null ? (0, 0) : (row.UsedBytes, row.Messages);
    }

    // ---- writes ----

    /// <summary>Creates the folders that are missing (with their special use) and subscribes every one.</summary>
    public Task CreateFoldersAsync(string account, IReadOnlyList<(string Name, string? SpecialUse)> folders) =>
        SubmitAsync(ctx => ctx.Atomically(() =>
        {
            foreach (var (name, specialUse) in folders)
            {
                if (ctx.Folder(account, name) is null) ctx.CreateFolder(account, name, specialUse);
                ctx.Emit(new SubscribeOp(account, name, true));
            }
            return 0;
        }));

    public Task CreateFolderAsync(string account, string folder, string? specialUse) =>
        SubmitAsync(ctx => ctx.Atomically(() =>
        {
            if (ctx.Folder(account, folder) is not null) throw new FolderExistsException(folder);
            CreateParents(ctx, account, folder);
            ctx.CreateFolder(account, folder, specialUse);
            return 0;
        }));

    public Task DeleteFolderAsync(string account, string folder) =>
        SubmitAsync(ctx =>
        {
            if (folder == MailStore.Inbox) throw new InvalidOperationException("INBOX cannot be deleted");
            if (ctx.Folder(account, folder) is null) throw new FolderNotFoundException(folder);
            ctx.Emit(new DeleteFolderOp(account, folder));
            return 0;
        });

    public Task RenameFolderAsync(string account, string from, string to) =>
        SubmitAsync(ctx => ctx.Atomically(() =>
        {
            var source = ctx.Folder(account, from) ?? throw new FolderNotFoundException(from);
            if (ctx.Folder(account, to) is not null) throw new FolderExistsException(to);
            if (from == MailStore.Inbox)
            {
                // RFC 9051 §6.3.6: the messages move to a new folder, INBOX stays (empty), its children stay.
                CreateParents(ctx, account, to);
                var target = ctx.CreateFolder(account, to, null);
                var uids = ctx.AllUids(source.Id);
                if (uids.Count > 0)
                    ctx.Emit(new CopyOp(account, from, to, target.HighestModSeq + 1, [.. uids],
                        [.. Enumerable.Range(0, uids.Count).Select(i => target.UidNext + i)], Move: true, source.HighestModSeq + 1));
                return 0;
            }
            if (to.StartsWith(from + "/", StringComparison.Ordinal)) throw new InvalidOperationException($"cannot rename {from} under itself");
            foreach (var child in ctx.Children(account, from))
            {
                var renamed = to + child[from.Length..];
                if (ctx.Folder(account, renamed) is not null) throw new FolderExistsException(renamed);
            }
            CreateParents(ctx, account, to);
            ctx.Emit(new RenameFolderOp(account, from, to));
            return 0;
        }));

    /// <summary>RFC 9051 §6.3.4 / §6.3.6: superior names a CREATE or RENAME needs are created too.</summary>
    private static void CreateParents(WriteContext ctx, string account, string folder)
    {
        for (var i = folder.IndexOf('/', 1); i > 0; i = folder.IndexOf('/', i + 1))
            ctx.EnsureFolder(account, folder[..i]);
    }

    public Task SetSubscribedAsync(string account, string folder, bool subscribed) =>
        SubmitAsync(ctx => { ctx.Emit(new SubscribeOp(account, folder, subscribed)); return 0; });

    /// <summary>
    /// Appends messages all or nothing (one journal record). Files are written and fsynced and
    /// texts extracted first; null when the quota (bytes, 0 or less = unlimited) would be exceeded.
    /// </summary>
    public async Task<AppendResult?> AppendAsync(string account, string folder, IReadOnlyList<NewMessage> messages, long quotaBytes, CancellationToken ct)
    {
        var written = new List<string>(messages.Count);
        var prepared = new List<(NewMessage Message, string BlobId, byte[] Bytes, MessageIndex Index)>(messages.Count);
        try
        {
            foreach (var m in messages)
            {
                var blobId = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
                var path = BlobPath(blobId);
                System.IO.Directory.CreateDirectory(Path.GetDirectoryName(path)!);
                written.Add(path);
                await FileSystem.WriteDurableAsync(path, m.Data, ct);
                var bytes = m.Data.ToArray();
                prepared.Add((m, blobId, bytes, MessageIndex.Extract(bytes, m.InternalDate.ToUnixTimeMilliseconds())));
            }
            var result = await SubmitAsync(ctx =>
            {
                var f = folder == MailStore.Inbox ? ctx.EnsureFolder(account, folder) : ctx.Folder(account, folder) ?? throw new FolderNotFoundException(folder);
                if (quotaBytes > 0 && ctx.UsedBytes(account) + prepared.Sum(p => (long)p.Bytes.Length) > quotaBytes) return null;
                if (prepared.Count == 0) return new AppendResult(f.UidValidity, []);
                var ops = prepared.Select((p, i) => new AppendOp(account, folder, f.UidNext + i, f.HighestModSeq + 1,
                    p.Message.InternalDate.ToUnixTimeMilliseconds(), p.Message.Flags, p.Message.Keywords, p.BlobId, p.Message.Structure, p.Bytes)
                { Index = p.Index }).ToArray();
                ctx.Atomically(() => { foreach (var op in ops) ctx.Emit(op); return 0; });
                return new AppendResult(f.UidValidity, [.. ops.Select(o => o.Uid)]);
            });
            if (result is null) DeleteFiles(written);
            return result;
        }
        catch
        {
            DeleteFiles(written);
            throw;
        }
    }

    private static void DeleteFiles(List<string> paths)
    {
        foreach (var path in paths)
        {
            try { File.Delete(path); }
            catch (IOException ex) { Log.Warn(ex, "could not delete message file {0}", path); }
        }
    }

    /// <summary>Copies or moves messages within the account (one op); null when a copy would exceed the quota.</summary>
    public Task<CopyResult?> CopyAsync(string account, string folder, IReadOnlyCollection<long> uids, string target, bool move, long quotaBytes) =>
        SubmitAsync(ctx =>
        {
            var s = ctx.Folder(account, folder) ?? throw new FolderNotFoundException(folder);
            var t = ctx.Folder(account, target) ?? throw new FolderNotFoundException(target);
            var rows = ctx.Messages(s.Id, uids);
            if (rows.Count == 0) return new CopyResult(t.UidValidity, [], []);
            if (!move && quotaBytes > 0 && ctx.UsedBytes(account) + rows.Sum(r => r.Size) > quotaBytes) return null;
            long[] sources = [.. rows.Select(r => r.Uid)];
            long[] targets = [.. rows.Select((_, i) => t.UidNext + i)];
            // A move within one folder gets both MODSEQs from the same counter: the same value.
            ctx.Emit(new CopyOp(account, folder, target, t.HighestModSeq + 1, sources, targets, move, s.HighestModSeq + 1));
            return (CopyResult?)new CopyResult(t.UidValidity, sources, targets);
        });

    /// <summary>
    /// STORE: the final state of each message is computed here; messages whose state changes get
    /// the folder's next MODSEQ (one SetFlagsOp per distinct final state, all at that MODSEQ).
    /// </summary>
    public Task<StoreFlagsResult> StoreFlagsAsync(string account, string folder, IReadOnlyCollection<long> uids, FlagMode mode,
        MessageFlags flags, string[] keywords, long? unchangedSince) =>
        SubmitAsync(ctx => ctx.Atomically(() =>
        {
            var f = ctx.Folder(account, folder) ?? throw new FolderNotFoundException(folder);
            var modSeq = f.HighestModSeq + 1;
            var updated = new List<FlagUpdate>();
            var modified = new List<long>();
            var groups = new Dictionary<(MessageFlags, string), List<long>>();
            foreach (var row in ctx.Messages(f.Id, uids))
            {
                // RFC 7162 §3.1.3: a message changed after UNCHANGEDSINCE is left alone and reported.
                if (unchangedSince is { } since && row.ModSeq > since)
                {
                    modified.Add(row.Uid);
                    continue;
                }
                var current = row.ToStored();
                var (newFlags, newKeywords) = Combine(current.Flags, current.Keywords, mode, flags, keywords);
                if (newFlags == current.Flags && SameKeywords(newKeywords, current.Keywords)) continue;
                var key = (newFlags, string.Join(' ', newKeywords));
                if (!groups.TryGetValue(key, out var list)) groups[key] = list = [];
                list.Add(row.Uid);
                updated.Add(new FlagUpdate(row.Uid, newFlags, newKeywords, modSeq));
            }
            foreach (var ((newFlags, newKeywords), list) in groups)
                ctx.Emit(new SetFlagsOp(account, folder, modSeq, [.. list], newFlags, newKeywords.Length == 0 ? [] : newKeywords.Split(' ')));
            return new StoreFlagsResult(updated, modified);
        }));

    private static (MessageFlags, string[]) Combine(MessageFlags flags, string[] keywords, FlagMode mode, MessageFlags given, string[] givenKeywords)
    {
        // Keywords compare case-insensitively (RFC 9051 §2.3.2); the first spelling is kept.
        List<string> set = mode == FlagMode.Replace ? [] : [.. keywords];
        if (mode == FlagMode.Remove)
            set.RemoveAll(k => givenKeywords.Contains(k, StringComparer.OrdinalIgnoreCase));
        else
            foreach (var k in givenKeywords)
                if (!set.Contains(k, StringComparer.OrdinalIgnoreCase)) set.Add(k);
        var newFlags = mode switch
        {
            FlagMode.Replace => given,
            FlagMode.Add => flags | given,
            _ => flags & ~given,
        };
        return (newFlags, [.. set]);
    }

    private static bool SameKeywords(string[] a, string[] b) =>
        a.Length == b.Length && a.All(k => b.Contains(k, StringComparer.OrdinalIgnoreCase));
}
