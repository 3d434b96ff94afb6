using System.Text;
using System.Text.RegularExpressions;
using Appliance.Store;
using Appliance.Tests.Smtp;
using Microsoft.Playwright;
using MimeKit;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Appliance.Tests.Web.Webmail;

/// <summary>
/// The webmail as a new user meets it, in Debian's Chromium: a real node serving / over Kestrel,
/// two users in two browser contexts, and what they see checked on the page and in the store.
/// Every step leaves a screenshot; any console error, CSP violation or failed asset fails it.
/// </summary>
public sealed class WebmailBrowserTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Alice = "alice@" + TestNode.Domain, Bob = "bob@" + TestNode.Domain;

    /// <summary>Everything the sanitizer must take out; any of it running would change the page's title or call home.</summary>
    private const string HostileHtml = """
        <html><head><title>x</title><meta http-equiv="refresh" content="0;url=https://evil.example/"><style>body{background:url(https://evil.example/bg)}</style>
        <script>top.document.title = 'pwned by script';</script></head>
        <body onload="top.document.title='pwned by onload'">
        <p id="greeting">Dear customer, you have won.</p>
        <img src="x" onerror="top.document.title='pwned by onerror'">
        <img src="https://tracker.example/pixel.gif" alt="tracker">
        <a href="javascript:top.document.title='pwned by link'">claim your prize</a>
        <svg><script>top.document.title='pwned by svg'</script></svg>
        <iframe srcdoc="<script>top.document.title='pwned by srcdoc'</script>"></iframe>
        <div style="background-image:url(javascript:alert(1));position:fixed;top:0">overlay</div>
        <form action="https://evil.example/"><input name="password"></form>
        <math><mtext><table><mglyph><style><img src=x onerror="top.document.title='pwned by mxss'"></style></mglyph></table></mtext></math>
        </body></html>
        """;

    private TestNode _node = null!;
    private Browser? _browser;
    private int _shot;

    public async Task InitializeAsync()
    {
        if (!Browser.Available(output)) return;
        _node = await TestNode.StartAsync(["alice", "bob"], o =>
        {
            o.Listen.Http = 0;
            o.Listen.Submission = 0;
        });
        _browser = await Browser.StartAsync(output, nameof(WebmailBrowserTests));
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null) await _browser.DisposeAsync();
        if (_node is not null) await _node.DisposeAsync();
    }

    private string Url => $"http://{_node.Host.Endpoints["http"]}";

    private async Task ShotAsync(IPage page, string step) => await _browser!.ScreenshotAsync(page, $"{++_shot:00}-{step}");

    private static ILocator Row(IPage page, string subject) =>
        page.GetByTestId("message-row").Filter(new LocatorFilterOptions { Has = page.GetByTestId("message-subject").GetByText(subject, new LocatorGetByTextOptions { Exact = true }) });

    private async Task<IPage> SignInAsync(string address, bool wrongFirst = false)
    {
        var page = await _browser!.NewPageAsync(Url);
        await page.GotoAsync("/");
        await Expect(page.GetByTestId("login-address")).ToBeVisibleAsync();
        if (wrongFirst)
        {
            await page.GetByTestId("login-address").FillAsync(address);
            await page.GetByTestId("login-password").FillAsync("not the password");
            await page.GetByTestId("login-submit").ClickAsync();
            await Expect(page.GetByTestId("login-error")).ToContainTextAsync("wrong address or password");
            await ShotAsync(page, "login-wrong-password");
        }
        await page.GetByTestId("login-address").FillAsync(address);
        await page.GetByTestId("login-password").FillAsync(TestNode.Password);
        await page.GetByTestId("login-submit").ClickAsync();
        await Expect(page.GetByTestId("folder-list")).ToBeVisibleAsync();
        return page;
    }

    [Fact]
    public async Task A_new_user_reads_safely_sends_replies_and_keeps_contacts_notes_and_files()
    {
        if (_browser is null) return;
        var hostile = new MimeMessage();
        hostile.From.Add(new MailboxAddress("Prize Office", "prizes@elsewhere.test"));
        hostile.To.Add(MailboxAddress.Parse(Alice));
        hostile.Subject = "You have won";
        hostile.Body = new TextPart("html") { Text = HostileHtml };
        await Mailkit.SendAsync(_node.Smtp, hostile);

        var alice = await SignInAsync(Alice, wrongFirst: true);
        try
        {
            // 1. The INBOX shows the unread mail; reading it runs nothing and fetches nothing remote.
            var title = await alice.TitleAsync();
            await Expect(alice.Locator("[data-testid=folder][data-folder=INBOX] [data-testid=unread-count]")).ToHaveTextAsync("1");
            await Row(alice, "You have won").ClickAsync();
            await Expect(alice.GetByTestId("reader-subject")).ToHaveTextAsync("You have won");
            var frame = alice.FrameLocator("[data-testid=reader-frame]");
            await Expect(frame.Locator("#greeting, p").First).ToContainTextAsync("you have won");
            await Expect(alice.GetByTestId("remote-images-bar")).ToBeVisibleAsync();
            await ShotAsync(alice, "hostile-mail-read");
            var sandbox = await alice.GetByTestId("reader-frame").GetAttributeAsync("sandbox");
            Assert.NotNull(sandbox);
            Assert.DoesNotContain("allow-scripts", sandbox);
            Assert.DoesNotContain("allow-same-origin", sandbox);
            var frameHtml = await alice.Frames.Single(f => f.Url.Contains("/webmail/api/message/body")).ContentAsync();
            foreach (var bad in new[] { "<script", "onerror", "onload", "javascript:", "<svg", "<iframe", "<form", "https://tracker.example/pixel.gif\"", "http-equiv" })
                Assert.DoesNotContain(bad, frameHtml.Replace("data-remote-src=\"https://tracker.example/pixel.gif\"", ""), StringComparison.OrdinalIgnoreCase);
            await alice.WaitForTimeoutAsync(500); // give anything that could run the time to run
            Assert.Equal(title, await alice.TitleAsync());
            Assert.DoesNotContain(_browser.Errors, e => e.Contains("pwned"));

            // 2. A mail with an attachment to Bob.
            await alice.GetByTestId("nav-mail").ClickAsync();
            await alice.Keyboard.PressAsync("c");
            await Expect(alice.GetByTestId("compose")).ToBeVisibleAsync();
            await alice.GetByTestId("compose-to").FillAsync(Bob);
            await alice.GetByTestId("compose-subject").FillAsync("Budget 2027");
            await alice.GetByTestId("compose-body").FillAsync("Hi Bob,\nthe budget is attached.\nAlice");
            var sheet = Encoding.UTF8.GetBytes("item,amount\nservers,2\n");
            await alice.GetByTestId("compose-attach").SetInputFilesAsync(new FilePayload { Name = "budget.csv", MimeType = "text/csv", Buffer = sheet });
            await Expect(alice.GetByTestId("compose-attachment")).ToContainTextAsync("budget.csv");
            await ShotAsync(alice, "compose-with-attachment");
            await alice.GetByTestId("compose-send").ClickAsync();
            await Expect(alice.GetByTestId("toast")).ToBeVisibleAsync();
            await Expect(alice.GetByTestId("compose")).ToBeHiddenAsync();

            // 3. Bob sees it arrive, with the attachment, and replies.
            var bob = await SignInAsync(Bob);
            await Row(bob, "Budget 2027").ClickAsync();
            await Expect(bob.GetByTestId("reader-from")).ToContainTextAsync(Alice);
            await Expect(bob.GetByTestId("attachment")).ToContainTextAsync("budget.csv");
            await Expect(bob.FrameLocator("[data-testid=reader-frame]").Locator("body")).ToContainTextAsync("the budget is attached.");
            await ShotAsync(bob, "bob-reads-the-mail");
            await bob.GetByTestId("reply").ClickAsync();
            await Expect(bob.GetByTestId("compose-subject")).ToHaveValueAsync("Re: Budget 2027");
            await Expect(bob.GetByTestId("compose-to")).ToHaveValueAsync(new Regex(Regex.Escape(Alice)));
            var quoted = await bob.GetByTestId("compose-body").InputValueAsync();
            Assert.Contains("> the budget is attached.", quoted);
            await bob.GetByTestId("compose-body").FillAsync("Looks good to me.\n" + quoted);
            await bob.GetByTestId("compose-send").ClickAsync();
            await Expect(bob.GetByTestId("toast")).ToBeVisibleAsync();

            // 4. The reply appears in Alice's list without a reload (the event stream).
            await alice.Locator("[data-testid=folder][data-folder=INBOX]").ClickAsync();
            await Expect(Row(alice, "Re: Budget 2027")).ToBeVisibleAsync(new LocatorAssertionsToBeVisibleOptions { Timeout = 15_000 });
            await ShotAsync(alice, "reply-arrived-without-reload");
            var received = MimeMessage.Load(new MemoryStream(Assert.Single(await _node.FolderBytesAsync("bob", MailStore.Inbox))));
            using (var data = new MemoryStream())
            {
                received.Attachments.OfType<MimePart>().Single().Content!.DecodeTo(data);
                Assert.Equal(sheet, data.ToArray());
            }
            Assert.Single(await _node.FolderTextsAsync("alice", "Sent"));
            Assert.True((await _node.Store.ListAsync(_node.User("bob"), MailStore.Inbox, default)).Single().Flags.HasFlag(MessageFlags.Answered));

            // 5. A contact, then used in compose through the autocomplete.
            await alice.GetByTestId("nav-contacts").ClickAsync();
            await alice.GetByTestId("contact-new").ClickAsync();
            await alice.GetByTestId("contact-name").FillAsync("Bob Builder");
            await alice.GetByTestId("contact-emails").FillAsync(Bob);
            await alice.GetByTestId("contact-save").ClickAsync();
            await Expect(alice.GetByTestId("contact-row")).ToContainTextAsync("Bob Builder");
            await ShotAsync(alice, "contact-added");
            await alice.GetByTestId("nav-mail").ClickAsync();
            await alice.Keyboard.PressAsync("c");
            await alice.GetByTestId("compose-to").PressSequentiallyAsync("build");
            await alice.GetByTestId("autocomplete-item").First.ClickAsync();
            await Expect(alice.GetByTestId("compose-to")).ToHaveValueAsync(new Regex("Bob Builder.*" + Regex.Escape("<" + Bob + ">")));
            await alice.GetByTestId("compose-subject").FillAsync("Through the address book");
            await alice.GetByTestId("compose-body").FillAsync("Found you in my contacts.");
            await ShotAsync(alice, "compose-from-contacts");
            await alice.GetByTestId("compose-send").ClickAsync();
            await Expect(alice.GetByTestId("compose")).ToBeHiddenAsync();
            await Expect(Row(bob, "Through the address book")).ToBeVisibleAsync(new LocatorAssertionsToBeVisibleOptions { Timeout = 15_000 });

            // 6. A note, still there after a reload.
            await alice.GetByTestId("nav-notes").ClickAsync();
            await alice.GetByTestId("note-new").ClickAsync();
            await alice.GetByTestId("note-title").FillAsync("Call the bank");
            await alice.GetByTestId("note-body").FillAsync("Ask about the new account.");
            await alice.GetByTestId("note-save").ClickAsync();
            await Expect(alice.GetByTestId("note-row")).ToContainTextAsync("Call the bank");
            await alice.ReloadAsync();
            await alice.GetByTestId("nav-notes").ClickAsync();
            await Expect(alice.GetByTestId("note-row")).ToContainTextAsync("Call the bank");
            await ShotAsync(alice, "note-kept");

            // 7. A file uploaded, then downloaded with the same bytes.
            await alice.GetByTestId("nav-files").ClickAsync();
            var contract = new byte[50_000];
            new Random(3).NextBytes(contract);
            await alice.GetByTestId("file-upload").SetInputFilesAsync(new FilePayload { Name = "contract.pdf", MimeType = "application/pdf", Buffer = contract });
            var fileRow = alice.Locator("[data-testid=file-row][data-name='contract.pdf']");
            await Expect(fileRow).ToBeVisibleAsync();
            await ShotAsync(alice, "file-uploaded");
            var download = await alice.RunAndWaitForDownloadAsync(() => fileRow.GetByTestId("file-download").ClickAsync());
            Assert.Equal("contract.pdf", download.SuggestedFilename);
            var path = await download.PathAsync();
            Assert.Equal(contract, await File.ReadAllBytesAsync(path));
        }
        catch
        {
            await ShotAsync(alice, "failed");
            throw;
        }

        _browser.AssertNoErrors();
        // The only error answers the page met are the sign-in meant to fail and the first probe for a session.
        Assert.All(_browser.FailedFetches, f => Assert.Matches(@"/webmail/api/session answered 401$", f));
    }

    private async Task DeliverAsync(string subject, string text, DateTimeOffset date)
    {
        var m = new MimeMessage();
        m.From.Add(new MailboxAddress("Carol", "carol@elsewhere.test"));
        m.To.Add(MailboxAddress.Parse(Alice));
        m.Subject = subject;
        m.Date = date;
        m.Body = new TextPart("plain") { Text = text };
        await Mailkit.SendAsync(_node.Smtp, m);
    }

    [Fact]
    public async Task Search_keyboard_settings_vacation_and_filters_work_as_a_user_expects()
    {
        if (_browser is null) return;
        var day = new DateTimeOffset(2026, 11, 2, 9, 0, 0, TimeSpan.Zero);
        await DeliverAsync("Invoice March", "Please pay for the kumquats.", day);
        await DeliverAsync("Lunch", "Noon at the usual place.", day.AddDays(1));
        await DeliverAsync("Meeting", "Tuesday at ten.", day.AddDays(2));
        var alice = await SignInAsync(Alice);
        try
        {
            // Server-side search, then back to the whole folder.
            await Expect(alice.GetByTestId("message-row")).ToHaveCountAsync(3);
            await alice.Keyboard.PressAsync("/");
            await alice.GetByTestId("search").FillAsync("kumquats");
            await alice.GetByTestId("search").PressAsync("Enter");
            await Expect(alice.GetByTestId("message-row")).ToHaveCountAsync(1);
            await Expect(Row(alice, "Invoice March")).ToBeVisibleAsync();
            await ShotAsync(alice, "search");
            await alice.GetByTestId("search").PressAsync("Escape");
            await Expect(alice.GetByTestId("message-row")).ToHaveCountAsync(3);

            // The keyboard: j walks down the list (newest first), Delete moves the shown one to Trash.
            await Row(alice, "Meeting").ClickAsync();
            await Expect(alice.GetByTestId("reader-subject")).ToHaveTextAsync("Meeting");
            await alice.Locator("body").PressAsync("j");
            await Expect(alice.GetByTestId("reader-subject")).ToHaveTextAsync("Lunch");
            await alice.Locator("body").PressAsync("Delete");
            await Expect(Row(alice, "Lunch")).ToHaveCountAsync(0);
            Assert.Contains("Noon at the usual place.", Assert.Single(await _node.FolderTextsAsync("alice", "Trash")));
            await alice.Locator("body").PressAsync("?");
            await Expect(alice.GetByTestId("shortcuts-help")).ToBeVisibleAsync();
            await ShotAsync(alice, "shortcuts-help");
            await alice.Keyboard.PressAsync("Escape");

            // Vacation, then a filter that does not parse: refused with the reason, the vacation kept.
            await alice.GetByTestId("nav-settings").ClickAsync();
            await alice.GetByTestId("vacation-enabled").CheckAsync();
            await alice.GetByTestId("vacation-subject").FillAsync("Away");
            await alice.GetByTestId("vacation-body").FillAsync("Back on Monday.");
            await alice.GetByTestId("vacation-save").ClickAsync();
            await Expect(alice.GetByTestId("toast")).ToBeVisibleAsync();
            var active = _node.Store.GetActiveSieveScript(_node.User("alice"));
            Assert.NotNull(active);
            Assert.Contains("Back on Monday.", active.Content);
            await alice.GetByTestId("filters-script").FillAsync("if header :contains \"subject\" \"x\" { fileinto \"X\"");
            await alice.GetByTestId("filters-save").ClickAsync();
            await Expect(alice.GetByTestId("filters-error")).ToContainTextAsync("line");
            await ShotAsync(alice, "filters-refused");
            Assert.Equal(active.Content, _node.Store.GetActiveSieveScript(_node.User("alice"))!.Content);

            // Spanish, kept across a reload.
            await alice.GetByTestId("settings-language").SelectOptionAsync("es");
            await alice.GetByTestId("settings-save").ClickAsync();
            await Expect(alice.GetByTestId("nav-mail")).ToHaveTextAsync("Correo");
            await alice.ReloadAsync();
            await Expect(alice.GetByTestId("nav-mail")).ToHaveTextAsync("Correo");
            await ShotAsync(alice, "in-spanish");
        }
        catch
        {
            await ShotAsync(alice, "failed");
            throw;
        }
        _browser.AssertNoErrors();
        Assert.All(_browser.FailedFetches, f => Assert.Matches(@"/webmail/api/(session answered 401|settings/filters answered 400)$", f));
    }
}
