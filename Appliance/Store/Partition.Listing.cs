using Dapper;
using Microsoft.Data.Sqlite;

namespace Appliance.Store;

// Implementation notes
// The webmail's folder listing, one page at a time, kept cheap on folders of tens of thousands
// of messages. Every message has a message_index row (sort keys, sender, first To), so the
// listing is driven by it: step 1 finds the page's UIDs, step 2 reads only those rows (flags
// and size from messages, the decoded subject from the fts row). Both steps, and the count, run
// in one deferred read transaction: one snapshot, without taking the writer's lock.
// - By date (the default view) step 1 walks message_index_date from either end and stops after
//   offset + limit entries: the first page reads about limit entries whatever the folder's size.
// - From, subject and size are not indexed (each index would cost every delivery a write): SQLite
//   sorts the folder's keys with its top-N sorter, measured on 50,000 messages in MessagePageTests.
// - With `only` (a search result) the UIDs are looked up one by one and the matches sorted.
// - Threads need the whole folder: its thread keys are read, threaded by MessageThreads.References
//   (the IMAP THREAD=REFERENCES algorithm), flattened into rows with depths, and paged in memory.
//   The flattened order is kept per folder and direction until the folder's UIDs change
//   (FolderConversationsAsync), so only the first threaded page of a folder pays for it.
// The SQL of step 1 is one constant per order, direction and restriction (Dapper.AOT).
public sealed partial class Partition
{
    public async Task<MessagePage> ListPageAsync(string account, string folder, MessageOrder order, bool descending, int offset, int limit,
        bool threads, IReadOnlySet<long>? only, CancellationToken ct)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(offset);
        ArgumentOutOfRangeException.ThrowIfNegative(limit);
        await using var c = OpenReader();
        // Deferred: a plain BEGIN on a reader would be BEGIN IMMEDIATE, taking the writer's lock.
        await using var tx = c.BeginTransaction(deferred: true);
        var f = await c.QuerySingleOrDefaultAsync<FolderRow>(SelectFolder, new { account, folder }, tx) ?? throw new FolderNotFoundException(folder);
        if (only is { Count: 0 }) return new MessagePage(0, []);
        var uids = only is null ? null : WriteContext.UidJson(only);

        List<(long Uid, int Depth)> page;
        int total;
        if (threads)
        {
            var flat = only is null
                ? await FolderConversationsAsync(c, tx, f, descending, ct)
                : Conversations((await c.QueryAsync<SortRow>(ThreadKeys + OnlyUids + " ORDER BY uid", new { f.Id, uids }, tx)).AsList(), descending);
            total = flat.Count;
            page = flat.Skip(offset).Take(limit).ToList();
        }
        else
        {
            total = only is null
                ? await c.ExecuteScalarAsync<int>("SELECT count(*) FROM message_index WHERE folder_id = @Id", new { f.Id }, tx)
                : await c.ExecuteScalarAsync<int>("SELECT count(*) FROM message_index WHERE folder_id = @Id" + OnlyUids, new { f.Id, uids }, tx);
            if (limit == 0 || offset >= total) return new MessagePage(total, []);
            var found = await c.QueryAsync<long>(PageUids(order, descending, only is not null), new { f.Id, uids, offset, limit }, tx);
            page = found.Select(uid => (uid, 0)).ToList();
        }
        if (page.Count == 0) return new MessagePage(total, []);

        ct.ThrowIfCancellationRequested();
        var summaries = (await c.QueryAsync<SummaryRow>(Summaries, new { f.Id, uids = WriteContext.UidJson(page.Select(p => p.Uid)) }, tx))
            .ToDictionary(r => r.Uid);
        return new MessagePage(total, [.. page.Select(p => summaries[p.Uid].ToSummary(p.Depth))]);
    }

    /// <summary>A whole folder in conversation order, as of one set of its UIDs.</summary>
    private sealed record ThreadOrder(long UidValidity, long UidNext, int Count, List<(long Uid, int Depth)> Rows);

    private const int MaxThreadOrders = 16;
    private readonly Dictionary<(long Folder, bool Descending), ThreadOrder> _threadOrders = [];

    /// <summary>
    /// The folder's conversation order, computed once per set of UIDs: a message's thread keys
    /// never change, and UIDs only grow, so UIDVALIDITY, UIDNEXT and the count name the set (an
    /// expunge lowers the count, any arrival raises UIDNEXT). Paging and returning to a threaded
    /// folder cost one count instead of threading every message again.
    /// </summary>
    private async Task<List<(long Uid, int Depth)>> FolderConversationsAsync(SqliteConnection c, SqliteTransaction tx, FolderRow f, bool descending, CancellationToken ct)
    {
        var count = await c.ExecuteScalarAsync<int>("SELECT count(*) FROM message_index WHERE folder_id = @Id", new { f.Id }, tx);
        ThreadOrder? cached;
        lock (_threadOrders) _threadOrders.TryGetValue((f.Id, descending), out cached);
        if (cached is not null && cached.UidValidity == f.UidValidity && cached.UidNext == f.UidNext && cached.Count == count) return cached.Rows;
        var rows = (await c.QueryAsync<SortRow>(ThreadKeys + " ORDER BY uid", new { f.Id }, tx)).AsList();
        ct.ThrowIfCancellationRequested();
        var flat = Conversations(rows, descending);
        lock (_threadOrders)
        {
            if (_threadOrders.Count >= MaxThreadOrders) _threadOrders.Clear();
            _threadOrders[(f.Id, descending)] = new ThreadOrder(f.UidValidity, f.UidNext, rows.Count, flat);
        }
        return flat;
    }

    private const string OnlyUids = " AND uid IN (SELECT value FROM json_each(@uids))";

    private const string ThreadKeys =
        "SELECT uid AS Uid, sent_date AS SentDate, base_subject AS BaseSubject, subject_reply AS SubjectReply, message_id AS MessageId, in_reply_to AS InReplyTo, refs AS Refs" +
        " FROM message_index WHERE folder_id = @Id";

    private const string Summaries = """
        SELECT i.uid AS Uid, m.flags AS Flags, m.keywords AS Keywords, m.size AS Size, i.sent_date AS SentDate,
            i.from_name AS FromName, i.from_address AS FromAddress, i.display_to AS DisplayTo, coalesce(x.hsubject, '') AS Subject
        FROM message_index i JOIN messages m ON m.folder_id = i.folder_id AND m.uid = i.uid LEFT JOIN fts x ON x.rowid = i.id
        WHERE i.folder_id = @Id AND i.uid IN (SELECT value FROM json_each(@uids))
        """;

    // Step 1: the page's UIDs. From sorts by the RFC 5957 display (the name, else the address)
    // without regard to ASCII case; subject by the RFC 5256 base subject (stored lower-cased).
    private const string ByDate = "SELECT uid FROM message_index WHERE folder_id = @Id";
    private const string BySize = "SELECT i.uid FROM message_index i JOIN messages m ON m.folder_id = i.folder_id AND m.uid = i.uid WHERE i.folder_id = @Id";
    private const string SizeOnly = " AND i.uid IN (SELECT value FROM json_each(@uids))";
    private const string Page = " LIMIT @limit OFFSET @offset";

    private static string PageUids(MessageOrder order, bool descending, bool only) => (order, descending, only) switch
    {
        (MessageOrder.Date, false, false) => ByDate + " ORDER BY sent_date, uid" + Page,
        (MessageOrder.Date, true, false) => ByDate + " ORDER BY sent_date DESC, uid DESC" + Page,
        (MessageOrder.Date, false, true) => ByDate + OnlyUids + " ORDER BY sent_date, uid" + Page,
        (MessageOrder.Date, true, true) => ByDate + OnlyUids + " ORDER BY sent_date DESC, uid DESC" + Page,
        (MessageOrder.From, false, false) => ByDate + " ORDER BY display_from COLLATE NOCASE, uid" + Page,
        (MessageOrder.From, true, false) => ByDate + " ORDER BY display_from COLLATE NOCASE DESC, uid DESC" + Page,
        (MessageOrder.From, false, true) => ByDate + OnlyUids + " ORDER BY display_from COLLATE NOCASE, uid" + Page,
        (MessageOrder.From, true, true) => ByDate + OnlyUids + " ORDER BY display_from COLLATE NOCASE DESC, uid DESC" + Page,
        (MessageOrder.Subject, false, false) => ByDate + " ORDER BY base_subject, uid" + Page,
        (MessageOrder.Subject, true, false) => ByDate + " ORDER BY base_subject DESC, uid DESC" + Page,
        (MessageOrder.Subject, false, true) => ByDate + OnlyUids + " ORDER BY base_subject, uid" + Page,
        (MessageOrder.Subject, true, true) => ByDate + OnlyUids + " ORDER BY base_subject DESC, uid DESC" + Page,
        (MessageOrder.Size, false, false) => BySize + " ORDER BY m.size, i.uid" + Page,
        (MessageOrder.Size, true, false) => BySize + " ORDER BY m.size DESC, i.uid DESC" + Page,
        (MessageOrder.Size, false, true) => BySize + SizeOnly + " ORDER BY m.size, i.uid" + Page,
        (MessageOrder.Size, true, true) => BySize + SizeOnly + " ORDER BY m.size DESC, i.uid DESC" + Page,
        _ => throw new ArgumentOutOfRangeException(nameof(order)),
    };

    /// <summary>
    /// The messages in conversation order: RFC 5256 REFERENCES threads ordered by their newest
    /// message (date, then UID), each thread depth-first with siblings oldest first. A dummy
    /// (a missing parent, or the common subject of merged threads) has no row: its children
    /// take its place and depth.
    /// </summary>
    private static List<(long Uid, int Depth)> Conversations(List<SortRow> rows, bool descending)
    {
        // Sequence numbers in UID order: the tie-break the algorithm uses, as IMAP THREAD has it.
        var roots = MessageThreads.References([.. rows.Select((r, i) => (i + 1, r.ToInfo()))]);
        var keyed = roots.Select(r => (Root: r, Newest: Newest(r))).ToList();
        keyed.Sort((a, b) =>
        {
            var r = a.Newest.Date.CompareTo(b.Newest.Date);
            if (r == 0) r = a.Newest.Uid.CompareTo(b.Newest.Uid);
            return descending ? -r : r;
        });
        var flat = new List<(long Uid, int Depth)>(rows.Count);
        var stack = new Stack<(ThreadNode Node, int Depth)>();
        foreach (var (root, _) in keyed)
        {
            stack.Push((root, 0));
            while (stack.TryPop(out var top))
            {
                var (node, depth) = top;
                var childDepth = depth;
                if (node.Info is { } info)
                {
                    flat.Add((info.Uid, depth));
                    childDepth = depth + 1;
                }
                for (var i = node.Children.Count - 1; i >= 0; i--) stack.Push((node.Children[i], childDepth));
            }
        }
        return flat;
    }

    private static (DateTimeOffset Date, long Uid) Newest(ThreadNode root)
    {
        var newest = (Date: DateTimeOffset.MinValue, Uid: 0L);
        var stack = new Stack<ThreadNode>();
        stack.Push(root);
        while (stack.TryPop(out var node))
        {
            if (node.Info is { } info && (info.SentDate, info.Uid).CompareTo(newest) > 0) newest = (info.SentDate, info.Uid);
            foreach (var child in node.Children) stack.Push(child);
        }
        return newest;
    }
}

internal sealed class SummaryRow
{
    public long Uid { get; set; }
    public int Flags { get; set; }
    public string Keywords { get; set; } = "";
    public long Size { get; set; }
    public long SentDate { get; set; }
    public string FromName { get; set; } = "";
    public string FromAddress { get; set; } = "";
    public string DisplayTo { get; set; } = "";
    public string Subject { get; set; } = "";

    public MessageSummary ToSummary(int depth) => new(Uid, (MessageFlags)Flags, Keywords.Length == 0 ? [] : Keywords.Split(' '),
        DateTimeOffset.FromUnixTimeMilliseconds(SentDate), Size, FromName, FromAddress, DisplayTo, Subject, depth);
}
