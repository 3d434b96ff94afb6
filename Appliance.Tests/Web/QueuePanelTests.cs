using System.Text.RegularExpressions;
using Microsoft.Playwright;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Appliance.Tests.Web;

/// <summary>
/// The admin panel's Outbound queue page in Chromium, on a node with greylisted mail
/// (<see cref="StuckMail"/>): an admin sees the stuck message and why, holds it, releases it
/// (it is tried again), and deletes it; every step leaves a screenshot.
/// </summary>
public sealed class QueuePanelTests(ITestOutputHelper output) : IAsyncLifetime
{
    private StuckMail? _mail;
    private Browser? _browser;
    private IPage _page = null!;
    private int _shot;

    public async Task InitializeAsync()
    {
        if (!Browser.Available(output)) return;
        _mail = await StuckMail.StartAsync(o => o.Listen.Http = 0);
        _browser = await Browser.StartAsync(output, nameof(QueuePanelTests));
        _page = await _browser.NewPageAsync($"http://{_mail.Node.Host.Endpoints["http"]}");
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null) await _browser.DisposeAsync();
        if (_mail is not null) await _mail.DisposeAsync();
    }

    [Fact]
    public async Task An_admin_holds_releases_and_deletes_a_stuck_message()
    {
        if (_browser is null) return;
        var mail = _mail!;
        var queue = mail.Node.Host.Queue;
        var sent = await mail.SendAsync("Quarterly figures");
        var id = sent.Id;
        try
        {
            await _page.GotoAsync("/admin/#/queue");
            await _page.GetByTestId("login-name").FillAsync("admin");
            await _page.GetByTestId("login-password").FillAsync(mail.Node.Host.FirstAdminPassword!);
            await _page.GetByTestId("login-submit").ClickAsync();
            // Signing in leads back to the page asked for.
            await Expect(_page.GetByTestId("page-queue")).ToBeVisibleAsync();
            await Expect(_page.GetByTestId("nav-queue")).ToHaveAttributeAsync("aria-current", "page");

            // The message, who sent it, and why it waits: carol's MX said 451; dave has his copy.
            var row = _page.Locator($"[data-testid=queue-row][data-id='{id}']");
            await Expect(_page.GetByTestId("queue-row")).ToHaveCountAsync(1);
            await Expect(row.GetByTestId("queue-sender")).ToHaveTextAsync(StuckMail.Alice);
            var carol = row.Locator($"[data-testid=queue-recipient][data-address='{StuckMail.Carol}']");
            await Expect(carol.GetByTestId("queue-recipient-state")).ToHaveTextAsync("queued");
            await Expect(carol.GetByTestId("queue-recipient-reply")).ToHaveTextAsync(StuckMail.Greylisted);
            var dave = row.Locator($"[data-testid=queue-recipient][data-address='{StuckMail.Dave}']");
            await Expect(dave.GetByTestId("queue-recipient-state")).ToHaveTextAsync("sent");
            await Expect(row.GetByTestId("queue-attempts")).ToHaveTextAsync("1");
            await Expect(row.GetByTestId("queue-age")).ToHaveTextAsync(new Regex(@"^\d+ (s|min)$"));
            await Expect(row.GetByTestId("queue-held")).ToHaveCountAsync(0);
            await ShotAsync("queue");

            await row.GetByTestId("queue-headers").ClickAsync();
            await Expect(_page.GetByTestId("queue-headers-text")).ToContainTextAsync("Subject: Quarterly figures");
            await ShotAsync("headers");

            await row.GetByTestId("queue-hold").ClickAsync();
            await Expect(_page.GetByTestId("notice")).ToHaveTextAsync($"{id} on hold: it is not tried until released.");
            await Expect(row.GetByTestId("queue-held")).ToHaveTextAsync("held");
            await Expect(row.GetByTestId("queue-next")).ToHaveTextAsync("on hold");
            Assert.True((await queue.ShowQueuedAsync(id)).Entry.Held);
            await ShotAsync("held");

            // Released, it is tried again at once (and greylisted again): Refresh shows the second attempt.
            await row.GetByTestId("queue-release").ClickAsync();
            await Expect(_page.GetByTestId("notice")).ToHaveTextAsync($"{id} released.");
            await Expect(row.GetByTestId("queue-held")).ToHaveCountAsync(0);
            await Expect(row.GetByTestId("queue-hold")).ToBeVisibleAsync();
            await mail.WaitAsync(e => e.Id == id && e.Attempts == 2, "the attempt after the release");
            await _page.GetByTestId("refresh").ClickAsync();
            await Expect(row.GetByTestId("queue-attempts")).ToHaveTextAsync("2");

            await _page.GetByTestId("queue-retry-all").ClickAsync();
            await Expect(_page.GetByTestId("notice")).ToHaveTextAsync("1 message queued for immediate retry.");
            await ShotAsync("retried");

            var confirm = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
            _page.Dialog += async (_, dialog) =>
            {
                confirm.TrySetResult(dialog.Message);
                await dialog.AcceptAsync();
            };
            await row.GetByTestId("queue-delete").ClickAsync();
            var question = await confirm.Task.WaitAsync(TimeSpan.FromSeconds(15));
            Assert.Contains(StuckMail.Carol, question);
            Assert.DoesNotContain(StuckMail.Dave, question); // already delivered: not what is lost
            await Expect(_page.GetByTestId("notice")).ToHaveTextAsync($"{id} deleted.");
            await Expect(_page.GetByTestId("queue-row")).ToHaveCountAsync(0);
            await Expect(_page.GetByTestId("queue-table")).ToContainTextAsync("The queue is empty");
            Assert.Empty(await queue.ListQueueAsync());
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
