using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace Appliance.Tests.Smtp;

/// <summary>A tiny SMTP client for transcript-style tests: send a line, read one (multi-line) reply.</summary>
public sealed class RawSmtp : IAsyncDisposable
{
    private readonly TcpClient _tcp;
    private readonly NetworkStream _stream;
    private readonly List<byte> _pending = [];

    private RawSmtp(TcpClient tcp)
    {
        _tcp = tcp;
        _stream = tcp.GetStream();
        _stream.ReadTimeout = 30_000;
    }

    public static async Task<RawSmtp> ConnectAsync(IPEndPoint ep)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(ep);
        var c = new RawSmtp(tcp);
        var greeting = await c.ReadReplyAsync();
        Assert.StartsWith("220 ", greeting);
        return c;
    }

    public async Task<string> SendAsync(string line)
    {
        await WriteAsync(Encoding.ASCII.GetBytes(line + "\r\n"));
        return await ReadReplyAsync();
    }

    public async Task WriteAsync(byte[] bytes)
    {
        await _stream.WriteAsync(bytes);
        await _stream.FlushAsync();
    }

    /// <summary>Sends DATA, the message (dot-stuffed here) and the final dot; returns the reply to the dot.</summary>
    public async Task<string> DataAsync(byte[] message)
    {
        var go = await SendAsync("DATA");
        if (!go.StartsWith("354", StringComparison.Ordinal)) return go;
        var text = Encoding.Latin1.GetString(message);
        if (text.StartsWith('.')) text = "." + text;
        text = text.Replace("\r\n.", "\r\n..", StringComparison.Ordinal);
        if (!text.EndsWith("\r\n", StringComparison.Ordinal)) text += "\r\n";
        await WriteAsync(Encoding.Latin1.GetBytes(text + ".\r\n"));
        return await ReadReplyAsync();
    }

    /// <summary>The full reply (lines joined by \n); "" when the server closed the connection.</summary>
    public async Task<string> ReadReplyAsync()
    {
        var lines = new List<string>();
        while (true)
        {
            var line = await ReadLineAsync();
            if (line is null) return string.Join("\n", lines);
            lines.Add(line);
            if (line.Length < 4 || line[3] != '-') return string.Join("\n", lines);
        }
    }

    private async Task<string?> ReadLineAsync()
    {
        var buffer = new byte[4096];
        while (true)
        {
            var nl = _pending.IndexOf((byte)'\n');
            if (nl >= 0)
            {
                var line = Encoding.ASCII.GetString(_pending.GetRange(0, nl).ToArray()).TrimEnd('\r');
                _pending.RemoveRange(0, nl + 1);
                return line;
            }
            int n;
            try { n = await _stream.ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(30)); }
            catch (IOException) { n = 0; }
            if (n == 0) return null;
            _pending.AddRange(buffer.AsSpan(0, n).ToArray());
        }
    }

    public ValueTask DisposeAsync()
    {
        _tcp.Dispose();
        return ValueTask.CompletedTask;
    }
}

public static class Mailkit
{
    /// <summary>Sends with MailKit; STARTTLS when asked, accepting the node's self-signed certificate.</summary>
    public static async Task SendAsync(IPEndPoint ep, MimeMessage message, bool startTls = false)
    {
        using var client = new SmtpClient();
        client.ServerCertificateValidationCallback = (_, _, _, _) => true;
        client.LocalDomain = "client.test";
        await client.ConnectAsync(ep.Address.ToString(), ep.Port, startTls ? SecureSocketOptions.StartTls : SecureSocketOptions.None);
        if (startTls) Assert.True(client.IsSecure);
        await client.SendAsync(message);
        await client.DisconnectAsync(true);
    }

    /// <summary>The bytes MailKit put on the wire for a message it has sent (it prepares the message in place).</summary>
    public static byte[] WireBytes(MimeMessage message)
    {
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        options.HiddenHeaders.Add(HeaderId.Bcc);
        options.HiddenHeaders.Add(HeaderId.ResentBcc);
        using var ms = new MemoryStream();
        message.WriteTo(options, ms);
        return ms.ToArray();
    }

    public static MimeMessage Text(string from, string to, string subject, string body)
    {
        var m = new MimeMessage();
        m.From.Add(MailboxAddress.Parse(from));
        m.To.Add(MailboxAddress.Parse(to));
        m.Subject = subject;
        m.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId("client.test");
        m.Body = new TextPart("plain") { Text = body };
        return m;
    }
}

public static class PythonSmtp
{
    /// <summary>Runs a python3 smtplib script with HOST and PORT set; returns its stdout, fails the test on a non-zero exit.</summary>
    public static async Task<string> RunAsync(IPEndPoint ep, string script)
    {
        var psi = new ProcessStartInfo("python3", ["-c", $"import smtplib, sys\nHOST = '{ep.Address}'\nPORT = {ep.Port}\n" + script])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        Assert.True(p.ExitCode == 0, $"python failed: {await stderr}");
        return await stdout;
    }
}

public static class Stored
{
    /// <summary>
    /// The stored message is our trace headers (Return-Path, then Received) followed by the
    /// original bytes, unchanged.
    /// </summary>
    public static void AssertIsTracePlus(byte[] stored, byte[] original, string returnPath)
    {
        Assert.True(stored.Length > original.Length, "stored message is not longer than the original");
        Assert.True(stored.AsSpan().EndsWith(original), "original bytes are not at the end of the stored message:\n" + Encoding.Latin1.GetString(stored).Replace("\r", "<CR>"));
        var trace = Encoding.ASCII.GetString(stored, 0, stored.Length - original.Length);
        Assert.StartsWith($"Return-Path: <{returnPath}>\r\nReceived: from ", trace);
        Assert.Contains("by mx.test", trace);
        Assert.EndsWith("\r\n", trace);
        // Only those two header fields: every other line is a folded continuation.
        var fields = trace.Split("\r\n", StringSplitOptions.RemoveEmptyEntries).Where(l => l[0] is not (' ' or '\t')).ToList();
        Assert.Equal(2, fields.Count);
    }
}
