using System.Diagnostics;
using System.Net;
using Appliance.Directory;
using Microsoft.Data.Sqlite;

namespace Appliance.Tests.Directory;

/// <summary>Addresses, aliases, recipient resolution and authentication as the directory keeps them.</summary>
public sealed class DirectoryTests : IDisposable
{
    private const string Password = "correct horse battery";
    private static readonly IPAddress Client = IPAddress.Parse("192.0.2.10");
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "appliance-dir-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly MailDirectory _directory;

    public DirectoryTests()
    {
        System.IO.Directory.CreateDirectory(_dir);
        _directory = NewDirectory(throttleAfter: 3);
        _directory.AddDomain("example.test");
    }

    private MailDirectory NewDirectory(int throttleAfter) =>
        new(Path.Combine(_dir, "directory.db"), ["a", "b"], new LoginThrottle(throttleAfter, TimeSpan.FromMinutes(5)));

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try { System.IO.Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private MailboxRecord Box(string local) => _directory.AddMailbox($"{local}@example.test", Password, 0);

    private IEnumerable<string> Resolve(string address) => _directory.Resolve(address).Select(b => b.Address).Order();

    // ---- addresses ----

    [Theory]
    [InlineData("Alice@Example.TEST", "alice@example.test")]
    [InlineData("  bob.smith@example.test ", "bob.smith@example.test")]
    [InlineData("o'brien+tag@example.test", "o'brien+tag@example.test")]
    [InlineData("user@example.test.", "user@example.test")]
    [InlineData("user@bücher.example", "user@xn--bcher-kva.example")]
    public void NormalizeAddress_AcceptsAndNormalizes(string input, string expected)
    {
        Assert.Equal(expected, Addresses.NormalizeAddress(input, out _));
    }

    [Theory]
    [InlineData("")]
    [InlineData("alice")]
    [InlineData("@example.test")]
    [InlineData("alice@")]
    [InlineData("alice@localhost")]
    [InlineData(".alice@example.test")]
    [InlineData("alice.@example.test")]
    [InlineData("al..ice@example.test")]
    [InlineData("al ice@example.test")]
    [InlineData("al\"ice@example.test")]
    [InlineData("alice@exa_mple.test")]
    [InlineData("alice@-example.test")]
    [InlineData("alice@example..test")]
    [InlineData("alice@[192.0.2.1]")]
    public void NormalizeAddress_RejectsWithAReason(string input)
    {
        Assert.Null(Addresses.NormalizeAddress(input, out var reason));
        Assert.False(string.IsNullOrWhiteSpace(reason));
        Assert.DoesNotContain('\n', reason);
    }

    [Fact]
    public void NormalizeAddress_LocalPartOver64Characters_IsRejected()
    {
        Assert.NotNull(Addresses.NormalizeAddress(new string('a', 64) + "@example.test", out _));
        Assert.Null(Addresses.NormalizeAddress(new string('a', 65) + "@example.test", out _));
    }

    [Fact]
    public void AddMailbox_RefusesBadInput_WithOneLineReasons()
    {
        Box("alice");

        Assert.Contains("already exists", Assert.Throws<DirectoryException>(() => Box("alice")).Message);
        Assert.Contains("already exists", Assert.Throws<DirectoryException>(() => _directory.AddMailbox("ALICE@example.test", Password, 0)).Message);
        Assert.Contains("unknown domain", Assert.Throws<DirectoryException>(() => _directory.AddMailbox("x@other.test", Password, 0)).Message);
        Assert.Contains("invalid address", Assert.Throws<DirectoryException>(() => _directory.AddMailbox("not an address", Password, 0)).Message);
        Assert.Contains("too short", Assert.Throws<DirectoryException>(() => _directory.AddMailbox("y@example.test", "short", 0)).Message);
        Assert.Throws<DirectoryException>(() => _directory.AddMailbox("y@example.test", Password, -1));
        Assert.Single(_directory.ListMailboxes(null));
    }

    [Fact]
    public void AddDomain_Duplicate_AndInvalid_AreRefused()
    {
        Assert.Throws<DirectoryException>(() => _directory.AddDomain("EXAMPLE.test"));
        Assert.Throws<DirectoryException>(() => _directory.AddDomain("nodot"));
        Assert.Throws<DirectoryException>(() => _directory.AddDomain("bad_domain.test"));
        Assert.Equal(["example.test"], _directory.ListDomains());
    }

    [Fact]
    public void Mailboxes_AreSpreadOverPartitions()
    {
        var partitions = new[] { "m1", "m2", "m3", "m4" }.Select(l => Box(l).Partition).ToList();

        Assert.Equal(2, partitions.Count(p => p == "a"));
        Assert.Equal(2, partitions.Count(p => p == "b"));
    }

    // ---- aliases ----

    [Fact]
    public void Alias_Rules()
    {
        Box("alice");
        _directory.AddAlias("team@example.test", ["alice@example.test"]);

        Assert.Contains("itself", Assert.Throws<DirectoryException>(() => _directory.AddAlias("self@example.test", ["self@example.test"])).Message);
        // Forwarding outside is an explicit target; the route keeps hosted mailboxes and outside targets apart.
        _directory.AddAlias("fwd@example.test", ["someone@elsewhere.test", "team@example.test"]);
        var route = _directory.Route("fwd@example.test");
        Assert.Equal(["alice@example.test"], route.Mailboxes.Select(b => b.Address));
        Assert.Equal(["someone@elsewhere.test"], route.Forwards);
        Assert.Equal(["alice@example.test"], _directory.Resolve("fwd@example.test").Select(b => b.Address));
        Assert.False(_directory.MaySendAs("alice@example.test", "someone@elsewhere.test"));
        _directory.RemoveAlias("fwd@example.test", null);
        Assert.Contains("neither a mailbox nor an alias", Assert.Throws<DirectoryException>(() => _directory.AddAlias("x@example.test", ["ghost@example.test"])).Message);
        Assert.Contains("is a mailbox", Assert.Throws<DirectoryException>(() => _directory.AddAlias("alice@example.test", ["team@example.test"])).Message);
        Assert.Contains("is an alias", Assert.Throws<DirectoryException>(() => _directory.AddMailbox("team@example.test", Password, 0)).Message);
        Assert.Contains("unknown domain", Assert.Throws<DirectoryException>(() => _directory.AddAlias("x@other.test", ["alice@example.test"])).Message);
        Assert.Throws<DirectoryException>(() => _directory.AddAlias("x@example.test", []));
        Assert.Equal([("team@example.test", "alice@example.test")], _directory.ListAliases(null).Select(a => (a.Source, a.Target)));
    }

    [Fact]
    public void RemovingAMailbox_RemovesItFromAliases()
    {
        Box("alice");
        Box("bob");
        _directory.AddAlias("team@example.test", ["alice@example.test", "bob@example.test"]);

        _directory.RemoveMailbox("bob@example.test");

        Assert.Equal(["alice@example.test"], Resolve("team@example.test"));
        Assert.Empty(Resolve("bob@example.test"));
    }

    [Fact]
    public void RemoveAlias_OneTargetOrAll()
    {
        Box("alice");
        Box("bob");
        _directory.AddAlias("team@example.test", ["alice@example.test", "bob@example.test"]);

        _directory.RemoveAlias("team@example.test", "BOB@example.test");
        Assert.Equal(["alice@example.test"], Resolve("team@example.test"));
        _directory.RemoveAlias("team@example.test", null);
        Assert.Empty(Resolve("team@example.test"));
        Assert.Throws<DirectoryException>(() => _directory.RemoveAlias("team@example.test", null));
    }

    // ---- resolution ----

    [Fact]
    public void Resolve_Semantics()
    {
        Box("alice");
        Box("bob");
        Box("carol");
        _directory.AddAlias("sales@example.test", ["alice@example.test", "bob@example.test"]);
        _directory.AddAlias("all@example.test", ["sales@example.test", "carol@example.test", "alice@example.test"]);

        Assert.Equal(["alice@example.test"], Resolve("alice@example.test"));
        Assert.Equal(["alice@example.test"], Resolve("ALICE@Example.Test"));
        Assert.Equal(["alice@example.test", "bob@example.test"], Resolve("sales@example.test"));
        Assert.Equal(["alice@example.test", "bob@example.test", "carol@example.test"], Resolve("all@example.test"));
        Assert.Equal(["alice@example.test"], Resolve("alice+news@example.test"));
        Assert.Equal(["alice@example.test", "bob@example.test"], Resolve("sales+q3@example.test"));
        Assert.Empty(Resolve("nobody@example.test"));
        Assert.Empty(Resolve("nobody+x@example.test"));
        Assert.Empty(Resolve("alice@elsewhere.test"));
    }

    [Fact]
    public void Resolve_CatchAll_OnlyForUnknownAddresses()
    {
        Box("alice");
        Box("postmaster");
        _directory.AddAlias("@example.test", ["postmaster@example.test"]);

        Assert.Equal(["postmaster@example.test"], Resolve("whoever@example.test"));
        Assert.Equal(["alice@example.test"], Resolve("alice@example.test"));
        // +detail of an existing mailbox goes to the mailbox, not to the catch-all.
        Assert.Equal(["alice@example.test"], Resolve("alice+x@example.test"));
    }

    [Fact]
    public void Resolve_DisabledMailbox_GetsNothing_NotEvenTheCatchAll()
    {
        Box("alice");
        Box("bob");
        _directory.AddAlias("@example.test", ["bob@example.test"]);
        _directory.AddAlias("team@example.test", ["alice@example.test", "bob@example.test"]);

        _directory.UpdateMailbox("alice@example.test", null, null, enabled: false);

        Assert.Empty(Resolve("alice@example.test"));
        Assert.Equal(["bob@example.test"], Resolve("team@example.test"));
    }

    [Fact]
    public void Resolve_AliasLoop_Terminates()
    {
        Box("alice");
        _directory.AddAlias("x@example.test", ["alice@example.test"]);
        _directory.AddAlias("y@example.test", ["x@example.test"]);
        _directory.AddAlias("x@example.test", ["y@example.test"]);

        Assert.Equal(["alice@example.test"], Resolve("y@example.test"));
    }

    // ---- authentication ----

    [Fact]
    public async Task Authenticate_RightAndWrongPassword()
    {
        Box("alice");

        var ok = await _directory.AuthenticateAsync("Alice@Example.test", Password, Client, CancellationToken.None);
        var bad = await _directory.AuthenticateAsync("alice@example.test", Password + "x", Client, CancellationToken.None);
        var unknown = await _directory.AuthenticateAsync("ghost@example.test", Password, Client, CancellationToken.None);

        Assert.Equal(AuthOutcome.Success, ok.Outcome);
        Assert.Equal("alice@example.test", ok.User!.Address);
        Assert.Equal(AuthOutcome.BadCredentials, bad.Outcome);
        Assert.Null(bad.User);
        Assert.Equal(AuthOutcome.BadCredentials, unknown.Outcome);
    }

    [Fact]
    public async Task MigratedSha512CryptHash_Authenticates_AndIsRehashedToArgon2id()
    {
        const string migrated = "Migrated pass 1";
        var crypt = await OpensslSha512CryptAsync(migrated);
        Assert.StartsWith("$6$", crypt);
        Box("legacy");
        _directory.SetPasswordHash("legacy@example.test", "{SHA512-CRYPT}" + crypt);

        Assert.Equal(AuthOutcome.BadCredentials, (await _directory.AuthenticateAsync("legacy@example.test", "wrong password", Client, CancellationToken.None)).Outcome);
        Assert.StartsWith("{SHA512-CRYPT}$6$", _directory.FindMailbox("legacy@example.test")!.PasswordHash);

        var first = await _directory.AuthenticateAsync("legacy@example.test", migrated, Client, CancellationToken.None);

        Assert.Equal(AuthOutcome.Success, first.Outcome);
        var rehashed = _directory.FindMailbox("legacy@example.test")!.PasswordHash;
        Assert.StartsWith("$argon2id$", rehashed);
        Assert.True(PasswordHasher.Verify(migrated, rehashed, out var again));
        Assert.False(again);
        Assert.Equal(AuthOutcome.Success, (await _directory.AuthenticateAsync("legacy@example.test", migrated, Client, CancellationToken.None)).Outcome);
        Assert.Equal(AuthOutcome.BadCredentials, (await _directory.AuthenticateAsync("legacy@example.test", Password, Client, CancellationToken.None)).Outcome);
    }

    [Fact]
    public async Task DisabledMailbox_FailsAuthentication_WithTheRightPassword()
    {
        Box("alice");
        _directory.UpdateMailbox("alice@example.test", null, null, enabled: false);

        Assert.Equal(AuthOutcome.BadCredentials, (await _directory.AuthenticateAsync("alice@example.test", Password, Client, CancellationToken.None)).Outcome);

        _directory.UpdateMailbox("alice@example.test", null, null, enabled: true);
        Assert.Equal(AuthOutcome.Success, (await _directory.AuthenticateAsync("alice@example.test", Password, Client, CancellationToken.None)).Outcome);
    }

    [Fact]
    public async Task AfterNFailures_TheRightPasswordIsThrottled_OnlyForThatAddress()
    {
        Box("alice");
        for (var i = 0; i < 3; i++)
            Assert.Equal(AuthOutcome.BadCredentials, (await _directory.AuthenticateAsync("alice@example.test", "wrong password", Client, CancellationToken.None)).Outcome);

        var throttled = await _directory.AuthenticateAsync("alice@example.test", Password, Client, CancellationToken.None);
        var otherClient = await _directory.AuthenticateAsync("alice@example.test", Password, IPAddress.Parse("192.0.2.99"), CancellationToken.None);

        Assert.Equal(AuthOutcome.Throttled, throttled.Outcome);
        Assert.Null(throttled.User);
        Assert.Equal(AuthOutcome.Success, otherClient.Outcome);
    }

    [Fact]
    public async Task ASuccessBeforeTheLimit_ClearsTheFailureCount()
    {
        Box("alice");
        for (var round = 0; round < 2; round++)
        {
            for (var i = 0; i < 2; i++)
                await _directory.AuthenticateAsync("alice@example.test", "wrong password", Client, CancellationToken.None);
            Assert.Equal(AuthOutcome.Success, (await _directory.AuthenticateAsync("alice@example.test", Password, Client, CancellationToken.None)).Outcome);
        }
    }

    [Fact]
    public async Task ChangedPassword_TakesEffect()
    {
        Box("alice");

        _directory.UpdateMailbox("alice@example.test", "brand new password", null, null);

        Assert.Equal(AuthOutcome.BadCredentials, (await _directory.AuthenticateAsync("alice@example.test", Password, Client, CancellationToken.None)).Outcome);
        Assert.Equal(AuthOutcome.Success, (await _directory.AuthenticateAsync("alice@example.test", "brand new password", Client, CancellationToken.None)).Outcome);
    }

    private static async Task<string> OpensslSha512CryptAsync(string password)
    {
        var psi = new ProcessStartInfo("openssl", ["passwd", "-6", "-stdin"])
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
        };
        using var p = Process.Start(psi)!;
        await p.StandardInput.WriteLineAsync(password);
        p.StandardInput.Close();
        var hash = (await p.StandardOutput.ReadToEndAsync()).Trim();
        await p.WaitForExitAsync();
        Assert.Equal(0, p.ExitCode);
        return hash;
    }
}
