using Appliance.Store;
using Appliance.Tests.Smtp;

namespace Appliance.Tests.Provisioning;

/// <summary>Mailbox removal and re-creation as a mail client would see it.</summary>
public sealed class ProvisionerTests : IAsyncLifetime
{
    private TestNode _node = null!;

    public async Task InitializeAsync() => _node = await TestNode.StartAsync(["alice"]);
    public async Task DisposeAsync() => await _node.DisposeAsync();

    [Fact]
    public async Task RemovedMailbox_LosesItsMail_AndIsRefusedByTheMx()
    {
        await Mailkit.SendAsync(_node.Smtp, Mailkit.Text("s@remote.test", "alice@example.test", "one", "x"));
        var user = _node.User("alice");

        await _node.Host.Provisioner.RemoveMailboxAsync("alice@example.test");

        Assert.Empty(await _node.Store.ListAsync(user, MailStore.Inbox, CancellationToken.None));
        Assert.Equal(0, _node.Store.UsedBytes(user));
        await using var c = await RawSmtp.ConnectAsync(_node.Smtp);
        await c.SendAsync("EHLO client.test");
        await c.SendAsync("MAIL FROM:<s@remote.test>");
        Assert.StartsWith("550 5.1.1", await c.SendAsync("RCPT TO:<alice@example.test>"));
    }

    [Fact]
    public async Task RecreatedMailbox_GetsANewUidValidity_SoClientsDropTheirCache()
    {
        // RFC 9051 §2.3.1.1: UIDs restart at 1, so the UIDVALIDITY must differ from the old one
        // or a client would show the old mailbox's cached message 1 as the new message 1.
        await Mailkit.SendAsync(_node.Smtp, Mailkit.Text("s@remote.test", "alice@example.test", "old", "x"));
        var before = await _node.Store.GetFolderAsync(_node.User("alice"), MailStore.Inbox, CancellationToken.None);

        await _node.Host.Provisioner.RemoveMailboxAsync("alice@example.test");
        await _node.Host.Provisioner.AddMailboxAsync("alice@example.test", TestNode.Password, null, null);
        await Mailkit.SendAsync(_node.Smtp, Mailkit.Text("s@remote.test", "alice@example.test", "new", "x"));

        var after = await _node.Store.GetFolderAsync(_node.User("alice"), MailStore.Inbox, CancellationToken.None);
        Assert.Equal(1, after.Messages);
        Assert.Equal(1, (await _node.InboxAsync("alice"))[0].Uid);
        Assert.NotEqual(before.UidValidity, after.UidValidity);
        Assert.True(after.UidValidity > before.UidValidity);
    }
}
