using Appliance.Store;
using Microsoft.Data.Sqlite;

namespace Appliance.Tests.Store;

/// <summary>
/// Each user's Sieve scripts in the mailbox partition: the RFC 5804 outcomes, the limits, and
/// the same scripts after a restart, after the index is rebuilt from the journal, and on a
/// replica fed the records.
/// </summary>
public sealed class SieveScriptTests : IDisposable
{
    private const string Alice = "alice@example.test", Bob = "bob@example.test";
    private static readonly SieveLimits Limits = new(1000, 3);
    private readonly string _root = Path.Combine(Path.GetTempPath(), "appliance-sieve-" + Guid.NewGuid().ToString("N")[..12]);

    private string Dir(string name) => Path.Combine(_root, name);
    private static Partition Open(string dir) => Partition.Open("a", dir, 4096);

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try { System.IO.Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
    }

    [Fact]
    public async Task Put_List_Get_Activate_Rename_Delete_WithTheRfcOutcomes()
    {
        await using var p = Open(Dir("p"));
        Assert.Empty(p.ListSieveScripts(Alice));
        Assert.Null(p.GetActiveSieveScript(Alice));

        Assert.Equal(SieveResult.Ok, await p.PutSieveScriptAsync(Alice, "vacation", "keep;\r\n", Limits));
        Assert.Equal(SieveResult.Ok, await p.PutSieveScriptAsync(Alice, "spam", "discard;", Limits));
        Assert.Equal([new("spam", false), new("vacation", false)], p.ListSieveScripts(Alice));
        Assert.Equal("keep;\r\n", p.GetSieveScript(Alice, "vacation"));
        Assert.Null(p.GetSieveScript(Alice, "nope"));
        Assert.Empty(p.ListSieveScripts(Bob));

        Assert.Equal(SieveResult.Ok, await p.SetActiveSieveScriptAsync(Alice, "vacation"));
        Assert.Equal(new StoredSieveScript("vacation", "keep;\r\n"), p.GetActiveSieveScript(Alice));
        Assert.Equal(SieveResult.Ok, await p.SetActiveSieveScriptAsync(Alice, "spam"));
        Assert.Equal([new("spam", true), new("vacation", false)], p.ListSieveScripts(Alice));
        Assert.Equal(SieveResult.NonExistent, await p.SetActiveSieveScriptAsync(Alice, "nope"));
        Assert.Equal("spam", p.GetActiveSieveScript(Alice)?.Name);

        // Replacing the active script keeps it active; deleting it is refused (RFC 5804 §2.10).
        Assert.Equal(SieveResult.Ok, await p.PutSieveScriptAsync(Alice, "spam", "discard;\n# v2\n", Limits));
        Assert.Equal(new StoredSieveScript("spam", "discard;\n# v2\n"), p.GetActiveSieveScript(Alice));
        Assert.Equal(SieveResult.Active, await p.DeleteSieveScriptAsync(Alice, "spam"));
        Assert.Equal(SieveResult.NonExistent, await p.DeleteSieveScriptAsync(Alice, "nope"));

        // Renaming keeps content and the active mark; onto an existing name it is refused.
        Assert.Equal(SieveResult.AlreadyExists, await p.RenameSieveScriptAsync(Alice, "spam", "vacation"));
        Assert.Equal(SieveResult.NonExistent, await p.RenameSieveScriptAsync(Alice, "nope", "other"));
        Assert.Equal(SieveResult.Ok, await p.RenameSieveScriptAsync(Alice, "spam", "junk"));
        Assert.Equal(new StoredSieveScript("junk", "discard;\n# v2\n"), p.GetActiveSieveScript(Alice));

        // Deactivated, it can go.
        Assert.Equal(SieveResult.Ok, await p.SetActiveSieveScriptAsync(Alice, ""));
        Assert.Null(p.GetActiveSieveScript(Alice));
        Assert.Equal(SieveResult.Ok, await p.DeleteSieveScriptAsync(Alice, "junk"));
        Assert.Equal([new("vacation", false)], p.ListSieveScripts(Alice));
    }

    [Fact]
    public async Task TheLimits_RefuseALargeScript_AndOneScriptTooMany_ButNotAReplacement()
    {
        await using var p = Open(Dir("p"));
        Assert.Equal(SieveResult.TooLarge, await p.PutSieveScriptAsync(Alice, "big", new string('x', 1001), Limits));
        // The limit counts UTF-8 bytes: 500 two-byte characters are 1000 bytes.
        Assert.Equal(SieveResult.Ok, await p.PutSieveScriptAsync(Alice, "utf8", new string('é', 500), Limits));
        Assert.Equal(SieveResult.TooLarge, await p.PutSieveScriptAsync(Alice, "utf8", new string('é', 501), Limits));
        Assert.Equal(SieveResult.Ok, await p.PutSieveScriptAsync(Alice, "two", "keep;", Limits));
        Assert.Equal(SieveResult.Ok, await p.PutSieveScriptAsync(Alice, "three", "keep;", Limits));
        Assert.Equal(SieveResult.TooManyScripts, await p.PutSieveScriptAsync(Alice, "four", "keep;", Limits));
        Assert.Equal(SieveResult.TooManyScripts, p.CheckSieveSpace(Alice, "four", 10, Limits));
        Assert.Equal(SieveResult.Ok, p.CheckSieveSpace(Alice, "three", 10, Limits));
        Assert.Equal(SieveResult.TooLarge, p.CheckSieveSpace(Alice, "three", 1001, Limits));
        Assert.Equal(SieveResult.Ok, await p.PutSieveScriptAsync(Alice, "three", "discard;", Limits));
        Assert.Equal(SieveResult.Ok, await p.PutSieveScriptAsync(Bob, "four", "keep;", Limits));
        Assert.Equal(3, p.ListSieveScripts(Alice).Count);
    }

    [Theory]
    [InlineData("", false)]
    [InlineData("a\tb", false)]
    [InlineData("a\u0085b", false)]
    [InlineData("a\u2028b", false)]
    [InlineData("My vacation script (2)", true)]
    [InlineData("vacances d'été", true)]
    public void ScriptNames_FollowRfc5804Section1_6(string name, bool valid) =>
        Assert.Equal(valid, Partition.IsValidSieveName(name));

    [Fact]
    public void AScriptName_WithALoneSurrogate_IsNoText() => Assert.False(Partition.IsValidSieveName("a\ud800b"));

    /// <summary>Concurrent activations of different scripts still leave exactly one active.</summary>
    [Fact]
    public async Task ConcurrentActivations_LeaveOneActiveScript()
    {
        await using var p = Open(Dir("p"));
        foreach (var name in new[] { "a", "b", "c" }) await p.PutSieveScriptAsync(Alice, name, "keep;", Limits);
        await Task.WhenAll(Enumerable.Range(0, 30).Select(i => p.SetActiveSieveScriptAsync(Alice, ((char)('a' + i % 3)).ToString())));
        Assert.Single(p.ListSieveScripts(Alice), s => s.Active);
    }

    private static async Task BuildHistoryAsync(Partition p)
    {
        await p.PutSieveScriptAsync(Alice, "one", "keep;", Limits);
        await p.PutSieveScriptAsync(Alice, "two", "discard;", Limits);
        await p.SetActiveSieveScriptAsync(Alice, "two");
        await p.RenameSieveScriptAsync(Alice, "two", "deux");
        await p.PutSieveScriptAsync(Alice, "deux", "fileinto \"Junk\";", Limits);
        await p.PutSieveScriptAsync(Alice, "gone", "stop;", Limits);
        await p.DeleteSieveScriptAsync(Alice, "gone");
        await p.PutSieveScriptAsync(Bob, "bob", "keep;", Limits);
        await p.SetActiveSieveScriptAsync(Bob, "bob");
        await p.PutSieveScriptAsync("carol@example.test", "c", "keep;", Limits);
        await p.CreateFolderAsync("carol@example.test", "INBOX");
        await p.DeleteAccountAsync("carol@example.test");
    }

    [Fact]
    public async Task TheScripts_AreTheSame_AfterReopening_AfterRebuildingTheIndex_AndOnAReplica()
    {
        var dir = Dir("primary");
        var p = Open(dir);
        await BuildHistoryAsync(p);
        var dump = await p.DumpAsync();
        var records = p.ReadJournal(0).ToList();
        await p.DisposeAsync();
        Assert.Contains($"sieve {Alice} deux active", dump);
        Assert.Contains($"sieve {Alice} one inactive", dump);
        Assert.DoesNotContain("gone", dump);
        Assert.DoesNotContain("carol", dump);

        await using (var reopened = Open(dir))
        {
            Assert.Equal(dump, await reopened.DumpAsync());
            Assert.Equal(new StoredSieveScript("deux", "fileinto \"Junk\";"), reopened.GetActiveSieveScript(Alice));
        }

        // index.db lost: the journal alone rebuilds it.
        SqliteConnection.ClearAllPools();
        foreach (var file in System.IO.Directory.EnumerateFiles(dir, "index.db*")) File.Delete(file);
        await using (var rebuilt = Open(dir)) Assert.Equal(dump, await rebuilt.DumpAsync());

        // A replica fed the records, twice over (a re-shipped batch), reaches the same state.
        await using var replica = Open(Dir("replica"));
        replica.IsPrimary = false;
        await replica.ApplyReplicatedAsync(records[..4]);
        await replica.ApplyReplicatedAsync(records);
        await replica.ApplyReplicatedAsync(records);
        Assert.Equal(dump, await replica.DumpAsync());
    }

    [Fact]
    public async Task AnIndexFromBeforeSieve_GetsTheTable()
    {
        var dir = Dir("old");
        await using (var p = Open(dir)) await p.CreateFolderAsync(Alice, "INBOX");
        SqliteConnection.ClearAllPools();
        await using (var c = new SqliteConnection($"Data Source={Path.Combine(dir, "index.db")};Pooling=False"))
        {
            await c.OpenAsync();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "DROP INDEX sieve_scripts_active; DROP TABLE sieve_scripts;";
            await cmd.ExecuteNonQueryAsync();
        }
        await using var again = Open(dir);
        Assert.Equal(SieveResult.Ok, await again.PutSieveScriptAsync(Alice, "s", "keep;", Limits));
        Assert.Single(again.ListSieveScripts(Alice));
    }
}
