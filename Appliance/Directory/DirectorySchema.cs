namespace Appliance.Directory;

/// <summary>directory.db: domains, mailboxes, aliases, admins and API tokens (a copy on each node).</summary>
internal static class DirectorySchema
{
    public const string Create = """
        PRAGMA journal_mode=WAL;
        CREATE TABLE IF NOT EXISTS domains(
            name TEXT PRIMARY KEY,
            created INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS mailboxes(
            address TEXT PRIMARY KEY,
            domain TEXT NOT NULL REFERENCES domains(name),
            password_hash TEXT NOT NULL,
            quota_bytes INTEGER NOT NULL,
            partition TEXT NOT NULL,
            enabled INTEGER NOT NULL DEFAULT 1,
            created INTEGER NOT NULL);
        CREATE INDEX IF NOT EXISTS mailboxes_domain ON mailboxes(domain);
        CREATE TABLE IF NOT EXISTS aliases(
            source TEXT NOT NULL,
            target TEXT NOT NULL,
            domain TEXT NOT NULL REFERENCES domains(name),
            PRIMARY KEY(source, target));
        CREATE TABLE IF NOT EXISTS admins(
            name TEXT PRIMARY KEY,
            password_hash TEXT NOT NULL,
            created INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS tokens(
            id TEXT PRIMARY KEY,
            name TEXT NOT NULL,
            secret_hash TEXT NOT NULL,
            scopes TEXT NOT NULL,
            created INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS sender_lists(
            mailbox TEXT NOT NULL,
            entry TEXT NOT NULL,
            block INTEGER NOT NULL,
            PRIMARY KEY(mailbox, entry)) WITHOUT ROWID;
        CREATE TABLE IF NOT EXISTS deleted_mailboxes(
            address TEXT PRIMARY KEY,
            partition TEXT NOT NULL,
            deleted INTEGER NOT NULL,
            purge_after INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS provisioning_state(
            id INTEGER PRIMARY KEY CHECK (id = 1),
            applied_seq INTEGER NOT NULL,
            store_seq INTEGER NOT NULL,
            last_error TEXT,
            error_seq INTEGER,
            updated INTEGER NOT NULL);
        CREATE TABLE IF NOT EXISTS provisioning_applied(
            seq INTEGER PRIMARY KEY,
            digest TEXT NOT NULL,
            summary TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS provisioning_errors(
            seq INTEGER PRIMARY KEY,
            error TEXT NOT NULL);
        INSERT OR IGNORE INTO provisioning_state(id, applied_seq, store_seq, updated) VALUES (1, 0, 0, 0);
        """;

    /// <summary>Columns added after the first release, added to an older directory.db at open.</summary>
    public static readonly (string Table, string Column, string Definition)[] AddedColumns =
    [
        ("admins", "totp_secret", "TEXT"),
        // The domain's DKIM key (MailDirectory.Dkim.cs): selector, PKCS#8 PEM, when it was made.
        ("domains", "dkim_selector", "TEXT"),
        ("domains", "dkim_private_key", "TEXT"),
        ("domains", "dkim_created", "INTEGER"),
    ];
}

public sealed class MailboxRecord
{
    public string Address { get; set; } = "";
    public string Domain { get; set; } = "";
    public string PasswordHash { get; set; } = "";
    public long QuotaBytes { get; set; }
    public string Partition { get; set; } = "";
    public bool Enabled { get; set; }

    public MailUser ToUser() => new(Address, Partition, QuotaBytes);
}

public sealed class AliasRecord
{
    public string Source { get; set; } = "";
    public string Target { get; set; } = "";
}
