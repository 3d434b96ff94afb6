using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Appliance.Store;
using Appliance.Tests.Smtp;
using MimeKit;

namespace Appliance.Tests.Web.Webmail;

/// <summary>The webmail's API over real HTTP against a real node: what its page does, and what it must refuse.</summary>
public sealed class WebmailApiTests : IAsyncLifetime
{
    private TestNode _node = null!;
    private WebmailClient _alice = null!;
    private const string Alice = "alice@" + TestNode.Domain, Bob = "bob@" + TestNode.Domain;

    public async Task InitializeAsync()
    {
        _node = await TestNode.StartAsync(["alice", "bob"], o =>
        {
            o.Listen.Http = 0;
            o.Listen.Submission = 0;
            o.Webmail.QuotaBytes = 300_000;
            o.Webmail.MaxFileBytes = 200_000;
        });
        _alice = new WebmailClient(_node.Host.Endpoints["http"]);
        (await _alice.SignInAsync(Alice, TestNode.Password)).EnsureSuccessStatusCode();
    }

    public async Task DisposeAsync()
    {
        _alice.Dispose();
        await _node.DisposeAsync();
    }

    private WebmailClient NewClient() => new(_node.Host.Endpoints["http"]);

    private async Task DeliverAsync(string to, string subject, string? html = null, string text = "hello", string from = "carol@elsewhere.test")
    {
        var m = new MimeMessage();
        m.From.Add(MailboxAddress.Parse(from));
        m.To.Add(MailboxAddress.Parse(to));
        m.Subject = subject;
        var body = new BodyBuilder { TextBody = html is null ? text : null, HtmlBody = html };
        m.Body = body.ToMessageBody();
        await Mailkit.SendAsync(_node.Smtp, m);
    }

    private async Task<JsonArray> ListAsync(WebmailClient client, string folder = "INBOX", string extra = "") =>
        (JsonArray)(await client.GetJsonAsync($"/webmail/api/messages?folder={Uri.EscapeDataString(folder)}{extra}"))["messages"]!;

    [Fact]
    public async Task Sign_in_needs_the_right_password_and_every_change_needs_the_CSRF_token()
    {
        using var stranger = NewClient();
        Assert.Equal("wrong address or password", await WebmailClient.ProblemAsync(await stranger.SignInAsync(Alice, "wrong password"), HttpStatusCode.Unauthorized));
        Assert.Equal(HttpStatusCode.Unauthorized, (await stranger.GetAsync("/webmail/api/folders")).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, (await stranger.GetAsync("/webmail/api/session")).StatusCode);

        var session = await _alice.GetJsonAsync("/webmail/api/session");
        Assert.Equal(Alice, (string)session["address"]!);
        var cookie = _alice.Cookies.GetCookies(_alice.Http.BaseAddress!)["appliance_webmail"]!;
        Assert.True(cookie.HttpOnly);

        // The same call without the header, then with a wrong one: refused, nothing made.
        var csrf = _alice.Csrf;
        _alice.Csrf = null;
        await WebmailClient.ProblemAsync(await _alice.PostAsync("/webmail/api/notes", new JsonObject { ["title"] = "x", ["body"] = "y" }), HttpStatusCode.Forbidden);
        _alice.Csrf = "forged";
        await WebmailClient.ProblemAsync(await _alice.PostAsync("/webmail/api/notes", new JsonObject { ["title"] = "x", ["body"] = "y" }), HttpStatusCode.Forbidden);
        _alice.Csrf = csrf;
        Assert.Empty((JsonArray)(await _alice.GetJsonAsync("/webmail/api/notes"))["notes"]!);

        // The page itself: no inline script allowed, never framed.
        var page = await stranger.GetAsync("/");
        Assert.Equal(HttpStatusCode.OK, page.StatusCode);
        var csp = page.Headers.GetValues("Content-Security-Policy").Single();
        Assert.Contains("script-src 'self'", csp);
        Assert.Contains("frame-ancestors 'none'", csp);

        await _alice.OkAsync(_alice.DeleteAsync("/webmail/api/session"));
        Assert.Equal(HttpStatusCode.Unauthorized, (await _alice.GetAsync("/webmail/api/folders")).StatusCode);
    }

    [Fact]
    public async Task Another_user_reaches_none_of_alices_items()
    {
        await DeliverAsync(Alice, "Private");
        var aliceUid = (long)(await ListAsync(_alice))[0]!["uid"]!;
        var note = await _alice.OkAsync(_alice.PostAsync("/webmail/api/notes", new JsonObject { ["title"] = "Secret", ["body"] = "pin 1234" }));
        var noteId = (string)note!["id"]!;
        await _alice.UploadAsync("/webmail/api/files?folder=/", "file", "secret.txt", Encoding.ASCII.GetBytes("pin"), "text/plain");
        var contact = await _alice.OkAsync(_alice.PostAsync("/webmail/api/contacts", new JsonObject { ["name"] = "Carol", ["emails"] = new JsonArray("carol@elsewhere.test") }));

        using var bob = NewClient();
        (await bob.SignInAsync(Bob, TestNode.Password)).EnsureSuccessStatusCode();
        Assert.Empty((JsonArray)(await bob.GetJsonAsync("/webmail/api/notes"))["notes"]!);
        Assert.Empty((JsonArray)(await bob.GetJsonAsync("/webmail/api/contacts"))["contacts"]!);
        Assert.Empty((JsonArray)(await bob.GetJsonAsync("/webmail/api/files?folder=/"))["files"]!);
        Assert.Empty(await ListAsync(bob));
        // Alice's ids and paths, tried by Bob: nothing to find, nothing changed.
        await WebmailClient.ProblemAsync(await bob.PutAsync($"/webmail/api/notes/{noteId}", new JsonObject { ["title"] = "mine", ["body"] = "" }), HttpStatusCode.NotFound);
        await WebmailClient.ProblemAsync(await bob.DeleteAsync($"/webmail/api/notes/{noteId}"), HttpStatusCode.NotFound);
        await WebmailClient.ProblemAsync(await bob.DeleteAsync($"/webmail/api/contacts/{(string)contact!["id"]!}"), HttpStatusCode.NotFound);
        await WebmailClient.ProblemAsync(await bob.GetAsync("/webmail/api/files/download?path=/secret.txt"), HttpStatusCode.NotFound);
        await WebmailClient.ProblemAsync(await bob.GetAsync($"/webmail/api/message?folder=INBOX&uid={aliceUid}"), HttpStatusCode.NotFound);
        await WebmailClient.ProblemAsync(await bob.GetAsync($"/webmail/api/message/raw?folder=INBOX&uid={aliceUid}"), HttpStatusCode.NotFound);
        Assert.Equal("pin 1234", (string)((JsonArray)(await _alice.GetJsonAsync("/webmail/api/notes"))["notes"]!).Single()!["body"]!);
        Assert.False((bool)(await ListAsync(_alice))[0]!["seen"]!);

    }

    [Fact]
    public async Task Guessing_passwords_is_throttled_like_mail_logins_and_a_signed_in_session_goes_on()
    {
        await using var node = await TestNode.StartAsync(["bob"], o =>
        {
            o.Listen.Http = 0;
            o.Security.LoginFailuresBeforeThrottle = 3;
        });
        using var bob = new WebmailClient(node.Host.Endpoints["http"]);
        (await bob.SignInAsync(Bob, TestNode.Password)).EnsureSuccessStatusCode();
        using var guesser = new WebmailClient(node.Host.Endpoints["http"]);
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 5; i++) statuses.Add((await guesser.SignInAsync(Bob, "guess " + i)).StatusCode);
        Assert.Equal(HttpStatusCode.Unauthorized, statuses[0]);
        Assert.Equal(HttpStatusCode.TooManyRequests, statuses[^1]);
        var detail = await WebmailClient.ProblemAsync(await guesser.SignInAsync(Bob, TestNode.Password), HttpStatusCode.TooManyRequests);
        Assert.Contains("too many failed sign-ins", detail);
        Assert.Equal(Bob, (string)(await bob.GetJsonAsync("/webmail/api/session"))["address"]!);
    }

    [Fact]
    public async Task Folders_list_and_message_view_show_new_mail_and_reading_marks_it_seen()
    {
        await DeliverAsync(Alice, "Quarterly report", text: "Numbers attached.");
        var folders = (JsonArray)(await _alice.GetJsonAsync("/webmail/api/folders"))["folders"]!;
        Assert.Equal("INBOX", (string)folders[0]!["name"]!);
        Assert.Equal(1, (int)folders[0]!["unread"]!);
        Assert.Contains(folders, f => (string?)f!["specialUse"] == "\\Sent");

        var rows = await ListAsync(_alice);
        var row = Assert.Single(rows);
        Assert.Equal("Quarterly report", (string)row!["subject"]!);
        Assert.Equal("carol@elsewhere.test", (string)row["from"]!["address"]!);
        Assert.Equal(Alice, (string)row["to"]![0]!["address"]!);
        Assert.False((bool)row["seen"]!);
        var uid = (long)row["uid"]!;

        var view = await _alice.GetJsonAsync($"/webmail/api/message?folder=INBOX&uid={uid}");
        Assert.Equal("Quarterly report", (string)view["subject"]!);
        Assert.False((bool)view["hasHtml"]!);
        Assert.True((bool)(await ListAsync(_alice))[0]!["seen"]!);

        var body = await _alice.GetAsync($"/webmail/api/message/body?folder=INBOX&uid={uid}");
        Assert.Contains("Numbers attached.", await body.Content.ReadAsStringAsync());
        Assert.Contains("sandbox", body.Headers.GetValues("Content-Security-Policy").Single());

        Assert.Equal(HttpStatusCode.NotFound, (await _alice.GetAsync($"/webmail/api/message?folder=INBOX&uid={uid + 100}")).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await _alice.GetAsync("/webmail/api/messages?folder=Nowhere")).StatusCode);
    }

    [Fact]
    public async Task A_hostile_HTML_mail_reaches_the_frame_without_script_and_with_remote_images_held_back()
    {
        await DeliverAsync(Alice, "Win a prize", html: """
            <p onclick="steal()">Hello<script>alert(1)</script></p><img src="https://tracker.example/p.gif"><a href="javascript:alert(2)">x</a>
            <svg onload="alert(3)"></svg><iframe src="https://evil.example/"></iframe>
            """);
        var uid = (long)(await ListAsync(_alice))[0]!["uid"]!;
        var view = await _alice.GetJsonAsync($"/webmail/api/message?folder=INBOX&uid={uid}");
        Assert.True((bool)view["remoteImages"]!);

        var body = await _alice.GetAsync($"/webmail/api/message/body?folder=INBOX&uid={uid}");
        var html = await body.Content.ReadAsStringAsync();
        foreach (var bad in new[] { "<script", "onclick", "javascript:", "<svg", "<iframe", " src=\"https://tracker" })
            Assert.DoesNotContain(bad, html, StringComparison.OrdinalIgnoreCase);
        Assert.Contains("data-remote-src=\"https://tracker.example/p.gif\"", html);
        var csp = body.Headers.GetValues("Content-Security-Policy").Single();
        Assert.Contains("default-src 'none'", csp);
        Assert.DoesNotContain("https:", csp);
        Assert.DoesNotContain("script-src", csp);

        var allowed = await _alice.GetAsync($"/webmail/api/message/body?folder=INBOX&uid={uid}&remote=1");
        Assert.Contains("src=\"https://tracker.example/p.gif\"", await allowed.Content.ReadAsStringAsync());
        Assert.Contains("img-src 'self' data: http: https:", allowed.Headers.GetValues("Content-Security-Policy").Single());
    }

    [Fact]
    public async Task Inline_images_are_put_into_the_document_and_an_inline_SVG_is_not()
    {
        var png = Convert.FromBase64String("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==");
        var body = new BodyBuilder { HtmlBody = "<p>Logo: <img src=\"cid:logo@x\" alt=\"logo\"><img src=\"cid:vector@x\"></p>" };
        body.LinkedResources.Add("logo.png", png, new ContentType("image", "png")).ContentId = "logo@x";
        body.LinkedResources.Add("v.svg", Encoding.ASCII.GetBytes("<svg onload=\"alert(1)\"/>"), new ContentType("image", "svg+xml")).ContentId = "vector@x";
        var m = new MimeMessage(new[] { MailboxAddress.Parse("carol@elsewhere.test") }, new[] { MailboxAddress.Parse(Alice) }, "Logo", body.ToMessageBody());
        await Mailkit.SendAsync(_node.Smtp, m);
        var uid = (long)(await ListAsync(_alice))[0]!["uid"]!;

        var html = await (await _alice.GetAsync($"/webmail/api/message/body?folder=INBOX&uid={uid}")).Content.ReadAsStringAsync();
        Assert.Contains("src=\"data:image/png;base64," + Convert.ToBase64String(png) + "\"", html);
        Assert.DoesNotContain("svg", html, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("cid:", html);
    }

    [Fact]
    public async Task Sending_with_an_attachment_reaches_the_local_user_files_a_copy_in_Sent_and_a_reply_marks_answered()
    {
        var pdf = Encoding.ASCII.GetBytes("%PDF-1.4\n% a tiny test file\n%%EOF\n");
        var upload = await _alice.UploadAsync("/webmail/api/uploads", "file", "plan.pdf", pdf, "application/pdf");
        Assert.Equal("plan.pdf", (string)upload["name"]!);
        var sheet = Encoding.ASCII.GetBytes("item,amount\nservers,2\n"); // a text file with LF line ends must keep them
        var csv = await _alice.UploadAsync("/webmail/api/uploads", "file", "costs.csv", sheet, "text/csv");
        var sent = await _alice.OkAsync(_alice.PostAsync("/webmail/api/send", new JsonObject
        {
            ["to"] = "Bob <" + Bob + ">", ["cc"] = "", ["bcc"] = "", ["subject"] = "The plan", ["text"] = "See the attachment.",
            ["attachments"] = new JsonArray((string)upload["id"]!, (string)csv["id"]!),
        }));
        Assert.True((bool)sent!["savedInSent"]!);

        var bobInbox = await _node.FolderBytesAsync("bob", MailStore.Inbox);
        var received = MimeMessage.Load(new MemoryStream(Assert.Single(bobInbox)));
        Assert.Equal("The plan", received.Subject);
        Assert.Equal(Alice, received.From.Mailboxes.Single().Address);
        var attachments = received.Attachments.OfType<MimePart>().ToList();
        Assert.Equal(2, attachments.Count);
        var attachment = attachments[0];
        Assert.Equal("plan.pdf", attachment.FileName);
        using (var decoded = new MemoryStream()) { attachment.Content!.DecodeTo(decoded); Assert.Equal(pdf, decoded.ToArray()); }
        Assert.Equal("costs.csv", attachments[1].FileName);
        using (var decoded = new MemoryStream()) { attachments[1].Content!.DecodeTo(decoded); Assert.Equal(sheet, decoded.ToArray()); }
        Assert.Single(await _node.FolderTextsAsync("alice", "Sent"));

        // Bob replies from his own webmail: the form comes prefilled, and the original gets \Answered.
        using var bob = NewClient();
        (await bob.SignInAsync(Bob, TestNode.Password)).EnsureSuccessStatusCode();
        var uid = (long)(await ListAsync(bob))[0]!["uid"]!;
        var view = await bob.GetJsonAsync($"/webmail/api/message?folder=INBOX&uid={uid}");
        var part = (string)((JsonArray)view["attachments"]!)[0]!["part"]!;
        var download = await bob.GetAsync($"/webmail/api/message/part?folder=INBOX&uid={uid}&part={part}&download=1");
        Assert.Equal(pdf, await download.Content.ReadAsByteArrayAsync());
        Assert.StartsWith("attachment", download.Content.Headers.ContentDisposition!.DispositionType);

        var reply = await bob.GetJsonAsync($"/webmail/api/message/reply?folder=INBOX&uid={uid}&mode=reply");
        Assert.Equal("Re: The plan", (string)reply["subject"]!);
        Assert.Contains(Alice, (string)reply["to"]!);
        Assert.Contains("> See the attachment.", (string)reply["text"]!);
        await bob.OkAsync(bob.PostAsync("/webmail/api/send", new JsonObject
        {
            ["to"] = (string)reply["to"]!, ["subject"] = (string)reply["subject"]!, ["text"] = "Agreed.\n" + (string)reply["text"]!,
            ["inReplyTo"] = new JsonObject { ["folder"] = "INBOX", ["uid"] = uid },
        }));
        Assert.True((bool)(await ListAsync(bob))[0]!["answered"]!);
        var answer = MimeMessage.Load(new MemoryStream(Assert.Single(await _node.FolderBytesAsync("alice", MailStore.Inbox))));
        Assert.Equal(received.MessageId, answer.InReplyTo);
    }

    [Fact]
    public async Task Bad_addresses_and_forged_senders_are_refused_with_the_reason()
    {
        var detail = await WebmailClient.ProblemAsync(await _alice.PostAsync("/webmail/api/send", new JsonObject { ["to"] = "not an address", ["subject"] = "x", ["text"] = "y" }), HttpStatusCode.BadRequest);
        Assert.Contains("not an e-mail address", detail);
        await WebmailClient.ProblemAsync(await _alice.PostAsync("/webmail/api/send", new JsonObject { ["to"] = "", ["subject"] = "x", ["text"] = "y" }), HttpStatusCode.BadRequest);
        await WebmailClient.ProblemAsync(await _alice.PostAsync("/webmail/api/send", new JsonObject { ["to"] = Bob, ["attachments"] = new JsonArray("nope") }), HttpStatusCode.BadRequest);
        // A mistyped local user: the submission service's 550 is what the user reads.
        detail = await WebmailClient.ProblemAsync(await _alice.PostAsync("/webmail/api/send", new JsonObject { ["to"] = "nobody@" + TestNode.Domain, ["text"] = "y" }), HttpStatusCode.BadRequest);
        Assert.Contains("nobody@" + TestNode.Domain, detail);
        Assert.Empty(await _node.FolderTextsAsync("alice", "Sent"));
    }

    [Fact]
    public async Task Drafts_are_saved_replaced_and_removed_when_sent()
    {
        var first = await _alice.OkAsync(_alice.PostAsync("/webmail/api/drafts", new JsonObject { ["to"] = Bob, ["subject"] = "Draft", ["text"] = "v1" }));
        Assert.Equal("Drafts", (string)first!["folder"]!);
        var second = await _alice.OkAsync(_alice.PostAsync("/webmail/api/drafts", new JsonObject { ["to"] = Bob, ["subject"] = "Draft", ["text"] = "v2", ["draft"] = first.DeepClone() }));
        var drafts = await ListAsync(_alice, "Drafts");
        Assert.Equal((long)second!["uid"]!, (long)Assert.Single(drafts)!["uid"]!);
        Assert.True((bool)drafts[0]!["draft"]!);
        var edit = await _alice.GetJsonAsync($"/webmail/api/message/reply?folder=Drafts&uid={(long)second["uid"]!}&mode=draft");
        Assert.Equal("v2", ((string)edit["text"]!).Trim());
        Assert.Equal(Bob, (string)edit["to"]!);

        await _alice.OkAsync(_alice.PostAsync("/webmail/api/send", new JsonObject { ["to"] = Bob, ["subject"] = "Draft", ["text"] = "v2", ["draft"] = second.DeepClone() }));
        Assert.Empty(await ListAsync(_alice, "Drafts"));
        Assert.Single(await _node.InboxAsync("bob"));
    }

    [Fact]
    public async Task Moving_flagging_deleting_and_marking_as_junk_go_through_the_store_and_junk_trains_the_filter()
    {
        for (var i = 0; i < 3; i++) await DeliverAsync(Alice, $"Cheap watches {i}");
        var uids = (await ListAsync(_alice)).Select(r => (long)r!["uid"]!).ToArray();
        await _alice.OkAsync(_alice.PostAsync("/webmail/api/messages/flags", new JsonObject { ["folder"] = "INBOX", ["uids"] = new JsonArray(uids[0]), ["flagged"] = true }));
        Assert.True((bool)(await ListAsync(_alice)).Single(r => (long)r!["uid"]! == uids[0])!["flagged"]!);

        await _alice.OkAsync(_alice.PostAsync("/webmail/api/messages/junk", new JsonObject { ["folder"] = "INBOX", ["uids"] = new JsonArray(uids[1], uids[2]), ["junk"] = true }));
        Assert.Equal(2, (await ListAsync(_alice, "Junk")).Count);
        Assert.Equal((2, 0), _node.Store.SpamTraining(_node.User("alice")));
        var junkUid = (long)(await ListAsync(_alice, "Junk"))[0]!["uid"]!;
        await _alice.OkAsync(_alice.PostAsync("/webmail/api/messages/junk", new JsonObject { ["folder"] = "Junk", ["uids"] = new JsonArray(junkUid), ["junk"] = false }));
        Assert.Equal((1, 1), _node.Store.SpamTraining(_node.User("alice")));

        await _alice.OkAsync(_alice.PostAsync("/webmail/api/folders", new JsonObject { ["name"] = "Projects/2026" }));
        await _alice.OkAsync(_alice.PostAsync("/webmail/api/messages/move", new JsonObject { ["folder"] = "INBOX", ["uids"] = new JsonArray(uids[0]), ["target"] = "Projects/2026" }));
        Assert.Single(await ListAsync(_alice, "Projects/2026"));

        var inInbox = (long)(await ListAsync(_alice))[0]!["uid"]!;
        await _alice.OkAsync(_alice.PostAsync("/webmail/api/messages/delete", new JsonObject { ["folder"] = "INBOX", ["uids"] = new JsonArray(inInbox) }));
        var trashUid = (long)Assert.Single(await ListAsync(_alice, "Trash"))!["uid"]!;
        await _alice.OkAsync(_alice.PostAsync("/webmail/api/messages/delete", new JsonObject { ["folder"] = "Trash", ["uids"] = new JsonArray(trashUid) }));
        Assert.Empty(await ListAsync(_alice, "Trash"));

        await WebmailClient.ProblemAsync(await _alice.DeleteAsync("/webmail/api/folders?folder=Sent"), HttpStatusCode.BadRequest);
        await WebmailClient.ProblemAsync(await _alice.PostAsync("/webmail/api/messages/flags", new JsonObject { ["folder"] = "INBOX", ["uids"] = new JsonArray() }), HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task Search_paging_and_sorting_of_the_message_list()
    {
        foreach (var s in new[] { "banana split", "apple pie", "cherry tart", "apple crumble" }) await DeliverAsync(Alice, s, text: "recipe for " + s);
        var bySubject = await ListAsync(_alice, extra: "&sort=subject&order=asc");
        Assert.Equal(["apple crumble", "apple pie", "banana split", "cherry tart"], bySubject.Select(r => (string)r!["subject"]!));
        var page = await _alice.GetJsonAsync("/webmail/api/messages?folder=INBOX&sort=subject&order=asc&offset=2&limit=1");
        Assert.Equal(4, (int)page["total"]!);
        Assert.Equal("banana split", (string)((JsonArray)page["messages"]!).Single()!["subject"]!);
        var found = await _alice.GetJsonAsync("/webmail/api/messages?folder=INBOX&q=apple");
        Assert.Equal(2, (int)found["total"]!);
        var timing = await _alice.GetAsync("/webmail/api/messages?folder=INBOX");
        Assert.StartsWith("app;dur=", timing.Headers.GetValues("Server-Timing").Single());
        await WebmailClient.ProblemAsync(await _alice.GetAsync("/webmail/api/messages?folder=INBOX&sort=color"), HttpStatusCode.BadRequest);
    }

    [Fact]
    public async Task New_mail_is_announced_on_the_event_stream()
    {
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var response = await _alice.Http.GetAsync("/webmail/api/events", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cts.Token));
        Assert.Equal("retry: 5000", await reader.ReadLineAsync(cts.Token));
        await DeliverAsync(Alice, "ping");
        string? line;
        do line = await reader.ReadLineAsync(cts.Token);
        while (line is not null && !line.StartsWith("data:", StringComparison.Ordinal));
        Assert.Equal("data: {\"folder\":\"INBOX\"}", line);

        // Stopping the node ends the open stream rather than waiting for the browser to leave
        // (Kestrel would hold the stop for its 30 s shutdown timeout).
        var stopped = _node.StopAsync();
        do line = await reader.ReadLineAsync(cts.Token);
        while (line is not null);
        await stopped.WaitAsync(cts.Token);
    }

    [Fact]
    public async Task Contacts_complete_in_compose_and_round_trip_through_vCard()
    {
        var made = await _alice.OkAsync(_alice.PostAsync("/webmail/api/contacts", new JsonObject
        {
            ["name"] = "Bob Builder", ["emails"] = new JsonArray(Bob), ["phone"] = "+34 600 000 000", ["groups"] = new JsonArray("Team"),
        }));
        await _alice.OkAsync(_alice.PostAsync("/webmail/api/contacts", new JsonObject { ["name"] = "Dora, Explorer", ["emails"] = new JsonArray("dora@elsewhere.test"), ["groups"] = new JsonArray("Team") }));
        await WebmailClient.ProblemAsync(await _alice.PostAsync("/webmail/api/contacts", new JsonObject { ["name"] = "X", ["emails"] = new JsonArray("not-an-address") }), HttpStatusCode.BadRequest);

        var suggestions = (JsonArray)(await _alice.GetJsonAsync("/webmail/api/contacts/complete?q=bui"))["suggestions"]!;
        Assert.Equal("Bob Builder <bob@example.test>", (string)Assert.Single(suggestions)!["value"]!);
        var team = (JsonArray)(await _alice.GetJsonAsync("/webmail/api/contacts/complete?q=team"))["suggestions"]!;
        Assert.Equal("Bob Builder <bob@example.test>, \"Dora, Explorer\" <dora@elsewhere.test>", (string)Assert.Single(team)!["value"]!);

        var id = (string)made!["id"]!;
        await _alice.OkAsync(_alice.PutAsync($"/webmail/api/contacts/{id}", new JsonObject { ["name"] = "Bob B.", ["emails"] = new JsonArray(Bob) }));
        var vcf = await (await _alice.GetAsync("/webmail/api/contacts/export")).Content.ReadAsStringAsync();
        Assert.Contains("FN:Dora\\, Explorer", vcf);
        Assert.Contains("EMAIL;TYPE=INTERNET:bob@example.test", vcf);

        using var bob = NewClient();
        (await bob.SignInAsync(Bob, TestNode.Password)).EnsureSuccessStatusCode();
        var imported = await bob.OkAsync(bob.SendAsync(HttpMethod.Post, "/webmail/api/contacts/import", new StringContent(vcf, Encoding.UTF8, "text/vcard")));
        Assert.Equal(2, (int)imported!["imported"]!);
        var bobs = (JsonArray)(await bob.GetJsonAsync("/webmail/api/contacts"))["contacts"]!;
        Assert.Equal(["Bob B.", "Dora, Explorer"], bobs.Select(c => (string)c!["name"]!));
        Assert.Equal("Team", (string)bobs[1]!["groups"]![0]!);
        // Alice's contacts are hers: Bob's API shows his own, and deleting hers by id from his session finds nothing.
        await WebmailClient.ProblemAsync(await bob.DeleteAsync($"/webmail/api/contacts/{id}"), HttpStatusCode.NotFound);
        await _alice.OkAsync(_alice.DeleteAsync($"/webmail/api/contacts/{id}"));
        Assert.Single((JsonArray)(await _alice.GetJsonAsync("/webmail/api/contacts"))["contacts"]!);
    }

    [Fact]
    public async Task Notes_and_files_are_kept_in_the_db_unit_with_a_quota()
    {
        var note = await _alice.OkAsync(_alice.PostAsync("/webmail/api/notes", new JsonObject { ["title"] = "Shopping", ["body"] = "milk\nbread" }));
        await _alice.OkAsync(_alice.PutAsync($"/webmail/api/notes/{(string)note!["id"]!}", new JsonObject { ["title"] = "Shopping", ["body"] = "milk\nbread\neggs" }));
        var notes = (JsonArray)(await _alice.GetJsonAsync("/webmail/api/notes"))["notes"]!;
        Assert.Equal("milk\nbread\neggs", (string)Assert.Single(notes)!["body"]!);

        await _alice.OkAsync(_alice.PostAsync("/webmail/api/files/folders", new JsonObject { ["path"] = "/Docs" }));
        var data = new byte[150_000];
        new Random(7).NextBytes(data);
        await _alice.UploadAsync("/webmail/api/files?folder=/Docs", "file", "scan.bin", data, "application/octet-stream");
        var listing = await _alice.GetJsonAsync("/webmail/api/files?folder=/Docs");
        Assert.Equal("scan.bin", (string)((JsonArray)listing["files"]!).Single()!["name"]!);
        Assert.Equal(300_000, (long)listing["quotaBytes"]!);
        Assert.Equal(data, await (await _alice.GetAsync("/webmail/api/files/download?path=/Docs/scan.bin")).Content.ReadAsByteArrayAsync());
        Assert.Equal(["Docs"], ((JsonArray)(await _alice.GetJsonAsync("/webmail/api/files?folder=/"))["folders"]!).Select(f => (string)f!));

        // Over the per-file limit, then over the quota: refused, nothing stored.
        var form = new MultipartFormDataContent { { new ByteArrayContent(new byte[200_001]), "file", "big.bin" } };
        await WebmailClient.ProblemAsync(await _alice.SendAsync(HttpMethod.Post, "/webmail/api/files?folder=/", form), HttpStatusCode.RequestEntityTooLarge);
        form = new MultipartFormDataContent { { new ByteArrayContent(new byte[160_000]), "file", "more.bin" } };
        await WebmailClient.ProblemAsync(await _alice.SendAsync(HttpMethod.Post, "/webmail/api/files?folder=/", form), HttpStatusCode.RequestEntityTooLarge);
        Assert.Empty((JsonArray)(await _alice.GetJsonAsync("/webmail/api/files?folder=/"))["files"]!);

        await _alice.OkAsync(_alice.PostAsync("/webmail/api/files/move", new JsonObject { ["from"] = "/Docs", ["to"] = "/Papers" }));
        Assert.Equal(data, await (await _alice.GetAsync("/webmail/api/files/download?path=/Papers/scan.bin")).Content.ReadAsByteArrayAsync());
        await WebmailClient.ProblemAsync(await _alice.GetAsync("/webmail/api/files?folder=/../etc"), HttpStatusCode.BadRequest);
        await _alice.OkAsync(_alice.DeleteAsync("/webmail/api/files?path=/Papers"));
        Assert.Empty((JsonArray)(await _alice.GetJsonAsync("/webmail/api/files?folder=/"))["folders"]!);

        // Survives a restart: it is journalled, not in memory.
        await _alice.OkAsync(_alice.PostAsync("/webmail/api/notes", new JsonObject { ["title"] = "Kept", ["body"] = "after restart" }));
        await _node.RestartAsync();
        using var again = NewClient();
        (await again.SignInAsync(Alice, TestNode.Password)).EnsureSuccessStatusCode();
        Assert.Equal(2, ((JsonArray)(await again.GetJsonAsync("/webmail/api/notes"))["notes"]!).Count);
    }

    [Fact]
    public async Task Settings_vacation_and_filters_become_the_active_Sieve_script()
    {
        await _alice.OkAsync(_alice.PutAsync("/webmail/api/settings", new JsonObject { ["displayName"] = "Alice A.", ["signature"] = "-- \nAlice", ["language"] = "es", ["timeZone"] = "Europe/Madrid", ["pageSize"] = 25 }));
        var settings = await _alice.GetJsonAsync("/webmail/api/settings");
        Assert.Equal("es", (string)settings["language"]!);
        Assert.Equal("Alice A.", (string)(await _alice.GetJsonAsync("/webmail/api/session"))["displayName"]!);
        await WebmailClient.ProblemAsync(await _alice.PutAsync("/webmail/api/settings", new JsonObject { ["timeZone"] = "Mars/Olympus" }), HttpStatusCode.BadRequest);

        var bad = await WebmailClient.ProblemAsync(await _alice.PutAsync("/webmail/api/settings/filters", new JsonObject { ["script"] = "require \"fileinto\";\nif header :contains \"subject\" \"x\" {\n  fileinto \"A\"\n}" }), HttpStatusCode.BadRequest);
        Assert.Contains("line", bad);
        await _alice.OkAsync(_alice.PutAsync("/webmail/api/settings/filters", new JsonObject
        {
            ["script"] = "require [\"fileinto\", \"mailbox\"];\nif header :contains \"subject\" \"[list]\" { fileinto :create \"Lists\"; stop; }\n",
        }));
        await _alice.OkAsync(_alice.PutAsync("/webmail/api/settings/vacation", new JsonObject { ["enabled"] = true, ["subject"] = "Away", ["body"] = "Back on Monday \"really\".", ["days"] = 3 }));
        var active = _node.Store.GetActiveSieveScript(_node.User("alice"));
        Assert.Equal("webmail", active!.Name);

        // Mail from a list is filed (and, being to Alice from a person, answered once).
        await DeliverAsync(Alice, "[list] weekly", from: "dave@elsewhere.test");
        Assert.Single(await _node.FolderTextsAsync("alice", "Lists"));

        await _alice.OkAsync(_alice.PutAsync("/webmail/api/settings/vacation", new JsonObject { ["enabled"] = false }));
        await _alice.OkAsync(_alice.PutAsync("/webmail/api/settings/filters", new JsonObject { ["script"] = "" }));
        Assert.Null(_node.Store.GetActiveSieveScript(_node.User("alice")));
    }

    [Fact]
    public async Task Changing_the_password_keeps_this_session_ends_the_others_and_the_new_one_works_for_IMAP()
    {
        using var other = NewClient();
        (await other.SignInAsync(Alice, TestNode.Password)).EnsureSuccessStatusCode();
        await WebmailClient.ProblemAsync(await _alice.PostAsync("/webmail/api/settings/password", new JsonObject { ["current"] = "wrong", ["password"] = "a new long secret" }), HttpStatusCode.Forbidden);
        await WebmailClient.ProblemAsync(await _alice.PostAsync("/webmail/api/settings/password", new JsonObject { ["current"] = TestNode.Password, ["password"] = "short" }), HttpStatusCode.BadRequest);
        await _alice.OkAsync(_alice.PostAsync("/webmail/api/settings/password", new JsonObject { ["current"] = TestNode.Password, ["password"] = "a new long secret" }));

        await _alice.GetJsonAsync("/webmail/api/folders");
        Assert.Equal(HttpStatusCode.Unauthorized, (await other.GetAsync("/webmail/api/folders")).StatusCode);
        // The session still sends (it signs in to submission with the new password).
        await _alice.OkAsync(_alice.PostAsync("/webmail/api/send", new JsonObject { ["to"] = Bob, ["subject"] = "after", ["text"] = "x" }));
        using var imap = new MailKit.Net.Imap.ImapClient();
        await imap.ConnectAsync(_node.Imap.Address.ToString(), _node.Imap.Port, MailKit.Security.SecureSocketOptions.None);
        await imap.AuthenticateAsync(Alice, "a new long secret");
    }
}
