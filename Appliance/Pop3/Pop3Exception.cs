namespace Appliance.Pop3;

/// <summary>
/// The one protocol error type: turned into "-ERR [code] text" in one place
/// (<c>Pop3Session.DispatchAsync</c>). <see cref="ClientFault"/> errors count towards the
/// bad-command limit; <see cref="Disconnect"/> closes the connection after the reply.
/// </summary>
internal sealed class Pop3Exception(string text, string? responseCode = null, bool clientFault = true, bool disconnect = false)
    : Exception(text)
{
    /// <summary>RFC 2449 §8 / RFC 3206 response code without brackets (AUTH, IN-USE, SYS/TEMP, …).</summary>
    public string? ResponseCode { get; } = responseCode;

    public bool ClientFault { get; } = clientFault;

    public bool Disconnect { get; } = disconnect;

    public string Reply => ResponseCode is null ? $"-ERR {Message}" : $"-ERR [{ResponseCode}] {Message}";
}
