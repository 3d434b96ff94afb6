using System.Net;
using System.Net.Sockets;
using Appliance.Directory;

namespace Appliance.Hosting;

/// <summary>
/// A login accepted on one node of a pair for a mailbox whose partition is active on the other:
/// the session goes on there, over the cluster link, already authenticated. <see cref="Tag"/>
/// is the IMAP command tag the login response must carry (empty for POP3).
/// </summary>
public sealed record ForwardedLogin(string Protocol, MailUser User, IPAddress Client, bool Tls, string Tag);

/// <summary>Why the node holding the mailbox would not take the session: the protocol's response code and text.</summary>
public sealed record ForwardRefusal(string? Code, string Text);

/// <summary>
/// The front side (the node the client connected to): opens the session on the peer. Set on
/// the IMAP and POP3 servers by the host when it runs in a pair.
/// </summary>
public interface ISessionForwarder
{
    /// <summary>Whether the mailbox's partition is active on the other node right now.</summary>
    bool ServedByPeer(MailUser user);

    /// <summary>
    /// Hands the login to the peer. On acceptance the returned session's stream carries the
    /// protocol from the login response on; a refusal (mailbox locked, too many sessions) says
    /// why. Throws <see cref="Store.UnitUnavailableException"/> when the peer cannot be reached.
    /// </summary>
    Task<ForwardedSession> ForwardAsync(ForwardedLogin login, CancellationToken ct);
}

/// <summary>The back side (the node holding the mailbox): runs sessions forwarded by the peer.</summary>
public interface IForwardedSessionHost
{
    /// <summary>
    /// Runs one forwarded session on <paramref name="socket"/>. Before writing to it, calls
    /// <paramref name="answer"/> once: null when it takes the session (it then writes the login
    /// response itself), or the refusal, after which it returns.
    /// </summary>
    Task ServeForwardedAsync(ForwardedLogin login, Socket socket, Func<ForwardRefusal?, Task> answer);
}

/// <summary>An accepted forwarded session (its stream) or the peer's refusal.</summary>
public sealed class ForwardedSession(string node, Stream? stream, ForwardRefusal? refusal, CancellationToken peerLost) : IAsyncDisposable
{
    /// <summary>The node that runs the session.</summary>
    public string Node { get; } = node;

    public ForwardRefusal? Refusal { get; } = refusal;

    /// <summary>The connection to the peer once accepted, for a caller that speaks the protocol itself rather than relaying a client.</summary>
    internal Stream? Stream => stream;

    /// <summary>Cancelled when the peer is declared dead.</summary>
    internal CancellationToken PeerLost => peerLost;

    /// <summary>
    /// Copies bytes both ways between the client and the peer until either side closes, the
    /// server stops or the peer is declared dead. The client's pipe may already hold commands
    /// pipelined after the login: they go first. Returns the bytes sent each way.
    /// </summary>
    internal async Task<(long Up, long Down)> PumpAsync(SessionConnection client, CancellationToken stopping)
    {
        var backend = stream ?? throw new InvalidOperationException("the session was refused");
        using var both = CancellationTokenSource.CreateLinkedTokenSource(stopping, peerLost);
        long up = 0, down = 0;
        var toPeer = Task.Run(async () =>
        {
            try
            {
                while (true)
                {
                    var read = await client.Reader.ReadAsync(both.Token);
                    foreach (var segment in read.Buffer)
                    {
                        await backend.WriteAsync(segment, both.Token);
                        up += segment.Length;
                    }
                    client.Reader.AdvanceTo(read.Buffer.End);
                    if (read.IsCompleted) return;
                }
            }
            finally { await both.CancelAsync(); }
        });
        var toClient = Task.Run(async () =>
        {
            var buffer = new byte[16 * 1024];
            try
            {
                int n;
                while ((n = await backend.ReadAsync(buffer, both.Token)) > 0)
                {
                    down += n;
                    var flushed = await client.Writer.WriteAsync(buffer.AsMemory(0, n), both.Token);
                    if (flushed.IsCompleted) return;
                }
            }
            finally { await both.CancelAsync(); }
        });
        try { await Task.WhenAll(toPeer, toClient); }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // One side closed or failed; the other was cancelled with it. The caller closes the client.
        }
        return (up, down);
    }

    public ValueTask DisposeAsync() => stream?.DisposeAsync() ?? ValueTask.CompletedTask;
}
