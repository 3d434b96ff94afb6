using System.Text;
using Appliance.Tests.Relay;
using Appliance.Tests.Smtp;
using MailKit.Net.Smtp;
using MimeKit;

namespace Appliance.Tests.Filtering;

/// <summary>
/// A user's active Sieve script at final delivery (real node, mail over SMTP with MailKit):
/// fileinto with flags and :create, discard, redirect, reject (refused in the reply for one
/// recipient, a bounce when others share the message), vacation once per sender per period and
/// never to list mail, a broken script keeping the mail.
/// </summary>
public sealed class SieveDeliveryTests
{
    private const string Alice = "alice@" + TestNode.Domain;
    private const string Bob = "bob@" + TestNode.Domain;
    private const string Carol = "carol@" + TestNode.Domain;

    private static async Task ActivateAsync(TestNode node, string local, string script)
    {
        var user = node.User(local);
        Assert.Equal(Appliance.Store.SieveResult.Ok, await node.Store.PutSieveScriptAsync(user, "rules", script));
        Assert.Equal(Appliance.Store.SieveResult.Ok, await node.Store.SetActiveSieveScriptAsync(user, "rules"));
    }

    private static async Task SendAsync(TestNode node, MimeMessage message, params string[] to)
    {
        using var client = new SmtpClient();
        await client.ConnectAsync(node.Smtp.Address.ToString(), node.Smtp.Port, MailKit.Security.SecureSocketOptions.None);
        await client.SendAsync(message, MailboxAddress.Parse(message.From.Mailboxes.First().Address), [.. (to.Length == 0 ? [Alice] : to).Select(MailboxAddress.Parse)]);
        await client.DisconnectAsync(true);
    }

    private static async Task<List<(string Text, Appliance.Store.StoredMessage Stored)>> FolderAsync(TestNode node, string local, string folder)
    {
        var user = node.User(local);
        var list = new List<(string, Appliance.Store.StoredMessage)>();
        foreach (var m in await node.Store.ListAsync(user, folder, CancellationToken.None))
        {
            await using var s = node.Store.OpenMessage(user, m);
            using var reader = new StreamReader(s, Encoding.UTF8);
            list.Add((await reader.ReadToEndAsync(), m));
        }
        return list;
    }

    [Fact]
    public async Task Fileinto_with_flags_create_discard_and_a_broken_script()
    {
        await using var node = await TestNode.StartAsync(["alice", "bob"]);
        await ActivateAsync(node, "alice", """
            require ["fileinto", "imap4flags", "mailbox", "variables"];
            if header :contains "subject" "invoice" {
                fileinto :flags ["\\Flagged", "$Accounting"] "Archive";
            } elsif address :domain :is "from" "lists.example" {
                fileinto :create "Lists/Example";
            } elsif header :matches "subject" "*[drop]*" {
                discard;
            } elsif header :is "x-spam-flag" "YES" {
                fileinto "Trash";
            }
            """);
        await SendAsync(node, Mailkit.Text("billing@shop.example", Alice, "Your invoice 42", "due"));
        await SendAsync(node, Mailkit.Text("news@lists.example", Alice, "Weekly digest", "news"));
        await SendAsync(node, Mailkit.Text("noise@x.example", Alice, "please [drop] me", "x"));
        await SendAsync(node, Mailkit.Text("friend@x.example", Alice, "hello", "hi"));

        var archived = Assert.Single(await FolderAsync(node, "alice", "Archive"));
        Assert.Contains("Subject: Your invoice 42", archived.Text);
        Assert.Equal(Appliance.Store.MessageFlags.Flagged, archived.Stored.Flags);
        Assert.Equal(["$Accounting"], archived.Stored.Keywords);
        Assert.Contains("Subject: Weekly digest", Assert.Single(await FolderAsync(node, "alice", "Lists/Example")).Text);
        Assert.Contains("Subject: hello", Assert.Single(await FolderAsync(node, "alice", "INBOX")).Text);
        Assert.DoesNotContain((await FolderAsync(node, "alice", "INBOX")).Concat(await FolderAsync(node, "alice", "Trash")), m => m.Text.Contains("[drop]"));

        // A script that no longer parses (stored before an upgrade, say) keeps the mail.
        await node.Store.PutSieveScriptAsync(node.User("bob"), "broken", "if true { keep");
        await node.Store.SetActiveSieveScriptAsync(node.User("bob"), "broken");
        await SendAsync(node, Mailkit.Text("friend@x.example", Bob, "still here", "hi"), Bob);
        Assert.Single(await FolderAsync(node, "bob", "INBOX"));
    }

    [Fact]
    public async Task A_script_over_64_KiB_that_a_raised_limit_allowed_runs_at_delivery()
    {
        await using var node = await TestNode.StartAsync(["alice"], o => o.ManageSieve.MaxScriptBytes = 256 * 1024);
        var comment = "# " + new string('x', 80) + "\r\n";
        await ActivateAsync(node, "alice", string.Concat(Enumerable.Repeat(comment, 1000)) + "require \"fileinto\";\r\nfileinto \"Archive\";\r\n");
        await SendAsync(node, Mailkit.Text("friend@x.example", Alice, "big rules", "x"));
        Assert.Single(await FolderAsync(node, "alice", "Archive"));
    }

    [Fact]
    public async Task Reject_is_refused_in_the_reply_for_one_recipient_and_bounced_when_others_share_the_message()
    {
        await using var node = await TestNode.StartAsync(["alice", "bob", "carol"]);
        await ActivateAsync(node, "alice", """
            require "reject";
            if header :contains "subject" "survey" { reject "I do not answer surveys."; }
            """);
        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(node, Mailkit.Text(Bob, Alice, "A short survey", "?")));
        Assert.Equal(550, (int)refused.StatusCode);
        Assert.Equal("5.7.1 I do not answer surveys.", refused.Message);
        Assert.Empty(await FolderAsync(node, "alice", "INBOX"));

        // Alice and Carol together: Carol gets it, Bob (the sender) gets a bounce about Alice.
        await SendAsync(node, Mailkit.Text(Bob, Alice, "Another survey", "?"), Alice, Carol);
        Assert.Empty(await FolderAsync(node, "alice", "INBOX"));
        Assert.Single(await FolderAsync(node, "carol", "INBOX"));
        await OutboundDeliveryTests.WaitUntilAsync(async () => (await FolderAsync(node, "bob", "INBOX")).Count == 1, "the bounce to bob");
        var bounce = Assert.Single(await FolderAsync(node, "bob", "INBOX")).Text;
        Assert.Contains("Subject: Undelivered Mail Returned to Sender", bounce);
        Assert.Contains("Final-Recipient: rfc822; " + Alice, bounce);
        Assert.Contains("550 5.7.1 I do not answer surveys.", bounce);
    }

    [Fact]
    public async Task Redirect_forwards_a_copy_and_keep_with_copy_stays()
    {
        await using var node = await TestNode.StartAsync(["alice", "bob", "carol"]);
        await ActivateAsync(node, "alice", """
            require ["copy"];
            if header :contains "subject" "for bob" { redirect "bob@example.test"; }
            if header :contains "subject" "for carol" { redirect :copy "carol@example.test"; }
            """);
        await SendAsync(node, Mailkit.Text("x@remote.example", Alice, "this is for bob", "b"));
        await SendAsync(node, Mailkit.Text("x@remote.example", Alice, "this is for carol", "c"));
        await OutboundDeliveryTests.WaitUntilAsync(async () => (await FolderAsync(node, "bob", "INBOX")).Count == 1 && (await FolderAsync(node, "carol", "INBOX")).Count == 1, "the redirected copies");
        var inbox = Assert.Single(await FolderAsync(node, "alice", "INBOX"));
        Assert.Contains("Subject: this is for carol", inbox.Text);
        var bob = Assert.Single(await FolderAsync(node, "bob", "INBOX")).Text;
        // Sent on from the original sender, with one Return-Path (the new one), our Received kept.
        Assert.StartsWith("Return-Path: <x@remote.example>\r\n", bob);
        Assert.Single(bob.Split("Return-Path:"), s => s.Length > 0 && s.StartsWith(' '));
    }

    [Fact]
    public async Task A_vacation_reply_goes_out_once_per_sender_per_period_and_never_to_lists()
    {
        await using var node = await TestNode.StartAsync(["alice", "bob", "carol"]);
        await ActivateAsync(node, "alice", """
            require ["vacation"];
            vacation :days 7 :subject "Out of office" :from "alice@example.test" "I am away until Monday.";
            """);
        await SendAsync(node, Mailkit.Text(Bob, Alice, "Question", "one"));
        await SendAsync(node, Mailkit.Text(Bob, Alice, "Question again", "two"));
        await SendAsync(node, Mailkit.Text(Carol, Alice, "Hello", "three"));
        var list = Mailkit.Text(Bob, Alice, "Digest", "list mail");
        list.Headers.Add("List-Id", "<team.lists.example>");
        await SendAsync(node, list);
        var bulk = Mailkit.Text(Carol, Alice, "Newsletter", "bulk");
        bulk.Headers.Add("Precedence", "bulk");
        await SendAsync(node, bulk);

        await OutboundDeliveryTests.WaitUntilAsync(async () => (await FolderAsync(node, "carol", "INBOX")).Count == 1 && (await FolderAsync(node, "bob", "INBOX")).Count == 1, "the vacation replies");
        Assert.Equal(5, (await FolderAsync(node, "alice", "INBOX")).Count); // every message still delivered
        var reply = Assert.Single(await FolderAsync(node, "bob", "INBOX")).Text;
        Assert.StartsWith("Return-Path: <>\r\n", reply);
        Assert.Contains("Subject: Out of office", reply);
        Assert.Contains("Auto-Submitted: auto-replied", reply);
        Assert.Contains("I am away until Monday.", reply);
        Assert.Single(await FolderAsync(node, "carol", "INBOX"));
        // Nothing more trickles in later (the queue is empty).
        await OutboundDeliveryTests.WaitUntilAsync(async () => (await node.Host.Queue.ListQueueAsync()).Count == 0, "an empty queue");
        Assert.Single(await FolderAsync(node, "bob", "INBOX"));
    }

    [Fact]
    public async Task A_vacation_period_that_ended_allows_a_new_reply()
    {
        await using var node = await TestNode.StartAsync(["alice", "bob"]);
        await ActivateAsync(node, "alice", """
            require ["vacation", "vacation-seconds"];
            vacation :seconds 2 "Back soon.";
            """);
        await SendAsync(node, Mailkit.Text(Bob, Alice, "one", "1"));
        await SendAsync(node, Mailkit.Text(Bob, Alice, "two", "2"));
        await OutboundDeliveryTests.WaitUntilAsync(async () => (await FolderAsync(node, "bob", "INBOX")).Count == 1, "the first reply");
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        await SendAsync(node, Mailkit.Text(Bob, Alice, "three", "3"));
        await OutboundDeliveryTests.WaitUntilAsync(async () => (await FolderAsync(node, "bob", "INBOX")).Count == 2, "a second reply after the period");
    }
}
