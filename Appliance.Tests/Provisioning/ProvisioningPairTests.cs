using Appliance.Store;
using Appliance.Tests.Cluster;

namespace Appliance.Tests.Provisioning;

/// <summary>The provisioning journal in a pair: one journal (the monitor unit), applied on both nodes.</summary>
public sealed class ProvisioningPairTests
{
    private static IReadOnlyList<Appliance.Provisioning.NodeProgress> Progress(TestNode node) => node.Host.Provisioning.Progress();

    [Fact]
    public async Task ChangesMadeOnEitherNode_AreAppliedOnBoth_AndANodeThatWasDown_CatchesUp()
    {
        await using var pair = await TestPair.StartPlacedAsync();
        await pair.WaitActiveAsync(pair.Node1, "monitor");
        await pair.WaitInSyncAsync(pair.Node1, "monitor");

        // node2 does not hold the journal: its requests are journaled by node1 and applied on both.
        Assert.Equal("corp.test", await pair.Node2.Host.Provisioning.AddDomainAsync("corp.test", "cli"));
        var dana = await pair.Node2.Host.Provisioning.AddMailboxAsync("dana@corp.test", "dana's password", null, null, "cli");
        Assert.NotNull(pair.Node1.Directory.FindMailbox("dana@corp.test"));
        Assert.Equal(dana.Partition, pair.Node2.Directory.FindMailbox("dana@corp.test")!.Partition);
        await pair.Node1.Host.Provisioning.AddAliasAsync("sales@corp.test", ["dana@corp.test"], "cli");
        await pair.WaitForAsync(() => pair.Node2.Directory.ListAliases("corp.test").Count == 1, "the alias applied on node2");
        // The mailbox takes mail on either node (its folders exist where its partition is active).
        await Smtp.Mailkit.SendAsync(pair.Node1.Smtp, Smtp.Mailkit.Text("s@remote.test", "sales@corp.test", "hello dana", "x"));
        var owner = dana.Partition == "a" ? pair.Node1 : pair.Node2;
        Assert.Single(await owner.Store.ListAsync(dana.ToUser(), MailStore.Inbox, CancellationToken.None));
        // Tokens and admin credentials are directory data too: one API token, one admin password for both nodes.
        var token = await pair.Node2.Host.Provisioning.CreateTokenAsync("portal", "read", "cli");
        await pair.Node2.Host.Provisioning.SetAdminPasswordAsync("admin", "one password for both", "cli");
        Assert.Equal(5, pair.Node1.Host.Provisioning.Journal.LastSeq);
        await pair.WaitForAsync(() => Progress(pair.Node1).All(p => p.Up && p.Pending == 0 && p.AppliedSeq == 5), "both nodes at seq 5 as node1 sees them");
        Assert.NotNull(pair.Node1.Directory.AuthenticateToken(token));
        foreach (var node in pair.Nodes)
            Assert.Equal(Appliance.Directory.AdminLoginOutcome.Success,
                await node.Directory.AuthenticateAdminAsync("admin", "one password for both", null, System.Net.IPAddress.Loopback, CancellationToken.None));

        // node2 down: its requests wait, counted as pending, and it catches up when it returns.
        await pair.Node2.StopAsync();
        await pair.WaitForAsync(() => !Progress(pair.Node1)[1].Up, "node2 seen down");
        await pair.Node1.Host.Provisioning.AddMailboxAsync("erin@corp.test", "erin's password", null, 1 << 20, "cli");
        await pair.Node1.Host.Provisioning.UpdateMailboxAsync("dana@corp.test", null, null, false, "cli");
        Assert.Equal(2, Progress(pair.Node1)[1].Pending);
        await pair.Node2.StartAgainAsync();
        await pair.WaitForAsync(() => pair.Node2.Directory.FindMailbox("erin@corp.test") is not null
            && pair.Node2.Directory.FindMailbox("dana@corp.test") is { Enabled: false }, "node2 caught up", 60);
        await pair.WaitForAsync(() => Progress(pair.Node1).All(p => p.Up && p.Pending == 0), "nothing pending", 30);
    }

    [Fact]
    public async Task TheJournal_MovesWithTheMonitorUnit_WhenItsNodeDies()
    {
        await using var pair = await TestPair.StartPlacedAsync();
        await pair.WaitActiveAsync(pair.Node1, "monitor");
        await pair.WaitInSyncAsync(pair.Node1, "monitor");
        await pair.Node2.Host.Provisioning.AddDomainAsync("before.test", "cli");

        await pair.Node1.CrashAsync();
        await pair.WaitActiveAsync(pair.Node2, "monitor");
        // The journal survived on node2's copy: it continues it, while node1 is away.
        await pair.Node2.Host.Provisioning.AddDomainAsync("during.test", "cli");
        Assert.Equal(2, pair.Node2.Host.Provisioning.Journal.LastSeq);
        Assert.Equal(["before.test", "during.test", TestNode.Domain], pair.Node2.Directory.ListDomains());

        await pair.Node1.StartAgainAsync();
        await pair.WaitForAsync(() => pair.Node1.Directory.DomainExists("during.test"), "node1 applied what it missed", 60);
        Assert.Equal(2, pair.Node1.Host.Provisioning.Journal.LastSeq);
        var audit = pair.Node1.Host.Provisioning.Journal.List(null, 0, 10).Items;
        Assert.Equal(["domain during.test added", "domain before.test added"], audit.Select(e => e.Summary));
    }

    [Fact]
    public async Task AfterASplitBrain_TheRolledBackNode_AppliesTheSurvivorsRequests_AndSaysWhatItDropped()
    {
        // node2 may start alone (an administrator's override), so both sides journal.
        await using var pair = await TestPair.StartAsync((c, index) => c.StartWithoutPeer = index == 1);
        await pair.WaitActiveAsync(pair.Node1, "monitor");
        await pair.WaitInSyncAsync(pair.Node1, "monitor");
        await pair.Node1.Host.Provisioning.AddDomainAsync("shared.test", "cli");

        await pair.Node2.StopAsync();
        await pair.WaitForAsync(() => TestPair.Cluster(pair.Node1).Status().Any(l => l.StartsWith("unit monitor", StringComparison.Ordinal) && l.Contains("degraded")), "monitor degraded on node1");
        await pair.Node1.Host.Provisioning.AddDomainAsync("node1only.test", "cli");
        await pair.Node1.StopAsync();
        await pair.Node2.StartAgainAsync();
        await pair.WaitActiveAsync(pair.Node2, "monitor");
        await pair.Node2.Host.Provisioning.AddDomainAsync("node2only.test", "cli"); // the same sequence, another request

        await pair.Node1.StartAgainAsync();
        await pair.WaitForAsync(() => pair.Node1.Directory.DomainExists("node2only.test"), "node1 applied the survivor's request", 60);
        var state = pair.Node1.Directory.ReadProvisioningState();
        Assert.StartsWith("ALERT", state.LastError);
        Assert.Contains("2 (domain node1only.test added)", state.LastError);
        Assert.Equal(2, state.AppliedSeq);
        Assert.Equal(["domain node2only.test added", "domain shared.test added"], pair.Node1.Host.Provisioning.Journal.List(null, 0, 10).Items.Select(e => e.Summary));
    }

    [Fact]
    public async Task MailForAnAddressPurgedAndCreatedAgain_HandedToTheOtherNode_LandsInTheNewMailbox()
    {
        await using var pair = await TestPair.StartPlacedAsync();
        await pair.WaitActiveAsync(pair.Node1, "monitor");
        await pair.WaitInSyncAsync(pair.Node1, "monitor");
        await pair.WaitInSyncAsync(pair.Node2, "store-b");
        // bob's partition (b) is on node2; the journal and the MX used are node1's.
        await TestPair.SendAsync(pair.Node1, "bob", "old mail");
        var provisioning = pair.Node1.Host.Provisioning;
        await provisioning.RemoveMailboxAsync("bob@example.test", purge: false, "cli");
        await pair.WaitForAsync(() => pair.Node2.Directory.IsRetained("bob@example.test"), "the removal applied on node2");

        await provisioning.RemoveMailboxAsync("bob@example.test", purge: true, "cli");
        var bob = await provisioning.AddMailboxAsync("bob@example.test", TestNode.Password, null, null, "cli");
        Assert.Equal("b", bob.Partition);
        // At once, before node2's agent would have looked: node2 applies the purge before it stores.
        await TestPair.SendAsync(pair.Node1, "bob", "new mail");

        var inbox = await pair.Node2.Store.ListAsync(bob.ToUser(), MailStore.Inbox, CancellationToken.None);
        Assert.Single(inbox);
        await pair.WaitForAsync(() => pair.Node2.Directory.FindMailbox("bob@example.test") is not null, "the new bob on node2");
        Assert.Single(await pair.Node2.Store.ListAsync(bob.ToUser(), MailStore.Inbox, CancellationToken.None));
    }
}
