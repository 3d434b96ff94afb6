using Appliance.Store;
using Microsoft.Data.Sqlite;

namespace Appliance.Tests.Store;

/// <summary>
/// The spam filter's counts in a real partition: learning, relearning a message as the other
/// class, learning it twice, an account deleted; and the same state after a reopen, after the
/// index is rebuilt from the journal and on a replica fed the records.
/// </summary>
public sealed class BayesStoreTests : IAsyncLifetime
{
    private const string Alice = "alice@example.test";
    private readonly string _root = Path.Combine(Path.GetTempPath(), "appliance-bayes-" + Guid.NewGuid().ToString("N")[..12]);
    private MailStore _store = null!;

    private Partition P => _store.Partition("p1");

    public Task InitializeAsync()
    {
        _store = Open();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        SqliteConnection.ClearAllPools();
        try { System.IO.Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
    }

    private MailStore Open() => MailStore.Open(_root, ["p1"], 1 << 20);

    private (long Spam, long Ham) Token(long token) => P.BayesCounts(Alice, [token]).Tokens.GetValueOrDefault(token);

    [Fact]
    public async Task Learning_relearning_and_replay_give_the_same_counts()
    {
        await P.TrainAsync(Alice, [("m1", [1, 2, 3]), ("m2", [2, 3, 4])], spam: true);
        await P.TrainAsync(Alice, [("m3", [3, 5])], spam: false);
        var counts = P.BayesCounts(Alice, [1, 2, 3, 4, 5, 6]);
        Assert.Equal((2, 1), (counts.SpamMessages, counts.HamMessages));
        Assert.Equal((1L, 0L), counts.Tokens[1]);
        Assert.Equal((2L, 1L), counts.Tokens[3]);
        Assert.False(counts.Tokens.ContainsKey(6));

        // The same lesson twice changes nothing, and journals nothing.
        var seq = P.LastSeq;
        await P.TrainAsync(Alice, [("m1", [1, 2, 3])], spam: true);
        Assert.Equal(seq, P.LastSeq);
        // m1 was spam after all not: off the spam side, onto the ham side; token 1 is then ham only.
        await P.TrainAsync(Alice, [("m1", [1, 2, 3])], spam: false);
        counts = P.BayesCounts(Alice, [1, 2, 3]);
        Assert.Equal((1, 2), (counts.SpamMessages, counts.HamMessages));
        Assert.Equal((0L, 1L), counts.Tokens[1]);
        Assert.Equal((1L, 1L), counts.Tokens[2]);
        Assert.Equal((1L, 2L), counts.Tokens[3]);

        var dump = await P.DumpAsync();
        Assert.Contains("bayes alice@example.test 1 2 5 ", dump);
        await _store.DisposeAsync();
        _store = Open();
        Assert.Equal(dump, await P.DumpAsync());

        await _store.DisposeAsync();
        foreach (var file in System.IO.Directory.EnumerateFiles(Path.Combine(_root, "units", "store-p1"), "index.db*")) File.Delete(file);
        _store = Open();
        Assert.Equal(dump, await P.DumpAsync());

        await using (var replica = Partition.Open("p1", Path.Combine(_root, "replica"), 1 << 20))
        {
            replica.IsPrimary = false;
            await replica.ApplyReplicatedAsync(P.ReadJournal(0).ToList());
            Assert.Equal(dump, await replica.DumpAsync());
        }

        // A deleted account takes its filter with it.
        await P.DeleteAccountAsync(Alice);
        Assert.Equal((0, 0), (P.BayesCounts(Alice, [3]).SpamMessages, P.BayesCounts(Alice, [3]).HamMessages));
        Assert.DoesNotContain("bayes ", await P.DumpAsync());
    }
}
