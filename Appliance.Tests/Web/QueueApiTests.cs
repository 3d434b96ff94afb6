using System.Net;
using System.Net.Http.Headers;
using System.Text.Json.Nodes;
using Appliance.Directory;
using Appliance.Relay;
using Appliance.Store;
using Appliance.Web;

namespace Appliance.Tests.Web;

/// <summary>The outbound queue's API over real HTTP (interim: a web server over an in-test queue).</summary>
public sealed class QueueApiTests : IAsyncLifetime
{
    private TestNode _node = null!;
    private WebServer _web = null!;
    private readonly FakeQueue _queue = new();
    private HttpClient _http = null!;

    public async Task InitializeAsync()
    {
        _node = await TestNode.StartAsync(["alice"]);
        _web = await WebServer.StartAsync(IPAddress.Loopback, 0, -1, -1, _node.Host.Certificate, true, _node.Host.Provisioning, _node.Store, "test", _queue, CancellationToken.None);
        _http = Client(_node.Directory.CreateToken("portal", "provision"));
    }

    public async Task DisposeAsync()
    {
        _http.Dispose();
        await _web.DisposeAsync();
        await _node.DisposeAsync();
    }

    private HttpClient Client(string? token)
    {
        var http = new HttpClient { BaseAddress = new Uri($"http://{_web.Endpoints["http"]}") };
        if (token is not null) http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return http;
    }

    private static async Task<JsonNode> Body(HttpResponseMessage r) => JsonNode.Parse(await r.Content.ReadAsStringAsync())!;

    [Fact]
    public async Task List_Show_Hold_Release_Retry_Delete()
    {
        var list = await Body(await _http.GetAsync("/api/v1/queue"));
        Assert.Equal(2, (int)list["total"]!);
        var first = list["items"]![0]!;
        Assert.Equal("q1", (string)first["id"]!);
        Assert.Equal("2025-06-01T08:30:00.123Z", (string)first["created"]!);
        Assert.Equal("queued", (string)first["recipients"]![0]!["state"]!);
        Assert.Equal("sent", (string)first["recipients"]![1]!["state"]!);
        Assert.Null(first["headers"]);

        var found = await Body(await _http.GetAsync("/api/v1/queue?search=BOB@remote"));
        Assert.Equal(["q2"], found["items"]!.AsArray().Select(i => (string)i!["id"]!));

        var shown = await Body(await _http.GetAsync("/api/v1/queue/q1"));
        Assert.StartsWith("Subject: one", (string)shown["headers"]!);

        using var reader = Client(_node.Directory.CreateToken("dashboard", "read"));
        Assert.Equal(HttpStatusCode.OK, (await reader.GetAsync("/api/v1/queue")).StatusCode);
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.PostAsync("/api/v1/queue/q1/hold", null)).StatusCode);
        Assert.False(_queue.Find("q1").Held);

        Assert.Equal(HttpStatusCode.NoContent, (await _http.PostAsync("/api/v1/queue/q1/hold", null)).StatusCode);
        Assert.True(_queue.Find("q1").Held);
        Assert.True((bool)(await Body(await _http.GetAsync("/api/v1/queue/q1")))["held"]!);
        Assert.Equal(HttpStatusCode.NoContent, (await _http.PostAsync("/api/v1/queue/q1/release", null)).StatusCode);
        Assert.False(_queue.Find("q1").Held);
        Assert.Equal(1, (int)(await Body(await _http.PostAsync("/api/v1/queue/q1/retry", null)))["count"]!);
        Assert.Equal(2, (int)(await Body(await _http.PostAsync("/api/v1/queue/retry", null)))["count"]!);
        Assert.Equal(HttpStatusCode.NoContent, (await _http.DeleteAsync("/api/v1/queue/q1")).StatusCode);
        Assert.Equal(["q2"], (await _queue.ListQueueAsync()).Select(e => e.Id));
        Assert.All(_queue.Actors, a => Assert.Equal("token:portal", a));

        var missing = await _http.PostAsync("/api/v1/queue/q1/hold", null);
        Assert.Equal(HttpStatusCode.NotFound, missing.StatusCode);
        Assert.Equal("application/problem+json", missing.Content.Headers.ContentType!.MediaType);
        Assert.Equal(HttpStatusCode.NotFound, (await _http.GetAsync("/api/v1/queue/nosuch")).StatusCode);
    }

    [Fact]
    public async Task EveryQueueRoute_IsInTheOpenApiDocument()
    {
        var doc = JsonNode.Parse(await _http.GetStringAsync("/api/v1/openapi.json"))!["paths"]!.AsObject();
        var routes = _web.Routes.Where(r => r.Path.StartsWith("/api/v1/queue", StringComparison.Ordinal)).ToList();
        Assert.Equal(7, routes.Count);
        foreach (var (method, path) in routes)
            Assert.True(doc.ContainsKey(path) && doc[path]!.AsObject().ContainsKey(method.ToLowerInvariant()), $"{method} {path} is not in openapi.json");
    }
}
