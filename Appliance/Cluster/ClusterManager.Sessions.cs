using System.Net;
using System.Net.Sockets;
using Appliance.Directory;
using Appliance.Hosting;
using Appliance.Store;

namespace Appliance.Cluster;

/// <summary>
/// IMAP and POP3 sessions forwarded after login: a client that reaches either node can read a
/// mailbox whose partition is active on the other one. The front node authenticates the
/// client, then opens a cluster connection (authenticated with the pair's secret) naming the
/// user, and relays the bytes; the node holding the partition runs the session as if the
/// client had logged in there. A forwarded session ends when either side closes, when the
/// partition moves (the back node ends it with BYE or -ERR) or when the peer is declared dead.
/// </summary>
public sealed partial class ClusterManager : ISessionForwarder
{
    private readonly Dictionary<string, IForwardedSessionHost> _sessionHosts = new(StringComparer.Ordinal);
    private CancellationTokenSource _peerLost = new();

    /// <summary>Registers the server that runs forwarded sessions of <paramref name="protocol"/> ("imap", "pop3") here.</summary>
    public void HostSessions(string protocol, IForwardedSessionHost host)
    {
        lock (_sessionHosts) _sessionHosts[protocol] = host;
    }

    public bool ServedByPeer(MailUser user) => Serves(user.Partition);

    public async Task<ForwardedSession> ForwardAsync(ForwardedLogin login, CancellationToken ct)
    {
        CancellationToken peerLost;
        lock (_gate) peerLost = _peerLost.Token;
        var stream = await ConnectToPeerAsync(FrameType.Session, $"{login.Protocol} session of {login.User.Address}", ct);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(TimeSpan.FromSeconds(30));
            await ClusterWire.WriteFrameAsync(stream, FrameType.Session, ClusterWire.Encode(w =>
            {
                w.Write(login.Protocol); WriteUser(w, login.User); w.Write(login.Client.ToString()); w.Write(login.Tls); w.Write(login.Tag);
            }), timeout.Token);
            var reply = await ClusterWire.ReadFrameAsync(stream, timeout.Token) ?? throw new IOException($"{_options.Peer} closed the connection");
            using var r = ClusterWire.Reader(reply.Payload);
            ForwardRefusal? refusal = r.ReadBoolean() ? null : new ForwardRefusal(r.ReadBoolean() ? r.ReadString() : null, r.ReadString());
            if (refusal is not null)
            {
                await stream.DisposeAsync();
                return new ForwardedSession(_options.Peer, null, refusal, peerLost);
            }
            // From here on the connection carries the protocol itself: the relay is the only
            // timeout-free reader, so a silent peer must show up as a dead socket or a dead node.
            ClusterWire.TuneForSessions(stream.Socket);
            Log.Debug("{0} session of {1} from {2} forwarded to {3}", login.Protocol, login.User.Address, login.Client, _options.Peer);
            return new ForwardedSession(_options.Peer, stream, null, peerLost);
        }
        catch (Exception ex) when (ex is IOException or SocketException or InvalidDataException or EndOfStreamException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            await stream.DisposeAsync();
            throw new UnitUnavailableException($"{login.Protocol} session of {login.User.Address}: {_options.Peer}: {ex.Message}");
        }
    }

    /// <summary>Runs a session the peer forwarded; the socket stays open until the session ends.</summary>
    private async Task ServeSessionAsync(Stream stream, Socket socket)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        var frame = await ClusterWire.ReadFrameAsync(stream, timeout.Token) ?? throw new IOException("closed before the login");
        ForwardedLogin login;
        using (var r = ClusterWire.Reader(frame.Payload))
        {
            var protocol = r.ReadString();
            var user = ReadUser(r);
            login = new ForwardedLogin(protocol, user, IPAddress.Parse(r.ReadString()), r.ReadBoolean(), r.ReadString());
        }
        IForwardedSessionHost? host;
        lock (_sessionHosts) _sessionHosts.TryGetValue(login.Protocol, out host);
        var answered = false;
        async Task Answer(ForwardRefusal? refusal)
        {
            answered = true;
            await ClusterWire.WriteFrameAsync(stream, FrameType.Reply, ClusterWire.Encode(w =>
            {
                w.Write(refusal is null);
                if (refusal is null) return;
                w.Write(refusal.Code is not null);
                if (refusal.Code is not null) w.Write(refusal.Code);
                w.Write(refusal.Text);
            }), timeout.Token);
        }
        if (host is null)
        {
            await Answer(new ForwardRefusal(null, $"{login.Protocol} is not served on {_self}"));
            return;
        }
        ClusterWire.TuneForSessions(socket);
        await host.ServeForwardedAsync(login, socket, Answer);
        if (!answered) await Answer(new ForwardRefusal(null, $"{_self} could not take the session"));
    }

    /// <summary>The peer was declared dead: sessions forwarded to it end (their clients reconnect).</summary>
    private void EndForwardedSessions()
    {
        CancellationTokenSource lost;
        lock (_gate)
        {
            lost = _peerLost;
            _peerLost = new CancellationTokenSource();
        }
        _ = lost.CancelAsync();
    }
}
