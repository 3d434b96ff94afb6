using Appliance.Tests.Hosting;

namespace Appliance.Tests.Cli;

/// <summary>The CLI run from another machine against a node's API (--url, --token), as an operator's laptop would.</summary>
public sealed class ApiCommandsTests
{
    [Fact]
    public async Task TheCli_WithUrlAndToken_ManagesTheNodeThroughItsApi()
    {
        await using var node = await TestNode.StartAsync(["alice"], o => { o.Listen.Http = -1; o.Listen.Admin = 0; });
        var url = $"https://{node.Host.Endpoints["admin"]}/";
        var token = node.Directory.CreateToken("ops", "admin");
        var dir = Path.Combine(node.DataDirectory, "cli");
        System.IO.Directory.CreateDirectory(dir);
        Task<(int Exit, string Stdout, string Stderr)> Cli(string? stdin, params string[] args) =>
            ApplianceProcess.CommandAsync([.. args, "--url", url, "--token", token, "--insecure"], stdin);

        var domain = await Cli(null, "domain", "add", "remote.test");
        Assert.Equal((0, "domain remote.test added"), (domain.Exit, domain.Stdout.Trim()));
        Assert.Equal(0, (await Cli("zoe's password\n", "mailbox", "add", "zoe@remote.test", "--password-stdin", "--quota", "10M")).Exit);
        Assert.Equal(10L << 20, node.Directory.FindMailbox("zoe@remote.test")!.QuotaBytes);

        var bad = Path.Combine(dir, "bad.csv");
        await File.WriteAllTextAsync(bad, "a1@remote.test,long enough 1\nnot an address,long enough 2\n");
        var refused = await Cli(null, "import", bad);
        Assert.Equal(1, refused.Exit);
        Assert.Contains("line 2: invalid address", refused.Stderr);
        var good = Path.Combine(dir, "good.csv");
        await File.WriteAllTextAsync(good, "a1@remote.test,long enough 1\na2@remote.test,long enough 2,1G\n");
        var imported = await Cli(null, "import", good);
        Assert.Equal(0, imported.Exit);
        Assert.Contains("2 mailboxes imported", imported.Stdout);
        Assert.Contains("a2@remote.test\tenabled\tquota=1G", (await Cli(null, "mailbox", "list", "remote.test")).Stdout);
        Assert.Equal(0, (await Cli(null, "alias", "add", "team@remote.test", "a1@remote.test", "a2@remote.test")).Exit);
        Assert.Equal(0, (await Cli(null, "mailbox", "set", "a1@remote.test", "--disable")).Exit);
        Assert.False(node.Directory.FindMailbox("a1@remote.test")!.Enabled);
        Assert.Matches(@"^apl_[0-9a-f]{16}_", (await Cli(null, "token", "create", "--name", "laptop", "--scope", "read")).Stdout.Trim());
        Assert.Contains("already exists", (await Cli(null, "domain", "add", "remote.test")).Stderr);
        // What it did is in the audit log, as the token's.
        Assert.All(node.Host.Provisioning.Journal.List(null, 0, 10).Items, e => Assert.Equal("token:ops", e.Actor));

        // A node's self-signed certificate is refused unless --insecure; a wrong token is refused.
        var untrusted = await ApplianceProcess.CommandAsync(["domain", "list", "--url", url, "--token", token]);
        Assert.Equal(3, untrusted.Exit);
        var forged = await ApplianceProcess.CommandAsync(["domain", "list", "--url", url, "--token", "apl_0123456789abcdef_x", "--insecure"]);
        Assert.Equal(1, forged.Exit);
        Assert.Contains("not valid", forged.Stderr);
        Assert.Equal(2, (await ApplianceProcess.CommandAsync(["domain", "list", "--url", url])).Exit);
    }
}
