using System.Text;
using Appliance.Store;
using Microsoft.Data.Sqlite;

namespace Appliance.Tests.Store;

/// <summary>
/// The journal is the source of truth of a partition: a replica fed its records, and a primary
/// recovering after a crash, reach exactly the primary's state (DESIGN.md §2, durability).
/// </summary>
public sealed class JournalReplayTests : IDisposable
{
    private const long SmallSegments = 4096; // several segment files, so reads cross segments
    private readonly string _root = Path.Combine(Path.GetTempPath(), "appliance-journal-" + Guid.NewGuid().ToString("N")[..12]);

    private string Dir(string name) => Path.Combine(_root, name);

    private static Partition Open(string dir) => Partition.Open("a", dir, SmallSegments);
    private static Partition OpenReplica(string dir) { var p = Open(dir); p.IsPrimary = false; return p; }

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try { System.IO.Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
    }

    private static byte[] Mail(string subject, int bodyBytes = 300) => Encoding.ASCII.GetBytes(
        $"From: s@remote.test\r\nTo: x@example.test\r\nSubject: {subject}\r\n\r\n{new string('z', bodyBytes)}\r\n");

    private static async Task<long> AppendAsync(Partition p, string account, string folder, string subject, int bodyBytes = 300)
    {
        var bytes = Mail(subject, bodyBytes);
        var uid = await p.AppendAsync(account, folder, bytes, MessageStructure.Parse(new MemoryStream(bytes)),
            DateTimeOffset.FromUnixTimeSeconds(1_700_000_000), MessageFlags.None, 0, CancellationToken.None);
        return uid ?? throw new InvalidOperationException("over quota");
    }

    /// <summary>A history with every op type: deliveries to two accounts and folders, flags, expunges, a deleted account.</summary>
    private static async Task BuildHistoryAsync(Partition p)
    {
        const string a = "alice@example.test", b = "bob@example.test", c = "carol@example.test";
        foreach (var account in new[] { a, b, c }) await p.CreateFolderAsync(account, "INBOX");
        for (var i = 0; i < 6; i++) await AppendAsync(p, a, "INBOX", $"a{i}", 200 + i * 300);
        for (var i = 0; i < 3; i++) await AppendAsync(p, b, "INBOX", $"b{i}");
        await AppendAsync(p, c, "INBOX", "c0");
        await p.CreateFolderAsync(a, "Archive");
        await AppendAsync(p, a, "Archive", "archived");
        await p.SetFlagsAsync(a, "INBOX", [1, 2, 3], MessageFlags.Seen, []);
        await p.SetFlagsAsync(a, "INBOX", [2], MessageFlags.Seen | MessageFlags.Deleted, []);
        await p.SetFlagsAsync(a, "INBOX", [3, 4], MessageFlags.Flagged, ["$Important", "work"]);
        await p.ExpungeAsync(a, "INBOX", [2, 5]);
        await p.SetFlagsAsync(c, "INBOX", [1], MessageFlags.Answered, []);
        await p.DeleteAccountAsync(b);
        await AppendAsync(p, a, "INBOX", "after delete");
        // Concurrent requests land in one group-committed batch.
        await Task.WhenAll(Enumerable.Range(0, 8).Select(i => AppendAsync(p, c, "INBOX", $"burst{i}")));
    }

    /// <summary>Builds the history in a partition at <paramref name="dir"/> and closes it; returns its dump and last sequence.</summary>
    private static async Task<(string Dump, long LastSeq)> BuildClosedHistoryAsync(string dir)
    {
        var p = Open(dir);
        await BuildHistoryAsync(p);
        var result = (await p.DumpAsync(), p.LastSeq);
        await p.DisposeAsync();
        return result;
    }

    private static int BlobFiles(string dir) =>
        System.IO.Directory.EnumerateFiles(Path.Combine(dir, "blobs"), "*", SearchOption.AllDirectories).Count();

    private static int MessagesIn(string dump) => dump.Split('\n').Count(l => l.StartsWith("  ", StringComparison.Ordinal));

    [Fact]
    public async Task EmptyReplica_FedTheWholeJournal_ReachesTheSameState()
    {
        await using var primary = Open(Dir("primary"));
        await BuildHistoryAsync(primary);
        await using var replica = OpenReplica(Dir("replica"));

        await replica.ApplyReplicatedAsync(primary.ReadJournal(0).ToList());

        var dump = await primary.DumpAsync();
        Assert.Equal(dump, await replica.DumpAsync());
        Assert.Contains("folder alice@example.test Archive", dump);
        Assert.DoesNotContain("bob@example.test", dump);
        Assert.Contains("[$Important work]", dump);
        Assert.Equal(primary.LastSeq, replica.LastSeq);
        Assert.Equal(primary.ReadJournal(0).Select(r => r.Seq), replica.ReadJournal(0).Select(r => r.Seq));
        Assert.True(System.IO.Directory.GetFiles(Path.Combine(Dir("primary"), "journal"), "*.log").Length > 1, "expected several journal segments");
        // Expunged and deleted messages leave no files behind on either side.
        Assert.Equal(MessagesIn(dump), BlobFiles(Dir("primary")));
        Assert.Equal(MessagesIn(dump), BlobFiles(Dir("replica")));
    }

    [Fact]
    public async Task TheJournal_IsTrimmedOnceApplied_KeepingTheRetainedBytesAndThePin_AndTheCopyStillOpens()
    {
        var dir = Dir("primary");
        var p = Open(dir);
        p.JournalRetainBytes = 2 * SmallSegments;
        await BuildHistoryAsync(p);
        // Well past the retention, whatever the batching (segments rotate between batches).
        for (var i = 0; i < 30; i++) await AppendAsync(p, "alice@example.test", "INBOX", $"more {i}", 1000);
        Assert.True(p.JournalFirstSeq > 1, "old segments were not trimmed");
        var segments = System.IO.Directory.GetFiles(Path.Combine(dir, "journal"), "*.log");
        // The retained bytes stay (at least what was asked, in whole segments).
        Assert.True(segments.Sum(f => new FileInfo(f).Length) >= 2 * SmallSegments, $"{segments.Length} segments left");

        // A pin (a replica being caught up from seq N) keeps every record after it.
        var pinned = p.LastSeq;
        p.PinJournal(pinned);
        p.JournalRetainBytes = 0;
        for (var i = 0; i < 20; i++) await AppendAsync(p, "alice@example.test", "INBOX", $"pinned {i}");
        Assert.True(p.JournalFirstSeq <= pinned + 1, $"the journal starts at {p.JournalFirstSeq}, pinned after {pinned}");
        Assert.Equal(p.LastSeq - pinned, p.ReadJournal(pinned).Count());
        p.PinJournal(long.MaxValue);
        for (var i = 0; i < 20; i++) await AppendAsync(p, "alice@example.test", "INBOX", $"unpinned {i}");
        Assert.True(p.JournalFirstSeq > pinned + 1);

        // Reopened (after a crash or a restart) the copy is whole: the index had every trimmed record.
        var dump = await p.DumpAsync();
        var last = p.LastSeq;
        await p.DisposeAsync();
        await using var again = Open(dir);
        Assert.Equal(dump, await again.DumpAsync());
        Assert.Equal(last, again.LastSeq);
        await AppendAsync(again, "alice@example.test", "INBOX", "after reopening");
        Assert.Equal(last + 1, again.LastSeq);
    }

    [Fact]
    public async Task ReplicaFedInPieces_ReachesTheSameState()
    {
        await using var primary = Open(Dir("primary"));
        await using var replica = OpenReplica(Dir("replica"));
        await BuildHistoryAsync(primary);

        var records = primary.ReadJournal(0).ToList();
        foreach (var chunk in records.Chunk(3)) await replica.ApplyReplicatedAsync(chunk);
        // And later, replication continues from the replica's last sequence.
        await AppendAsync(primary, "alice@example.test", "INBOX", "later");
        await replica.ApplyReplicatedAsync(primary.ReadJournal(replica.LastSeq).ToList());

        Assert.Equal(await primary.DumpAsync(), await replica.DumpAsync());
    }

    [Fact]
    public async Task ApplyingTheSameRecordsTwice_IsIdempotent()
    {
        await using var primary = Open(Dir("primary"));
        await BuildHistoryAsync(primary);
        await using var replica = OpenReplica(Dir("replica"));
        var records = primary.ReadJournal(0).ToList();

        await replica.ApplyReplicatedAsync(records);
        var lastSeq = replica.LastSeq;
        await replica.ApplyReplicatedAsync(records);
        await replica.ApplyReplicatedAsync(records[(records.Count / 2)..]);

        var dump = await primary.DumpAsync();
        Assert.Equal(dump, await replica.DumpAsync());
        Assert.Equal(lastSeq, replica.LastSeq);
        Assert.Equal(records.Count, replica.ReadJournal(0).Count());
        // Re-shipped records of since-expunged messages must not leave files behind.
        Assert.Equal(MessagesIn(dump), BlobFiles(Dir("replica")));
    }

    [Fact]
    public async Task AGap_IsRefused_AndNothingIsApplied()
    {
        await using var primary = Open(Dir("primary"));
        await BuildHistoryAsync(primary);
        await using var replica = OpenReplica(Dir("replica"));
        var records = primary.ReadJournal(0).ToList();
        await replica.ApplyReplicatedAsync(records[..5]);
        var before = await replica.DumpAsync();

        await Assert.ThrowsAsync<InvalidDataException>(() => replica.ApplyReplicatedAsync(records[7..]));
        await Assert.ThrowsAsync<InvalidDataException>(() => replica.ApplyReplicatedAsync([records[5], records[7]]));

        Assert.Equal(before, await replica.DumpAsync());
        Assert.Equal(5, replica.LastSeq);
        // The replica is not broken: the missing records still apply.
        await replica.ApplyReplicatedAsync(records[5..]);
        Assert.Equal(await primary.DumpAsync(), await replica.DumpAsync());
    }

    [Fact]
    public async Task TornTail_IsCutOff_OnlyTheTornRecordIsLost()
    {
        var dir = Dir("primary");
        var (expected, lastSeq) = await BuildClosedHistoryAsync(dir);
        SqliteConnection.ClearAllPools();
        var snapshot = Dir("snapshot");
        CopyDirectory(dir, snapshot);

        // The next record is written to the original, then its tail bytes are torn off and put
        // on the snapshot, whose index never saw it: a crash in the middle of a journal append.
        // The record either ends the last segment or starts a new one (when the last one is full).
        var primary = Open(dir);
        var segment = LastSegment(dir);
        var before = new FileInfo(segment).Length;
        await AppendAsync(primary, "alice@example.test", "INBOX", "torn", 2000);
        await primary.DisposeAsync();
        if (LastSegment(dir) != segment)
        {
            segment = LastSegment(dir);
            before = 0;
        }
        var record = File.ReadAllBytes(segment)[(int)before..];
        using (var f = new FileStream(Path.Combine(snapshot, "journal", Path.GetFileName(segment)), FileMode.Append))
            f.Write(record, 0, record.Length / 2);

        await using (var reopened = Open(snapshot))
        {
            Assert.Equal(lastSeq, reopened.LastSeq);
            Assert.Equal(expected, await reopened.DumpAsync());
            Assert.Equal(lastSeq, reopened.ReadJournal(0).Last().Seq);

            // Writing continues with dense sequence numbers and the next UID.
            var uid = await AppendAsync(reopened, "alice@example.test", "INBOX", "after crash");
            Assert.Equal(lastSeq + 1, reopened.LastSeq);
            Assert.Equal(Enumerable.Range(1, (int)lastSeq + 1).Select(i => (long)i), reopened.ReadJournal(0).Select(r => r.Seq));
            var inbox = await reopened.ListAsync("alice@example.test", "INBOX", CancellationToken.None);
            Assert.Equal(uid, inbox[^1].Uid);
            Assert.Equal(8, uid);

            // A replica built from the repaired journal agrees with it.
            await using var replica = OpenReplica(Dir("replica"));
            await replica.ApplyReplicatedAsync(reopened.ReadJournal(0).ToList());
            Assert.Equal(await reopened.DumpAsync(), await replica.DumpAsync());
        }

        // And it stays repaired across another restart.
        await using var again = Open(snapshot);
        Assert.Equal(lastSeq + 1, again.LastSeq);
    }

    [Fact]
    public async Task GarbageAtTheTail_IsCutOff()
    {
        var dir = Dir("primary");
        var (expected, lastSeq) = await BuildClosedHistoryAsync(dir);
        using (var f = new FileStream(LastSegment(dir), FileMode.Append))
            f.Write(Enumerable.Range(0, 100).Select(i => (byte)(i * 7 + 3)).ToArray());

        await using var reopened = Open(dir);

        Assert.Equal(lastSeq, reopened.LastSeq);
        Assert.Equal(expected, await reopened.DumpAsync());
        await AppendAsync(reopened, "carol@example.test", "INBOX", "next");
        Assert.Equal(lastSeq + 1, reopened.ReadJournal(0).Last().Seq);
    }

    [Fact]
    public async Task RecreatedAccount_NeverReusesAUidValidity()
    {
        // RFC 9051 §2.3.1.1: a deleted and recreated mailbox restarts at UID 1, so its
        // UIDVALIDITY must be new, even within the same second; and a replica must agree.
        await using var p = Open(Dir("primary"));
        var seen = new HashSet<long>();
        for (var i = 0; i < 5; i++)
        {
            await p.CreateFolderAsync("alice@example.test", "INBOX");
            await AppendAsync(p, "alice@example.test", "INBOX", $"round {i}");
            var status = await p.GetFolderAsync("alice@example.test", "INBOX", CancellationToken.None);
            Assert.True(seen.Add(status!.UidValidity), $"UIDVALIDITY {status.UidValidity} reused in round {i}");
            await p.DeleteAccountAsync("alice@example.test");
        }
        await using var replica = OpenReplica(Dir("replica"));
        await replica.ApplyReplicatedAsync(p.ReadJournal(0).ToList());
        await p.CreateFolderAsync("alice@example.test", "INBOX");
        await replica.ApplyReplicatedAsync(p.ReadJournal(replica.LastSeq).ToList());
        Assert.Equal(await p.DumpAsync(), await replica.DumpAsync());
    }

    [Fact]
    public async Task TornFirstRecordOfAFreshSegment_IsCutOff()
    {
        var dir = Dir("primary");
        var (expected, lastSeq) = await BuildClosedHistoryAsync(dir);
        // A crash right after rotating to a new segment, in the middle of its first record's header.
        File.WriteAllBytes(Path.Combine(dir, "journal", $"{lastSeq + 1:D20}.log"), [0x40, 0x01, 0x00]);

        await using (var reopened = Open(dir))
        {
            Assert.Equal(lastSeq, reopened.LastSeq);
            Assert.Equal(expected, await reopened.DumpAsync());
            await AppendAsync(reopened, "carol@example.test", "INBOX", "next");
            Assert.Equal(Enumerable.Range(1, (int)lastSeq + 1).Select(i => (long)i), reopened.ReadJournal(0).Select(r => r.Seq));
        }
        await using var again = Open(dir);
        Assert.Equal(lastSeq + 1, again.LastSeq);
    }

    [Fact]
    public async Task CrashRecovery_JournalAheadOfTheIndex_IsReplayedOnOpen()
    {
        var dir = Dir("primary");
        var p = Open(dir);
        await p.CreateFolderAsync("alice@example.test", "INBOX");
        await AppendAsync(p, "alice@example.test", "INBOX", "first");
        await p.DisposeAsync();
        SqliteConnection.ClearAllPools();
        var snapshot = Dir("snapshot");
        CopyDirectory(dir, snapshot);

        p = Open(dir);
        await BuildHistoryAsync(p);
        var expected = await p.DumpAsync();
        var lastSeq = p.LastSeq;
        await p.DisposeAsync();
        // The snapshot's index (and blob files) stop at "first"; its journal is the full one,
        // as after a crash between the journal fsync and the index commit.
        System.IO.Directory.Delete(Path.Combine(snapshot, "journal"), recursive: true);
        CopyDirectory(Path.Combine(dir, "journal"), Path.Combine(snapshot, "journal"));

        await using var recovered = Open(snapshot);

        Assert.Equal(expected, await recovered.DumpAsync());
        Assert.Equal(lastSeq, recovered.LastSeq);
        Assert.Equal(MessagesIn(expected), BlobFiles(snapshot));
    }

    [Fact]
    public async Task CrashRecovery_IndexThatAppliedNothing_ReplaysEverythingToTheSameState()
    {
        var dir = Dir("primary");
        var p = Open(dir);
        await BuildHistoryAsync(p);
        var expected = await p.DumpAsync();
        await p.DisposeAsync();
        SqliteConnection.ClearAllPools();
        Assert.Equal(1, ResetAppliedSeq(dir));

        await using var recovered = Open(dir);

        Assert.Equal(expected, await recovered.DumpAsync());
        Assert.Equal(MessagesIn(expected), BlobFiles(dir));
    }

    [Fact]
    public async Task LostBlobFile_IsRestoredFromTheJournalOnReplay()
    {
        var dir = Dir("primary");
        var p = Open(dir);
        await p.CreateFolderAsync("alice@example.test", "INBOX");
        await AppendAsync(p, "alice@example.test", "INBOX", "keep me");
        var message = (await p.ListAsync("alice@example.test", "INBOX", CancellationToken.None))[0];
        var expected = await p.DumpAsync();
        var blob = p.BlobPath(message.BlobId);
        await p.DisposeAsync();
        SqliteConnection.ClearAllPools();
        File.Delete(blob);
        ResetAppliedSeq(dir);

        await using var recovered = Open(dir);

        Assert.Equal(Mail("keep me"), File.ReadAllBytes(recovered.BlobPath(message.BlobId)));
        Assert.Equal(expected, await recovered.DumpAsync());
    }

    /// <summary>Makes the index believe it applied no journal record (what a crash before its first commit leaves).</summary>
    private static int ResetAppliedSeq(string dir)
    {
        using var c = new SqliteConnection($"Data Source={Path.Combine(dir, "index.db")};Pooling=False");
        c.Open();
        using var cmd = c.CreateCommand();
        cmd.CommandText = "UPDATE meta SET value = 0 WHERE key = 'applied_seq'";
        return cmd.ExecuteNonQuery();
    }

    private static string LastSegment(string dir) =>
        System.IO.Directory.GetFiles(Path.Combine(dir, "journal"), "*.log").Order(StringComparer.Ordinal).Last();

    private static void CopyDirectory(string from, string to)
    {
        System.IO.Directory.CreateDirectory(to);
        foreach (var file in System.IO.Directory.EnumerateFiles(from, "*", SearchOption.AllDirectories))
        {
            var target = Path.Combine(to, Path.GetRelativePath(from, file));
            System.IO.Directory.CreateDirectory(Path.GetDirectoryName(target)!);
            File.Copy(file, target);
        }
    }
}
