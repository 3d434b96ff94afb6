using System.Buffers.Binary;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace Appliance.Cluster;

/// <summary>
/// Framing and mutual authentication of the TCP connections between the two nodes
/// (replication, internal delivery, forwarded commands). A frame is <c>[u32 length][u8 type][payload]</c>.
/// A connection starts with a challenge-response on the shared <see cref="ClusterOptions.Secret"/>:
/// each side proves it knows the secret over both nonces, so neither a stranger nor a replay
/// of an old conversation gets a replication stream or can inject records.
/// </summary>
internal static class ClusterWire
{
    /// <summary>A batch of records may carry a message up to the SMTP size limit, and then some.</summary>
    public const int MaxFrame = 256 << 20;
    private const string Magic = "appliance-cluster/1";

    public static async Task WriteFrameAsync(Stream s, FrameType type, ReadOnlyMemory<byte> payload, CancellationToken ct)
    {
        var header = new byte[5];
        BinaryPrimitives.WriteUInt32LittleEndian(header, (uint)payload.Length);
        header[4] = (byte)type;
        await s.WriteAsync(header, ct);
        if (payload.Length > 0) await s.WriteAsync(payload, ct);
        await s.FlushAsync(ct);
    }

    /// <summary>The next frame, or null at a clean end of stream.</summary>
    public static async Task<(FrameType Type, byte[] Payload)?> ReadFrameAsync(Stream s, CancellationToken ct)
    {
        var header = new byte[5];
        var n = await s.ReadAtLeastAsync(header, 5, throwOnEndOfStream: false, ct);
        if (n == 0) return null;
        if (n < 5) throw new IOException("cluster connection closed inside a frame header");
        var length = BinaryPrimitives.ReadUInt32LittleEndian(header);
        if (length > MaxFrame) throw new InvalidDataException($"cluster frame of {length} bytes is too large");
        var payload = new byte[length];
        await s.ReadExactlyAsync(payload, ct);
        return ((FrameType)header[4], payload);
    }

    /// <summary>The next frame within <paramref name="within"/> (a silent peer is a dead link: cut links send no RST).</summary>
    public static async Task<(FrameType Type, byte[] Payload)?> ReadFrameAsync(Stream s, TimeSpan within, CancellationToken ct)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(within);
        return await ReadFrameAsync(s, timeout.Token);
    }

    private const int DatagramMacBytes = 16;

    /// <summary>A datagram (heartbeat, witness request): the body and a truncated HMAC-SHA256 on the cluster secret.</summary>
    public static byte[] Sign(byte[] body, string secret) =>
        [.. body, .. HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body).AsSpan(0, DatagramMacBytes)];

    /// <summary>The body of an authentic datagram, or null.</summary>
    public static byte[]? Verified(ReadOnlySpan<byte> datagram, string secret)
    {
        if (datagram.Length <= DatagramMacBytes) return null;
        var body = datagram[..^DatagramMacBytes];
        var mac = HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), body);
        return CryptographicOperations.FixedTimeEquals(mac.AsSpan(0, DatagramMacBytes), datagram[^DatagramMacBytes..]) ? body.ToArray() : null;
    }

    public static byte[] Encode(Action<BinaryWriter> write)
    {
        using var ms = new MemoryStream();
        using (var w = new BinaryWriter(ms, Encoding.UTF8, leaveOpen: true)) write(w);
        return ms.ToArray();
    }

    public static BinaryReader Reader(byte[] payload) => new(new MemoryStream(payload, writable: false), Encoding.UTF8);

    /// <summary>Client side: proves itself and checks the server, then names the purpose of the connection.</summary>
    public static async Task ClientHandshakeAsync(Stream s, string secret, string self, string expectedPeer, FrameType purpose, CancellationToken ct)
    {
        var clientNonce = RandomNumberGenerator.GetBytes(16);
        await WriteFrameAsync(s, FrameType.Hello, Encode(w => { w.Write(self); w.Write(clientNonce); }), ct);
        var reply = await ReadFrameAsync(s, ct) ?? throw new IOException("peer closed the connection during the handshake");
        if (reply.Type != FrameType.Hello) throw new InvalidDataException("bad handshake reply");
        using var r = Reader(reply.Payload);
        var server = r.ReadString();
        var serverNonce = r.ReadBytes(16);
        var serverProof = r.ReadBytes(32);
        if (server != expectedPeer) throw new InvalidDataException($"connected to node '{server}', expected '{expectedPeer}'");
        if (!CryptographicOperations.FixedTimeEquals(serverProof, Proof(secret, "server", server, clientNonce, serverNonce)))
            throw new InvalidDataException($"node '{server}' does not know the cluster secret");
        await WriteFrameAsync(s, purpose, Proof(secret, "client", self, serverNonce, clientNonce), ct);
    }

    /// <summary>Server side: returns the purpose the authenticated client asked for.</summary>
    public static async Task<FrameType> ServerHandshakeAsync(Stream s, string secret, string self, string expectedPeer, CancellationToken ct)
    {
        var hello = await ReadFrameAsync(s, ct) ?? throw new IOException("closed before the handshake");
        if (hello.Type != FrameType.Hello) throw new InvalidDataException("expected a handshake");
        using var r = Reader(hello.Payload);
        var client = r.ReadString();
        var clientNonce = r.ReadBytes(16);
        if (client != expectedPeer) throw new InvalidDataException($"connection from unknown node '{client}'");
        var serverNonce = RandomNumberGenerator.GetBytes(16);
        await WriteFrameAsync(s, FrameType.Hello, Encode(w => { w.Write(self); w.Write(serverNonce); w.Write(Proof(secret, "server", self, clientNonce, serverNonce)); }), ct);
        var proof = await ReadFrameAsync(s, ct) ?? throw new IOException("closed during the handshake");
        if (!CryptographicOperations.FixedTimeEquals(proof.Payload, Proof(secret, "client", client, serverNonce, clientNonce)))
            throw new InvalidDataException($"node '{client}' does not know the cluster secret");
        return proof.Type;
    }

    private static byte[] Proof(string secret, string role, string name, byte[] theirNonce, byte[] ourNonce) =>
        HMACSHA256.HashData(Encoding.UTF8.GetBytes(secret), Encode(w => { w.Write(Magic); w.Write(role); w.Write(name); w.Write(theirNonce); w.Write(ourNonce); }));

    /// <summary>
    /// Connects to the peer's cluster port over one link (from this node's address on it) and
    /// authenticates for <paramref name="purpose"/>. The stream owns the socket.
    /// </summary>
    public static async Task<NetworkStream> ConnectAsync(ClusterOptions options, string self, LinkOptions link, FrameType purpose, CancellationToken ct)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
        try
        {
            Tune(socket);
            socket.Bind(new System.Net.IPEndPoint(System.Net.IPAddress.Parse(link.Local), 0));
            await socket.ConnectAsync(new System.Net.IPEndPoint(System.Net.IPAddress.Parse(link.Peer), options.ReplicationPort), ct);
            var stream = new NetworkStream(socket, ownsSocket: true);
            await ClientHandshakeAsync(stream, options.Secret, self, options.Peer, purpose, ct);
            return stream;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    public static void Tune(Socket socket)
    {
        socket.NoDelay = true;
        // A cut link is silent (no RST): keepalives are a backstop, the protocols time out on their own.
        socket.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.KeepAlive, true);
    }

    /// <summary>
    /// A connection carrying a forwarded IMAP/POP3 session has no protocol timeout of its own on
    /// the front node (an idle IMAP client may wait 30 minutes), so the kernel must notice a
    /// silent peer: keepalive probes after 15 s idle (every 5 s, 4 tries), and unacknowledged
    /// data abandoned after 30 s (TCP_USER_TIMEOUT).
    /// </summary>
    public static void TuneForSessions(Socket socket)
    {
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveTime, 15);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveInterval, 5);
        socket.SetSocketOption(SocketOptionLevel.Tcp, SocketOptionName.TcpKeepAliveRetryCount, 4);
        if (OperatingSystem.IsLinux()) socket.SetRawSocketOption(IpProtoTcp, TcpUserTimeout, BitConverter.GetBytes(30_000));
    }

    private const int IpProtoTcp = 6;
    private const int TcpUserTimeout = 18; // linux/tcp.h
}

internal enum FrameType : byte
{
    Hello = 1,
    // Purposes (the frame that ends the handshake).
    Replicate = 10,
    Command = 11,
    Deliver = 12,
    Session = 13,        // an IMAP or POP3 session forwarded after login (the protocol follows the reply)
    Provision = 14,      // a provisioning request for the node holding the monitor unit (answered by Reply)
    // Replication stream.
    ReplicaState = 20,   // replica → primary: unit, last seq, generation history tail
    Records = 21,        // primary → replica: journal records
    Ack = 22,            // replica → primary: durable up to seq
    Ping = 23,           // primary → replica when idle (answered by Ack)
    InSync = 24,         // primary → replica: caught up at seq (the replica is consistent again)
    Refused = 25,        // either way: a one-line reason, then close
    SnapshotBegin = 26,  // primary → replica: a full copy follows, taken at seq (the journal no longer reaches the replica)
    SnapshotChunk = 27,  // primary → replica: part of one file of the copy (path, offset, bytes)
    SnapshotEnd = 28,    // primary → replica: the copy is complete: install it, records after its seq follow
    Reply = 30,
}
