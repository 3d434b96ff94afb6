using System.Text;
using Appliance.Cluster;
using MailKit;
using MailKit.Net.Imap;
using MailKit.Net.Pop3;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;
using Xunit.Abstractions;

namespace Appliance.Tests.Cluster;

/// <summary>
/// Two nodes in one process, talking over loopback: units placed on their preferred nodes,
/// synchronous replication (a 250 means the peer's copy already has the message), switchover,
/// standby, takeover after a fenced peer, resync and failback, and a diverged copy rolled back.
/// </summary>
[Collection(Timing.Collection)]
public sealed class PairTests(ITestOutputHelper output)
{
    [Fact]
    public async Task UnitsStartOnTheirPreferredNodes_And250MeansOnBothDisks_OnEitherNodesMx()
    {
        await using var pair = await TestPair.StartPlacedAsync();
        Assert.False(TestPair.Active(pair.Node2, "store-a"));
        Assert.False(TestPair.Active(pair.Node1, "store-b"));

        for (var i = 0; i < 5; i++)
        {
            await TestPair.SendAsync(pair.Node1, "alice", $"to alice {i}");
            await TestPair.SendAsync(pair.Node2, "bob", $"to bob {i}");
            // No waiting: the 250 was only given once the replica had the records on disk.
            Assert.Equal(await TestPair.DumpAsync(pair.Node1, "a"), await TestPair.DumpAsync(pair.Node2, "a"));
            Assert.Equal(await TestPair.DumpAsync(pair.Node1, "b"), await TestPair.DumpAsync(pair.Node2, "b"));
        }
        Assert.Equal(5, (await pair.Node2.InboxAsync("alice")).Count);

        // The MX of either node takes mail for every mailbox: node2 hands alice's to node1,
        // and answers 250 once it is stored there (and, replicated, back on node2).
        await TestPair.SendAsync(pair.Node2, "alice", "through node2's MX");
        Assert.Equal(6, (await pair.Node1.InboxAsync("alice")).Count);
        Assert.Equal(await TestPair.DumpAsync(pair.Node1, "a"), await TestPair.DumpAsync(pair.Node2, "a"));

        // With the peer gone, its partition cannot take mail anywhere until the takeover: 451.
        await pair.Node1.CrashAsync();
        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => TestPair.SendAsync(pair.Node2, "alice", "peer stopping"));
        Assert.Equal(451, (int)refused.StatusCode);
        output.WriteLine(pair.StatusText());
    }

    [Fact]
    public async Task Switchover_MovesAUnitWithItsData_AndStandbyEmptiesANode()
    {
        await using var pair = await TestPair.StartPlacedAsync();
        await TestPair.SendAsync(pair.Node1, "alice", "before the switchover");
        await pair.WaitInSyncAsync(pair.Node1, "store-a");

        // Asked on node2, the command runs on node1 where the unit is active.
        var (exit, lines) = await TestPair.Cluster(pair.Node2).ExecuteAsync(["switchover", "store-a"], forwarded: false, CancellationToken.None);
        Assert.True(exit == 0, string.Join('\n', lines) + "\n" + pair.StatusText());
        await pair.WaitActiveAsync(pair.Node2, "store-a");
        Assert.False(TestPair.Active(pair.Node1, "store-a"));

        await TestPair.SendAsync(pair.Node2, "alice", "after the switchover");
        Assert.Equal(2, (await pair.Node2.InboxAsync("alice")).Count);
        Assert.Equal(await TestPair.DumpAsync(pair.Node1, "a"), await TestPair.DumpAsync(pair.Node2, "a"));

        // Standby: node2 gives both units away; they stay on node1 after it is back online.
        (exit, lines) = await TestPair.Cluster(pair.Node1).ExecuteAsync(["standby", "node2"], forwarded: false, CancellationToken.None);
        Assert.True(exit == 0, string.Join('\n', lines));
        await pair.WaitActiveAsync(pair.Node1, "store-a");
        await pair.WaitActiveAsync(pair.Node1, "store-b");
        await TestPair.SendAsync(pair.Node1, "bob", "while node2 is in standby");
        (exit, _) = await TestPair.Cluster(pair.Node2).ExecuteAsync(["online", "node2"], forwarded: false, CancellationToken.None);
        Assert.Equal(0, exit);
        await Task.Delay(1500);
        Assert.True(TestPair.Active(pair.Node1, "store-b"), "a unit moved by hand stays where it is\n" + pair.StatusText());

        (exit, lines) = await TestPair.Cluster(pair.Node1).ExecuteAsync(["switchover", "store-x"], forwarded: false, CancellationToken.None);
        Assert.Equal(1, exit);
        Assert.Contains("no unit store-x", lines[0]);
    }

    [Fact]
    public async Task DeadPeerIsFencedAndItsUnitTakenOver_ThenItResyncsAndGetsItBack()
    {
        await using var pair = await TestPair.StartPlacedAsync();
        await TestPair.SendAsync(pair.Node1, "alice", "before the failure");

        await pair.Node1.CrashAsync();
        await pair.WaitActiveAsync(pair.Node2, "store-a");
        // Degraded: acknowledged on node2's disk alone (node1 was fenced).
        await TestPair.SendAsync(pair.Node2, "alice", "while node1 is down");
        await TestPair.SendAsync(pair.Node2, "bob", "to bob while node1 is down");
        Assert.Equal(2, (await pair.Node2.InboxAsync("alice")).Count);

        await pair.Node1.StartAgainAsync();
        // node1 catches up, and store-a fails back to its preferred node after the delay.
        await pair.WaitActiveAsync(pair.Node1, "store-a");
        Assert.False(TestPair.Active(pair.Node2, "store-a"));
        Assert.True(TestPair.Active(pair.Node2, "store-b"));
        var subjects = (await pair.Node1.InboxAsync("alice")).Count;
        Assert.Equal(2, subjects);
        await TestPair.SendAsync(pair.Node1, "alice", "after failback");
        Assert.Equal(await TestPair.DumpAsync(pair.Node1, "a"), await TestPair.DumpAsync(pair.Node2, "a"));
        await pair.WaitInSyncAsync(pair.Node2, "store-b");
        Assert.Equal(await TestPair.DumpAsync(pair.Node1, "b"), await TestPair.DumpAsync(pair.Node2, "b"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task ACopyWithRecordsThePrimaryLacks_IsRolledBack_AndItsMessagesDeliveredAnew(bool journalTrimmed)
    {
        // node2 may start alone (an administrator's override) to make both sides write.
        // Trimmed: node1's journal no longer reaches back to the start, so its copy cannot be
        // rebuilt from it: it is emptied and gets a full copy instead (the tail is still kept).
        await using var pair = await TestPair.StartAsync((c, index) => c.StartWithoutPeer = index == 1, o =>
        {
            if (!journalTrimmed) return;
            o.Store.JournalSegmentBytes = 8 * 1024;
            o.Store.JournalRetainBytes = 64 * 1024;
        });
        await pair.WaitActiveAsync(pair.Node1, "store-a");
        await pair.WaitActiveAsync(pair.Node2, "store-b");
        await TestPair.SendAsync(pair.Node1, "alice", "shared");
        if (journalTrimmed)
        {
            for (var i = 0; i < 40; i++) await TestPair.SendAsync(pair.Node1, "alice", $"filler {i} " + new string('f', 3000));
            Assert.True(pair.Node1.Store.Partition("a").JournalFirstSeq > 1, "node1's journal was not trimmed");
        }

        await pair.Node2.StopAsync();
        await pair.WaitForAsync(() => TestPair.Cluster(pair.Node1).Status().Any(l => l.StartsWith("unit store-a") && l.Contains("degraded")), "store-a degraded on node1");
        await TestPair.SendAsync(pair.Node1, "alice", "only on node1");
        await TestPair.SendAsync(pair.Node1, "alice", "retried", "retry@client.test");
        await pair.Node1.StopAsync();

        await pair.Node2.StartAgainAsync();
        await pair.WaitActiveAsync(pair.Node2, "store-a");
        await TestPair.SendAsync(pair.Node2, "alice", "only on node2");
        // The client never saw node1's 250 for this one and sent it again (same Message-ID).
        await TestPair.SendAsync(pair.Node2, "alice", "retried", "retry@client.test");

        await pair.Node1.StartAgainAsync();
        // node1's copy is rolled back, resyncs, and its tail's messages come back: "only on
        // node1" delivered anew, "retried" recognised as already there.
        var divergedDir = Path.Combine(pair.Node1.DataDirectory, "units", "store-a", "diverged");
        await pair.WaitForAsync(() => System.IO.Directory.Exists(divergedDir)
            && System.IO.Directory.GetFiles(divergedDir, "done.tsv", SearchOption.AllDirectories).Length == 1, "the diverged tail delivered anew", seconds: 30);
        var kept = System.IO.Directory.GetFiles(divergedDir, "*.eml", SearchOption.AllDirectories);
        Assert.Equal(2, kept.Length);
        await pair.WaitForAsync(() => TestPair.Active(pair.Node1, "store-a") || TestPair.Active(pair.Node2, "store-a"), "store-a active");
        var serving = TestPair.Active(pair.Node1, "store-a") ? pair.Node1 : pair.Node2;
        var subjects = (await serving.InboxBytesAsync("alice")).Select(b => MimeMessage.Load(new MemoryStream(b)).Subject)
            .Where(subject => !subject!.StartsWith("filler", StringComparison.Ordinal)).Order().ToList();
        Assert.Equal(["only on node1", "only on node2", "retried", "shared"], subjects);
        await TestPair.SendAsync(serving, "alice", "after the resync");
        Assert.Equal(await TestPair.DumpAsync(pair.Node1, "a"), await TestPair.DumpAsync(pair.Node2, "a"));

        // Restarted, node1 does not deliver the tail a second time.
        await pair.Node1.StopAsync();
        await pair.Node1.StartAgainAsync();
        await pair.WaitInSyncAsync(pair.Node2, "store-a");
        serving = TestPair.Active(pair.Node1, "store-a") ? pair.Node1 : pair.Node2;
        Assert.Equal(journalTrimmed ? 45 : 5, (await serving.InboxAsync("alice")).Count);
    }

    [Fact]
    public async Task AUnitWhoseDiskFails_IsFailedThere_AndTheOtherNodeTakesItOver()
    {
        await using var pair = await TestPair.StartPlacedAsync();
        await TestPair.SendAsync(pair.Node1, "alice", "before the disk failure");
        await pair.WaitInSyncAsync(pair.Node1, "store-a");

        pair.Node1.Store.Partition("a").InjectedWriteFailure = new IOException("Input/output error (injected)");
        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() => TestPair.SendAsync(pair.Node1, "alice", "hits the failing disk"));
        Assert.Equal(451, (int)refused.StatusCode);

        // No fencing: node1 is alive and says the unit failed; node2 takes it with every acknowledged message.
        await pair.WaitActiveAsync(pair.Node2, "store-a");
        Assert.Contains(TestPair.Cluster(pair.Node1).Status(), l => l.StartsWith("unit store-a: active on node2", StringComparison.Ordinal) && l.Contains("FAILED on node1"));
        await TestPair.SendAsync(pair.Node2, "alice", "after the takeover");
        // Through node1 too: its MX hands the message to node2.
        await TestPair.SendAsync(pair.Node1, "alice", "through node1 after the takeover");
        var subjects = (await pair.Node2.InboxBytesAsync("alice")).Select(b => MimeMessage.Load(new MemoryStream(b)).Subject).ToList();
        Assert.Equal(["before the disk failure", "after the takeover", "through node1 after the takeover"], subjects);
        Assert.False(File.Exists(pair.FenceStatusFile), "the node with the failed disk was fenced");
        Assert.True(TestPair.Active(pair.Node2, "store-b"));
        output.WriteLine(pair.StatusText());
    }

    [Fact]
    public async Task AReplicaBehindTheTrimmedJournal_GetsAFullCopy_ThatCanServe()
    {
        // Tiny journal segments and nothing retained beyond need: a replica away for a few
        // messages is already behind the primary's journal.
        await using var pair = await TestPair.StartPlacedAsync(o =>
        {
            o.Store.JournalSegmentBytes = 8 * 1024;
            o.Store.JournalRetainBytes = 0;
        });
        for (var i = 0; i < 5; i++) await TestPair.SendAsync(pair.Node1, "alice", $"before {i}");
        await pair.WaitInSyncAsync(pair.Node1, "store-a");
        var replicaSeq = pair.Node2.Store.Partition("a").LastSeq;

        await pair.Node2.StopAsync();
        for (var i = 0; i < 30; i++) await TestPair.SendAsync(pair.Node1, "alice", $"while node2 is away {i} " + new string('x', 2000));
        var alice = pair.Node1.User("alice");
        var first = (await pair.Node1.InboxAsync("alice"))[0];
        await pair.Node1.Store.StoreFlagsAsync(alice, Appliance.Store.MailStore.Inbox, [first.Uid], Appliance.Store.FlagMode.Add, Appliance.Store.MessageFlags.Deleted, [], null, CancellationToken.None);
        await pair.Node1.Store.ExpungeAsync(alice, Appliance.Store.MailStore.Inbox, [first.Uid], CancellationToken.None);
        Assert.True(pair.Node1.Store.Partition("a").JournalFirstSeq > replicaSeq + 1, "the primary's journal still reaches the replica");

        await pair.Node2.StartAgainAsync();
        await pair.WaitInSyncAsync(pair.Node1, "store-a");
        Assert.True(pair.Node2.Store.Partition("a").JournalFirstSeq > replicaSeq + 1, "node2's copy of store-a was not replaced by a full copy");
        Assert.Equal(await TestPair.DumpAsync(pair.Node1, "a"), await TestPair.DumpAsync(pair.Node2, "a"));
        await TestPair.SendAsync(pair.Node1, "alice", "after the full copy");
        Assert.Equal(await TestPair.DumpAsync(pair.Node1, "a"), await TestPair.DumpAsync(pair.Node2, "a"));

        // The copy serves: moved to node2, every message reads from its files there.
        var (exit, lines) = await TestPair.Cluster(pair.Node1).ExecuteAsync(["switchover", "store-a"], forwarded: false, CancellationToken.None);
        Assert.True(exit == 0, string.Join('\n', lines) + "\n" + pair.StatusText());
        var bodies = await pair.Node2.InboxBytesAsync("alice");
        Assert.Equal(35, bodies.Count);
        Assert.Contains(bodies, b => Encoding.ASCII.GetString(b).Contains("Subject: after the full copy"));
        Assert.DoesNotContain(bodies, b => Encoding.ASCII.GetString(b).Contains("Subject: before 0"));
    }

    [Fact]
    public async Task ACleanStop_HandsTheUnitsOver_WithoutFencing()
    {
        await using var pair = await TestPair.StartPlacedAsync();
        await TestPair.SendAsync(pair.Node1, "alice", "before the stop");
        await pair.WaitInSyncAsync(pair.Node1, "store-a");

        await pair.Node1.StopAsync();
        Assert.True(TestPair.Active(pair.Node2, "store-a"), "store-a was not handed over during the stop\n" + pair.StatusText());
        await TestPair.SendAsync(pair.Node2, "alice", "after the stop");
        Assert.Equal(2, (await pair.Node2.InboxAsync("alice")).Count);
        Assert.False(File.Exists(pair.FenceStatusFile), "the cleanly stopped node was fenced");

        // Back, it resyncs and gets its preferred unit again (a stop is not a placement by hand).
        await pair.Node1.StartAgainAsync();
        await pair.WaitActiveAsync(pair.Node1, "store-a");
        Assert.Equal(await TestPair.DumpAsync(pair.Node1, "a"), await TestPair.DumpAsync(pair.Node2, "a"));
    }

    [Fact]
    public async Task ImapAndPopLogins_OnEitherNode_AreForwardedToTheNodeHoldingTheMailbox()
    {
        await using var pair = await TestPair.StartPlacedAsync();
        await TestPair.SendAsync(pair.Node1, "alice", "first for alice");
        await TestPair.SendAsync(pair.Node2, "bob", "first for bob");

        // alice's partition is active on node1; her IMAPS session on node2 (TLS ends there) runs on node1.
        using var imap = new ImapClient { ServerCertificateValidationCallback = (_, _, _, _) => true };
        await imap.ConnectAsync(pair.Node2.Imaps.Address.ToString(), pair.Node2.Imaps.Port, SecureSocketOptions.SslOnConnect);
        await imap.AuthenticateAsync($"alice@{TestNode.Domain}", TestNode.Password);
        var inbox = imap.Inbox;
        await inbox.OpenAsync(FolderAccess.ReadWrite);
        Assert.Equal(1, inbox.Count);
        var appended = new MimeMessage();
        appended.From.Add(MailboxAddress.Parse($"alice@{TestNode.Domain}"));
        appended.Subject = "appended through node2";
        appended.Body = new TextPart("plain") { Text = new string('x', 200_000) };
        var uid = await inbox.AppendAsync(appended, MessageFlags.Seen);
        Assert.NotNull(uid);
        Assert.Equal(2, (await pair.Node1.InboxAsync("alice")).Count);
        await TestPair.SendAsync(pair.Node1, "alice", "second for alice");
        await imap.NoOpAsync();
        Assert.Equal(3, inbox.Count);
        var fetched = await inbox.GetMessageAsync(uid!.Value);
        Assert.Equal(appended.TextBody!.TrimEnd(), fetched.TextBody!.TrimEnd());

        // bob's partition is active on node2: POP3 on node1 opens (and locks) his maildrop on node2.
        using var pop = new Pop3Client();
        await pop.ConnectAsync(pair.Node1.Host.Endpoints["pop3"].Address.ToString(), pair.Node1.Host.Endpoints["pop3"].Port, SecureSocketOptions.None);
        await pop.AuthenticateAsync($"bob@{TestNode.Domain}", TestNode.Password);
        Assert.Equal(1, await pop.GetMessageCountAsync());
        Assert.Equal("first for bob", (await pop.GetMessageAsync(0)).Subject);
        // The lock is node2's: a second session is refused with IN-USE on node2 itself, and
        // through node1 the refusal comes back while that session stays usable.
        Assert.StartsWith("-ERR [IN-USE]", await PopLoginAsync(pair.Node2, "bob"));
        Assert.StartsWith("-ERR [IN-USE]", await PopLoginAsync(pair.Node1, "bob"));
        await pop.DeleteMessageAsync(0);
        await pop.DisconnectAsync(quit: true);
        await pair.WaitForAsync(() => pair.Node2.InboxAsync("bob").Result.Count == 0, "bob's message deleted on node2");

        // The partition moves to node2: the forwarded session ends (BYE), and a new login on node2 is local.
        await pair.WaitInSyncAsync(pair.Node1, "store-a");
        var (exit, lines) = await TestPair.Cluster(pair.Node1).ExecuteAsync(["switchover", "store-a"], forwarded: false, CancellationToken.None);
        Assert.True(exit == 0, string.Join('\n', lines));
        await pair.WaitForAsync(() => !imap.IsConnected || Ended(imap), "the forwarded session ended after the switchover");
        using var again = new ImapClient { ServerCertificateValidationCallback = (_, _, _, _) => true };
        await again.ConnectAsync(pair.Node2.Imaps.Address.ToString(), pair.Node2.Imaps.Port, SecureSocketOptions.SslOnConnect);
        await again.AuthenticateAsync($"alice@{TestNode.Domain}", TestNode.Password);
        await again.Inbox.OpenAsync(FolderAccess.ReadOnly);
        Assert.Equal(3, again.Inbox.Count);

        // And the other way: through node1 to node2, until node2 dies; then the session ends.
        using var viaNode1 = new ImapClient();
        await viaNode1.ConnectAsync(pair.Node1.Imap.Address.ToString(), pair.Node1.Imap.Port, SecureSocketOptions.None);
        await viaNode1.AuthenticateAsync($"alice@{TestNode.Domain}", TestNode.Password);
        await viaNode1.Inbox.OpenAsync(FolderAccess.ReadOnly);
        Assert.Equal(3, viaNode1.Inbox.Count);
        await pair.Node2.CrashAsync();
        await pair.WaitForAsync(() => !viaNode1.IsConnected || Ended(viaNode1), "the session forwarded to node2 ended with it");
        output.WriteLine(pair.StatusText());
    }

    /// <summary>USER/PASS over a plain socket: the reply to PASS (after which the session must still answer QUIT).</summary>
    private static async Task<string> PopLoginAsync(TestNode node, string local)
    {
        using var tcp = new System.Net.Sockets.TcpClient();
        await tcp.ConnectAsync(node.Host.Endpoints["pop3"]);
        using var reader = new StreamReader(tcp.GetStream());
        await using var writer = new StreamWriter(tcp.GetStream()) { NewLine = "\r\n", AutoFlush = true };
        Assert.StartsWith("+OK", await reader.ReadLineAsync());
        await writer.WriteLineAsync($"USER {local}@{TestNode.Domain}");
        Assert.StartsWith("+OK", await reader.ReadLineAsync());
        await writer.WriteLineAsync($"PASS {TestNode.Password}");
        var reply = await reader.ReadLineAsync() ?? "";
        await writer.WriteLineAsync("QUIT");
        Assert.StartsWith("+OK", await reader.ReadLineAsync());
        return reply;
    }

    /// <summary>True when a NOOP on the client fails: the server ended the session.</summary>
    private static bool Ended(ImapClient client)
    {
        try
        {
            client.NoOp();
            return false;
        }
        catch (Exception ex) when (ex is IOException or ImapProtocolException or ImapCommandException or ServiceNotConnectedException or InvalidOperationException)
        {
            return true;
        }
    }
}
