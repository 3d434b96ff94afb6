using System.Net;
using SmtpServer;
using SmtpServer.Net;

namespace Appliance.Smtp;

/// <summary>What we remember about one SMTP session, kept in the session's property bag.</summary>
internal sealed class SmtpSessionState
{
    private const string Key = "appliance.state";
    public string Helo { get; set; } = "";
    public int DeclaredSize { get; set; }
    public int Recipients { get; set; }
    /// <summary>The distinct mailboxes the accepted recipients of this transaction resolved to at RCPT.</summary>
    public Dictionary<string, Appliance.Directory.MailboxRecord> Mailboxes { get; } = [];

    public static SmtpSessionState Of(ISessionContext context)
    {
        if (context.Properties.TryGetValue(Key, out var value) && value is SmtpSessionState s) return s;
        var state = new SmtpSessionState();
        context.Properties[Key] = state;
        return state;
    }

    public static IPEndPoint? Remote(ISessionContext context) =>
        context.Properties.TryGetValue(EndpointListener.RemoteEndPointKey, out var ep) ? ep as IPEndPoint : null;

    public string Describe(ISessionContext context) =>
        $"session={context.SessionId.ToString("N")[..8]} ip={Remote(context)?.Address} helo={Helo}";
}
