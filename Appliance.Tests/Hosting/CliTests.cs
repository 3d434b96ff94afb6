using System.Net;
using System.Text.Json;
using System.Text.RegularExpressions;
using Appliance.Tests.Smtp;
using Microsoft.Data.Sqlite;

namespace Appliance.Tests.Hosting;

/// <summary>The command-line contract of DESIGN.md §5, against the real program in a child process.</summary>
public sealed class CliTests : IDisposable
{
    private readonly string _data = Path.Combine(Path.GetTempPath(), "appliance-cli-" + Guid.NewGuid().ToString("N")[..12]);

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try { System.IO.Directory.Delete(_data, recursive: true); }
        catch (IOException) { }
    }

    private Task<(int Exit, string Stdout, string Stderr)> CliWithInput(string stdin, params string[] args) =>
        ApplianceProcess.CommandAsync([.. args, "--data", _data], stdin);

    private Task<(int Exit, string Stdout, string Stderr)> Cli(params string[] args) =>
        ApplianceProcess.CommandAsync([.. args, "--data", _data]);

    private static readonly Regex AdminLine = new(@"admin credential \(shown once\)\s+user: admin\s+password: (\S{12,})");

    [Fact]
    public async Task FirstStart_PrintsTheAdminCredentialOnce_AndSigtermStopsCleanly()
    {
        await using (var first = await ApplianceProcess.RunAsync(["--data", _data]))
        {
            Assert.Single(AdminLine.Matches(first.Stdout));
            Assert.Equal(0, await first.SignalAndWaitAsync("TERM"));
            Assert.Contains("stopped", first.Stdout);
        }

        await using var second = await ApplianceProcess.RunAsync(["--data", _data]);
        Assert.DoesNotMatch(AdminLine, second.Stdout);
        Assert.DoesNotContain("password", second.Stdout, StringComparison.OrdinalIgnoreCase);
        Assert.Equal(0, await second.SignalAndWaitAsync("TERM"));
    }

    [Fact]
    public async Task CtrlC_StopsCleanly()
    {
        await using var node = await ApplianceProcess.RunAsync(["--data", _data]);

        Assert.Equal(0, await node.SignalAndWaitAsync("INT"));
        Assert.Contains("stopped", node.Stdout);
    }

    [Fact]
    public async Task ManagementCommands_Work_AndTakeEffect()
    {
        await using var node = await ApplianceProcess.RunAsync(["--data", _data]);
        var port = await node.SmtpPortAsync();

        var domain = await Cli("domain", "add", "example.test");
        var mailbox = await CliWithInput("s3cret password\n", "mailbox", "add", "alice@example.test", "--password-stdin", "--quota", "500M");
        var second = await CliWithInput("another password\n", "mailbox", "add", "bob@example.test", "--password-stdin");
        var alias = await Cli("alias", "add", "team@example.test", "alice@example.test", "bob@example.test");
        var list = await Cli("mailbox", "list");
        var aliases = await Cli("alias", "list", "example.test");
        var domains = await Cli("domain", "list");

        Assert.Equal((0, ""), (domain.Exit, domain.Stderr));
        Assert.Equal((0, ""), (mailbox.Exit, mailbox.Stderr));
        Assert.Contains("alice@example.test", mailbox.Stdout);
        Assert.Equal(0, second.Exit);
        Assert.Equal((0, ""), (alias.Exit, alias.Stderr));
        Assert.Equal(0, list.Exit);
        var rows = list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(2, rows.Length);
        Assert.StartsWith("alice@example.test\tenabled\tquota=500M", rows[0]);
        Assert.StartsWith("bob@example.test\tenabled", rows[1]);
        Assert.Equal(["team@example.test\talice@example.test", "team@example.test\tbob@example.test"], aliases.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal("example.test", domains.Stdout.Trim());

        // The running node's MX now accepts the new addresses and still refuses others.
        await using var smtp = await RawSmtp.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        await smtp.SendAsync("EHLO client.test");
        await smtp.SendAsync("MAIL FROM:<s@remote.test>");
        Assert.StartsWith("250", await smtp.SendAsync("RCPT TO:<alice@example.test>"));
        Assert.StartsWith("250", await smtp.SendAsync("RCPT TO:<team@example.test>"));
        Assert.StartsWith("550 5.1.1", await smtp.SendAsync("RCPT TO:<carol@example.test>"));
    }

    [Fact]
    public async Task BadInput_ExitsNonZero_WithOneLineReason()
    {
        await using var node = await ApplianceProcess.RunAsync(["--data", _data]);
        Assert.Equal(0, (await Cli("domain", "add", "example.test")).Exit);
        Assert.Equal(0, (await CliWithInput("s3cret password\n", "mailbox", "add", "alice@example.test", "--password-stdin")).Exit);

        var cases = new (string Why, Task<(int Exit, string Stdout, string Stderr)> Run, string Reason)[]
        {
            ("invalid address", CliWithInput("s3cret password\n", "mailbox", "add", "not-an-address", "--password-stdin"), "invalid address"),
            ("duplicate mailbox", CliWithInput("s3cret password\n", "mailbox", "add", "alice@example.test", "--password-stdin"), "already exists"),
            ("unknown domain", CliWithInput("s3cret password\n", "mailbox", "add", "x@unknown.test", "--password-stdin"), "unknown domain"),
            ("duplicate domain", Cli("domain", "add", "example.test"), "already exists"),
            ("invalid domain", Cli("domain", "add", "no_such"), "invalid domain"),
            ("alias to nobody", Cli("alias", "add", "fwd@example.test", "ghost@example.test"), "neither a mailbox nor an alias"),
            ("no password", Cli("mailbox", "add", "bob@example.test"), "password"),
            ("bad quota", CliWithInput("s3cret password\n", "mailbox", "add", "bob@example.test", "--password-stdin", "--quota", "lots"), "bad size"),
            ("unknown subcommand", Cli("mailbox", "frobnicate"), "unknown command"),
        };
        foreach (var (why, run, reason) in cases)
        {
            var (exit, stdout, stderr) = await run;
            Assert.True(exit != 0, $"{why}: exit code 0");
            var lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.True(lines.Length == 1, $"{why}: expected one line on stderr, got: {stderr}");
            Assert.Contains(reason, lines[0]);
            Assert.Equal("", stdout);
        }

        var list = await Cli("mailbox", "list");
        Assert.Single(list.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task ManagementCommand_WithoutARunningNode_ExitsNonZero_WithOneLineReason()
    {
        System.IO.Directory.CreateDirectory(_data);

        var (exit, _, stderr) = await Cli("domain", "list");

        Assert.NotEqual(0, exit);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("control socket", stderr);
    }

    [Fact]
    public async Task Version_PrintsAVersion()
    {
        var (exit, stdout, _) = await ApplianceProcess.CommandAsync(["version"]);

        Assert.Equal(0, exit);
        Assert.Matches(@"^appliance \d+\.\d+\.\d+", stdout.Trim());
    }

    [Fact]
    public async Task UnknownCommand_ExitsNonZero()
    {
        var (exit, _, stderr) = await ApplianceProcess.CommandAsync(["frobnicate"]);

        Assert.NotEqual(0, exit);
        Assert.Contains("unknown command 'frobnicate'", stderr);
    }

    [Fact]
    public async Task ConfigFile_SetsThePort_AndTheEnvironmentOverridesIt()
    {
        var filePort = ApplianceProcess.FreePort();
        var envPort = ApplianceProcess.FreePort();
        System.IO.Directory.CreateDirectory(_data);
        var config = Path.Combine(_data, "appliance.json");
        File.WriteAllText(config, JsonSerializer.Serialize(new Dictionary<string, object>
        {
            ["Listen"] = new Dictionary<string, object>
            {
                ["Address"] = "127.0.0.1",
                ["Smtp"] = filePort,
                ["Submission"] = -1,
                ["Smtps"] = -1,
                ["Imap"] = -1,
                ["Imaps"] = -1,
                ["Pop3"] = -1,
                ["Pop3s"] = -1,
                ["ManageSieve"] = -1,
                ["Http"] = -1,
                ["Https"] = -1,
            },
            ["Node"] = new Dictionary<string, object> { ["Hostname"] = "mx.config.test", ["DataDirectory"] = _data },
        }));
        var noSmtpEnv = ApplianceProcess.DefaultEnvironment();
        noSmtpEnv.Remove("APPLIANCE__Listen__Smtp");

        await using (var fromFile = await ApplianceProcess.RunAsync(["--config", config], noSmtpEnv))
        {
            Assert.Equal(filePort, await fromFile.SmtpPortAsync());
            await using (var c = await RawSmtp.ConnectAsync(new IPEndPoint(IPAddress.Loopback, filePort)))
                Assert.Contains("mx.config.test", await c.SendAsync("EHLO client.test"));
            Assert.Equal(0, await fromFile.SignalAndWaitAsync("TERM"));
        }

        var env = ApplianceProcess.DefaultEnvironment();
        env["APPLIANCE__Listen__Smtp"] = envPort.ToString();
        await using var fromEnv = await ApplianceProcess.RunAsync(["--config", config], env);
        Assert.Equal(envPort, await fromEnv.SmtpPortAsync());
        Assert.Equal(0, await fromEnv.SignalAndWaitAsync("TERM"));
    }

    [Fact]
    public async Task MissingConfigFile_ExitsNonZero_WithOneLineReason()
    {
        var (exit, _, stderr) = await ApplianceProcess.CommandAsync(["run", "--config", Path.Combine(_data, "nope.json"), "--data", _data]);

        Assert.NotEqual(0, exit);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Contains("not found", stderr);
    }

    [Fact]
    public async Task Import_Token_AndDisable_WorkThroughTheRunningNode()
    {
        await using var node = await ApplianceProcess.RunAsync(["--data", _data]);
        Assert.Equal(0, (await Cli("domain", "add", "example.test")).Exit);
        var hash = (await Openssl("passwd", "-6", "-salt", "migrated", "old secret 1")).Trim();

        var bad = Path.Combine(_data, "bad.csv");
        await File.WriteAllTextAsync(bad, "address,password,quota\nok@example.test,long enough 1,1G\nnot-an-address,long enough 2\nx@unknown.test,long enough 3\nmd5@example.test,{PLAIN-MD5}1a1dc91c907325c69271ddf0c944bc72\n");
        var refused = await Cli("import", bad);
        Assert.NotEqual(0, refused.Exit);
        Assert.Contains("line 3", refused.Stderr);
        Assert.Contains("line 4", refused.Stderr);
        Assert.Contains("line 5: unsupported password hash", refused.Stderr);
        Assert.DoesNotContain("ok@example.test", (await Cli("mailbox", "list")).Stdout); // nothing half-applied

        var good = Path.Combine(_data, "good.csv");
        await File.WriteAllTextAsync(good, $"a1@example.test,long enough 1,500M\na2@example.test,{{SHA512-CRYPT}}{hash}\n");
        var imported = await Cli("import", good);
        Assert.Equal(0, imported.Exit);
        Assert.Contains("2 mailboxes imported", imported.Stdout);
        var list = (await Cli("mailbox", "list", "example.test")).Stdout;
        Assert.Contains("a1@example.test\tenabled\tquota=500M", list);
        Assert.Contains("a2@example.test", list);

        var token = await Cli("token", "create", "--name", "ci", "--scope", "provision");
        Assert.Equal(0, token.Exit);
        Assert.Matches(@"^apl_[0-9a-f]{16}_[A-Za-z0-9_-]{40,}$", token.Stdout.Trim());
        Assert.NotEqual(0, (await Cli("token", "create", "--scope", "everything")).Exit);
        Assert.Contains("password too short", (await CliWithInput("short\n", "admin", "password", "admin", "--password-stdin")).Stderr);
        Assert.Equal(2, (await Cli("admin", "password", "admin")).Exit);
        Assert.Equal(0, (await CliWithInput("the new admin password\n", "admin", "password", "admin", "--password-stdin")).Exit);
        var removed = await Cli("mailbox", "remove", "a2@example.test");
        Assert.Contains("mail kept until", removed.Stdout);
        Assert.Contains("purge it first", (await CliWithInput("long enough 9\n", "mailbox", "add", "a2@example.test", "--password-stdin")).Stderr);
        Assert.Equal(0, (await Cli("mailbox", "purge", "a2@example.test")).Exit);
        Assert.Equal(0, (await CliWithInput("long enough 9\n", "mailbox", "add", "a2@example.test", "--password-stdin")).Exit);

        Assert.Equal(0, (await Cli("mailbox", "set", "a1@example.test", "--disable")).Exit);
        Assert.Contains("a1@example.test\tdisabled", (await Cli("mailbox", "list")).Stdout);
        var port = await node.SmtpPortAsync();
        await using var smtp = await RawSmtp.ConnectAsync(new IPEndPoint(IPAddress.Loopback, port));
        await smtp.SendAsync("EHLO client.test");
        await smtp.SendAsync("MAIL FROM:<s@remote.test>");
        Assert.StartsWith("550 5.2.1", await smtp.SendAsync("RCPT TO:<a1@example.test>"));
    }

    private static async Task<string> Openssl(params string[] args)
    {
        using var p = System.Diagnostics.Process.Start(new System.Diagnostics.ProcessStartInfo("openssl", args) { RedirectStandardOutput = true })!;
        var output = await p.StandardOutput.ReadToEndAsync();
        await p.WaitForExitAsync();
        Assert.Equal(0, p.ExitCode);
        return output;
    }
}
