using System.Net;
using System.Net.Sockets;
using System.Text;
using Microsoft.Playwright;
using Xunit.Abstractions;

namespace Appliance.Tests.Web;

/// <summary>The browser helper itself: Chromium drives a page served from 127.0.0.1, and the error collection sees what it must.</summary>
public class BrowserTests(ITestOutputHelper output)
{
    // The admin panel's policy.
    private const string Csp = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'";

    private static readonly Dictionary<string, (string Type, string Body)> s_site = new()
    {
        ["/"] = ("text/html", """
            <!doctype html><html><head><title>t</title><link rel="icon" href="data:,"><script src="/app.js" defer></script></head>
            <body><button id="go">go</button><p id="out">before</p></body></html>
            """),
        ["/app.js"] = ("text/javascript", """
            document.getElementById('go').addEventListener('click', () => {
              document.getElementById('out').textContent = 'after';
            });
            """),
        ["/bad"] = ("text/html", """
            <!doctype html><html><head><script>document.title = 'inline ran';</script></head>
            <body><p style="color: red">styled</p><img src="/missing.png" alt=""><script src="/bad.js"></script></body></html>
            """),
        ["/bad.js"] = ("text/javascript", "console.error('boom from bad.js'); fetch('/api-missing');"),
    };

    [Fact]
    public async Task Clicks_a_button_and_sees_the_text_change()
    {
        if (!Browser.Available(output)) return;
        using var site = new TinySite(s_site);
        await using var browser = await Browser.StartAsync(output, nameof(Clicks_a_button_and_sees_the_text_change));
        var page = await browser.NewPageAsync(site.Url);

        await page.GotoAsync("/");
        await Assertions.Expect(page.Locator("#out")).ToHaveTextAsync("before");
        await page.ClickAsync("#go");
        await Assertions.Expect(page.Locator("#out")).ToHaveTextAsync("after");

        var shot = await browser.ScreenshotAsync(page, "after-click");
        Assert.True(new FileInfo(shot).Length > 100, "the screenshot is empty");
        Assert.Equal([0x89, (byte)'P', (byte)'N', (byte)'G'], File.ReadAllBytes(shot)[..4]);
        browser.AssertNoErrors();
    }

    [Fact]
    public async Task Reports_csp_violations_and_console_errors()
    {
        if (!Browser.Available(output)) return;
        using var site = new TinySite(s_site);
        await using var browser = await Browser.StartAsync(output, nameof(Reports_csp_violations_and_console_errors));
        var page = await browser.NewPageAsync(site.Url);

        await page.GotoAsync("/bad");
        await Assertions.Expect(page.Locator("p")).ToHaveTextAsync("styled");
        Assert.NotEqual("inline ran", await page.TitleAsync());
        // Violations are reported asynchronously; give them a moment to arrive.
        for (var i = 0; i < 50 && (browser.Errors.Count(e => e.StartsWith("CSP violation", StringComparison.Ordinal)) < 2 || browser.FailedFetches.Count == 0); i++)
            await Task.Delay(100);

        var errors = browser.Errors;
        Assert.Contains(errors, e => e.StartsWith("CSP violation: script-src", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("CSP violation: style-src", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.Contains("boom from bad.js", StringComparison.Ordinal));
        Assert.Contains(errors, e => e.StartsWith("resource error: GET ", StringComparison.Ordinal) && e.EndsWith("/missing.png answered 404", StringComparison.Ordinal));
        // A fetch answered 404 is the page's business: listed apart, not as an error.
        Assert.Contains(browser.FailedFetches, f => f.EndsWith("/api-missing answered 404", StringComparison.Ordinal));
        Assert.DoesNotContain(errors, e => e.Contains("api-missing", StringComparison.Ordinal));
        Assert.Throws<Xunit.Sdk.TrueException>(browser.AssertNoErrors);
    }

    /// <summary>A few fixed resources on 127.0.0.1 with the panel's kind of CSP.</summary>
    private sealed class TinySite : IDisposable
    {
        private readonly HttpListener _listener;
        private readonly Dictionary<string, (string Type, string Body)> _files;

        public TinySite(Dictionary<string, (string Type, string Body)> files)
        {
            _files = files;
            // HttpListener cannot bind port 0: take a port the kernel just handed out, retrying if it is taken meanwhile.
            for (var attempt = 0; ; attempt++)
            {
                var probe = new TcpListener(IPAddress.Loopback, 0);
                probe.Start();
                var port = ((IPEndPoint)probe.LocalEndpoint).Port;
                probe.Stop();
                _listener = new HttpListener();
                _listener.Prefixes.Add($"http://127.0.0.1:{port}/");
                try
                {
                    _listener.Start();
                    Url = $"http://127.0.0.1:{port}";
                    break;
                }
                catch (HttpListenerException) when (attempt < 10)
                {
                    _listener.Close();
                }
            }
            _ = ServeAsync();
        }

        public string Url { get; }

        private async Task ServeAsync()
        {
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try { context = await _listener.GetContextAsync(); }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException) { return; }
                var response = context.Response;
                if (!_files.TryGetValue(context.Request.Url!.AbsolutePath, out var file))
                {
                    response.StatusCode = 404;
                    file = ("text/plain", "not found");
                }
                var body = Encoding.UTF8.GetBytes(file.Body);
                response.ContentType = file.Type + "; charset=utf-8";
                response.Headers["Content-Security-Policy"] = Csp;
                response.ContentLength64 = body.Length;
                await response.OutputStream.WriteAsync(body);
                response.Close();
            }
        }

        public void Dispose() => _listener.Close();
    }
}
