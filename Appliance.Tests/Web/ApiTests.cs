using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using Appliance.Store;
using Appliance.Tests.Smtp;
using MailKit.Net.Imap;
using MailKit.Security;

namespace Appliance.Tests.Web;

/// <summary>The provisioning API over real HTTP, as a script or an ISP's portal would use it.</summary>
public sealed class ApiTests : IAsyncLifetime
{
    private TestNode _node = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _node = await TestNode.StartAsync(["alice"], o => o.Listen.Http = 0);
        _http = Client(_node.Directory.CreateToken("portal", "provision"));
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _node.DisposeAsync();
    }

    private HttpClient Client(string? token)
    {
        var http = new HttpClient { BaseAddress = new Uri($"http://{_node.Host.Endpoints["http"]}") };
        if (token is not null) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return http;
    }

    private static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    private static async Task<JsonNode> Body(HttpResponseMessage r) => JsonNode.Parse(await r.Content.ReadAsStringAsync())!;

    private async Task<JsonNode> WaitJobAsync(HttpResponseMessage accepted)
    {
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        var id = (string)(await Body(accepted))["job"]!;
        for (var i = 0; i < 3000; i++)
        {
            var job = await Body(await _http.GetAsync($"/api/v1/jobs/{id}"));
            if ((string)job["state"]! != "running") return job;
            await Task.Delay(100);
        }
        throw new TimeoutException("job still running");
    }

    [Fact]
    public async Task DomainMailboxAlias_Lifecycle_IsJournaled_AndTheMailboxWorks()
    {
        var created = await _http.PostAsync("/api/v1/domains", Json("""{"name":"Acme.Test"}"""));
        Assert.Equal(HttpStatusCode.Created, created.StatusCode);
        Assert.Equal("acme.test", (string)(await Body(created))["name"]!);

        var box = await _http.PostAsync("/api/v1/mailboxes", Json("""{"address":"Carol@acme.test","password":"carol's password","quotaBytes":1048576}"""));
        Assert.Equal(HttpStatusCode.Created, box.StatusCode);
        var json = await Body(box);
        Assert.Equal("carol@acme.test", (string)json["address"]!);
        Assert.Equal(1048576, (long)json["quotaBytes"]!);
        Assert.Equal(0, (long)json["usedBytes"]!);

        // The new mailbox takes mail and its owner can log in.
        await Mailkit.SendAsync(_node.Smtp, Mailkit.Text("s@remote.test", "carol@acme.test", "welcome", "hi"));
        using (var imap = new ImapClient())
        {
            await imap.ConnectAsync(_node.Imap.Address.ToString(), _node.Imap.Port, SecureSocketOptions.None);
            await imap.AuthenticateAsync("carol@acme.test", "carol's password");
            var folders = await imap.GetFoldersAsync(imap.PersonalNamespaces[0]);
            Assert.Contains(folders, f => f.Name == "Sent"); // a new mailbox has its special folders
            await imap.Inbox.OpenAsync(MailKit.FolderAccess.ReadOnly);
            Assert.Equal(1, imap.Inbox.Count);
        }

        var page = await Body(await _http.GetAsync("/api/v1/mailboxes?domain=acme.test"));
        Assert.Equal(1, (long)page["total"]!);
        Assert.True((long)page["items"]![0]!["usedBytes"]! > 0);

        var patched = await _http.PatchAsync("/api/v1/mailboxes/carol%40acme.test", Json("""{"enabled":false,"quotaBytes":0}"""));
        Assert.Equal(HttpStatusCode.OK, patched.StatusCode);
        Assert.False((bool)(await Body(patched))["enabled"]!);

        Assert.Equal(HttpStatusCode.Created, (await _http.PostAsync("/api/v1/aliases", Json("""{"source":"info@acme.test","targets":["carol@acme.test","alice@example.test"]}"""))).StatusCode);
        var aliases = await Body(await _http.GetAsync("/api/v1/aliases?domain=acme.test"));
        Assert.Equal(2, aliases[0]!["targets"]!.AsArray().Count);
        Assert.Equal(HttpStatusCode.NoContent, (await _http.DeleteAsync("/api/v1/aliases/info%40acme.test?target=alice%40example.test")).StatusCode);
        Assert.Equal(["carol@acme.test"], _node.Directory.ListAliases("acme.test").Select(a => a.Target));

        var refused = await _http.DeleteAsync("/api/v1/domains/acme.test");
        Assert.Equal(HttpStatusCode.Conflict, refused.StatusCode);
        Assert.Equal("application/problem+json", refused.Content.Headers.ContentType!.MediaType);
        Assert.Contains("still has 1 mailbox", (string)(await Body(refused))["detail"]!);

        Assert.Equal(HttpStatusCode.NoContent, (await _http.DeleteAsync("/api/v1/mailboxes/carol%40acme.test?purge=true")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync("/api/v1/mailboxes/carol%40acme.test")).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await _http.DeleteAsync("/api/v1/domains/acme.test")).StatusCode);

        // Every change is in the journal, newest first, with who made it; no password anywhere.
        var audit = await _http.GetStringAsync("/api/v1/audit");
        var items = JsonNode.Parse(audit)!["items"]!.AsArray();
        Assert.Equal(["domain.remove", "mailbox.remove", "alias.remove", "alias.add", "mailbox.set", "mailbox.add", "domain.add"],
            items.Select(i => (string)i!["kind"]!));
        Assert.All(items, i => Assert.Equal("token:portal", (string)i!["actor"]!));
        Assert.DoesNotContain("password", audit.Replace("password reset", ""), StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("argon2", audit);
        var progress = await Body(await _http.GetAsync("/api/v1/provisioning"));
        Assert.Equal(7, (long)progress["lastSeq"]!);
        Assert.Equal(0, (long)progress["nodes"]![0]!["pending"]!);
    }

    [Fact]
    public async Task BadRequests_GetProblemDocuments_AndChangeNothing()
    {
        using var anonymous = Client(null);
        var unauthenticated = await anonymous.GetAsync("/api/v1/mailboxes");
        Assert.Equal(HttpStatusCode.Unauthorized, unauthenticated.StatusCode);
        Assert.Equal("application/problem+json", unauthenticated.Content.Headers.ContentType!.MediaType);
        using var forged = Client("apl_0123456789abcdef_notthesecret");
        Assert.Equal(HttpStatusCode.Unauthorized, (await forged.GetAsync("/api/v1/mailboxes")).StatusCode);

        using var reader = Client(_node.Directory.CreateToken("dashboard", "read"));
        Assert.Equal(HttpStatusCode.OK, (await reader.GetAsync("/api/v1/mailboxes")).StatusCode);
        var forbidden = await reader.PostAsync("/api/v1/domains", Json("""{"name":"x.test"}"""));
        Assert.Equal(HttpStatusCode.Forbidden, forbidden.StatusCode);
        Assert.Contains("provision", (string)(await Body(forbidden))["detail"]!);

        var broken = await _http.PostAsync("/api/v1/mailboxes", Json("""{"address": "bob@example.test", "password": """));
        Assert.Equal(HttpStatusCode.BadRequest, broken.StatusCode);
        Assert.Contains("not valid JSON", (string)(await Body(broken))["detail"]!);
        var weak = await _http.PostAsync("/api/v1/mailboxes", Json("""{"address":"bob@example.test","password":"short"}"""));
        Assert.Equal(HttpStatusCode.BadRequest, weak.StatusCode);
        var unknownDomain = await _http.PostAsync("/api/v1/mailboxes", Json("""{"address":"bob@nowhere.test","password":"long enough"}"""));
        Assert.Equal(HttpStatusCode.NotFound, unknownDomain.StatusCode);
        Assert.Equal(HttpStatusCode.Conflict, (await _http.PostAsync("/api/v1/mailboxes", Json("""{"address":"alice@example.test","password":"long enough"}"""))).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync("/api/v1/jobs/nosuchjob")).StatusCode);

        Assert.Null(_node.Directory.FindMailbox("bob@example.test"));
        Assert.Equal(0, (long)(await Body(await _http.GetAsync("/api/v1/provisioning")))["lastSeq"]!); // nothing refused was journaled
    }

    [Fact]
    public async Task Bulk_TenThousandMailboxes_InOneCall_AllAcceptMail()
    {
        // Migrated hashes (SHA512-CRYPT, as Dovecot stores them): what a bulk migration brings.
        // Plain passwords take the same path plus Argon2id hashing (see the small bulk below).
        var hash = "{SHA512-CRYPT}$6$saltsalt$" + Appliance.Directory.Sha512Crypt.Compute("migrated secret"u8, "saltsalt"u8, 5000);
        var body = new StringBuilder("""{"mailboxes":[""");
        for (var i = 0; i < 10_000; i++)
            body.Append(i == 0 ? "" : ",").Append($$"""{"address":"user{{i:D5}}@example.test","passwordHash":"{{hash}}","quotaBytes":104857600}""");
        body.Append("]}");

        var job = await WaitJobAsync(await _http.PostAsync("/api/v1/mailboxes/bulk", Json(body.ToString())));

        Assert.Equal("done", (string)job["state"]!);
        Assert.Equal(10_000, (long)job["total"]!);
        Assert.Equal(10_001, (long)(await Body(await _http.GetAsync("/api/v1/mailboxes?limit=1")))["total"]!);
        var partitions = _node.Directory.ListMailboxes("example.test").GroupBy(m => m.Partition).ToDictionary(g => g.Key, g => g.Count());
        Assert.True(Math.Abs(partitions["a"] - partitions["b"]) <= 1, "mailboxes spread over both partitions");
        // One request in the journal for the whole bulk.
        var audit = await Body(await _http.GetAsync("/api/v1/audit"));
        Assert.Equal(1, (long)audit["total"]!);
        Assert.Contains("10000 mailboxes added", (string)audit["items"]![0]!["summary"]!);
        // The last one accepts mail, and the migrated password logs in.
        await Mailkit.SendAsync(_node.Smtp, Mailkit.Text("s@remote.test", "user09999@example.test", "hello", "x"));
        var user = _node.Directory.FindMailbox("user09999@example.test")!.ToUser();
        Assert.Single(await _node.Store.ListAsync(user, MailStore.Inbox, CancellationToken.None));
        using var imap = new ImapClient();
        await imap.ConnectAsync(_node.Imap.Address.ToString(), _node.Imap.Port, SecureSocketOptions.None);
        await imap.AuthenticateAsync("user09999@example.test", "migrated secret");
    }

    [Fact]
    public async Task Bulk_WithBadEntries_FailsWhole_ListingEveryReason()
    {
        var job = await WaitJobAsync(await _http.PostAsync("/api/v1/mailboxes/bulk", Json("""
            {"mailboxes":[
              {"address":"ok1@example.test","password":"long enough 1"},
              {"address":"not an address","password":"long enough 2"},
              {"address":"ok2@example.test","password":"short"},
              {"address":"alice@example.test","password":"long enough 4"},
              {"address":"ok1@example.test","password":"long enough 5"},
              {"address":"x@unknown.test","password":"long enough 6"}
            ]}
            """)));

        Assert.Equal("failed", (string)job["state"]!);
        var errors = job["errors"]!.AsArray().Select(e => ((int)e!["index"]!, (string)e["reason"]!)).ToList();
        Assert.Equal([1, 2, 3, 4, 5], errors.Select(e => e.Item1));
        Assert.Contains("already exists", errors[2].Item2);
        Assert.Contains("more than once", errors[3].Item2);
        Assert.Contains("unknown domain", errors[4].Item2);
        Assert.Null(_node.Directory.FindMailbox("ok1@example.test")); // nothing of it half-applied

        var good = await WaitJobAsync(await _http.PostAsync("/api/v1/mailboxes/bulk", Json("""
            {"mailboxes":[{"address":"ok1@example.test","password":"long enough 1"},{"address":"ok2@example.test","password":"long enough 2","quotaBytes":0}]}
            """)));
        Assert.Equal("done", (string)good["state"]!);
        Assert.Equal(0, _node.Directory.FindMailbox("ok2@example.test")!.QuotaBytes);
        using var imap = new ImapClient();
        await imap.ConnectAsync(_node.Imap.Address.ToString(), _node.Imap.Port, SecureSocketOptions.None);
        await imap.AuthenticateAsync("ok1@example.test", "long enough 1");
    }

    [Fact]
    public async Task CsvImport_ReportsBadLinesByNumber_AndDomainQuota_ChangesEveryMailbox()
    {
        var csv = "address,password,quota\nc1@example.test,password one,10M\n\nc2@example.test,password two,lots\nc3@example.test,pw\n";
        var failed = await WaitJobAsync(await _http.PostAsync("/api/v1/mailboxes/import", new StringContent(csv, Encoding.UTF8, "text/csv")));
        Assert.Equal("failed", (string)failed["state"]!);
        Assert.Equal([4, 5], failed["errors"]!.AsArray().Select(e => (int)e!["line"]!));
        Assert.Null(_node.Directory.FindMailbox("c1@example.test"));

        var done = await WaitJobAsync(await _http.PostAsync("/api/v1/mailboxes/import",
            new StringContent("c1@example.test,password one,10M\nc2@example.test,password two\n", Encoding.UTF8, "text/csv")));
        Assert.Equal("done", (string)done["state"]!);
        Assert.Equal(10L << 20, _node.Directory.FindMailbox("c1@example.test")!.QuotaBytes);

        var quota = await WaitJobAsync(await _http.PutAsync("/api/v1/domains/example.test/quota", Json("""{"quotaBytes":2147483648}""")));
        Assert.Equal("done", (string)quota["state"]!);
        Assert.Equal(3, (long)quota["total"]!);
        Assert.All(_node.Directory.ListMailboxes("example.test"), m => Assert.Equal(2L << 30, m.QuotaBytes));
    }

    [Fact]
    public async Task OpenApiDocument_DescribesEveryRoute()
    {
        using var anonymous = Client(null);
        var doc = JsonNode.Parse(await anonymous.GetStringAsync("/api/v1/openapi.json"))!;
        Assert.StartsWith("3.1", (string)doc["openapi"]!);
        var paths = doc["paths"]!.AsObject();
        var routes = _node.Host.WebRoutes.Where(r => r.Path.StartsWith("/api/", StringComparison.Ordinal)).ToList();
        Assert.True(routes.Count > 20);
        foreach (var (method, path) in routes)
        {
            Assert.True(paths.ContainsKey(path), $"{path} is not in openapi.json");
            Assert.True(paths[path]!.AsObject().ContainsKey(method.ToLowerInvariant()), $"{method} {path} is not in openapi.json");
        }
    }

    [Fact]
    public async Task AdminSession_NeedsTheCsrfToken_AndTotpOnceEnabled()
    {
        var password = _node.Host.FirstAdminPassword!;
        var cookies = new CookieContainer();
        using var browser = new HttpClient(new HttpClientHandler { CookieContainer = cookies }) { BaseAddress = _http.BaseAddress };
        Assert.Equal(HttpStatusCode.Unauthorized, (await browser.PostAsync("/api/v1/session", Json("""{"name":"admin","password":"wrong password"}"""))).StatusCode);
        var signedIn = await browser.PostAsync("/api/v1/session", Json(JsonSerializer.Serialize(new { name = "admin", password })));
        Assert.Equal(HttpStatusCode.OK, signedIn.StatusCode);
        var cookie = signedIn.Headers.GetValues("Set-Cookie").Single();
        Assert.Contains("httponly", cookie, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("samesite=strict", cookie, StringComparison.OrdinalIgnoreCase);
        var csrf = (string)(await Body(signedIn))["csrf"]!;

        // A change without the CSRF token (what a forged cross-site form would send) is refused.
        Assert.Equal(HttpStatusCode.Forbidden, (await browser.PostAsync("/api/v1/domains", Json("""{"name":"forged.test"}"""))).StatusCode);
        browser.DefaultRequestHeaders.Add("X-CSRF-Token", csrf);
        Assert.Equal(HttpStatusCode.Created, (await browser.PostAsync("/api/v1/domains", Json("""{"name":"panel.test"}"""))).StatusCode);
        Assert.Equal("admin:admin", (string)(await Body(await browser.GetAsync("/api/v1/audit")))["items"]![0]!["actor"]!);

        var setup = await Body(await browser.PostAsync("/api/v1/session/totp", null));
        var secret = (string)setup["secret"]!;
        Assert.StartsWith("otpauth://totp/", (string)setup["uri"]!);
        var code = Appliance.Directory.Totp.Code(secret, DateTimeOffset.UtcNow);
        var wrong = code == "000000" ? "111111" : "000000";
        Assert.Equal(HttpStatusCode.BadRequest, (await browser.PostAsync("/api/v1/session/totp/confirm", Json($$"""{"code":"{{wrong}}"}"""))).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await browser.PostAsync("/api/v1/session/totp/confirm", Json($$"""{"code":"{{code}}"}"""))).StatusCode);
        Assert.Equal(HttpStatusCode.NoContent, (await browser.DeleteAsync("/api/v1/session")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await browser.GetAsync("/api/v1/dashboard")).StatusCode);

        var needsCode = await browser.PostAsync("/api/v1/session", Json(JsonSerializer.Serialize(new { name = "admin", password })));
        Assert.Equal(HttpStatusCode.Unauthorized, needsCode.StatusCode);
        Assert.EndsWith("/totp-required", (string)(await Body(needsCode))["type"]!);
        var withCode = await browser.PostAsync("/api/v1/session", Json(JsonSerializer.Serialize(new { name = "admin", password, totp = Appliance.Directory.Totp.Code(secret, DateTimeOffset.UtcNow) })));
        Assert.Equal(HttpStatusCode.OK, withCode.StatusCode);
    }

    [Fact]
    public async Task WithAnAdminListener_ThePanelAndApi_AnswerOnlyThere_OverHttps()
    {
        await using var node = await TestNode.StartAsync(["alice"], o => { o.Listen.Http = 0; o.Listen.Admin = 0; });
        using var web = new HttpClient { BaseAddress = new Uri($"http://{node.Host.Endpoints["http"]}") };
        using var admin = new HttpClient(new HttpClientHandler { ServerCertificateCustomValidationCallback = (_, _, _, _) => true })
        { BaseAddress = new Uri($"https://{node.Host.Endpoints["admin"]}") };

        Assert.Equal(HttpStatusCode.NotFound, (await web.GetAsync("/admin")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await web.GetAsync("/api/v1/openapi.json")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/admin")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await admin.GetAsync("/api/v1/openapi.json")).StatusCode);
        var signedIn = await admin.PostAsync("/api/v1/session", Json(JsonSerializer.Serialize(new { name = "admin", password = node.Host.FirstAdminPassword })));
        Assert.Equal(HttpStatusCode.OK, signedIn.StatusCode);
        Assert.Contains("secure", signedIn.Headers.GetValues("Set-Cookie").Single(), StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task AdminPanel_IsServed_WithAStrictContentSecurityPolicy()
    {
        using var anonymous = Client(null);
        var page = await anonymous.GetAsync("/admin");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        Assert.Equal("text/html", page.Content.Headers.ContentType!.MediaType);
        var csp = string.Join(";", page.Headers.GetValues("Content-Security-Policy"));
        Assert.Contains("script-src 'self'", csp);
        Assert.DoesNotContain("unsafe-inline", csp);
        Assert.Equal("DENY", page.Headers.GetValues("X-Frame-Options").Single());
        Assert.Equal(HttpStatusCode.OK, (await anonymous.GetAsync("/admin/assets/admin.js")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await anonymous.GetAsync("/admin/assets/nothing.js")).StatusCode);
    }
}
