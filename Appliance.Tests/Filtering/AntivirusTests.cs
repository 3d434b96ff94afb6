using System.Text;
using Appliance.Filtering;
using Appliance.Monitoring;
using Appliance.Tests.Smtp;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using Xunit.Abstractions;

namespace Appliance.Tests.Filtering;

/// <summary>
/// Virus scanning before the 250 with Debian's real clamd (<see cref="Clamd"/>): the EICAR test
/// file is refused with 554 5.7.1 on the MX and on submission and nothing is stored or queued,
/// clean mail goes through, a scanner that is down makes mail wait (451) or pass (OnError
/// accept), and the monitoring's clamd check follows it.
/// </summary>
public sealed class AntivirusTests(ITestOutputHelper output)
{
    private static MimeMessage WithAttachment(string from, string to, string subject, string content)
    {
        var body = new BodyBuilder { TextBody = "see the attachment" };
        body.Attachments.Add("tool.com", Encoding.ASCII.GetBytes(content), new ContentType("application", "octet-stream"));
        return new MimeMessage([MailboxAddress.Parse(from)], [MailboxAddress.Parse(to)], subject, body.ToMessageBody());
    }

    private static string Alice => "alice@" + TestNode.Domain;
    private static string Bob => "bob@" + TestNode.Domain;

    [Fact]
    public async Task Real_clamd_refuses_the_test_virus_and_lets_clean_mail_through()
    {
        if (!HostTool.Available(Clamd.Path, output)) return;
        await using var clamd = await Clamd.StartAsync();
        await using var node = await TestNode.StartAsync(["alice", "bob"], o =>
        {
            o.Antivirus.Clamd = clamd.Address;
            o.Listen.Submission = 0;
        });

        await Mailkit.SendAsync(node.Smtp, WithAttachment("x@remote.test", Alice, "clean", "just a tool, no virus"));
        Assert.Single(await node.InboxAsync("alice"));

        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() =>
            Mailkit.SendAsync(node.Smtp, WithAttachment("x@remote.test", Alice, "infected", Clamd.Eicar)));
        Assert.Equal(554, (int)refused.StatusCode);
        Assert.Equal($"5.7.1 Message refused: it contains a virus ({Clamd.Signature})", refused.Message);
        refused = await Assert.ThrowsAsync<SmtpCommandException>(() =>
            Mailkit.SendAsync(node.Smtp, Mailkit.Text("x@remote.test", Alice, "inline", "look: " + Clamd.Eicar)));
        Assert.Equal(554, (int)refused.StatusCode);
        Assert.Single(await node.InboxAsync("alice"));

        // An authenticated user's infected mail is refused too: nothing stored, nothing queued.
        using (var client = new SmtpClient { ServerCertificateValidationCallback = (_, _, _, _) => true })
        {
            await client.ConnectAsync(node.Submission.Address.ToString(), node.Submission.Port, SecureSocketOptions.StartTls);
            await client.AuthenticateAsync(Alice, TestNode.Password);
            var fromAlice = await Assert.ThrowsAsync<SmtpCommandException>(() =>
                client.SendAsync(WithAttachment(Alice, "someone@remote.test", "infected", Clamd.Eicar)));
            Assert.Equal(554, (int)fromAlice.StatusCode);
            Assert.StartsWith("5.7.1 ", fromAlice.Message);
            await Assert.ThrowsAsync<SmtpCommandException>(() => client.SendAsync(WithAttachment(Alice, Bob, "infected", Clamd.Eicar)));
        }
        Assert.Empty(await node.InboxAsync("bob"));
        Assert.Empty(await node.Host.Queue.ListQueueAsync());

        var counters = node.Host.Counters.Snapshot().ToDictionary(c => c.Series, c => c.Value);
        Assert.Equal(2, counters["smtp_rejected_total{role=\"mx\",reason=\"5.7.1\"}"]);
        Assert.Equal(2, counters["smtp_rejected_total{role=\"submission\",reason=\"5.7.1\"}"]);
    }

    [Fact]
    public async Task A_scanner_that_is_down_makes_mail_wait_and_the_clamd_check_says_so()
    {
        if (!HostTool.Available(Clamd.Path, output)) return;
        await using var clamd = await Clamd.StartAsync();
        await using var node = await TestNode.StartAsync(["alice"], o => o.Antivirus.Clamd = clamd.Address);
        var check = (await node.Host.Monitoring.CheckNowAsync(CancellationToken.None)).Single(c => c.Name == "clamd");
        Assert.Equal(CheckStatus.Ok, check.Status);

        await clamd.StopAsync();
        var waiting = await Assert.ThrowsAsync<SmtpCommandException>(() =>
            Mailkit.SendAsync(node.Smtp, Mailkit.Text("x@remote.test", Alice, "while clamd is down", "body")));
        Assert.Equal(451, (int)waiting.StatusCode);
        Assert.Equal("4.7.1 Virus scanner unavailable, try again later", waiting.Message);
        Assert.Empty(await node.InboxAsync("alice"));
        check = (await node.Host.Monitoring.CheckNowAsync(CancellationToken.None)).Single(c => c.Name == "clamd");
        output.WriteLine(check.Output);
        Assert.Equal(CheckStatus.Critical, check.Status);

        // Back: the sender's retry goes through.
        await clamd.StartAgainAsync();
        await Mailkit.SendAsync(node.Smtp, Mailkit.Text("x@remote.test", Alice, "while clamd is down", "body"));
        Assert.Single(await node.InboxAsync("alice"));
    }

    [Fact]
    public async Task With_OnError_accept_mail_passes_unscanned_and_large_mail_is_not_scanned()
    {
        if (!HostTool.Available(Clamd.Path, output)) return;
        await using var clamd = await Clamd.StartAsync();
        await using (var node = await TestNode.StartAsync(["alice"], o =>
        {
            o.Antivirus.Clamd = "unix:" + Path.Combine(Path.GetTempPath(), "no-clamd-here.sock");
            o.Antivirus.OnError = "accept";
        }))
        {
            await Mailkit.SendAsync(node.Smtp, Mailkit.Text("x@remote.test", Alice, "unscanned", "body"));
            Assert.Single(await node.InboxAsync("alice"));
        }
        await using (var node = await TestNode.StartAsync(["alice"], o =>
        {
            o.Antivirus.Clamd = clamd.Address;
            o.Antivirus.MaxScanBytes = 100;
        }))
        {
            await Mailkit.SendAsync(node.Smtp, WithAttachment("x@remote.test", Alice, "too large to scan", Clamd.Eicar));
            Assert.Single(await node.InboxAsync("alice"));
        }
    }

    [Fact]
    public void A_bad_scanner_setting_stops_the_start()
    {
        var dir = Path.Combine(Path.GetTempPath(), "appliance-test-" + Guid.NewGuid().ToString("N")[..12]);
        try
        {
            var o = new Appliance.Hosting.ApplianceOptions();
            o.Node.DataDirectory = dir;
            o.Antivirus.Clamd = "clamd-without-port";
            Assert.Equal("Antivirus:Clamd: 'clamd-without-port' is neither unix:/path nor host:port",
                Assert.Throws<FormatException>(() => Appliance.Hosting.ApplianceHost.Create(o)).Message);
            o.Antivirus.Clamd = "127.0.0.1:3310";
            o.Antivirus.OnError = "bounce";
            Assert.Contains("Antivirus:OnError", Assert.Throws<InvalidOperationException>(() => Appliance.Hosting.ApplianceHost.Create(o)).Message);
        }
        finally
        {
            if (System.IO.Directory.Exists(dir)) System.IO.Directory.Delete(dir, recursive: true);
        }
    }

    [Theory]
    [InlineData("stream: OK", ScanOutcome.Clean, "")]
    [InlineData("stream: Win.Test.EICAR_HDB-1 FOUND", ScanOutcome.Infected, "Win.Test.EICAR_HDB-1")]
    [InlineData("INSTREAM size limit exceeded. ERROR", ScanOutcome.Error, "INSTREAM size limit exceeded. ERROR")]
    [InlineData("", ScanOutcome.Error, "clamd answered nothing")]
    public void Clamd_replies_are_read(string reply, ScanOutcome outcome, string detail)
    {
        var verdict = ClamdClient.Parse(reply);
        Assert.Equal((outcome, detail), (verdict.Outcome, verdict.Detail));
    }
}
