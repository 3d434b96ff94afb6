using System.Security.Cryptography;
using System.Text;
using Appliance.Filtering;
using Appliance.Relay;
using Appliance.Tests.Relay;
using MimeKit;
using MimeKit.Cryptography;
using ArcAuthenticationResults = MimeKit.Cryptography.AuthenticationResults;

namespace Appliance.Tests.Filtering;

/// <summary>
/// ARC chain validation (RFC 8617) with sealers' keys served by a test DNS: a chain sealed by a
/// mailing list and a forwarder passes, even though the forwarder changed the message before
/// sealing, and says what the list saw of DMARC; a body changed after the last seal, a seal that
/// says cv=fail, a key that is gone fail; a message without ARC sets is none.
/// </summary>
public sealed class ArcTests : IAsyncLifetime
{
    private TestDns _dns = null!;
    private readonly RSA _listKey = RSA.Create(2048);
    private readonly RSA _forwarderKey = RSA.Create(2048);

    public Task InitializeAsync()
    {
        _dns = TestDns.Start();
        _dns.Add("arc1._domainkey.list.test", "TXT", "v=DKIM1; k=rsa; p=" + Convert.ToBase64String(_listKey.ExportSubjectPublicKeyInfo()));
        _dns.Add("arc2._domainkey.forwarder.test", "TXT", "v=DKIM1; k=rsa; p=" + Convert.ToBase64String(_forwarderKey.ExportSubjectPublicKeyInfo()));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _dns.DisposeAsync();
        _listKey.Dispose();
        _forwarderKey.Dispose();
    }

    private ArcVerification Verifier() => new(MxResolver.Client([_dns.Server]));

    /// <summary>An intermediary's ARC signer: its ARC-Authentication-Results say what it found (dmarc=…, arc=…).</summary>
    private sealed class Sealer(RSA key, string domain, string selector, params (string Method, string Result)[] found)
        : ArcSigner(new MemoryStream(Encoding.ASCII.GetBytes(key.ExportRSAPrivateKeyPem())), domain, selector)
    {
        protected override ArcAuthenticationResults GenerateArcAuthenticationResults(FormatOptions options, MimeMessage message, CancellationToken cancellationToken)
        {
            var results = new ArcAuthenticationResults("mx." + Domain);
            foreach (var (method, result) in found) results.Results.Add(new AuthenticationMethodResult(method, result));
            return results;
        }

        protected override Task<ArcAuthenticationResults> GenerateArcAuthenticationResultsAsync(FormatOptions options, MimeMessage message, CancellationToken cancellationToken) =>
            Task.FromResult(GenerateArcAuthenticationResults(options, message, cancellationToken));
    }

    private Sealer List(params (string, string)[] found) => new(_listKey, "list.test", "arc1", found)
    {
        HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
        BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
    };

    private Sealer Forwarder(params (string, string)[] found) => new(_forwarderKey, "forwarder.test", "arc2", found)
    {
        HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
        BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
    };

    private static readonly HeaderId[] Signed = [HeaderId.From, HeaderId.To, HeaderId.Subject, HeaderId.Date];

    private static MimeMessage Mail() => new([MailboxAddress.Parse("ceo@bank.test")], [MailboxAddress.Parse("alice@mx.test")], "statement",
        new TextPart("plain") { Text = "Your statement is ready." })
    { Date = DateTimeOffset.UtcNow };

    /// <summary>The message as it reaches us: written out and read back, as the MX would parse it.</summary>
    private static async Task<MimeMessage> OverTheWireAsync(MimeMessage message)
    {
        using var stream = new MemoryStream();
        await message.WriteToAsync(stream);
        stream.Position = 0;
        return await MimeMessage.LoadAsync(stream);
    }

    [Fact]
    public async Task A_chain_through_a_list_and_a_forwarder_passes_and_tells_what_the_list_saw()
    {
        var message = Mail();
        await List(("dmarc", "pass"), ("spf", "pass")).SignAsync(message, Signed);
        // The forwarder rewrites the subject and adds a footer, then seals what it sends.
        message.Subject = "[list] statement";
        message.Body = new TextPart("plain") { Text = "Your statement is ready.\n-- \nlist footer\n" };
        await Forwarder(("arc", "pass"), ("dmarc", "fail")).SignAsync(message, Signed);

        var outcome = await Verifier().VerifyAsync(await OverTheWireAsync(message), CancellationToken.None);
        Assert.Equal("pass", outcome.Result);
        Assert.Equal("arc=pass", outcome.LogField);
        Assert.Equal("arc=pass (i=2 sealed by list.test, forwarder.test)", outcome.AuthenticationResult);
        Assert.Equal([new ArcSet(1, "list.test", "mx.list.test", "pass"), new ArcSet(2, "forwarder.test", "mx.forwarder.test", "fail")], outcome.Sets);
        Assert.Equal("pass", outcome.OldestDmarc);
        Assert.False(outcome.Temporary);

        // One set is a chain too.
        var single = Mail();
        await List(("dmarc", "pass")).SignAsync(single, Signed);
        Assert.Equal("pass", (await Verifier().VerifyAsync(await OverTheWireAsync(single), CancellationToken.None)).Result);
    }

    [Fact]
    public async Task A_trusted_sealer_that_saw_dmarc_pass_excuses_a_dmarc_failure_on_the_mx()
    {
        _dns.Add("bank.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all");
        _dns.Add("_dmarc.bank.test", "TXT", "v=DMARC1; p=reject");
        var message = Mail();
        message.To.Clear();
        message.To.Add(MailboxAddress.Parse("alice@" + TestNode.Domain));
        await List(("dmarc", "pass")).SignAsync(message, Signed);
        var wire = Appliance.Tests.Smtp.Mailkit.WireBytes(message);

        async Task<string?> SendAsync(string[] trusted)
        {
            await using var node = await TestNode.StartAsync(["alice"], o => { o.Dns.Servers = [_dns.Server]; o.Dmarc.TrustedArcSealers = trusted; });
            using var client = new MailKit.Net.Smtp.SmtpClient();
            await client.ConnectAsync(node.Smtp.Address.ToString(), node.Smtp.Port, MailKit.Security.SecureSocketOptions.None);
            try
            {
                await client.SendAsync(MimeMessage.Load(new MemoryStream(wire)), MailboxAddress.Parse("bounces@list.test"), [MailboxAddress.Parse("alice@" + TestNode.Domain)]);
            }
            catch (MailKit.Net.Smtp.SmtpCommandException ex)
            {
                return $"{(int)ex.StatusCode} {ex.Message}";
            }
            var stored = Assert.Single(await node.InboxBytesAsync("alice"));
            return Encoding.UTF8.GetString(stored);
        }

        // Not trusted: the list's mail from bank.test fails DMARC (SPF of list.test is not aligned, no DKIM) and is refused.
        Assert.StartsWith("550 5.7.1 Message refused: the DMARC policy of bank.test says reject", await SendAsync([]));
        // Trusted: delivered, and the Authentication-Results field says why the policy was not applied.
        var delivered = await SendAsync(["list.test"]);
        Assert.Contains("\tarc=pass (i=1 sealed by list.test)", delivered);
        Assert.Contains("; not applied: list.test, a trusted ARC sealer, saw dmarc=pass at the first hop) header.from=bank.test", delivered);
    }

    [Fact]
    public async Task A_body_changed_after_the_last_seal_fails()
    {
        var message = Mail();
        await List(("dmarc", "pass")).SignAsync(message, Signed);
        message.Body = new TextPart("plain") { Text = "Wire the money to my account instead." };

        var outcome = await Verifier().VerifyAsync(await OverTheWireAsync(message), CancellationToken.None);
        Assert.Equal("fail", outcome.Result);
        Assert.Equal("the newest ARC-Message-Signature (i=1, d=list.test) does not verify: the message changed after it was sealed", outcome.Detail);
        Assert.Empty(outcome.Sets);
        Assert.Null(outcome.OldestDmarc);
    }

    [Fact]
    public async Task A_message_without_arc_sets_is_none()
    {
        var outcome = await Verifier().VerifyAsync(await OverTheWireAsync(Mail()), CancellationToken.None);
        Assert.Equal(("none", null), (outcome.Result, outcome.Detail));
        Assert.Equal("arc=none", outcome.AuthenticationResult);
    }

    [Fact]
    public async Task A_seal_that_says_the_chain_broke_fails_the_chain()
    {
        var message = Mail();
        await List(("dmarc", "pass")).SignAsync(message, Signed);
        message.Body = new TextPart("plain") { Text = "changed on the way" };
        // The forwarder found the chain broken and says so in its seal: cv=fail (RFC 8617 §5.1.2).
        await Forwarder(("arc", "fail")).SignAsync(message, Signed);
        Assert.Contains("cv=fail", message.Headers[HeaderId.ArcSeal]);

        var outcome = await Verifier().VerifyAsync(await OverTheWireAsync(message), CancellationToken.None);
        Assert.Equal("fail", outcome.Result);
        Assert.Equal("the sealer of i=2 found the chain broken (cv=fail)", outcome.Detail);
    }

    [Fact]
    public async Task A_sealer_key_that_is_gone_or_unreachable_fails()
    {
        var message = Mail();
        await List(("dmarc", "pass")).SignAsync(message, Signed);
        var received = await OverTheWireAsync(message);

        _dns.Fail("arc1._domainkey.list.test", DnsFault.ServFail);
        var outcome = await Verifier().VerifyAsync(received, CancellationToken.None);
        Assert.Equal("fail", outcome.Result);
        Assert.True(outcome.Temporary);
        Assert.Contains("arc1._domainkey.list.test", outcome.Detail);

        _dns.Heal("arc1._domainkey.list.test");
        _dns.Remove("arc1._domainkey.list.test");
        outcome = await Verifier().VerifyAsync(received, CancellationToken.None);
        Assert.Equal(("fail", "no key at arc1._domainkey.list.test", false), (outcome.Result, outcome.Detail, outcome.Temporary));
    }
}
