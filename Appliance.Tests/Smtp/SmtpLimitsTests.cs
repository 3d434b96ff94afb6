using System.Text;
using MailKit.Net.Smtp;

namespace Appliance.Tests.Smtp;

/// <summary>Size limit (RFC 1870), quotas (RFC 5321 §4.5.3.1.10) and hostile input.</summary>
public sealed class SmtpLimitsTests : IAsyncLifetime
{
    private TestNode _node = null!;

    public async Task InitializeAsync() => _node = await TestNode.StartAsync(["alice", "bob"], o => o.Smtp.MaxMessageSize = 200_000);
    public async Task DisposeAsync() => await _node.DisposeAsync();

    private static byte[] Sized(int bytes)
    {
        var head = "Subject: big\r\n\r\n";
        var sb = new StringBuilder(head);
        while (sb.Length < bytes - 80) sb.Append(new string('x', 76)).Append("\r\n");
        return Encoding.ASCII.GetBytes(sb.ToString());
    }

    private async Task<RawSmtp> ReadyAsync(string mailFrom = "MAIL FROM:<s@remote.test>")
    {
        var c = await RawSmtp.ConnectAsync(_node.Smtp);
        Assert.StartsWith("250", await c.SendAsync("EHLO client.test"));
        Assert.StartsWith("250", await c.SendAsync(mailFrom));
        return c;
    }

    [Fact]
    public async Task Ehlo_AdvertisesTheSizeLimit()
    {
        await using var c = await RawSmtp.ConnectAsync(_node.Smtp);
        var ehlo = await c.SendAsync("EHLO client.test");

        Assert.Contains("250-SIZE 200000", ehlo.Replace("250 SIZE", "250-SIZE"));
    }

    [Fact]
    public async Task DeclaredSizeOverLimit_Is552AtMailFrom()
    {
        await using var c = await RawSmtp.ConnectAsync(_node.Smtp);
        await c.SendAsync("EHLO client.test");

        Assert.StartsWith("552", await c.SendAsync("MAIL FROM:<s@remote.test> SIZE=300000"));
    }

    [Fact]
    public async Task UndeclaredMessageOverLimit_Is552AtData_AndNothingStored()
    {
        await using var c = await ReadyAsync();
        Assert.StartsWith("250", await c.SendAsync("RCPT TO:<alice@example.test>"));

        var reply = await c.DataAsync(Sized(300_000));

        Assert.StartsWith("552", reply);
        Assert.Empty(await _node.InboxAsync("alice"));
    }

    [Fact]
    public async Task MailKit_MessageOverLimit_IsRefusedPermanently()
    {
        var m = Mailkit.Text("s@remote.test", "alice@example.test", "big", new string('y', 300_000));

        var ex = await Assert.ThrowsAnyAsync<Exception>(() => Mailkit.SendAsync(_node.Smtp, m));

        Assert.True(ex is SmtpCommandException { StatusCode: SmtpStatusCode.ExceededStorageAllocation } or SmtpProtocolException, ex.ToString());
        Assert.Empty(await _node.InboxAsync("alice"));
    }

    [Fact]
    public async Task MessageJustUnderLimit_IsDelivered()
    {
        await using var c = await ReadyAsync();
        Assert.StartsWith("250", await c.SendAsync("RCPT TO:<alice@example.test>"));

        Assert.StartsWith("250", await c.DataAsync(Sized(150_000)));
        Assert.Single(await _node.InboxAsync("alice"));
    }

    [Fact]
    public async Task MailboxAlreadyOverQuota_Is452_4_2_2AtRcpt()
    {
        await using (var c = await ReadyAsync())
        {
            await c.SendAsync("RCPT TO:<bob@example.test>");
            Assert.StartsWith("250", await c.DataAsync(Sized(20_000)));
        }
        _node.Directory.UpdateMailbox("bob@example.test", null, quotaBytes: 10_000, null);

        await using var c2 = await ReadyAsync();
        Assert.StartsWith("452 4.2.2", await c2.SendAsync("RCPT TO:<bob@example.test>"));
        // Another recipient in the same transaction is still fine.
        Assert.StartsWith("250", await c2.SendAsync("RCPT TO:<alice@example.test>"));
        Assert.StartsWith("250", await c2.DataAsync(Sized(1000)));
        Assert.Single(await _node.InboxAsync("bob"));
        Assert.Single(await _node.InboxAsync("alice"));
    }

    [Fact]
    public async Task MessageBiggerThanTheWholeQuota_Is552_5_2_2AtData()
    {
        _node.Directory.UpdateMailbox("bob@example.test", null, quotaBytes: 50_000, null);
        await using var c = await ReadyAsync();
        Assert.StartsWith("250", await c.SendAsync("RCPT TO:<bob@example.test>"));

        Assert.StartsWith("552 5.2.2", await c.DataAsync(Sized(100_000)));
        Assert.Empty(await _node.InboxAsync("bob"));
        Assert.Equal(0, _node.Store.UsedBytes(_node.User("bob")));
    }

    [Fact]
    public async Task DeclaredSizeBiggerThanTheWholeQuota_IsRefusedPermanentlyAtRcpt()
    {
        // A message that can never fit must not be retried for days by the sender.
        _node.Directory.UpdateMailbox("bob@example.test", null, quotaBytes: 50_000, null);
        await using var c = await ReadyAsync("MAIL FROM:<s@remote.test> SIZE=100000");

        Assert.StartsWith("552 5.2.2", await c.SendAsync("RCPT TO:<bob@example.test>"));
    }

    [Fact]
    public async Task MessageThatWouldFillTheQuota_IsTemporary452()
    {
        _node.Directory.UpdateMailbox("bob@example.test", null, quotaBytes: 60_000, null);
        await using (var c = await ReadyAsync())
        {
            await c.SendAsync("RCPT TO:<bob@example.test>");
            Assert.StartsWith("250", await c.DataAsync(Sized(40_000)));
        }

        await using var c2 = await ReadyAsync();
        Assert.StartsWith("250", await c2.SendAsync("RCPT TO:<bob@example.test>"));
        Assert.StartsWith("452 4.2.2", await c2.DataAsync(Sized(40_000)));
        Assert.Single(await _node.InboxAsync("bob"));
    }

    [Fact]
    public async Task BinaryGarbage_GetsAnErrorReply_AndServerStillServes()
    {
        var garbage = new byte[4096];
        new Random(42).NextBytes(garbage);
        for (var i = 0; i < garbage.Length; i++) if (garbage[i] == (byte)'\n') garbage[i] = 0;
        await using (var c = await RawSmtp.ConnectAsync(_node.Smtp))
        {
            await c.WriteAsync([.. garbage, (byte)'\r', (byte)'\n']);
            var reply = await c.ReadReplyAsync();
            Assert.Matches("^5\\d\\d", reply);
        }

        await AssertStillDeliversAsync();
    }

    [Fact]
    public async Task HundredKilobyteCommandLine_GetsAnErrorReply_AndServerStillServes()
    {
        await using (var c = await RawSmtp.ConnectAsync(_node.Smtp))
        {
            await c.SendAsync("EHLO client.test");
            var reply = await c.SendAsync("MAIL FROM:<" + new string('a', 100_000) + "@remote.test>");
            Assert.Matches("^5\\d\\d", reply);
        }
        await using (var c = await RawSmtp.ConnectAsync(_node.Smtp))
        {
            var reply = await c.SendAsync("NOOP " + new string('b', 100_000));
            Assert.Matches("^5\\d\\d", reply);
        }

        await AssertStillDeliversAsync();
    }

    [Fact]
    public async Task DataBeforeRcpt_IsRefused()
    {
        await using var c = await ReadyAsync();

        Assert.Matches("^5\\d\\d", await c.SendAsync("DATA"));
    }

    private async Task AssertStillDeliversAsync()
    {
        var m = Mailkit.Text("s@remote.test", "alice@example.test", "after", "still here");
        await Mailkit.SendAsync(_node.Smtp, m);
        Assert.Single(await _node.InboxAsync("alice"));
    }
}
