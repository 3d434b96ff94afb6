using System.Net.Http.Headers;
using System.Text;
using System.Text.RegularExpressions;

namespace Appliance.Cluster.Fencing;

/// <summary>
/// An IP power strip driven by URL templates (ePower-like units): one request switches the outlet
/// off, and when a status URL is configured its body is polled until it matches OffPattern.
/// </summary>
/// <remarks>
/// Implementation notes: without a status URL a 2xx answer is the only confirmation the strip can
/// give. URLs are logged without their query string, since some strips take credentials there.
/// </remarks>
internal sealed class HttpFenceDriver : IFenceDriver
{
    private const int MaxBodyBytes = 64 * 1024;

    private readonly FencingOptions _options;
    private readonly Regex _offPattern;
    private readonly NLog.Logger _log;
    private readonly HttpClient _http;
    private readonly AuthenticationHeaderValue? _auth;

    public HttpFenceDriver(FencingOptions options, Regex offPattern, NLog.Logger log)
    {
        _options = options;
        _offPattern = offPattern;
        _log = log;
        // The strip sits on the management LAN: a proxy from the environment would only be in the way.
        _http = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false })
        {
            Timeout = Timeout.InfiniteTimeSpan,
            MaxResponseContentBufferSize = MaxBodyBytes,
        };
        if (options.User.Length > 0)
            _auth = new AuthenticationHeaderValue("Basic", Convert.ToBase64String(Encoding.UTF8.GetBytes(options.User + ":" + options.Password)));
    }

    public string Name => "http";

    public async Task<FenceOutcome> PowerOffAsync(string node, CancellationToken ct)
    {
        var plug = _options.Plugs.GetValueOrDefault(node);
        var timeout = TimeSpan.FromSeconds(_options.TimeoutSeconds);
        var offUrl = Fill(_options.OffUrl, node, plug);
        _log.Info("fence attempt driver=http node={0} plug={1} url={2}", node, plug ?? "-", ForLog(offUrl));
        FenceOutcome outcome;
        if (plug is null && (_options.OffUrl + _options.StatusUrl).Contains("{plug}", StringComparison.Ordinal))
        {
            outcome = new(false, $"no plug configured for node {node} in Cluster:Fencing:Plugs");
        }
        else
        {
            using var attempt = CancellationTokenSource.CreateLinkedTokenSource(ct);
            attempt.CancelAfter(timeout);
            try
            {
                outcome = await RunAsync(node, plug, offUrl, attempt.Token, ct);
            }
            catch (OperationCanceledException) when (!ct.IsCancellationRequested)
            {
                outcome = new(false, $"no answer from the power strip within {_options.TimeoutSeconds}s");
            }
            catch (HttpRequestException ex)
            {
                outcome = new(false, "power strip unreachable: " + OneLine(ex.Message));
            }
        }
        if (outcome.Confirmed)
            _log.Info("fence confirmed driver=http node={0}: {1}", node, outcome.Detail);
        else
            _log.Warn("fence failed driver=http node={0}: {1}", node, outcome.Detail);
        return outcome;
    }

    private async Task<FenceOutcome> RunAsync(string node, string? plug, string offUrl, CancellationToken ct, CancellationToken callerCt)
    {
        var (offStatus, offBody) = await SendAsync(HttpMethod.Parse(_options.OffMethod), offUrl, ct);
        if (offStatus is < 200 or > 299)
            return new(false, $"off request answered HTTP {offStatus} {OneLine(offBody)}".TrimEnd());
        if (_options.StatusUrl.Length == 0)
            return new(true, $"off request answered HTTP {offStatus} (no status URL to check)");

        // A strip may switch the relay a moment after answering: poll a few times within the timeout.
        var statusUrl = Fill(_options.StatusUrl, node, plug);
        var interval = TimeSpan.FromSeconds(Math.Clamp(_options.TimeoutSeconds / 10.0, 0.2, 2));
        var last = "";
        try
        {
            while (true)
            {
                var (status, body) = await SendAsync(HttpMethod.Get, statusUrl, ct);
                last = status is >= 200 and <= 299 ? OneLine(body) : $"HTTP {status}";
                if (status is >= 200 and <= 299 && _offPattern.IsMatch(body))
                    return new(true, "status reports off: " + last);
                await Task.Delay(interval, ct);
            }
        }
        catch (RegexMatchTimeoutException)
        {
            return new(false, "OffPattern took too long to match the status page");
        }
        catch (OperationCanceledException) when (!callerCt.IsCancellationRequested && last.Length > 0)
        {
            // The last status read tells the administrator more than "timed out".
            return new(false, $"status not off within {_options.TimeoutSeconds}s, last: {last}");
        }
    }

    private async Task<(int Status, string Body)> SendAsync(HttpMethod method, string url, CancellationToken ct)
    {
        using var request = new HttpRequestMessage(method, url);
        request.Headers.Authorization = _auth;
        using var response = await _http.SendAsync(request, ct);
        var body = await response.Content.ReadAsStringAsync(ct);
        return ((int)response.StatusCode, body);
    }

    private static string Fill(string template, string node, string? plug) => template
        .Replace("{node}", Uri.EscapeDataString(node), StringComparison.Ordinal)
        .Replace("{plug}", Uri.EscapeDataString(plug ?? ""), StringComparison.Ordinal);

    private static string ForLog(string url) =>
        Uri.TryCreate(url, UriKind.Absolute, out var uri) ? $"{uri.Scheme}://{uri.Authority}{uri.AbsolutePath}" : "(invalid)";

    internal static string OneLine(string text)
    {
        var line = text.AsSpan().Trim();
        var end = line.IndexOfAny('\r', '\n');
        if (end >= 0)
            line = line[..end].TrimEnd();
        return line.Length > 200 ? string.Concat(line[..200], "…") : line.ToString();
    }
}
