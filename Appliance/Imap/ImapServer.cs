using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Appliance.Directory;
using Appliance.Hosting;
using Appliance.Store;

namespace Appliance.Imap;

/// <summary>
/// IMAP server (RFC 9051 IMAP4rev2 and RFC 3501 IMAP4rev1, see docs/rfc.md for extensions) on
/// any number of endpoints, plain-with-STARTTLS or implicit TLS (RFC 8314). Holds what sessions
/// share: the store (whose change feed lets sessions see each other), per-address limits
/// (<see cref="SessionListeners"/>) and per-user session counts.
/// </summary>
public sealed class ImapServer : IAsyncDisposable, IForwardedSessionHost
{
    private readonly Dictionary<string, int> _sessionsPerUser = new(StringComparer.OrdinalIgnoreCase);
    private readonly SessionListeners _listeners;

    public ImapServer(
        MailStore store,
        IMailAuthenticator authenticator,
        X509Certificate2? certificate,
        ImapOptions options,
        long maxAppendBytes,
        bool devMode,
        string hostname,
        NLog.ILogger? logger = null)
    {
        Store = store;
        Authenticator = authenticator;
        Certificate = certificate;
        Options = options;
        DevMode = devMode;
        Hostname = hostname;
        Logger = logger ?? NLog.LogManager.GetLogger("imap");
        MaxAppendBytes = options.MaxAppendBytes > 0 ? options.MaxAppendBytes : maxAppendBytes;
        Limits = new ImapParserLimits(options.MaxLineBytes, options.MaxLiteralBytes, MaxAppendBytes);
        _listeners = new SessionListeners("imap", options.MaxConnectionsPerIp,
            "* BYE [UNAVAILABLE] Too many connections from your address\r\n"u8.ToArray(), Logger,
            (socket, address, implicitTls, token) => new ImapSession(this, socket, address, token).RunAsync(implicitTls));
    }

    internal MailStore Store { get; }
    internal IMailAuthenticator Authenticator { get; }
    /// <summary>Certificate for STARTTLS and IMAPS; null disables both.</summary>
    internal X509Certificate2? Certificate { get; }
    internal ImapOptions Options { get; }
    internal bool DevMode { get; }
    internal string Hostname { get; }
    internal NLog.ILogger Logger { get; }
    internal long MaxAppendBytes { get; }
    internal ImapParserLimits Limits { get; }

    /// <summary>In a pair: forwards logins whose mailbox is active on the other node.</summary>
    public ISessionForwarder? Forwarder { get; set; }

    /// <summary>Binds <paramref name="endPoint"/> (port 0 = ephemeral) and starts accepting; returns the bound endpoint.</summary>
    public Task<IPEndPoint> StartAsync(IPEndPoint endPoint, bool implicitTls, CancellationToken cancellationToken)
    {
        if (implicitTls && Certificate is null) throw new InvalidOperationException("IMAPS needs a certificate");
        return Task.FromResult(_listeners.Start(endPoint, implicitTls, cancellationToken));
    }

    /// <summary>Stops accepting, sends every session BYE and waits for them.</summary>
    public Task StopAsync() => _listeners.StopAsync();

    /// <summary>Sessions running now (the monitoring's figure).</summary>
    public int ActiveSessions => _listeners.ActiveSessions;

    public ValueTask DisposeAsync() => new(StopAsync());

    public async Task ServeForwardedAsync(ForwardedLogin login, Socket socket, Func<ForwardRefusal?, Task> answer)
    {
        if (!await _listeners.RunForwardedAsync(token => new ImapSession(this, socket, login.Client, token).RunForwardedAsync(login, answer)))
            await answer(new ForwardRefusal("UNAVAILABLE", "Server shutting down"));
    }

    /// <summary>Counts a logged-in session of <paramref name="address"/>; false over the per-user limit.</summary>
    internal bool TryAddUserSession(string address)
    {
        lock (_sessionsPerUser)
        {
            _sessionsPerUser.TryGetValue(address, out int count);
            if (Options.MaxConnectionsPerUser > 0 && count >= Options.MaxConnectionsPerUser) return false;
            _sessionsPerUser[address] = count + 1;
            return true;
        }
    }

    internal void RemoveUserSession(string address)
    {
        lock (_sessionsPerUser)
        {
            if (_sessionsPerUser.TryGetValue(address, out int count) && count > 1) _sessionsPerUser[address] = count - 1;
            else _sessionsPerUser.Remove(address);
        }
    }
}
