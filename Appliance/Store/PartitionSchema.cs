using Dapper;
using Microsoft.Data.Sqlite;

namespace Appliance.Store;

/// <summary>The index.db schema of a partition (SQLite, WAL). The journal is the source of truth;
/// meta.applied_seq says how far the index has applied it.</summary>
internal static class PartitionSchema
{
    /// <summary>Creates the schema, or upgrades an index.db written by an older version in place.</summary>
    public static void CreateOrUpgrade(SqliteConnection c)
    {
        c.Execute(Create);
        // Added with the IMAP folder API: RFC 6154 attribute of a folder.
        if (c.ExecuteScalar<long>("SELECT count(*) FROM pragma_table_info('folders') WHERE name = 'special_use'") == 0)
            c.Execute("ALTER TABLE folders ADD COLUMN special_use TEXT");
        bool indexExisted = c.ExecuteScalar<long>("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'message_index'") > 0;
        c.Execute(FolderApi);
        // Added with the webmail's listing: the first From's display name and address. Rows of an
        // older index.db get them from their message files once (Partition.FillFromColumns).
        if (c.ExecuteScalar<long>("SELECT count(*) FROM pragma_table_info('message_index') WHERE name = 'from_name'") == 0)
        {
            c.Execute("""
                ALTER TABLE message_index ADD COLUMN from_name TEXT NOT NULL DEFAULT '';
                ALTER TABLE message_index ADD COLUMN from_address TEXT NOT NULL DEFAULT '';
                """);
            if (c.ExecuteScalar<long>("SELECT count(*) FROM message_index") > 0)
                c.Execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('index_from_backfill', 1)");
        }
        c.Execute(Listing);
        // Added with ManageSieve: an index.db of an older version gets the (empty) table; the
        // scripts only ever come from journal records of this version on.
        c.Execute(SieveTables);
        // Added with the db unit (the webmail's data): likewise, an older index.db gets the empty table.
        c.Execute(WebmailTables);
        // An index.db from before the search tables: its messages are indexed from their files
        // once (Partition.IndexUnindexed), the mark going in the same transaction as the rows.
        if (!indexExisted && c.ExecuteScalar<long>("SELECT count(*) FROM messages") > 0)
            c.Execute("INSERT OR REPLACE INTO meta(key, value) VALUES ('index_backfill', 1)");
    }

    /// <summary>
    /// Tables of the folder API. message_index holds the sort keys of a message and numbers its
    /// row of the fts table (FTS5, trigram tokenizer: case-insensitive substring search).
    /// Both are derived from the message bytes, so a missing row can always be rebuilt.
    /// </summary>
    private const string FolderApi = """
        CREATE TABLE IF NOT EXISTS subscriptions(
            account TEXT NOT NULL,
            name TEXT NOT NULL,
            PRIMARY KEY(account, name)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS tombstones(
            folder_id INTEGER NOT NULL,
            uid INTEGER NOT NULL,
            modseq INTEGER NOT NULL,
            PRIMARY KEY(folder_id, uid)) WITHOUT ROWID;
        CREATE INDEX IF NOT EXISTS tombstones_modseq ON tombstones(folder_id, modseq);
        CREATE INDEX IF NOT EXISTS messages_modseq ON messages(folder_id, modseq);
        CREATE INDEX IF NOT EXISTS messages_blob ON messages(blob);
        -- The narrow columns of a message in UID order: listing a folder (SELECT) and counting it
        -- (STATUS, LIST) read this index instead of the wide rows with ENVELOPE/BODYSTRUCTURE.
        CREATE INDEX IF NOT EXISTS messages_list ON messages(folder_id, uid, flags, size, internal_date, modseq, keywords, blob);
        CREATE TABLE IF NOT EXISTS message_index(
            id INTEGER PRIMARY KEY,
            folder_id INTEGER NOT NULL,
            uid INTEGER NOT NULL,
            sent_date INTEGER NOT NULL,
            base_subject TEXT NOT NULL,
            subject_reply INTEGER NOT NULL,
            from_addr TEXT NOT NULL,
            to_addr TEXT NOT NULL,
            cc_addr TEXT NOT NULL,
            display_from TEXT NOT NULL,
            display_to TEXT NOT NULL,
            message_id TEXT NOT NULL,
            in_reply_to TEXT NOT NULL,
            refs TEXT NOT NULL,
            from_name TEXT NOT NULL DEFAULT '',
            from_address TEXT NOT NULL DEFAULT '',
            UNIQUE(folder_id, uid));
        CREATE VIRTUAL TABLE IF NOT EXISTS fts USING fts5(hsubject, hfrom, hto, hcc, hbcc, body, headers, tokenize = 'trigram');
        """;

    /// <summary>
    /// The webmail's folder listing (Partition.Listing.cs): a page by date, the default view, is
    /// a walk of this index from either end instead of a sort of the whole folder.
    /// </summary>
    private const string Listing = """
        CREATE INDEX IF NOT EXISTS message_index_date ON message_index(folder_id, sent_date, uid);
        """;

    /// <summary>
    /// Each user's Sieve scripts (RFC 5804), at most one active per account (the partial unique
    /// index makes a second one a constraint error, never a silent state).
    /// </summary>
    private const string SieveTables = """
        CREATE TABLE IF NOT EXISTS sieve_scripts(
            account TEXT NOT NULL,
            name TEXT NOT NULL,
            content TEXT NOT NULL,
            active INTEGER NOT NULL,
            PRIMARY KEY(account, name)) WITHOUT ROWID;
        CREATE UNIQUE INDEX IF NOT EXISTS sieve_scripts_active ON sieve_scripts(account) WHERE active = 1;
        """;

    /// <summary>
    /// Each user's webmail items (Partition.Webmail.cs; only the db unit's partition has rows).
    /// data is the last column: SQLite reads a row's columns in order, so the narrow ones come
    /// before a file's bytes, which spill into overflow pages. webmail_items_list covers listing
    /// a kind (by parent) and summing an account's sizes without touching those pages;
    /// webmail_items_id serves the id-prefix ranges (a folder's children, of any kind).
    /// </summary>
    private const string WebmailTables = """
        CREATE TABLE IF NOT EXISTS webmail_items(
            account TEXT NOT NULL,
            kind TEXT NOT NULL,
            id TEXT NOT NULL,
            parent TEXT NOT NULL,
            name TEXT NOT NULL,
            size INTEGER NOT NULL,
            updated INTEGER NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY(account, kind, id));
        CREATE INDEX IF NOT EXISTS webmail_items_list ON webmail_items(account, kind, parent, name, id, size, updated);
        CREATE INDEX IF NOT EXISTS webmail_items_id ON webmail_items(account, id);
        """;

    public const string Create = """
        PRAGMA journal_mode=WAL;
        CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT OR IGNORE INTO meta(key, value) VALUES ('applied_seq', 0);
        CREATE TABLE IF NOT EXISTS provisioning(
            seq INTEGER PRIMARY KEY,
            time INTEGER NOT NULL,
            actor TEXT NOT NULL,
            kind TEXT NOT NULL,
            target TEXT NOT NULL,
            summary TEXT NOT NULL,
            payload TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS outbound(
            id TEXT PRIMARY KEY,
            created INTEGER NOT NULL,
            sender TEXT NOT NULL,
            account TEXT NOT NULL,
            size INTEGER NOT NULL,
            held INTEGER NOT NULL,
            attempts INTEGER NOT NULL,
            next_attempt INTEGER NOT NULL,
            delay_notified INTEGER NOT NULL,
            last_error TEXT NOT NULL,
            envid TEXT,
            ret TEXT,
            recipients TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS metric_series(
            id INTEGER PRIMARY KEY,
            node TEXT NOT NULL,
            name TEXT NOT NULL,
            last INTEGER NOT NULL,
            UNIQUE(node, name));
        CREATE TABLE IF NOT EXISTS metrics_10s(series INTEGER NOT NULL, time INTEGER NOT NULL, avg REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(series, time)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS metrics_5m(series INTEGER NOT NULL, time INTEGER NOT NULL, avg REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(series, time)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS metrics_1h(series INTEGER NOT NULL, time INTEGER NOT NULL, avg REAL NOT NULL, min REAL NOT NULL, max REAL NOT NULL, n INTEGER NOT NULL, PRIMARY KEY(series, time)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS checks(
            node TEXT NOT NULL,
            name TEXT NOT NULL,
            status INTEGER NOT NULL,
            output TEXT NOT NULL,
            perfdata TEXT NOT NULL,
            time INTEGER NOT NULL,
            PRIMARY KEY(node, name));
        CREATE TABLE IF NOT EXISTS alerts(
            id TEXT PRIMARY KEY,
            node TEXT NOT NULL,
            check_name TEXT NOT NULL,
            status INTEGER NOT NULL,
            output TEXT NOT NULL,
            opened INTEGER NOT NULL,
            changed INTEGER NOT NULL,
            closed INTEGER NOT NULL,
            acked_by TEXT NOT NULL,
            acked_at INTEGER NOT NULL,
            escalated INTEGER NOT NULL,
            flapping INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS vacation_sent(account TEXT NOT NULL, handle TEXT NOT NULL, sender TEXT NOT NULL, until INTEGER NOT NULL, PRIMARY KEY(account, handle, sender)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS bayes_totals(account TEXT PRIMARY KEY, spam INTEGER NOT NULL, ham INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS bayes_tokens(account TEXT NOT NULL, token INTEGER NOT NULL, spam INTEGER NOT NULL, ham INTEGER NOT NULL, PRIMARY KEY(account, token)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS bayes_seen(account TEXT NOT NULL, message TEXT NOT NULL, spam INTEGER NOT NULL, PRIMARY KEY(account, message)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS outbound_data(
            id TEXT PRIMARY KEY,
            data BLOB NOT NULL);
        CREATE TABLE IF NOT EXISTS accounts(
            account TEXT PRIMARY KEY,
            used_bytes INTEGER NOT NULL DEFAULT 0,
            messages INTEGER NOT NULL DEFAULT 0);
        CREATE TABLE IF NOT EXISTS folders(
            id INTEGER PRIMARY KEY,
            account TEXT NOT NULL,
            name TEXT NOT NULL,
            uidvalidity INTEGER NOT NULL,
            uidnext INTEGER NOT NULL,
            highest_modseq INTEGER NOT NULL,
            UNIQUE(account, name));
        CREATE TABLE IF NOT EXISTS messages(
            folder_id INTEGER NOT NULL,
            uid INTEGER NOT NULL,
            size INTEGER NOT NULL,
            internal_date INTEGER NOT NULL,
            flags INTEGER NOT NULL,
            keywords TEXT NOT NULL,
            modseq INTEGER NOT NULL,
            blob TEXT NOT NULL,
            envelope TEXT NOT NULL,
            body TEXT NOT NULL,
            bodystructure TEXT NOT NULL,
            part_offsets TEXT NOT NULL,
            PRIMARY KEY(folder_id, uid)) WITHOUT ROWID;
        """;
}

internal sealed class FolderRow
{
    public const string Columns = "id AS Id, account AS Account, name AS Name, uidvalidity AS UidValidity, uidnext AS UidNext, highest_modseq AS HighestModSeq, special_use AS SpecialUse";
    public long Id { get; set; }
    public string Account { get; set; } = "";
    public string Name { get; set; } = "";
    public long UidValidity { get; set; }
    public long UidNext { get; set; }
    public long HighestModSeq { get; set; }
    public string? SpecialUse { get; set; }
}

internal sealed class MessageRow
{
    /// <summary>The select list for a <c>messages m</c> row.</summary>
    public const string Columns = "m.uid AS Uid, m.size AS Size, m.internal_date AS InternalDate, m.flags AS Flags, m.keywords AS Keywords, m.modseq AS ModSeq, m.blob AS Blob";

    public long Uid { get; set; }
    public long Size { get; set; }
    public long InternalDate { get; set; }
    public int Flags { get; set; }
    public string Keywords { get; set; } = "";
    public long ModSeq { get; set; }
    public string Blob { get; set; } = "";

    public StoredMessage ToStored() => new(
        Uid, Size, DateTimeOffset.FromUnixTimeMilliseconds(InternalDate), (MessageFlags)Flags,
        Keywords.Length == 0 ? [] : Keywords.Split(' '), ModSeq, Blob);
}

internal sealed class FolderInfoRow
{
    public string Name { get; set; } = "";
    public long UidValidity { get; set; }
    public long UidNext { get; set; }
    public long HighestModSeq { get; set; }
    public string? SpecialUse { get; set; }
    public long Messages { get; set; }
    public long Unseen { get; set; }
    public long Deleted { get; set; }
    public long Size { get; set; }
    public long Subscribed { get; set; }

    public FolderInfo ToInfo() => new(Name, UidValidity, UidNext, HighestModSeq, (int)Messages, (int)Unseen, (int)Deleted, Size, Subscribed != 0, SpecialUse);
}

internal sealed class StructureRow
{
    public long Uid { get; set; }
    public string Envelope { get; set; } = "";
    public string Body { get; set; } = "";
    public string BodyStructure { get; set; } = "";
    public string PartOffsets { get; set; } = "";
}

internal sealed class UnindexedRow
{
    public long FolderId { get; set; }
    public long Uid { get; set; }
    public string Blob { get; set; } = "";
    public long InternalDate { get; set; }
}

internal sealed class TextRow
{
    public long Uid { get; set; }
    public string Text { get; set; } = "";
}

internal sealed class SortRow
{
    public const string Columns = "uid AS Uid, sent_date AS SentDate, base_subject AS BaseSubject, subject_reply AS SubjectReply, from_addr AS FromAddr, to_addr AS ToAddr, cc_addr AS CcAddr, display_from AS DisplayFrom, display_to AS DisplayTo, message_id AS MessageId, in_reply_to AS InReplyTo, refs AS Refs";
    public long Uid { get; set; }
    public long SentDate { get; set; }
    public string BaseSubject { get; set; } = "";
    public long SubjectReply { get; set; }
    public string FromAddr { get; set; } = "";
    public string ToAddr { get; set; } = "";
    public string CcAddr { get; set; } = "";
    public string DisplayFrom { get; set; } = "";
    public string DisplayTo { get; set; } = "";
    public string MessageId { get; set; } = "";
    public string InReplyTo { get; set; } = "";
    public string Refs { get; set; } = "";

    public MessageSortInfo ToInfo() => new(Uid, DateTimeOffset.FromUnixTimeMilliseconds(SentDate), BaseSubject, SubjectReply != 0,
        FromAddr, ToAddr, CcAddr, DisplayFrom, DisplayTo, MessageId, InReplyTo, Refs.Length == 0 ? [] : Refs.Split(' '));
}
