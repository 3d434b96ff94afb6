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
/// list of running sessions so <see cref="StopAsync"/> can end them.
/// </summary>
public sealed class Pop3Server : IAsyncDisposable
{
    private readonly Pop3Options _options;
    private readonly CancellationTokenSource _stopping = new();
    private readonly ConcurrentDictionary<string, byte> _lockedMailboxes = new(StringComparer.Ordinal);
    private readonly Dictionary<IPAddress, int> _connectionsPerAddress = [];
    private readonly ConcurrentDictionary<long, Task> _sessions = new();
    private readonly List<(TcpListener Listener, Task AcceptLoop, CancellationTokenSource Lifetime)> _listeners = [];
    private long _nextSessionId;

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
    }

    internal IMailStore Store { get; }

    internal IMailAuthenticator Authenticator { get; }

    /// <summary>Certificate for STLS and POP3S; null disables both.</summary>
    internal X509Certificate2? Certificate { get; }

    internal bool DevMode { get; }

    internal string Hostname { get; }

    internal NLog.ILogger Logger { get; }

    internal TimeSpan IdleTimeout => TimeSpan.FromSeconds(Math.Max(1, _options.IdleTimeoutSeconds));

    /// <summary>
    /// Binds <paramref name="endPoint"/> (port 0 = ephemeral) and starts accepting. Returns the bound
    /// endpoint. Cancelling <paramref name="cancellationToken"/> stops this listener.
    /// </summary>
    public Task<IPEndPoint> StartAsync(IPEndPoint endPoint, bool implicitTls, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_stopping.IsCancellationRequested, this);
        if (implicitTls && Certificate is null)
        {
            throw new InvalidOperationException("POP3S needs a certificate");
        }

        var listener = new TcpListener(endPoint);
        if (endPoint.AddressFamily == AddressFamily.InterNetworkV6 && endPoint.Address.Equals(IPAddress.IPv6Any))
        {
            listener.Server.DualMode = true;
        }

        listener.Start(backlog: 512);
        var bound = (IPEndPoint)listener.LocalEndpoint;
        var lifetime = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token, cancellationToken);
        lock (_listeners)
        {
            _listeners.Add((listener, AcceptLoopAsync(listener, implicitTls, lifetime.Token), lifetime));
        }

        return Task.FromResult(bound); // the host logs every bound endpoint once
    }

    /// <summary>Stops accepting, ends every session without entering UPDATE, and waits for them.</summary>
    public async Task StopAsync()
    {
        if (!_stopping.IsCancellationRequested)
        {
            await _stopping.CancelAsync();
        }

        (TcpListener Listener, Task AcceptLoop, CancellationTokenSource Lifetime)[] listeners;
        lock (_listeners)
        {
            listeners = [.. _listeners];
            _listeners.Clear();
        }

        foreach (var (listener, _, _) in listeners)
        {
            listener.Stop();
        }

        await Task.WhenAll(listeners.Select(l => l.AcceptLoop));
        await Task.WhenAll(_sessions.Values);
        foreach (var (_, _, lifetime) in listeners)
        {
            lifetime.Dispose();
        }
    }

    public ValueTask DisposeAsync() => new(StopAsync());

    internal bool TryLockMailbox(string key) => _lockedMailboxes.TryAdd(key, 0);

    internal void ReleaseMailbox(string key) => _lockedMailboxes.TryRemove(key, out _);

    private async Task AcceptLoopAsync(TcpListener listener, bool implicitTls, CancellationToken token)
    {
        using var registration = token.Register(listener.Stop);
        while (!token.IsCancellationRequested)
        {
            Socket socket;
            try
            {
                socket = await listener.AcceptSocketAsync(token);
            }
            catch (Exception ex) when (ex is OperationCanceledException or ObjectDisposedException || ex is SocketException && token.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException ex)
            {
                // ECONNABORTED and friends: one failed accept must not end the loop.
                Logger.Warn(ex, "pop3 accept failed");
                continue;
            }

            if (!TryAdmit(socket, implicitTls, out var address))
            {
                continue;
            }

            long id = Interlocked.Increment(ref _nextSessionId);
            var task = RunSessionAsync(id, socket, address, implicitTls, token);
            _sessions[id] = task;
            if (task.IsCompleted)
            {
                _sessions.TryRemove(id, out _);
            }
        }
    }

    /// <summary>Per-connection setup that must never end the accept loop; false when the connection was refused or already gone.</summary>
    private bool TryAdmit(Socket socket, bool implicitTls, out IPAddress address)
    {
        try
        {
            socket.NoDelay = true;
            address = ((IPEndPoint)socket.RemoteEndPoint!).Address;
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            socket.Dispose();
            address = IPAddress.None;
            return false;
        }

        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }

        if (!TryAddConnection(address))
        {
            Logger.Info($"pop3 session remote={address} refused: more than {_options.MaxConnectionsPerIp} connections");
            _ = RefuseAsync(socket, implicitTls);
            return false;
        }

        return true;
    }

    private async Task RunSessionAsync(long id, Socket socket, IPAddress address, bool implicitTls, CancellationToken token)
    {
        await Task.Yield();
        try
        {
            var session = new Pop3Session(this, socket, address, token);
            await session.RunAsync(implicitTls);
        }
        catch (Exception ex)
        {
            // RunAsync handles protocol and network errors; this is a last guard so one broken
            // session can never fault StopAsync.
            Logger.Error(ex, "pop3 session from {0} ended abnormally", address);
        }
        finally
        {
            socket.Dispose();
            RemoveConnection(address);
            _sessions.TryRemove(id, out _);
        }
    }

    /// <summary>Over the per-address limit: a plain connection gets a reason, a TLS one just a close.</summary>
    private static async Task RefuseAsync(Socket socket, bool implicitTls)
    {
        using (socket)
        {
            try
            {
                if (!implicitTls)
                {
                    using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                    await socket.SendAsync("-ERR [SYS/TEMP] Too many connections from your address\r\n"u8.ToArray(), SocketFlags.None, cts.Token);
                }

                socket.Shutdown(SocketShutdown.Both);
            }
            catch (Exception ex) when (ex is SocketException or OperationCanceledException or ObjectDisposedException)
            {
            }
        }
    }

    private bool TryAddConnection(IPAddress address)
    {
        lock (_connectionsPerAddress)
        {
            _connectionsPerAddress.TryGetValue(address, out int count);
            if (_options.MaxConnectionsPerIp > 0 && count >= _options.MaxConnectionsPerIp)
            {
                return false;
            }

            _connectionsPerAddress[address] = count + 1;
            return true;
        }
    }

    private void RemoveConnection(IPAddress address)
    {
        lock (_connectionsPerAddress)
        {
            if (_connectionsPerAddress.TryGetValue(address, out int count) && count > 1)
            {
                _connectionsPerAddress[address] = count - 1;
            }
            else
            {
                _connectionsPerAddress.Remove(address);
            }
        }
    }
}
