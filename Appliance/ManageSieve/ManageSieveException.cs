namespace Appliance.ManageSieve;

/// <summary>
/// The one protocol error type: turned into <c>NO (code) "text"</c> (or BYE, closing the
/// connection) in one place, <c>ManageSieveSession.DispatchAsync</c>. <see cref="ClientFault"/>
/// errors count towards the bad-command limit.
/// </summary>
internal sealed class ManageSieveException(string text, string? responseCode = null, bool clientFault = true, bool disconnect = false)
    : Exception(text)
{
    /// <summary>RFC 5804 §1.3 response code without parentheses (NONEXISTENT, QUOTA/MAXSIZE, TRYLATER, …).</summary>
    public string? ResponseCode { get; } = responseCode;

    public bool ClientFault { get; } = clientFault;

    public bool Disconnect { get; } = disconnect;

    public string Reply => (Disconnect ? "BYE " : "NO ") + (ResponseCode is null ? "" : $"({ResponseCode}) ") + ManageSieveParser.Quote(Message);
}
