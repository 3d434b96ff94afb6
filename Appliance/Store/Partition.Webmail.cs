using System.Text;
using Dapper;

namespace Appliance.Store;

// The webmail's data of each user (contacts, notes, personal files, settings) lives in the db
// unit's partition (MailStore.DbPartition, units/db): one row per item in webmail_items, keyed
// by (account, kind, id), with its bytes in the row. Like Partition.Sieve.cs, every mutation is
// decided on the writer loop (the quota, an id taken, what a delete or a move reaches, all in
// one place) and journalled as a WebmailOp carrying the outcome as absolute state (the whole
// item with its bytes and time, the ids a move goes from and to); Apply only writes it, so a
// replay or a replica reaches the same rows. A file's bytes thus go through the journal (as a
// message's do in an AppendOp) and sit in the SQLite row; a snapshot of index.db carries them.
//
// Ids are one namespace across kinds where paths are concerned: a delete with children and a
// move reach every item whose id is under id + "/", whatever its kind (a files folder "dir" and
// its "file"s), a move refuses to land on any kind's id, and mustBeNew refuses an id any kind
// holds. Ids and parents have no control characters; ids, parents and names are bounded and
// must be real Unicode text (a lone surrogate would not come back from the journal's UTF-8).
// Callers get an ArgumentException for those, before anything is submitted.

/// <summary>One webmail item of a user: its bytes only when read alone (<see cref="Partition.GetWebmailItem"/>).</summary>
public sealed record WebmailItem(string Kind, string Id, string Parent, string Name, long Size, DateTimeOffset Updated, byte[]? Data);

/// <summary>How a webmail item request ended.</summary>
public enum WebmailResult
{
    Ok,
    /// <summary>No item (nor child, for a delete with children) of that id.</summary>
    NotFound,
    /// <summary>The id is taken (a new item that must be new, the target of a move).</summary>
    Exists,
    /// <summary>The account's items would pass its quota.</summary>
    OverQuota,
}

internal sealed class WebmailRow
{
    public const string Columns = "account AS Account, kind AS Kind, id AS Id, parent AS Parent, name AS Name, size AS Size, updated AS Updated";
    public string Account { get; set; } = "";
    public string Kind { get; set; } = "";
    public string Id { get; set; } = "";
    public string Parent { get; set; } = "";
    public string Name { get; set; } = "";
    public long Size { get; set; }
    public long Updated { get; set; }
    public byte[]? Data { get; set; }

    public WebmailItem ToItem() => new(Kind, Id, Parent, Name, Size, DateTimeOffset.FromUnixTimeMilliseconds(Updated), Data);
}

public sealed partial class Partition
{
    /// <summary>Longest id or parent of a webmail item, in UTF-8 bytes (a file's whole path).</summary>
    public const int MaxWebmailIdBytes = 1024;

    /// <summary>Longest name of a webmail item, in UTF-8 bytes.</summary>
    public const int MaxWebmailNameBytes = 1024;

    /// <summary>Longest kind ("file", "dir", "contact", …: lower-case ASCII letters, digits, '-', '_', '.').</summary>
    public const int MaxWebmailKindLength = 32;

    /// <summary>Largest item: one journal record and one replication frame carry it whole (the webmail's own limit is lower).</summary>
    public const int MaxWebmailDataBytes = 64 << 20;

    // ---- reads (any copy: a replica's are as of its last applied record) ----

    /// <summary>
    /// The user's items of a kind, by name (ordinal) then id; only those under
    /// <paramref name="parent"/> when it is given; with their bytes when <paramref name="withData"/>
    /// (small items listed whole, like contacts and notes).
    /// </summary>
    public IReadOnlyList<WebmailItem> ListWebmailItems(string account, string kind, string? parent = null, bool withData = false)
    {
        using var c = OpenReader();
        var rows = (parent, withData) switch
        {
            (null, false) => c.Query<WebmailRow>("SELECT " + WebmailRow.Columns + " FROM webmail_items WHERE account = @account AND kind = @kind", new { account, kind }),
            (null, true) => c.Query<WebmailRow>("SELECT " + WebmailRow.Columns + ", data AS Data FROM webmail_items WHERE account = @account AND kind = @kind", new { account, kind }),
            (_, false) => c.Query<WebmailRow>("SELECT " + WebmailRow.Columns + " FROM webmail_items WHERE account = @account AND kind = @kind AND parent = @parent", new { account, kind, parent }),
            (_, true) => c.Query<WebmailRow>("SELECT " + WebmailRow.Columns + ", data AS Data FROM webmail_items WHERE account = @account AND kind = @kind AND parent = @parent", new { account, kind, parent }),
        };
        // Sorted here: SQLite orders by UTF-8 bytes, which is not .NET's ordinal (UTF-16) order past U+FFFF.
        return [.. rows.Select(r => r.ToItem()).OrderBy(i => i.Name, StringComparer.Ordinal).ThenBy(i => i.Id, StringComparer.Ordinal)];
    }

    /// <summary>An item with its bytes, or null when there is none.</summary>
    public WebmailItem? GetWebmailItem(string account, string kind, string id)
    {
        using var c = OpenReader();
        return c.QuerySingleOrDefault<WebmailRow>("SELECT " + WebmailRow.Columns + ", data AS Data FROM webmail_items WHERE account = @account AND kind = @kind AND id = @id",
            new { account, kind, id })?.ToItem();
    }

    /// <summary>The bytes of all the user's items, every kind (what the quota counts).</summary>
    public long WebmailBytes(string account)
    {
        using var c = OpenReader();
        return c.ExecuteScalar<long>("SELECT coalesce(sum(size), 0) FROM webmail_items WHERE account = @account", new { account });
    }

    // ---- mutations (durable when the task completes: journal fsync, and on the peer in a pair) ----

    /// <summary>
    /// Stores a new item or replaces one of that kind and id (its time: the primary's clock now).
    /// <see cref="WebmailResult.Exists"/> when <paramref name="mustBeNew"/> and an item of any kind has
    /// that id; <see cref="WebmailResult.OverQuota"/> when the account's total after the change would pass
    /// <paramref name="quotaBytes"/> (0 or less: no limit) and the change grows it: a replacement no
    /// larger than before is taken, so a user over a lowered quota can still save a smaller version.
    /// Either leaves nothing changed.
    /// </summary>
    public Task<WebmailResult> PutWebmailItemAsync(string account, string kind, string id, string parent, string name, byte[] data, long quotaBytes, bool mustBeNew = false)
    {
        CheckWebmailKind(kind);
        CheckWebmailId(id, nameof(id));
        CheckWebmailParent(parent, nameof(parent));
        CheckWebmailName(name, nameof(name));
        ArgumentNullException.ThrowIfNull(data);
        if (data.Length > MaxWebmailDataBytes) throw new ArgumentException($"a webmail item holds at most {MaxWebmailDataBytes} bytes", nameof(data));
        return SubmitAsync(ctx =>
        {
            if (mustBeNew && ctx.WebmailIdTaken(account, id)) return WebmailResult.Exists;
            var before = ctx.WebmailItemSize(account, kind, id) ?? 0;
            if (quotaBytes > 0 && data.Length > before && ctx.WebmailBytes(account) - before + data.Length > quotaBytes) return WebmailResult.OverQuota;
            ctx.Emit(new WebmailOp(WebmailChange.Put, account, kind, id, parent, name, "", false, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), data));
            return WebmailResult.Ok;
        });
    }

    /// <summary>
    /// Deletes the item; <paramref name="withChildren"/> also every item of the account, of any
    /// kind, whose id is under <paramref name="id"/> + "/" (a files folder's contents).
    /// <see cref="WebmailResult.NotFound"/> when that reaches nothing.
    /// </summary>
    public Task<WebmailResult> DeleteWebmailItemAsync(string account, string kind, string id, bool withChildren)
    {
        CheckWebmailKind(kind);
        CheckWebmailId(id, nameof(id));
        return SubmitAsync(ctx =>
        {
            if (ctx.WebmailItemSize(account, kind, id) is null && !(withChildren && ctx.WebmailHasChildren(account, id)))
                return WebmailResult.NotFound;
            ctx.Emit(new WebmailOp(WebmailChange.Delete, account, kind, id, "", "", "", withChildren, 0, []));
            return WebmailResult.Ok;
        });
    }

    /// <summary>
    /// Renames the items with id <paramref name="id"/> (whatever their kind: a file, a folder) to
    /// <paramref name="newId"/> with a new parent and name (their time: now), and moves their children
    /// (ids under id + "/", any kind) to newId + "/…", a child's parent following when it was under
    /// the old id; children keep their times. <see cref="WebmailResult.NotFound"/> when no item has
    /// that id; <see cref="WebmailResult.Exists"/> when an item not being moved sits at
    /// <paramref name="newId"/> or under newId + "/" (it would mix with, or collide with, the
    /// moved ones). <paramref name="newId"/> equal to <paramref name="id"/> changes only parent and name.
    /// </summary>
    public Task<WebmailResult> MoveWebmailItemsAsync(string account, string id, string newId, string newParent, string newName)
    {
        CheckWebmailId(id, nameof(id));
        CheckWebmailId(newId, nameof(newId));
        CheckWebmailParent(newParent, nameof(newParent));
        CheckWebmailName(newName, nameof(newName));
        if (newId.StartsWith(id + "/", StringComparison.Ordinal)) throw new ArgumentException($"'{id}' cannot move under itself", nameof(newId));
        return SubmitAsync(ctx =>
        {
            if (!ctx.WebmailIdTaken(account, id)) return WebmailResult.NotFound;
            if (newId != id && ctx.WebmailMoveCollides(account, id, newId)) return WebmailResult.Exists;
            ctx.Emit(new WebmailOp(WebmailChange.Move, account, "", id, newParent, newName, newId, false, DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(), []));
            return WebmailResult.Ok;
        });
    }

    /// <summary>Deletes every item of the account (a mailbox purged); journals nothing when it has none.</summary>
    public Task DeleteWebmailAccountAsync(string account) =>
        SubmitAsync(ctx =>
        {
            if (ctx.WebmailItemCount(account) > 0)
                ctx.Emit(new WebmailOp(WebmailChange.DeleteAccount, account, "", "", "", "", "", false, 0, []));
            return 0;
        });

    // ---- argument checks ----

    private static void CheckWebmailKind(string kind)
    {
        ArgumentNullException.ThrowIfNull(kind);
        if (kind.Length is 0 or > MaxWebmailKindLength || !kind.All(ch => ch is >= 'a' and <= 'z' or >= '0' and <= '9' or '-' or '_' or '.'))
            throw new ArgumentException($"bad webmail item kind '{kind}' (1 to {MaxWebmailKindLength} of a-z, 0-9, '-', '_', '.')", nameof(kind));
    }

    private static void CheckWebmailId(string id, string param)
    {
        ArgumentNullException.ThrowIfNull(id, param);
        if (id.Length == 0) throw new ArgumentException("a webmail item id cannot be empty", param);
        CheckWebmailText(id, MaxWebmailIdBytes, controlsAllowed: false, param);
    }

    private static void CheckWebmailParent(string parent, string param)
    {
        ArgumentNullException.ThrowIfNull(parent, param);
        CheckWebmailText(parent, MaxWebmailIdBytes, controlsAllowed: false, param);
    }

    private static void CheckWebmailName(string name, string param)
    {
        ArgumentNullException.ThrowIfNull(name, param);
        CheckWebmailText(name, MaxWebmailNameBytes, controlsAllowed: true, param);
    }

    private static void CheckWebmailText(string text, int maxBytes, bool controlsAllowed, string param)
    {
        if (Encoding.UTF8.GetByteCount(text) > maxBytes) throw new ArgumentException($"longer than {maxBytes} bytes (UTF-8)", param);
        // Control characters: C0, DEL, C1, and the line and paragraph separators.
        if (!controlsAllowed && text.Any(ch => ch < 0x20 || ch is >= '\u007f' and <= '\u009f' or '\u2028' or '\u2029'))
            throw new ArgumentException("control characters are not allowed", param);
        for (var i = 0; i < text.Length; i++)
        {
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1])) i++;
            else if (char.IsSurrogate(text[i])) throw new ArgumentException("a lone surrogate is no Unicode text", param);
        }
    }

    internal sealed partial class WriteContext
    {
        // An id's children are the ids in [id + "/", id + "0"): '0' follows '/', and SQLite compares
        // text byte by byte, so the range is exactly the ids starting with id + "/" and uses an index.

        public long? WebmailItemSize(string account, string kind, string id) => c.ExecuteScalar<long?>(
            "SELECT size FROM webmail_items WHERE account = @account AND kind = @kind AND id = @id", new { account, kind, id }, tx);

        public bool WebmailIdTaken(string account, string id) => c.ExecuteScalar<long>(
            "SELECT EXISTS(SELECT 1 FROM webmail_items WHERE account = @account AND id = @id)", new { account, id }, tx) != 0;

        public long WebmailBytes(string account) => c.ExecuteScalar<long>(
            "SELECT coalesce(sum(size), 0) FROM webmail_items WHERE account = @account", new { account }, tx);

        public long WebmailItemCount(string account) => c.ExecuteScalar<long>(
            "SELECT count(*) FROM webmail_items WHERE account = @account", new { account }, tx);

        /// <summary>Whether an item of any kind is under <paramref name="id"/> + "/".</summary>
        public bool WebmailHasChildren(string account, string id) => c.ExecuteScalar<long>(
            "SELECT EXISTS(SELECT 1 FROM webmail_items WHERE account = @account AND id >= @lo AND id < @hi)",
            new { account, lo = id + "/", hi = id + "0" }, tx) != 0;

        /// <summary>Whether an item that a move of <paramref name="id"/> leaves in place is at <paramref name="newId"/> or under it.</summary>
        public bool WebmailMoveCollides(string account, string id, string newId) => c.ExecuteScalar<long>(
            """
            SELECT EXISTS(SELECT 1 FROM webmail_items WHERE account = @account
                AND (id = @newId OR (id >= @newLo AND id < @newHi))
                AND NOT (id = @id OR (id >= @lo AND id < @hi)))
            """,
            new { account, id, newId, lo = id + "/", hi = id + "0", newLo = newId + "/", newHi = newId + "0" }, tx) != 0;

        private void ApplyWebmail(WebmailOp op)
        {
            var p = new { op.Account, op.Kind, op.Id, op.Parent, op.Name, op.NewId, op.Updated, op.Data, size = (long)op.Data.Length, lo = op.Id + "/", hi = op.Id + "0" };
            switch (op.Change)
            {
                case WebmailChange.Put:
                    c.Execute(
                        """
                        INSERT INTO webmail_items(account, kind, id, parent, name, size, updated, data) VALUES (@Account, @Kind, @Id, @Parent, @Name, @size, @Updated, @Data)
                        ON CONFLICT(account, kind, id) DO UPDATE SET parent = excluded.parent, name = excluded.name, size = excluded.size, updated = excluded.updated, data = excluded.data
                        """, p, tx);
                    break;
                case WebmailChange.Delete:
                    c.Execute("DELETE FROM webmail_items WHERE account = @Account AND kind = @Kind AND id = @Id", p, tx);
                    if (op.WithChildren) c.Execute("DELETE FROM webmail_items WHERE account = @Account AND id >= @lo AND id < @hi", p, tx);
                    break;
                case WebmailChange.Move:
                    // Through ids prefixed with U+0001 (never in a real id): one UPDATE renaming the
                    // subtree in place could meet a child's new id still held by another child
                    // ("a/b" → "a": "a/b/b/x" becomes "a/b/x" before "a/b/x" became "a/x"), and
                    // SQLite checks uniqueness row by row. The primary checked that nothing else
                    // is in the way; applied again, nothing is left under the old id.
                    c.Execute(
                        """
                        UPDATE webmail_items SET id = char(1) || @NewId || substr(id, length(@Id) + 1),
                            parent = CASE WHEN parent = @Id THEN @NewId
                                          WHEN parent >= @lo AND parent < @hi THEN @NewId || substr(parent, length(@Id) + 1)
                                          ELSE parent END
                        WHERE account = @Account AND (id = @Id OR (id >= @lo AND id < @hi))
                        """, p, tx);
                    c.Execute("UPDATE webmail_items SET id = substr(id, 2) WHERE account = @Account AND id >= char(1) AND id < char(2)", p, tx);
                    c.Execute("UPDATE webmail_items SET parent = @Parent, name = @Name, updated = @Updated WHERE account = @Account AND id = @NewId", p, tx);
                    break;
                case WebmailChange.DeleteAccount:
                    c.Execute("DELETE FROM webmail_items WHERE account = @Account", p, tx);
                    break;
            }
        }
    }
}
