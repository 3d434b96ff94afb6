using System.Diagnostics;
using Appliance.Tests.Smtp;
using MailKit.Net.Pop3;
using MailKit.Security;
using MimeKit;

namespace Appliance.Tests.Pop3;

/// <summary>
/// The whole mail path on a real node: mail in over SMTP, out over POP3/POP3S, compared byte
/// for byte with what the client sent (after our two trace headers).
/// </summary>
public sealed class Pop3EndToEndTests
{
    private static async Task<Pop3Client> ConnectAsync(TestNode node, string local, SecureSocketOptions tls)
    {
        var client = new Pop3Client { ServerCertificateValidationCallback = (_, _, _, _) => true };
        var ep = tls == SecureSocketOptions.SslOnConnect ? node.Host.Endpoints["pop3s"] : node.Host.Endpoints["pop3"];
        await client.ConnectAsync(ep.Address.ToString(), ep.Port, tls);
        await client.AuthenticateAsync($"{local}@{TestNode.Domain}", TestNode.Password);
        return client;
    }

    private static async Task<byte[]> RetrieveRawAsync(Pop3Client client, int index)
    {
        using var stream = await client.GetStreamAsync(index);
        using var ms = new MemoryStream();
        await stream.CopyToAsync(ms);
        return ms.ToArray();
    }

    [Theory]
    [InlineData(SecureSocketOptions.None)]
    [InlineData(SecureSocketOptions.StartTls)]
    [InlineData(SecureSocketOptions.SslOnConnect)]
    public async Task Mail_sent_over_smtp_reads_back_byte_identical(SecureSocketOptions tls)
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        var message = Mailkit.Text("sender@remote.test", $"alice@{TestNode.Domain}", "Grüße", "Ünïcödé body\r\n.line starting with a dot\r\n");
        await Mailkit.SendAsync(node.Smtp, message);
        var sent = Mailkit.WireBytes(message);

        using var client = await ConnectAsync(node, "alice", tls);
        Assert.Equal(tls != SecureSocketOptions.None, client.IsSecure);
        Assert.Equal(1, client.Count);
        var raw = await RetrieveRawAsync(client, 0);
        Stored.AssertIsTracePlus(raw, sent, "sender@remote.test");
        await client.DisconnectAsync(true);
    }

    [Fact]
    public async Task Forty_messages_from_ten_parallel_sessions_all_arrive_intact()
    {
        await using var node = await TestNode.StartAsync(["alice", "bob"]);
        var sent = new System.Collections.Concurrent.ConcurrentDictionary<string, byte[]>();
        await Task.WhenAll(Enumerable.Range(0, 10).Select(async s =>
        {
            using var smtp = new MailKit.Net.Smtp.SmtpClient();
            await smtp.ConnectAsync(node.Smtp.Address.ToString(), node.Smtp.Port, SecureSocketOptions.None);
            for (var i = 0; i < 4; i++)
            {
                var to = (s + i) % 2 == 0 ? "alice" : "bob";
                var m = Mailkit.Text($"s{s}@remote.test", $"{to}@{TestNode.Domain}", $"session {s} message {i}", new string('x', 1000 * (i + 1)));
                await smtp.SendAsync(m);
                sent[m.MessageId!] = Mailkit.WireBytes(m);
            }
            await smtp.DisconnectAsync(true);
        }));

        var received = 0;
        foreach (var local in new[] { "alice", "bob" })
        {
            using var client = await ConnectAsync(node, local, SecureSocketOptions.SslOnConnect);
            for (var i = 0; i < client.Count; i++)
            {
                var raw = await RetrieveRawAsync(client, i);
                var parsed = MimeMessage.Load(new MemoryStream(raw));
                Assert.True(sent.TryGetValue(parsed.MessageId ?? "", out var original), "unexpected message " + parsed.MessageId);
                Assert.True(raw.AsSpan().EndsWith(original));
                received++;
            }
            await client.DisconnectAsync(true);
        }
        Assert.Equal(40, received);
    }

    [Fact]
    public async Task Deletions_happen_at_quit_only_and_free_the_quota()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        for (var i = 0; i < 3; i++)
            await Mailkit.SendAsync(node.Smtp, Mailkit.Text("a@remote.test", $"alice@{TestNode.Domain}", $"m{i}", "body"));
        var usedBefore = node.Store.UsedBytes(node.User("alice"));

        // A client that deletes and then drops the connection deletes nothing.
        using (var dropped = await ConnectAsync(node, "alice", SecureSocketOptions.None))
        {
            await dropped.DeleteMessageAsync(0);
            await dropped.DisconnectAsync(quit: false);
        }
        Assert.Equal(3, (await node.InboxAsync("alice")).Count);

        using (var client = await ConnectAsync(node, "alice", SecureSocketOptions.None))
        {
            await client.DeleteMessageAsync(0);
            await client.DisconnectAsync(quit: true);
        }
        var left = await node.InboxAsync("alice");
        Assert.Equal(2, left.Count);
        Assert.True(node.Store.UsedBytes(node.User("alice")) < usedBefore);

        await node.RestartAsync();
        Assert.Equal(left.Select(m => m.Uid), (await node.InboxAsync("alice")).Select(m => m.Uid));
        using var again = await ConnectAsync(node, "alice", SecureSocketOptions.StartTls);
        Assert.Equal(2, again.Count);
        Assert.Equal("m1", (await again.GetMessageAsync(0)).Subject);
    }

    [Fact]
    public async Task Wrong_password_is_refused_and_the_server_keeps_serving()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        await Mailkit.SendAsync(node.Smtp, Mailkit.Text("a@remote.test", $"alice@{TestNode.Domain}", "hello", "body"));
        using (var bad = new Pop3Client())
        {
            var ep = node.Host.Endpoints["pop3"];
            await bad.ConnectAsync(ep.Address.ToString(), ep.Port, SecureSocketOptions.None);
            await Assert.ThrowsAsync<AuthenticationException>(() => bad.AuthenticateAsync($"alice@{TestNode.Domain}", "wrong password"));
        }
        using var good = await ConnectAsync(node, "alice", SecureSocketOptions.None);
        Assert.Equal(1, good.Count);
    }

    [Fact]
    public async Task Outside_dev_mode_plaintext_login_needs_tls_first()
    {
        await using var node = await TestNode.StartAsync(["alice"], o => o.Node.DevMode = false);
        using var client = new Pop3Client { ServerCertificateValidationCallback = (_, _, _, _) => true };
        var ep = node.Host.Endpoints["pop3"];
        await client.ConnectAsync(ep.Address.ToString(), ep.Port, SecureSocketOptions.None);
        // The right password, refused only because the channel is not encrypted.
        await Assert.ThrowsAsync<AuthenticationException>(() => client.AuthenticateAsync($"alice@{TestNode.Domain}", TestNode.Password));
        Assert.False(client.IsAuthenticated);

        using var tls = await ConnectAsync(node, "alice", SecureSocketOptions.StartTls);
        Assert.True(tls.IsAuthenticated);
    }

    [Fact]
    public async Task Python_poplib_over_pop3s_retrieves_the_message_byte_identical()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        var message = Mailkit.Text("a@remote.test", $"alice@{TestNode.Domain}", "python", "line one\r\n..two dots\r\nlast");
        await Mailkit.SendAsync(node.Smtp, message);
        var stored = (await node.InboxBytesAsync("alice"))[0];
        var ep = node.Host.Endpoints["pop3s"];
        var script = $"""
            import poplib, ssl, sys
            ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
            p = poplib.POP3_SSL('{ep.Address}', {ep.Port}, context=ctx)
            p.user('alice@{TestNode.Domain}'); p.pass_('{TestNode.Password}')
            lines = p.retr(1)[1]
            sys.stdout.buffer.write(b'\r\n'.join(lines) + b'\r\n')
            p.quit()
            """;
        var psi = new ProcessStartInfo("python3", ["-c", script]) { RedirectStandardOutput = true, RedirectStandardError = true };
        using var p = Process.Start(psi)!;
        using var ms = new MemoryStream();
        var copy = p.StandardOutput.BaseStream.CopyToAsync(ms);
        var err = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        await copy;
        Assert.True(p.ExitCode == 0, await err);
        Assert.Equal(stored, ms.ToArray());
    }
}
