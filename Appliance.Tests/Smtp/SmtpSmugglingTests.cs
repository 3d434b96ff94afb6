using System.Text;

namespace Appliance.Tests.Smtp;

/// <summary>
/// Only &lt;CRLF&gt;.&lt;CRLF&gt; ends DATA (RFC 5321 §4.1.1.4): a bare-LF "dot" must not let a
/// sender smuggle a second transaction past filters (SMTP smuggling, CVE-2023-51766 and kin).
/// Also the recipient limit per transaction.
/// </summary>
public sealed class SmtpSmugglingTests : IAsyncLifetime
{
    private TestNode _node = null!;

    public async Task InitializeAsync() => _node = await TestNode.StartAsync(["alice", "bob"], o => o.Smtp.MaxRecipients = 3);
    public async Task DisposeAsync() => await _node.DisposeAsync();

    [Theory]
    [InlineData("\n.\n")]
    [InlineData("\n.\r\n")]
    [InlineData("\r\n.\n")]
    [InlineData("\r.\r")]
    public async Task BareLineEndDot_DoesNotEndTheMessage(string fakeEnd)
    {
        await using var c = await RawSmtp.ConnectAsync(_node.Smtp);
        await c.SendAsync("EHLO client.test");
        await c.SendAsync("MAIL FROM:<s@remote.test>");
        Assert.StartsWith("250", await c.SendAsync("RCPT TO:<alice@example.test>"));
        Assert.StartsWith("354", await c.SendAsync("DATA"));

        await c.WriteAsync(Encoding.ASCII.GetBytes(
            "Subject: innocent\r\n\r\nhello" + fakeEnd +
            "MAIL FROM:<ceo@example.test>\r\nRCPT TO:<bob@example.test>\r\nDATA\r\nSubject: smuggled\r\n\r\npay now\r\n.\r\n"));
        var replies = await c.ReadReplyAsync();

        Assert.StartsWith("250", replies);
        Assert.StartsWith("250", await c.SendAsync("NOOP")); // no queued replies of a second transaction
        Assert.Single(await _node.InboxAsync("alice"));
        Assert.Empty(await _node.InboxAsync("bob"));
    }

    [Fact]
    public async Task RecipientsOverTheLimit_Get452_4_5_3_AndTheOthersStillReceive()
    {
        _node.Directory.AddAlias("a1@example.test", ["alice@example.test"]);
        _node.Directory.AddAlias("a2@example.test", ["alice@example.test"]);
        await using var c = await RawSmtp.ConnectAsync(_node.Smtp);
        await c.SendAsync("EHLO client.test");
        await c.SendAsync("MAIL FROM:<s@remote.test>");
        Assert.StartsWith("250", await c.SendAsync("RCPT TO:<alice@example.test>"));
        Assert.StartsWith("250", await c.SendAsync("RCPT TO:<a1@example.test>"));
        Assert.StartsWith("250", await c.SendAsync("RCPT TO:<a2@example.test>"));
        Assert.StartsWith("452 4.5.3", await c.SendAsync("RCPT TO:<bob@example.test>"));
        Assert.StartsWith("250", await c.DataAsync("Subject: many\r\n\r\nx\r\n"u8.ToArray()));

        // The limit is per transaction: the next one starts from zero.
        await c.SendAsync("MAIL FROM:<s@remote.test>");
        Assert.StartsWith("250", await c.SendAsync("RCPT TO:<bob@example.test>"));
        Assert.StartsWith("250", await c.DataAsync("Subject: next\r\n\r\nx\r\n"u8.ToArray()));

        Assert.Single(await _node.InboxAsync("alice"));
        Assert.Single(await _node.InboxAsync("bob"));
    }
}
