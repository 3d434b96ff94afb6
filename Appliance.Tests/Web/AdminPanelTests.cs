using System.Text;
using System.Text.RegularExpressions;
using Appliance.Directory;
using Appliance.Tests.Smtp;
using MailKit.Net.Imap;
using MailKit.Security;
using Microsoft.Playwright;
using Xunit.Abstractions;
using static Microsoft.Playwright.Assertions;

namespace Appliance.Tests.Web;

/// <summary>
/// The admin panel as a new administrator meets it: a real node serving /admin and /api/v1 over
/// Kestrel, Chromium clicking through the pages, and what the admin sees checked on the page,
/// then against the directory and with a real IMAP login. Every step leaves a screenshot.
/// </summary>
/// <remarks>
/// One scenario, in order: each step builds on what the one before created (the 1,001
/// mailboxes of the import are what the quota change and the audit log are about).
/// </remarks>
public sealed class AdminPanelTests(ITestOutputHelper output) : IAsyncLifetime
{
    private const string Domain = "acme.test";
    private const int CsvMailboxes = 1000;
    private const int BadAddressUser = 500;   // CSV line 501 (line 1 is the header)
    private const int ShortPasswordUser = 750; // CSV line 751
    private const string NewAnnaPassword = "a-new-pass-for-anna";
    private static readonly TimeSpan JobTimeout = TimeSpan.FromMinutes(5);

    private TestNode _node = null!;
    private Browser? _browser;
    private IPage _page = null!;
    private string _adminPassword = "";
    private int _shot;

    public async Task InitializeAsync()
    {
        if (!Browser.Available(output)) return;
        _node = await TestNode.StartAsync(["alice"], o => o.Listen.Http = 0);
        // Shown once, at the first start: what a new administrator signs in with.
        _adminPassword = Assert.IsType<string>(_node.Host.FirstAdminPassword);
        _browser = await Browser.StartAsync(output, nameof(AdminPanelTests));
        _page = await _browser.NewPageAsync($"http://{_node.Host.Endpoints["http"]}");
    }

    public async Task DisposeAsync()
    {
        if (_browser is not null) await _browser.DisposeAsync();
        if (_node is not null) await _node.DisposeAsync();
    }

    [Fact]
    public async Task A_new_administrator_sets_up_a_domain_of_a_thousand_mailboxes()
    {
        if (_browser is null) return;

        try
        {
            await SignInAsync();
            await CreateDomainAndMailboxesAsync();
            await ImportWithBadLinesCreatesNothingAsync();
            await ImportTheCorrectedFileAsync();
            await ChangeTheDomainQuotaAsync();
            await ResetOnePasswordAndDisableAnotherAsync();
            await ReadTheAuditLogAndProvisioningAsync();
            await TurnOnTotpAndSignInWithItAsync();
            await AddAnAliasAndRemoveATargetAsync();
        }
        catch
        {
            await ShotAsync("failed"); // what the page showed when a step failed
            throw;
        }

        _browser.AssertNoErrors();
        // The only error answers the panel met are the sign-ins meant to fail (and the first
        // probe for a session): anything else (a 403 for a missing CSRF token, a 404) is a bug.
        Assert.All(_browser.FailedFetches, f => Assert.Matches(@"/api/v1/session answered 401$", f));
    }

    // 1. The node's address opens the panel; a wrong password, then the right one: the dashboard with its counts.
    private async Task SignInAsync()
    {
        // The panel's address (the node's own address is the webmail's) asks to sign in.
        await _page.GotoAsync("/admin/");
        await Expect(_page.GetByTestId("page-login")).ToBeVisibleAsync();
        Assert.EndsWith("/admin/#/login", _page.Url);
        await Expect(_page.GetByTestId("topbar")).ToBeHiddenAsync();
        await _page.GetByTestId("login-name").FillAsync("admin");
        await _page.GetByTestId("login-password").FillAsync("not-" + _adminPassword);
        await _page.GetByTestId("login-submit").ClickAsync();
        await Expect(_page.GetByTestId("error-detail")).ToHaveTextAsync("wrong name, password or code (401)");
        await Expect(_page.GetByTestId("page-login")).ToBeVisibleAsync();
        await ShotAsync("login-wrong-password");

        await _page.GetByTestId("login-password").FillAsync(_adminPassword);
        await _page.GetByTestId("login-submit").ClickAsync();
        await Expect(_page.GetByTestId("page-dashboard")).ToBeVisibleAsync();
        await Expect(_page.GetByTestId("error")).ToBeHiddenAsync();
        await Expect(_page.GetByTestId("admin-name")).ToHaveTextAsync("admin");
        // TestNode's own domain and mailbox, set up outside the journal.
        await ExpectCountsAsync(domains: "1", mailboxes: "1", aliases: "0", disabled: "0");
        await Expect(_page.GetByTestId("dashboard-node")).ToHaveTextAsync("test");
        await Expect(_page.GetByTestId("dashboard-lastseq")).ToHaveTextAsync("request 0");
        await Expect(_page.GetByTestId("node-updated")).ToHaveTextAsync("never"); // nothing applied yet
        // The server does not report the space used: no "undefined", no card that stays empty.
        await Expect(_page.GetByTestId("dashboard-counts")).Not.ToContainTextAsync("undefined");
        await Expect(_page.GetByTestId("count-used")).ToBeHiddenAsync();
        await ShotAsync("dashboard");
    }

    // 2. A domain, then three mailboxes through the form; the list shows them with usage bars.
    private async Task CreateDomainAndMailboxesAsync()
    {
        await NavigateAsync("domains");
        await _page.GetByTestId("domain-add-name").FillAsync(Domain);
        await _page.GetByTestId("domain-add-submit").ClickAsync();
        await Expect(_page.GetByTestId("notice")).ToHaveTextAsync($"Domain {Domain} added.");
        await Expect(DomainRow(Domain).GetByTestId("domain-mailboxes")).ToHaveTextAsync("0");
        await ShotAsync("domain-added");

        await NavigateAsync("mailboxes");
        foreach (var (local, quota) in new[] { ("anna", "1M"), ("bert", ""), ("carl", "2G") })
        {
            await _page.GetByTestId("mailbox-add-address").FillAsync($"{local}@{Domain}");
            await _page.GetByTestId("mailbox-add-password").FillAsync($"{local}-first-password");
            await _page.GetByTestId("mailbox-add-quota").FillAsync(quota);
            await _page.GetByTestId("mailbox-add-submit").ClickAsync();
            await Expect(_page.GetByTestId("notice")).ToHaveTextAsync($"Mailbox {local}@{Domain} added.");
            await Expect(MailboxRow($"{local}@{Domain}")).ToBeVisibleAsync();
        }
        // Mail for anna, so that her bar has something to show.
        await Mailkit.SendAsync(_node.Smtp, Mailkit.Text("someone@remote.test", $"anna@{Domain}", "Welcome", new string('x', 40_000)));
        await _page.GetByTestId("mailbox-domain-filter").SelectOptionAsync(Domain);
        await Expect(_page.GetByTestId("page-info")).ToHaveTextAsync("Showing 1–3 of 3");
        await Expect(_page.GetByTestId("mailbox-row")).ToHaveCountAsync(3);
        await Expect(_page.GetByTestId("mailbox-usage")).ToHaveCountAsync(3);
        await Expect(MailboxRow($"anna@{Domain}").GetByTestId("mailbox-quota")).ToHaveTextAsync("1M");
        await Expect(MailboxRow($"bert@{Domain}").GetByTestId("mailbox-quota")).ToHaveTextAsync("1G"); // the node's default
        await Expect(MailboxRow($"carl@{Domain}").GetByTestId("mailbox-quota")).ToHaveTextAsync("2G");
        await Expect(MailboxRow($"anna@{Domain}").GetByTestId("mailbox-usage-text")).ToHaveTextAsync(new Regex(@"^\d+(\.\d)?K of 1M \([1-9]%\)$"));
        Assert.True(await MailboxRow($"anna@{Domain}").GetByTestId("mailbox-usage").EvaluateAsync<double>("m => m.value") > 0, "anna's bar is empty");
        await Expect(MailboxRow($"bert@{Domain}").GetByTestId("mailbox-usage-text")).ToHaveTextAsync("0 B of 1G (0%)");
        await Expect(MailboxRow($"anna@{Domain}").GetByTestId("mailbox-state")).ToHaveTextAsync("enabled");
        await ShotAsync("three-mailboxes");
    }

    // 3a. A CSV of 1,000 lines with two bad ones: both reasons with their line numbers, nothing created.
    private async Task ImportWithBadLinesCreatesNothingAsync()
    {
        await NavigateAsync("import");
        await _page.GetByTestId("import-text").FillAsync(Csv(withBadLines: true));
        await _page.GetByTestId("import-submit").ClickAsync();
        var job = _page.GetByTestId("job");
        await Expect(job).ToHaveAttributeAsync("data-state", "failed", new() { Timeout = (float)JobTimeout.TotalMilliseconds });
        await Expect(job.GetByTestId("job-result")).ToHaveTextAsync("Failed with 2 errors: nothing was created. Correct the lines listed and import the whole file again.");
        await Expect(_page.GetByTestId("error-detail")).ToContainTextAsync("failed: nothing was created");
        await Expect(_page.GetByTestId("error-item")).ToHaveTextAsync([
            $"Line {BadAddressUser + 1}: invalid address 'user{BadAddressUser:D4}{Domain}': expected local@domain",
            $"Line {ShortPasswordUser + 1}: password too short (at least 8 characters)",
        ]);
        await ShotAsync("import-failed");

        await NavigateAsync("dashboard");
        await ExpectCountsAsync(domains: "2", mailboxes: "4", aliases: "0", disabled: "0");
        await NavigateAsync($"mailboxes?domain={Domain}");
        await Expect(_page.GetByTestId("page-info")).ToHaveTextAsync("Showing 1–3 of 3");
        await ShotAsync("nothing-imported");
        Assert.Equal(3, _node.Directory.SearchMailboxes(Domain, null, 0, 1).Total);
        Assert.Null(_node.Directory.FindMailbox($"user0001@{Domain}"));
        Assert.Null(_node.Directory.FindMailbox($"user{CsvMailboxes:D4}@{Domain}"));
    }

    // 3b. The corrected file through the file input: the job goes hashing → applying → done, the list pages through 1,001.
    private async Task ImportTheCorrectedFileAsync()
    {
        await NavigateAsync("import");
        var csv = Csv(withBadLines: false);
        await _page.GetByTestId("import-file").SetInputFilesAsync(new FilePayload { Name = "acme-fixed.csv", MimeType = "text/csv", Buffer = Encoding.UTF8.GetBytes(csv) });
        // The file shows in the text area: what is sent is what the admin sees.
        await Expect(_page.GetByTestId("import-text")).ToHaveValueAsync(csv);
        await _page.GetByTestId("import-submit").ClickAsync();

        // Watch the job panel as the admin would: phase, bar and count as they change.
        var job = _page.GetByTestId("job");
        var seen = new List<JobView>();
        var hashingShot = false;
        var deadline = DateTime.UtcNow + JobTimeout;
        JobView now;
        do
        {
            Assert.True(DateTime.UtcNow < deadline, $"the import did not end in {JobTimeout}; seen: {string.Join(", ", seen)}");
            await Task.Delay(100);
            now = await ReadJobAsync(job);
            if (seen.Count == 0 || seen[^1] != now) seen.Add(now);
            if (!hashingShot && now is { Phase: "hashing", Value: > 0 })
            {
                await ShotAsync("import-hashing");
                hashingShot = true;
            }
        }
        while (now.State is "" or "running");
        output.WriteLine("import job as shown: " + string.Join(", ", seen.Where((v, i) => i == 0 || i == seen.Count - 1 || v.Phase != seen[i - 1].Phase || v.Phase != seen[i + 1].Phase)));

        Assert.Equal("done", now.State);
        string[] order = ["validating", "hashing", "applying", "done"];
        var phases = seen.Select(v => v.Phase).Where(p => p.Length > 0 && p != "…").Distinct().ToList();
        Assert.Equal(phases.OrderBy(p => Array.IndexOf(order, p)), phases); // never backwards
        Assert.Contains("hashing", phases);
        Assert.Equal("done", phases[^1]);
        // Applying 998 mailboxes takes about a second here, two of the panel's polls; a faster
        // machine may finish it between two polls, so it is checked only when it was shown.
        var applying = seen.Where(v => v.Phase == "applying").Select(v => v.Value).ToList();
        Assert.Equal(applying.Order(), applying);
        Assert.All(applying, v => Assert.InRange(v, 0, 998));
        // The bar moved while hashing: several positions, never back, within 0..998.
        var hashing = seen.Where(v => v.Phase == "hashing" && v.Max == 998).Select(v => v.Value).ToList();
        Assert.True(hashing.Distinct().Count() >= 2, "the bar did not move while hashing: " + string.Join(", ", hashing));
        Assert.Equal(hashing.Order(), hashing);
        Assert.Contains(seen, v => v.Phase == "hashing" && Regex.IsMatch(v.Count, @"^\d{1,3}(,\d{3})? / 998$"));
        await Expect(job.GetByTestId("job-result")).ToHaveTextAsync("Done: 998 mailboxes created.");
        await Expect(_page.GetByTestId("error")).ToBeHiddenAsync();
        await ShotAsync("import-done");

        await NavigateAsync($"mailboxes?domain={Domain}");
        await Expect(_page.GetByTestId("page-info")).ToHaveTextAsync("Showing 1–50 of 1,001");
        await Expect(_page.GetByTestId("mailbox-row")).ToHaveCountAsync(50);
        await Expect(_page.GetByTestId("page-prev")).ToBeDisabledAsync();
        await ShotAsync("mailboxes-page-1");
        await _page.GetByTestId("page-next").ClickAsync();
        await Expect(_page.GetByTestId("page-info")).ToHaveTextAsync("Showing 51–100 of 1,001");
        // anna, bert, carl, then user0001…: the 51st is user0048.
        await Expect(_page.GetByTestId("mailbox-address").First).ToHaveTextAsync($"user0048@{Domain}");
        await Expect(MailboxRow($"user0048@{Domain}").GetByTestId("mailbox-quota")).ToHaveTextAsync("200M");
        await Expect(_page.GetByTestId("mailbox-usage")).ToHaveCountAsync(50);
        await Expect(_page.GetByTestId("page-prev")).ToBeEnabledAsync();
        await ShotAsync("mailboxes-page-2");
        Assert.Equal(1001, _node.Directory.SearchMailboxes(Domain, null, 0, 1).Total);
        Assert.Null(_node.Directory.FindMailbox($"user{ShortPasswordUser:D4}@{Domain}"));

        await NavigateAsync("dashboard");
        await ExpectCountsAsync(domains: "2", mailboxes: "1,002", aliases: "0", disabled: "0");
    }

    // 4. The quota of the whole domain: a job, then every row (and the directory) says 2G.
    private async Task ChangeTheDomainQuotaAsync()
    {
        await NavigateAsync("domains");
        await Expect(DomainRow(Domain).GetByTestId("domain-mailboxes")).ToHaveTextAsync("1,001");
        await _page.GetByTestId("domain-quota-domain").SelectOptionAsync(Domain);
        await _page.GetByTestId("domain-quota-size").FillAsync("2G");
        await _page.GetByTestId("domain-quota-submit").ClickAsync();
        var job = _page.GetByTestId("job");
        await Expect(job).ToHaveAttributeAsync("data-state", "done", new() { Timeout = (float)JobTimeout.TotalMilliseconds });
        await Expect(job.GetByTestId("job-result")).ToHaveTextAsync($"Quota 2G set on 1,001 mailboxes of {Domain}.");
        await ShotAsync("domain-quota-done");

        await NavigateAsync($"mailboxes?domain={Domain}&search=user0999");
        await Expect(_page.GetByTestId("mailbox-row")).ToHaveCountAsync(1);
        await Expect(MailboxRow($"user0999@{Domain}").GetByTestId("mailbox-quota")).ToHaveTextAsync("2G");
        await Expect(MailboxRow($"user0999@{Domain}").GetByTestId("mailbox-usage-text")).ToHaveTextAsync(new Regex(@" of 2G \(\d+%\)$"));
        await ShotAsync("quota-2G");
        foreach (var address in new[] { $"anna@{Domain}", $"user0001@{Domain}", $"user0999@{Domain}" })
            Assert.Equal(2L << 30, _node.Directory.FindMailbox(address)!.QuotaBytes);
        Assert.Equal(1L << 30, _node.Directory.FindMailbox($"alice@{TestNode.Domain}")!.QuotaBytes); // another domain
    }

    // 5. A new password for anna (prompt), bert disabled; IMAP agrees.
    private async Task ResetOnePasswordAndDisableAnotherAsync()
    {
        Assert.True(await ImapLoginAsync($"bert@{Domain}", "bert-first-password"), "bert cannot log in before being disabled");
        await NavigateAsync($"mailboxes?domain={Domain}");
        var anna = MailboxRow($"anna@{Domain}");
        var prompt = await AnswerNextDialogAsync(() => anna.GetByTestId("mailbox-password").ClickAsync(), NewAnnaPassword);
        Assert.Equal($"New password for anna@{Domain}:", prompt);
        await Expect(_page.GetByTestId("notice")).ToHaveTextAsync($"Password of anna@{Domain} changed.");
        await ShotAsync("password-reset");

        var bert = MailboxRow($"bert@{Domain}");
        await bert.GetByTestId("mailbox-toggle").ClickAsync();
        await Expect(_page.GetByTestId("notice")).ToHaveTextAsync($"bert@{Domain} disabled.");
        await Expect(bert.GetByTestId("mailbox-state")).ToHaveTextAsync("disabled");
        await Expect(bert.GetByTestId("mailbox-toggle")).ToHaveTextAsync("Enable");
        await Expect(anna.GetByTestId("mailbox-state")).ToHaveTextAsync("enabled");
        await ShotAsync("bert-disabled");

        Assert.True(await ImapLoginAsync($"anna@{Domain}", NewAnnaPassword), "anna's new password is refused");
        Assert.False(await ImapLoginAsync($"anna@{Domain}", "anna-first-password"), "anna's old password still works");
        Assert.False(await ImapLoginAsync($"bert@{Domain}", "bert-first-password"), "disabled bert can still log in");
        Assert.True(await ImapLoginAsync($"carl@{Domain}", "carl-first-password"), "carl was not touched");

        await NavigateAsync("dashboard");
        await ExpectCountsAsync(domains: "2", mailboxes: "1,002", aliases: "0", disabled: "1");
    }

    // 6. The audit log, newest first, and the provisioning queue.
    private async Task ReadTheAuditLogAndProvisioningAsync()
    {
        await NavigateAsync("audit");
        string[] kinds = ["mailbox.set", "mailbox.set", "domain.quota", "mailbox.bulk", "mailbox.add", "mailbox.add", "mailbox.add", "domain.add"];
        await Expect(_page.GetByTestId("request-kind")).ToHaveTextAsync(kinds);
        await Expect(_page.GetByTestId("page-info")).ToHaveTextAsync("Showing 1–8 of 8");
        await Expect(_page.GetByTestId("request-actor")).ToHaveTextAsync(Enumerable.Repeat("admin:admin", kinds.Length).ToArray());
        await Expect(_page.GetByTestId("request-seq")).ToHaveTextAsync(["8", "7", "6", "5", "4", "3", "2", "1"]);
        await Expect(_page.GetByTestId("request-target")).ToHaveTextAsync([
            $"bert@{Domain}", $"anna@{Domain}", Domain, "998 mailboxes", $"carl@{Domain}", $"bert@{Domain}", $"anna@{Domain}", Domain,
        ]);
        await Expect(_page.GetByTestId("request-summary")).ToHaveTextAsync(new[]
        {
            $"mailbox bert@{Domain} changed: disabled",
            $"mailbox anna@{Domain} changed: password reset",
            $"quota of every mailbox of {Domain} set to 2G",
            $"998 mailboxes added (user0001@{Domain} … user1000@{Domain})",
            $"mailbox carl@{Domain} added (quota 2G, partition ",
            $"mailbox bert@{Domain} added (quota 1G, partition ",
            $"mailbox anna@{Domain} added (quota 1M, partition ",
            $"domain {Domain} added",
        }.Select((text, i) => new Regex("^" + Regex.Escape(text) + (i is >= 4 and <= 6 ? "" : "$"))));
        await Expect(_page.GetByTestId("request-error")).ToHaveTextAsync(Enumerable.Repeat("", kinds.Length).ToArray());
        await Expect(_page.GetByTestId("page-next")).ToBeDisabledAsync();
        await Expect(_page.GetByTestId("view")).Not.ToContainTextAsync("pass-word"); // no password of the CSV
        await ShotAsync("audit");

        await _page.GetByTestId("audit-search").FillAsync("bulk");
        await _page.GetByTestId("audit-search-submit").ClickAsync();
        await Expect(_page.GetByTestId("request-kind")).ToHaveTextAsync(["mailbox.bulk"]); // the failed import was never journaled
        await ShotAsync("audit-search-bulk");

        await NavigateAsync("provisioning");
        await Expect(_page.GetByTestId("provisioning-lastseq")).ToHaveTextAsync("request 8");
        var node = _page.GetByTestId("node-row");
        await Expect(node).ToHaveCountAsync(1);
        await Expect(node.GetByTestId("node-name")).ToHaveTextAsync("test");
        await Expect(node.GetByTestId("node-applied")).ToHaveTextAsync("8");
        await Expect(node.GetByTestId("node-pending")).ToHaveTextAsync("0");
        await Expect(node.GetByTestId("node-error")).ToHaveTextAsync("none");
        await Expect(node.GetByTestId("node-updated")).ToHaveAttributeAsync("title", new Regex($"^{DateTime.UtcNow:yyyy-MM-dd}T"));
        await Expect(_page.GetByTestId("provisioning-recent").GetByTestId("request-row")).ToHaveCountAsync(8);
        await ShotAsync("provisioning");
    }

    // 7. TOTP on; signing in again asks for the code, a wrong one is refused, the right one lets in.
    private async Task TurnOnTotpAndSignInWithItAsync()
    {
        await NavigateAsync("security");
        await Expect(_page.GetByTestId("totp-state")).ToHaveTextAsync("off");
        await _page.GetByTestId("totp-enable").ClickAsync();
        await Expect(_page.GetByTestId("totp-setup")).ToBeVisibleAsync();
        await Expect(_page.GetByTestId("totp-uri")).ToHaveAttributeAsync("href", new Regex("^otpauth://totp/Appliance:admin\\?secret="));
        var secret = (await _page.GetByTestId("totp-secret").TextContentAsync() ?? "").Replace(" ", "", StringComparison.Ordinal);
        Assert.Matches("^[A-Z2-7]{32}$", secret);
        await ShotAsync("totp-setup");
        await _page.GetByTestId("totp-confirm-code").FillAsync(Totp.Code(secret, DateTimeOffset.UtcNow));
        await _page.GetByTestId("totp-confirm-submit").ClickAsync();
        await Expect(_page.GetByTestId("totp-state")).ToHaveTextAsync("on");
        await Expect(_page.GetByTestId("notice")).ToHaveTextAsync("TOTP is on: signing in now asks for a code.");
        await Expect(_page.GetByTestId("totp-setup")).ToBeHiddenAsync();
        await Expect(_page.GetByTestId("totp-disable-form")).ToBeVisibleAsync();
        await ShotAsync("totp-on");
        Assert.True(_node.Directory.AdminHasTotp("admin"));

        await _page.GetByTestId("logout").ClickAsync();
        await Expect(_page.GetByTestId("page-login")).ToBeVisibleAsync();
        await Expect(_page.GetByTestId("notice")).ToHaveTextAsync("You have signed out.");
        await Expect(_page.GetByTestId("topbar")).ToBeHiddenAsync();
        await Expect(_page.GetByTestId("login-totp-row")).ToBeHiddenAsync();
        await _page.GetByTestId("login-name").FillAsync("admin");
        await _page.GetByTestId("login-password").FillAsync(_adminPassword);
        await _page.GetByTestId("login-submit").ClickAsync();
        await Expect(_page.GetByTestId("login-totp-row")).ToBeVisibleAsync();
        await Expect(_page.GetByTestId("notice")).ToHaveTextAsync("Enter the 6-digit code of your authenticator app.");
        await Expect(_page.GetByTestId("page-login")).ToBeVisibleAsync();
        await ShotAsync("login-asks-totp");

        await _page.GetByTestId("login-totp").FillAsync(WrongCode(secret));
        await _page.GetByTestId("login-submit").ClickAsync();
        await Expect(_page.GetByTestId("error-detail")).ToHaveTextAsync("wrong name, password or code (401)");
        await Expect(_page.GetByTestId("page-login")).ToBeVisibleAsync();
        await ShotAsync("login-wrong-totp");

        await _page.GetByTestId("login-totp").FillAsync(Totp.Code(secret, DateTimeOffset.UtcNow));
        await _page.GetByTestId("login-submit").ClickAsync();
        await Expect(_page.GetByTestId("page-dashboard")).ToBeVisibleAsync();
        await ExpectCountsAsync(domains: "2", mailboxes: "1,002", aliases: "0", disabled: "1");
        await ShotAsync("signed-in-with-totp");
    }

    // 8. An alias to two mailboxes, then one target taken off.
    private async Task AddAnAliasAndRemoveATargetAsync()
    {
        var source = $"sales@{Domain}";
        await NavigateAsync("aliases");
        await _page.GetByTestId("alias-add-source").FillAsync(source);
        await _page.GetByTestId("alias-add-targets").FillAsync($"anna@{Domain}, carl@{Domain}");
        await _page.GetByTestId("alias-add-submit").ClickAsync();
        await Expect(_page.GetByTestId("notice")).ToHaveTextAsync($"Alias {source} → anna@{Domain}, carl@{Domain} added.");
        var row = _page.Locator($"[data-testid=alias-row][data-source='{source}']");
        await Expect(row.GetByTestId("alias-target")).ToHaveTextAsync([new Regex($"^anna@{Regex.Escape(Domain)}"), new Regex($"^carl@{Regex.Escape(Domain)}")]);
        await ShotAsync("alias-added");

        await row.Locator($"[data-testid=alias-target][data-target='carl@{Domain}']").GetByTestId("alias-remove-target").ClickAsync();
        await Expect(_page.GetByTestId("notice")).ToHaveTextAsync($"carl@{Domain} removed from {source}.");
        await Expect(row.GetByTestId("alias-target")).ToHaveTextAsync([$"anna@{Domain}"]);
        await Expect(row.GetByTestId("alias-remove-target")).ToHaveCountAsync(0); // a lone target goes with the alias
        await ShotAsync("alias-one-target");
        Assert.Equal([$"anna@{Domain}"], _node.Directory.ListAliases(Domain).Where(a => a.Source == source).Select(a => a.Target));

        await NavigateAsync("dashboard");
        await ExpectCountsAsync(domains: "2", mailboxes: "1,002", aliases: "1", disabled: "1");
        await ShotAsync("dashboard-end");
    }

    // ---- helpers ----

    /// <summary>address,password,quota for user0001…user1000; with the two bad lines, or without them (998 lines).</summary>
    private static string Csv(bool withBadLines)
    {
        var csv = new StringBuilder("address,password,quota\n");
        for (var i = 1; i <= CsvMailboxes; i++)
        {
            var line = i switch
            {
                BadAddressUser => $"user{i:D4}{Domain},pass-word-{i:D4},200M",
                ShortPasswordUser => $"user{i:D4}@{Domain},short,200M",
                _ => null,
            };
            if (line is not null && !withBadLines) continue;
            csv.Append(line ?? $"user{i:D4}@{Domain},pass-word-{i:D4},200M").Append('\n');
        }
        return csv.ToString();
    }

    private ILocator MailboxRow(string address) => _page.Locator($"[data-testid=mailbox-row][data-address='{address}']");
    private ILocator DomainRow(string domain) => _page.Locator($"[data-testid=domain-row][data-domain='{domain}']");

    /// <summary>Follows a link of the top bar (or a route with parameters, as a bookmark would) and waits for the page.</summary>
    private async Task NavigateAsync(string route)
    {
        var page = route.Split('?')[0];
        if (route == page) await _page.GetByTestId("nav-" + page).ClickAsync();
        else await _page.EvaluateAsync("hash => { location.hash = hash; }", "#/" + route);
        await Expect(_page.GetByTestId("page-" + page)).ToBeVisibleAsync();
        await Expect(_page.GetByTestId("nav-" + page)).ToHaveAttributeAsync("aria-current", "page");
    }

    private async Task ExpectCountsAsync(string domains, string mailboxes, string aliases, string disabled)
    {
        await Expect(_page.GetByTestId("count-domains")).ToHaveTextAsync(domains);
        await Expect(_page.GetByTestId("count-mailboxes")).ToHaveTextAsync(mailboxes);
        await Expect(_page.GetByTestId("count-aliases")).ToHaveTextAsync(aliases);
        await Expect(_page.GetByTestId("count-disabled")).ToHaveTextAsync(disabled);
    }

    private Task ShotAsync(string step) => _browser!.ScreenshotAsync(_page, $"{++_shot:D2}-{step}");

    /// <summary>A job panel as shown: state, phase, the bar's value and max, the count text.</summary>
    private sealed record JobView(string State, string Phase, double Value, double Max, string Count);

    private static async Task<JobView> ReadJobAsync(ILocator job)
    {
        var parts = await job.EvaluateAsync<string[]>("""
            panel => {
              const text = id => (panel.querySelector(`[data-testid="${id}"]`) || {}).textContent || '';
              const bar = panel.querySelector('[data-testid="job-progress"]');
              return [panel.dataset.state || '', text('job-phase'), String(bar ? bar.value : -1), String(bar ? bar.max : -1), text('job-count')];
            }
            """);
        return new JobView(parts[0], parts[1], double.Parse(parts[2], System.Globalization.CultureInfo.InvariantCulture),
            double.Parse(parts[3], System.Globalization.CultureInfo.InvariantCulture), parts[4]);
    }

    /// <summary>Runs <paramref name="action"/>, answers the prompt it opens with <paramref name="answer"/>, returns the prompt's message.</summary>
    private async Task<string> AnswerNextDialogAsync(Func<Task> action, string answer)
    {
        var message = new TaskCompletionSource<string>(TaskCreationOptions.RunContinuationsAsynchronously);
        async void OnDialog(object? sender, IDialog dialog)
        {
            _page.Dialog -= OnDialog;
            try
            {
                Assert.Equal("prompt", dialog.Type);
                await dialog.AcceptAsync(answer);
                message.TrySetResult(dialog.Message);
            }
            catch (Exception ex)
            {
                message.TrySetException(ex);
            }
        }
        _page.Dialog += OnDialog;
        await action();
        return await message.Task.WaitAsync(TimeSpan.FromSeconds(15));
    }

    private async Task<bool> ImapLoginAsync(string address, string password)
    {
        using var client = new ImapClient { ServerCertificateValidationCallback = (_, _, _, _) => true };
        await client.ConnectAsync(_node.Imap.Address.ToString(), _node.Imap.Port, SecureSocketOptions.StartTls);
        try
        {
            await client.AuthenticateAsync(address, password);
        }
        catch (AuthenticationException)
        {
            return false;
        }
        await client.DisconnectAsync(true);
        return true;
    }

    /// <summary>Six digits that are none of the codes the server accepts now.</summary>
    private static string WrongCode(string secret)
    {
        var now = DateTimeOffset.UtcNow;
        var valid = Enumerable.Range(-2, 5).Select(step => Totp.Code(secret, now.AddSeconds(30 * step))).ToHashSet();
        return Enumerable.Range(0, 10).Select(d => new string((char)('0' + d), 6)).First(c => !valid.Contains(c));
    }
}
