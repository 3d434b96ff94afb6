using Appliance.Directory;

namespace Appliance.Provisioning;

/// <summary>
/// The administrative commands of DESIGN.md §5 as the CLI runs them: on the node itself
/// (<see cref="ProvisioningService"/>, through the control socket) or against a node's API
/// with a token (<c>--url</c>, <see cref="Cli.ApiCommands"/>). Refusals are
/// <see cref="DirectoryException"/>s either way.
/// </summary>
public interface IProvisioningCommands
{
    Task<string> AddDomainAsync(string name, string actor);
    Task<IReadOnlyList<string>> ListDomainsAsync();
    Task RemoveDomainAsync(string name, string actor);
    Task<Job> StartDomainQuotaAsync(string domain, long quotaBytes, string actor);
    /// <summary>The DNS record of the domain's DKIM key; null when it has none (NotFound when the domain does not exist).</summary>
    Task<Relay.DkimRecord?> GetDkimRecordAsync(string domain);
    /// <summary>Gives the domain a new DKIM key (its first, or a rotation to a new selector); returns its record.</summary>
    Task<Relay.DkimRecord> NewDkimKeyAsync(string domain, string actor);
    Task<MailboxRecord> AddMailboxAsync(string address, string? password, string? passwordHash, long? quotaBytes, string actor);
    Task<IReadOnlyList<MailboxRecord>> ListMailboxesAsync(string? domain);
    Task<MailboxRecord> UpdateMailboxAsync(string address, string? password, long? quotaBytes, bool? enabled, string actor);
    /// <summary>Removes (or, with <paramref name="purge"/>, purges) a mailbox; returns what was done, in a line.</summary>
    Task<string> RemoveMailboxAsync(string address, bool purge, string actor);
    Task<string> AddAliasAsync(string source, IReadOnlyList<string> targets, string actor);
    Task<IReadOnlyList<AliasRecord>> ListAliasesAsync(string? domain);
    Task RemoveAliasAsync(string source, string? target, string actor);
    Task<string> CreateTokenAsync(string name, string scopes, string actor);
    Task SetAdminPasswordAsync(string name, string password, string actor);
    /// <summary>Starts a CSV import (address,password[,quota] lines) as a bulk job.</summary>
    Task<Job> StartImportAsync(string csv, string actor);
    Task<Job?> GetJobAsync(string id);
}
