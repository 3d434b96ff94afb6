using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using Appliance.Directory;
using Appliance.Hosting;
using Appliance.Store;

namespace Appliance.ManageSieve;

/// <summary>
/// How scripts are checked before they are stored (PUTSCRIPT, CHECKSCRIPT): <see cref="Check"/>
/// returns the parser's error message (with its line) or null for a valid script, and
/// <see cref="Extensions"/> are the Sieve extensions announced in the SIEVE capability.
/// </summary>
public sealed record SieveChecker(Func<string, string?> Check, IReadOnlyList<string> Extensions)
{
    /// <summary>The Sieve parser (RFC 5228 and the extensions it supports), with the script size limit.</summary>
    public static SieveChecker Parser(int maxBytes) => new(source =>
    {
        try
        {
            Filtering.Sieve.SieveScript.Parse(source, maxBytes);
            return null;
        }
        catch (Filtering.Sieve.SieveException ex)
        {
            return ex.Message;
        }
    }, Filtering.Sieve.SieveScript.Extensions);
}

/// <summary>
/// ManageSieve server (RFC 5804): users upload, list, activate and remove their Sieve scripts,
/// which live in their mailbox's partition (MailStore.Sieve.cs). Plain with STARTTLS only (the
/// RFC defines no implicit-TLS port). What sessions share: the listeners with their
/// per-address limit, the checker, and forwarding to the other node of a pair.
/// </summary>
public sealed class ManageSieveServer : IAsyncDisposable, IForwardedSessionHost
{
    private readonly ManageSieveOptions _options;
    private readonly SessionListeners _listeners;

    public ManageSieveServer(
        MailStore store,
        IMailAuthenticator authenticator,
        X509Certificate2? certificate,
        ManageSieveOptions options,
        SieveChecker checker,
        bool devMode,
        NLog.ILogger? logger = null)
    {
        Store = store;
        Authenticator = authenticator;
        Certificate = certificate;
        _options = options;
        Checker = checker;
        DevMode = devMode;
        Logger = logger ?? NLog.LogManager.GetLogger("managesieve");
        _listeners = new SessionListeners("managesieve", options.MaxConnectionsPerIp,
            "BYE (TRYLATER) \"Too many connections from your address\"\r\n"u8.ToArray(), Logger,
            (socket, address, _, token) => new ManageSieveSession(this, socket, address, token).RunAsync());
    }

    internal MailStore Store { get; }

    internal IMailAuthenticator Authenticator { get; }

    /// <summary>Certificate for STARTTLS; null disables it.</summary>
    internal X509Certificate2? Certificate { get; }

    internal SieveChecker Checker { get; }

    internal bool DevMode { get; }

    internal NLog.ILogger Logger { get; }

    /// <summary>In a pair: forwards logins whose mailbox is active on the other node.</summary>
    public ISessionForwarder? Forwarder { get; set; }

    internal TimeSpan IdleTimeout => TimeSpan.FromSeconds(Math.Max(1, _options.IdleTimeoutSeconds));

    /// <summary>Binds <paramref name="endPoint"/> (port 0 = ephemeral), starts accepting and returns the bound endpoint.</summary>
    public IPEndPoint Start(IPEndPoint endPoint, CancellationToken cancellationToken) =>
        _listeners.Start(endPoint, implicitTls: false, cancellationToken);

    /// <summary>Stops accepting, ends every session and waits for them.</summary>
    public Task StopAsync() => _listeners.StopAsync();

    /// <summary>Sessions running now (the monitoring's figure).</summary>
    public int ActiveSessions => _listeners.ActiveSessions;

    public ValueTask DisposeAsync() => new(StopAsync());

    public async Task ServeForwardedAsync(ForwardedLogin login, Socket socket, Func<ForwardRefusal?, Task> answer)
    {
        if (!await _listeners.RunForwardedAsync(token => new ManageSieveSession(this, socket, login.Client, token).RunForwardedAsync(login, answer)))
            await answer(new ForwardRefusal("TRYLATER", "Server shutting down"));
    }
}
