using MimeKit;

namespace Appliance.Tests.Smtp;

/// <summary>Many clients at once, and what survives a restart of the node.</summary>
public sealed class SmtpDurabilityTests : IAsyncLifetime
{
    private TestNode _node = null!;

    public async Task InitializeAsync() => _node = await TestNode.StartAsync(["alice", "bob"]);
    public async Task DisposeAsync() => await _node.DisposeAsync();

    [Fact]
    public async Task TenParallelSessions_FiveMessagesEach_AllDelivered()
    {
        const int sessions = 10, perSession = 5;
        await Task.WhenAll(Enumerable.Range(0, sessions).Select(s => Task.Run(async () =>
        {
            using var client = new MailKit.Net.Smtp.SmtpClient();
            await client.ConnectAsync(_node.Smtp.Address.ToString(), _node.Smtp.Port, MailKit.Security.SecureSocketOptions.None);
            for (var i = 0; i < perSession; i++)
            {
                var to = (s + i) % 2 == 0 ? "alice@example.test" : "bob@example.test";
                await client.SendAsync(Mailkit.Text("s@remote.test", to, $"s{s}-m{i}", $"session {s} message {i}"));
            }
            await client.DisconnectAsync(true);
        })));

        var subjects = new List<string>();
        foreach (var box in new[] { "alice", "bob" })
        {
            var list = await _node.InboxAsync(box);
            Assert.Equal(list.Count, list.Select(m => m.Uid).Distinct().Count());
            Assert.Equal(Enumerable.Range(1, list.Count).Select(i => (long)i), list.Select(m => m.Uid));
            foreach (var bytes in await _node.InboxBytesAsync(box))
                subjects.Add(MimeMessage.Load(new MemoryStream(bytes)).Subject ?? "");
        }
        var expected = from s in Enumerable.Range(0, sessions) from i in Enumerable.Range(0, perSession) select $"s{s}-m{i}";
        Assert.Equal(expected.Order(), subjects.Order());
    }

    [Fact]
    public async Task Restart_KeepsMessagesUidsAndUidValidity()
    {
        for (var i = 0; i < 3; i++)
            await Mailkit.SendAsync(_node.Smtp, Mailkit.Text("s@remote.test", "alice@example.test", $"before {i}", "x"));
        await _node.Store.ExpungeAsync(_node.User("alice"), "INBOX", [2], CancellationToken.None);
        var folderBefore = await _node.Store.GetFolderAsync(_node.User("alice"), "INBOX", CancellationToken.None);
        var listBefore = await _node.InboxAsync("alice");
        var bytesBefore = await _node.InboxBytesAsync("alice");

        await _node.RestartAsync();

        var folderAfter = await _node.Store.GetFolderAsync(_node.User("alice"), "INBOX", CancellationToken.None);
        Assert.Equal(folderBefore, folderAfter);
        Assert.Equal([1L, 3L], (await _node.InboxAsync("alice")).Select(m => m.Uid));
        Assert.Equal(listBefore.Select(m => (m.Uid, m.Size, m.ModSeq)), (await _node.InboxAsync("alice")).Select(m => (m.Uid, m.Size, m.ModSeq)));
        Assert.Equal(bytesBefore, await _node.InboxBytesAsync("alice"));

        // New mail continues the UID sequence (an expunged UID is never reused) on a new port.
        await Mailkit.SendAsync(_node.Smtp, Mailkit.Text("s@remote.test", "alice@example.test", "after", "x"));
        await _node.RestartAsync();
        Assert.Equal([1L, 3L, 4L], (await _node.InboxAsync("alice")).Select(m => m.Uid));
        Assert.Equal(folderBefore.UidValidity, (await _node.Store.GetFolderAsync(_node.User("alice"), "INBOX", CancellationToken.None)).UidValidity);
        Assert.Equal("after", MimeMessage.Load(new MemoryStream((await _node.InboxBytesAsync("alice"))[2])).Subject);
    }

    [Fact]
    public async Task Restart_KeepsDirectory()
    {
        _node.Directory.AddAlias("info@example.test", ["bob@example.test"]);

        await _node.RestartAsync();

        await Mailkit.SendAsync(_node.Smtp, Mailkit.Text("s@remote.test", "info@example.test", "alias after restart", "x"));
        Assert.Single(await _node.InboxAsync("bob"));
    }
}
