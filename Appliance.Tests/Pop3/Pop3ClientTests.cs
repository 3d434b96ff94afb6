using System.Diagnostics;
using System.Text;
using MailKit.Net.Pop3;
using MailKit.Security;

namespace Appliance.Tests.Pop3;

/// <summary>Real clients: MailKit's Pop3Client and Python's poplib.</summary>
public sealed class Pop3ClientTests
{
    private const string Message =
        "From: Alice <alice@example.com>\r\nTo: bob@example.com\r\nSubject: Test\r\nMessage-ID: <1@example.com>\r\n" +
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nHello\r\n.leading dot\r\n..\r\n.\r\nbye\r\n";

    [Fact]
    public async Task MailKit_RetrievesAndDeletes()
    {
        await using var host = await Pop3TestHost.StartAsync();
        host.Store.Add(Pop3TestHost.User, Message);
        host.Store.Add(Pop3TestHost.User, "Subject: second\r\n\r\nx\r\n");

        using var client = new Pop3Client();
        await client.ConnectAsync("127.0.0.1", host.Port, SecureSocketOptions.None);
        Assert.True(client.Capabilities.HasFlag(Pop3Capabilities.UIDL));
        Assert.True(client.Capabilities.HasFlag(Pop3Capabilities.Pipelining));
        await client.AuthenticateAsync(Pop3TestHost.User, Pop3TestHost.Password);
        Assert.Equal(2, client.Count);
        Assert.Equal($"{FakeMailStore.UidValidity}.1", await client.GetMessageUidAsync(0));

        var message = await client.GetMessageAsync(0);
        Assert.Equal("Test", message.Subject);
        Assert.Equal("Hello\r\n.leading dot\r\n..\r\n.\r\nbye\r\n", message.TextBody?.ReplaceLineEndings("\r\n"));
        using (var stream = await client.GetStreamAsync(0))
        using (var copy = new MemoryStream())
        {
            await stream.CopyToAsync(copy);
            Assert.Equal(Message, Encoding.UTF8.GetString(copy.ToArray()));
        }

        var headers = await client.GetMessageHeadersAsync(1);
        Assert.Equal("second", headers["Subject"]);

        await client.DeleteMessageAsync(0);
        Assert.Equal(2, host.Store.Count(Pop3TestHost.User));
        await client.DisconnectAsync(quit: true);
        Assert.Equal(1, host.Store.Count(Pop3TestHost.User));
    }

    [Fact]
    public async Task MailKit_StlsThenAuthenticate_WithoutDevMode()
    {
        await using var host = await Pop3TestHost.StartAsync(devMode: false);
        host.Store.Add(Pop3TestHost.User, Message);
        using var client = new Pop3Client { ServerCertificateValidationCallback = (_, _, _, _) => true };
        await client.ConnectAsync("127.0.0.1", host.Port, SecureSocketOptions.StartTls);
        Assert.True(client.IsSecure);
        Assert.Contains("PLAIN", client.AuthenticationMechanisms);
        await client.AuthenticateAsync(Pop3TestHost.User, Pop3TestHost.Password);
        Assert.Equal(1, client.Count);
        Assert.Equal("Test", (await client.GetMessageAsync(0)).Subject);
        await client.DisconnectAsync(quit: true);
    }

    [Fact]
    public async Task MailKit_ImplicitTls_WrongPassword()
    {
        await using var host = await Pop3TestHost.StartAsync(devMode: false);
        using var client = new Pop3Client { ServerCertificateValidationCallback = (_, _, _, _) => true };
        await client.ConnectAsync("127.0.0.1", host.TlsPort, SecureSocketOptions.SslOnConnect);
        await Assert.ThrowsAsync<AuthenticationException>(() => client.AuthenticateAsync(Pop3TestHost.User, "wrong"));
        await client.AuthenticateAsync(Pop3TestHost.User, Pop3TestHost.Password);
        Assert.Equal(0, client.Count);
    }

    [Fact]
    public async Task PythonPoplib_RetrievesByteIdenticalMessage()
    {
        await using var host = await Pop3TestHost.StartAsync();
        host.Store.Add(Pop3TestHost.User, Message);
        const string script =
            "import poplib, sys\n" +
            "p = poplib.POP3('127.0.0.1', int(sys.argv[1]), timeout=10)\n" +
            "p.user(sys.argv[2]); p.pass_(sys.argv[3])\n" +
            "resp, lines, octets = p.retr(1)\n" +
            "sys.stdout.buffer.write(b''.join(l + b'\\r\\n' for l in lines))\n" +
            "p.quit()\n";
        var start = new ProcessStartInfo("python3")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var arg in new[] { "-c", script, host.Port.ToString(System.Globalization.CultureInfo.InvariantCulture), Pop3TestHost.User, Pop3TestHost.Password })
        {
            start.ArgumentList.Add(arg);
        }

        using var process = Process.Start(start)!;
        using var output = new MemoryStream();
        var copy = process.StandardOutput.BaseStream.CopyToAsync(output);
        var errors = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        await copy;
        Assert.True(process.ExitCode == 0, await errors);
        Assert.Equal(Encoding.UTF8.GetBytes(Message), output.ToArray());
    }
}
