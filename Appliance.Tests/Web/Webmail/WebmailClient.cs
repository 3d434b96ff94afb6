using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json.Nodes;

namespace Appliance.Tests.Web.Webmail;

/// <summary>The webmail's JSON API over real HTTP with a cookie jar, as its page calls it (CSRF header on changes).</summary>
public sealed class WebmailClient : IDisposable
{
    private readonly HttpClient _http;

    public WebmailClient(IPEndPoint http)
    {
        Cookies = new CookieContainer();
        _http = new HttpClient(new HttpClientHandler { CookieContainer = Cookies, AllowAutoRedirect = false }) { BaseAddress = new Uri($"http://{http}") };
    }

    public CookieContainer Cookies { get; }
    public string? Csrf { get; set; }
    public HttpClient Http => _http;

    public async Task<HttpResponseMessage> SignInAsync(string address, string password)
    {
        var r = await _http.PostAsync("/webmail/api/session", Json(new JsonObject { ["address"] = address, ["password"] = password }));
        if (r.IsSuccessStatusCode) Csrf = (string)(await BodyAsync(r))["csrf"]!;
        return r;
    }

    public static StringContent Json(JsonNode body) => new(body.ToJsonString(), Encoding.UTF8, "application/json");

    public static async Task<JsonNode> BodyAsync(HttpResponseMessage r) => JsonNode.Parse(await r.Content.ReadAsStringAsync())!;

    public Task<HttpResponseMessage> GetAsync(string path) => _http.GetAsync(path);

    public async Task<JsonNode> GetJsonAsync(string path)
    {
        var r = await _http.GetAsync(path);
        Assert.True(r.IsSuccessStatusCode, $"GET {path}: {(int)r.StatusCode} {await r.Content.ReadAsStringAsync()}");
        return await BodyAsync(r);
    }

    public Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, HttpContent? content = null)
    {
        var request = new HttpRequestMessage(method, path) { Content = content };
        if (Csrf is not null) request.Headers.Add("X-CSRF-Token", Csrf);
        return _http.SendAsync(request);
    }

    public Task<HttpResponseMessage> PostAsync(string path, JsonNode body) => SendAsync(HttpMethod.Post, path, Json(body));
    public Task<HttpResponseMessage> PutAsync(string path, JsonNode body) => SendAsync(HttpMethod.Put, path, Json(body));
    public Task<HttpResponseMessage> DeleteAsync(string path) => SendAsync(HttpMethod.Delete, path);

    /// <summary>POSTs and asserts success, returning the JSON answer (null for 204).</summary>
    public async Task<JsonNode?> OkAsync(Task<HttpResponseMessage> call)
    {
        var r = await call;
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(r.IsSuccessStatusCode, $"{(int)r.StatusCode} {text}");
        return text.Length == 0 ? null : JsonNode.Parse(text);
    }

    public async Task<JsonNode> UploadAsync(string path, string field, string fileName, byte[] data, string type)
    {
        var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(data);
        file.Headers.ContentType = new MediaTypeHeaderValue(type);
        form.Add(file, field, fileName);
        return (await OkAsync(SendAsync(HttpMethod.Post, path, form)))!;
    }

    /// <summary>The detail of a problem answer, asserting its status.</summary>
    public static async Task<string> ProblemAsync(HttpResponseMessage r, HttpStatusCode status)
    {
        var text = await r.Content.ReadAsStringAsync();
        Assert.True(r.StatusCode == status, $"expected {(int)status}, got {(int)r.StatusCode} {text}");
        Assert.Equal("application/problem+json", r.Content.Headers.ContentType?.MediaType);
        return (string)JsonNode.Parse(text)!["detail"]!;
    }

    public void Dispose() => _http.Dispose();
}
