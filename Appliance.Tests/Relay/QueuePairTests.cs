using System.Net;
using Appliance.Tests.Cluster;
using Appliance.Tests.Smtp;

namespace Appliance.Tests.Relay;

/// <summary>
/// The queue in a pair: a message is queued in a partition active on the node that accepted it,
/// replicated before the 250 like mail, managed from either node (changes forwarded to the node
/// where its partition is active), and delivered by the other node after the first one dies.
/// </summary>
public sealed class QueuePairTests
{
    [Fact]
    public async Task Queued_mail_is_on_both_nodes_before_the_250_and_the_survivor_delivers_it()
    {
        await using var dns = TestDns.Start();
        var port = await TestMx.FreePortAsync(IPAddress.Parse("127.0.0.20"));
        dns.Route("remote.test", "127.0.0.20");
        // Nothing listens on the MX port yet: the mail waits.
        await using var pair = await TestPair.StartPlacedAsync(o => OutboundDeliveryTests.UseTestNetwork(o, dns, port));
        await pair.WaitInSyncAsync(pair.Node1, "store-a");
        await pair.WaitInSyncAsync(pair.Node2, "store-b");

        // Alice (partition a, active on node1) sends through node1 and through node2.
        await OutboundDeliveryTests.SubmitAsync(pair.Node1, Mailkit.Text("alice@" + TestNode.Domain, "one@remote.test", "via node1", "b"));
        await OutboundDeliveryTests.SubmitAsync(pair.Node2, Mailkit.Text("alice@" + TestNode.Domain, "two@remote.test", "via node2", "b"));
        var onNode1 = await pair.Node1.Host.Queue.ListQueueAsync();
        var onNode2 = await pair.Node2.Host.Queue.ListQueueAsync();
        Assert.Equal(2, onNode1.Count);
        Assert.Equal(onNode1.Select(e => (e.Id, e.Partition)), onNode2.Select(e => (e.Id, e.Partition)));
        Assert.Equal("a", onNode1.Single(e => e.Recipients[0].Address == "one@remote.test").Partition);
        Assert.Equal("b", onNode1.Single(e => e.Recipients[0].Address == "two@remote.test").Partition);

        // A hold asked on node2 for the entry node1 delivers is done by node1.
        var first = onNode1.Single(e => e.Partition == "a").Id;
        await pair.Node2.Host.Queue.HoldQueuedAsync(first, true, "test");
        Assert.True((await pair.Node1.Host.Queue.ShowQueuedAsync(first)).Entry.Held);
        await pair.Node2.Host.Queue.HoldQueuedAsync(first, false, "test");
        Assert.False((await pair.Node1.Host.Queue.ShowQueuedAsync(first)).Entry.Held);
        await pair.WaitForAsync(() => pair.Node2.Store.Partition("a").Queued(first) is { Held: false }, "the release replicated to node2");

        // node1 dies; node2 takes store-a over and delivers both once the MX is up.
        await pair.Node1.CrashAsync();
        await pair.WaitActiveAsync(pair.Node2, "store-a");
        await using var mx = await TestMx.StartAsync(IPAddress.Parse("127.0.0.20"), port);
        await mx.WaitAsync(m => m.To.Contains("one@remote.test"));
        await mx.WaitAsync(m => m.To.Contains("two@remote.test"));
        await OutboundDeliveryTests.WaitUntilAsync(async () => (await pair.Node2.Host.Queue.ListQueueAsync()).Count == 0, "node2's queue to empty");
    }
    [Fact]
    public async Task A_message_queued_by_a_copy_that_is_rolled_back_is_queued_anew_and_delivered()
    {
        await using var dns = TestDns.Start();
        var port = await TestMx.FreePortAsync(IPAddress.Parse("127.0.0.20"));
        dns.Route("remote.test", "127.0.0.20");
        // node2 may start alone (an administrator's override) so that both sides write.
        await using var pair = await TestPair.StartAsync((c, index) => c.StartWithoutPeer = index == 1, o => OutboundDeliveryTests.UseTestNetwork(o, dns, port));
        await pair.WaitActiveAsync(pair.Node1, "store-a");
        await pair.WaitActiveAsync(pair.Node2, "store-b");

        // node1 runs degraded and queues a message only it has (acknowledged to the user).
        await pair.Node2.StopAsync();
        await pair.WaitForAsync(() => TestPair.Cluster(pair.Node1).Status().Any(l => l.StartsWith("unit store-a") && l.Contains("degraded")), "store-a degraded on node1");
        await OutboundDeliveryTests.SubmitAsync(pair.Node1, Mailkit.Text("alice@" + TestNode.Domain, "tail@remote.test", "only on node1", "b"));
        var id = Assert.Single(await pair.Node1.Host.Queue.ListQueueAsync()).Id;
        await pair.Node1.StopAsync();

        // node2 takes store-a over alone and writes its own history; node1 comes back, its copy
        // is rolled back, and the queued message of its tail is queued again.
        await pair.Node2.StartAgainAsync();
        await pair.WaitActiveAsync(pair.Node2, "store-a");
        await OutboundDeliveryTests.SubmitAsync(pair.Node2, Mailkit.Text("alice@" + TestNode.Domain, "after@remote.test", "only on node2", "b"));
        await pair.Node1.StartAgainAsync();
        await OutboundDeliveryTests.WaitUntilAsync(async () => (await pair.Node2.Host.Queue.ListQueueAsync()).Any(e => e.Id == id), "the tail's entry queued again");

        await using var mx = await TestMx.StartAsync(IPAddress.Parse("127.0.0.20"), port);
        await mx.WaitAsync(m => m.To.Contains("tail@remote.test"));
        await mx.WaitAsync(m => m.To.Contains("after@remote.test"));
        await OutboundDeliveryTests.WaitUntilAsync(async () => (await pair.Node1.Host.Queue.ListQueueAsync()).Count == 0
            && (await pair.Node2.Host.Queue.ListQueueAsync()).Count == 0, "both queues to empty");
        Assert.Single(mx.Received, m => m.To.Contains("tail@remote.test"));
    }
}
