using System.Text.Json.Serialization;
using Appliance.Directory;
using Appliance.Provisioning;

namespace Appliance.Web;

// Bodies of the provisioning API (docs/api.md). Requests are read by hand so that a body that
// does not parse gets a problem document, not an empty 400.

public sealed class DomainCreate { public string? Name { get; set; } }
public sealed class QuotaChange { public long? QuotaBytes { get; set; } }
public sealed class MailboxCreate
{
    public string? Address { get; set; }
    public string? Password { get; set; }
    public long? QuotaBytes { get; set; }
}
/// <summary>A mailbox's own sender lists: never spam, always spam.</summary>
public sealed class SenderLists
{
    public string[]? Allow { get; set; }
    public string[]? Block { get; set; }
}

public sealed class MailboxPatch
{
    public string? Password { get; set; }
    public long? QuotaBytes { get; set; }
    public bool? Enabled { get; set; }
}
public sealed class BulkItem
{
    public string? Address { get; set; }
    public string? Password { get; set; }
    public string? PasswordHash { get; set; }
    public long? QuotaBytes { get; set; }
}
public sealed class BulkRequest { public List<BulkItem>? Mailboxes { get; set; } }
public sealed class AliasCreate
{
    public string? Source { get; set; }
    public List<string>? Targets { get; set; }
}
public sealed class SessionLogin
{
    public string? Name { get; set; }
    public string? Password { get; set; }
    public string? Totp { get; set; }
}
public sealed class TotpCode { public string? Code { get; set; } }
public sealed class TokenCreate
{
    public string? Name { get; set; }
    public string? Scopes { get; set; }
}
public sealed class PasswordChange { public string? Password { get; set; } }
public sealed record TokenCreated(string Token);

public sealed record MailboxView(string Address, string Domain, long QuotaBytes, long? UsedBytes, bool Enabled, string Partition);
public sealed record MailboxPage(long Total, int Offset, int Limit, IReadOnlyList<MailboxView> Items);
public sealed record AliasView(string Source, IReadOnlyList<string> Targets);
public sealed record JobRef(string Job);
public sealed record JournalPosition(long LastSeq);
public sealed record DashboardView(long Domains, long Mailboxes, long Aliases, long Disabled, string Node, string Version, JournalPosition Journal, IReadOnlyList<NodeProgress> Nodes);
public sealed record ProvisioningView(long LastSeq, IReadOnlyList<NodeProgress> Nodes, IReadOnlyList<JournalEntry> Recent);
public sealed record AuditPage(long Total, IReadOnlyList<JournalEntry> Items);
public sealed record SessionInfo(string Name, string Csrf, bool Totp);
public sealed record TotpSetup(string Secret, string Uri);
public sealed record DomainName(string Name);

/// <summary>RFC 9457 problem details.</summary>
public sealed record Problem(string Type, string Title, int Status, string? Detail, IReadOnlyList<JobError>? Errors = null);

[JsonSerializable(typeof(DomainCreate))]
[JsonSerializable(typeof(QuotaChange))]
[JsonSerializable(typeof(MailboxCreate))]
[JsonSerializable(typeof(MailboxPatch))]
[JsonSerializable(typeof(SenderLists))]
[JsonSerializable(typeof(BulkRequest))]
[JsonSerializable(typeof(AliasCreate))]
[JsonSerializable(typeof(SessionLogin))]
[JsonSerializable(typeof(TotpCode))]
[JsonSerializable(typeof(TokenCreate))]
[JsonSerializable(typeof(PasswordChange))]
[JsonSerializable(typeof(TokenCreated))]
[JsonSerializable(typeof(List<DomainSummary>))]
[JsonSerializable(typeof(List<AliasRecord>))]
[JsonSerializable(typeof(MailboxView))]
[JsonSerializable(typeof(MailboxPage))]
[JsonSerializable(typeof(List<AliasView>))]
[JsonSerializable(typeof(AliasView))]
[JsonSerializable(typeof(JobRef))]
[JsonSerializable(typeof(Job))]
[JsonSerializable(typeof(DashboardView))]
[JsonSerializable(typeof(ProvisioningView))]
[JsonSerializable(typeof(AuditPage))]
[JsonSerializable(typeof(SessionInfo))]
[JsonSerializable(typeof(TotpSetup))]
[JsonSerializable(typeof(DomainName))]
[JsonSerializable(typeof(IReadOnlyList<DomainSummary>))]
[JsonSerializable(typeof(Problem))]
[JsonSerializable(typeof(Relay.DkimRecord))]
[JsonSerializable(typeof(QueuePage))]
[JsonSerializable(typeof(QueueEntryView))]
[JsonSerializable(typeof(QueueCount))]
[JsonSerializable(typeof(MonitoringNodes))]
[JsonSerializable(typeof(MetricSeriesView))]
[JsonSerializable(typeof(CheckList))]
[JsonSerializable(typeof(AlertList))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
public sealed partial class WebJson : JsonSerializerContext;
