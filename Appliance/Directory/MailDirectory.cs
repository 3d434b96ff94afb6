using System.Net;
using System.Security.Cryptography;
using Dapper;
using Microsoft.Data.Sqlite;

namespace Appliance.Directory;

/// <summary>A refused directory change; <see cref="Exception.Message"/> is the one-line reason shown to the admin.</summary>
public sealed class DirectoryException(string reason, DirectoryError kind = DirectoryError.Invalid) : Exception(reason)
{
    public DirectoryError Kind => kind;
    /// <summary>For a refused bulk request: every refused entry (its index) with its reason.</summary>
    public IReadOnlyList<(int Index, string Reason)> Entries { get; init; } = [];
}

/// <summary>What kind of refusal a <see cref="DirectoryException"/> is (the API maps it to 400, 404, 409 or 503).</summary>
public enum DirectoryError { Invalid, NotFound, Conflict, Unavailable }

/// <summary>
/// Domains, mailboxes and aliases in directory.db, recipient resolution for delivery, and
/// mailbox authentication with throttling and transparent rehash of migrated password hashes.
/// </summary>
public sealed partial class MailDirectory : IMailAuthenticator
{
    private const int MaxAliasDepth = 8;
    public const string UnsupportedHash = "unsupported password hash (expected {ARGON2ID}, {SHA512-CRYPT} or {BLF-CRYPT})";
    private const string SelectMailbox =
        "SELECT address AS Address, domain AS Domain, password_hash AS PasswordHash, quota_bytes AS QuotaBytes, partition AS Partition, enabled AS Enabled FROM mailboxes WHERE address = @address";
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("auth");
    private readonly string _connectionString;
    private readonly string[] _partitions;
    private readonly LoginThrottle _throttle;
    private readonly VerifiedCredentials _verified = new(TimeSpan.FromMinutes(15));

    public MailDirectory(string path, string[] partitions, LoginThrottle throttle)
    {
        // Microsoft.Data.Sqlite retries a busy database until the command timeout (default 30 s).
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = true, ForeignKeys = true }.ToString();
        _partitions = partitions;
        _throttle = throttle;
        using var c = Open();
        c.Execute(DirectorySchema.Create);
        foreach (var added in DirectorySchema.AddedColumns) AddColumnIfMissing(c, added.Table, added.Column, added.Definition);
    }

    private static void AddColumnIfMissing(SqliteConnection c, string table, string column, string definition)
    {
        if (c.ExecuteScalar<long>("SELECT count(*) FROM pragma_table_info(@table) WHERE name = @column", new { table, column }) == 0)
            c.Execute($"ALTER TABLE {table} ADD COLUMN {column} {definition}");
    }

    private SqliteConnection Open()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        return c;
    }

    // ---- domains ----
    // The changes themselves are in MailDirectory.Changes.cs, each inside a transaction the
    // caller owns, so the provisioning agent can apply a whole request (and record that it did)
    // atomically. The methods here are the one-change-one-transaction form.

    public string AddDomain(string name) => InTransaction(t => AddDomain(t, name));

    public IReadOnlyList<string> ListDomains()
    {
        using var c = Open();
        return c.Query<string>("SELECT name FROM domains ORDER BY name").AsList();
    }

    public IReadOnlyList<DomainSummary> ListDomainSummaries()
    {
        using var c = Open();
        return c.Query<DomainSummary>("""
            SELECT d.name AS Name, d.created AS Created,
                   (SELECT count(*) FROM mailboxes m WHERE m.domain = d.name) AS Mailboxes,
                   (SELECT count(DISTINCT source) FROM aliases a WHERE a.domain = d.name) AS Aliases
            FROM domains d ORDER BY d.name
            """).AsList();
    }

    public bool DomainExists(string domain)
    {
        using var c = Open();
        return c.ExecuteScalar<long>("SELECT count(*) FROM domains WHERE name = @domain", new { domain }) > 0;
    }

    /// <summary>Removes an empty domain (its aliases go with it).</summary>
    public void RemoveDomain(string name) => InTransaction(t => { RemoveDomain(t, name); return 0; });

    // ---- mailboxes ----

    /// <summary>Validates and records a new mailbox on the least used partition.</summary>
    public MailboxRecord AddMailbox(string address, string password, long quotaBytes)
    {
        _ = Addresses.NormalizeAddress(address, out var reason) ?? throw new DirectoryException(reason);
        CheckPassword(password);
        // Hashed before the transaction: Argon2id takes a third of a second, the write lock must not.
        return AddMailboxWithHash(address, PasswordHasher.Hash(password), quotaBytes);
    }

    /// <summary>Records a new mailbox whose password arrives already hashed (migrated from another server).</summary>
    public MailboxRecord AddMailboxWithHash(string address, string passwordHash, long quotaBytes) =>
        InTransaction(t => AddMailbox(t, address, passwordHash, quotaBytes, null, null));

    /// <summary>Records a mailbox with an existing (possibly migrated) password hash.</summary>
    public void SetPasswordHash(string address, string hash)
    {
        using var c = Open();
        if (c.Execute("UPDATE mailboxes SET password_hash = @hash WHERE address = @address", new { hash, address }) == 0)
            throw new DirectoryException($"no such mailbox {address}", DirectoryError.NotFound);
    }

    public MailboxRecord UpdateMailbox(string address, string? password, long? quotaBytes, bool? enabled)
    {
        if (password is not null) CheckPassword(password);
        var hash = password is null ? null : PasswordHasher.Hash(password); // outside the write lock
        var a = InTransaction(t => UpdateMailbox(t, address, hash, quotaBytes, enabled));
        return FindMailbox(a)!;
    }

    public MailboxRecord RemoveMailbox(string address) => InTransaction(t => RemoveMailbox(t, address, retainUntil: null));

    public MailboxRecord? FindMailbox(string address)
    {
        using var c = Open();
        return c.QuerySingleOrDefault<MailboxRecord>(
            SelectMailbox,
            new { address });
    }

    public IReadOnlyList<MailboxRecord> ListMailboxes(string? domain)
    {
        using var c = Open();
        return c.Query<MailboxRecord>(
            "SELECT address AS Address, domain AS Domain, '' AS PasswordHash, quota_bytes AS QuotaBytes, partition AS Partition, enabled AS Enabled FROM mailboxes WHERE @domain IS NULL OR domain = @domain ORDER BY address",
            new { domain }).AsList();
    }

    /// <summary>One page of mailboxes, optionally of one domain and containing <paramref name="search"/>, with the total that match.</summary>
    public (long Total, IReadOnlyList<MailboxRecord> Page) SearchMailboxes(string? domain, string? search, int offset, int limit)
    {
        using var c = Open();
        var pattern = string.IsNullOrWhiteSpace(search) ? null : "%" + search.Trim().ToLowerInvariant().Replace("\\", "\\\\").Replace("%", "\\%").Replace("_", "\\_") + "%";
        const string where = "WHERE (@domain IS NULL OR domain = @domain) AND (@pattern IS NULL OR address LIKE @pattern ESCAPE '\\')";
        var total = c.ExecuteScalar<long>("SELECT count(*) FROM mailboxes " + where, new { domain, pattern });
        var page = c.Query<MailboxRecord>(
            "SELECT address AS Address, domain AS Domain, '' AS PasswordHash, quota_bytes AS QuotaBytes, partition AS Partition, enabled AS Enabled FROM mailboxes " + where + " ORDER BY address LIMIT @limit OFFSET @offset",
            new { domain, pattern, limit, offset }).AsList();
        return (total, page);
    }

    public static void CheckPassword(string password)
    {
        if (password.Length < 8) throw new DirectoryException("password too short (at least 8 characters)");
        if (password.Length > 1024) throw new DirectoryException("password too long");
    }

    // ---- aliases ----

    /// <summary>Adds targets to an alias ("@domain" is the domain's catch-all). Targets must be local mailboxes or aliases.</summary>
    public void AddAlias(string source, IReadOnlyList<string> targets) => InTransaction(t => AddAlias(t, source, targets));

    /// <summary>Removes one target, or the whole alias when <paramref name="target"/> is null.</summary>
    public void RemoveAlias(string source, string? target) => InTransaction(t => { RemoveAlias(t, source, target); return 0; });

    public IReadOnlyList<AliasRecord> ListAliases(string? domain)
    {
        using var c = Open();
        return c.Query<AliasRecord>("SELECT source AS Source, target AS Target FROM aliases WHERE @domain IS NULL OR domain = @domain ORDER BY source, target", new { domain }).AsList();
    }

    // ---- delivery ----

    /// <summary>
    /// The enabled mailboxes an address delivers to: the mailbox itself, else its alias targets
    /// (recursively), else the same for the address without its +detail, else the domain's
    /// catch-all. Empty when the address is unknown (the caller answers 550 5.1.1).
    /// </summary>
    public IReadOnlyList<MailboxRecord> Resolve(string address) => Route(address).Mailboxes;

    /// <summary>Where mail for an address goes: hosted mailboxes, and addresses outside that aliases forward it to.</summary>
    public readonly record struct Routing(IReadOnlyList<MailboxRecord> Mailboxes, IReadOnlyList<string> Forwards)
    {
        public bool IsEmpty => Mailboxes.Count == 0 && Forwards.Count == 0;
    }

    /// <summary>As <see cref="Resolve"/>, with the outside targets of the aliases on the way (forwarding).</summary>
    public Routing Route(string address)
    {
        var a = address.Trim().ToLowerInvariant();
        using var c = Open();
        var result = new Dictionary<string, MailboxRecord>();
        var forwards = new List<string>();
        var at = a.LastIndexOf('@');
        var plus = at > 0 ? a.IndexOf('+', 0, at) : -1;
        if (!Expand(c, a, result, forwards, 0) && !(plus > 0 && Expand(c, a[..plus] + a[at..], result, forwards, 0)) && at > 0)
            Expand(c, a[at..], result, forwards, 0);
        return new Routing([.. result.Values], [.. forwards.Distinct()]);
    }

    /// <summary>
    /// Whether the mailbox may use <paramref name="address"/> as its sender (RFC 6409 §6.1): its
    /// own address (with or without a +detail), or an alias whose targets lead to it. Not a
    /// catch-all's arbitrary addresses, and never another mailbox's address.
    /// </summary>
    /// <summary>A mailbox's own allow and block lists of senders (its spam filter's), each sorted.</summary>
    public (IReadOnlyList<string> Allow, IReadOnlyList<string> Block) SenderLists(string mailbox)
    {
        using var c = Open();
        var rows = c.Query<SenderListRow>("SELECT entry AS Entry, block AS Block FROM sender_lists WHERE mailbox = @mailbox ORDER BY entry", new { mailbox }).AsList();
        return ([.. rows.Where(r => r.Block == 0).Select(r => r.Entry)], [.. rows.Where(r => r.Block != 0).Select(r => r.Entry)]);
    }

    public bool MaySendAs(string mailbox, string address)
    {
        var m = mailbox.Trim().ToLowerInvariant();
        var a = address.Trim().ToLowerInvariant();
        var at = a.LastIndexOf('@');
        var plus = at > 0 ? a.IndexOf('+', 0, at) : -1;
        using var c = Open();
        foreach (var candidate in plus > 0 ? [a, a[..plus] + a[at..]] : new[] { a })
        {
            if (candidate == m) return true;
            if (c.QuerySingleOrDefault<MailboxRecord>(SelectMailbox, new { address = candidate }) is not null) return false;
            var into = new Dictionary<string, MailboxRecord>();
            if (Expand(c, candidate, into, null, 0)) return into.ContainsKey(m);
        }
        return false;
    }

    private static bool Expand(SqliteConnection c, string address, Dictionary<string, MailboxRecord> into, List<string>? forwards, int depth)
    {
        if (depth > MaxAliasDepth) return false;
        var box = c.QuerySingleOrDefault<MailboxRecord>(
            SelectMailbox,
            new { address });
        if (box is not null)
        {
            if (box.Enabled) into.TryAdd(box.Address, box);
            return true;
        }
        var targets = c.Query<string>("SELECT target FROM aliases WHERE source = @address", new { address }).AsList();
        foreach (var t in targets)
        {
            // A target outside the hosted domains is forwarding (MailDirectory.Changes: AddAlias).
            var domain = Addresses.DomainOf(t);
            if (c.ExecuteScalar<long>("SELECT count(*) FROM domains WHERE name = @domain", new { domain }) == 0)
            {
                forwards?.Add(t);
                continue;
            }
            Expand(c, t, into, forwards, depth + 1);
        }
        return targets.Count > 0;
    }

    // ---- authentication ----

    public async Task<AuthResult> AuthenticateAsync(string user, string password, IPAddress remote, CancellationToken ct)
    {
        if (await ThrottledAsync("login", user, remote, ct)) return AuthResult.Throttled;
        var address = user.Trim().ToLowerInvariant();
        var box = FindMailbox(address);
        var rehash = false;
        var ok = box is { Enabled: true } && _verified.Matches(box.Address, box.PasswordHash, password);
        if (!ok)
        {
            (ok, rehash) = await VerifyAsync(password, box?.PasswordHash, ct);
            ok &= box is { Enabled: true };
        }
        if (!ok)
        {
            await FailedAsync("login", address, remote, ct);
            return AuthResult.Failed;
        }
        _throttle.Succeeded(remote);
        if (rehash)
        {
            box!.PasswordHash = PasswordHasher.Hash(password);
            SetPasswordHash(box.Address, box.PasswordHash);
        }
        _verified.Remember(box!.Address, box.PasswordHash, password);
        return new AuthResult(AuthOutcome.Success, box!.ToUser());
    }

    /// <summary>A throttled address is answered after a second, without its password being checked.</summary>
    private async Task<bool> ThrottledAsync(string what, string user, IPAddress remote, CancellationToken ct)
    {
        if (!_throttle.IsThrottled(remote)) return false;
        await Task.Delay(TimeSpan.FromSeconds(1), ct);
        Log.Warn("{0} throttled user={1} ip={2}", what, user, remote);
        return true;
    }

    /// <summary>
    /// Checks a password against a stored hash, or against a dummy one for an unknown user so
    /// timing does not reveal which exist. At most one Argon2id computation per core at a time:
    /// each takes 19 MB and a core for ~0.1 s, so a burst of logins queues here instead of
    /// growing memory without bound.
    /// </summary>
    private static async Task<(bool Ok, bool Rehash)> VerifyAsync(string password, string? stored, CancellationToken ct)
    {
        await HashGate.WaitAsync(ct);
        try
        {
            var ok = PasswordHasher.Verify(password, stored ?? DummyHash.Value, out var rehash) && stored is not null;
            return (ok, rehash);
        }
        finally
        {
            HashGate.Release();
        }
    }

    /// <summary>Counts a failure against the address and answers it a little late.</summary>
    private async Task FailedAsync(string what, string user, IPAddress remote, CancellationToken ct)
    {
        _throttle.Failed(remote);
        Log.Info("{0} failed user={1} ip={2}", what, user, remote);
        await Task.Delay(TimeSpan.FromMilliseconds(200), ct);
    }

    private static readonly SemaphoreSlim HashGate = new(Environment.ProcessorCount);
    private static readonly Lazy<string> DummyHash = new(() => PasswordHasher.Hash(Convert.ToBase64String(RandomNumberGenerator.GetBytes(16))));

    // ---- admins and tokens ----

    /// <summary>Creates the first admin with a random password if there is none; returns the password once.</summary>
    public string? EnsureFirstAdmin(string name)
    {
        using var c = Open();
        if (c.ExecuteScalar<long>("SELECT count(*) FROM admins") > 0) return null;
        var password = Secrets.NewPassword();
        c.Execute("INSERT INTO admins(name, password_hash, created) VALUES (@name, @hash, @now)", new { name, hash = PasswordHasher.Hash(password), now = Now() });
        return password;
    }

    /// <summary>Creates an API token; only its hash is kept, the token is returned once.</summary>
    public string CreateToken(string name, string scopes)
    {
        var (token, id, hash) = NewToken();
        InTransaction(t => { AddToken(t, id, name, hash, scopes); return 0; });
        return token;
    }

    /// <summary>A new token: what its bearer sends (shown once), its id, and the hash kept of its secret.</summary>
    public static (string Token, string Id, string SecretHash) NewToken()
    {
        var id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var secret = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
        return ($"apl_{id}_{secret}", id, Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes(secret))));
    }

    public void AddToken(DirectoryTransaction t, string id, string name, string secretHash, string scopes)
    {
        if (string.IsNullOrWhiteSpace(name)) throw new DirectoryException("a token needs a name");
        CheckScopes(scopes);
        t.Connection.Execute("INSERT INTO tokens(id, name, secret_hash, scopes, created) VALUES (@id, @name, @secretHash, @scopes, @now)",
            new { id, name, secretHash, scopes, now = Now() }, t.Transaction);
    }

    public static void CheckScopes(string scopes)
    {
        foreach (var scope in scopes.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
            if (!Secrets.KnownScopes.Contains(scope)) throw new DirectoryException($"unknown scope '{scope}' (known: {string.Join(", ", Secrets.KnownScopes)})");
    }

    private static long Now() => DateTimeOffset.UtcNow.ToUnixTimeSeconds();
}

internal sealed class PartitionCount
{
    public string Partition { get; set; } = "";
    public long Count { get; set; }
}

internal static class Secrets
{
    public static readonly string[] KnownScopes = ["admin", "read", "provision"];

    /// <summary>A random password of 20 characters from an unambiguous alphabet.</summary>
    public static string NewPassword()
    {
        const string alphabet = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
        return RandomNumberGenerator.GetString(alphabet, 20);
    }
}

internal sealed class SenderListRow
{
    public string Entry { get; set; } = "";
    public long Block { get; set; }
}
