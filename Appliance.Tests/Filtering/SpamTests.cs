using System.Text;
using Appliance.Tests.Relay;
using Appliance.Tests.Smtp;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Net.Smtp;
using MimeKit;

namespace Appliance.Tests.Filtering;

/// <summary>
/// The MX's spam defences end to end (real node, MailKit over SMTP and IMAP, a test DNS for the
/// lists): a user's Bayes filter trained by moving spam into Junk, DNS block and allow lists,
/// sender allow and block lists, the score fields and the two thresholds.
/// </summary>
public sealed class SpamTests(Xunit.Abstractions.ITestOutputHelper output)
{
    private const string Alice = "alice@" + TestNode.Domain;
    private const string Bob = "bob@" + TestNode.Domain;

    private static readonly string[] Filler =
        ["amazing", "exclusive", "winner", "luxury", "guaranteed", "bonus", "limited", "offer", "discount", "premium", "instant", "secret"];

    /// <summary>The n-th of a family of similar spam: the same pitch, some words and the numbers vary.</summary>
    private static MimeMessage Spam(int n)
    {
        var rnd = new Random(n);
        var words = string.Join(' ', Enumerable.Range(0, 6).Select(_ => Filler[rnd.Next(Filler.Length)]));
        return Mailkit.Text($"deals{n}@promo{n % 7}.example", Alice, $"Cheap replica watches and pills, {70 + n % 20}% off today",
            $"Buy luxury replica watches and discount pharmacy pills online. {words}.\r\n" +
            $"Click http://cheap-watches.example/deal?id={n} before midnight, unbeatable prices, free shipping worldwide.\r\n" +
            "To unsubscribe reply STOP.\r\n");
    }

    private static MimeMessage Ham() => Mailkit.Text("carol@partner.example", Alice, "Minutes of the budget review",
        "Hi Alice,\r\n\r\nthe quarterly budget review moved to Thursday at ten in the small meeting room. " +
        "Could you bring the spreadsheet Bob sent last week and the figures for the new office lease?\r\n\r\nThanks, Carol\r\n");

    private static async Task SendAsync(TestNode node, MimeMessage message, string? mailFrom = null, string to = Alice)
    {
        using var client = new SmtpClient();
        await client.ConnectAsync(node.Smtp.Address.ToString(), node.Smtp.Port, MailKit.Security.SecureSocketOptions.None);
        await client.SendAsync(message, MailboxAddress.Parse(mailFrom ?? message.From.Mailboxes.First().Address), [MailboxAddress.Parse(to)]);
        await client.DisconnectAsync(true);
    }

    private static Task<List<string>> FolderAsync(TestNode node, string folder, string local = "alice") =>
        node.FolderTextsAsync(local, folder);

    private static async Task<ImapClient> ImapAsync(TestNode node)
    {
        var imap = new ImapClient();
        await imap.ConnectAsync(node.Imap.Address.ToString(), node.Imap.Port, MailKit.Security.SecureSocketOptions.None);
        await imap.AuthenticateAsync(Alice, TestNode.Password);
        return imap;
    }

    [Fact]
    public async Task After_a_user_moves_20_spam_messages_into_Junk_similar_new_ones_land_in_Junk()
    {
        await using var node = await TestNode.StartAsync(["alice", "bob"]);
        await SendAsync(node, Ham());
        for (var i = 0; i < 20; i++) await SendAsync(node, Spam(i));
        // Untrained, nothing is judged: all of it is in the INBOX, without spam fields.
        var inbox = await FolderAsync(node, "INBOX");
        Assert.Equal(21, inbox.Count);
        Assert.All(inbox, m => Assert.DoesNotContain("X-Spam", m));

        using (var imap = await ImapAsync(node))
        {
            var folder = imap.Inbox;
            await folder.OpenAsync(FolderAccess.ReadWrite);
            var spam = await folder.SearchAsync(MailKit.Search.SearchQuery.SubjectContains("replica"));
            Assert.Equal(20, spam.Count);
            await folder.MoveToAsync(spam, await imap.GetFolderAsync("Junk"));
            await imap.DisconnectAsync(true);
        }
        Assert.Equal((20L, 0L), node.Store.SpamTraining(node.User("alice")));

        // New members of the family go to Junk, marked; a colleague's mail stays in the INBOX.
        await SendAsync(node, Spam(100));
        await SendAsync(node, Spam(101));
        await SendAsync(node, Ham());
        var junk = await FolderAsync(node, "Junk");
        Assert.Equal(22, junk.Count);
        foreach (var m in junk[20..])
        {
            Assert.Contains("X-Spam-Status: Yes, score=5.0 required=5.0\r\n\ttests=BAYES_99=5.0\r\n", m);
            Assert.Contains("X-Spam-Flag: YES\r\n", m);
        }
        inbox = await FolderAsync(node, "INBOX");
        Assert.Equal(2, inbox.Count);
        Assert.Contains("Subject: Minutes of the budget review", inbox[1]);
        Assert.Contains("X-Spam-Status: No, score=0.0 required=5.0\r\n\ttests=BAYES_50=0.0\r\n", inbox[1]);
        Assert.DoesNotContain("X-Spam-Flag", inbox[1]);

        // Bob trained nothing: his copy of the same spam is in his INBOX.
        await SendAsync(node, Spam(102), to: Bob);
        Assert.Single(await FolderAsync(node, "INBOX", "bob"));

        // Moving a message out of Junk teaches ham (it is relearned, not counted twice); into Trash teaches nothing.
        using (var imap = await ImapAsync(node))
        {
            var junkFolder = await imap.GetFolderAsync("Junk");
            await junkFolder.OpenAsync(FolderAccess.ReadWrite);
            var uids = await junkFolder.SearchAsync(MailKit.Search.SearchQuery.All);
            await junkFolder.MoveToAsync(uids[0], imap.Inbox);
            await junkFolder.MoveToAsync(uids[1], await imap.GetFolderAsync("Trash"));
            await imap.DisconnectAsync(true);
        }
        Assert.Equal((19L, 1L), node.Store.SpamTraining(node.User("alice")));
    }

    [Fact]
    public async Task Dns_block_lists_refuse_or_score_and_allow_lists_take_off()
    {
        await using var dns = TestDns.Start();
        // RFC 5782: the client 127.0.0.1 is listed as 1.0.0.127.<zone>.
        dns.Add("1.0.0.127.hard.test", "A", "127.0.0.2");
        dns.Add("1.0.0.127.soft.test", "A", "127.0.0.4");
        dns.Add("1.0.0.127.white.test", "A", "127.0.10.1");
        dns.Add("1.0.0.127.refusing.test", "A", "127.255.255.254");

        await using (var node = await TestNode.StartAsync(["alice"], o => { o.Dns.Servers = [dns.Server]; o.Spam.Dnsbl = ["refusing.test", "hard.test"]; }))
        {
            var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(node, Ham()));
            Assert.Equal(554, (int)refused.StatusCode);
            Assert.StartsWith("5.7.1 Service unavailable; client [127.0.0.1] blocked using hard.test", refused.Message);
            Assert.Empty(await FolderAsync(node, "INBOX"));
        }
        // A weighted listing scores: 6 is over the Junk threshold of 5.
        await using (var node = await TestNode.StartAsync(["alice"], o => { o.Dns.Servers = [dns.Server]; o.Spam.Dnsbl = ["soft.test=6", "refusing.test=9"]; }))
        {
            await SendAsync(node, Ham());
            var junk = Assert.Single(await FolderAsync(node, "Junk"));
            Assert.Contains("X-Spam-Score: 6.0\r\nX-Spam-Status: Yes, score=6.0 required=5.0\r\n\ttests=DNSBL_soft.test=6.0\r\nX-Spam-Flag: YES\r\n", junk);
            Assert.Empty(await FolderAsync(node, "INBOX"));
        }
        // An allow list takes 5 off: 1.0, delivered to the INBOX.
        await using (var node = await TestNode.StartAsync(["alice"], o => { o.Dns.Servers = [dns.Server]; o.Spam.Dnsbl = ["soft.test=6"]; o.Spam.Dnswl = ["white.test"]; }))
        {
            await SendAsync(node, Ham());
            var inbox = Assert.Single(await FolderAsync(node, "INBOX"));
            Assert.Contains("X-Spam-Status: No, score=1.0 required=5.0\r\n\ttests=DNSBL_soft.test=6.0,DNSWL_white.test=-5.0\r\n", inbox);
        }
        // At RejectScore the message is refused after DATA, for everyone.
        await using (var node = await TestNode.StartAsync(["alice"], o => { o.Dns.Servers = [dns.Server]; o.Spam.Dnsbl = ["soft.test=16"]; }))
        {
            var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(node, Ham()));
            Assert.Equal(550, (int)refused.StatusCode);
            Assert.Equal("5.7.1 Message refused as spam (score 16.0, DNSBL_soft.test)", refused.Message);
        }
    }

    [Fact]
    public async Task Allowed_and_blocked_senders_and_forged_spam_fields()
    {
        await using var dns = TestDns.Start();
        dns.Add("1.0.0.127.soft.test", "A", "127.0.0.4");
        await using var node = await TestNode.StartAsync(["alice"], o =>
        {
            o.Dns.Servers = [dns.Server];
            o.Spam.Dnsbl = ["soft.test=6"];
            o.Spam.AllowSenders = ["partner.example"];
            o.Spam.BlockSenders = ["@promo3.example", "boss@evil.example"];
        });
        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(node, Spam(3)));
        Assert.Equal(550, (int)refused.StatusCode);
        Assert.StartsWith("5.7.1 Sender <deals3@promo3.example> is blocked here", refused.Message);
        refused = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(node, Ham(), "BOSS@evil.example"));
        Assert.Equal(550, (int)refused.StatusCode);

        // carol@partner.example is allowed: the listing does not send her to Junk.
        var ham = Ham();
        ham.Headers.Add("X-Spam-Flag", "NO");
        ham.Headers.Add("X-Spam-Score", "-50");
        await SendAsync(node, ham);
        var inbox = Assert.Single(await FolderAsync(node, "INBOX"));
        Assert.Contains("X-Spam-Score: -94.0\r\nX-Spam-Status: No, score=-94.0 required=5.0\r\n\ttests=ALLOWED_SENDER=-100.0,DNSBL_soft.test=6.0\r\n", inbox);
        // What the sender wrote in these fields is gone.
        Assert.DoesNotContain("X-Spam-Flag", inbox);
        Assert.DoesNotContain("-50", inbox);

        // A subdomain of an allowed domain is allowed; anyone else with the listing goes to Junk, its forged NO removed.
        await SendAsync(node, Ham(), "news@mail.partner.example");
        var other = Spam(5);
        other.Headers.Add("X-Spam-Flag", "NO");
        await SendAsync(node, other);
        Assert.Equal(2, (await FolderAsync(node, "INBOX")).Count);
        var junk = Assert.Single(await FolderAsync(node, "Junk"));
        Assert.Single(junk.Split("X-Spam-Flag"), s => s.StartsWith(": YES\r\n", StringComparison.Ordinal));
        Assert.Equal(2, junk.Split("X-Spam-Flag").Length);
    }

    [Fact]
    public async Task A_mailbox_own_sender_lists_set_through_the_api_decide_for_that_mailbox_only()
    {
        await using var node = await TestNode.StartAsync(["alice", "bob"], o => o.Listen.Http = 0);
        using var http = new HttpClient { BaseAddress = new Uri($"http://{node.Host.Endpoints["http"]}") };
        http.DefaultRequestHeaders.Authorization = new("Bearer", node.Directory.CreateToken("portal", "provision"));
        var put = await http.PutAsync($"/api/v1/mailboxes/{Alice}/sender-lists", new StringContent(
            """{"allow":["Partner.example"],"block":["@promo1.example","pest@x.example"]}""", Encoding.UTF8, "application/json"));
        Assert.Equal(System.Net.HttpStatusCode.OK, put.StatusCode);
        Assert.Equal("""{"allow":["partner.example"],"block":["@promo1.example","pest@x.example"]}""", await put.Content.ReadAsStringAsync());
        Assert.Equal("""{"allow":["partner.example"],"block":["@promo1.example","pest@x.example"]}""", await http.GetStringAsync($"/api/v1/mailboxes/{Alice}/sender-lists"));
        // Nonsense and contradictions are refused, and change nothing.
        var bad = await http.PutAsync($"/api/v1/mailboxes/{Alice}/sender-lists", new StringContent("""{"allow":["a@b.example"],"block":["A@B.example"]}""", Encoding.UTF8, "application/json"));
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Contains("a@b.example is on both the allow and the block list", await bad.Content.ReadAsStringAsync());
        bad = await http.PutAsync($"/api/v1/mailboxes/{Alice}/sender-lists", new StringContent("""{"block":["not a domain"]}""", Encoding.UTF8, "application/json"));
        Assert.Equal(System.Net.HttpStatusCode.BadRequest, bad.StatusCode);
        Assert.Equal(["partner.example"], node.Directory.SenderLists(Alice).Allow);

        // Blocked for Alice (envelope sender, or the From field) goes to her Junk; Bob, sent the same, has it in his INBOX.
        await SendAsync(node, Spam(1), to: Alice);
        await SendAsync(node, Spam(1), to: Bob);
        var fromField = Mailkit.Text("pest@x.example", Alice, "hi again", "it is me");
        await SendAsync(node, fromField, "bounces@mailer.example");
        var junk = await FolderAsync(node, "Junk");
        Assert.Equal(2, junk.Count);
        Assert.All(junk, m => Assert.Contains("\ttests=USER_BLOCKED=100.0\r\nX-Spam-Flag: YES\r\n", m));
        Assert.Single(await FolderAsync(node, "INBOX", "bob"));
        Assert.Empty(await FolderAsync(node, "INBOX"));
        // Allowed for Alice: a partner's mail is not judged by her filter.
        await SendAsync(node, Ham());
        Assert.Contains("X-Spam-Status: No, score=-100.0 required=5.0\r\n\ttests=USER_ALLOWED=-100.0\r\n", Assert.Single(await FolderAsync(node, "INBOX")));
        // The change is in the provisioning journal.
        Assert.Contains("sender lists of alice@example.test set: 1 allowed, 2 blocked", await http.GetStringAsync("/api/v1/provisioning"));
    }

    [Fact]
    public async Task Spam_checks_are_not_applied_to_trusted_networks()
    {
        await using var dns = TestDns.Start();
        dns.Add("1.0.0.127.hard.test", "A", "127.0.0.2");
        await using var node = await TestNode.StartAsync(["alice"], o =>
        {
            o.Dns.Servers = [dns.Server];
            o.Spam.Dnsbl = ["hard.test"];
            o.Relay.TrustedNetworks = ["127.0.0.0/8"];
        });
        await SendAsync(node, Ham());
        var inbox = Assert.Single(await FolderAsync(node, "INBOX"));
        Assert.DoesNotContain("X-Spam", inbox);
    }

    [Fact]
    public async Task Bad_spam_settings_stop_the_start()
    {
        var bad = await Assert.ThrowsAsync<InvalidOperationException>(() => TestNode.StartAsync([], o => o.Spam.Dnsbl = ["bl.test=lots"]));
        Assert.Contains("Spam:Dnsbl/Dnswl: \"bl.test=lots\": the weight after '=' is not a number", bad.Message);
        bad = await Assert.ThrowsAsync<InvalidOperationException>(() => TestNode.StartAsync([], o => { o.Spam.JunkScore = 10; o.Spam.RejectScore = 8; }));
        Assert.Contains("Spam:JunkScore (10) must be lower than Spam:RejectScore (8)", bad.Message);
    }

    [Fact]
    public async Task Rspamd_scores_each_message_and_its_reject_is_obeyed()
    {
        if (!HostTool.Available(Rspamd.Path, output)) return;
        await using var rspamd = await Rspamd.StartAsync();
        await using var node = await TestNode.StartAsync(["alice"], o => o.Spam.Rspamd = rspamd.Url.ToString());
        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(node, Mailkit.Text("x@remote.example", Alice, "offer", "Buy now " + Rspamd.SpamToken)));
        Assert.Equal(550, (int)refused.StatusCode);
        Assert.StartsWith("5.7.1 ", refused.Message);

        // 7 points from rspamd is over our Junk threshold of 5.
        await SendAsync(node, Mailkit.Text("x@remote.example", Alice, "hmm " + Rspamd.SuspectToken, "maybe"));
        var junk = Assert.Single(await FolderAsync(node, "Junk"));
        Assert.Matches(@"X-Spam-Status: Yes, score=(\d\.\d) required=5\.0\r\n\ttests=RSPAMD=\1\r\n", junk);
        await SendAsync(node, Ham());
        var inbox = Assert.Single(await FolderAsync(node, "INBOX"));
        Assert.Matches(@"X-Spam-Status: No, score=(\d\.\d) required=5\.0\r\n\ttests=RSPAMD=\1\r\n", inbox);

        // rspamd gone: mail goes on without its opinion.
        await rspamd.StopAsync();
        await SendAsync(node, Ham());
        Assert.Equal(2, (await FolderAsync(node, "INBOX")).Count);
    }

    [Fact]
    public async Task Greylisting_defers_a_first_attempt_and_then_allows_the_client()
    {
        await using var node = await TestNode.StartAsync(["alice", "bob"], o => { o.Spam.Greylist.Enabled = true; o.Spam.Greylist.DelaySeconds = 2; });
        var deferred = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(node, Ham()));
        Assert.Equal(450, (int)deferred.StatusCode);
        Assert.StartsWith("4.7.1 Greylisted: this server is new to us, please try again in 2 seconds", deferred.Message);
        // Too early: still deferred, with the time left.
        deferred = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(node, Ham()));
        Assert.Equal(450, (int)deferred.StatusCode);
        Assert.Empty(await FolderAsync(node, "INBOX"));

        await Task.Delay(TimeSpan.FromSeconds(2.2));
        await SendAsync(node, Ham());
        Assert.Single(await FolderAsync(node, "INBOX"));
        // The client network retried once: another sender and recipient from it pass at once.
        await SendAsync(node, Spam(1), to: Bob);
        Assert.Single(await FolderAsync(node, "INBOX", "bob"));
    }

    [Fact]
    public void Greylist_triplets_expire_and_networks_are_24_or_64_bits()
    {
        var dir = System.IO.Directory.CreateTempSubdirectory("greylist");
        try
        {
            var clock = new ManualClock(DateTimeOffset.Parse("2026-11-26T12:00:00Z"));
            var options = new Appliance.Hosting.GreylistOptions { Enabled = true, DelaySeconds = 300, RetryWindowHours = 24, AllowDays = 36 };
            var greylist = new Appliance.Filtering.Greylist(Path.Combine(dir.FullName, "g.db"), options, clock);
            var ip = System.Net.IPAddress.Parse("192.0.2.10");
            Assert.Equal(new(false, 300, "greylist=defer(new)"), greylist.Check(ip, "a@x.test", "alice@example.test"));
            clock.Now += TimeSpan.FromSeconds(100);
            Assert.Equal(new(false, 200, "greylist=defer(early)"), greylist.Check(ip, "A@X.test", "alice@example.test"));
            // A retry after a day and more starts again.
            clock.Now += TimeSpan.FromHours(25);
            Assert.Equal(new(false, 300, "greylist=defer(new)"), greylist.Check(ip, "a@x.test", "alice@example.test"));
            clock.Now += TimeSpan.FromSeconds(301);
            // Another server of the same /24 retries: it passes, and the network is allowed from now on.
            Assert.Equal(new(true, 0, "greylist=pass(retried after 301 s)"), greylist.Check(System.Net.IPAddress.Parse("192.0.2.77"), "a@x.test", "alice@example.test"));
            Assert.Equal(new(true, 0, "greylist=pass(client)"), greylist.Check(ip, "other@y.test", "bob@example.test"));
            Assert.Equal(new(false, 300, "greylist=defer(new)"), greylist.Check(System.Net.IPAddress.Parse("192.0.3.10"), "a@x.test", "alice@example.test"));
            // After AllowDays without mail the network is a stranger again.
            clock.Now += TimeSpan.FromDays(37);
            Assert.Equal(new(false, 300, "greylist=defer(new)"), greylist.Check(ip, "other@y.test", "bob@example.test"));

            Assert.Equal("192.0.2.0/24", Appliance.Filtering.Greylist.Network(System.Net.IPAddress.Parse("::ffff:192.0.2.200")));
            Assert.Equal("2001:db8:1:2::/64", Appliance.Filtering.Greylist.Network(System.Net.IPAddress.Parse("2001:db8:1:2:3:4:5:6")));
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            dir.Delete(recursive: true);
        }
    }

    private sealed class ManualClock(DateTimeOffset now) : TimeProvider
    {
        public DateTimeOffset Now { get; set; } = now;
        public override DateTimeOffset GetUtcNow() => Now;
    }
}
