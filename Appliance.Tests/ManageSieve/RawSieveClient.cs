using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;

namespace Appliance.Tests.ManageSieve;

/// <summary>
/// A byte-level ManageSieve client for transcript-style tests: sends exactly what it is given
/// and returns the server's whole response (up to its OK, NO or BYE line, literals included)
/// as text, lines joined with CRLF.
/// </summary>
internal sealed class RawSieveClient : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private Stream _stream;

    private RawSieveClient(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    public string Greeting { get; private set; } = "";

    public static async Task<RawSieveClient> ConnectAsync(IPEndPoint ep)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(ep);
        var client = new RawSieveClient(tcp);
        client.Greeting = await client.ReadResponseAsync();
        return client;
    }

    public static string Plain(string user, string password) =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes($"\0{user}\0{password}"));

    /// <summary>Connects and signs in with AUTHENTICATE PLAIN (initial response).</summary>
    public static async Task<RawSieveClient> LoginAsync(IPEndPoint ep, string user, string password = TestNode.Password)
    {
        var client = await ConnectAsync(ep);
        var reply = await client.SendAsync($"AUTHENTICATE \"PLAIN\" \"{Plain(user, password)}\"");
        Assert.StartsWith("OK", reply);
        return client;
    }

    /// <summary>Sends a line (CRLF added) and reads the response.</summary>
    public async Task<string> SendAsync(string line)
    {
        await WriteAsync(line + "\r\n");
        return await ReadResponseAsync();
    }

    public async Task WriteAsync(string text) => await WriteAsync(Encoding.UTF8.GetBytes(text));

    public async Task WriteAsync(byte[] bytes)
    {
        await _stream.WriteAsync(bytes);
        await _stream.FlushAsync();
    }

    public async Task StartTlsAsync()
    {
        var tls = new SslStream(_stream, false, (_, _, _, _) => true);
        await tls.AuthenticateAsClientAsync("localhost");
        _stream = tls;
    }

    /// <summary>One line without its CRLF; null at the end of the stream.</summary>
    public async Task<string?> ReadLineAsync()
    {
        var bytes = await ReadLineBytesAsync();
        return bytes is null ? null : Encoding.UTF8.GetString(bytes);
    }

    private async Task<byte[]?> ReadLineBytesAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var line = new List<byte>();
        while (true)
        {
            var b = await ReadByteAsync(cts.Token);
            if (b < 0) return line.Count == 0 ? null : [.. line];
            if (b == '\n')
            {
                if (line.Count > 0 && line[^1] == '\r') line.RemoveAt(line.Count - 1);
                return [.. line];
            }
            line.Add((byte)b);
        }
    }

    private readonly byte[] _one = new byte[4096];
    private int _oneStart, _oneEnd;

    private async Task<int> ReadByteAsync(CancellationToken ct)
    {
        if (_oneStart == _oneEnd)
        {
            _oneStart = 0;
            _oneEnd = await _stream.ReadAsync(_one, ct);
            if (_oneEnd == 0) return -1;
        }
        return _one[_oneStart++];
    }

    /// <summary>The raw bytes of a literal announced by a line ending in {n}.</summary>
    public async Task<byte[]> ReadBytesAsync(int n)
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(15));
        var data = new byte[n];
        for (var i = 0; i < n; i++)
        {
            var b = await ReadByteAsync(cts.Token);
            if (b < 0) throw new EndOfStreamException();
            data[i] = (byte)b;
        }
        return data;
    }

    /// <summary>Lines up to and including the first OK/NO/BYE line (literals read whole); at the end of the stream what came.</summary>
    public async Task<string> ReadResponseAsync()
    {
        var sb = new StringBuilder();
        while (await ReadLineAsync() is { } line)
        {
            sb.Append(line).Append("\r\n");
            if (line.EndsWith('}') && line.LastIndexOf('{') is var open and >= 0 && int.TryParse(line.AsSpan(open + 1, line.Length - open - 2), out var n))
            {
                sb.Append(Encoding.UTF8.GetString(await ReadBytesAsync(n)));
                continue;
            }
            if (line.StartsWith("OK", StringComparison.Ordinal) || line.StartsWith("NO", StringComparison.Ordinal) || line.StartsWith("BYE", StringComparison.Ordinal))
                break;
        }
        return sb.ToString().TrimEnd('\r', '\n');
    }

    /// <summary>True when the server closed the connection (nothing more to read).</summary>
    public async Task<bool> IsClosedAsync()
    {
        try { return await ReadLineAsync() is null; }
        catch (IOException) { return true; }
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _tcp.Dispose();
    }
}
