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
    /// <summary>The RCPT addresses that resolved to each mailbox (its own address, or aliases), by mailbox.</summary>
    public Dictionary<string, List<string>> Addressed { get; } = new(StringComparer.OrdinalIgnoreCase);
    /// <summary>Accepted recipients outside the hosted domains (submission, or a trusted network on the MX): queued.</summary>
    public List<string> Outbound { get; } = [];
    /// <summary>The client is in Relay:TrustedNetworks: its mail is relayed and not judged.</summary>
    public bool Trusted { get; set; }
    /// <summary>What the checks of this transaction found (av=clean, …), for its log line.</summary>
    public List<string> Verdicts { get; } = [];
    /// <summary>The client's DNS list listings, looked up at the first hosted RCPT of the session (null before).</summary>
    public Filtering.DnsListVerdict? Lists { get; set; }
    /// <summary>The mailbox that authenticated (submission), or null.</summary>
    public Appliance.Directory.MailUser? User { get; set; }

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
        $"session={context.SessionId.ToString("N")[..8]} ip={Remote(context)?.Address} helo={Helo}" + (User is { } u ? $" user={u.Address}" : "");

    /// <summary>A new transaction (MAIL): what the previous one resolved is forgotten.</summary>
    public void BeginTransaction(int declaredSize)
    {
        DeclaredSize = declaredSize;
        Recipients = 0;
        Mailboxes.Clear();
        Addressed.Clear();
        Outbound.Clear();
        Verdicts.Clear();
    }
}
