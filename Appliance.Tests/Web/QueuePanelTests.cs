using System.Net;
using System.Text.RegularExpressions;
using Appliance.Web;
using Microsoft.Playwright;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Appliance.Tests.Web;

/// <summary>
/// The admin panel's Outbound queue page in Chromium: an admin sees a stuck message, holds it,
/// releases it and deletes it; every step leaves a screenshot.
/// </summary>
public sealed class QueuePanelTests(ITestOutputHelper output) : IAsyncLifetime
{
    private TestNode _node = null!;
    private WebServer? _web;
    private readonly FakeQueue _queue = new();
    private Browser? _browser;
    private IPage _page = null!;
    private int _shot;

    public async Task InitializeAsync()
    {
        if (!Browser.Available(output)) return;
        _node = await TestNode.StartAsync(["alice"]);
        _web = await WebServer.StartAsync(IPAddress.Loopback, 0, -1, -1, _node.Host.Certificate, true, _node.Host.Provisioning, _node.Store, "test", _queue, CancellationToken.None);
        _browser = await Browser.StartAsync(output, nameof(QueuePanelTests));
        _page = await _browser.NewPageAsync($"http://{_web.Endpoints["http"]}");
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null) await _browser.DisposeAsync();
        if (_web is not null) await _web.DisposeAsync();
        if (_node is not null) await _node.DisposeAsync();
    }

    [Fact]
    public async Task An_admin_holds_releases_and_deletes_a_stuck_message()
    {
        if (_browser is null) return;
        try
        {
            await _page.GotoAsync("/admin/#/queue");
            await _page.GetByTestId("login-name").FillAsync("admin");
            await _page.GetByTestId("login-password").FillAsync(_node.Host.FirstAdminPassword!);
            await _page.GetByTestId("login-submit").ClickAsync();
            // Signing in leads back to the page asked for.
            await Expect(_page.GetByTestId("page-queue")).ToBeVisibleAsync();
            await Expect(_page.GetByTestId("nav-queue")).ToHaveAttributeAsync("aria-current", "page");

            var row = _page.Locator("[data-testid=queue-row][data-id='q1']");
            await Expect(_page.GetByTestId("queue-row")).ToHaveCountAsync(2);
            await Expect(row.GetByTestId("queue-sender")).ToContainTextAsync("alice@example.test");
            var carol = row.Locator("[data-testid=queue-recipient][data-address='carol@remote.test']");
            await Expect(carol.GetByTestId("queue-recipient-state")).ToHaveTextAsync("queued");
            await Expect(carol.GetByTestId("queue-recipient-reply")).ToHaveTextAsync("451 try later");
            await Expect(row.GetByTestId("queue-attempts")).ToHaveTextAsync("2");
            await Expect(row.GetByTestId("queue-held")).ToHaveCountAsync(0);
            await ShotAsync("queue");

            await row.GetByTestId("queue-headers").ClickAsync();
            await Expect(_page.GetByTestId("queue-headers-text")).ToContainTextAsync("Subject: one");
            await ShotAsync("headers");

            await row.GetByTestId("queue-hold").ClickAsync();
            await Expect(_page.GetByTestId("notice")).ToHaveTextAsync("q1 on hold: it is not tried until released.");
            await Expect(row.GetByTestId("queue-held")).ToHaveTextAsync("held");
            await Expect(row.GetByTestId("queue-next")).ToHaveTextAsync("on hold");
            Assert.True(_queue.Find("q1").Held);
            await ShotAsync("held");

            await row.GetByTestId("queue-release").ClickAsync();
            await Expect(_page.GetByTestId("notice")).ToHaveTextAsync("q1 released.");
            await Expect(row.GetByTestId("queue-held")).ToHaveCountAsync(0);
            await Expect(row.GetByTestId("queue-hold")).ToBeVisibleAsync();
            Assert.False(_queue.Find("q1").Held);

            await _page.GetByTestId("queue-retry-all").ClickAsync();
            await Expect(_page.GetByTestId("notice")).ToHaveTextAsync(new Regex(@"^\d+ messages? queued for immediate retry\.$"));

            var confirm = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            _page.Dialog += async (_, dialog) =>
            {
                confirm.TrySetResult(dialog.Message);
                await dialog.AcceptAsync();
            };
            await row.GetByTestId("queue-delete").ClickAsync();
            Assert.Contains("carol@remote.test", await confirm.Task.WaitAsync(TimeSpan.FromSeconds(15)));
            await Expect(_page.GetByTestId("notice")).ToHaveTextAsync("q1 deleted.");
            await Expect(_page.GetByTestId("queue-row")).ToHaveCountAsync(1);
            Assert.DoesNotContain(await _queue.ListQueueAsync(), e => e.Id == "q1");
            await ShotAsync("deleted");
        }
        catch
        {
            await ShotAsync("failed");
            throw;
        }
        _browser.AssertNoErrors();
        Assert.All(_browser.FailedFetches, f => Assert.Matches(@"/api/v1/session answered 401$", f));
    }

    private Task ShotAsync(string step) => _browser!.ScreenshotAsync(_page, $"{++_shot:D2}-{step}");
}
