using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace Appliance.Filtering;

// Implementation notes
// - rspamd's HTTP protocol (https://rspamd.com/doc/developers/protocol.html): POST /checkv2 with
//   the raw message as the body and the SMTP envelope as request headers (IP, Helo, From, one Rcpt
//   per recipient, Hostname, User, Queue-Id); the reply is a JSON object with the score, the
//   required score, the action and the symbols that matched. GET /ping answers "pong".
// - One HttpClient per RspamdClient (connections are reused); no proxy, no redirects, the reply
//   buffered up to 1 MiB. The timeout covers connect, send and reply, as ClamdClient's does.
// - Nothing rspamd does reaches the caller as an exception: down, slow, an HTTP error or a reply
//   that is not rspamd's JSON is a verdict with Error set, and the caller decides (accept or 451).
//   Only the caller's own cancellation is thrown.

/// <summary>What rspamd says to do with a message (its action names); <see cref="Error"/> when it said nothing usable.</summary>
public enum RspamdAction { NoAction, Greylist, AddHeader, RewriteSubject, SoftReject, Reject, Other, Error }

/// <summary>The SMTP transaction rspamd judges a message in: the client, its HELO, the envelope, who sent it.</summary>
public sealed record RspamdRequest(IPAddress? Ip, string Helo, string MailFrom, IReadOnlyList<string> Recipients)
{
    /// <summary>The client's name from reverse DNS, when it has one.</summary>
    public string? Hostname { get; init; }
    /// <summary>The authenticated user (submission), null on the MX.</summary>
    public string? User { get; init; }
    public string? QueueId { get; init; }
}

/// <summary>rspamd's verdict on a message, or the reason there is none (<see cref="Error"/>).</summary>
public sealed record RspamdVerdict(RspamdAction Action, string ActionName, double Score, double RequiredScore,
    IReadOnlyDictionary<string, double> Symbols, string? Error)
{
    private const int SummarySymbols = 10;

    /// <summary>Each symbol's options (what matched: a URL, an address, a token), when rspamd gave some.</summary>
    public IReadOnlyDictionary<string, IReadOnlyList<string>> SymbolOptions { get; init; } = new Dictionary<string, IReadOnlyList<string>>();
    /// <summary>The Message-ID rspamd read, if any.</summary>
    public string? MessageId { get; init; }
    /// <summary>The text rspamd wants in the SMTP reply (messages.smtp_message), if any.</summary>
    public string? SmtpMessage { get; init; }
    /// <summary>The new Subject for <see cref="RspamdAction.RewriteSubject"/>.</summary>
    public string? Subject { get; init; }

    public static RspamdVerdict Failed(string why) =>
        new(RspamdAction.Error, "error", 0, 0, new Dictionary<string, double>(), why);

    /// <summary>How the transaction's log line says it: rspamd=3.20/15(add header), rspamd=error(why).</summary>
    public string LogField => Error is { } why
        ? $"rspamd=error({why})"
        : string.Create(CultureInfo.InvariantCulture, $"rspamd={Score:0.00}/{RequiredScore:0.##}({ActionName})");

    /// <summary>
    /// The symbols that weighed most, heaviest first, for an X-Spam header:
    /// "APPLIANCE_TEST_SPAM(20.00) MISSING_DATE(1.00)"; empty when none (or on error).
    /// Names only (they are rspamd's [A-Z0-9_] identifiers); options stay out of headers.
    /// </summary>
    public string SymbolSummary => string.Join(' ', Symbols
        .Where(s => s.Value != 0)
        .OrderByDescending(s => Math.Abs(s.Value)).ThenBy(s => s.Key, StringComparer.Ordinal)
        .Take(SummarySymbols)
        .Select(s => string.Create(CultureInfo.InvariantCulture, $"{HeaderSafe(s.Key)}({s.Value:0.00})")));

    private static string HeaderSafe(string name) => string.Concat(name.Where(c => c is > ' ' and < '\x7f' and not '(' and not ')'));

    internal static RspamdAction ParseAction(string? name) => name switch
    {
        "no action" => RspamdAction.NoAction,
        "greylist" => RspamdAction.Greylist,
        "add header" => RspamdAction.AddHeader,
        "rewrite subject" => RspamdAction.RewriteSubject,
        "soft reject" => RspamdAction.SoftReject,
        "reject" => RspamdAction.Reject,
        _ => RspamdAction.Other,
    };
}

/// <summary>A client of rspamd's normal worker (<c>Rspamd:Url</c>, "http://127.0.0.1:11333/").</summary>
public sealed class RspamdClient : IDisposable
{
    private const int MaxReply = 1024 * 1024;

    private readonly HttpClient _http;
    private readonly TimeSpan _timeout;
    private readonly string? _password;

    public RspamdClient(Uri baseUrl, TimeSpan timeout, string? password = null)
    {
        BaseUrl = baseUrl;
        _timeout = timeout;
        _password = password;
        _http = new HttpClient(new SocketsHttpHandler
        {
            UseProxy = false,
            AllowAutoRedirect = false,
            // Envelope addresses may be UTF-8 (RFC 6531); rspamd reads header values as bytes.
            RequestHeaderEncodingSelector = (_, _) => Encoding.UTF8,
        })
        {
            BaseAddress = baseUrl,
            Timeout = Timeout.InfiniteTimeSpan, // ours, per call, below
            MaxResponseContentBufferSize = MaxReply,
        };
    }

    public Uri BaseUrl { get; }

    /// <summary>Has rspamd judge <paramref name="message"/>; never throws for rspamd's sake (a failure is a verdict with Error).</summary>
    public async Task<RspamdVerdict> CheckAsync(ReadOnlyMemory<byte> message, RspamdRequest request, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(_timeout);
        try
        {
            using var post = new HttpRequestMessage(HttpMethod.Post, "checkv2") { Content = new ReadOnlyMemoryContent(message) };
            post.Content.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            AddHeaders(post.Headers, request);
            using var reply = await _http.SendAsync(post, deadline.Token);
            var body = await reply.Content.ReadAsByteArrayAsync(deadline.Token);
            if (reply.StatusCode != HttpStatusCode.OK)
                return RspamdVerdict.Failed($"rspamd at {BaseUrl} answered HTTP {(int)reply.StatusCode}{ErrorText(body)}");
            return Parse(body);
        }
        catch (Exception ex) when (!ct.IsCancellationRequested && ex is HttpRequestException or IOException or SocketException or OperationCanceledException)
        {
            return RspamdVerdict.Failed(ex is OperationCanceledException
                ? $"rspamd at {BaseUrl} did not answer within {_timeout.TotalSeconds:0.#} s"
                : $"rspamd at {BaseUrl}: {Innermost(ex).Message}");
        }
    }

    /// <summary>GET /ping → "pong": rspamd is up and serving. False when it is not (down, slow, another answer).</summary>
    public async Task<bool> PingAsync(CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(_timeout);
        try
        {
            using var reply = await _http.GetAsync("ping", deadline.Token);
            return reply.StatusCode == HttpStatusCode.OK && (await reply.Content.ReadAsStringAsync(deadline.Token)).Trim() == "pong";
        }
        catch (Exception ex) when (!ct.IsCancellationRequested && ex is HttpRequestException or IOException or SocketException or OperationCanceledException)
        {
            return false;
        }
    }

    public void Dispose() => _http.Dispose();

    private void AddHeaders(HttpRequestHeaders headers, RspamdRequest request)
    {
        void Add(string name, string? value)
        {
            if (value is null) return;
            // Envelope values come from SMTP commands and cannot hold CR or LF; be sure anyway.
            var clean = string.Concat(value.Where(c => !char.IsControl(c)));
            headers.TryAddWithoutValidation(name, clean);
        }
        if (request.Ip is { } ip) Add("IP", (ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip).ToString());
        if (request.Helo.Length > 0) Add("Helo", request.Helo);
        Add("From", request.MailFrom.Length > 0 ? request.MailFrom : "<>"); // "<>": a bounce, as rspamd reads it
        foreach (var rcpt in request.Recipients) Add("Rcpt", rcpt);
        Add("Hostname", request.Hostname);
        Add("User", request.User);
        Add("Queue-Id", request.QueueId);
        Add("Password", _password);
    }

    /// <summary>rspamd's /checkv2 JSON → a verdict; anything else is an Error verdict.</summary>
    internal static RspamdVerdict Parse(ReadOnlySpan<byte> json)
    {
        RspamdReply? reply;
        try { reply = JsonSerializer.Deserialize(json, RspamdJson.Default.RspamdReply); }
        catch (JsonException ex) { return RspamdVerdict.Failed($"rspamd's reply is not JSON: {ex.Message}"); }
        if (reply is null) return RspamdVerdict.Failed("rspamd's reply is empty");
        if (reply.Error is { } error) return RspamdVerdict.Failed($"rspamd: {error}");
        if (reply.Action is not { Length: > 0 } action) return RspamdVerdict.Failed("rspamd's reply has no action");
        var symbols = new Dictionary<string, double>(StringComparer.Ordinal);
        var options = new Dictionary<string, IReadOnlyList<string>>(StringComparer.Ordinal);
        foreach (var (key, symbol) in reply.Symbols ?? [])
        {
            var name = symbol.Name ?? key;
            symbols[name] = symbol.Score;
            if (symbol.Options is { Count: > 0 } o) options[name] = o;
        }
        string? smtpMessage = null;
        if (reply.Messages?.TryGetValue("smtp_message", out var m) == true && m.ValueKind == JsonValueKind.String) smtpMessage = m.GetString();
        return new RspamdVerdict(RspamdVerdict.ParseAction(action), action, reply.Score, reply.RequiredScore, symbols, null)
        {
            SymbolOptions = options,
            MessageId = reply.MessageId is "undef" ? null : reply.MessageId,
            SmtpMessage = smtpMessage,
            Subject = reply.Subject,
        };
    }

    private static string ErrorText(byte[] body)
    {
        try
        {
            var reply = JsonSerializer.Deserialize(body, RspamdJson.Default.RspamdReply);
            return reply?.Error is { } error ? ": " + error : "";
        }
        catch (JsonException) { return ""; }
    }

    private static Exception Innermost(Exception ex) => ex.InnerException is { } inner ? Innermost(inner) : ex;
}

/// <summary>The part of rspamd's /checkv2 reply we read.</summary>
internal sealed class RspamdReply
{
    [JsonPropertyName("score")] public double Score { get; set; }
    [JsonPropertyName("required_score")] public double RequiredScore { get; set; }
    [JsonPropertyName("action")] public string? Action { get; set; }
    [JsonPropertyName("symbols")] public Dictionary<string, RspamdSymbolReply>? Symbols { get; set; }
    [JsonPropertyName("messages")] public Dictionary<string, JsonElement>? Messages { get; set; }
    [JsonPropertyName("message-id")] public string? MessageId { get; set; }
    [JsonPropertyName("subject")] public string? Subject { get; set; }
    [JsonPropertyName("error")] public string? Error { get; set; }
}

internal sealed class RspamdSymbolReply
{
    [JsonPropertyName("name")] public string? Name { get; set; }
    [JsonPropertyName("score")] public double Score { get; set; }
    [JsonPropertyName("options")] public List<string>? Options { get; set; }
}

[JsonSerializable(typeof(RspamdReply))]
internal sealed partial class RspamdJson : JsonSerializerContext;
