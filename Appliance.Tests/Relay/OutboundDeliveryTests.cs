using System.Net;
using System.Text;
using Appliance.Store;
using Appliance.Tests.Smtp;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace Appliance.Tests.Relay;

/// <summary>
/// Outbound delivery end to end: a user submits with MailKit, the node resolves MX records
/// through a test DNS (Dns:Servers) and delivers to scriptable test MX hosts on loopback
/// addresses (Relay:Port is their shared port), or to a smart host with AUTH. Failures are forced
/// (refused connections, 4xx, 5xx, stalls) and the outcome is what the sender sees: the mail at
/// the MX, or a DSN in the sender's INBOX.
/// </summary>
public sealed class OutboundDeliveryTests
{
    private const string Alice = "alice@" + TestNode.Domain;

    /// <summary>Submission on, outbound mail resolved through <paramref name="dns"/> to MX hosts on <paramref name="mxPort"/>, quick retries.</summary>
    internal static void UseTestNetwork(Appliance.Hosting.ApplianceOptions o, TestDns dns, int mxPort)
    {
        o.Listen.Submission = 0;
        o.Dns.Servers = [dns.Server];
        o.Relay.Port = mxPort;
        o.Relay.RetryMinSeconds = 0.5;
        o.Relay.RetryMaxSeconds = 1;
        o.Relay.ConnectTimeoutSeconds = 3;
        o.Relay.TimeoutSeconds = 5;
    }

    /// <summary>A node (alice, bob) on the test network (<see cref="UseTestNetwork"/>).</summary>
    internal static Task<TestNode> StartNodeAsync(TestDns dns, int mxPort, Action<Appliance.Hosting.ApplianceOptions>? configure = null) =>
        TestNode.StartAsync(["alice", "bob"], o =>
        {
            UseTestNetwork(o, dns, mxPort);
            configure?.Invoke(o);
        });

    internal static async Task<string> SubmitAsync(TestNode node, MimeMessage message, string user = Alice)
    {
        using var client = new SmtpClient { ServerCertificateValidationCallback = (_, _, _, _) => true };
        await client.ConnectAsync(node.Submission.Address.ToString(), node.Submission.Port, SecureSocketOptions.StartTls);
        await client.AuthenticateAsync(user, TestNode.Password);
        var reply = await client.SendAsync(message);
        await client.DisconnectAsync(true);
        return reply;
    }

    internal static async Task WaitUntilAsync(Func<Task<bool>> condition, string what, int seconds = 60)
    {
        for (var i = 0; i < seconds * 10; i++)
        {
            if (await condition()) return;
            await Task.Delay(100);
        }
        Assert.Fail("timed out waiting for " + what);
    }

    private static Task WaitForEmptyQueueAsync(TestNode node) =>
        WaitUntilAsync(async () => (await node.Host.Queue.ListQueueAsync()).Count == 0, "the queue to empty");

    /// <summary>The delivery reports (multipart/report) in the user's INBOX.</summary>
    internal static async Task<List<MimeMessage>> ReportsAsync(TestNode node, string local = "alice") =>
        [.. (await node.InboxBytesAsync(local)).Select(b => MimeMessage.Load(new MemoryStream(b))).Where(m => m.Body is MultipartReport)];

    internal static async Task<MimeMessage> WaitForReportAsync(TestNode node, int count = 1)
    {
        await WaitUntilAsync(async () => (await ReportsAsync(node)).Count >= count, $"{count} report(s) in alice's INBOX");
        return (await ReportsAsync(node))[count - 1];
    }

    internal static string DeliveryStatus(MimeMessage report)
    {
        var status = Assert.IsType<MultipartReport>(report.Body).OfType<MessageDeliveryStatus>().Single();
        using var ms = new MemoryStream();
        status.Content!.DecodeTo(ms);
        return Encoding.UTF8.GetString(ms.ToArray());
    }

    [Fact]
    public async Task Mail_for_a_remote_domain_reaches_its_mx_over_starttls_byte_for_byte()
    {
        await using var dns = TestDns.Start();
        using var cert = TestMx.TestCertificate("mx1.remote.test");
        await using var mx = await TestMx.StartAsync(IPAddress.Parse("127.0.0.2"), certificate: cert);
        dns.Add("remote.test", "MX", "10 mx1.remote.test");
        dns.Add("mx1.remote.test", "A", "127.0.0.2");
        await using var node = await StartNodeAsync(dns, mx.Endpoint.Port);

        var message = Mailkit.Text(Alice, "carol@remote.test", "to the world", "body line\r\n.a line with a leading dot\r\nünïcode");
        Assert.Contains("queued as", await SubmitAsync(node, message));
        var got = await mx.WaitAsync();
        Assert.Equal(Alice, got.From);
        Assert.Equal(["carol@remote.test"], got.To);
        Assert.True(got.Secure, "opportunistic STARTTLS was not used");
        Assert.Equal("mx.test", got.Helo);
        var text = Encoding.UTF8.GetString(got.Data);
        Assert.StartsWith("Received: from ", text);
        Assert.Contains("with ESMTPSA", text);
        // What the user sent follows our headers unchanged.
        Assert.EndsWith(Encoding.UTF8.GetString(Mailkit.WireBytes(message)), text);
        await WaitForEmptyQueueAsync(node);
        // No key for this domain (made outside the journal): not signed.
        Assert.DoesNotContain("DKIM-Signature:", text);
    }

    [Fact]
    public async Task Mail_from_a_domain_with_a_key_arrives_dkim_signed_and_verifies_against_the_published_record()
    {
        await using var dns = TestDns.Start();
        await using var mx = await TestMx.StartAsync(IPAddress.Parse("127.0.0.2"));
        dns.Route("remote.test", "127.0.0.2");
        await using var node = await StartNodeAsync(dns, mx.Endpoint.Port);
        // A domain added through the provisioning journal gets its key; the record is what `appliance domain dkim` prints.
        await node.Host.Provisioning.AddDomainAsync("signed.test", "test");
        await node.Host.Provisioning.AddMailboxAsync("olga@signed.test", TestNode.Password, null, null, "test");
        var record = await node.Host.Provisioning.GetDkimRecordAsync("signed.test") ?? throw new InvalidOperationException("no DKIM key");

        await SubmitAsync(node, Mailkit.Text("olga@signed.test", "carol@remote.test", "signed", "body ünïcode"), "olga@signed.test");
        var got = await mx.WaitAsync();
        var text = Encoding.UTF8.GetString(got.Data);
        Assert.Contains("DKIM-Signature:", text);
        Assert.Contains($"s={record.Selector}", text.Replace("\r\n\t", " ").Replace(" ", ""));
        Assert.True(DkimTestVerifier.MimeKitVerifies(got.Data, record.Value), "MimeKit's DkimVerifier refused the signature");
        Assert.True(DkimTestVerifier.RawVerifies(got.Data, record.Value), "the signature does not verify");
        // Tampered in transit: it no longer verifies.
        var tampered = Encoding.UTF8.GetBytes(text.Replace("Subject: signed", "Subject: signeD"));
        Assert.False(DkimTestVerifier.MimeKitVerifies(tampered, record.Value));
        await WaitForEmptyQueueAsync(node);
    }

    [Fact]
    public async Task Mx_hosts_are_tried_in_preference_order_past_refused_and_unwilling_ones()
    {
        await using var dns = TestDns.Start();
        var mxes = await TestMx.StartSamePortAsync([IPAddress.Parse("127.0.0.3"), IPAddress.Parse("127.0.0.4")]);
        await using var unwilling = mxes[0];
        await using var good = mxes[1];
        unwilling.GreetingReply = "421 4.3.2 Service not available";
        dns.Add("remote.test", "MX", "5 down.remote.test");      // nothing listens there
        dns.Add("remote.test", "MX", "10 busy.remote.test");
        dns.Add("remote.test", "MX", "20 good.remote.test");
        dns.Add("down.remote.test", "A", "127.0.0.9");
        dns.Add("busy.remote.test", "A", "127.0.0.3");
        dns.Add("good.remote.test", "A", "127.0.0.4");
        // Implicit MX: a domain with an address and no MX record.
        dns.Add("implicit.test", "A", "127.0.0.4");
        await using var node = await StartNodeAsync(dns, good.Endpoint.Port);

        await SubmitAsync(node, Mailkit.Text(Alice, "dan@remote.test", "preference", "b"));
        await SubmitAsync(node, Mailkit.Text(Alice, "eve@implicit.test", "implicit", "b"));
        await good.WaitAsync(m => m.To.Contains("dan@remote.test"));
        await good.WaitAsync(m => m.To.Contains("eve@implicit.test"));
        Assert.True(unwilling.Connections >= 1);
        Assert.Empty(unwilling.Received);
        await WaitForEmptyQueueAsync(node);
    }

    [Fact]
    public async Task Temporary_failures_are_retried_and_a_stalled_host_times_out()
    {
        await using var dns = TestDns.Start();
        var mxes = await TestMx.StartSamePortAsync([IPAddress.Parse("127.0.0.2"), IPAddress.Parse("127.0.0.7")]);
        await using var mx = mxes[0];
        await using var slow = mxes[1];
        dns.Route("remote.test", "127.0.0.2");
        dns.Route("slow.test", "127.0.0.7");
        var refusals = 0;
        mx.OnRcpt = _ => Interlocked.Increment(ref refusals) <= 2 ? "450 4.2.0 Greylisted, try again later" : null;
        // A host that accepts connections and never greets: the attempt times out and is tried again.
        slow.StallGreeting = true;
        await using var node = await StartNodeAsync(dns, mx.Endpoint.Port);

        await SubmitAsync(node, Mailkit.Text(Alice, "frank@remote.test", "greylisted", "b"));
        var got = await mx.WaitAsync();
        Assert.Equal(["frank@remote.test"], got.To);
        Assert.True(refusals >= 3);

        await SubmitAsync(node, Mailkit.Text(Alice, "grace@slow.test", "stalled", "b"));
        await WaitUntilAsync(async () => (await node.Host.Queue.ListQueueAsync()) is [{ Attempts: >= 1 } e] && e.LastError.Length > 0, "a failed attempt");
        var entry = Assert.Single(await node.Host.Queue.ListQueueAsync());
        Assert.Equal(RecipientState.Queued, entry.Recipients[0].State);
        Assert.Contains("mx.slow.test", entry.LastError);
        slow.StallGreeting = false;
        await slow.WaitAsync(m => m.To.Contains("grace@slow.test"));
        await WaitForEmptyQueueAsync(node);
        Assert.Empty(await ReportsAsync(node));
    }

    [Fact]
    public async Task A_burst_to_one_host_reuses_its_sessions()
    {
        await using var dns = TestDns.Start();
        await using var mx = await TestMx.StartAsync(IPAddress.Parse("127.0.0.2"));
        dns.Route("remote.test", "127.0.0.2");
        await using var node = await StartNodeAsync(dns, mx.Endpoint.Port, o => o.Relay.MaxParallelDeliveries = 2);
        using var client = new SmtpClient { ServerCertificateValidationCallback = (_, _, _, _) => true };
        await client.ConnectAsync(node.Submission.Address.ToString(), node.Submission.Port, SecureSocketOptions.StartTls);
        await client.AuthenticateAsync(Alice, TestNode.Password);
        for (var i = 0; i < 20; i++) await client.SendAsync(Mailkit.Text(Alice, $"r{i}@remote.test", $"burst {i}", "b"));
        await WaitUntilAsync(() => Task.FromResult(mx.Received.Count == 20), "20 messages at the MX");
        // At most 2 deliveries at a time: a few sessions carry all 20 messages, each whole.
        Assert.InRange(mx.Connections, 1, 10);
        Assert.Equal(20, mx.Received.Select(m => m.To.Single()).Distinct().Count());
        await WaitForEmptyQueueAsync(node);
    }

    [Fact]
    public async Task A_refused_recipient_bounces_to_the_sender_and_the_others_are_delivered()
    {
        await using var dns = TestDns.Start();
        await using var mx = await TestMx.StartAsync(IPAddress.Parse("127.0.0.2"));
        dns.Route("remote.test", "127.0.0.2");
        mx.OnRcpt = r => r.StartsWith("nobody@", StringComparison.Ordinal) ? "550 5.1.1 <nobody@remote.test>: Recipient address rejected: User unknown" : null;
        await using var node = await StartNodeAsync(dns, mx.Endpoint.Port);

        var message = Mailkit.Text(Alice, "henry@remote.test", "partly wrong", "b");
        message.To.Add(MailboxAddress.Parse("nobody@remote.test"));
        await SubmitAsync(node, message);
        var got = await mx.WaitAsync();
        Assert.Equal(["henry@remote.test"], got.To);

        var report = await WaitForReportAsync(node);
        Assert.Equal("Undelivered Mail Returned to Sender", report.Subject);
        Assert.Equal("MAILER-DAEMON@mx.test", report.From.Mailboxes.Single().Address);
        var status = DeliveryStatus(report);
        Assert.Contains("Final-Recipient: rfc822; nobody@remote.test", status);
        Assert.Contains("Action: failed", status);
        Assert.Contains("Status: 5.1.1", status);
        Assert.Contains("User unknown", status);
        Assert.DoesNotContain("henry@remote.test", status);
        // The bounce came from the null sender, so it cannot bounce in turn.
        var raw = Encoding.UTF8.GetString((await node.InboxBytesAsync("alice")).Last());
        Assert.StartsWith("Return-Path: <>", raw);
        await WaitForEmptyQueueAsync(node);
    }

    [Fact]
    public async Task Domains_without_mail_bounce_at_once_and_a_refused_message_bounces()
    {
        await using var dns = TestDns.Start();
        await using var mx = await TestMx.StartAsync(IPAddress.Parse("127.0.0.2"));
        dns.Add("nullmx.test", "MX", "0 .");
        dns.Route("remote.test", "127.0.0.2");
        mx.DataReply = "554 5.7.1 Message refused: looks like spam";
        await using var node = await StartNodeAsync(dns, mx.Endpoint.Port);

        await SubmitAsync(node, Mailkit.Text(Alice, "x@nullmx.test", "null mx", "b"));
        Assert.Contains("Status: 5.1.10", DeliveryStatus(await WaitForReportAsync(node, 1)));
        await SubmitAsync(node, Mailkit.Text(Alice, "y@no-such-domain.test", "nxdomain", "b"));
        Assert.Contains("Status: 5.1.2", DeliveryStatus(await WaitForReportAsync(node, 2)));
        await SubmitAsync(node, Mailkit.Text(Alice, "z@remote.test", "spam?", "b"));
        var refused = DeliveryStatus(await WaitForReportAsync(node, 3));
        Assert.Contains("Status: 5.7.1", refused);
        Assert.Contains("Remote-MTA: dns; mx.remote.test", refused);
        Assert.Contains("looks like spam", refused);
        Assert.Empty(mx.Received);
        await WaitForEmptyQueueAsync(node);
    }

    [Fact]
    public async Task A_bounce_for_a_sender_elsewhere_goes_out_from_the_null_sender()
    {
        await using var dns = TestDns.Start();
        var mxes = await TestMx.StartSamePortAsync([IPAddress.Parse("127.0.0.2"), IPAddress.Parse("127.0.0.6")]);
        await using var remote = mxes[0];
        await using var senders = mxes[1];
        dns.Route("remote.test", "127.0.0.2");
        dns.Route("sender.test", "127.0.0.6");
        remote.OnRcpt = _ => "550 5.1.1 No such user";
        await using var node = await StartNodeAsync(dns, remote.Endpoint.Port, o => o.Relay.TrustedNetworks = ["127.0.0.0/8"]);

        // An application server on a trusted network relays for an outside sender.
        await using (var app = await RawSmtp.ConnectAsync(node.Smtp))
        {
            await app.SendAsync("EHLO app.test");
            Assert.StartsWith("250", await app.SendAsync("MAIL FROM:<app@sender.test>"));
            Assert.StartsWith("250", await app.SendAsync("RCPT TO:<nobody@remote.test>"));
            Assert.Contains("queued as", await app.DataAsync("From: app@sender.test\r\nSubject: invoice\r\n\r\nx\r\n"u8.ToArray()));
        }
        var bounce = await senders.WaitAsync();
        Assert.Equal("", bounce.From);
        Assert.Equal(["app@sender.test"], bounce.To);
        var report = MimeMessage.Load(new MemoryStream(bounce.Data));
        Assert.Contains("Status: 5.1.1", DeliveryStatus(report));
        await WaitForEmptyQueueAsync(node);
    }

    [Fact]
    public async Task An_alias_forwarding_outside_sends_a_copy_there_and_loops_are_cut()
    {
        await using var dns = TestDns.Start();
        await using var mx = await TestMx.StartAsync(IPAddress.Parse("127.0.0.2"));
        dns.Route("remote.test", "127.0.0.2");
        await using var node = await StartNodeAsync(dns, mx.Endpoint.Port);
        await node.Host.Provisioning.AddAliasAsync("team@" + TestNode.Domain, [Alice, "boss@remote.test"], "test");

        // Anyone, unauthenticated on the MX, may write to the alias: the administrator chose where it goes.
        await using (var smtp = await RawSmtp.ConnectAsync(node.Smtp))
        {
            await smtp.SendAsync("EHLO outside.test");
            Assert.StartsWith("250", await smtp.SendAsync("MAIL FROM:<customer@outside.test>"));
            Assert.StartsWith("250", await smtp.SendAsync($"RCPT TO:<team@{TestNode.Domain}>"));
            Assert.StartsWith("250", await smtp.DataAsync("From: customer@outside.test\r\nSubject: question\r\n\r\nhello team\r\n"u8.ToArray()));

            // Around and around: 50 Received headers is a loop, refused.
            Assert.StartsWith("250", await smtp.SendAsync("MAIL FROM:<customer@outside.test>"));
            Assert.StartsWith("250", await smtp.SendAsync($"RCPT TO:<team@{TestNode.Domain}>"));
            var looped = string.Concat(Enumerable.Repeat("Received: from a by b; Thu, 26 Nov 2026 10:00:00 +0000\r\n", 50)) + "Subject: loop\r\n\r\nx\r\n";
            Assert.StartsWith("554 5.4.6", await smtp.DataAsync(Encoding.ASCII.GetBytes(looped)));
        }
        var forwarded = await mx.WaitAsync();
        Assert.Equal("customer@outside.test", forwarded.From);
        Assert.Equal(["boss@remote.test"], forwarded.To);
        Assert.Contains("hello team", Encoding.UTF8.GetString(forwarded.Data));
        Assert.Single(await node.InboxAsync("alice"));
        await WaitForEmptyQueueAsync(node);

        // Mail queued for the alias (here: from alice's submission) is expanded by the queue the same way.
        await SubmitAsync(node, Mailkit.Text(Alice, "team@" + TestNode.Domain, "internal", "to the team"));
        await mx.WaitAsync(m => Encoding.UTF8.GetString(m.Data).Contains("Subject: internal"));
        await WaitForEmptyQueueAsync(node);
    }

    [Fact]
    public async Task A_failing_resolver_defers_and_never_bounces()
    {
        await using var dns = TestDns.Start();
        await using var mx = await TestMx.StartAsync(IPAddress.Parse("127.0.0.2"));
        dns.Route("flaky.test", "127.0.0.2");
        dns.Fail("flaky.test", DnsFault.ServFail);
        await using var node = await StartNodeAsync(dns, mx.Endpoint.Port);

        await SubmitAsync(node, Mailkit.Text(Alice, "paul@flaky.test", "dns trouble", "b"));
        await WaitUntilAsync(async () => (await node.Host.Queue.ListQueueAsync()) is [{ Attempts: >= 2 } e] && e.LastError.Contains("DNS"), "attempts failing on DNS");
        Assert.Equal(RecipientState.Queued, Assert.Single(await node.Host.Queue.ListQueueAsync()).Recipients[0].State);
        Assert.Empty(await ReportsAsync(node));
        dns.Heal("flaky.test");
        await mx.WaitAsync(m => m.To.Contains("paul@flaky.test"));
        await WaitForEmptyQueueAsync(node);
    }

    [Fact]
    public async Task An_odd_but_valid_address_is_delivered_as_given()
    {
        await using var dns = TestDns.Start();
        await using var mx = await TestMx.StartAsync(IPAddress.Parse("127.0.0.2"));
        dns.Route("remote.test", "127.0.0.2");
        await using var node = await StartNodeAsync(dns, mx.Endpoint.Port);
        await using var raw = await RawSmtp.ConnectAsync(node.Submission);
        await raw.SendAsync("EHLO client.test");
        Assert.StartsWith("235", await raw.SendAsync("AUTH PLAIN " + Convert.ToBase64String(Encoding.UTF8.GetBytes($"\0{Alice}\0{TestNode.Password}"))));
        Assert.StartsWith("250", await raw.SendAsync($"MAIL FROM:<{Alice}>"));
        Assert.StartsWith("250", await raw.SendAsync("RCPT TO:<\"john doe\"@remote.test>"));
        Assert.StartsWith("250", await raw.SendAsync("RCPT TO:<o'brien+tag@remote.test>"));
        Assert.StartsWith("250", await raw.DataAsync(Encoding.ASCII.GetBytes($"From: {Alice}\r\nSubject: odd\r\n\r\nx\r\n")));
        var got = await mx.WaitAsync();
        Assert.Contains("o'brien+tag@remote.test", got.To);
        Assert.Contains(got.To, t => t.Contains("john doe", StringComparison.Ordinal));
        await WaitForEmptyQueueAsync(node);
        Assert.Empty(await ReportsAsync(node));
    }

    [Fact]
    public async Task The_sender_hears_of_a_delay_once_and_of_the_failure_when_the_queue_lifetime_ends()
    {
        await using var dns = TestDns.Start();
        await using var mx = await TestMx.StartAsync(IPAddress.Parse("127.0.0.2"));
        dns.Route("remote.test", "127.0.0.2");
        mx.OnRcpt = _ => "451 4.3.0 Temporary local problem";
        await using var node = await StartNodeAsync(dns, mx.Endpoint.Port, o =>
        {
            o.Relay.DelayWarningHours = 1.0 / 3600;   // 1 s
            o.Relay.QueueLifetimeHours = 6.0 / 3600;  // 6 s
        });

        await SubmitAsync(node, Mailkit.Text(Alice, "ivan@remote.test", "will not make it", "b"));
        var delay = await WaitForReportAsync(node, 1);
        Assert.Equal("Delayed Mail (still being retried)", delay.Subject);
        var delayed = DeliveryStatus(delay);
        Assert.Contains("Action: delayed", delayed);
        Assert.Contains("Will-Retry-Until:", delayed);
        var bounce = await WaitForReportAsync(node, 2);
        Assert.Equal("Undelivered Mail Returned to Sender", bounce.Subject);
        var failed = DeliveryStatus(bounce);
        Assert.Contains("Action: failed", failed);
        Assert.Contains("Status: 4.4.7", failed);
        await WaitForEmptyQueueAsync(node);
        Assert.Equal(2, (await ReportsAsync(node)).Count); // one delay notice, not one per attempt
    }

    [Fact]
    public async Task A_smart_host_gets_everything_with_our_credentials_over_tls()
    {
        await using var dns = TestDns.Start();
        using var cert = TestMx.TestCertificate("smarthost.test");
        await using var smart = await TestMx.StartAsync(IPAddress.Parse("127.0.0.5"), certificate: cert, requireUser: "relayuser", requirePassword: "relay secret");
        await using var node = await StartNodeAsync(dns, 9, o =>
        {
            o.Relay.SmartHost = $"127.0.0.5:{smart.Endpoint.Port}";
            o.Relay.SmartHostUser = "relayuser";
            o.Relay.SmartHostPassword = "relay secret";
            o.Relay.SmartHostVerifyCertificate = false;
        });

        var message = Mailkit.Text(Alice, "one@first.test", "via smart host", "b");
        message.To.Add(MailboxAddress.Parse("two@second.test"));
        await SubmitAsync(node, message);
        var got = await smart.WaitAsync();
        Assert.Equal("relayuser", got.AuthenticatedUser);
        Assert.True(got.Secure);
        Assert.Equal(["one@first.test", "two@second.test"], got.To.Order());
        Assert.Equal(0, dns.QueryCount("first.test", "MX"));
        await WaitForEmptyQueueAsync(node);
    }

    [Fact]
    public async Task A_smart_host_without_tls_never_gets_the_password_and_the_mail_waits()
    {
        await using var dns = TestDns.Start();
        await using var smart = await TestMx.StartAsync(IPAddress.Parse("127.0.0.5"), requireUser: "relayuser", requirePassword: "relay secret");
        await using var node = await StartNodeAsync(dns, 9, o =>
        {
            o.Relay.SmartHost = $"127.0.0.5:{smart.Endpoint.Port}";
            o.Relay.SmartHostUser = "relayuser";
            o.Relay.SmartHostPassword = "relay secret";
        });
        await SubmitAsync(node, Mailkit.Text(Alice, "one@first.test", "no tls", "b"));
        await WaitUntilAsync(async () => (await node.Host.Queue.ListQueueAsync()) is [{ Attempts: >= 1 }], "a failed attempt");
        var entry = Assert.Single(await node.Host.Queue.ListQueueAsync());
        Assert.Contains("no TLS", entry.LastError);
        Assert.DoesNotContain(smart.Commands, c => c.StartsWith("AUTH", StringComparison.OrdinalIgnoreCase));
        Assert.Empty(await ReportsAsync(node));
    }

    [Fact]
    public async Task The_queue_survives_a_restart_and_is_managed_by_hold_release_retry_and_delete()
    {
        await using var dns = TestDns.Start();
        // Find a free port for the MX, and keep it closed for now: the host refuses connections.
        var port = await TestMx.FreePortAsync(IPAddress.Parse("127.0.0.2"));
        dns.Route("remote.test", "127.0.0.2");
        await using var node = await StartNodeAsync(dns, port, o => o.Relay.RetryMinSeconds = o.Relay.RetryMaxSeconds = 3600);

        await SubmitAsync(node, Mailkit.Text(Alice, "kept@remote.test", "keep me", "b"));
        await SubmitAsync(node, Mailkit.Text(Alice, "held@remote.test", "hold me", "b"));
        await SubmitAsync(node, Mailkit.Text(Alice, "gone@remote.test", "delete me", "b"));
        await WaitUntilAsync(async () => (await node.Host.Queue.ListQueueAsync()).All(e => e.Attempts >= 1), "first attempts");
        var ids = (await node.Host.Queue.ListQueueAsync()).ToDictionary(e => e.Recipients[0].Address, e => e.Id);
        await node.Host.Queue.HoldQueuedAsync(ids["held@remote.test"], true, "test");
        await node.Host.Queue.DeleteQueuedAsync(ids["gone@remote.test"], "test");
        await Assert.ThrowsAsync<Appliance.Directory.DirectoryException>(() => node.Host.Queue.DeleteQueuedAsync("FFFFFFFFFFFF", "test"));

        await node.RestartAsync();
        var after = await node.Host.Queue.ListQueueAsync();
        Assert.Equal(["held@remote.test", "kept@remote.test"], after.Select(e => e.Recipients[0].Address).Order());
        Assert.True(after.Single(e => e.Id == ids["held@remote.test"]).Held);

        await using var mx = await TestMx.StartAsync(IPAddress.Parse("127.0.0.2"), port);
        Assert.Equal(1, await node.Host.Queue.RetryQueuedAsync(null, "test")); // the held one stays held
        await mx.WaitAsync(m => m.To.Contains("kept@remote.test"));
        var held = (await node.Host.Queue.ShowQueuedAsync(ids["held@remote.test"])).Entry;
        Assert.True(held.Held);
        Assert.Equal(after.Single(e => e.Id == held.Id).Attempts, held.Attempts); // not tried while held
        await node.Host.Queue.HoldQueuedAsync(ids["held@remote.test"], false, "test");
        await mx.WaitAsync(m => m.To.Contains("held@remote.test"));
        await WaitForEmptyQueueAsync(node);
        Assert.DoesNotContain(mx.Received, m => m.To.Contains("gone@remote.test"));
        Assert.Empty(await ReportsAsync(node));
    }
}
