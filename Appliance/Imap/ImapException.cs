namespace Appliance.Imap;

public enum ImapStatus { Ok, No, Bad, Bye }

/// <summary>
/// A command that fails: turned into <c>tag NO|BAD [CODE] text</c> in one place, the
/// dispatcher. <see cref="Code"/> is the response code without brackets (e.g. "TRYCREATE",
/// "NONEXISTENT", "OVERQUOTA"). BAD counts towards the per-session error limit.
/// </summary>
public sealed class ImapException(ImapStatus status, string text, string? code = null) : Exception(text)
{
    public ImapStatus Status { get; } = status;
    public string? Code { get; } = code;

    public static ImapException Bad(string text, string? code = null) => new(ImapStatus.Bad, text, code);
    public static ImapException No(string text, string? code = null) => new(ImapStatus.No, text, code);
}
