using System.Text.Json.Serialization;

namespace Appliance.Provisioning;

/// <summary>Kinds of provisioning requests (the "kind" of a journal entry).</summary>
public static class RequestKinds
{
    public const string DomainAdd = "domain.add";
    public const string DomainRemove = "domain.remove";
    public const string DomainQuota = "domain.quota";
    /// <summary>A new DKIM key for an existing domain (its first, or a rotation).</summary>
    public const string DomainDkim = "domain.dkim";
    public const string MailboxAdd = "mailbox.add";
    public const string MailboxSet = "mailbox.set";
    /// <summary>Replaces a mailbox's own sender allow and block lists (its spam filter's).</summary>
    public const string MailboxSenderLists = "mailbox.senderlists";
    public const string MailboxRemove = "mailbox.remove";
    public const string MailboxBulk = "mailbox.bulk";
    /// <summary>Deletes the kept mail of a removed mailbox (its retention period over, or an admin's wish).</summary>
    public const string MailboxPurge = "mailbox.purge";
    public const string AliasAdd = "alias.add";
    public const string AliasRemove = "alias.remove";
    public const string TokenCreate = "token.create";
    public const string AdminPassword = "admin.password";
    public const string AdminTotp = "admin.totp";
}

/// <summary>
/// One administrative change as it is journaled. Passwords are already hashed: a journal entry
/// never holds a password. Which fields are set depends on <see cref="Kind"/>.
/// </summary>
public sealed class ProvisioningRequest
{
    public string Kind { get; set; } = "";
    /// <summary>domain.*: the domain.</summary>
    public string? Domain { get; set; }
    /// <summary>mailbox.*: the address.</summary>
    public string? Address { get; set; }
    public string? PasswordHash { get; set; }
    public long? QuotaBytes { get; set; }
    public bool? Enabled { get; set; }
    /// <summary>mailbox.add: the partition chosen when the request was made.</summary>
    public string? Partition { get; set; }
    /// <summary>mailbox.remove: the mail is kept until then (unix seconds); null deletes it at once.</summary>
    public long? RetainUntil { get; set; }
    /// <summary>mailbox.senderlists: the senders the mailbox never takes for spam, and those it files as spam.</summary>
    public string[]? Allow { get; set; }
    public string[]? Block { get; set; }
    /// <summary>alias.*: the alias ("user@domain" or "@domain").</summary>
    public string? Source { get; set; }
    public string[]? Targets { get; set; }
    /// <summary>alias.remove: one target, or null for the whole alias.</summary>
    public string? Target { get; set; }
    /// <summary>token.create, admin.*: the token's or admin's name.</summary>
    public string? Name { get; set; }
    /// <summary>token.create: its id and scopes (the hash of its secret is in <see cref="PasswordHash"/>).</summary>
    public string? TokenId { get; set; }
    public string? Scopes { get; set; }
    /// <summary>admin.totp: the new secret, or null to turn TOTP off.</summary>
    public string? TotpSecret { get; set; }
    /// <summary>mailbox.bulk: every mailbox, created together or not at all.</summary>
    public List<BulkMailbox>? Mailboxes { get; set; }
    /// <summary>domain.add, domain.dkim: the domain's DKIM key, made once by the service so every node signs with it.</summary>
    public string? DkimSelector { get; set; }
    /// <summary>The DKIM private key (PKCS#8 PEM); like a password hash, never in a summary.</summary>
    public string? DkimPrivateKey { get; set; }

    /// <summary>What the request is about, for the audit log.</summary>
    public string TargetName() => Kind switch
    {
        RequestKinds.DomainAdd or RequestKinds.DomainRemove or RequestKinds.DomainQuota or RequestKinds.DomainDkim => Domain ?? "",
        RequestKinds.MailboxBulk => Mailboxes is { Count: > 0 } m ? $"{m.Count} mailboxes" : "",
        RequestKinds.AliasAdd or RequestKinds.AliasRemove => Source ?? "",
        RequestKinds.TokenCreate or RequestKinds.AdminPassword or RequestKinds.AdminTotp => Name ?? "",
        _ => Address ?? "",
    };

    /// <summary>One line for the audit log; never a password, its hash or a private key.</summary>
    public string Summary() => Kind switch
    {
        RequestKinds.DomainAdd => $"domain {Domain} added",
        RequestKinds.DomainDkim => $"new DKIM key for {Domain} (selector {DkimSelector})",
        RequestKinds.DomainRemove => $"domain {Domain} removed",
        RequestKinds.DomainQuota => $"quota of every mailbox of {Domain} set to {Sizes.Format(QuotaBytes ?? 0)}",
        RequestKinds.MailboxAdd => $"mailbox {Address} added (quota {Sizes.Format(QuotaBytes ?? 0)}, partition {Partition})",
        RequestKinds.MailboxSenderLists => $"sender lists of {Address} set: {Allow?.Length ?? 0} allowed, {Block?.Length ?? 0} blocked",
        RequestKinds.MailboxSet => $"mailbox {Address} changed:" + (PasswordHash is null ? "" : " password reset")
            + (QuotaBytes is { } q ? $" quota {Sizes.Format(q)}" : "") + (Enabled is { } e ? (e ? " enabled" : " disabled") : ""),
        RequestKinds.MailboxRemove => $"mailbox {Address} removed" + (RetainUntil is { } r ? $", mail kept until {DateTimeOffset.FromUnixTimeSeconds(r):yyyy-MM-dd}" : ", mail deleted"),
        RequestKinds.MailboxPurge => $"kept mail of removed mailbox {Address} deleted",
        RequestKinds.MailboxBulk => $"{Mailboxes?.Count ?? 0} mailboxes added" + (Mailboxes is { Count: > 0 } m ? $" ({m[0].Address}{(m.Count > 1 ? " … " + m[^1].Address : "")})" : ""),
        RequestKinds.AliasAdd => $"alias {Source} -> {string.Join(", ", Targets ?? [])}",
        RequestKinds.AliasRemove => Target is null ? $"alias {Source} removed" : $"target {Target} removed from alias {Source}",
        RequestKinds.TokenCreate => $"API token {Name} created (scopes {Scopes})",
        RequestKinds.AdminPassword => $"password of admin {Name} set",
        RequestKinds.AdminTotp => $"TOTP turned {(TotpSecret is null ? "off" : "on")} for admin {Name}",
        _ => Kind,
    };
}

public sealed class BulkMailbox
{
    public string Address { get; set; } = "";
    public string PasswordHash { get; set; } = "";
    public long QuotaBytes { get; set; }
    public string? Partition { get; set; }
}

[JsonSerializable(typeof(ProvisioningRequest))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
internal sealed partial class ProvisioningJson : JsonSerializerContext;
