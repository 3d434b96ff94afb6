using Microsoft.Playwright;
using Xunit.Abstractions;

namespace Appliance.Tests.Web;

/// <summary>
/// Debian's Chromium (/usr/bin/chromium) driven headless through Playwright's .NET driver
/// (which runs its bundled node; nothing is downloaded: the browser is the system one).
/// Collects, for every page it opens, console errors, uncaught page errors and CSP violations,
/// so a test can assert a page ran clean; screenshots go to
/// <c>$APPLIANCE_ARTIFACTS/screenshots</c> (default <c>TestResults/screenshots</c> under the
/// test output) as <c>TEST-STEP.png</c>.
/// </summary>
/// <remarks>
/// Gate a test with <see cref="Available"/> like <see cref="RootOnly"/>: without Chromium the
/// test returns early, except in CI (CI=true), where it fails.
/// CSP violations are caught by a <c>securitypolicyviolation</c> listener that Playwright adds
/// to every document before the page's own scripts (an init script is not subject to the
/// page's CSP), and reported back through an exposed binding.
/// </remarks>
public sealed class Browser : IAsyncDisposable
{
    public const string ChromiumPath = "/usr/bin/chromium";

    private static readonly string[] s_args =
    [
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
    ];

    private const string CspListener = """
        document.addEventListener('securitypolicyviolation', e => {
          window.__applianceCspViolation(e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline')
            + ' at ' + (e.sourceFile || e.documentURI) + ':' + e.lineNumber + ' ' + (e.sample || ''));
        }, true);
        """;

    private readonly IPlaywright _playwright;
    private readonly IBrowser _browser;
    private readonly ITestOutputHelper _output;
    private readonly List<string> _errors = [];
    private readonly List<string> _failedFetches = [];
    private readonly List<IBrowserContext> _contexts = [];

    private Browser(IPlaywright playwright, IBrowser browser, ITestOutputHelper output, string testName)
    {
        _playwright = playwright;
        _browser = browser;
        _output = output;
        TestName = testName;
    }

    /// <summary>The name screenshots start with.</summary>
    public string TestName { get; }

    /// <summary>
    /// Console errors, uncaught exceptions, CSP violations, failed requests and error answers to
    /// anything but fetch/XHR (a missing script, style sheet or image) of every page so far.
    /// </summary>
    public IReadOnlyList<string> Errors
    {
        get { lock (_errors) return [.. _errors]; }
    }

    /// <summary>fetch/XHR requests answered with 4xx/5xx ("GET URL answered 401") or failed: the page's own business to report, not an error of the page.</summary>
    public IReadOnlyList<string> FailedFetches
    {
        get { lock (_errors) return [.. _failedFetches]; }
    }

    /// <summary>Where screenshots go: $APPLIANCE_ARTIFACTS/screenshots, else TestResults/screenshots in the test output.</summary>
    public static string ScreenshotDirectory =>
        Path.Combine(Environment.GetEnvironmentVariable("APPLIANCE_ARTIFACTS") is { Length: > 0 } root
            ? root
            : Path.Combine(AppContext.BaseDirectory, "TestResults"), "screenshots");

    /// <summary>True when Chromium is installed; false (after telling why) when the test should return early. Fails in CI.</summary>
    public static bool Available(ITestOutputHelper output)
    {
        if (File.Exists(ChromiumPath)) return true;
        if (Environment.GetEnvironmentVariable("CI") == "true")
            Assert.Fail($"this test needs {ChromiumPath}, and CI=true: .ci/run must install the chromium package");
        output.WriteLine($"skipped: needs {ChromiumPath} (apt-get install chromium; runs in CI)");
        return false;
    }

    /// <summary>Starts headless Chromium; <paramref name="testName"/> prefixes the screenshots.</summary>
    public static async Task<Browser> StartAsync(ITestOutputHelper output, string testName)
    {
        var playwright = await Playwright.CreateAsync();
        try
        {
            // Playwright gives the browser a fresh temporary profile and removes it at close.
            var browser = await playwright.Chromium.LaunchAsync(new()
            {
                ExecutablePath = ChromiumPath,
                Headless = true,
                Args = s_args,
                Timeout = 60_000,
            });
            return new Browser(playwright, browser, output, testName);
        }
        catch
        {
            playwright.Dispose();
            throw;
        }
    }

    /// <summary>A page in a context of its own (own cookies), watched for errors.</summary>
    public async Task<IPage> NewPageAsync(string? baseUrl = null)
    {
        var context = await _browser.NewContextAsync(new()
        {
            BaseURL = baseUrl,
            ViewportSize = new() { Width = 1280, Height = 800 },
            Locale = "en-GB",
            TimezoneId = "UTC",
        });
        _contexts.Add(context);
        context.SetDefaultTimeout(15_000);
        await context.ExposeFunctionAsync("__applianceCspViolation", (string what) => Record($"CSP violation: {what}"));
        await context.AddInitScriptAsync(CspListener);
        var page = await context.NewPageAsync();
        page.Console += (_, m) =>
        {
            // Chromium logs every HTTP error status as a console error; those are judged below by kind of request.
            if (m.Type == "error" && !m.Text.StartsWith("Failed to load resource: the server responded with a status of", StringComparison.Ordinal))
                Record($"console error: {m.Text} ({m.Location})");
        };
        page.Response += (_, r) =>
        {
            if (r.Status < 400) return;
            var what = $"{r.Request.Method} {r.Url} answered {r.Status}";
            if (r.Request.ResourceType is "fetch" or "xhr") lock (_errors) _failedFetches.Add(what);
            else Record($"resource error: {what}");
        };
        page.RequestFailed += (_, r) =>
        {
            var what = $"{r.Method} {r.Url} failed: {r.Failure}";
            if (r.ResourceType is "fetch" or "xhr") lock (_errors) _failedFetches.Add(what);
            else Record($"request error: {what}");
        };
        page.PageError += (_, e) => Record($"page error: {e}");
        page.Crash += (_, _) => Record("page crashed");
        return page;
    }

    /// <summary>Saves a full-page screenshot as TEST-STEP.png and returns its path.</summary>
    public async Task<string> ScreenshotAsync(IPage page, string step)
    {
        var dir = ScreenshotDirectory;
        System.IO.Directory.CreateDirectory(dir);
        var path = Path.Combine(dir, $"{Safe(TestName)}-{Safe(step)}.png");
        await page.ScreenshotAsync(new() { Path = path, FullPage = true });
        _output.WriteLine($"screenshot: {path}");
        return path;
    }

    /// <summary>Fails with every error collected so far.</summary>
    public void AssertNoErrors()
    {
        var errors = Errors;
        Assert.True(errors.Count == 0, "the browser reported:\n" + string.Join("\n", errors));
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var context in _contexts) await context.CloseAsync();
        await _browser.CloseAsync();
        _playwright.Dispose();
    }

    private void Record(string error)
    {
        lock (_errors) _errors.Add(error);
        try { _output.WriteLine(error); }
        catch (InvalidOperationException) { } // reported after the test ended: still kept in Errors

    }

    private static string Safe(string name) =>
        string.Concat(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_'));
}
