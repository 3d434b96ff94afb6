using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Appliance.Tests.Web;

/// <summary>
/// The admin panel's Monitoring page in Chromium, on a node that measures itself every second:
/// the checks and graphs fill with the node's own figures while the page refreshes by itself, the
/// range picker redraws the graphs, and when POP3 stops an alert opens that the admin
/// acknowledges. Every step leaves a screenshot.
/// </summary>
public sealed partial class MonitoringPanelTests(ITestOutputHelper output) : IAsyncLifetime
{
    // Long enough for a few samples, a check round and the page's 10-second refresh, or a whole
    // load of the page (some 40 series) on a busy machine.
    private static readonly LocatorAssertionsToHaveAttributeOptions s_slowAttribute = new() { Timeout = 60_000 };
    private static readonly LocatorAssertionsToHaveTextOptions s_slowText = new() { Timeout = 60_000 };
    private static readonly string[] s_worstFirst = ["CRITICAL", "UNKNOWN", "WARNING", "OK"];

    private TestNode? _node;
    private Browser? _browser;
    private IPage _page = null!;
    private int _shot;

    public async Task InitializeAsync()
    {
        if (!Browser.Available(output)) return;
        _node = await TestNode.StartAsync(["alice"], o =>
        {
            o.Listen.Http = 0;
            o.Monitoring.IntervalSeconds = 1;
        });
        _browser = await Browser.StartAsync(output, nameof(MonitoringPanelTests));
        _page = await _browser.NewPageAsync($"http://{_node.Host.Endpoints["http"]}");
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null) await _browser.DisposeAsync();
        if (_node is not null) await _node.DisposeAsync();
    }

    [Fact]
    public async Task An_admin_reads_the_checks_and_graphs_and_acknowledges_an_alert()
    {
        if (_browser is null) return;
        var node = _node!;
        var name = node.Host.Options.Node.Name;
        try
        {
            await _page.GotoAsync("/admin/#/monitoring");
            await _page.GetByTestId("login-name").FillAsync("admin");
            await _page.GetByTestId("login-password").FillAsync(node.Host.FirstAdminPassword!);
            await _page.GetByTestId("login-submit").ClickAsync();
            await Expect(_page.GetByTestId("page-monitoring")).ToBeVisibleAsync();
            await Expect(_page.GetByTestId("nav-monitoring")).ToHaveAttributeAsync("aria-current", "page");

            // Nothing is clicked yet: what appears comes from the page refreshing itself.
            var smtp = _page.Locator($"[data-testid=check-row][data-node='{name}'][data-name=smtp]");
            await Expect(smtp.GetByTestId("check-status")).ToHaveTextAsync("OK", s_slowText);
            var cpu = _page.Locator("[data-testid=monitoring-graph][data-family=cpu_percent]");
            var cpuLine = cpu.GetByTestId("graph-line");
            await Expect(cpuLine).ToHaveAttributeAsync("data-points", TwoOrMore(), s_slowAttribute);
            await Expect(cpuLine).ToHaveAttributeAsync("data-series", "cpu_percent");
            await Expect(cpu).ToHaveAttributeAsync("data-range", "1h");
            await Expect(_page.GetByTestId("monitoring-node")).ToHaveValueAsync(name);
            await Expect(_page.GetByTestId("monitoring-range")).ToHaveValueAsync("1h");
            // Read at a glance: the latest CPU figure in percent, on an axis up to 100%.
            await Expect(cpu.GetByTestId("graph-latest")).ToHaveTextAsync(new Regex(@"^\d+(\.\d+)?%$"));
            await Expect(cpu.Locator("svg text", new() { HasTextString = "100%" })).ToHaveCountAsync(1);
            // The three load averages share one graph, in order.
            var load = _page.Locator("[data-testid=monitoring-graph][data-family~=load1]");
            await Expect(load.GetByTestId("graph-line")).ToHaveCountAsync(3);
            Assert.Equal(["load1", "load5", "load15"], await load.GetByTestId("graph-line").EvaluateAllAsync<string[]>("ls => ls.map(l => l.dataset.series)"));
            // The graphs in the page's order: CPU first, the load averages before memory.
            var families = await _page.GetByTestId("monitoring-graph").EvaluateAllAsync<string[]>("gs => gs.map(g => g.dataset.family)");
            Assert.Equal("cpu_percent", families[0]);
            Assert.True(Array.FindIndex(families, f => f.Split(' ').Contains("load1")) < Array.IndexOf(families, "memory_used_percent"), string.Join(" | ", families));
            await ShotAsync("1h");

            // Over 24 hours a point is a 2-minute average: the node's few seconds make one or two.
            await _page.GetByTestId("monitoring-range").SelectOptionAsync("24h");
            await Expect(cpu).ToHaveAttributeAsync("data-range", "24h", s_slowAttribute);
            await Expect(cpuLine).ToHaveAttributeAsync("data-points", new Regex("^[1-9][0-9]*$"));
            await Expect(cpu.GetByTestId("graph-latest")).ToHaveTextAsync(new Regex(@"^\d+(\.\d+)?%$"));
            Assert.EndsWith("range=24h", new Uri(_page.Url).Fragment, StringComparison.Ordinal);
            await ShotAsync("24h");

            // POP3 stops: its check turns CRITICAL and an alert opens, which the admin acknowledges.
            await node.Host.StopServiceAsync("pop3");
            var alert = _page.Locator("[data-testid=alert-row][data-check=pop3][data-state=open]");
            await Expect(alert.GetByTestId("alert-status")).ToHaveTextAsync("CRITICAL", s_slowText);
            await Expect(alert).ToHaveAttributeAsync("data-node", name);
            var pop3 = _page.Locator($"[data-testid=check-row][data-node='{name}'][data-name=pop3]");
            await Expect(pop3.GetByTestId("check-status")).ToHaveTextAsync("CRITICAL", s_slowText);
            // Worst first: the stopped service heads the checks.
            var statuses = await _page.GetByTestId("check-status").AllTextContentsAsync();
            Assert.Equal(statuses.OrderBy(s => Array.IndexOf(s_worstFirst, s)), statuses);
            Assert.Contains("OK", statuses);
            await ShotAsync("alert");

            await alert.GetByTestId("alert-ack").ClickAsync();
            await Expect(alert.GetByTestId("alert-acked")).ToHaveTextAsync("acknowledged by admin", s_slowText);
            await Expect(alert.GetByTestId("alert-ack")).ToHaveCountAsync(0);
            await Expect(_page.GetByTestId("notice")).ToHaveTextAsync($"The pop3 alert on {name} is acknowledged.");
            await ShotAsync("acknowledged");

            // The acknowledgement is the server's, not the page's: it is still there after a reload.
            await _page.ReloadAsync();
            await Expect(alert.GetByTestId("alert-acked")).ToHaveTextAsync("acknowledged by admin", s_slowText);
            await Expect(_page.GetByTestId("monitoring-range")).ToHaveValueAsync("24h");
        }
        catch
        {
            await ShotAsync("failed");
            throw;
        }
        _browser.AssertNoErrors();
        Assert.All(_browser.FailedFetches, f => Assert.Matches(@"/api/v1/session answered 401$", f));
    }

    [GeneratedRegex(@"^([2-9]|\d{2,})$")]
    private static partial Regex TwoOrMore();

    private Task ShotAsync(string step) => _browser!.ScreenshotAsync(_page, $"{++_shot:D2}-{step}");
}
