using System.Text;
using MailKit.Net.Smtp;

namespace Appliance.Tests.Smtp;

/// <summary>MX delivery to mailboxes and aliases, and what the MX refuses (RFC 5321 §4.1.1.3, §3.6.2).</summary>
public sealed class MxDeliveryTests : IAsyncLifetime
{
    private TestNode _node = null!;

    public async Task InitializeAsync() => _node = await TestNode.StartAsync(["alice", "bob", "carol"]);
    public async Task DisposeAsync() => await _node.DisposeAsync();

    private static byte[] Message(string to, string subject) => Encoding.ASCII.GetBytes(
        $"From: sender@remote.test\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{Guid.NewGuid():N}@remote.test>\r\n\r\nHello {to}.\r\n.leading dot line\r\nBye.\r\n");

    private async Task<string> DeliverRawAsync(string rcpt, byte[] message)
    {
        await using var c = await RawSmtp.ConnectAsync(_node.Smtp);
        Assert.StartsWith("250", await c.SendAsync("EHLO client.test"));
        Assert.StartsWith("250", await c.SendAsync("MAIL FROM:<sender@remote.test>"));
        var r = await c.SendAsync($"RCPT TO:<{rcpt}>");
        if (!r.StartsWith("250", StringComparison.Ordinal)) return r;
        return await c.DataAsync(message);
    }

    [Fact]
    public async Task Mailbox_ReceivesOriginalBytesAfterTraceHeaders()
    {
        var message = Message("alice@example.test", "plain");
        var reply = await DeliverRawAsync("alice@example.test", message);

        Assert.StartsWith("250 2.0.0", reply);
        var stored = Assert.Single(await _node.InboxBytesAsync("alice"));
        Stored.AssertIsTracePlus(stored, message, "sender@remote.test");
        Assert.Contains("for <alice@example.test>", Encoding.ASCII.GetString(stored));
        Assert.Empty(await _node.InboxAsync("bob"));
    }

    [Fact]
    public async Task MailKit_DeliversToMailbox()
    {
        var m = Mailkit.Text("sender@remote.test", "bob@example.test", "via mailkit", "Hi Bob");
        await Mailkit.SendAsync(_node.Smtp, m);

        var stored = Assert.Single(await _node.InboxBytesAsync("bob"));
        Stored.AssertIsTracePlus(stored, Mailkit.WireBytes(m), "sender@remote.test");
    }

    [Fact]
    public async Task Python_DeliversToTwoMailboxesInOneTransaction()
    {
        var output = await PythonSmtp.RunAsync(_node.Smtp, """
            msg = b"From: p@remote.test\r\nTo: alice@example.test, carol@example.test\r\nSubject: py\r\n\r\nfrom python\r\n"
            with smtplib.SMTP(HOST, PORT) as s:
                refused = s.sendmail("p@remote.test", ["alice@example.test", "carol@example.test"], msg)
                print(len(refused))
            """);

        Assert.Equal("0", output.Trim());
        var original = "From: p@remote.test\r\nTo: alice@example.test, carol@example.test\r\nSubject: py\r\n\r\nfrom python\r\n"u8.ToArray();
        Stored.AssertIsTracePlus(Assert.Single(await _node.InboxBytesAsync("alice")), original, "p@remote.test");
        Stored.AssertIsTracePlus(Assert.Single(await _node.InboxBytesAsync("carol")), original, "p@remote.test");
    }

    [Fact]
    public async Task AliasWithSeveralTargets_DeliversOneCopyToEach()
    {
        _node.Directory.AddAlias("team@example.test", ["alice@example.test", "bob@example.test"]);
        var message = Message("team@example.test", "team");

        Assert.StartsWith("250", await DeliverRawAsync("team@example.test", message));

        Stored.AssertIsTracePlus(Assert.Single(await _node.InboxBytesAsync("alice")), message, "sender@remote.test");
        Stored.AssertIsTracePlus(Assert.Single(await _node.InboxBytesAsync("bob")), message, "sender@remote.test");
        Assert.Empty(await _node.InboxAsync("carol"));
    }

    [Fact]
    public async Task NestedAliasAndMailboxTwice_DeliversOnlyOnceToEachMailbox()
    {
        _node.Directory.AddAlias("sales@example.test", ["alice@example.test"]);
        _node.Directory.AddAlias("all@example.test", ["sales@example.test", "alice@example.test", "bob@example.test"]);

        await using var c = await RawSmtp.ConnectAsync(_node.Smtp);
        await c.SendAsync("EHLO client.test");
        await c.SendAsync("MAIL FROM:<sender@remote.test>");
        Assert.StartsWith("250", await c.SendAsync("RCPT TO:<all@example.test>"));
        Assert.StartsWith("250", await c.SendAsync("RCPT TO:<alice@example.test>"));
        Assert.StartsWith("250", await c.DataAsync(Message("all@example.test", "dup")));

        Assert.Single(await _node.InboxAsync("alice"));
        Assert.Single(await _node.InboxAsync("bob"));
    }

    [Fact]
    public async Task CatchAll_TakesUnknownLocalParts_ButNotExistingMailboxes()
    {
        _node.Directory.AddAlias("@example.test", ["carol@example.test"]);

        Assert.StartsWith("250", await DeliverRawAsync("nobody@example.test", Message("nobody@example.test", "catch")));
        Assert.StartsWith("250", await DeliverRawAsync("alice@example.test", Message("alice@example.test", "direct")));

        Assert.Single(await _node.InboxAsync("carol"));
        Assert.Single(await _node.InboxAsync("alice"));
    }

    [Fact]
    public async Task PlusDetail_DeliversToTheMailbox()
    {
        var message = Message("alice+lists@example.test", "detail");

        Assert.StartsWith("250", await DeliverRawAsync("alice+lists@example.test", message));

        var stored = Assert.Single(await _node.InboxBytesAsync("alice"));
        Stored.AssertIsTracePlus(stored, message, "sender@remote.test");
    }

    [Fact]
    public async Task PlusDetail_OnAlias_DeliversToItsTargets()
    {
        _node.Directory.AddAlias("team@example.test", ["bob@example.test", "carol@example.test"]);

        Assert.StartsWith("250", await DeliverRawAsync("team+x@example.test", Message("team+x@example.test", "d")));

        Assert.Single(await _node.InboxAsync("bob"));
        Assert.Single(await _node.InboxAsync("carol"));
    }

    [Fact]
    public async Task RecipientCaseIsIgnored()
    {
        Assert.StartsWith("250", await DeliverRawAsync("Alice@EXAMPLE.test", Message("Alice@EXAMPLE.test", "case")));
        Assert.Single(await _node.InboxAsync("alice"));
    }

    [Fact]
    public async Task UnknownUser_Is550_5_1_1()
    {
        var reply = await DeliverRawAsync("nobody@example.test", Message("nobody@example.test", "x"));

        Assert.StartsWith("550 5.1.1", reply);
    }

    [Fact]
    public async Task UnknownUser_WithMailKit_IsRefusedAndNothingStored()
    {
        var m = Mailkit.Text("sender@remote.test", "nobody@example.test", "x", "x");
        var ex = await Assert.ThrowsAsync<SmtpCommandException>(() => Mailkit.SendAsync(_node.Smtp, m));

        Assert.Equal(SmtpErrorCode.RecipientNotAccepted, ex.ErrorCode);
        Assert.Equal(550, (int)ex.StatusCode);
        foreach (var box in new[] { "alice", "bob", "carol" }) Assert.Empty(await _node.InboxAsync(box));
    }

    [Theory]
    [InlineData("someone@elsewhere.test")]
    [InlineData("alice@example.test.evil.test")]
    [InlineData("alice@sub.example.test")]
    public async Task ForeignDomain_Is550_5_7_1_NeverRelayed(string rcpt)
    {
        var reply = await DeliverRawAsync(rcpt, Message(rcpt, "relay"));

        Assert.StartsWith("550 5.7.1", reply);
    }

    [Fact]
    public async Task SourceRoutedOrPercentHackRecipient_IsNotRelayed()
    {
        await using var c = await RawSmtp.ConnectAsync(_node.Smtp);
        await c.SendAsync("EHLO client.test");
        await c.SendAsync("MAIL FROM:<sender@remote.test>");

        Assert.StartsWith("5", await c.SendAsync("RCPT TO:<victim%elsewhere.test@example.test>"));
        Assert.StartsWith("5", await c.SendAsync("RCPT TO:<@example.test:victim@elsewhere.test>"));
    }

    [Fact]
    public async Task DisabledMailbox_Is550_5_2_1()
    {
        _node.Directory.UpdateMailbox("bob@example.test", null, null, enabled: false);

        var reply = await DeliverRawAsync("bob@example.test", Message("bob@example.test", "x"));

        Assert.StartsWith("550 5.2.1", reply);
    }

    [Fact]
    public async Task NullReversePath_IsAcceptedForBounces()
    {
        await using var c = await RawSmtp.ConnectAsync(_node.Smtp);
        await c.SendAsync("EHLO client.test");
        Assert.StartsWith("250", await c.SendAsync("MAIL FROM:<>"));
        Assert.StartsWith("250", await c.SendAsync("RCPT TO:<alice@example.test>"));
        var message = Message("alice@example.test", "bounce");
        Assert.StartsWith("250", await c.DataAsync(message));

        Stored.AssertIsTracePlus(Assert.Single(await _node.InboxBytesAsync("alice")), message, "");
    }

    [Theory]
    [InlineData("Subject: blank line last\r\n\r\nbody\r\n\r\n")]
    [InlineData("Subject: no body\r\n\r\n")]
    [InlineData("Subject: dots\r\n\r\n.\r\n..\r\n.x\r\n")]
    public async Task MessageEndings_AreKeptExactly(string text)
    {
        var message = Encoding.ASCII.GetBytes(text);

        Assert.StartsWith("250", await DeliverRawAsync("alice@example.test", message));

        Stored.AssertIsTracePlus(Assert.Single(await _node.InboxBytesAsync("alice")), message, "sender@remote.test");
    }
}
