using System.Diagnostics;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;
using MailKit.Net.Imap;
using MailKit.Security;

namespace Appliance.Tests.Imap;

/// <summary>
/// A transcript-level IMAP client: sends raw bytes, reads until the tagged response of a tag
/// and returns everything in between (literals included, as they came).
/// </summary>
public sealed class RawImap : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private Stream _stream;
    private readonly List<byte> _pending = [];
    private int _tag;

    private RawImap(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
    }

    public string Greeting { get; private set; } = "";

    public static async Task<RawImap> ConnectAsync(IPEndPoint ep, bool tls = false)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(ep);
        var c = new RawImap(tcp);
        if (tls) await c.StartTlsAsync();
        c.Greeting = await c.ReadLineAsync();
        Assert.StartsWith("* OK ", c.Greeting);
        return c;
    }

    public async Task StartTlsAsync()
    {
        var ssl = new SslStream(_stream, false, (_, _, _, _) => true);
        await ssl.AuthenticateAsClientAsync("mx.test");
        _stream = ssl;
    }

    public static async Task<RawImap> LoginAsync(IPEndPoint ep, string local = "alice")
    {
        var c = await ConnectAsync(ep);
        var r = await c.CommandAsync($"LOGIN {local}@{TestNode.Domain} \"{TestNode.Password}\"");
        Assert.Contains(" OK ", r);
        return c;
    }

    /// <summary>Sends "tN command" and returns the responses through the tagged one.</summary>
    public async Task<string> CommandAsync(string command)
    {
        var tag = "t" + ++_tag;
        await WriteAsync(tag + " " + command + "\r\n");
        return await ReadUntilTaggedAsync(tag);
    }

    public Task WriteAsync(string text) => WriteAsync(Encoding.UTF8.GetBytes(text));

    public async Task WriteAsync(byte[] bytes)
    {
        await _stream.WriteAsync(bytes);
        await _stream.FlushAsync();
    }

    public async Task<string> ReadUntilTaggedAsync(string tag)
    {
        var sb = new StringBuilder();
        while (true)
        {
            var line = await ReadLineAsync();
            sb.Append(line).Append("\r\n");
            if (line.StartsWith(tag + " ", StringComparison.Ordinal)) return sb.ToString();
        }
    }

    /// <summary>One line without CRLF; a line ending in {n} is followed by its literal and the rest of the response.</summary>
    public async Task<string> ReadLineAsync()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        var line = new List<byte>();
        while (true)
        {
            int b = await ReadByteAsync(cts.Token);
            if (b < 0) throw new IOException("connection closed; so far: " + Encoding.UTF8.GetString([.. line]));
            line.Add((byte)b);
            if (b != '\n') continue;
            var text = Encoding.UTF8.GetString([.. line]);
            var m = System.Text.RegularExpressions.Regex.Match(text, @"\{(\d+)\}\r\n$");
            if (!m.Success) return text.TrimEnd('\r', '\n');
            for (int n = int.Parse(m.Groups[1].Value); n > 0; n--)
            {
                int x = await ReadByteAsync(cts.Token);
                if (x < 0) throw new IOException("connection closed in a literal");
                line.Add((byte)x);
            }
        }
    }

    private async Task<int> ReadByteAsync(CancellationToken ct)
    {
        if (_pending.Count == 0)
        {
            var buffer = new byte[8192];
            int n = await _stream.ReadAsync(buffer, ct);
            if (n == 0) return -1;
            _pending.AddRange(buffer.AsSpan(0, n));
        }
        var b = _pending[0];
        _pending.RemoveAt(0);
        return b;
    }

    /// <summary>True when the server closed the connection (after reading what is left).</summary>
    public async Task<bool> IsClosedAsync()
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            while (await ReadByteAsync(cts.Token) >= 0) { }
            return true;
        }
        catch (IOException)
        {
            return true;
        }
    }

    public ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        return ValueTask.CompletedTask;
    }
}

public static class ImapClients
{
    public static async Task<ImapClient> MailKitAsync(TestNode node, string local = "alice", SecureSocketOptions tls = SecureSocketOptions.StartTls)
    {
        var client = new ImapClient { ServerCertificateValidationCallback = (_, _, _, _) => true };
        var ep = tls == SecureSocketOptions.SslOnConnect ? node.Imaps : node.Imap;
        await client.ConnectAsync(ep.Address.ToString(), ep.Port, tls);
        await client.AuthenticateAsync($"{local}@{TestNode.Domain}", TestNode.Password);
        return client;
    }

    /// <summary>Runs a python3 script with HOST, PORT, USER, PASSWORD set; returns stdout, fails the test on a non-zero exit.</summary>
    public static async Task<string> PythonAsync(IPEndPoint ep, string script, string local = "alice")
    {
        var prefix = $"import imaplib, ssl, sys\nHOST = '{ep.Address}'\nPORT = {ep.Port}\nUSER = '{local}@{TestNode.Domain}'\nPASSWORD = '{TestNode.Password}'\n";
        return await RunAsync("python3", ["-c", prefix + script]);
    }

    public static async Task<string> RunAsync(string file, string[] args, string? stdin = null)
    {
        var psi = new ProcessStartInfo(file, args)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = stdin is not null,
        };
        using var p = Process.Start(psi)!;
        if (stdin is not null)
        {
            await p.StandardInput.WriteAsync(stdin);
            p.StandardInput.Close();
        }
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
        Assert.True(p.ExitCode == 0, $"{file} failed ({p.ExitCode}): {await stderr}\n{await stdout}");
        return await stdout;
    }
}
