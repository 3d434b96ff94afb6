using Appliance.Directory;
using Appliance.Store;
using Appliance.Tests.Cluster;

namespace Appliance.Tests.Store;

/// <summary>
/// The db unit in a pair: added by itself on the first node, its webmail items on both disks
/// when a change returns, changed only where it is active, moved by a switchover and taken over
/// when its node dies; a purged mailbox's items deleted by the node holding db, while its mail
/// goes on the node holding its partition.
/// </summary>
[Collection(Timing.Collection)]
public sealed class WebmailPairTests
{
    [Fact]
    public async Task TheDbUnit_ReplicatesItsItems_MovesWithTheUnit_AndItsNodeDeletesAPurgedMailboxsItems()
    {
        await using var pair = await TestPair.StartPlacedAsync();
        // Cluster:Units of the test pair names store-a and store-b only: db is added, on node1.
        await pair.WaitActiveAsync(pair.Node1, "db");
        await pair.WaitInSyncAsync(pair.Node1, "db");
        Assert.False(TestPair.Active(pair.Node2, "db"));
        Assert.Contains(TestPair.Cluster(pair.Node2).Status(), l => l.StartsWith("unit db: active on node1", StringComparison.Ordinal));
        MailUser alice = pair.Node1.Directory.FindMailbox($"alice@{TestNode.Domain}")!.ToUser(), bob = pair.Node1.Directory.FindMailbox($"bob@{TestNode.Domain}")!.ToUser();
        Assert.Equal(("a", "b"), (alice.Partition, bob.Partition));

        // Written on node1 (bob's mail is on node2: no matter), on node2's disk when the call returns.
        var file = new byte[300_000];
        Random.Shared.NextBytes(file);
        Assert.Equal(WebmailResult.Ok, await pair.Node1.Store.PutWebmailItemAsync(bob, "file", "docs/report.pdf", "docs", "report.pdf", file, 0));
        Assert.Equal(WebmailResult.Ok, await pair.Node1.Store.PutWebmailItemAsync(alice, "note", "n1", "", "shopping", "milk"u8.ToArray(), 0));
        Assert.Equal(file, pair.Node2.Store.GetWebmailItem(bob, "file", "docs/report.pdf")!.Data);
        Assert.Equal(await pair.Node1.Store.Db.DumpAsync(), await pair.Node2.Store.Db.DumpAsync());
        // node2 reads its copy but changes nothing.
        Assert.Equal(["shopping"], pair.Node2.Store.ListWebmailItems(alice, "note").Select(n => n.Name));
        Assert.Throws<UnitUnavailableException>(() => { _ = pair.Node2.Store.PutWebmailItemAsync(alice, "note", "n2", "", "n2", [1], 0); });

        // A switchover moves the unit with its items; then node2 writes and node1 refuses.
        var (exit, lines) = await TestPair.Cluster(pair.Node1).ExecuteAsync(["switchover", "db"], forwarded: false, CancellationToken.None);
        Assert.True(exit == 0, string.Join('\n', lines) + "\n" + pair.StatusText());
        await pair.WaitActiveAsync(pair.Node2, "db");
        Assert.False(TestPair.Active(pair.Node1, "db"));
        Assert.Equal(WebmailResult.Ok, await pair.Node2.Store.MoveWebmailItemsAsync(bob, "docs/report.pdf", "report.pdf", "", "report.pdf"));
        Assert.Equal(WebmailResult.Ok, await pair.Node2.Store.PutWebmailItemAsync(alice, "note", "n2", "", "todo", "call"u8.ToArray(), 0));
        Assert.Throws<UnitUnavailableException>(() => { _ = pair.Node1.Store.DeleteWebmailItemAsync(alice, "note", "n1", false); });
        Assert.Equal(file, pair.Node1.Store.GetWebmailItem(bob, "file", "report.pdf")!.Data);

        // Alice purged: node1 holds her partition and the journal, node2 holds db. Each node's agent
        // deletes the part active on it: her mail on node1, her items on node2.
        await TestPair.SendAsync(pair.Node1, "alice", "mail to purge");
        await pair.Node1.Host.Provisioning.RemoveMailboxAsync(alice.Address, purge: true, "cli");
        Assert.Null(await pair.Node1.Store.Partition("a").GetFolderAsync(alice.Address, MailStore.Inbox, CancellationToken.None));
        await pair.WaitForAsync(() => pair.Node2.Store.ListWebmailItems(alice, "note").Count == 0, "alice's items deleted by node2, which holds db");
        await pair.WaitForAsync(() => pair.Node1.Store.ListWebmailItems(alice, "note").Count == 0, "the deletion replicated to node1");
        Assert.Single(pair.Node1.Store.ListWebmailItems(bob, "file"));

        // node2 dies: node1 takes db over with bob's file and changes it.
        await pair.Node2.CrashAsync();
        await pair.WaitActiveAsync(pair.Node1, "db");
        Assert.Equal(file, pair.Node1.Store.GetWebmailItem(bob, "file", "report.pdf")!.Data);
        Assert.Equal(WebmailResult.Ok, await pair.Node1.Store.DeleteWebmailItemAsync(bob, "file", "report.pdf", withChildren: false));
        Assert.Equal(0, pair.Node1.Store.WebmailBytes(bob));
    }
}
