using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;

namespace Appliance.Tests.Web;

/// <summary>
/// The outbound queue's API over real HTTP, on a node whose mail for carol@remote.test is
/// greylisted (<see cref="StuckMail"/>): what an admin's script would list, look at and change.
/// </summary>
public sealed class QueueApiTests : IAsyncLifetime
{
    private StuckMail _mail = null!;
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _mail = await StuckMail.StartAsync(o => o.Listen.Http = 0);
        _http = Client(_mail.Node.Directory.CreateToken("portal", "provision"));
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _mail.DisposeAsync();
    }

    private HttpClient Client(string? token)
    {
        var http = new HttpClient { BaseAddress = new Uri($"http://{_mail.Node.Host.Endpoints["http"]}") };
        if (token is not null) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return http;
    }

    private static async Task<JsonNode> Body(HttpResponseMessage r)
    {
        Assert.True(r.IsSuccessStatusCode, $"{r.RequestMessage?.Method} {r.RequestMessage?.RequestUri} answered {(int)r.StatusCode}: {await r.Content.ReadAsStringAsync()}");
        return JsonNode.Parse(await r.Content.ReadAsStringAsync())!;
    }

    private static IEnumerable<string> Ids(JsonNode page) => page["items"]!.AsArray().Select(i => (string)i!["id"]!);

    [Fact]
    public async Task A_greylisted_message_is_listed_shown_with_its_headers_and_the_remote_reply()
    {
        var sent = await _mail.SendAsync("first");

        var page = await Body(await _http.GetAsync("/api/v1/queue"));
        Assert.Equal(1, (int)page["total"]!);
        var entry = page["items"]![0]!;
        Assert.Equal(sent.Id, (string)entry["id"]!);
        Assert.Equal(_mail.Node.User("alice").Partition, (string)entry["partition"]!);
        Assert.Equal(StuckMail.Alice, (string)entry["sender"]!);
        Assert.Equal(StuckMail.Alice, (string)entry["account"]!);
        Assert.Equal(sent.Size, (long)entry["size"]!);
        Assert.False((bool)entry["held"]!);
        Assert.Equal(1, (int)entry["attempts"]!);
        Assert.Equal(StuckMail.Greylisted, (string)entry["lastError"]!);
        Assert.Null(entry["headers"]); // only when one entry is asked for
        // Times are ISO 8601 in UTC; the next attempt is the back-off away (an hour here).
        var created = DateTimeOffset.Parse((string)entry["created"]!);
        Assert.EndsWith("Z", (string)entry["created"]!);
        Assert.Equal(sent.Created, created.ToUnixTimeMilliseconds());
        Assert.True(DateTimeOffset.Parse((string)entry["nextAttempt"]!) > created.AddMinutes(30));
        var recipients = entry["recipients"]!.AsArray().ToDictionary(r => (string)r!["address"]!);
        Assert.Equal("queued", (string)recipients[StuckMail.Carol]!["state"]!);
        Assert.Equal(StuckMail.Greylisted, (string)recipients[StuckMail.Carol]!["reply"]!);
        Assert.Equal("sent", (string)recipients[StuckMail.Dave]!["state"]!);
        Assert.StartsWith("250", (string)recipients[StuckMail.Dave]!["reply"]!);

        var shown = await Body(await _http.GetAsync($"/api/v1/queue/{sent.Id}"));
        Assert.Equal(1, (int)shown["attempts"]!);
        var headers = (string)shown["headers"]!;
        Assert.Contains("Subject: first", headers);
        Assert.Contains("To: " + StuckMail.Carol, headers);
        Assert.DoesNotContain("a message that will wait", headers); // the header block only

        // A second message; search finds either by a piece of the id, the sender or a recipient.
        var second = await _mail.SendAsync("second");
        Assert.Equal([sent.Id, second.Id], Ids(await Body(await _http.GetAsync("/api/v1/queue")))); // oldest first
        Assert.Equal([second.Id], Ids(await Body(await _http.GetAsync($"/api/v1/queue?search={second.Id[2..8].ToLowerInvariant()}"))));
        Assert.Equal(2, (int)(await Body(await _http.GetAsync("/api/v1/queue?search=CAROL@remote")))["total"]!);
        Assert.Empty(Ids(await Body(await _http.GetAsync("/api/v1/queue?search=nobody@nowhere"))));
        var paged = await Body(await _http.GetAsync("/api/v1/queue?offset=1&limit=1"));
        Assert.Equal(2, (int)paged["total"]!);
        Assert.Equal([second.Id], Ids(paged));
    }

    [Fact]
    public async Task Hold_release_retry_and_delete_change_what_the_queue_does()
    {
        var sent = await _mail.SendAsync("to hold");
        var id = sent.Id;
        var rcptsForCarol = _mail.Mx.Commands.Count(c => c.Contains(StuckMail.Carol, StringComparison.OrdinalIgnoreCase));

        // On hold, --all skips it: nothing is due.
        Assert.Equal(HttpStatusCode.NoContent, (await _http.PostAsync($"/api/v1/queue/{id}/hold", null)).StatusCode);
        Assert.True((bool)(await Body(await _http.GetAsync($"/api/v1/queue/{id}")))["held"]!);
        Assert.True((await _mail.Node.Host.Queue.ShowQueuedAsync(id)).Entry.Held);
        Assert.Equal(0, (int)(await Body(await _http.PostAsync("/api/v1/queue/retry", null)))["count"]!);

        // Released, it is due at once: a second attempt, greylisted again.
        Assert.Equal(HttpStatusCode.NoContent, (await _http.PostAsync($"/api/v1/queue/{id}/release", null)).StatusCode);
        var second = await _mail.WaitAsync(e => e.Id == id && e.Attempts == 2, "the attempt after the release");
        Assert.False(second.Held);
        // Retried by hand: a third one; and then every entry.
        Assert.Equal(1, (int)(await Body(await _http.PostAsync($"/api/v1/queue/{id}/retry", null)))["count"]!);
        await _mail.WaitAsync(e => e.Id == id && e.Attempts == 3, "the attempt after the retry");
        Assert.Equal(1, (int)(await Body(await _http.PostAsync("/api/v1/queue/retry", null)))["count"]!);
        await _mail.WaitAsync(e => e.Id == id && e.Attempts == 4, "the attempt after retry all");
        Assert.Equal(rcptsForCarol + 3, _mail.Mx.Commands.Count(c => c.Contains(StuckMail.Carol, StringComparison.OrdinalIgnoreCase)));

        // Deleted: gone, without a bounce to alice.
        Assert.Equal(HttpStatusCode.NoContent, (await _http.DeleteAsync($"/api/v1/queue/{id}")).StatusCode);
        Assert.Empty(await _mail.Node.Host.Queue.ListQueueAsync());
        Assert.Equal(0, (int)(await Body(await _http.GetAsync("/api/v1/queue")))["total"]!);
        Assert.Empty(await _mail.Node.InboxAsync("alice"));

        // Now unknown: 404 problems.
        foreach (var request in new[]
        {
            new HttpRequestMessage(HttpMethod.Get, $"/api/v1/queue/{id}"),
            new HttpRequestMessage(HttpMethod.Post, $"/api/v1/queue/{id}/retry"),
            new HttpRequestMessage(HttpMethod.Post, $"/api/v1/queue/{id}/hold"),
            new HttpRequestMessage(HttpMethod.Post, $"/api/v1/queue/{id}/release"),
            new HttpRequestMessage(HttpMethod.Delete, $"/api/v1/queue/{id}"),
        })
        {
            var answer = await _http.SendAsync(request);
            Assert.Equal(HttpStatusCode.NotFound, answer.StatusCode);
            Assert.Equal("application/problem+json", answer.Content.Headers.ContentType!.MediaType);
        }
    }

    [Fact]
    public async Task Reading_needs_read_and_changing_needs_provision()
    {
        var sent = await _mail.SendAsync("scopes");
        using var anonymous = Client(null);
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("/api/v1/queue")).StatusCode);
        using var reader = Client(_mail.Node.Directory.CreateToken("dashboard", "read"));
        Assert.Equal(HttpStatusCode.OK, (await reader.GetAsync("/api/v1/queue")).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await reader.GetAsync($"/api/v1/queue/{sent.Id}")).StatusCode);
        foreach (var request in new[]
        {
            new HttpRequestMessage(HttpMethod.Post, $"/api/v1/queue/{sent.Id}/hold"),
            new HttpRequestMessage(HttpMethod.Post, "/api/v1/queue/retry"),
            new HttpRequestMessage(HttpMethod.Delete, $"/api/v1/queue/{sent.Id}"),
        })
        {
            var refused = await reader.SendAsync(request);
            Assert.Equal(HttpStatusCode.Forbidden, refused.StatusCode);
            Assert.Contains("provision", (string)JsonNode.Parse(await refused.Content.ReadAsStringAsync())!["detail"]!);
        }
        var still = (await _mail.Node.Host.Queue.ShowQueuedAsync(sent.Id)).Entry;
        Assert.False(still.Held);
        Assert.Equal(1, still.Attempts);
    }

    [Fact]
    public async Task EveryQueueRoute_IsInTheOpenApiDocument()
    {
        var doc = JsonNode.Parse(await _http.GetStringAsync("/api/v1/openapi.json"))!["paths"]!.AsObject();
        var routes = _mail.Node.Host.WebRoutes.Where(r => r.Path.StartsWith("/api/v1/queue", StringComparison.Ordinal)).ToList();
        Assert.Equal(7, routes.Count);
        foreach (var (method, path) in routes)
            Assert.True(doc.ContainsKey(path) && doc[path]!.AsObject().ContainsKey(method.ToLowerInvariant()), $"{method} {path} is not in openapi.json");
    }
}
