using System.Text;
using Appliance.Directory;
using Appliance.Store;
using Microsoft.Data.Sqlite;

namespace Appliance.Tests.Store;

/// <summary>The folder-level store API as the IMAP server uses it (folders, APPEND, COPY/MOVE, STORE, QRESYNC, SEARCH, SORT).</summary>
public sealed class FolderApiTests : IAsyncLifetime
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly long[] One = [1], Two = [2], Both = [1, 2];
    private readonly string _root = Path.Combine(Path.GetTempPath(), "appliance-folders-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly MailUser _alice = new("alice@example.test", "a", 0);
    private MailStore _store = null!;

    private string PartitionDir => Path.Combine(_root, "units", "store-a");

    public async Task InitializeAsync()
    {
        _store = Open();
        await _store.CreateMailboxAsync(_alice);
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        SqliteConnection.ClearAllPools();
        try { System.IO.Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
    }

    private MailStore Open() => MailStore.Open(_root, ["a"], 1 << 20);

    private async Task ReopenAsync()
    {
        // No ClearAllPools here: a disposed partition must clear its own pool (reopening over
        // stale pooled connections to a deleted index.db reads "no such table").
        await _store.DisposeAsync();
        _store = Open();
    }

    private static NewMessage Message(string text, MessageFlags flags = MessageFlags.None, params string[] keywords)
    {
        var bytes = Encoding.UTF8.GetBytes(text.ReplaceLineEndings("\r\n"));
        return new NewMessage(bytes, MessageStructure.Parse(new MemoryStream(bytes)), DateTimeOffset.FromUnixTimeSeconds(1_700_000_000), flags, keywords);
    }

    private static NewMessage Simple(string subject, string body = "hello") =>
        Message($"From: Sender <s@remote.test>\nTo: alice@example.test\nSubject: {subject}\n\n{body}\n");

    private async Task<long[]> AppendAsync(string folder, params NewMessage[] messages) =>
        (await _store.AppendAsync(_alice, folder, messages, None))!.Uids;

    private int BlobFiles() => System.IO.Directory.EnumerateFiles(Path.Combine(PartitionDir, "blobs"), "*", SearchOption.AllDirectories).Count();

    private async Task<string[]> NamesAsync() => [.. (await _store.ListFoldersAsync(_alice, None)).Select(f => f.Name)];

    [Fact]
    public async Task NewMailbox_HasInboxAndTheSpecialUseFolders_AllSubscribed()
    {
        var folders = await _store.ListFoldersAsync(_alice, None);

        Assert.Equal(["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"], folders.Select(f => f.Name));
        Assert.Equal(@"\Sent", folders.Single(f => f.Name == "Sent").SpecialUse);
        Assert.Null(folders[0].SpecialUse);
        Assert.All(folders, f => Assert.True(f.Subscribed));
        Assert.Equal(["Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"], await _store.ListSubscriptionsAsync(_alice, None));
    }

    [Fact]
    public async Task ListFolders_GivesAnAccountThatHasNone_ItsDefaultFolders()
    {
        // A mailbox provisioned since (provisioning writes only the directory) gets its folders
        // at its first listing, as at its first IMAP login.
        var bob = new MailUser("bob@example.test", "a", 0);
        Assert.Equal(["INBOX", "Archive", "Drafts", "Junk", "Sent", "Trash"], (await _store.ListFoldersAsync(bob, None)).Select(f => f.Name));
        Assert.NotNull(await _store.GetFolderInfoAsync(bob, "inbox", None));
    }

    [Fact]
    public async Task CreateRenameDelete_FollowTheRfc()
    {
        await _store.CreateFolderAsync(_alice, "Work/", null, None);
        await _store.CreateFolderAsync(_alice, "Work/2024", null, None);
        await _store.CreateFolderAsync(_alice, "Workshop", null, None);
        await Assert.ThrowsAsync<FolderExistsException>(() => _store.CreateFolderAsync(_alice, "Work", null, None));
        await Assert.ThrowsAsync<FolderExistsException>(() => _store.CreateFolderAsync(_alice, "inbox", null, None));
        var uidValidity = (await _store.GetFolderInfoAsync(_alice, "Work/2024", None))!.UidValidity;
        await AppendAsync("Work/2024", Simple("kept"));
        await _store.SetSubscribedAsync(_alice, "Work/2024", true, None);

        // Children move with their parent, keeping UIDVALIDITY and UIDs; a sibling with the same prefix does not.
        await _store.RenameFolderAsync(_alice, "Work", "Job", None);
        var names = await NamesAsync();
        Assert.Contains("Job/2024", names);
        Assert.Contains("Workshop", names);
        Assert.DoesNotContain("Work", names);
        var moved = (await _store.GetFolderInfoAsync(_alice, "Job/2024", None))!;
        Assert.Equal(uidValidity, moved.UidValidity);
        Assert.Equal(1, moved.Messages);
        Assert.True(moved.Subscribed);
        await Assert.ThrowsAsync<FolderExistsException>(() => _store.RenameFolderAsync(_alice, "Job", "Workshop", None));
        await Assert.ThrowsAsync<FolderNotFoundException>(() => _store.RenameFolderAsync(_alice, "Nope", "Other", None));

        // Superior names are created as needed (RFC 9051 §6.3.4, §6.3.6).
        await _store.CreateFolderAsync(_alice, "Deep/er/est", null, None);
        await _store.RenameFolderAsync(_alice, "Deep/er", "Far/away", None);
        Assert.Equal(["Deep", "Far", "Far/away", "Far/away/est"], (await NamesAsync()).Where(n => n.StartsWith("Deep", StringComparison.Ordinal) || n.StartsWith("Far", StringComparison.Ordinal)));

        // Deleting a parent leaves its child and frees the messages of the deleted folder only.
        await AppendAsync("Job", Simple("gone"));
        await _store.DeleteFolderAsync(_alice, "Job", None);
        Assert.Contains("Job/2024", await NamesAsync());
        Assert.DoesNotContain("Job", await NamesAsync());
        Assert.Equal(1, _store.Usage(_alice).Messages);
        Assert.Equal(1, BlobFiles());
        await Assert.ThrowsAsync<FolderNotFoundException>(() => _store.DeleteFolderAsync(_alice, "Job", None));
        await Assert.ThrowsAsync<InvalidOperationException>(() => _store.DeleteFolderAsync(_alice, "Inbox", None));
    }

    [Fact]
    public async Task RenamingInbox_MovesItsMessages_AndLeavesAnEmptyInbox()
    {
        await AppendAsync("INBOX", Simple("one"), Simple("two"));
        var inbox = (await _store.GetFolderInfoAsync(_alice, "INBOX", None))!;

        await _store.RenameFolderAsync(_alice, "inbox", "Old Mail", None);

        var after = (await _store.GetFolderInfoAsync(_alice, "INBOX", None))!;
        Assert.Equal(0, after.Messages);
        Assert.Equal(inbox.UidValidity, after.UidValidity);
        Assert.Equal(3, after.UidNext);
        var old = (await _store.GetFolderInfoAsync(_alice, "Old Mail", None))!;
        Assert.Equal(2, old.Messages);
        // The expunge from INBOX is visible to a QRESYNC client.
        var changes = await _store.GetChangesAsync(_alice, "INBOX", inbox.HighestModSeq, None);
        Assert.Equal([1L, 2L], changes.Expunged);
        Assert.Equal([1L, 2L], (await _store.SearchTextAsync(_alice, "Old Mail", TextField.Body, "hello", null, None)).Order());
    }

    [Fact]
    public async Task RecreatedFolder_GetsANewUidValidity()
    {
        await _store.CreateFolderAsync(_alice, "Projects", null, None);
        var first = (await _store.GetFolderInfoAsync(_alice, "Projects", None))!;
        await AppendAsync("Projects", Simple("x"));
        await _store.DeleteFolderAsync(_alice, "Projects", None);
        await _store.CreateFolderAsync(_alice, "Projects", null, None);

        var second = (await _store.GetFolderInfoAsync(_alice, "Projects", None))!;
        Assert.True(second.UidValidity > first.UidValidity);
        Assert.Equal(1, second.UidNext);
        Assert.Equal(0, second.Messages);
        Assert.Empty((await _store.GetChangesAsync(_alice, "Projects", 0, None)).Expunged);
    }

    [Fact]
    public async Task Append_SeveralMessages_KeepsTheirStateAndReturnsAppendUid()
    {
        var date = DateTimeOffset.FromUnixTimeSeconds(1_600_000_000);
        var draft = Message("Subject: draft\n\nbody\n", MessageFlags.Draft | MessageFlags.Seen, "$Forwarded", "work") with { InternalDate = date };

        var seq = _store.Partition("a").LastSeq;
        var result = (await _store.AppendAsync(_alice, "Drafts", [Simple("a"), draft], None))!;

        // One journal record: after a crash the MULTIAPPEND is there entirely or not at all.
        var record = Assert.Single(_store.Partition("a").ReadJournal(seq));
        Assert.Equal(2, Assert.IsType<BatchOp>(record.Op).Ops.Length);

        var info = (await _store.GetFolderInfoAsync(_alice, "Drafts", None))!;
        Assert.Equal(info.UidValidity, result.UidValidity);
        Assert.Equal([1L, 2L], result.Uids);
        var list = await _store.ListAsync(_alice, "Drafts", None);
        Assert.Equal(MessageFlags.Draft | MessageFlags.Seen, list[1].Flags);
        Assert.Equal(["$Forwarded", "work"], list[1].Keywords);
        Assert.Equal(date, list[1].InternalDate);
        Assert.Equal((2, 1, 0), (info.Messages, info.Unseen, info.Deleted));
        Assert.Equal(list.Sum(m => m.Size), info.Size);
        Assert.Equal((info.Size, 2L), _store.Usage(_alice));
        await Assert.ThrowsAsync<FolderNotFoundException>(() => _store.AppendAsync(_alice, "Nope", [Simple("x")], None));
    }

    [Fact]
    public async Task Append_OverQuota_StoresNothingAtAll()
    {
        var small = _alice with { QuotaBytes = 300 };
        await AppendAsync("INBOX", Simple("fits"));
        var before = _store.Usage(small);

        var result = await _store.AppendAsync(small, "INBOX", [Simple("one"), Simple("two", new string('x', 200))], None);

        Assert.Null(result);
        Assert.Equal(before, _store.Usage(small));
        Assert.Single(await _store.ListAsync(small, "INBOX", None));
        Assert.Equal(1, BlobFiles());
        Assert.Equal(2, (await _store.GetFolderInfoAsync(small, "INBOX", None))!.UidNext);
    }

    [Fact]
    public async Task CopyAndMove_ReturnCopyUid_PreserveState_AndShareTheFile()
    {
        await AppendAsync("INBOX", Simple("one"), Simple("two"), Simple("three"));
        await _store.StoreFlagsAsync(_alice, "INBOX", [2], FlagMode.Add, MessageFlags.Flagged, ["todo"], null, None);
        await AppendAsync("Archive", Simple("already there"));
        var inboxBefore = (await _store.GetFolderInfoAsync(_alice, "INBOX", None))!;

        var copy = (await _store.CopyAsync(_alice, "INBOX", [3, 2, 99], "Archive", move: false, None))!;

        var archive = (await _store.GetFolderInfoAsync(_alice, "Archive", None))!;
        Assert.Equal(archive.UidValidity, copy.UidValidity);
        Assert.Equal([2L, 3L], copy.SourceUids);
        Assert.Equal([2L, 3L], copy.TargetUids);
        var copied = await _store.ListAsync(_alice, "Archive", None);
        Assert.Equal(MessageFlags.Flagged, copied[1].Flags);
        Assert.Equal(["todo"], copied[1].Keywords);
        Assert.Equal(4, BlobFiles()); // copies share the message file
        Assert.Equal(6, _store.Usage(_alice).Messages);
        Assert.Null(await _store.CopyAsync(_alice with { QuotaBytes = 10 }, "INBOX", [1], "Archive", move: false, None));

        var move = (await _store.CopyAsync(_alice, "INBOX", [1, 2], "Trash", move: true, None))!;

        Assert.Equal([1L, 2L], move.TargetUids);
        Assert.Equal([3L], (await _store.ListAsync(_alice, "INBOX", None)).Select(m => m.Uid));
        var changes = await _store.GetChangesAsync(_alice, "INBOX", inboxBefore.HighestModSeq, None);
        Assert.Equal([1L, 2L], changes.Expunged);
        Assert.True(changes.HighestModSeq > inboxBefore.HighestModSeq);
        Assert.Equal(6, _store.Usage(_alice).Messages);
        await Assert.ThrowsAsync<FolderNotFoundException>(() => _store.CopyAsync(_alice, "INBOX", [3], "Nope", move: false, None));

        // A shared file goes only with its last message.
        await _store.ExpungeAsync(_alice, "Trash", [2], None);
        Assert.Equal(4, BlobFiles());
        await _store.ExpungeAsync(_alice, "Archive", [2], None);
        Assert.Equal(3, BlobFiles());
    }

    [Fact]
    public async Task StoreFlags_OnlyChangedMessagesGetANewModSeq_AndUnchangedSinceIsHonoured()
    {
        await AppendAsync("INBOX", Simple("1"), Simple("2"), Simple("3"));
        await _store.StoreFlagsAsync(_alice, "INBOX", [1], FlagMode.Add, MessageFlags.Seen, [], null, None);
        var list = await _store.ListAsync(_alice, "INBOX", None);
        var start = (await _store.GetFolderInfoAsync(_alice, "INBOX", None))!.HighestModSeq;

        var result = await _store.StoreFlagsAsync(_alice, "INBOX", [1, 2, 3], FlagMode.Add, MessageFlags.Seen, ["Work"], null, None);

        Assert.Equal([1L, 2L, 3L], result.Updated.Select(u => u.Uid));
        Assert.All(result.Updated, u => Assert.Equal(start + 1, u.ModSeq));
        var again = await _store.StoreFlagsAsync(_alice, "INBOX", [1, 2], FlagMode.Add, MessageFlags.Seen, ["work"], null, None);
        Assert.Empty(again.Updated);
        Assert.Equal(start + 1, (await _store.GetFolderInfoAsync(_alice, "INBOX", None))!.HighestModSeq);

        // RFC 7162 §3.1.3: message 2 changed after the client's MODSEQ, so it is left alone.
        await _store.StoreFlagsAsync(_alice, "INBOX", [2], FlagMode.Add, MessageFlags.Flagged, [], null, None);
        var conditional = await _store.StoreFlagsAsync(_alice, "INBOX", [1, 2], FlagMode.Remove, MessageFlags.Seen, ["WORK"], start + 1, None);
        Assert.Equal([2L], conditional.Modified);
        var one = Assert.Single(conditional.Updated);
        Assert.Equal((1L, MessageFlags.None), (one.Uid, one.Flags));
        Assert.Empty(one.Keywords);
        list = await _store.ListAsync(_alice, "INBOX", None);
        Assert.Equal(MessageFlags.Seen | MessageFlags.Flagged, list[1].Flags);
        Assert.Equal(["Work"], list[1].Keywords);

        var replaced = await _store.StoreFlagsAsync(_alice, "INBOX", [3], FlagMode.Replace, MessageFlags.Answered, [], null, None);
        Assert.Equal(MessageFlags.Answered, replaced.Updated[0].Flags);
        Assert.Empty((await _store.ListAsync(_alice, "INBOX", None))[2].Keywords);
    }

    [Fact]
    public async Task GetChanges_ReportsChangedMessagesAndExpungedUidsSinceAModSeq()
    {
        await AppendAsync("INBOX", Simple("1"), Simple("2"), Simple("3"), Simple("4"));
        var since = (await _store.GetFolderInfoAsync(_alice, "INBOX", None))!.HighestModSeq;
        await _store.StoreFlagsAsync(_alice, "INBOX", [3], FlagMode.Add, MessageFlags.Seen, [], null, None);
        await _store.ExpungeAsync(_alice, "INBOX", [1], None);
        await AppendAsync("INBOX", Simple("5"));

        var changes = await _store.GetChangesAsync(_alice, "INBOX", since, None);

        Assert.Equal([3L, 5L], changes.Changed.Select(m => m.Uid));
        Assert.Equal([1L], changes.Expunged);
        Assert.Equal(6, changes.UidNext);
        Assert.Equal(changes.Changed.Max(m => m.ModSeq), changes.HighestModSeq);
        Assert.Empty((await _store.GetChangesAsync(_alice, "INBOX", changes.HighestModSeq, None)).Changed);
    }

    private const string Encoded = """
        From: =?UTF-8?Q?J=C3=B6rg_M=C3=BCller?= <joerg@remote.test>
        To: Alice <alice@example.test>
        Cc: team@example.test
        Subject: =?UTF-8?B?UmU6IFtmd2Q6IEdyw7zDn2UgYXVzIE3DvG5jaGVuXQ==?=
        Date: Tue, 14 Nov 2023 10:00:00 +0100
        Message-ID: <abc@remote.test>
        In-Reply-To: <parent@remote.test>
        References: <root@remote.test> <parent@remote.test>
        X-Ticket: ZX-42
        MIME-Version: 1.0
        Content-Type: multipart/alternative; boundary=b

        --b
        Content-Type: text/plain; charset=utf-8
        Content-Transfer-Encoding: quoted-printable

        Die Stra=C3=9Fenbahn f=C3=A4hrt nach M=C3=9CNCHEN.
        --b
        Content-Type: text/html; charset=utf-8
        Content-Transfer-Encoding: base64

        PHA+PGI+WmVicmE8L2I+IGNyb3NzaW5nPC9wPg==
        --b--

        """;

    [Fact]
    public async Task SearchText_MatchesDecodedSubstrings_CaseInsensitively()
    {
        await AppendAsync("INBOX", Message(Encoded), Simple("plain", "nothing to see"));

        async Task<long[]> Search(TextField field, string text, string? header = null) =>
            [.. (await _store.SearchTextAsync(_alice, "INBOX", field, text, header, None)).Order()];

        Assert.Equal(One, await Search(TextField.Subject, "grüße"));
        Assert.Equal(One, await Search(TextField.From, "MÜLLER"));
        Assert.Equal(One, await Search(TextField.From, "joerg@remote"));
        Assert.Equal(Both, await Search(TextField.To, "ALICE"));
        Assert.Equal(One, await Search(TextField.Cc, "team@"));
        Assert.Empty(await Search(TextField.Bcc, "team"));
        Assert.Equal(One, await Search(TextField.Body, "straßenbahn fährt"));
        Assert.Equal(One, await Search(TextField.Body, "münchen"));
        Assert.Equal(One, await Search(TextField.Body, "zebra crossing")); // HTML, base64, tags stripped
        Assert.Empty(await Search(TextField.Body, "<b>"));
        Assert.Equal(Two, await Search(TextField.Body, "NOTHING"));
        Assert.Equal(One, await Search(TextField.Body, "ße")); // shorter than a trigram
        Assert.Equal(Both, await Search(TextField.Text, "e")); // header block + body
        Assert.Equal(One, await Search(TextField.Text, "X-Ticket"));
        Assert.Empty(await Search(TextField.Body, "X-Ticket"));
        Assert.Equal(One, await Search(TextField.Header, "zx-4", "x-ticket"));
        Assert.Equal(One, await Search(TextField.Header, "", "X-Ticket"));
        Assert.Empty(await Search(TextField.Header, "zx-4", "Subject"));
        Assert.Equal(One, await Search(TextField.Header, "aus münchen", "Subject"));
        Assert.Empty(await Search(TextField.Body, "\"unbalanced"));
    }

    [Fact]
    public async Task SortInfo_HasRfc5256Keys()
    {
        await AppendAsync("INBOX", Message(Encoded), Message("Subject: no date\n\nx\n"));

        var info = await _store.GetSortInfoAsync(_alice, "INBOX", [1, 2, 7], None);

        Assert.Equal(2, info.Count);
        var m = info[0];
        Assert.Equal("grüße aus münchen", m.BaseSubject);
        Assert.True(m.SubjectIsReply);
        Assert.Equal(DateTimeOffset.Parse("2023-11-14T09:00:00Z", System.Globalization.CultureInfo.InvariantCulture), m.SentDate);
        Assert.Equal(("joerg", "alice", "team"), (m.From, m.To, m.Cc));
        Assert.Equal(("Jörg Müller", "Alice"), (m.DisplayFrom, m.DisplayTo));
        Assert.Equal(("abc@remote.test", "parent@remote.test"), (m.MessageId, m.InReplyTo));
        Assert.Equal(["root@remote.test", "parent@remote.test"], m.References);
        Assert.Equal(DateTimeOffset.FromUnixTimeSeconds(1_700_000_000), info[1].SentDate);
        Assert.Equal(("no date", false, ""), (info[1].BaseSubject, info[1].SubjectIsReply, info[1].From));
    }

    [Theory]
    [InlineData("Re: [fwd: Hello]", "hello", true)]
    [InlineData("RE: Fwd: re:  test  (fwd) ", "test", true)]
    [InlineData("[list] Re: [list] topic", "topic", true)]
    [InlineData("[only a blob]", "[only a blob]", false)]
    [InlineData("Regarding things", "regarding things", false)]
    [InlineData("[Fwd: [fwd: Nested]]", "nested", true)]
    public void BaseSubject_FollowsRfc5256(string subject, string expected, bool reply)
    {
        Assert.Equal(expected, MessageIndex.BaseSubjectOf(subject, out var isReply));
        Assert.Equal(reply, isReply);
    }

    [Fact]
    public async Task GetStructures_ReturnsTheStoredStructure()
    {
        var message = Message(Encoded);
        await AppendAsync("INBOX", message);

        var structures = await _store.GetStructuresAsync(_alice, "INBOX", [1, 5], None);

        Assert.Equal(message.Structure, Assert.Single(structures).Value);
    }

    [Fact]
    public async Task ChangeFeed_TellsSubscribersWhichFolderChanged()
    {
        var seen = new List<string>();
        using var subscription = _store.Changes.Subscribe(_alice.Address, f => { lock (seen) seen.Add(f); });
        var structure = MessageStructure.Parse(new MemoryStream("Subject: x\r\n\r\ny\r\n"u8.ToArray()));

        await _store.DeliverAsync(_alice, "INBOX", "Subject: x\r\n\r\ny\r\n"u8.ToArray(), structure, None);
        await AppendAsync("Sent", Simple("a"));
        await _store.StoreFlagsAsync(_alice, "Sent", [1], FlagMode.Add, MessageFlags.Seen, [], null, None);
        await _store.CopyAsync(_alice, "Sent", [1], "Archive", move: true, None);
        await _store.ExpungeAsync(_alice, "INBOX", [1], None);

        lock (seen) Assert.Equal(["INBOX", "Sent", "Sent", "Archive", "Sent", "INBOX"], seen);
    }

    /// <summary>Folder, flag, tombstone and full-text state after more history than every op type.</summary>
    private async Task BuildHistoryAsync()
    {
        await _store.CreateFolderAsync(_alice, "Work", @"\Flagged", None);
        await _store.CreateFolderAsync(_alice, "Work/Old", null, None);
        await AppendAsync("INBOX", Message(Encoded), Simple("two"), Simple("three"));
        await _store.StoreFlagsAsync(_alice, "INBOX", [1, 2], FlagMode.Add, MessageFlags.Seen, ["$label1"], null, None);
        await _store.CopyAsync(_alice, "INBOX", [1], "Work", move: false, None);
        await _store.CopyAsync(_alice, "INBOX", [2], "Work/Old", move: true, None);
        await _store.ExpungeAsync(_alice, "INBOX", [3], None);
        await _store.RenameFolderAsync(_alice, "Work", "Job", None);
        await _store.SetSubscribedAsync(_alice, "Job", true, None);
        await _store.SetSubscribedAsync(_alice, "Nowhere", true, None);
        await _store.SetSubscribedAsync(_alice, "Junk", false, None);
        await _store.DeleteFolderAsync(_alice, "Drafts", None);
        await AppendAsync("INBOX", Simple("four"));
        await _store.RenameFolderAsync(_alice, "INBOX", "Saved", None);
    }

    private async Task<string> StateAsync()
    {
        var sb = new StringBuilder(await _store.Partition("a").DumpAsync());
        foreach (var f in await _store.ListFoldersAsync(_alice, None))
        {
            sb.Append(f).Append('\n');
            var changes = await _store.GetChangesAsync(_alice, f.Name, 0, None);
            sb.Append("expunged ").AppendJoin(',', changes.Expunged).Append('\n');
            sb.Append("münchen ").AppendJoin(',', (await _store.SearchTextAsync(_alice, f.Name, TextField.Body, "münchen", null, None)).Order()).Append('\n');
        }
        sb.AppendJoin(',', await _store.ListSubscriptionsAsync(_alice, None));
        return sb.ToString();
    }

    [Fact]
    public async Task ReplayFromTheJournal_ReproducesFoldersFlagsTombstonesAndSearch()
    {
        await BuildHistoryAsync();
        var expected = await StateAsync();
        Assert.Contains("münchen 1", expected); // the copy in Job is searchable
        Assert.Contains("Nowhere", expected);

        // A lost index: everything is rebuilt from the journal (message texts re-extracted).
        await _store.DisposeAsync();
        foreach (var f in System.IO.Directory.GetFiles(PartitionDir, "index.db*")) File.Delete(f);
        _store = Open();
        Assert.Equal(expected, await StateAsync());

        // A replica fed the journal agrees.
        await using var replica = Partition.Open("a", Path.Combine(_root, "replica"), 1 << 20);
        replica.IsPrimary = false;
        await replica.ApplyReplicatedAsync(_store.Partition("a").ReadJournal(0).ToList());
        Assert.Equal(await _store.Partition("a").DumpAsync(), await replica.DumpAsync());
    }

    [Fact]
    public async Task AnIndexFromBeforeTheFolderApi_IsUpgradedAndBackfilled()
    {
        await AppendAsync("INBOX", Message(Encoded));
        await _store.DisposeAsync();
        using (var c = new SqliteConnection($"Data Source={Path.Combine(PartitionDir, "index.db")};Pooling=False"))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = """
                DROP TABLE fts; DROP TABLE message_index; DROP TABLE tombstones; DROP TABLE subscriptions;
                DROP INDEX messages_modseq; DROP INDEX messages_blob; ALTER TABLE folders DROP COLUMN special_use;
                """;
            cmd.ExecuteNonQuery();
        }

        _store = Open();

        Assert.Equal([1L], await _store.SearchTextAsync(_alice, "INBOX", TextField.Body, "MÜNCHEN", null, None));
        Assert.Equal("grüße aus münchen", (await _store.GetSortInfoAsync(_alice, "INBOX", [1], None))[0].BaseSubject);
        await _store.CreateFolderAsync(_alice, "New", @"\Important", None);
        Assert.Equal(@"\Important", (await _store.GetFolderInfoAsync(_alice, "New", None))!.SpecialUse);
    }
}
