using System.Net;
using Appliance.Filtering;
using Appliance.Tests.Relay;
using DnsClient;

namespace Appliance.Tests.Filtering;

/// <summary>
/// SPF (RFC 7208) against records served by a test DNS: each result, every mechanism, the
/// modifiers, the macro examples of §7.4 word for word, and the limits that end a runaway
/// evaluation in a permanent error.
/// </summary>
public sealed class SpfTests : IAsyncLifetime
{
    private TestDns _dns = null!;
    private LookupClient _client = null!;

    public Task InitializeAsync()
    {
        _dns = TestDns.Start();
        _client = new LookupClient(new LookupClientOptions([Appliance.Relay.MxResolver.ParseServer(_dns.Server)])
        { UseCache = false, Timeout = TimeSpan.FromSeconds(2), Retries = 0, ThrowDnsErrors = false, UseTcpFallback = true });
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _dns.DisposeAsync();

    private Spf Evaluator(string ip, string sender = "someone@example.test", string helo = "mail.client.test") =>
        new(_client, IPAddress.Parse(ip), sender, helo);

    private async Task<SpfResult> CheckAsync(string ip, string domain = "example.test") =>
        (await Evaluator(ip).CheckAsync(domain, CancellationToken.None)).Result;

    [Theory]
    [InlineData("v=spf1 ip4:192.0.2.0/24 -all", "192.0.2.10", SpfResult.Pass)]
    [InlineData("v=spf1 ip4:192.0.2.0/24 -all", "198.51.100.1", SpfResult.Fail)]
    [InlineData("v=spf1 ip4:192.0.2.0/24 ~all", "198.51.100.1", SpfResult.SoftFail)]
    [InlineData("v=spf1 ip4:192.0.2.0/24 ?all", "198.51.100.1", SpfResult.Neutral)]
    [InlineData("v=spf1 ip4:192.0.2.0/24", "198.51.100.1", SpfResult.Neutral)]
    [InlineData("v=spf1 -ip4:192.0.2.10 +all", "192.0.2.10", SpfResult.Fail)]
    [InlineData("v=spf1 ip4:192.0.2.10/33 -all", "192.0.2.10", SpfResult.PermError)]
    [InlineData("v=spf1 ip6:2001:db8::/32 -all", "2001:db8::1", SpfResult.Pass)]
    [InlineData("v=spf1 ip6:2001:db8::/32 -all", "192.0.2.10", SpfResult.Fail)]
    [InlineData("v=spf1 ip4:192.0.2.10 -all", "::ffff:192.0.2.10", SpfResult.Pass)]
    [InlineData("v=spf1 frobnicate -all", "192.0.2.10", SpfResult.PermError)]
    [InlineData("v=spf1 unknown-modifier=x ip4:192.0.2.10 -all", "192.0.2.10", SpfResult.Pass)]
    [InlineData("v=spf10 ip4:192.0.2.10 -all", "192.0.2.10", SpfResult.None)]
    [InlineData("V=SPF1 IP4:192.0.2.10 -ALL", "192.0.2.10", SpfResult.Pass)]
    public async Task A_record_gives_its_result(string record, string ip, SpfResult expected)
    {
        _dns.Add("example.test", "TXT", record);
        Assert.Equal(expected, await CheckAsync(ip));
    }

    [Fact]
    public async Task No_record_two_records_and_a_failing_server()
    {
        Assert.Equal(SpfResult.None, await CheckAsync("192.0.2.1", "nowhere.test")); // NXDOMAIN
        _dns.Add("example.test", "TXT", "some other text");
        Assert.Equal(SpfResult.None, await CheckAsync("192.0.2.1"));
        _dns.Add("example.test", "TXT", "v=spf1 -all");
        _dns.Add("example.test", "TXT", "v=spf1 +all");
        Assert.Equal(SpfResult.PermError, await CheckAsync("192.0.2.1"));
        _dns.Fail("broken.test", DnsFault.ServFail);
        Assert.Equal(SpfResult.TempError, await CheckAsync("192.0.2.1", "broken.test"));
        Assert.Equal(SpfResult.None, await CheckAsync("192.0.2.1", "single-label"));
    }

    [Fact]
    public async Task A_and_mx_with_prefix_lengths_and_another_domain()
    {
        _dns.Add("example.test", "TXT", "v=spf1 a mx/24 a:relay.other.test//64 -all");
        _dns.Add("example.test", "A", "192.0.2.1");
        _dns.Add("example.test", "MX", "10 mx.example.test");
        _dns.Add("mx.example.test", "A", "198.51.100.7");
        _dns.Add("relay.other.test", "AAAA", "2001:db8:1:2::9");
        Assert.Equal(SpfResult.Pass, await CheckAsync("192.0.2.1"));
        Assert.Equal(SpfResult.Fail, await CheckAsync("192.0.2.2"));
        Assert.Equal(SpfResult.Pass, await CheckAsync("198.51.100.200")); // mx/24
        Assert.Equal(SpfResult.Pass, await CheckAsync("2001:db8:1:2::1234")); // a:…//64
        Assert.Equal(SpfResult.Fail, await CheckAsync("2001:db8:1:3::1"));
    }

    [Fact]
    public async Task Include_and_redirect()
    {
        _dns.Add("example.test", "TXT", "v=spf1 include:_spf.provider.test -all");
        _dns.Add("_spf.provider.test", "TXT", "v=spf1 ip4:203.0.113.0/24 -all");
        Assert.Equal(SpfResult.Pass, await CheckAsync("203.0.113.5"));
        // The included record's fail is only "no match": the including record's -all decides.
        Assert.Equal(SpfResult.Fail, await CheckAsync("198.51.100.1"));

        _dns.Add("redirected.test", "TXT", "v=spf1 redirect=_spf.provider.test");
        Assert.Equal(SpfResult.Pass, await CheckAsync("203.0.113.5", "redirected.test"));
        Assert.Equal(SpfResult.Fail, await CheckAsync("198.51.100.1", "redirected.test"));

        _dns.Add("dangling.test", "TXT", "v=spf1 include:nothing-here.test -all");
        Assert.Equal(SpfResult.PermError, await CheckAsync("203.0.113.5", "dangling.test"));
        _dns.Add("loose.test", "TXT", "v=spf1 redirect=nothing-here.test");
        Assert.Equal(SpfResult.PermError, await CheckAsync("203.0.113.5", "loose.test"));
        _dns.Add("twice.test", "TXT", "v=spf1 redirect=a.test redirect=b.test");
        Assert.Equal(SpfResult.PermError, await CheckAsync("203.0.113.5", "twice.test"));
        _dns.Fail("_spf.flaky.test", DnsFault.ServFail);
        _dns.Add("flaky.test", "TXT", "v=spf1 include:_spf.flaky.test -all");
        Assert.Equal(SpfResult.TempError, await CheckAsync("203.0.113.5", "flaky.test"));
    }

    [Fact]
    public async Task Ptr_and_exists()
    {
        _dns.Add("example.test", "TXT", "v=spf1 ptr -all");
        _dns.Add("10.2.0.192.in-addr.arpa", "PTR", "out.example.test");
        _dns.Add("out.example.test", "A", "192.0.2.10");
        _dns.Add("11.2.0.192.in-addr.arpa", "PTR", "liar.example.test"); // does not resolve back
        Assert.Equal(SpfResult.Pass, await CheckAsync("192.0.2.10"));
        Assert.Equal(SpfResult.Fail, await CheckAsync("192.0.2.11"));

        _dns.Add("exists.test", "TXT", "v=spf1 exists:%{ir}.%{v}._allow.%{d} -all");
        _dns.Add("10.2.0.192.in-addr._allow.exists.test", "A", "127.0.0.2");
        Assert.Equal(SpfResult.Pass, await CheckAsync("192.0.2.10", "exists.test"));
        Assert.Equal(SpfResult.Fail, await CheckAsync("192.0.2.12", "exists.test"));
    }

    [Fact]
    public async Task More_than_ten_lookups_or_two_void_ones_is_a_permanent_error()
    {
        // A chain of 11 includes.
        _dns.Add("example.test", "TXT", "v=spf1 include:l1.test -all");
        for (var i = 1; i <= 11; i++) _dns.Add($"l{i}.test", "TXT", i < 11 ? $"v=spf1 include:l{i + 1}.test" : "v=spf1 +all");
        var verdict = await Evaluator("192.0.2.1").CheckAsync("example.test", CancellationToken.None);
        Assert.Equal(SpfResult.PermError, verdict.Result);
        Assert.Contains("more than 10 DNS-querying terms", verdict.Reason);
        // Ten are allowed.
        _dns.Add("ten.test", "TXT", "v=spf1 include:l2.test -all");
        Assert.Equal(SpfResult.Pass, await CheckAsync("192.0.2.1", "ten.test"));

        _dns.Add("void.test", "TXT", "v=spf1 a:gone1.test a:gone2.test a:gone3.test +all");
        verdict = await Evaluator("192.0.2.1").CheckAsync("void.test", CancellationToken.None);
        Assert.Equal(SpfResult.PermError, verdict.Result);
        Assert.Contains("more than 2 lookups found nothing", verdict.Reason);
    }

    [Fact]
    public async Task A_fail_explains_itself_with_exp()
    {
        _dns.Add("example.test", "TXT", "v=spf1 ip4:192.0.2.0/24 -all exp=explain.%{d}");
        _dns.Add("explain.example.test", "TXT", "%{i} is not one of %{d}'s designated mail servers.");
        var verdict = await Evaluator("198.51.100.1").CheckAsync("example.test", CancellationToken.None);
        Assert.Equal(SpfResult.Fail, verdict.Result);
        Assert.Equal("198.51.100.1 is not one of example.test's designated mail servers.", verdict.Reason);
    }

    /// <summary>RFC 7208 §7.4: sender strong-bad@email.example.com from 192.0.2.3 (and 2001:db8::cb01).</summary>
    [Theory]
    [InlineData("%{s}", "strong-bad@email.example.com")]
    [InlineData("%{o}", "email.example.com")]
    [InlineData("%{d}", "email.example.com")]
    [InlineData("%{d4}", "email.example.com")]
    [InlineData("%{d3}", "email.example.com")]
    [InlineData("%{d2}", "example.com")]
    [InlineData("%{d1}", "com")]
    [InlineData("%{dr}", "com.example.email")]
    [InlineData("%{d2r}", "example.email")]
    [InlineData("%{l}", "strong-bad")]
    [InlineData("%{l-}", "strong.bad")]
    [InlineData("%{lr}", "strong-bad")]
    [InlineData("%{lr-}", "bad.strong")]
    [InlineData("%{l1r-}", "strong")]
    [InlineData("%{ir}.%{v}._spf.%{d2}", "3.2.0.192.in-addr._spf.example.com")]
    [InlineData("%{lr-}.lp._spf.%{d2}", "bad.strong.lp._spf.example.com")]
    [InlineData("%{lr-}.lp.%{ir}.%{v}._spf.%{d2}", "bad.strong.lp.3.2.0.192.in-addr._spf.example.com")]
    [InlineData("%{ir}.%{v}.%{l1r-}.lp._spf.%{d2}", "3.2.0.192.in-addr.strong.lp._spf.example.com")]
    [InlineData("%{d2}.trusted-domains.example.net", "example.com.trusted-domains.example.net")]
    [InlineData("%%%_%-", "% %20")]
    [InlineData("%{L}", "strong-bad")]
    public async Task Macros_expand_as_the_rfc_shows(string macro, string expanded)
    {
        var spf = new Spf(_client, IPAddress.Parse("192.0.2.3"), "strong-bad@email.example.com", "mx.example.org");
        Assert.Equal(expanded, await spf.ExpandAsync(macro, "email.example.com", forExp: false, CancellationToken.None));
    }

    [Fact]
    public async Task Ipv6_macros_and_bad_macros()
    {
        var spf = new Spf(_client, IPAddress.Parse("2001:db8::cb01"), "strong-bad@email.example.com", "mx.example.org");
        Assert.Equal("1.0.b.c.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6._spf.example.com",
            await spf.ExpandAsync("%{ir}.%{v}._spf.%{d2}", "email.example.com", forExp: false, CancellationToken.None));
        _dns.Add("example.test", "TXT", "v=spf1 exists:%{q}.example.test -all");
        Assert.Equal(SpfResult.PermError, await CheckAsync("192.0.2.1"));
        _dns.Remove("example.test");
        _dns.Add("example.test", "TXT", "v=spf1 exists:%{d0}.example.test -all");
        Assert.Equal(SpfResult.PermError, await CheckAsync("192.0.2.1"));
    }
}
