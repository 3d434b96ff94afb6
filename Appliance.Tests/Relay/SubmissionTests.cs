using System.Net;
using Appliance.Tests.Smtp;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace Appliance.Tests.Relay;

/// <summary>
/// Submission (RFC 6409) on 2587 (STARTTLS) and 2465 (implicit TLS) with MailKit: AUTH first,
/// only over TLS outside loopback dev mode; the sender and the From header must be the user's;
/// hosted recipients are delivered at once, the rest queued; per-user limits.
/// </summary>
public sealed class SubmissionTests
{
    private const string Alice = "alice@" + TestNode.Domain;
    private const string Bob = "bob@" + TestNode.Domain;

    private static Task<TestNode> StartAsync(Action<Appliance.Hosting.ApplianceOptions>? configure = null) =>
        TestNode.StartAsync(["alice", "bob"], o =>
        {
            o.Listen.Submission = 0;
            o.Listen.Smtps = 0;
            // Nothing answers there: remote mail stays queued (tests here look at the queue).
            o.Dns.Servers = ["127.0.0.1:9"];
            o.Relay.RetryMinSeconds = 3600;
            configure?.Invoke(o);
        });

    private static async Task<SmtpClient> ConnectAsync(IPEndPoint ep, SecureSocketOptions tls, string? user = Alice, string password = TestNode.Password)
    {
        var client = new SmtpClient { ServerCertificateValidationCallback = (_, _, _, _) => true, LocalDomain = "client.test" };
        await client.ConnectAsync(ep.Address.ToString(), ep.Port, tls);
        if (user is not null) await client.AuthenticateAsync(user, password);
        return client;
    }

    [Fact]
    public async Task Authenticated_user_sends_to_a_local_and_a_remote_recipient_over_starttls_and_implicit_tls()
    {
        await using var node = await StartAsync();
        foreach (var (ep, tls) in new[] { (node.Submission, SecureSocketOptions.StartTls), (node.Smtps, SecureSocketOptions.SslOnConnect) })
        {
            using var client = await ConnectAsync(ep, tls);
            Assert.True(client.IsSecure);
            var m = Mailkit.Text(Alice, Bob, "hello over " + tls, "hi bob");
            m.To.Add(MailboxAddress.Parse("carol@elsewhere.test"));
            var reply = await client.SendAsync(m);
            Assert.Contains("queued as", reply);
            await client.DisconnectAsync(true);
        }
        // Bob has both at once; carol's copies wait in the queue, with their Received trace.
        var inbox = await node.InboxBytesAsync("bob");
        Assert.Equal(2, inbox.Count);
        Assert.Contains("with ESMTPSA", System.Text.Encoding.UTF8.GetString(inbox[0]));
        var queue = await node.Host.Queue.ListQueueAsync();
        Assert.Equal(2, queue.Count);
        Assert.All(queue, e => Assert.Equal(Alice, e.Sender));
        Assert.All(queue, e => Assert.Equal(["carol@elsewhere.test"], e.Recipients.Select(r => r.Address)));
        Assert.All(queue, e => Assert.Equal(node.User("alice").Partition, e.Partition));
        var (_, headers) = await node.Host.Queue.ShowQueuedAsync(queue[0].Id);
        Assert.Contains("Subject: hello over StartTls", headers);
    }

    [Fact]
    public async Task Python_smtplib_submits_with_starttls_and_login_and_over_implicit_tls()
    {
        await using var node = await StartAsync(o => o.Node.DevMode = false);
        var script = $$"""
            import ssl
            ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
            msg = "From: {{Alice}}\r\nTo: {{Bob}}, dora@elsewhere.test\r\nSubject: from python\r\n\r\nhello\r\n"
            s = smtplib.SMTP(HOST, PORT)
            s.ehlo()
            assert 'auth' not in s.esmtp_features, 'AUTH offered before STARTTLS'
            s.starttls(context=ctx)
            s.ehlo()
            s.login('{{Alice}}', '{{TestNode.Password}}')
            refused = s.sendmail('{{Alice}}', ['{{Bob}}', 'dora@elsewhere.test'], msg)
            assert refused == {}, refused
            s.quit()
            s = smtplib.SMTP_SSL('{{node.Smtps.Address}}', {{node.Smtps.Port}}, context=ctx)
            try:
                s.login('{{Alice}}', 'wrong password')
                raise SystemExit('a wrong password was accepted')
            except smtplib.SMTPAuthenticationError as e:
                print('refused', e.smtp_code)
            s.quit()
            """;
        var output = await PythonSmtp.RunAsync(node.Submission, script);
        Assert.Contains("refused 535", output);
        Assert.Single(await node.InboxAsync("bob"));
        Assert.Equal("dora@elsewhere.test", Assert.Single(Assert.Single(await node.Host.Queue.ListQueueAsync()).Recipients).Address);
    }

    [Fact]
    public async Task Mail_without_authentication_is_refused_even_for_local_recipients()
    {
        await using var node = await StartAsync();
        await using var raw = await RawSmtp.ConnectAsync(node.Submission);
        await raw.SendAsync("EHLO client.test");
        var mail = await raw.SendAsync($"MAIL FROM:<{Alice}>");
        Assert.StartsWith("530", mail);
        using var client = await ConnectAsync(node.Submission, SecureSocketOptions.StartTls, user: null);
        var ex = await Assert.ThrowsAsync<ServiceNotAuthenticatedException>(() => client.SendAsync(Mailkit.Text(Alice, "x@elsewhere.test", "s", "b")));
        Assert.Empty(await node.Host.Queue.ListQueueAsync());
    }

    [Fact]
    public async Task Wrong_password_is_refused()
    {
        await using var node = await StartAsync();
        var ex = await Assert.ThrowsAsync<AuthenticationException>(() => ConnectAsync(node.Submission, SecureSocketOptions.StartTls, Alice, "wrong"));
        Assert.Contains("535", ex.Message + (ex.InnerException?.Message ?? ""), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Plaintext_auth_is_refused_outside_dev_mode_and_offered_only_after_starttls()
    {
        await using var node = await StartAsync(o => o.Node.DevMode = false);
        await using var raw = await RawSmtp.ConnectAsync(node.Submission);
        var ehlo = await raw.SendAsync("EHLO client.test");
        Assert.DoesNotContain("AUTH", ehlo);
        var auth = await raw.SendAsync("AUTH PLAIN " + Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"\0{Alice}\0{TestNode.Password}")));
        Assert.Matches("^5", auth);
        // After STARTTLS it works (MailKit).
        using var client = await ConnectAsync(node.Submission, SecureSocketOptions.StartTls);
        Assert.True(client.IsAuthenticated);
    }

    [Fact]
    public async Task A_user_cannot_forge_another_users_sender_in_the_envelope_or_the_from_header()
    {
        await using var node = await StartAsync();
        await node.Host.Provisioning.AddAliasAsync("sales@" + TestNode.Domain, [Alice], "test");
        await node.Host.Provisioning.AddAliasAsync("@" + TestNode.Domain, [Alice], "test"); // a catch-all is not a licence
        using var client = await ConnectAsync(node.Submission, SecureSocketOptions.StartTls);

        // Envelope sender of another mailbox.
        var envelope = await Assert.ThrowsAsync<SmtpCommandException>(() =>
            client.SendAsync(Mailkit.Text(Alice, "x@elsewhere.test", "s", "b"), MailboxAddress.Parse(Bob), [MailboxAddress.Parse("x@elsewhere.test")]));
        Assert.Equal(SmtpErrorCode.SenderNotAccepted, envelope.ErrorCode);
        Assert.Equal(553, (int)envelope.StatusCode);

        // Own envelope, someone else's From header.
        var header = await Assert.ThrowsAsync<SmtpCommandException>(() =>
            client.SendAsync(Mailkit.Text(Bob, "x@elsewhere.test", "s", "b"), MailboxAddress.Parse(Alice), [MailboxAddress.Parse("x@elsewhere.test")]));
        Assert.Equal(SmtpErrorCode.MessageNotAccepted, header.ErrorCode);
        Assert.Contains("not yours", header.Message);

        // An address only the catch-all covers, and an outside address.
        foreach (var forged in new[] { "nobody@" + TestNode.Domain, "ceo@bank.test", "" })
        {
            var ex = await Assert.ThrowsAsync<SmtpCommandException>(() =>
                client.SendAsync(Mailkit.Text(Alice, "x@elsewhere.test", "s", "b"), forged.Length == 0 ? new MailboxAddress("", "") : MailboxAddress.Parse(forged), [MailboxAddress.Parse("x@elsewhere.test")]));
            Assert.Equal(SmtpErrorCode.SenderNotAccepted, ex.ErrorCode);
        }

        // The alias alice receives may be used, and her own +detail.
        await client.SendAsync(Mailkit.Text("sales@" + TestNode.Domain, "x@elsewhere.test", "from sales", "b"));
        await client.SendAsync(Mailkit.Text("alice+news@" + TestNode.Domain, "x@elsewhere.test", "from detail", "b"));
        Assert.Equal(2, (await node.Host.Queue.ListQueueAsync()).Count);
    }

    [Fact]
    public async Task Missing_date_and_message_id_are_added_and_a_message_without_from_is_refused()
    {
        await using var node = await StartAsync();
        await using var raw = await RawSmtp.ConnectAsync(node.Submission);
        await raw.SendAsync("EHLO client.test");
        Assert.StartsWith("235", await raw.SendAsync("AUTH PLAIN " + Convert.ToBase64String(System.Text.Encoding.UTF8.GetBytes($"\0{Alice}\0{TestNode.Password}"))));
        Assert.StartsWith("250", await raw.SendAsync($"MAIL FROM:<{Alice}>"));
        Assert.StartsWith("250", await raw.SendAsync($"RCPT TO:<{Bob}>"));
        Assert.StartsWith("250", await raw.DataAsync(System.Text.Encoding.ASCII.GetBytes($"From: {Alice}\r\nTo: {Bob}\r\nSubject: bare\r\n\r\nbody\r\n")));
        var stored = System.Text.Encoding.UTF8.GetString((await node.InboxBytesAsync("bob"))[0]);
        Assert.Contains("\r\nDate: ", stored);
        Assert.Contains("\r\nMessage-ID: <", stored);

        Assert.StartsWith("250", await raw.SendAsync($"MAIL FROM:<{Alice}>"));
        Assert.StartsWith("250", await raw.SendAsync($"RCPT TO:<{Bob}>"));
        Assert.StartsWith("550 5.6.0", await raw.DataAsync(System.Text.Encoding.ASCII.GetBytes($"To: {Bob}\r\nSubject: no from\r\n\r\nbody\r\n")));
        Assert.Single(await node.InboxBytesAsync("bob"));
    }

    [Fact]
    public async Task Per_user_hourly_limits_and_the_size_limit_give_clear_errors()
    {
        await using var node = await StartAsync(o =>
        {
            o.Submission.MaxMessagesPerHour = 2;
            o.Submission.MaxRecipientsPerHour = 3;
            o.Submission.MaxMessageSize = 20_000;
        });
        using var client = await ConnectAsync(node.Submission, SecureSocketOptions.StartTls);
        await client.SendAsync(Mailkit.Text(Alice, Bob, "1", "b"));
        var two = Mailkit.Text(Alice, Bob, "2", "b");
        two.To.Add(MailboxAddress.Parse("x@elsewhere.test"));
        await client.SendAsync(two);
        // Third message: over 2 per hour (temporary, the client may try later).
        var third = await Assert.ThrowsAsync<SmtpCommandException>(() => client.SendAsync(Mailkit.Text(Alice, Bob, "3", "b")));
        Assert.Equal(450, (int)third.StatusCode);
        Assert.Contains("limit", third.Message);

        // Bob, on his own: the size limit is permanent.
        using var bob = await ConnectAsync(node.Submission, SecureSocketOptions.StartTls, Bob);
        var big = Mailkit.Text(Bob, Alice, "big", new string('x', 30_000));
        var size = await Assert.ThrowsAsync<SmtpCommandException>(() => bob.SendAsync(big));
        Assert.Equal(552, (int)size.StatusCode);
        // Four recipients in one message: the fourth is over 3 per hour.
        var many = Mailkit.Text(Bob, Alice, "many", "b");
        foreach (var r in new[] { "a@elsewhere.test", "b@elsewhere.test", "c@elsewhere.test" }) many.To.Add(MailboxAddress.Parse(r));
        var rcpt = await Assert.ThrowsAsync<SmtpCommandException>(() => bob.SendAsync(many));
        Assert.Equal(SmtpErrorCode.RecipientNotAccepted, rcpt.ErrorCode);
        Assert.Equal(450, (int)rcpt.StatusCode);
    }
}
