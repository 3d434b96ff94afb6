namespace Appliance.Directory;

/// <summary>An enabled mailbox as the protocol servers see it after authentication or lookup.</summary>
public sealed record MailUser(string Address, string Partition, long QuotaBytes);

public enum AuthOutcome { Success, BadCredentials, Throttled }

public readonly record struct AuthResult(AuthOutcome Outcome, MailUser? User)
{
    public static readonly AuthResult Failed = new(AuthOutcome.BadCredentials, null);
    public static readonly AuthResult Throttled = new(AuthOutcome.Throttled, null);
}

/// <summary>
/// Checks mailbox credentials for IMAP/POP3/submission. Implementations count failures per
/// remote address and answer <see cref="AuthOutcome.Throttled"/> (after a delay) when an address
/// keeps failing; disabled mailboxes fail like a wrong password.
/// </summary>
public interface IMailAuthenticator
{
    Task<AuthResult> AuthenticateAsync(string user, string password, System.Net.IPAddress remote, CancellationToken ct);
}
