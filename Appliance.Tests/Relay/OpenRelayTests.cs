using Appliance.Tests.Smtp;

namespace Appliance.Tests.Relay;

/// <summary>
/// The open-relay battery: without authentication nothing for a domain we do not host is
/// accepted, on any port, whatever the address looks like (the classic tricks of relay
/// testers: percent hack, "!" paths, source routes, quoted local parts, trailing dots, address
/// literals, case and spacing games) — even from loopback. Only an explicit Relay:TrustedNetworks
/// lets a network relay.
/// </summary>
public sealed class OpenRelayTests
{
    private const string Local = TestNode.Domain;

    public static readonly string[] Tricks =
    [
        "victim@outside.test",
        "VICTIM@OUTSIDE.TEST",
        "victim%outside.test@" + Local,
        "victim%outside.test@[127.0.0.1]",
        "outside.test!victim@" + Local,
        "outside.test!victim",
        "@" + Local + ":victim@outside.test",
        "@" + Local + ",@relay.test:victim@outside.test",
        "\"victim@outside.test\"@" + Local,
        "\"victim%outside.test\"@" + Local,
        "victim@outside.test@" + Local,
        "victim@outside.test.",
        "victim@" + Local + ".",
        "victim@" + Local + ".outside.test",
        "victim@[127.0.0.1]",
        "victim@[IPv6:::1]",
        "victim@outside.test>",
        "victim",
        "postmaster@outside.test",
    ];

    [Fact]
    public async Task No_trick_relays_through_the_mx_or_the_submission_port_without_authentication()
    {
        await using var node = await TestNode.StartAsync(["alice"], o => { o.Listen.Submission = 0; o.Dns.Servers = ["127.0.0.1:9"]; });
        var accepted = new List<string>();
        await using (var mx = await RawSmtp.ConnectAsync(node.Smtp))
        {
            await mx.SendAsync("EHLO relaytest.test");
            foreach (var trick in Tricks)
            {
                Assert.StartsWith("250", await mx.SendAsync("MAIL FROM:<tester@outside.test>"));
                var reply = await mx.SendAsync($"RCPT TO:<{trick}>");
                if (reply.StartsWith('2')) accepted.Add($"{trick}: {reply}");
                else Assert.Matches("^5[05]\\d ", reply);
                await mx.SendAsync("RSET");
            }
        }
        await using (var msa = await RawSmtp.ConnectAsync(node.Submission))
        {
            await msa.SendAsync("EHLO relaytest.test");
            var mail = await msa.SendAsync("MAIL FROM:<tester@outside.test>");
            Assert.StartsWith("530", mail);
            var rcpt = await msa.SendAsync("RCPT TO:<victim@outside.test>");
            Assert.Matches("^5\\d\\d ", rcpt);
        }
        Assert.Empty(accepted);
        Assert.Empty(await node.Host.Queue.ListQueueAsync());
    }

    [Fact]
    public async Task Percent_hack_to_a_hosted_domain_with_a_catch_all_stays_local()
    {
        await using var node = await TestNode.StartAsync(["alice"], o => o.Dns.Servers = ["127.0.0.1:9"]);
        node.Directory.AddAlias("@" + Local, ["alice@" + Local]);
        await using var mx = await RawSmtp.ConnectAsync(node.Smtp);
        await mx.SendAsync("EHLO relaytest.test");
        Assert.StartsWith("250", await mx.SendAsync("MAIL FROM:<tester@outside.test>"));
        // The catch-all takes it, as a local part of our domain: it is never sent on.
        Assert.StartsWith("250", await mx.SendAsync($"RCPT TO:<victim%outside.test@{Local}>"));
        Assert.StartsWith("250", await mx.DataAsync("Subject: percent\r\n\r\nx\r\n"u8.ToArray()));
        Assert.Single(await node.InboxAsync("alice"));
        Assert.Empty(await node.Host.Queue.ListQueueAsync());
    }

    [Fact]
    public async Task A_trusted_network_may_relay_and_its_mail_is_queued()
    {
        await using var node = await TestNode.StartAsync(["alice"], o =>
        {
            o.Relay.TrustedNetworks = ["127.0.0.0/8"];
            o.Dns.Servers = ["127.0.0.1:9"];
            o.Relay.RetryMinSeconds = 3600;
        });
        await using var mx = await RawSmtp.ConnectAsync(node.Smtp);
        await mx.SendAsync("EHLO app.test");
        Assert.StartsWith("250", await mx.SendAsync("MAIL FROM:<app@" + Local + ">"));
        Assert.StartsWith("250", await mx.SendAsync("RCPT TO:<someone@outside.test>"));
        // Still no literal or routing games.
        Assert.Matches("^5", await mx.SendAsync("RCPT TO:<someone@[10.0.0.1]>"));
        Assert.Contains("queued as", await mx.DataAsync("From: app@example.test\r\nSubject: report\r\n\r\nx\r\n"u8.ToArray()));
        var entry = Assert.Single(await node.Host.Queue.ListQueueAsync());
        Assert.Equal("someone@outside.test", Assert.Single(entry.Recipients).Address);
    }
}
