using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;
using Appliance.Relay;
using Appliance.Tests.Cluster;
using Appliance.Tests.Hosting;
using Appliance.Tests.Relay;

namespace Appliance.Tests.Provisioning;

/// <summary>A domain's DKIM key as an administrator makes and publishes it: CLI, API, and both nodes of a pair.</summary>
public sealed class DkimKeyTests
{
    private static byte[] MessageFrom(string from) => Encoding.UTF8.GetBytes(
        $"From: {from}\r\nTo: someone@remote.test\r\nSubject: hello\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n" +
        "Message-ID: <dkim-test@node>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße\r\n");

    /// <summary>The TXT value of a printed zone line: its quoted strings put together.</summary>
    private static string ValueOf(string zoneLine) => string.Concat(Regex.Matches(zoneLine, "\"([^\"]*)\"").Select(m => m.Groups[1].Value));

    [Fact]
    public async Task DomainDkim_PrintsARecordThatVerifiesTheNodesSignatures_AndNewRotatesTheKey()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        Task<(int Exit, string Stdout, string Stderr)> Cli(params string[] args) => ApplianceProcess.CommandAsync([.. args, "--data", node.DataDirectory]);

        Assert.Equal(0, (await Cli("domain", "add", "acme.test")).Exit);
        var key = node.Directory.DkimKey("acme.test");
        Assert.NotNull(key); // made with the domain
        Assert.Matches(@"^s\d{8}$", key.Selector);
        var seq = node.Host.Provisioning.Journal.LastSeq;

        var shown = await Cli("domain", "dkim", "acme.test");

        Assert.Equal((0, ""), (shown.Exit, shown.Stderr));
        var lines = shown.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, lines.Length);
        Assert.StartsWith($"{key.Selector}._domainkey.acme.test. 3600 IN TXT ( \"v=DKIM1; k=rsa; p=", lines[0]);
        Assert.StartsWith("; ", lines[1]); // the hint is a zone-file comment: the output pastes as it is
        Assert.All(Regex.Matches(lines[0], "\"([^\"]*)\""), m => Assert.True(m.Groups[1].Length <= 255));
        Assert.Equal(seq, node.Host.Provisioning.Journal.LastSeq); // showing it changed nothing
        var published = ValueOf(lines[0]);
        var signed = DkimSigning.SignIfKeyed(MessageFrom("Bob <bob@acme.test>"), node.Directory);
        Assert.True(DkimTestVerifier.RawVerifies(signed, published));
        Assert.True(DkimTestVerifier.MimeKitVerifies(signed, published));

        var renewed = await Cli("domain", "dkim", "acme.test", "--new");

        Assert.Equal(0, renewed.Exit);
        var newLine = renewed.Stdout.Split('\n')[0];
        var newKey = node.Directory.DkimKey("acme.test")!;
        Assert.NotEqual(key.Selector, newKey.Selector);
        Assert.StartsWith($"{newKey.Selector}._domainkey.acme.test. 3600 IN TXT", newLine);
        var resigned = DkimSigning.SignIfKeyed(MessageFrom("bob@acme.test"), node.Directory);
        Assert.Equal(newKey.Selector, DkimTestVerifier.Tags(resigned)["s"]);
        Assert.True(DkimTestVerifier.RawVerifies(resigned, ValueOf(newLine)));
        Assert.False(DkimTestVerifier.RawVerifies(resigned, published)); // the old record does not fit the new key

        // A domain from before DKIM signing has no key: asking for its record makes one, through the journal.
        node.Directory.AddDomain("old.test");
        Assert.Null(node.Directory.DkimKey("old.test"));
        var first = await Cli("domain", "dkim", "old.test");
        Assert.Equal(0, first.Exit);
        Assert.NotNull(node.Directory.DkimKey("old.test"));
        var audit = node.Host.Provisioning.Journal.List(null, 0, 10).Items;
        Assert.Equal(["domain.dkim", "domain.dkim", "domain.add"], audit.Take(3).Select(e => e.Kind));
        Assert.Contains(node.Directory.DkimKey("old.test")!.Selector, audit[0].Summary);
        Assert.All(audit, e => Assert.DoesNotContain("PRIVATE KEY", e.Summary));

        var unknown = await Cli("domain", "dkim", "nowhere.test");
        Assert.Equal(1, unknown.Exit);
        Assert.Contains("no such domain", unknown.Stderr);
    }

    [Fact]
    public async Task TheApi_ShowsAndRenewsTheKey_AndTheCliDoesTheSameThroughIt()
    {
        await using var node = await TestNode.StartAsync(["alice"], o => o.Listen.Http = 0);
        var baseUrl = new Uri($"http://{node.Host.Endpoints["http"]}");
        var provisionToken = node.Directory.CreateToken("portal", "provision");
        using var portal = new HttpClient { BaseAddress = baseUrl };
        portal.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", provisionToken);
        using var reader = new HttpClient { BaseAddress = baseUrl };
        reader.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", node.Directory.CreateToken("monitoring", "read"));
        const string path = $"/api/v1/domains/{TestNode.Domain}/dkim";

        // The test node's domain was added without a key.
        var none = await reader.GetAsync(path);
        Assert.Equal(HttpStatusCode.NotFound, none.StatusCode);
        Assert.Equal("application/problem+json", none.Content.Headers.ContentType?.MediaType);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.PostAsync(path, null)).StatusCode);

        var made = await portal.PostAsync(path, null);

        Assert.Equal(HttpStatusCode.Created, made.StatusCode);
        var record = JsonNode.Parse(await made.Content.ReadAsStringAsync())!;
        var key = node.Directory.DkimKey(TestNode.Domain)!;
        Assert.Equal(TestNode.Domain, (string)record["domain"]!);
        Assert.Equal(key.Selector, (string)record["selector"]!);
        Assert.Equal($"{key.Selector}._domainkey.{TestNode.Domain}", (string)record["name"]!);
        var value = (string)record["value"]!;
        Assert.True(DkimTestVerifier.RawVerifies(DkimSigning.SignIfKeyed(MessageFrom("alice@example.test"), node.Directory), value));
        Assert.Null(record["privateKey"]);
        var shown = JsonNode.Parse(await reader.GetStringAsync(path))!;
        Assert.Equal(value, (string)shown["value"]!);

        var renewed = JsonNode.Parse(await (await portal.PostAsync(path, null)).Content.ReadAsStringAsync())!;
        Assert.NotEqual(key.Selector, (string)renewed["selector"]!);
        Assert.NotEqual(value, (string)renewed["value"]!);
        Assert.Equal(HttpStatusCode.NotFound, (await portal.PostAsync("/api/v1/domains/nowhere.test/dkim", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await reader.GetAsync("/api/v1/domains/nowhere.test/dkim")).StatusCode);

        // The CLI with --url prints what the API answers, and --new goes through the API too.
        string[] remote = ["--url", baseUrl.ToString(), "--token", provisionToken];
        var cli = await ApplianceProcess.CommandAsync(["domain", "dkim", TestNode.Domain, .. remote]);
        Assert.Equal((0, ""), (cli.Exit, cli.Stderr));
        Assert.Equal(DkimSigning.ZoneLine(DkimSigning.Record(node.Directory.DkimKey(TestNode.Domain)!)), cli.Stdout.Split('\n')[0]);
        var rotated = await ApplianceProcess.CommandAsync(["domain", "dkim", TestNode.Domain, "--new", .. remote]);
        Assert.Equal(0, rotated.Exit);
        Assert.StartsWith($"{node.Directory.DkimKey(TestNode.Domain)!.Selector}._domainkey.", rotated.Stdout);
        Assert.NotEqual(cli.Stdout, rotated.Stdout);
        Assert.Contains("no such domain", (await ApplianceProcess.CommandAsync(["domain", "dkim", "nowhere.test", .. remote])).Stderr);
        Assert.All(node.Host.Provisioning.Journal.List(null, 0, 10).Items.Where(e => e.Kind == "domain.dkim"),
            e => Assert.StartsWith("token:portal", e.Actor));
    }

    [Fact]
    public async Task InAPair_BothNodesSignWithTheOneKeyMadeWhenTheRequestWasMade()
    {
        await using var pair = await TestPair.StartPlacedAsync();
        await pair.WaitActiveAsync(pair.Node1, "monitor");
        await pair.WaitInSyncAsync(pair.Node1, "monitor");

        // Made on node2, journaled by node1 (which holds the journal), applied on both.
        await pair.Node2.Host.Provisioning.AddDomainAsync("corp.test", "cli");
        await pair.WaitForAsync(() => pair.Node1.Directory.DkimKey("corp.test") is not null, "the key on node1");
        Assert.Equal(pair.Node1.Directory.DkimKey("corp.test"), pair.Node2.Directory.DkimKey("corp.test"));

        var rotated = await pair.Node1.Host.Provisioning.NewDkimKeyAsync("corp.test", "cli");
        await pair.WaitForAsync(() => pair.Node2.Directory.DkimKey("corp.test")?.Selector == rotated.Selector, "the new key on node2");
        Assert.Equal(pair.Node1.Directory.DkimKey("corp.test"), pair.Node2.Directory.DkimKey("corp.test"));
        foreach (var node in pair.Nodes)
            Assert.True(DkimTestVerifier.RawVerifies(DkimSigning.SignIfKeyed(MessageFrom("dana@corp.test"), node.Directory), rotated.Value));
    }
}
