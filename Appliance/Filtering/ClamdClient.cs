using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Appliance.Filtering;

/// <summary>What clamd said of a message: clean, infected with a named signature, or nothing usable (down, timed out, an error).</summary>
public sealed record ScanVerdict(ScanOutcome Outcome, string Detail)
{
    /// <summary>How the transaction's log line says it: av=clean, av=infected(Name), av=error(why), av=skipped(why).</summary>
    public string LogField => Outcome switch
    {
        ScanOutcome.Clean => "av=clean",
        ScanOutcome.Infected => $"av=infected({Detail})",
        ScanOutcome.Skipped => $"av=skipped({Detail})",
        _ => $"av=error({Detail})",
    };
}

public enum ScanOutcome { Clean, Infected, Error, Skipped }

/// <summary>
/// ClamAV's clamd over its socket protocol (clamd(8)): INSTREAM for a message, sent in chunks
/// of a 4-byte big-endian length and the bytes, ended by a zero length; the answer is
/// "stream: OK", "stream: NAME FOUND" or "… ERROR", ended by a NUL (the z-prefixed commands).
/// A new connection per scan: clamd serves each on a thread of its own, and a connection
/// left idle is closed by it (IdleTimeout). <c>Antivirus:Clamd</c> is "unix:/path" or "host:port".
/// </summary>
public sealed class ClamdClient(string address, TimeSpan timeout)
{
    private const int Chunk = 64 * 1024;

    public string Address { get; } = address;

    /// <summary>Scans <paramref name="message"/>; never throws for clamd's sake (a failure is an Error verdict).</summary>
    public async Task<ScanVerdict> ScanAsync(ReadOnlyMemory<byte> message, CancellationToken ct)
    {
        try
        {
            var reply = await ExchangeAsync("zINSTREAM\0"u8.ToArray(), async stream =>
            {
                var header = new byte[4];
                for (var offset = 0; offset < message.Length; offset += Chunk)
                {
                    var part = message.Slice(offset, Math.Min(Chunk, message.Length - offset));
                    BinaryPrimitives.WriteUInt32BigEndian(header, (uint)part.Length);
                    await stream.WriteAsync(header, ct);
                    await stream.WriteAsync(part, ct);
                }
                BinaryPrimitives.WriteUInt32BigEndian(header, 0);
                await stream.WriteAsync(header, ct);
            }, ct);
            return Parse(reply);
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or FormatException && !ct.IsCancellationRequested)
        {
            return new ScanVerdict(ScanOutcome.Error, ex is OperationCanceledException ? $"clamd at {Address} did not answer within {timeout.TotalSeconds:F0} s" : $"clamd at {Address}: {ex.Message}");
        }
    }

    /// <summary>PING → PONG: clamd is up and serving.</summary>
    public async Task<string> PingAsync(CancellationToken ct)
    {
        var reply = await ExchangeAsync("zPING\0"u8.ToArray(), _ => Task.CompletedTask, ct);
        return reply == "PONG" ? reply : throw new IOException($"clamd answered \"{reply}\" to PING");
    }

    /// <summary>"stream: OK" / "stream: Eicar-Test-Signature FOUND" / "INSTREAM size limit exceeded. ERROR".</summary>
    internal static ScanVerdict Parse(string reply)
    {
        var text = reply.StartsWith("stream: ", StringComparison.Ordinal) ? reply["stream: ".Length..] : reply;
        if (text == "OK") return new ScanVerdict(ScanOutcome.Clean, "");
        if (text.EndsWith(" FOUND", StringComparison.Ordinal)) return new ScanVerdict(ScanOutcome.Infected, text[..^" FOUND".Length].Trim());
        return new ScanVerdict(ScanOutcome.Error, text.Length == 0 ? "clamd answered nothing" : text);
    }

    private async Task<string> ExchangeAsync(byte[] command, Func<Stream, Task> send, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(timeout);
        var (endpoint, family) = Endpoint(Address);
        using var socket = family == AddressFamily.Unix ? new Socket(family, SocketType.Stream, ProtocolType.Unspecified)
            : endpoint is DnsEndPoint ? new Socket(SocketType.Stream, ProtocolType.Tcp) // dual mode: the name may resolve to either family
            : new Socket(family, SocketType.Stream, ProtocolType.Tcp);
        await socket.ConnectAsync(endpoint, deadline.Token);
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        await stream.WriteAsync(command, deadline.Token);
        await send(stream).WaitAsync(deadline.Token);
        var reply = new MemoryStream();
        var buffer = new byte[256];
        while (true)
        {
            var n = await stream.ReadAsync(buffer, deadline.Token);
            if (n == 0) break;
            var end = Array.IndexOf(buffer, (byte)0, 0, n);
            reply.Write(buffer, 0, end < 0 ? n : end);
            if (end >= 0 || reply.Length > 4096) break;
        }
        return Encoding.UTF8.GetString(reply.GetBuffer(), 0, (int)reply.Length).Trim();
    }

    /// <summary>"unix:/run/clamav/clamd.ctl" or "host:port" ("127.0.0.1:3310", "[::1]:3310").</summary>
    internal static (EndPoint Endpoint, AddressFamily Family) Endpoint(string address)
    {
        if (address.StartsWith("unix:", StringComparison.Ordinal)) return (new UnixDomainSocketEndPoint(address["unix:".Length..]), AddressFamily.Unix);
        if (IPEndPoint.TryParse(address, out var ip) && ip.Port != 0) return (ip, ip.AddressFamily);
        var colon = address.LastIndexOf(':');
        if (colon > 0 && int.TryParse(address[(colon + 1)..], out var port) && port is > 0 and < 65536)
            return (new DnsEndPoint(address[..colon], port), AddressFamily.Unspecified);
        throw new FormatException($"Antivirus:Clamd: '{address}' is neither unix:/path nor host:port");
    }
}
