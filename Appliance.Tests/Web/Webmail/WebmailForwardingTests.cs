using System.Net;
using System.Text;
using System.Text.Json.Nodes;
using Appliance.Tests.Cluster;

namespace Appliance.Tests.Web.Webmail;

/// <summary>
/// The webmail in a pair (two in-process nodes): store-a (alice) and db on node1, store-b (bob)
/// on node2. A user reaches every part of the webmail through either node: what needs the other
/// node's unit is forwarded there, as IMAP sessions are.
/// </summary>
[Collection(Timing.Collection)]
public sealed class WebmailForwardingTests
{
    private const string Alice = "alice@" + TestNode.Domain, Bob = "bob@" + TestNode.Domain;

    private static async Task<TestPair> StartAsync()
    {
        var pair = await TestPair.StartPlacedAsync(o =>
        {
            o.Listen.Http = 0;
            o.Listen.Submission = 0;
        });
        await pair.WaitActiveAsync(pair.Node1, "db");
        await pair.WaitInSyncAsync(pair.Node1, "db");
        return pair;
    }

    private static async Task<WebmailClient> SignInAsync(TestNode node, string address)
    {
        var client = new WebmailClient(node.Host.Endpoints["http"]);
        (await client.SignInAsync(address, TestNode.Password)).EnsureSuccessStatusCode();
        return client;
    }

    private static async Task<JsonArray> ListAsync(WebmailClient client, string folder = "INBOX") =>
        (JsonArray)(await client.GetJsonAsync($"/webmail/api/messages?folder={folder}"))["messages"]!;

    [Fact]
    public async Task A_mailbox_on_the_other_node_is_read_written_and_sent_from_through_this_one()
    {
        await using var pair = await StartAsync();
        await TestPair.SendAsync(pair.Node2, "bob", "Hello Bob");

        // Bob signs in on node1, which holds neither his partition nor anything of his but db.
        using var bob = await SignInAsync(pair.Node1, Bob);
        var folders = (JsonArray)(await bob.GetJsonAsync("/webmail/api/folders"))["folders"]!;
        Assert.Equal(1, (int)folders[0]!["unread"]!);
        var row = Assert.Single(await ListAsync(bob));
        Assert.Equal("Hello Bob", (string)row!["subject"]!);
        var uid = (long)row["uid"]!;
        var body = await bob.GetAsync($"/webmail/api/message/body?folder=INBOX&uid={uid}");
        Assert.Equal("text/html", body.Content.Headers.ContentType?.MediaType);
        Assert.Contains("body of Hello Bob", await body.Content.ReadAsStringAsync());
        Assert.Contains("sandbox", body.Headers.GetValues("Content-Security-Policy").Single());
        Assert.Empty(await ListAsync(bob, "Trash"));

        // The event stream comes from node2, through node1.
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        using var events = await bob.Http.GetAsync("/webmail/api/events", HttpCompletionOption.ResponseHeadersRead, cts.Token);
        Assert.Equal("text/event-stream", events.Content.Headers.ContentType?.MediaType);
        using var reader = new StreamReader(await events.Content.ReadAsStreamAsync(cts.Token));
        Assert.Equal("retry: 5000", await reader.ReadLineAsync(cts.Token));
        await TestPair.SendAsync(pair.Node1, "bob", "Second"); // handed to node2 by node1's MX
        string? line;
        do line = await reader.ReadLineAsync(cts.Token);
        while (line is not null && !line.StartsWith("data:", StringComparison.Ordinal));
        Assert.Equal("data: {\"folder\":\"INBOX\"}", line);

        // An attachment uploaded and a message sent through node1: the copy in Sent is on node2.
        var csv = Encoding.ASCII.GetBytes("a,b\n1,2\n");
        var upload = await bob.UploadAsync("/webmail/api/uploads", "file", "numbers.csv", csv, "text/csv");
        await bob.OkAsync(bob.PostAsync("/webmail/api/send", new JsonObject
        {
            ["to"] = Alice, ["subject"] = "Numbers", ["text"] = "Attached.", ["attachments"] = new JsonArray((string)upload["id"]!),
            ["inReplyTo"] = new JsonObject { ["folder"] = "INBOX", ["uid"] = uid },
        }));
        Assert.Contains("Attached.", Assert.Single(await pair.Node2.FolderTextsAsync("bob", "Sent")));
        Assert.Contains("Numbers", Assert.Single(await pair.Node1.FolderTextsAsync("alice", "INBOX")));
        Assert.True((bool)(await ListAsync(bob)).Single(m => (long)m!["uid"]! == uid)!["answered"]!);

        // A vacation saved on node1 (db) becomes bob's active script on node2 (his partition).
        await bob.OkAsync(bob.PutAsync("/webmail/api/settings/vacation", new JsonObject
        {
            ["enabled"] = true, ["subject"] = "Away", ["body"] = "Back on Monday.", ["days"] = 3,
        }));
        var bobUser = pair.Node2.Directory.FindMailbox(Bob)!.ToUser();
        Assert.Contains("Back on Monday.", pair.Node2.Store.GetActiveSieveScript(bobUser)!.Content);
        var detail = await WebmailClient.ProblemAsync(await bob.PutAsync("/webmail/api/settings/filters", new JsonObject { ["script"] = "if true {" }), HttpStatusCode.BadRequest);
        Assert.Contains("line", detail);
    }

    [Fact]
    public async Task The_address_book_notes_and_files_are_served_by_the_db_node_whichever_node_the_browser_reaches()
    {
        await using var pair = await StartAsync();
        // Alice's mail is on node1 with db; she signs in on node2.
        using var alice = await SignInAsync(pair.Node2, Alice);
        var note = await alice.OkAsync(alice.PostAsync("/webmail/api/notes", new JsonObject { ["title"] = "Plan", ["body"] = "through node2" }));
        var data = new byte[70_000];
        Random.Shared.NextBytes(data);
        await alice.UploadAsync("/webmail/api/files?folder=/", "file", "scan.bin", data, "application/octet-stream");
        Assert.Equal(data, await (await alice.GetAsync("/webmail/api/files/download?path=/scan.bin")).Content.ReadAsByteArrayAsync());
        Assert.Equal("INBOX", (string)((JsonArray)(await alice.GetJsonAsync("/webmail/api/folders"))["folders"]!)[0]!["name"]!);

        // Written on node1 (db), read on node1 by a session made there.
        using var direct = await SignInAsync(pair.Node1, Alice);
        Assert.Equal("through node2", (string)((JsonArray)(await direct.GetJsonAsync("/webmail/api/notes"))["notes"]!).Single()!["body"]!);
        Assert.Equal((string)note!["id"]!, (string)((JsonArray)(await direct.GetJsonAsync("/webmail/api/notes"))["notes"]!).Single()!["id"]!);

        // The forwarding header means nothing from outside: no session, no access.
        using var forger = new HttpClient { BaseAddress = new Uri($"http://{pair.Node2.Host.Endpoints["http"]}") };
        forger.DefaultRequestHeaders.Add("X-Appliance-Forwarded", "anything");
        Assert.Equal(HttpStatusCode.Unauthorized, (await forger.GetAsync("/webmail/api/notes")).StatusCode);
        // A forwarded call still needs the browser's CSRF token on the front node.
        alice.Csrf = "forged";
        await WebmailClient.ProblemAsync(await alice.PostAsync("/webmail/api/notes", new JsonObject { ["title"] = "x", ["body"] = "y" }), HttpStatusCode.Forbidden);
    }
}
