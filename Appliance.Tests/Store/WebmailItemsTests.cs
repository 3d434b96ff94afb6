using System.Text;
using Appliance.Directory;
using Appliance.Store;
using Microsoft.Data.Sqlite;

namespace Appliance.Tests.Store;

/// <summary>
/// The webmail's items in the db unit's partition: put, get, list, replace, the quota, ids that
/// must be new, deleting and moving a files folder with its children, an account deleted; the
/// same items after a restart, after the index is rebuilt from the journal and on a replica fed
/// the records; and the store's side: changes only where the db unit is active, a purged
/// mailbox taking its items along.
/// </summary>
public sealed class WebmailItemsTests : IDisposable
{
    private const string Alice = "alice@example.test", Bob = "bob@example.test";
    private readonly string _root = Path.Combine(Path.GetTempPath(), "appliance-webmail-" + Guid.NewGuid().ToString("N")[..12]);

    private string Dir(string name) => Path.Combine(_root, name);
    private static Partition Open(string dir) => Partition.Open(MailStore.DbPartition, dir, 4096);
    private static byte[] Bytes(string text) => Encoding.UTF8.GetBytes(text);
    private static string Text(WebmailItem? item) => Encoding.UTF8.GetString(item?.Data ?? throw new Xunit.Sdk.XunitException("no item"));

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try { System.IO.Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
    }

    [Fact]
    public async Task Put_Get_List_AndReplace()
    {
        await using var p = Open(Dir("p"));
        Assert.Empty(p.ListWebmailItems(Alice, "contact"));
        Assert.Null(p.GetWebmailItem(Alice, "contact", "c1"));
        Assert.Equal(0, p.WebmailBytes(Alice));

        var before = DateTimeOffset.UtcNow.AddMilliseconds(-1);
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "contact", "c1", "", "bob", Bytes("BEGIN:VCARD bob"), 0));
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "contact", "c2", "", "Zoé", Bytes("BEGIN:VCARD zoe"), 0));
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "contact", "c3", "", "Carol", Bytes("BEGIN:VCARD carol"), 0));
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "file", "docs/a.txt", "docs", "a.txt", Bytes("hello"), 0));
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "file", "b.txt", "", "b.txt", Bytes("top"), 0));
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Bob, "contact", "c1", "", "alice", Bytes("BEGIN:VCARD alice"), 0));
        var after = DateTimeOffset.UtcNow.AddMilliseconds(1);

        // Listed by name, ordinal (upper case before lower case), without their bytes; one kind at a time.
        var contacts = p.ListWebmailItems(Alice, "contact");
        Assert.Equal(["Carol", "Zoé", "bob"], contacts.Select(c => c.Name));
        Assert.All(contacts, c => Assert.Null(c.Data));
        Assert.All(contacts, c => Assert.InRange(c.Updated, before, after));
        Assert.Equal(("c3", "", 17L), (contacts[0].Id, contacts[0].Parent, contacts[0].Size));
        Assert.Equal(["docs/a.txt", "b.txt"], p.ListWebmailItems(Alice, "file").Select(f => f.Id)); // a.txt, b.txt
        // A parent filter: "" is the top.
        Assert.Equal(["docs/a.txt"], p.ListWebmailItems(Alice, "file", "docs").Select(f => f.Id));
        Assert.Equal(["b.txt"], p.ListWebmailItems(Alice, "file", "").Select(f => f.Id));
        Assert.Empty(p.ListWebmailItems(Alice, "note"));

        var item = p.GetWebmailItem(Alice, "file", "docs/a.txt");
        Assert.Equal(("file", "docs/a.txt", "docs", "a.txt", 5L), (item!.Kind, item.Id, item.Parent, item.Name, item.Size));
        Assert.Equal("hello", Text(item));
        Assert.Null(p.GetWebmailItem(Alice, "contact", "docs/a.txt")); // the kind is part of the key
        Assert.Equal("BEGIN:VCARD alice", Text(p.GetWebmailItem(Bob, "contact", "c1")));
        Assert.Equal(15 + 15 + 17 + 5 + 3, p.WebmailBytes(Alice));
        Assert.Equal(17, p.WebmailBytes(Bob));

        // A put replaces the item of that kind and id whole: bytes, name, parent, time.
        await Task.Delay(5);
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "file", "docs/a.txt", "docs2", "renamed", Bytes("hello again"), 0));
        var replaced = p.GetWebmailItem(Alice, "file", "docs/a.txt")!;
        Assert.Equal(("docs2", "renamed", 11L), (replaced.Parent, replaced.Name, replaced.Size));
        Assert.Equal("hello again", Text(replaced));
        Assert.True(replaced.Updated > item.Updated);
        Assert.Equal(2, p.ListWebmailItems(Alice, "file").Count);
        Assert.Equal(15 + 15 + 17 + 11 + 3, p.WebmailBytes(Alice));

        // Empty data is an item too (a setting cleared).
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "settings", "prefs", "", "", [], 0));
        Assert.Empty(p.GetWebmailItem(Alice, "settings", "prefs")!.Data!);
    }

    [Fact]
    public async Task TheQuota_CountsEveryKind_AndARefusalLeavesNothing()
    {
        await using var p = Open(Dir("p"));
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "file", "f1", "", "f1", new byte[60], 100));
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "note", "n1", "", "n1", new byte[30], 100));
        var seq = p.LastSeq;
        var dump = await p.DumpAsync();

        // 60 + 30 + 11 passes 100, in another kind too: refused, nothing journalled or stored.
        Assert.Equal(WebmailResult.OverQuota, await p.PutWebmailItemAsync(Alice, "contact", "c1", "", "c1", new byte[11], 100));
        Assert.Equal(WebmailResult.OverQuota, await p.PutWebmailItemAsync(Alice, "file", "f1", "", "f1", new byte[71], 100));
        Assert.Equal(seq, p.LastSeq);
        Assert.Equal(dump, await p.DumpAsync());
        Assert.Null(p.GetWebmailItem(Alice, "contact", "c1"));
        Assert.Equal(60, p.GetWebmailItem(Alice, "file", "f1")!.Size);

        // Exactly at the quota is fine; a replacement counts the old size out.
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "contact", "c1", "", "c1", new byte[10], 100));
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "file", "f1", "", "f1", new byte[50], 100));
        Assert.Equal(90, p.WebmailBytes(Alice));
        // Another account has its own count; 0 means no limit.
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Bob, "file", "f1", "", "f1", new byte[100], 100));
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "file", "big", "", "big", new byte[1000], 0));

        // Over a lowered quota (1090 used, 50 allowed): a version no larger is still taken, growth is not.
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "file", "big", "", "big", new byte[500], 50));
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "file", "big", "", "big", new byte[500], 50));
        Assert.Equal(WebmailResult.OverQuota, await p.PutWebmailItemAsync(Alice, "file", "big", "", "big", new byte[501], 50));
        Assert.Equal(WebmailResult.OverQuota, await p.PutWebmailItemAsync(Alice, "note", "n2", "", "n2", new byte[1], 50));
        Assert.Equal(590, p.WebmailBytes(Alice));
    }

    [Fact]
    public async Task MustBeNew_RefusesAnIdAnyKindHolds()
    {
        await using var p = Open(Dir("p"));
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "file", "docs/x", "docs", "x", Bytes("one"), 0, mustBeNew: true));
        Assert.Equal(WebmailResult.Exists, await p.PutWebmailItemAsync(Alice, "file", "docs/x", "docs", "x", Bytes("two"), 0, mustBeNew: true));
        // A folder cannot be made where a file is.
        Assert.Equal(WebmailResult.Exists, await p.PutWebmailItemAsync(Alice, "dir", "docs/x", "docs", "x", [], 0, mustBeNew: true));
        Assert.Equal("one", Text(p.GetWebmailItem(Alice, "file", "docs/x")));
        Assert.Null(p.GetWebmailItem(Alice, "dir", "docs/x"));
        // Another account's id is no obstacle; without mustBeNew the file is replaced.
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Bob, "file", "docs/x", "docs", "x", Bytes("bob's"), 0, mustBeNew: true));
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "file", "docs/x", "docs", "x", Bytes("two"), 0));
        Assert.Equal("two", Text(p.GetWebmailItem(Alice, "file", "docs/x")));
    }

    /// <summary>A files tree of Alice's: folders (dir) and files, and one item of another kind under the folder.</summary>
    private static async Task PutTreeAsync(Partition p, string account = Alice)
    {
        foreach (var (kind, id, parent) in new[]
        {
            ("dir", "docs", ""), ("file", "docs/a.txt", "docs"), ("dir", "docs/sub", "docs"), ("file", "docs/sub/b.txt", "docs/sub"),
            ("note", "docs/n", "docs"), ("file", "docsx", ""), ("file", "other", ""), ("dir", "docs.old", ""),
        })
            Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(account, kind, id, parent, id.Split('/')[^1], Bytes(id), 0));
    }

    private static string[] Ids(Partition p, string account = Alice) =>
        [.. new[] { "dir", "file", "note" }.SelectMany(k => p.ListWebmailItems(account, k).Select(i => $"{k}:{i.Id}<{i.Parent}")).Order(StringComparer.Ordinal)];

    [Fact]
    public async Task Delete_WithChildren_TakesTheFolderAndEverythingUnderIt_OfAnyKind()
    {
        await using var p = Open(Dir("p"));
        await PutTreeAsync(p);
        await PutTreeAsync(p, Bob);
        Assert.Equal(WebmailResult.NotFound, await p.DeleteWebmailItemAsync(Alice, "file", "nope", withChildren: false));
        Assert.Equal(WebmailResult.NotFound, await p.DeleteWebmailItemAsync(Alice, "file", "nope", withChildren: true));
        Assert.Equal(WebmailResult.NotFound, await p.DeleteWebmailItemAsync(Alice, "file", "docs", withChildren: false)); // "docs" is a dir

        // Without children: the folder item alone.
        Assert.Equal(WebmailResult.Ok, await p.DeleteWebmailItemAsync(Alice, "dir", "docs", withChildren: false));
        Assert.Equal(["dir:docs.old<", "dir:docs/sub<docs", "file:docs/a.txt<docs", "file:docs/sub/b.txt<docs/sub", "file:docsx<", "file:other<", "note:docs/n<docs"], Ids(p));

        // With children, what is under "docs/" goes even without the folder item; "docsx" and "docs.old" stay.
        var bytes = p.WebmailBytes(Alice);
        Assert.Equal(WebmailResult.Ok, await p.DeleteWebmailItemAsync(Alice, "dir", "docs", withChildren: true));
        Assert.Equal(["dir:docs.old<", "file:docsx<", "file:other<"], Ids(p));
        Assert.Equal(bytes - "docs/a.txt".Length - "docs/sub".Length - "docs/sub/b.txt".Length - "docs/n".Length, p.WebmailBytes(Alice));
        Assert.Equal(WebmailResult.NotFound, await p.DeleteWebmailItemAsync(Alice, "dir", "docs", withChildren: true));

        // A file without children.
        Assert.Equal(WebmailResult.Ok, await p.DeleteWebmailItemAsync(Alice, "file", "other", withChildren: true));
        Assert.Equal(["dir:docs.old<", "file:docsx<"], Ids(p));
        Assert.Equal(8, Ids(p, Bob).Length);
    }

    [Fact]
    public async Task Move_RenamesTheItem_AndItsChildrenFollow()
    {
        await using var p = Open(Dir("p"));
        await PutTreeAsync(p);
        await PutTreeAsync(p, Bob);
        var childBefore = p.GetWebmailItem(Alice, "file", "docs/sub/b.txt")!;
        await Task.Delay(5);

        Assert.Equal(WebmailResult.Ok, await p.MoveWebmailItemsAsync(Alice, "docs", "archive/docs 2024", "archive", "docs 2024"));
        Assert.Equal(
            ["dir:archive/docs 2024/sub<archive/docs 2024", "dir:archive/docs 2024<archive", "dir:docs.old<", "file:archive/docs 2024/a.txt<archive/docs 2024",
             "file:archive/docs 2024/sub/b.txt<archive/docs 2024/sub", "file:docsx<", "file:other<", "note:archive/docs 2024/n<archive/docs 2024"],
            Ids(p));
        var moved = p.GetWebmailItem(Alice, "dir", "archive/docs 2024")!;
        Assert.Equal("docs 2024", moved.Name);
        Assert.True(moved.Updated > childBefore.Updated, "the moved item's time is the move's");
        // Children keep their names, bytes and times.
        var child = p.GetWebmailItem(Alice, "file", "archive/docs 2024/sub/b.txt")!;
        Assert.Equal((childBefore.Name, childBefore.Updated, Text(childBefore)), (child.Name, child.Updated, Text(child)));
        Assert.Equal(8, Ids(p, Bob).Length);
        Assert.Contains("dir:docs<", Ids(p, Bob));

        // Nothing at the id: NotFound. Something at the new id, or under it: Exists; nothing changes.
        Assert.Equal(WebmailResult.NotFound, await p.MoveWebmailItemsAsync(Alice, "docs", "elsewhere", "", "elsewhere"));
        var ids = Ids(p);
        Assert.Equal(WebmailResult.Exists, await p.MoveWebmailItemsAsync(Alice, "docsx", "other", "", "other"));
        Assert.Equal(WebmailResult.Exists, await p.MoveWebmailItemsAsync(Alice, "docsx", "archive", "", "archive"));
        Assert.Equal(ids, Ids(p));
        Assert.Throws<ArgumentException>(() => { _ = p.MoveWebmailItemsAsync(Alice, "archive/docs 2024", "archive/docs 2024/sub/x", "", "x"); });

        // A file renamed in place; the same id: only name and parent change.
        Assert.Equal(WebmailResult.Ok, await p.MoveWebmailItemsAsync(Alice, "docsx", "docs-x", "", "docs-x"));
        Assert.Equal("docsx", Text(p.GetWebmailItem(Alice, "file", "docs-x")));
        Assert.Equal(WebmailResult.Ok, await p.MoveWebmailItemsAsync(Alice, "other", "other", "", "Other"));
        Assert.Equal("Other", p.GetWebmailItem(Alice, "file", "other")!.Name);
    }

    [Fact]
    public async Task Move_ToItsOwnParent_WhereChildrenTradePlaces()
    {
        // "t/b" → "t": "t/b/b/x" becomes "t/b/x", the id "t/b/x" held until it became "t/x".
        await using var p = Open(Dir("p"));
        // Deepest first, so that a scan in the table's order, or in the ids', meets "t/b/b/x" before "t/b/x".
        foreach (var (kind, id, parent) in new[] { ("file", "t/b/b/x", "t/b/b"), ("dir", "t/b/b", "t/b"), ("file", "t/b/x", "t/b"), ("dir", "t/b", "t") })
            await p.PutWebmailItemAsync(Alice, kind, id, parent, id.Split('/')[^1], Bytes(id), 0);
        Assert.Equal(WebmailResult.Ok, await p.MoveWebmailItemsAsync(Alice, "t/b", "t", "", "t"));
        Assert.Equal(["dir:t/b<t", "dir:t<", "file:t/b/x<t/b", "file:t/x<t"], Ids(p));
        Assert.Equal("t/b/b/x", Text(p.GetWebmailItem(Alice, "file", "t/b/x")));
        Assert.Equal("t/b/x", Text(p.GetWebmailItem(Alice, "file", "t/x")));
    }

    [Fact]
    public async Task DeleteAccount_TakesEverythingOfTheAccount_AndJournalsNothingWhenThereIsNothing()
    {
        await using var p = Open(Dir("p"));
        await PutTreeAsync(p);
        await PutTreeAsync(p, Bob);
        await p.DeleteWebmailAccountAsync(Alice);
        Assert.Empty(Ids(p));
        Assert.Equal(0, p.WebmailBytes(Alice));
        Assert.Equal(8, Ids(p, Bob).Length);
        var seq = p.LastSeq;
        await p.DeleteWebmailAccountAsync(Alice);
        Assert.Equal(seq, p.LastSeq);
    }

    [Theory]
    [InlineData("kind", "File")]
    [InlineData("kind", "")]
    [InlineData("kind", "a kind")]
    [InlineData("id", "")]
    [InlineData("id", "a\nb")]
    [InlineData("id", "a\u0000b")]
    [InlineData("id", "a\u007fb")]
    [InlineData("id", "a\u0085b")]
    [InlineData("id", "a\u2028b")]
    [InlineData("id", "lone surrogate")]
    [InlineData("id", "long")]
    [InlineData("parent", "a\tb")]
    [InlineData("name", "lone surrogate")]
    [InlineData("name", "long")]
    public async Task BadArguments_AreRefusedBeforeAnythingIsWritten(string field, string value)
    {
        await using var p = Open(Dir("p"));
        // Written out here: a test case's strings are serialized, and a lone surrogate would not survive.
        value = value switch { "long" => new string('é', 513) /* 1026 UTF-8 bytes */, "lone surrogate" => field == "id" ? "a\ud800b" : "a\udc00", _ => value };
        string kind = "file", id = "x", parent = "", name = "x";
        switch (field)
        {
            case "kind": kind = value; break;
            case "id": id = value; break;
            case "parent": parent = value; break;
            case "name": name = value; break;
        }
        var ex = Assert.ThrowsAny<ArgumentException>(() => { _ = p.PutWebmailItemAsync(Alice, kind, id, parent, name, [1], 0); });
        Assert.Equal(field, ex.ParamName);
        if (field != "kind") Assert.ThrowsAny<ArgumentException>(() => { _ = p.MoveWebmailItemsAsync(Alice, "y", field == "id" ? id : "z", parent, name); });
        Assert.Equal(0, p.LastSeq);
        // What is allowed: a name with a tab, an id of 1024 bytes, one with characters past U+FFFF.
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "x.y-z_1", new string('é', 512), "p/q", "tab\tname", [1], 0));
        Assert.Equal(WebmailResult.Ok, await p.PutWebmailItemAsync(Alice, "file", "😀/x", "😀", "😀", [1], 0));
    }

    private static async Task BuildHistoryAsync(Partition p, byte[] large)
    {
        await PutTreeAsync(p);
        await PutTreeAsync(p, Bob);
        await p.PutWebmailItemAsync(Alice, "contact", "c1", "", "Bob", Bytes("BEGIN:VCARD"), 0);
        await p.PutWebmailItemAsync(Alice, "contact", "c1", "", "Bob B.", Bytes("BEGIN:VCARD v2"), 0);
        await p.PutWebmailItemAsync(Alice, "file", "docs/big.bin", "docs", "big.bin", large, 0);
        await p.MoveWebmailItemsAsync(Alice, "docs", "archive/docs", "archive", "docs");
        await p.DeleteWebmailItemAsync(Alice, "dir", "archive/docs/sub", withChildren: true);
        await p.DeleteWebmailItemAsync(Alice, "file", "other", withChildren: false);
        await p.PutWebmailItemAsync("carol@example.test", "note", "n", "", "n", Bytes("carol's"), 0);
        await p.DeleteWebmailAccountAsync(Bob);
        await p.PutWebmailItemAsync(Bob, "settings", "prefs", "", "", Bytes("{}"), 0);
    }

    [Fact]
    public async Task TheItems_AreTheSame_AfterReopening_AfterRebuildingTheIndex_AndOnAReplica()
    {
        var dir = Dir("primary");
        var p = Open(dir);
        // A file of 25 MB goes whole through a journal record and the replication of it.
        var large = new byte[25 << 20];
        new Random(7).NextBytes(large);
        await BuildHistoryAsync(p, large);
        var dump = await p.DumpAsync();
        var records = p.ReadJournal(0).ToList();
        await p.DisposeAsync();
        Assert.Contains($"webmail {Alice} file archive/docs/big.bin parent=archive/docs name=big.bin {25 << 20} ", dump);
        Assert.Contains($"webmail {Alice} contact c1 parent= name=Bob B. 14 ", dump);
        Assert.Contains($"webmail {Bob} settings prefs ", dump);
        Assert.DoesNotContain("sub", dump);
        Assert.DoesNotContain($"webmail {Bob} dir", dump);

        await using (var reopened = Open(dir))
        {
            Assert.Equal(dump, await reopened.DumpAsync());
            Assert.Equal(large, reopened.GetWebmailItem(Alice, "file", "archive/docs/big.bin")!.Data);
        }

        // index.db lost: the journal alone rebuilds it.
        SqliteConnection.ClearAllPools();
        foreach (var file in System.IO.Directory.EnumerateFiles(dir, "index.db*")) File.Delete(file);
        await using (var rebuilt = Open(dir)) Assert.Equal(dump, await rebuilt.DumpAsync());

        // A replica fed the records, twice over (a re-shipped batch), reaches the same state.
        await using var replica = Open(Dir("replica"));
        replica.IsPrimary = false;
        await replica.ApplyReplicatedAsync(records[..10]);
        await replica.ApplyReplicatedAsync(records);
        await replica.ApplyReplicatedAsync(records);
        Assert.Equal(dump, await replica.DumpAsync());
        // A replica is read, never written locally.
        Assert.Equal(large, replica.GetWebmailItem(Alice, "file", "archive/docs/big.bin")!.Data);
        await Assert.ThrowsAsync<UnitUnavailableException>(() => replica.PutWebmailItemAsync(Alice, "note", "n", "", "n", [1], 0));
    }

    [Fact]
    public async Task AnIndexFromBeforeTheDbUnit_GetsTheTable()
    {
        var dir = Dir("old");
        await using (var p = Open(dir)) await p.CreateFolderAsync(Alice, "INBOX");
        SqliteConnection.ClearAllPools();
        await using (var c = new SqliteConnection($"Data Source={Path.Combine(dir, "index.db")};Pooling=False"))
        {
            await c.OpenAsync();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "DROP INDEX webmail_items_list; DROP INDEX webmail_items_id; DROP TABLE webmail_items;";
            await cmd.ExecuteNonQueryAsync();
        }
        await using var again = Open(dir);
        Assert.Equal(WebmailResult.Ok, await again.PutWebmailItemAsync(Alice, "note", "n", "", "n", [1], 0));
        Assert.Single(again.ListWebmailItems(Alice, "note"));
    }

    [Fact]
    public async Task TheStore_ChangesItemsOnlyWhereTheDbUnitIsActive_AndAPurgedMailboxTakesThemAlong()
    {
        await using var store = MailStore.Open(_root, ["a", MailStore.MonitorPartition, MailStore.DbPartition], 1 << 20);
        var alice = new MailUser(Alice, "a", 0);
        var bob = new MailUser(Bob, "a", 0);
        Assert.True(store.WebmailWritable);
        Assert.True(System.IO.Directory.Exists(Path.Combine(_root, "units", "db", "journal")));
        Assert.Equal(WebmailResult.Ok, await store.PutWebmailItemAsync(alice, "note", "n1", "", "first", Bytes("text"), 0));
        Assert.Equal(WebmailResult.Ok, await store.PutWebmailItemAsync(bob, "note", "n1", "", "bob's", Bytes("text"), 0));
        Assert.Equal(["first"], store.ListWebmailItems(alice, "note").Select(n => n.Name));
        Assert.Equal("text", Text(store.GetWebmailItem(alice, "note", "n1")));
        Assert.Equal(4, store.WebmailBytes(alice));
        Assert.Empty(store.Partition("a").ListWebmailItems(Alice, "note")); // not in the mail's partition

        // Not active here: reads still answer from this copy, changes are refused with the reason.
        store.Db.IsPrimary = false;
        Assert.False(store.WebmailWritable);
        Assert.Equal("first", store.ListWebmailItems(alice, "note").Single().Name);
        var refused = Assert.Throws<UnitUnavailableException>(() => { _ = store.PutWebmailItemAsync(alice, "note", "n2", "", "n2", [1], 0); });
        Assert.Contains("db unit", refused.Message);
        Assert.Throws<UnitUnavailableException>(() => { _ = store.DeleteWebmailItemAsync(alice, "note", "n1", false); });
        Assert.Throws<UnitUnavailableException>(() => { _ = store.MoveWebmailItemsAsync(alice, "n1", "n2", "", "n2"); });
        Assert.Throws<UnitUnavailableException>(() => { _ = store.DeleteWebmailAccountAsync(alice); });

        // A purge where only the mail's partition is active deletes the mail and leaves the items
        // to the node holding the db unit; where both are, both go.
        await store.CreateMailboxAsync(alice);
        await store.DeleteMailboxAsync(alice);
        Assert.Null(await store.Partition("a").GetFolderAsync(Alice, MailStore.Inbox, CancellationToken.None));
        Assert.Single(store.ListWebmailItems(alice, "note"));
        store.Db.IsPrimary = true;
        await store.DeleteMailboxAsync(alice);
        Assert.Empty(store.ListWebmailItems(alice, "note"));
        Assert.Single(store.ListWebmailItems(bob, "note"));
        await store.DeleteWebmailAccountAsync(bob);
        Assert.Empty(store.ListWebmailItems(bob, "note"));
    }
}
