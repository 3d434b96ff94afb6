using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Appliance.Directory;
using Appliance.Hosting;
using Appliance.Store;

namespace Appliance.Pop3;

/// <summary>
/// POP3 server (RFC 1939, RFC 2449 CAPA, RFC 2595 STLS, RFC 5034 AUTH PLAIN) on any number of
/// endpoints, each plain-with-STLS or implicit TLS (POP3S, RFC 8314). Holds what sessions share:
/// per-mailbox locks (RFC 1939 §8 exclusive access), per-address connection counts, and the
/// connections themselves (<see cref="SessionListeners"/>).
/// </summary>
public sealed class Pop3Server : IAsyncDisposable, IForwardedSessionHost
{
    private readonly Pop3Options _options;
    private readonly ConcurrentDictionary<string, byte> _lockedMailboxes = new(StringComparer.Ordinal);
    private readonly SessionListeners _listeners;

    public Pop3Server(
        IMailStore store,
        IMailAuthenticator authenticator,
        X509Certificate2? certificate,
        Pop3Options options,
        bool devMode,
        string hostname,
        NLog.ILogger? logger = null)
    {
        Store = store;
        Authenticator = authenticator;
        Certificate = certificate;
        _options = options;
        DevMode = devMode;
        Hostname = hostname;
        Logger = logger ?? NLog.LogManager.GetLogger("pop3");
        _listeners = new SessionListeners("pop3", options.MaxConnectionsPerIp,
            "-ERR [SYS/TEMP] Too many connections from your address\r\n"u8.ToArray(), Logger,
            (socket, address, implicitTls, token) => new Pop3Session(this, socket, address, token).RunAsync(implicitTls));
    }

    internal IMailStore Store { get; }

    internal IMailAuthenticator Authenticator { get; }

    /// <summary>Certificate for STLS and POP3S; null disables both.</summary>
    internal X509Certificate2? Certificate { get; }

    internal bool DevMode { get; }

    internal string Hostname { get; }

    internal NLog.ILogger Logger { get; }

    /// <summary>In a pair: forwards logins whose mailbox is active on the other node.</summary>
    public ISessionForwarder? Forwarder { get; set; }

    internal TimeSpan IdleTimeout => TimeSpan.FromSeconds(Math.Max(1, _options.IdleTimeoutSeconds));

    /// <summary>
    /// Binds <paramref name="endPoint"/> (port 0 = ephemeral) and starts accepting. Returns the bound
    /// endpoint. Cancelling <paramref name="cancellationToken"/> stops this listener.
    /// </summary>
    public Task<IPEndPoint> StartAsync(IPEndPoint endPoint, bool implicitTls, CancellationToken cancellationToken)
    {
        if (implicitTls && Certificate is null)
        {
            throw new InvalidOperationException("POP3S needs a certificate");
        }

        return Task.FromResult(_listeners.Start(endPoint, implicitTls, cancellationToken)); // the host logs every bound endpoint once
    }

    /// <summary>Stops accepting, ends every session without entering UPDATE, and waits for them.</summary>
    public Task StopAsync() => _listeners.StopAsync();

    /// <summary>Sessions running now (the monitoring's figure).</summary>
    public int ActiveSessions => _listeners.ActiveSessions;

    public ValueTask DisposeAsync() => new(StopAsync());

    public async Task ServeForwardedAsync(ForwardedLogin login, Socket socket, Func<ForwardRefusal?, Task> answer)
    {
        if (!await _listeners.RunForwardedAsync(token => new Pop3Session(this, socket, login.Client, token).RunForwardedAsync(login, answer)))
            await answer(new ForwardRefusal("SYS/TEMP", "Server shutting down"));
    }

    internal bool TryLockMailbox(string key) => _lockedMailboxes.TryAdd(key, 0);

    internal void ReleaseMailbox(string key) => _lockedMailboxes.TryRemove(key, out _);
}
