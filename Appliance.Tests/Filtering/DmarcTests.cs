using System.Security.Cryptography;
using System.Text;
using Appliance.Filtering;
using Appliance.Tests.Relay;
using Appliance.Tests.Smtp;
using MailKit.Net.Smtp;
using MimeKit;
using MimeKit.Cryptography;

namespace Appliance.Tests.Filtering;

/// <summary>
/// DMARC on the MX (RFC 7489) with policies, SPF records and DKIM keys served by a test DNS:
/// mail spoofing a domain whose SPF and DMARC say reject is refused, p=quarantine lands in
/// Junk, a valid aligned DKIM signature saves forwarded mail whose SPF fails, a subdomain
/// follows its organizational domain's sp=, and Dmarc:Enforce false only records.
/// </summary>
public sealed class DmarcTests : IAsyncLifetime
{
    private const string Alice = "alice@" + TestNode.Domain;
    private TestDns _dns = null!;

    public Task InitializeAsync()
    {
        _dns = TestDns.Start();
        // bank.test sends only from 192.0.2.0/24 and wants everything else refused; we are 127.0.0.1.
        _dns.Add("bank.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all");
        _dns.Add("_dmarc.bank.test", "TXT", "v=DMARC1; p=reject; sp=none; rua=mailto:dmarc@bank.test");
        _dns.Add("shop.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all");
        _dns.Add("_dmarc.shop.test", "TXT", "v=DMARC1; p=quarantine");
        _dns.Add("good.test", "TXT", "v=spf1 ip4:127.0.0.0/8 -all");
        _dns.Add("_dmarc.good.test", "TXT", "v=DMARC1; p=reject");
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _dns.DisposeAsync();

    private Task<TestNode> NodeAsync(bool enforce = true) =>
        TestNode.StartAsync(["alice"], o => { o.Dns.Servers = [_dns.Server]; o.Dmarc.Enforce = enforce; });

    private static MimeMessage Mail(string from, string subject) => Mailkit.Text(from, Alice, subject, "Please wire the money today.");

    private static async Task SendAsync(TestNode node, MimeMessage message, string mailFrom)
    {
        using var client = new SmtpClient();
        await client.ConnectAsync(node.Smtp.Address.ToString(), node.Smtp.Port, MailKit.Security.SecureSocketOptions.None);
        await client.SendAsync(message, MailboxAddress.Parse(mailFrom), [MailboxAddress.Parse(Alice)]);
        await client.DisconnectAsync(true);
    }

    private static Task<List<string>> FolderAsync(TestNode node, string folder) =>
        node.FolderTextsAsync("alice", folder);

    [Fact]
    public async Task Mail_spoofing_a_domain_whose_spf_and_dmarc_say_reject_is_refused()
    {
        await using var node = await NodeAsync();
        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(node, Mail("ceo@bank.test", "urgent"), "ceo@bank.test"));
        Assert.Equal(550, (int)refused.StatusCode);
        Assert.StartsWith("5.7.1 Message refused: the DMARC policy of bank.test says reject (p=reject dis=reject", refused.Message);
        // The envelope may pass SPF for another domain: that domain is not aligned with From.
        refused = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(node, Mail("ceo@bank.test", "urgent"), "bounce@good.test"));
        Assert.Equal(550, (int)refused.StatusCode);
        Assert.Empty(await node.InboxAsync("alice"));

        // A subdomain without a policy of its own takes the organizational domain's sp=none: delivered, recorded.
        await SendAsync(node, Mail("news@mail.bank.test", "newsletter"), "news@mail.bank.test");
        var delivered = Assert.Single(await FolderAsync(node, "INBOX"));
        Assert.Contains("\tdmarc=fail (p=none dis=none: neither SPF nor DKIM passed for a domain aligned with mail.bank.test) header.from=mail.bank.test\r\n", delivered);
        // Aligned SPF passes.
        await SendAsync(node, Mail("x@good.test", "hello"), "x@good.test");
        Assert.Contains("\tdmarc=pass (SPF of good.test aligned) header.from=good.test\r\n", (await FolderAsync(node, "INBOX"))[^1]);
    }

    [Fact]
    public async Task Quarantine_goes_to_junk_and_without_enforcement_it_is_only_recorded()
    {
        await using (var node = await NodeAsync())
        {
            await SendAsync(node, Mail("sales@shop.test", "offer"), "sales@shop.test");
            Assert.Empty(await node.InboxAsync("alice"));
            var junk = Assert.Single(await FolderAsync(node, "Junk"));
            Assert.Contains("dmarc=fail (p=quarantine dis=quarantine", junk);
        }
        await using (var node = await NodeAsync(enforce: false))
        {
            await SendAsync(node, Mail("ceo@bank.test", "urgent"), "ceo@bank.test");
            Assert.Contains("dmarc=fail (p=reject dis=reject", Assert.Single(await FolderAsync(node, "INBOX")));
        }
    }

    [Fact]
    public async Task A_valid_aligned_dkim_signature_passes_dmarc_when_spf_fails()
    {
        using var rsa = RSA.Create(2048);
        _dns.Add("sel1._domainkey.bank.test", "TXT", "v=DKIM1; k=rsa; p=" + Convert.ToBase64String(rsa.ExportSubjectPublicKeyInfo()));
        var message = Mail("statements@bank.test", "your statement");
        message.Date = DateTimeOffset.UtcNow;
        var signer = new DkimSigner(new MemoryStream(Encoding.ASCII.GetBytes(rsa.ExportRSAPrivateKeyPem())), "bank.test", "sel1")
        {
            HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
            BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
        };
        signer.Sign(message, [HeaderId.From, HeaderId.Subject, HeaderId.Date, HeaderId.To]);
        await using var node = await NodeAsync();
        // Forwarded: the envelope is the forwarder's, SPF of bank.test fails from here; the signature survives.
        await SendAsync(node, message, "statements@bank.test");
        var stored = Assert.Single(await FolderAsync(node, "INBOX"));
        Assert.Contains("\tspf=fail", stored);
        Assert.Contains("\tdkim=pass header.d=bank.test header.s=sel1;\r\n", stored);
        Assert.Contains("\tdmarc=pass (DKIM of bank.test aligned) header.from=bank.test\r\n", stored);

        // The same signature over a changed body no longer verifies: refused again.
        message.Body = new TextPart("plain") { Text = "Wire it to my account instead." };
        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(node, message, "statements@bank.test"));
        Assert.Equal(550, (int)refused.StatusCode);
    }

    [Fact]
    public void Organizational_domains_follow_the_public_suffix_list()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllText(path, "// a few rules\ncom\nuk\nco.uk\n*.ck\n!www.ck\n");
            var psl = new PublicSuffixes(path);
            Assert.True(psl.Loaded);
            Assert.Equal("example.co.uk", psl.OrganizationalDomain("mail.Example.co.uk"));
            Assert.Equal("example.com", psl.OrganizationalDomain("a.b.example.com."));
            Assert.Equal("example.com", psl.OrganizationalDomain("example.com"));
            Assert.Equal("foo.x.ck", psl.OrganizationalDomain("a.foo.x.ck"));
            Assert.Equal("www.ck", psl.OrganizationalDomain("mail.www.ck"));
            Assert.Equal("bar.zz", psl.OrganizationalDomain("foo.bar.zz")); // the default rule "*"
            var none = new PublicSuffixes(path + ".missing");
            Assert.False(none.Loaded);
            Assert.Equal("co.uk", none.OrganizationalDomain("mail.example.co.uk"));
        }
        finally
        {
            File.Delete(path);
        }
        if (File.Exists(PublicSuffixes.DebianPath))
            Assert.Equal("example.co.uk", new PublicSuffixes().OrganizationalDomain("mail.example.co.uk"));
    }
}
