using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Appliance.Cluster;

/// <summary>
/// The tie-breaking arbiter of a pair without a fencing device (<c>appliance witness</c>, in
/// the spirit of corosync-qnetd), and the client the nodes use. A node that finds its peer
/// silent claims the pair; the witness grants the claim to at most one node at a time, as a
/// lease the holder renews while it runs alone. One authenticated UDP datagram each way:
/// request <c>magic, op (claim|release), pair, node, nonce</c>; reply <c>magic, nonce, granted,
/// holder, lease ms left</c>; each with an HMAC-SHA256 (16 bytes) on the cluster secret.
/// </summary>
public sealed class WitnessServer : IAsyncDisposable
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("witness");
    private readonly Socket _socket;
    private readonly string _secret;
    private readonly TimeSpan _lease;
    private readonly Dictionary<string, (string Holder, long Until)> _grants = [];
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;

    public IPEndPoint Endpoint => (IPEndPoint)_socket.LocalEndPoint!;

    public WitnessServer(IPEndPoint listen, string secret, TimeSpan lease)
    {
        if (secret.Length < 16) throw new InvalidOperationException("the witness needs the pair's Cluster:Secret (16 characters or more)");
        _secret = secret;
        _lease = lease;
        _socket = new Socket(listen.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        _socket.Bind(listen);
        _loop = Task.Run(ServeAsync);
        Log.Info("witness listening on {0}, lease {1} s", Endpoint, lease.TotalSeconds);
    }

    private async Task ServeAsync()
    {
        var buffer = new byte[2048];
        EndPoint any = new IPEndPoint(_socket.AddressFamily == AddressFamily.InterNetworkV6 ? IPAddress.IPv6Any : IPAddress.Any, 0);
        while (!_stop.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try { received = await _socket.ReceiveFromAsync(buffer, SocketFlags.None, any, _stop.Token); }
            catch (OperationCanceledException) { return; }
            catch (SocketException) { continue; }
            if (WitnessWire.ReadRequest(buffer.AsSpan(0, received.ReceivedBytes), _secret) is not { } request) continue;
            var reply = Decide(request);
            try { await _socket.SendToAsync(WitnessWire.Reply(request.Nonce, reply.Granted, reply.Holder, reply.LeftMs, _secret), SocketFlags.None, received.RemoteEndPoint); }
            catch (SocketException) { }
        }
    }

    private (bool Granted, string Holder, long LeftMs) Decide(WitnessWire.Request r)
    {
        var now = Stopwatch.GetTimestamp();
        _grants.TryGetValue(r.Pair, out var g);
        var live = g.Holder is not null && now < g.Until;
        if (r.Release)
        {
            if (live && g.Holder == r.Node)
            {
                _grants.Remove(r.Pair);
                Log.Info("pair {0}: {1} released its claim", r.Pair, r.Node);
            }
            return (false, "", 0);
        }
        if (live && g.Holder != r.Node)
        {
            Log.Warn("pair {0}: claim of {1} refused, {2} holds it", r.Pair, r.Node, g.Holder);
            return (false, g.Holder!, (long)Stopwatch.GetElapsedTime(now, g.Until).TotalMilliseconds);
        }
        if (!live) Log.Warn("pair {0}: granted to {1}", r.Pair, r.Node);
        _grants[r.Pair] = (r.Node, now + (long)(_lease.TotalSeconds * Stopwatch.Frequency));
        return (true, r.Node, (long)_lease.TotalMilliseconds);
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _socket.Dispose();
        try { await _loop; } catch (Exception) { /* stopping */ }
    }
}

/// <summary>A node's side: ask the witness for the pair (or give it back).</summary>
internal sealed class WitnessClient(string witness, string secret, string self, string peer)
{
    private readonly string _pair = string.CompareOrdinal(self, peer) < 0 ? self + "+" + peer : peer + "+" + self;

    /// <summary>True when granted; false when refused or when the witness does not answer within <paramref name="timeout"/>.</summary>
    public async Task<(bool Granted, string Detail)> ClaimAsync(TimeSpan timeout, CancellationToken ct) => await AskAsync(release: false, timeout, ct);

    public async Task ReleaseAsync(CancellationToken ct) => await AskAsync(release: true, TimeSpan.FromSeconds(1), ct);

    private async Task<(bool Granted, string Detail)> AskAsync(bool release, TimeSpan timeout, CancellationToken ct)
    {
        var endpoint = ParseEndpoint(witness);
        using var socket = new Socket(endpoint.AddressFamily, SocketType.Dgram, ProtocolType.Udp);
        var nonce = RandomNumberGenerator.GetBytes(16);
        var request = WitnessWire.Request.Encode(release, _pair, self, nonce, secret);
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        var buffer = new byte[2048];
        try
        {
            // Resent every 200 ms within the timeout: a datagram may be lost.
            while (true)
            {
                await socket.SendToAsync(request, SocketFlags.None, endpoint, deadline.Token);
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(deadline.Token);
                wait.CancelAfter(200);
                try
                {
                    var n = await socket.ReceiveAsync(buffer, SocketFlags.None, wait.Token);
                    if (WitnessWire.ReadReply(buffer.AsSpan(0, n), nonce, secret) is { } reply)
                        return (reply.Granted, reply.Granted ? $"witness {witness} granted the pair" : $"witness {witness} refused: {reply.Holder} holds the pair");
                }
                catch (OperationCanceledException) when (!deadline.IsCancellationRequested) { }
                catch (SocketException) { await Task.Delay(200, deadline.Token); }
            }
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            return (false, $"witness {witness} did not answer");
        }
    }

    public static IPEndPoint ParseEndpoint(string text) =>
        IPEndPoint.TryParse(text, out var ep) && ep.Port != 0 ? ep : throw new FormatException($"Cluster:Witness must be IP:PORT, not '{text}'");
}

internal static class WitnessWire
{
    private const uint RequestMagic = 0x41505752; // "APWR"
    private const uint ReplyMagic = 0x41505741;   // "APWA"

    public sealed record Request(bool Release, string Pair, string Node, byte[] Nonce)
    {
        public static byte[] Encode(bool release, string pair, string node, byte[] nonce, string secret) =>
            ClusterWire.Sign(ClusterWire.Encode(w => { w.Write(RequestMagic); w.Write(release); w.Write(pair); w.Write(node); w.Write(nonce); }), secret);
    }

    public sealed record ReplyBody(bool Granted, string Holder, long LeftMs);

    public static Request? ReadRequest(ReadOnlySpan<byte> datagram, string secret)
    {
        if (ClusterWire.Verified(datagram, secret) is not { } body) return null;
        try
        {
            using var r = ClusterWire.Reader(body);
            if (r.ReadUInt32() != RequestMagic) return null;
            return new Request(r.ReadBoolean(), r.ReadString(), r.ReadString(), r.ReadBytes(16));
        }
        catch (EndOfStreamException) { return null; }
    }

    public static byte[] Reply(byte[] nonce, bool granted, string holder, long leftMs, string secret) =>
        ClusterWire.Sign(ClusterWire.Encode(w => { w.Write(ReplyMagic); w.Write(nonce); w.Write(granted); w.Write(holder); w.Write(leftMs); }), secret);

    public static ReplyBody? ReadReply(ReadOnlySpan<byte> datagram, byte[] nonce, string secret)
    {
        if (ClusterWire.Verified(datagram, secret) is not { } body) return null;
        try
        {
            using var r = ClusterWire.Reader(body);
            if (r.ReadUInt32() != ReplyMagic || !r.ReadBytes(16).AsSpan().SequenceEqual(nonce)) return null;
            return new ReplyBody(r.ReadBoolean(), r.ReadString(), r.ReadInt64());
        }
        catch (EndOfStreamException) { return null; }
    }
}
