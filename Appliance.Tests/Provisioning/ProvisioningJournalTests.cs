using Appliance.Provisioning;
using Appliance.Store;
using Appliance.Tests.Smtp;

namespace Appliance.Tests.Provisioning;

/// <summary>The journal and the agent on one node: order, exactly once, restarts, retention.</summary>
public sealed class ProvisioningJournalTests
{
    [Fact]
    public async Task RequestsJournaledButNotApplied_AreAppliedAtTheNextStart_ExactlyOnce()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        var journal = node.Host.Provisioning.Journal;
        await node.Host.Provisioning.AddDomainAsync("first.test", "cli");

        // As if the process died between the append and the agent: requests only in the journal.
        await journal.AppendAsync(new ProvisioningRequest { Kind = RequestKinds.DomainAdd, Domain = "second.test" }, "cli");
        await journal.AppendAsync(new ProvisioningRequest
        {
            Kind = RequestKinds.MailboxAdd, Address = "gus@second.test", Partition = "b",
            PasswordHash = Appliance.Directory.PasswordHasher.Hash("gus's password"), QuotaBytes = 0,
        }, "cli");
        // A request that will be refused when applied (the domain is not empty then).
        await journal.AppendAsync(new ProvisioningRequest { Kind = RequestKinds.DomainRemove, Domain = "second.test" }, "cli");
        Assert.Null(node.Directory.FindMailbox("gus@second.test"));

        await node.RestartAsync();

        var gus = node.Directory.FindMailbox("gus@second.test");
        Assert.NotNull(gus);
        Assert.Equal("b", gus.Partition);
        var state = node.Directory.ReadProvisioningState();
        Assert.Equal(4, state.AppliedSeq);
        Assert.Equal(4, state.StoreSeq);
        Assert.Equal(4, state.ErrorSeq);
        Assert.Contains("still has 1 mailbox", state.LastError);
        // Mail arrives; its folders are made when it is first listed (or logged in to).
        await Mailkit.SendAsync(node.Smtp, Mailkit.Text("s@remote.test", "gus@second.test", "hi", "x"));
        Assert.Contains(await node.Store.ListFoldersAsync(gus.ToUser(), CancellationToken.None), f => f.Name == "Sent");
        // The refusal is on the journal entry in the audit log; applying again changes nothing.
        Assert.Contains("still has 1 mailbox", journal.List(null, 0, 1).Items[0].Error);
        await node.RestartAsync();
        Assert.Equal(4, node.Directory.ReadProvisioningState().AppliedSeq);
        Assert.Equal(["example.test", "first.test", "second.test"], node.Directory.ListDomains());
    }

    [Fact]
    public async Task ARemovedMailbox_KeepsItsMailForTheRetentionPeriod_ThenIsPurged()
    {
        await using var node = await TestNode.StartAsync(["alice", "bob"]);
        await Mailkit.SendAsync(node.Smtp, Mailkit.Text("s@remote.test", "alice@example.test", "keep me", "x"));
        var alice = node.User("alice");

        var request = await node.Host.Provisioning.RemoveMailboxAsync("alice@example.test", purge: false, "cli");

        Assert.Contains("mail kept until", request.Summary());
        Assert.Null(node.Directory.FindMailbox("alice@example.test"));
        Assert.True(node.Store.UsedBytes(alice) > 0); // still on disk, no longer reachable
        var deleted = Assert.Single(node.Directory.DeletedMailboxes());
        Assert.True(deleted.PurgeAfter > DateTimeOffset.UtcNow.AddDays(29).ToUnixTimeSeconds());

        // Not yet due: nothing happens. Due: the mail goes, by a journaled request.
        await node.Host.Provisioning.PurgeExpiredAsync(DateTimeOffset.UtcNow);
        Assert.True(node.Store.UsedBytes(alice) > 0);
        await node.Host.Provisioning.PurgeExpiredAsync(DateTimeOffset.UtcNow.AddDays(31));
        Assert.Equal(0, node.Store.UsedBytes(alice));
        Assert.Empty(node.Directory.DeletedMailboxes());
        var purge = node.Host.Provisioning.Journal.List(null, 0, 1).Items[0];
        Assert.Equal(("system", "mailbox.purge"), (purge.Actor, purge.Kind));

        // The address of a removed mailbox is not given out again while its mail is kept
        // (new mail would land beside the old); once purged, the new mailbox starts empty.
        await Mailkit.SendAsync(node.Smtp, Mailkit.Text("s@remote.test", "bob@example.test", "old mail", "x"));
        await node.Host.Provisioning.RemoveMailboxAsync("bob@example.test", purge: false, "cli");
        var refused = await Assert.ThrowsAsync<Appliance.Directory.DirectoryException>(() => node.Host.Provisioning.AddMailboxAsync("bob@example.test", TestNode.Password, null, null, "cli"));
        Assert.Contains("purge it first", refused.Message);
        await node.Host.Provisioning.RemoveMailboxAsync("bob@example.test", purge: true, "cli");
        var bob = await node.Host.Provisioning.AddMailboxAsync("bob@example.test", TestNode.Password, null, null, "cli");
        Assert.Empty(await node.Store.ListAsync(bob.ToUser(), MailStore.Inbox, CancellationToken.None));
        Assert.Empty(node.Directory.DeletedMailboxes());
    }
}
