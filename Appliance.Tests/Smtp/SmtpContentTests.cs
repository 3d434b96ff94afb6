using System.Security.Cryptography;
using System.Text;
using MimeKit;

namespace Appliance.Tests.Smtp;

/// <summary>Message content survives delivery unchanged: 8-bit text, quoted-printable, large attachments, over TLS too.</summary>
public sealed class SmtpContentTests : IAsyncLifetime
{
    private TestNode _node = null!;

    public async Task InitializeAsync() => _node = await TestNode.StartAsync(["alice"]);
    public async Task DisposeAsync() => await _node.DisposeAsync();

    private async Task<byte[]> OnlyMessageAsync() => Assert.Single(await _node.InboxBytesAsync("alice"));

    [Fact]
    public async Task EightBitUtf8Body_IsStoredByteIdentical()
    {
        var message = Encoding.UTF8.GetBytes(
            "From: s@remote.test\r\nTo: alice@example.test\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nMIME-Version: 1.0\r\n" +
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" +
            "Grüße aus Köln, ¿qué tal? Ελληνικά, 日本語, emoji 📬\r\n.dot first\r\nñ\r\n");
        await using (var c = await RawSmtp.ConnectAsync(_node.Smtp))
        {
            Assert.Contains("8BITMIME", await c.SendAsync("EHLO client.test"));
            Assert.StartsWith("250", await c.SendAsync("MAIL FROM:<s@remote.test> BODY=8BITMIME"));
            Assert.StartsWith("250", await c.SendAsync("RCPT TO:<alice@example.test>"));
            Assert.StartsWith("250", await c.DataAsync(message));
        }

        var stored = await OnlyMessageAsync();
        Stored.AssertIsTracePlus(stored, message, "s@remote.test");
        var parsed = MimeMessage.Load(new MemoryStream(stored));
        Assert.Equal("Grüße", parsed.Subject);
        Assert.Contains("日本語, emoji 📬", parsed.TextBody);
    }

    [Fact]
    public async Task EightBitBody_FromPython_IsStoredByteIdentical()
    {
        await PythonSmtp.RunAsync(_node.Smtp, """
            msg = "From: p@remote.test\r\nTo: alice@example.test\r\nSubject: py8\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nçà va? 中文\r\n".encode("utf-8")
            with smtplib.SMTP(HOST, PORT) as s:
                s.sendmail("p@remote.test", ["alice@example.test"], msg, mail_options=["BODY=8BITMIME"])
            """);

        var original = Encoding.UTF8.GetBytes("From: p@remote.test\r\nTo: alice@example.test\r\nSubject: py8\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nçà va? 中文\r\n");
        Stored.AssertIsTracePlus(await OnlyMessageAsync(), original, "p@remote.test");
    }

    [Fact]
    public async Task QuotedPrintable_IsStoredByteIdentical_AndDecodes()
    {
        var message = Encoding.ASCII.GetBytes(
            "From: s@remote.test\r\nTo: alice@example.test\r\nSubject: qp\r\nMIME-Version: 1.0\r\n" +
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
            "Caf=C3=A9 cr=C3=A8me, a=3Db, a soft=\r\n line break, trailing space=20\r\n=2E dot\r\n.=\r\n\r\n");
        await using (var c = await RawSmtp.ConnectAsync(_node.Smtp))
        {
            await c.SendAsync("EHLO client.test");
            await c.SendAsync("MAIL FROM:<s@remote.test>");
            await c.SendAsync("RCPT TO:<alice@example.test>");
            Assert.StartsWith("250", await c.DataAsync(message));
        }

        var stored = await OnlyMessageAsync();
        Stored.AssertIsTracePlus(stored, message, "s@remote.test");
        var text = MimeMessage.Load(new MemoryStream(stored)).TextBody!.Replace("\r\n", "\n");
        Assert.StartsWith("Café crème, a=b, a soft line break, trailing space \n. dot\n.", text);
    }

    [Theory]
    [InlineData(1 << 20)]
    [InlineData(10 << 20)]
    public async Task LargeAttachment_ArrivesIntact(int size)
    {
        var content = RandomNumberGenerator.GetBytes(size);
        var m = Mailkit.Text("s@remote.test", "alice@example.test", $"attachment {size}", "see attached");
        var builder = new BodyBuilder { TextBody = "see attached" };
        builder.Attachments.Add("data.bin", content, new ContentType("application", "octet-stream"));
        m.Body = builder.ToMessageBody();

        await Mailkit.SendAsync(_node.Smtp, m);

        var stored = await OnlyMessageAsync();
        Stored.AssertIsTracePlus(stored, Mailkit.WireBytes(m), "s@remote.test");
        var attachment = Assert.Single(MimeMessage.Load(new MemoryStream(stored)).Attachments.OfType<MimePart>());
        using var decoded = new MemoryStream();
        attachment.Content!.DecodeTo(decoded);
        Assert.Equal(SHA256.HashData(content), SHA256.HashData(decoded.ToArray()));
        Assert.Equal(stored.Length, (await _node.InboxAsync("alice"))[0].Size);
    }

    [Fact]
    public async Task StartTls_WithSelfSignedCertificate_ThenDelivery()
    {
        await using (var c = await RawSmtp.ConnectAsync(_node.Smtp))
            Assert.Contains("STARTTLS", await c.SendAsync("EHLO client.test"));
        var m = Mailkit.Text("s@remote.test", "alice@example.test", "over tls", "secret stuff");

        await Mailkit.SendAsync(_node.Smtp, m, startTls: true);

        var stored = await OnlyMessageAsync();
        Stored.AssertIsTracePlus(stored, Mailkit.WireBytes(m), "s@remote.test");
        Assert.Contains("with ESMTPS", Encoding.ASCII.GetString(stored));
    }

    [Fact]
    public async Task PlainSession_IsMarkedEsmtpNotEsmtps()
    {
        await Mailkit.SendAsync(_node.Smtp, Mailkit.Text("s@remote.test", "alice@example.test", "plain", "x"));

        var text = Encoding.ASCII.GetString(await OnlyMessageAsync());
        Assert.Contains("with ESMTP id", text);
        Assert.DoesNotContain("ESMTPS", text);
    }
}
