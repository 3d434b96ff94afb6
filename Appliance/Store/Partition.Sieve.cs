using Dapper;

namespace Appliance.Store;

// Each user's Sieve scripts (RFC 5804) live in the mailbox's partition: they are journalled
// (SieveScriptOp), replicated and failed over with the mail they filter. Every mutation is
// decided on the writer loop (the checks and the resulting state in one place), so two
// sessions of one user cannot both pass the count limit or leave two scripts active. The op
// carries the outcome as absolute state, and Apply only writes it. Names arrive validated
// (MailStore checks them with IsValidSieveName); contents arrive checked by the caller.

/// <summary>One script of a user as listed (RFC 5804 LISTSCRIPTS).</summary>
public sealed record SieveScriptInfo(string Name, bool Active);

/// <summary>A user's active script: the one mail delivery runs.</summary>
public sealed record StoredSieveScript(string Name, string Content);

/// <summary>How a Sieve script request ended; each failure is one RFC 5804 response code.</summary>
public enum SieveResult
{
    Ok,
    /// <summary>NONEXISTENT: no script of that name.</summary>
    NonExistent,
    /// <summary>ALREADYEXISTS: the new name of a rename is taken.</summary>
    AlreadyExists,
    /// <summary>ACTIVE: the active script cannot be deleted.</summary>
    Active,
    /// <summary>QUOTA/MAXSIZE: the script is larger than the limit.</summary>
    TooLarge,
    /// <summary>QUOTA/MAXSCRIPTS: the user has as many scripts as allowed.</summary>
    TooManyScripts,
    /// <summary>The name is empty, too long or has control characters (RFC 5804 §1.6).</summary>
    InvalidName,
}

/// <summary>The limits on each user's Sieve scripts (ManageSieve options).</summary>
public sealed record SieveLimits(int MaxScriptBytes, int MaxScripts)
{
    public static readonly SieveLimits Default = new(64 * 1024, 20);
}

internal sealed class SieveRow
{
    public const string Columns = "account AS Account, name AS Name, content AS Content, active AS Active";
    public string Account { get; set; } = "";
    public string Name { get; set; } = "";
    public string Content { get; set; } = "";
    public long Active { get; set; }
}

public sealed partial class Partition
{
    /// <summary>Longest script name in UTF-8 bytes (RFC 5804 §1.6 lets a server limit it; 128 is what it suggests clients keep to).</summary>
    public const int MaxSieveNameBytes = 512;

    /// <summary>RFC 5804 §1.6: not empty, no control characters (C0, DEL, C1), no line or paragraph separator, bounded.</summary>
    public static bool IsValidSieveName(string name) =>
        name.Length > 0
        && System.Text.Encoding.UTF8.GetByteCount(name) <= MaxSieveNameBytes
        && !name.Any(ch => ch < 0x20 || ch is >= '\u007f' and <= '\u009f' or '\u2028' or '\u2029')
        // A lone surrogate is no Unicode text: it would not come back from UTF-8 the same.
        && System.Text.Encoding.UTF8.GetString(System.Text.Encoding.UTF8.GetBytes(name)) == name;

    // ---- reads ----

    /// <summary>The user's scripts by name.</summary>
    public IReadOnlyList<SieveScriptInfo> ListSieveScripts(string account)
    {
        using var c = OpenReader();
        return [.. c.Query<SieveRow>("SELECT " + SieveRow.Columns + " FROM sieve_scripts WHERE account = @account ORDER BY name", new { account })
            .Select(r => new SieveScriptInfo(r.Name, r.Active != 0))];
    }

    /// <summary>A script's content, or null when there is none of that name.</summary>
    public string? GetSieveScript(string account, string name)
    {
        using var c = OpenReader();
        return c.QuerySingleOrDefault<string>("SELECT content FROM sieve_scripts WHERE account = @account AND name = @name", new { account, name });
    }

    /// <summary>The active script, or null when none is.</summary>
    public StoredSieveScript? GetActiveSieveScript(string account)
    {
        using var c = OpenReader();
        var row = c.QuerySingleOrDefault<SieveRow>("SELECT " + SieveRow.Columns + " FROM sieve_scripts WHERE account = @account AND active = 1", new { account });
        return row is null ? null : new StoredSieveScript(row.Name, row.Content);
    }

    /// <summary>RFC 5804 §2.3 HAVESPACE: whether a script of that name and size would be taken now.</summary>
    public SieveResult CheckSieveSpace(string account, string name, long bytes, SieveLimits limits)
    {
        if (bytes > limits.MaxScriptBytes) return SieveResult.TooLarge;
        using var c = OpenReader();
        return WouldExceedCount(c.ExecuteScalar<long>("SELECT count(*) FROM sieve_scripts WHERE account = @account", new { account }),
            c.ExecuteScalar<long>("SELECT count(*) FROM sieve_scripts WHERE account = @account AND name = @name", new { account, name }) > 0, limits)
            ? SieveResult.TooManyScripts : SieveResult.Ok;
    }

    private static bool WouldExceedCount(long count, bool replaces, SieveLimits limits) => !replaces && count >= limits.MaxScripts;

    // ---- mutations (durable when the task completes) ----

    /// <summary>RFC 5804 §2.6 PUTSCRIPT: stores a new script or replaces one (which stays active if it was).</summary>
    public Task<SieveResult> PutSieveScriptAsync(string account, string name, string content, SieveLimits limits) =>
        SubmitAsync(ctx =>
        {
            if (System.Text.Encoding.UTF8.GetByteCount(content) > limits.MaxScriptBytes) return SieveResult.TooLarge;
            var existing = ctx.SieveScript(account, name);
            if (WouldExceedCount(ctx.SieveScriptCount(account), existing is not null, limits)) return SieveResult.TooManyScripts;
            ctx.Emit(new SieveScriptOp(SieveScriptChange.Put, account, name, "", content, existing?.Active == 1));
            return SieveResult.Ok;
        });

    /// <summary>RFC 5804 §2.10 DELETESCRIPT: the active script is refused (ACTIVE).</summary>
    public Task<SieveResult> DeleteSieveScriptAsync(string account, string name) =>
        SubmitAsync(ctx =>
        {
            var existing = ctx.SieveScript(account, name);
            if (existing is null) return SieveResult.NonExistent;
            if (existing.Active != 0) return SieveResult.Active;
            ctx.Emit(new SieveScriptOp(SieveScriptChange.Delete, account, name, "", "", false));
            return SieveResult.Ok;
        });

    /// <summary>RFC 5804 §2.11.1 RENAMESCRIPT: keeps the content and whether it is active.</summary>
    public Task<SieveResult> RenameSieveScriptAsync(string account, string oldName, string newName) =>
        SubmitAsync(ctx =>
        {
            var existing = ctx.SieveScript(account, oldName);
            if (existing is null) return SieveResult.NonExistent;
            if (ctx.SieveScript(account, newName) is not null) return SieveResult.AlreadyExists;
            ctx.Emit(new SieveScriptOp(SieveScriptChange.Rename, account, oldName, newName, "", existing.Active != 0));
            return SieveResult.Ok;
        });

    /// <summary>RFC 5804 §2.8 SETACTIVE: makes the script the only active one; "" leaves none active.</summary>
    public Task<SieveResult> SetActiveSieveScriptAsync(string account, string name) =>
        SubmitAsync(ctx =>
        {
            if (name.Length > 0 && ctx.SieveScript(account, name) is null) return SieveResult.NonExistent;
            ctx.Emit(new SieveScriptOp(SieveScriptChange.Activate, account, name, "", "", name.Length > 0));
            return SieveResult.Ok;
        });

    internal sealed partial class WriteContext
    {
        public SieveRow? SieveScript(string account, string name) => c.QuerySingleOrDefault<SieveRow>(
            "SELECT " + SieveRow.Columns + " FROM sieve_scripts WHERE account = @account AND name = @name", new { account, name }, tx);

        public long SieveScriptCount(string account) =>
            c.ExecuteScalar<long>("SELECT count(*) FROM sieve_scripts WHERE account = @account", new { account }, tx);

        private void ApplySieve(SieveScriptOp op)
        {
            var p = new { op.Account, op.Name, op.NewName, op.Content, active = op.Active ? 1 : 0 };
            switch (op.Change)
            {
                case SieveScriptChange.Put:
                    if (op.Active) c.Execute("UPDATE sieve_scripts SET active = 0 WHERE account = @Account AND name <> @Name", p, tx);
                    c.Execute(
                        """
                        INSERT INTO sieve_scripts(account, name, content, active) VALUES (@Account, @Name, @Content, @active)
                        ON CONFLICT(account, name) DO UPDATE SET content = excluded.content, active = excluded.active
                        """, p, tx);
                    break;
                case SieveScriptChange.Delete:
                    c.Execute("DELETE FROM sieve_scripts WHERE account = @Account AND name = @Name", p, tx);
                    break;
                case SieveScriptChange.Rename:
                    // The primary checked the new name was free; a record applied again finds nothing under the old one.
                    c.Execute("DELETE FROM sieve_scripts WHERE account = @Account AND name = @NewName AND EXISTS(SELECT 1 FROM sieve_scripts WHERE account = @Account AND name = @Name)", p, tx);
                    c.Execute("UPDATE sieve_scripts SET name = @NewName WHERE account = @Account AND name = @Name", p, tx);
                    break;
                case SieveScriptChange.Activate:
                    c.Execute("UPDATE sieve_scripts SET active = 0 WHERE account = @Account AND active = 1", p, tx);
                    if (op.Name.Length > 0) c.Execute("UPDATE sieve_scripts SET active = 1 WHERE account = @Account AND name = @Name", p, tx);
                    break;
            }
        }
    }
}
