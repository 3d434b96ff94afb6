using Appliance.Tests.Cluster;
using Appliance.Tests.Relay;
using Appliance.Tests.Smtp;

namespace Appliance.Tests.Filtering;

/// <summary>
/// Sieve in a pair: mail for a mailbox whose partition is active on the other node is filtered
/// by the node that took it (with its replica of the script), filed there with its flags, and
/// the vacation reply is claimed where the partition is active, so it still goes out once.
/// </summary>
public sealed class SieveDeliveryPairTests
{
    private const string Alice = "alice@" + TestNode.Domain;
    private const string Bob = "bob@" + TestNode.Domain;

    [Fact]
    public async Task The_other_node_files_with_flags_and_a_vacation_reply_goes_out_once_whichever_node_takes_the_mail()
    {
        await using var pair = await TestPair.StartPlacedAsync();
        var alice = pair.Node1.User("alice"); // partition a, active on node1
        await pair.Node1.Store.EnsureMailboxAsync(alice); // her folders, as her first login makes them
        await pair.Node1.Store.PutSieveScriptAsync(alice, "away", """
            require ["fileinto", "imap4flags", "vacation"];
            vacation :days 3 "Away until Monday.";
            fileinto :flags "\\Flagged" "Archive";
            """);
        await pair.Node1.Store.SetActiveSieveScriptAsync(alice, "away");
        await pair.WaitForAsync(() => pair.Node2.Store.GetActiveSieveScript(alice) is not null, "the script on node2's replica");

        await Mailkit.SendAsync(pair.Node2.Smtp, Mailkit.Text(Bob, Alice, "first, through node2", "1"));
        await Mailkit.SendAsync(pair.Node1.Smtp, Mailkit.Text(Bob, Alice, "second, through node1", "2"));
        await Mailkit.SendAsync(pair.Node2.Smtp, Mailkit.Text(Bob, Alice, "third, through node2", "3"));

        var archived = await pair.Node1.Store.ListAsync(alice, "Archive", CancellationToken.None);
        Assert.Equal(3, archived.Count);
        Assert.All(archived, m => Assert.Equal(Appliance.Store.MessageFlags.Flagged, m.Flags));
        Assert.Empty(await pair.Node1.Store.ListAsync(alice, "INBOX", CancellationToken.None));

        // Bob (partition b, on node2) gets one reply for the three.
        var bob = pair.Node2.User("bob");
        await OutboundDeliveryTests.WaitUntilAsync(async () => (await pair.Node2.Store.ListAsync(bob, "INBOX", CancellationToken.None)).Count >= 1, "the vacation reply");
        foreach (var node in pair.Nodes)
            await OutboundDeliveryTests.WaitUntilAsync(async () => (await node.Host.Queue.ListQueueAsync()).Count == 0, "empty queues");
        var replies = await pair.Node2.FolderTextsAsync("bob", "INBOX");
        Assert.Contains("Away until Monday.", Assert.Single(replies));
    }
}
