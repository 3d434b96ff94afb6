using Appliance.Tests.Smtp;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Search;
using MailKit.Security;
using MimeKit;

namespace Appliance.Tests.Imap;

/// <summary>A real node, real mail in over SMTP, and MailKit as the IMAP client, over STARTTLS and IMAPS.</summary>
public sealed class ImapMailKitTests
{
    private static MimeMessage Text(string subject, string body, string from = "sender@remote.test") =>
        Mailkit.Text(from, $"alice@{TestNode.Domain}", subject, body);

    [Theory]
    [InlineData(SecureSocketOptions.StartTls)]
    [InlineData(SecureSocketOptions.SslOnConnect)]
    public async Task Mail_delivered_over_smtp_is_read_byte_identical(SecureSocketOptions tls)
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        var message = Text("Grüße", "Ünïcödé body\r\n.line starting with a dot\r\n");
        await Mailkit.SendAsync(node.Smtp, message);

        using var client = await ImapClients.MailKitAsync(node, tls: tls);
        Assert.True(client.IsSecure);
        var inbox = client.Inbox;
        await inbox.OpenAsync(FolderAccess.ReadOnly);
        Assert.Equal(1, inbox.Count);
        using var stream = await inbox.GetStreamAsync(0, "");
        using var ms = new MemoryStream();
        await stream.CopyToAsync(ms);
        Stored.AssertIsTracePlus(ms.ToArray(), Mailkit.WireBytes(message), "sender@remote.test");
        var summary = (await inbox.FetchAsync(0, -1, MessageSummaryItems.Envelope | MessageSummaryItems.BodyStructure | MessageSummaryItems.Size | MessageSummaryItems.UniqueId | MessageSummaryItems.Flags | MessageSummaryItems.InternalDate))[0];
        Assert.Equal("Grüße", summary.Envelope!.Subject);
        Assert.Equal((uint)ms.Length, summary.Size);
        Assert.Equal("text", summary.Body!.ContentType.MediaType, ignoreCase: true);
        Assert.False(summary.Flags!.Value.HasFlag(MessageFlags.Seen));
        await client.DisconnectAsync(true);
    }

    [Fact]
    public async Task New_mailbox_has_special_use_folders_and_subscriptions()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        using var client = await ImapClients.MailKitAsync(node);
        Assert.True(client.Capabilities.HasFlag(ImapCapabilities.SpecialUse));
        Assert.Equal("Sent", client.GetFolder(SpecialFolder.Sent)!.FullName);
        Assert.Equal("Drafts", client.GetFolder(SpecialFolder.Drafts)!.FullName);
        Assert.Equal("Trash", client.GetFolder(SpecialFolder.Trash)!.FullName);
        Assert.Equal("Junk", client.GetFolder(SpecialFolder.Junk)!.FullName);
        Assert.Equal("Archive", client.GetFolder(SpecialFolder.Archive)!.FullName);
        var personal = client.GetFolder(client.PersonalNamespaces[0]);
        var subscribed = await personal.GetSubfoldersAsync(subscribedOnly: true);
        Assert.Equal(["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"], subscribed.Select(f => f.FullName).Order());
    }

    [Fact]
    public async Task Folders_create_rename_with_children_and_delete_with_unicode_names()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        using var client = await ImapClients.MailKitAsync(node);
        var root = client.GetFolder(client.PersonalNamespaces[0]);
        var projects = (await root.CreateAsync("Projekte", true))!;
        var child = (await projects.CreateAsync("Entwürfe 日本", true))!;
        Assert.Equal("Projekte/Entwürfe 日本", child.FullName);
        await child.AppendAsync(Text("in child", "x"));

        await projects.RenameAsync(root, "Archiv 2026");
        var renamedChild = await client.GetFolderAsync("Archiv 2026/Entwürfe 日本");
        await renamedChild.OpenAsync(FolderAccess.ReadOnly);
        Assert.Equal(1, renamedChild.Count);
        await renamedChild.CloseAsync();

        await renamedChild.DeleteAsync();
        var names = (await root.GetSubfoldersAsync()).Select(f => f.FullName).ToList();
        Assert.Contains("Archiv 2026", names);
        Assert.DoesNotContain("Projekte", names);
        Assert.Empty(await (await client.GetFolderAsync("Archiv 2026")).GetSubfoldersAsync());
    }

    [Fact]
    public async Task Append_multi_copy_move_flags_and_expunge_with_uidplus()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        using var client = await ImapClients.MailKitAsync(node);
        var inbox = client.Inbox;
        var uids = new List<UniqueId>();
        for (int i = 0; i < 3; i++)
            uids.Add((await inbox.AppendAsync(Text($"m{i}", $"body {i}"), MessageFlags.Seen))!.Value);
        Assert.Equal([1u, 2u, 3u], uids.Select(u => u.Id));

        await inbox.OpenAsync(FolderAccess.ReadWrite);
        var archive = client.GetFolder(SpecialFolder.Archive)!;
        var copied = await inbox.CopyToAsync(uids[0], archive);
        Assert.NotNull(copied);
        var moved = await inbox.MoveToAsync([uids[1]], archive);
        Assert.Equal(uids[1], moved.Source[0]);
        Assert.Equal(2, inbox.Count);

        await inbox.AddFlagsAsync(uids[2], MessageFlags.Flagged | MessageFlags.Deleted, silent: false);
        await inbox.ExpungeAsync([uids[2]]);
        Assert.Equal(1, inbox.Count);

        await archive.OpenAsync(FolderAccess.ReadOnly);
        Assert.Equal(2, archive.Count);
        var subjects = (await archive.FetchAsync(0, -1, MessageSummaryItems.Envelope | MessageSummaryItems.Flags)).Select(s => s.Envelope!.Subject).ToList();
        Assert.Equal(["m0", "m1"], subjects);
    }

    [Fact]
    public async Task Idle_sees_smtp_delivery_and_expunge_from_another_session()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        using var watcher = await ImapClients.MailKitAsync(node);
        using var other = await ImapClients.MailKitAsync(node, tls: SecureSocketOptions.SslOnConnect);
        var inbox = watcher.Inbox;
        await inbox.OpenAsync(FolderAccess.ReadWrite);
        Assert.Equal(0, inbox.Count);

        var arrived = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        var expunged = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        inbox.CountChanged += (_, _) => { if (inbox.Count == 1) arrived.TrySetResult(1); };
        inbox.MessageExpunged += (_, e) => expunged.TrySetResult(e.Index);
        using var done = new CancellationTokenSource();
        var idle = watcher.IdleAsync(done.Token);

        await Mailkit.SendAsync(node.Smtp, Text("while idling", "hello"));
        await arrived.Task.WaitAsync(TimeSpan.FromSeconds(20));

        var otherInbox = other.Inbox;
        await otherInbox.OpenAsync(FolderAccess.ReadWrite);
        await otherInbox.AddFlagsAsync(0, MessageFlags.Deleted, silent: true);
        await otherInbox.ExpungeAsync();
        Assert.Equal(0, await expunged.Task.WaitAsync(TimeSpan.FromSeconds(20)));

        await done.CancelAsync();
        await idle;
        Assert.Equal(0, inbox.Count);
    }

    [Fact]
    public async Task Flag_change_in_one_session_appears_in_the_other_at_the_next_command()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        await Mailkit.SendAsync(node.Smtp, Text("one", "1"));
        using var a = await ImapClients.MailKitAsync(node);
        using var b = await ImapClients.MailKitAsync(node);
        await a.Inbox.OpenAsync(FolderAccess.ReadWrite);
        await b.Inbox.OpenAsync(FolderAccess.ReadWrite);
        var changed = new TaskCompletionSource<MessageFlags>(TaskCreationOptions.RunContinuationsAsynchronously);
        b.Inbox.MessageFlagsChanged += (_, e) => changed.TrySetResult(e.Flags);
        await a.Inbox.AddFlagsAsync(0, MessageFlags.Flagged, silent: true);
        await b.NoOpAsync();
        Assert.True((await changed.Task.WaitAsync(TimeSpan.FromSeconds(10))).HasFlag(MessageFlags.Flagged));
    }

    [Fact]
    public async Task Search_sort_and_thread()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        using var client = await ImapClients.MailKitAsync(node);
        var inbox = client.Inbox;
        var root = Text("Project kickoff", "Let us meet on Tuesday about the zebra migration.", "carol@remote.test");
        root.MessageId = "root@test";
        root.Date = new DateTimeOffset(2026, 1, 1, 10, 0, 0, TimeSpan.Zero);
        var reply = Text("Re: Project kickoff", "Tuesday works.", "bob@remote.test");
        reply.MessageId = "reply@test";
        reply.InReplyTo = "root@test";
        reply.References.Add("root@test");
        reply.Date = root.Date.AddHours(1);
        var other = Text("Invoice", "Please find the invoice attached.", "acme@remote.test");
        other.Date = root.Date.AddHours(2);
        foreach (var m in new[] { other, root, reply }) await inbox.AppendAsync(m);
        await inbox.OpenAsync(FolderAccess.ReadWrite);

        Assert.Equal([2u], (await inbox.SearchAsync(SearchQuery.BodyContains("ZEBRA"))).Select(u => u.Id));
        Assert.Equal([2u, 3u], (await inbox.SearchAsync(SearchQuery.SubjectContains("kickoff"))).Select(u => u.Id));
        Assert.Equal([1u], (await inbox.SearchAsync(SearchQuery.FromContains("acme"))).Select(u => u.Id));
        Assert.Equal([1u, 2u, 3u], (await inbox.SearchAsync(SearchQuery.NotSeen)).Select(u => u.Id));
        var sorted = await inbox.SortAsync(SearchQuery.All, [OrderBy.Date]);
        Assert.Equal([2u, 3u, 1u], sorted.Select(u => u.Id));
        var threads = await inbox.ThreadAsync(ThreadingAlgorithm.References, SearchQuery.All);
        Assert.Equal(2, threads.Count);
        var kickoff = threads.Single(t => t.UniqueId?.Id == 2u);
        Assert.Equal(3u, kickoff.Children.Single().UniqueId!.Value.Id);
    }

    [Fact]
    public async Task Quota_is_reported_and_append_over_it_fails_with_OVERQUOTA()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        node.Directory.UpdateMailbox($"alice@{TestNode.Domain}", null, 10_000, null);
        using var client = await ImapClients.MailKitAsync(node);
        var quota = await client.Inbox.GetQuotaAsync();
        Assert.Equal(9u, quota.StorageLimit); // 10 000 bytes in units of 1024
        var ex = await Assert.ThrowsAsync<ImapCommandException>(() => client.Inbox.AppendAsync(Text("big", new string('x', 20_000))));
        Assert.Equal(ImapCommandResponse.No, ex.Response);
        await using (var raw = await RawImap.LoginAsync(node.Imap))
        {
            var r = await raw.CommandAsync("APPEND INBOX {30000+}\r\n" + "Subject: big\r\n\r\n" + new string('x', 30000 - 16));
            Assert.Contains("t2 NO [OVERQUOTA]", r);
        }
        await client.Inbox.OpenAsync(FolderAccess.ReadOnly);
        Assert.Equal(0, client.Inbox.Count);
    }

    [Fact]
    public async Task Condstore_and_qresync_resynchronize_a_returning_client()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        for (int i = 0; i < 4; i++) await Mailkit.SendAsync(node.Smtp, Text($"m{i}", "x"));
        ulong modSeq;
        uint validity;
        using (var first = await ImapClients.MailKitAsync(node))
        {
            await first.EnableQuickResyncAsync();
            await first.Inbox.OpenAsync(FolderAccess.ReadWrite);
            modSeq = first.Inbox.HighestModSeq;
            validity = first.Inbox.UidValidity;
            Assert.True(modSeq > 0);
        }
        using (var other = await ImapClients.MailKitAsync(node))
        {
            await other.Inbox.OpenAsync(FolderAccess.ReadWrite);
            await other.Inbox.AddFlagsAsync(new UniqueId(2), MessageFlags.Seen, silent: true);
            await other.Inbox.AddFlagsAsync(new UniqueId(3), MessageFlags.Deleted, silent: true);
            await other.Inbox.ExpungeAsync();
            // UNCHANGEDSINCE: message 1 is as the first session left it, message 2 is not.
            var notUpdated = await other.Inbox.AddFlagsAsync([new UniqueId(1), new UniqueId(2)], modSeq, MessageFlags.Answered, silent: true);
            Assert.Equal([2u], notUpdated.Select(u => u.Id));
        }
        using var back = await ImapClients.MailKitAsync(node);
        await back.EnableQuickResyncAsync();
        var vanished = new List<uint>();
        var flagged = new List<uint>();
        back.Inbox.MessagesVanished += (_, e) => vanished.AddRange(e.UniqueIds.Select(u => u.Id));
        back.Inbox.MessageFlagsChanged += (_, e) => { if (e.UniqueId is { } u) flagged.Add(u.Id); };
        await back.Inbox.OpenAsync(FolderAccess.ReadWrite, validity, modSeq, [new UniqueId(1), new UniqueId(2), new UniqueId(3), new UniqueId(4)]);
        Assert.Equal([3u], vanished);
        Assert.Contains(2u, flagged);
        Assert.True(back.Inbox.HighestModSeq > modSeq);
    }

    [Fact]
    public async Task Compress_deflate_carries_the_session()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        await Mailkit.SendAsync(node.Smtp, Text("compressed", new string('z', 50_000)));
        using var client = await ImapClients.MailKitAsync(node);
        Assert.True(client.Capabilities.HasFlag(ImapCapabilities.Compress));
        await client.CompressAsync();
        await client.Inbox.OpenAsync(FolderAccess.ReadOnly);
        var message = await client.Inbox.GetMessageAsync(0);
        Assert.Equal("compressed", message.Subject);
        Assert.Contains(new string('z', 1000), message.TextBody);
        await client.DisconnectAsync(true);
    }

    [Fact]
    public async Task Partial_and_section_fetches_match_the_message()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("a@remote.test"));
        message.To.Add(MailboxAddress.Parse($"alice@{TestNode.Domain}"));
        message.Subject = "parts";
        var body = new BodyBuilder { TextBody = "plain part\r\n" };
        body.Attachments.Add("data.bin", Enumerable.Range(0, 3000).Select(i => (byte)i).ToArray());
        message.Body = body.ToMessageBody();
        using var client = await ImapClients.MailKitAsync(node);
        var uid = (await client.Inbox.AppendAsync(message))!.Value;
        await client.Inbox.OpenAsync(FolderAccess.ReadOnly);
        var summary = (await client.Inbox.FetchAsync([uid], MessageSummaryItems.BodyStructure))[0];
        var attachment = summary.Attachments.Single()!;
        var part = (MimePart)await client.Inbox.GetBodyPartAsync(uid, attachment);
        using var decoded = new MemoryStream();
        await part.Content!.DecodeToAsync(decoded);
        Assert.Equal(Enumerable.Range(0, 3000).Select(i => (byte)i), decoded.ToArray());
        using var partial = await client.Inbox.GetStreamAsync(uid, 10, 20);
        using var ms = new MemoryStream();
        await partial.CopyToAsync(ms);
        Assert.Equal(20, ms.Length);
    }
}
