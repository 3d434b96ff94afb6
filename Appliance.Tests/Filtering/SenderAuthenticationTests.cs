using System.Text;
using Appliance.Tests.Relay;
using Appliance.Tests.Smtp;

namespace Appliance.Tests.Filtering;

/// <summary>
/// Sender authentication on the MX with a resolver configured (Dns:Servers, here a test DNS):
/// each message gets an Authentication-Results field (RFC 8601) with its SPF, DKIM and DMARC results above our
/// Received, a field that claims our name is removed, and a node without a configured
/// resolver asks nothing and adds nothing.
/// </summary>
public sealed class SenderAuthenticationTests
{
    private const string Alice = "alice@" + TestNode.Domain;

    private static async Task<string> DeliveredAsync(TestNode node, string raw, string from, string helo = "client.test")
    {
        await using var smtp = await RawSmtp.ConnectAsync(node.Smtp);
        Assert.StartsWith("250", await smtp.SendAsync("EHLO " + helo));
        Assert.StartsWith("250", await smtp.SendAsync($"MAIL FROM:<{from}>"));
        Assert.StartsWith("250", await smtp.SendAsync($"RCPT TO:<{Alice}>"));
        Assert.StartsWith("354", await smtp.SendAsync("DATA"));
        Assert.StartsWith("250", await smtp.SendAsync(raw + "\r\n."));
        var stored = await node.InboxBytesAsync("alice");
        return Encoding.UTF8.GetString(stored[^1]);
    }

    [Fact]
    public async Task Spf_results_are_recorded_and_a_forged_record_in_our_name_is_removed()
    {
        await using var dns = TestDns.Start();
        dns.Add("good.test", "TXT", "v=spf1 ip4:127.0.0.0/8 -all");
        dns.Add("spoofed.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all");
        dns.Add("client.test", "TXT", "v=spf1 a -all");
        dns.Add("client.test", "A", "127.0.0.1");
        await using var node = await TestNode.StartAsync(["alice"], o => o.Dns.Servers = [dns.Server]);

        var pass = await DeliveredAsync(node, "From: x@good.test\r\nSubject: hi\r\n\r\nbody", "x@good.test");
        Assert.StartsWith("Return-Path: <x@good.test>\r\nAuthentication-Results: mx.test;\r\n" +
            "\tspf=pass (good.test: 127.0.0.1 matched ip4:127.0.0.0/8) smtp.mailfrom=x@good.test;\r\n" +
            "\tdkim=none;\r\n" +
            "\tarc=none;\r\n" +
            "\tdmarc=none (good.test publishes no DMARC policy) header.from=good.test\r\n" +
            "Received: from client.test", pass);

        var fail = await DeliveredAsync(node, "From: x@spoofed.test\r\nSubject: hi\r\n\r\nbody", "x@spoofed.test");
        Assert.Contains("\tspf=fail (spoofed.test: 127.0.0.1 matched -all) smtp.mailfrom=x@spoofed.test;\r\n", fail);

        var none = await DeliveredAsync(node, "Subject: hi\r\n\r\nbody", "x@unknown.test");
        Assert.Contains("\tspf=none (unknown.test publishes no SPF record) smtp.mailfrom=x@unknown.test;\r\n", none);
        Assert.Contains("\tdmarc=none (no From address) header.from=\r\n", none);

        // A bounce (null sender) is judged by its HELO name.
        var bounce = await DeliveredAsync(node, "Subject: bounce\r\n\r\nbody", "");
        Assert.Contains("\tspf=pass (client.test: 127.0.0.1 matched a) smtp.helo=client.test;\r\n", bounce);

        // A field in our name (any case, folded) is dropped; another server's is kept, the body untouched.
        const string forged = "Authentication-Results: MX.TEST;\r\n spf=pass smtp.mailfrom=x@spoofed.test\r\n" +
            "Authentication-Results: other.example; spf=pass smtp.mailfrom=x@spoofed.test\r\n" +
            "Subject: trust me\r\n\r\nAuthentication-Results: mx.test; in the body stays";
        var stripped = await DeliveredAsync(node, forged, "x@spoofed.test");
        var ours = stripped.Split("Authentication-Results: mx.test;", StringSplitOptions.None).Skip(1).ToList();
        Assert.Equal(2, ours.Count); // ours at the top, and the body's line
        Assert.StartsWith("\r\n\tspf=fail", ours[0]);
        Assert.DoesNotContain("MX.TEST", stripped);
        Assert.Contains("Authentication-Results: other.example; spf=pass", stripped);
        Assert.EndsWith("Subject: trust me\r\n\r\nAuthentication-Results: mx.test; in the body stays\r\n", stripped);
    }

    [Fact]
    public async Task Without_a_configured_resolver_nothing_is_asked_or_added()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        var stored = await DeliveredAsync(node, "Subject: hi\r\n\r\nbody", "x@good.test");
        Assert.StartsWith("Return-Path: <x@good.test>\r\nReceived: from client.test", stored);
        Assert.DoesNotContain("Authentication-Results", stored);
    }
}
