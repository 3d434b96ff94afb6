using Appliance.Directory;

namespace Appliance.Store;

// Each user's Sieve scripts, in the partition of the mailbox (Partition.Sieve.cs). The store
// enforces the names (RFC 5804 §1.6) and the limits for every caller (ManageSieve now, other
// front-ends later); checking a script's syntax is the caller's, before it puts it.
public sealed partial class MailStore
{
    /// <summary>Largest script and most scripts per user (ManageSieve options; set by the host).</summary>
    public SieveLimits SieveLimits { get; set; } = SieveLimits.Default;

    public IReadOnlyList<SieveScriptInfo> ListSieveScripts(MailUser user) => For(user).ListSieveScripts(user.Address);

    /// <summary>The script's content, or null when the user has none of that name.</summary>
    public string? GetSieveScript(MailUser user, string name) => For(user).GetSieveScript(user.Address, name);

    /// <summary>The script mail delivery runs for the user, or null.</summary>
    public StoredSieveScript? GetActiveSieveScript(MailUser user) => For(user).GetActiveSieveScript(user.Address);

    /// <summary>Whether a script of that name and size (UTF-8 bytes) would be stored now (RFC 5804 HAVESPACE).</summary>
    public SieveResult CheckSieveSpace(MailUser user, string name, long bytes) =>
        !Store.Partition.IsValidSieveName(name) ? SieveResult.InvalidName : For(user).CheckSieveSpace(user.Address, name, bytes, SieveLimits);

    /// <summary>Stores or replaces a script (an active one stays active).</summary>
    public Task<SieveResult> PutSieveScriptAsync(MailUser user, string name, string content) =>
        !Store.Partition.IsValidSieveName(name) ? Task.FromResult(SieveResult.InvalidName) : For(user).PutSieveScriptAsync(user.Address, name, content, SieveLimits);

    /// <summary>Deletes a script; the active one is refused (<see cref="SieveResult.Active"/>).</summary>
    public Task<SieveResult> DeleteSieveScriptAsync(MailUser user, string name) => For(user).DeleteSieveScriptAsync(user.Address, name);

    public Task<SieveResult> RenameSieveScriptAsync(MailUser user, string oldName, string newName) =>
        !Store.Partition.IsValidSieveName(newName) ? Task.FromResult(SieveResult.InvalidName) : For(user).RenameSieveScriptAsync(user.Address, oldName, newName);

    /// <summary>Makes the script the active one; "" deactivates the active one.</summary>
    public Task<SieveResult> SetActiveSieveScriptAsync(MailUser user, string name) => For(user).SetActiveSieveScriptAsync(user.Address, name);
}
