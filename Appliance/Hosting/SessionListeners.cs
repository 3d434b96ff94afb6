using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;

namespace Appliance.Hosting;

/// <summary>
/// The TCP side that POP3 and IMAP servers share: any number of listening endpoints (plain or
/// implicit TLS), an accept loop per endpoint that no single failed connection can end, a
/// per-client-address connection limit, and the set of running sessions so
/// <see cref="StopAsync"/> can wait for them.
/// </summary>
/// <param name="protocol">Name used in log lines ("pop3", "imap").</param>
/// <param name="maxConnectionsPerIp">Simultaneous connections from one address; 0 = unlimited.</param>
/// <param name="refusal">Line sent to a plain connection refused over the limit (a TLS one is just closed).</param>
/// <param name="runSession">Runs one session to its end; the socket is disposed afterwards.</param>
internal sealed class SessionListeners(
    string protocol,
    int maxConnectionsPerIp,
    byte[] refusal,
    NLog.ILogger logger,
    Func<Socket, IPAddress, bool, CancellationToken, Task> runSession)
{
    private readonly CancellationTokenSource _stopping = new();
    private readonly Dictionary<IPAddress, int> _connectionsPerAddress = [];
    private readonly ConcurrentDictionary<long, Task> _sessions = new();
    private readonly List<(TcpListener Listener, Task AcceptLoop, CancellationTokenSource Lifetime)> _listeners = [];
    private long _nextSessionId;

    /// <summary>Sessions running now, forwarded ones included.</summary>
    public int ActiveSessions => _sessions.Count;

    /// <summary>Cancelled when the server stops: sessions end on it.</summary>
    public CancellationToken Stopping => _stopping.Token;

    /// <summary>Binds <paramref name="endPoint"/> (port 0 = ephemeral), starts accepting and returns the bound endpoint.</summary>
    public IPEndPoint Start(IPEndPoint endPoint, bool implicitTls, CancellationToken cancellationToken)
    {
        ObjectDisposedException.ThrowIf(_stopping.IsCancellationRequested, this);
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

        return bound;
    }

    /// <summary>Stops accepting, cancels every session and waits for them to end.</summary>
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

    /// <summary>
    /// Runs a session that did not arrive on our listeners (forwarded by the other node of a
    /// pair): it ends when the server stops, and <see cref="StopAsync"/> waits for it. False,
    /// without running it, when the server is already stopping.
    /// </summary>
    public async Task<bool> RunForwardedAsync(Func<CancellationToken, Task> session)
    {
        if (_stopping.IsCancellationRequested) return false;
        long id = Interlocked.Increment(ref _nextSessionId);
        var task = session(_stopping.Token);
        _sessions[id] = task;
        try
        {
            await task;
        }
        catch (Exception ex)
        {
            logger.Error(ex, $"{protocol} forwarded session ended abnormally");
        }
        finally
        {
            _sessions.TryRemove(id, out _);
        }
        return true;
    }

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
                logger.Warn(ex, $"{protocol} accept failed");
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
            logger.Info($"{protocol} session remote={address} refused: more than {maxConnectionsPerIp} connections");
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
            await runSession(socket, address, implicitTls, token);
        }
        catch (Exception ex)
        {
            // Sessions handle protocol and network errors; this is a last guard so one broken
            // session can never fault StopAsync.
            logger.Error(ex, $"{protocol} session from {address} ended abnormally");
        }
        finally
        {
            socket.Dispose();
            RemoveConnection(address);
            _sessions.TryRemove(id, out _);
        }
    }

    private async Task RefuseAsync(Socket socket, bool implicitTls)
    {
        using (socket)
        {
            try
            {
                if (!implicitTls)
                {
                    using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
                    await socket.SendAsync(refusal, SocketFlags.None, cts.Token);
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
            if (maxConnectionsPerIp > 0 && count >= maxConnectionsPerIp)
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
