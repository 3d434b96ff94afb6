namespace Appliance.Store;

/// <summary>The index.db schema of a partition (SQLite, WAL). The journal is the source of truth;
/// meta.applied_seq says how far the index has applied it.</summary>
internal static class PartitionSchema
{
    public const string Create = """
        PRAGMA journal_mode=WAL;
        CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value INTEGER NOT NULL);
        INSERT OR IGNORE INTO meta(key, value) VALUES ('applied_seq', 0);
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
    public const string Columns = "id AS Id, account AS Account, name AS Name, uidvalidity AS UidValidity, uidnext AS UidNext, highest_modseq AS HighestModSeq";
    public long Id { get; set; }
    public string Account { get; set; } = "";
    public string Name { get; set; } = "";
    public long UidValidity { get; set; }
    public long UidNext { get; set; }
    public long HighestModSeq { get; set; }
}

internal sealed class MessageRow
{
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
