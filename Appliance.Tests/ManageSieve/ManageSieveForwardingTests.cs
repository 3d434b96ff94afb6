using Appliance.Store;
using Appliance.Tests.Cluster;

namespace Appliance.Tests.ManageSieve;

/// <summary>
/// In a pair a user's scripts are written where the mailbox's partition is active: a login on
/// the other node is forwarded there, the scripts replicate with the partition, and they are
/// served from the other node after a switchover.
/// </summary>
public sealed class ManageSieveForwardingTests
{
    private const string Alice = "alice@" + TestNode.Domain;

    [Fact]
    public async Task ALoginOnTheOtherNode_IsForwarded_AndTheScriptsFollowThePartition()
    {
        await using var pair = await TestPair.StartPlacedAsync();
        // alice's partition (a) is active on node1; her session on node2 runs on node1.
        var c = await RawSieveClient.LoginAsync(pair.Node2.ManageSieve, Alice);
        Assert.Equal("OK \"Putscript completed\"", await c.SendAsync("PUTSCRIPT \"main\" {5+}\r\nkeep;"));
        Assert.Equal("OK \"Setactive completed\"", await c.SendAsync("SETACTIVE \"main\""));
        Assert.Equal("\"main\" ACTIVE\r\nOK \"Listscripts completed\"", await c.SendAsync("LISTSCRIPTS"));
        var alice = pair.Node1.User("alice");
        Assert.Equal(new StoredSieveScript("main", "keep;"), pair.Node1.Store.GetActiveSieveScript(alice));
        // Replicated: node2's copy of the partition has it too.
        await pair.WaitForAsync(() => pair.Node2.Store.GetActiveSieveScript(alice) is not null, "the script on node2's replica");

        // The partition moves to node2: the forwarded session ends, and a login on node2 is local.
        await pair.WaitInSyncAsync(pair.Node1, "store-a");
        var (exit, lines) = await TestPair.Cluster(pair.Node1).ExecuteAsync(["switchover", "store-a"], forwarded: false, CancellationToken.None);
        Assert.True(exit == 0, string.Join('\n', lines));
        Assert.StartsWith("BYE", await c.ReadResponseAsync());
        await c.DisposeAsync();
        await pair.WaitActiveAsync(pair.Node2, "store-a");
        await using var again = await RawSieveClient.LoginAsync(pair.Node2.ManageSieve, Alice);
        Assert.Equal("\"main\" ACTIVE\r\nOK \"Listscripts completed\"", await again.SendAsync("LISTSCRIPTS"));
        Assert.Equal("OK \"Setactive completed\"", await again.SendAsync("SETACTIVE \"\""));
        Assert.Equal("OK \"Deletescript completed\"", await again.SendAsync("DELETESCRIPT \"main\""));
        Assert.Null(pair.Node2.Store.GetActiveSieveScript(alice));
    }
}
