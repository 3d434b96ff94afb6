using System.Diagnostics;
using System.Text;
using Appliance.Cluster;
using Appliance.Cluster.Fencing;
using NLog;
using NLog.Config;
using NLog.Targets;

namespace Appliance.Tests.Cluster;

/// <summary>Fencing drivers against the real fence_dummy, scripted agents and a fake power strip over HTTP.</summary>
public sealed class FenceDriverTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "appliance-fence-" + Guid.NewGuid().ToString("N")[..12]);

    public FenceDriverTests() => System.IO.Directory.CreateDirectory(_dir);

    public void Dispose() => System.IO.Directory.Delete(_dir, recursive: true);

    // --- none ---

    [Fact]
    public async Task None_NeverConfirms()
    {
        var driver = FenceDrivers.Create(new FencingOptions { Driver = "none" });
        var outcome = await driver.PowerOffAsync("node2", CancellationToken.None);
        Assert.Equal("none", driver.Name);
        Assert.Equal(new FenceOutcome(false, "no fencing device configured"), outcome);
    }

    // --- agent ---

    [Fact]
    public async Task Agent_FenceDummy_OffIsConfirmed_AndStatusFileSaysOff()
    {
        var statusFile = Path.Combine(_dir, "node2.status");
        await File.WriteAllTextAsync(statusFile, "on");
        var driver = FenceDrivers.Create(Agent("fence_dummy", ("status_file", statusFile)));

        var outcome = await driver.PowerOffAsync("node2", CancellationToken.None);

        Assert.True(outcome.Confirmed, outcome.Detail);
        Assert.Equal("off", await File.ReadAllTextAsync(statusFile));
    }

    [Fact]
    public async Task Agent_FenceDummyBadArgument_NotConfirmed()
    {
        var driver = FenceDrivers.Create(Agent("fence_dummy", ("random_sleep_range", "abc")));
        var outcome = await driver.PowerOffAsync("node2", CancellationToken.None);
        Assert.False(outcome.Confirmed);
        Assert.Contains("exit 1", outcome.Detail, StringComparison.Ordinal);
        Assert.Contains("invalid literal", outcome.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Agent_ExitCode1_NotConfirmed_WithItsMessage()
    {
        var script = Script("failing", "cat >/dev/null\necho 'ERROR: Failed: Unable to connect/login to fencing device' >&2\nexit 1");
        var outcome = await FenceDrivers.Create(Agent(script)).PowerOffAsync("node2", CancellationToken.None);
        Assert.False(outcome.Confirmed);
        Assert.Equal("agent off failed (exit 1): ERROR: Failed: Unable to connect/login to fencing device", outcome.Detail);
    }

    [Fact]
    public async Task Agent_StatusStillOn_NotConfirmed()
    {
        var script = Script("liar", "cat >/dev/null\necho 'Status: ON'\nexit 0");
        var outcome = await FenceDrivers.Create(Agent(script)).PowerOffAsync("node2", CancellationToken.None);
        Assert.False(outcome.Confirmed);
        Assert.Contains("status reports on", outcome.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Agent_WithoutStatusAction_SuccessfulOffIsConfirmed()
    {
        var script = Script("nostatus", """
            case "$(cat)" in
              *action=status*) echo "ERROR: Failed: Unrecognised action 'status'" >&2; exit 1;;
            esac
            echo 'Success: Powered OFF'
            """);
        var outcome = await FenceDrivers.Create(Agent(script)).PowerOffAsync("node2", CancellationToken.None);
        Assert.True(outcome.Confirmed, outcome.Detail);
        Assert.Contains("no status action", outcome.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Agent_Hanging_IsKilledAfterTimeout()
    {
        var script = Script("hang", $"echo $$ > {_dir}/agent.pid\nsleep 60 &\necho $! > {_dir}/child.pid\nwait");
        var options = Agent(script);
        options.TimeoutSeconds = 1;

        var clock = Stopwatch.StartNew();
        var outcome = await FenceDrivers.Create(options).PowerOffAsync("node2", CancellationToken.None);

        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
        Assert.False(outcome.Confirmed);
        Assert.Contains("within 1s", outcome.Detail, StringComparison.Ordinal);
        Assert.False(await IsRunningAsync(Path.Combine(_dir, "agent.pid")), "the agent still runs");
        Assert.False(await IsRunningAsync(Path.Combine(_dir, "child.pid")), "the agent's child still runs");
    }

    [Fact]
    public async Task Agent_PasswordGoesOnStdin_NotOnTheCommandLineNorInTheLog()
    {
        const string password = "Tr0ub4dor&3 pass";
        var script = Script("recorder", $"""
            input=$(cat)
            printf '%s\n--\n' "$input" >> {_dir}/stdin.txt
            tr '\0' ' ' < /proc/$$/cmdline >> {_dir}/cmdline.txt
            tr '\0' '\n' < /proc/$$/environ >> {_dir}/environ.txt
            case "$input" in *action=status*) exit 2;; esac
            exit 0
            """);
        var options = Agent(script, ("ip", "10.0.0.9"), ("username", "admin"), ("password", password));
        options.Plugs["node2"] = "7";
        var (log, logs) = MemoryLog();

        var outcome = await FenceDrivers.Create(options, log).PowerOffAsync("node2", CancellationToken.None);

        Assert.True(outcome.Confirmed, outcome.Detail);
        var stdin = await File.ReadAllTextAsync(Path.Combine(_dir, "stdin.txt"));
        Assert.Equal(
            $"action=off\nplug=7\nip=10.0.0.9\nusername=admin\npassword={password}\n--\n" +
            $"action=status\nplug=7\nip=10.0.0.9\nusername=admin\npassword={password}\n--\n",
            stdin);
        Assert.DoesNotContain("Tr0ub4dor", await File.ReadAllTextAsync(Path.Combine(_dir, "cmdline.txt")), StringComparison.Ordinal);
        Assert.DoesNotContain("Tr0ub4dor", await File.ReadAllTextAsync(Path.Combine(_dir, "environ.txt")), StringComparison.Ordinal);
        Assert.Contains(logs.Logs, l => l.Contains("fence attempt driver=agent node=node2 plug=7", StringComparison.Ordinal));
        Assert.Contains(logs.Logs, l => l.Contains("fence confirmed driver=agent node=node2", StringComparison.Ordinal));
        Assert.DoesNotContain(logs.Logs, l => l.Contains("Tr0ub4dor", StringComparison.Ordinal));
    }

    // --- http ---

    [Fact]
    public async Task Http_OffThenStatusOff_Confirmed()
    {
        await using var strip = new FakePowerStrip();
        var options = Http(strip);
        var (log, logs) = MemoryLog();

        var outcome = await FenceDrivers.Create(options, log).PowerOffAsync("node2", CancellationToken.None);

        Assert.True(outcome.Confirmed, outcome.Detail);
        Assert.Equal("status reports off: outlet 2: OFF", outcome.Detail);
        Assert.Equal("OFF", strip.Outlets["2"]);
        Assert.Equal("POST /outlet/2/off?host=node2 HTTP/1.1", strip.Requests.First().RequestLine);
        Assert.Contains(logs.Logs, l => l.Contains("fence attempt driver=http node=node2 plug=2", StringComparison.Ordinal));
        Assert.Contains(logs.Logs, l => l.Contains("fence confirmed driver=http node=node2", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Http_PlugAndNodeAreUrlEscaped()
    {
        await using var strip = new FakePowerStrip();
        var options = Http(strip);
        options.Plugs = new() { ["node 2"] = "A 1/2" };

        var outcome = await FenceDrivers.Create(options).PowerOffAsync("node 2", CancellationToken.None);

        Assert.True(outcome.Confirmed, outcome.Detail);
        Assert.Equal("POST /outlet/A%201%2F2/off?host=node%202 HTTP/1.1", strip.Requests.First().RequestLine);
        Assert.Equal("OFF", strip.Outlets["A 1/2"]);
    }

    [Fact]
    public async Task Http_ServerError_NotConfirmed()
    {
        await using var strip = new FakePowerStrip { OffStatus = 500 };
        var outcome = await FenceDrivers.Create(Http(strip)).PowerOffAsync("node2", CancellationToken.None);
        Assert.False(outcome.Confirmed);
        Assert.Equal("off request answered HTTP 500 relay error", outcome.Detail);
        Assert.False(strip.Outlets.ContainsKey("2"));
    }

    [Fact]
    public async Task Http_StatusStaysOn_NotConfirmedWithinTimeout()
    {
        await using var strip = new FakePowerStrip { Switches = false };
        var options = Http(strip);
        options.TimeoutSeconds = 1;

        var outcome = await FenceDrivers.Create(options).PowerOffAsync("node2", CancellationToken.None);

        Assert.False(outcome.Confirmed);
        Assert.Equal("status not off within 1s, last: outlet 2: ON", outcome.Detail);
        Assert.True(strip.Requests.Count(r => r.RequestLine.Contains("/status", StringComparison.Ordinal)) >= 2, "status was polled only once");
    }

    [Fact]
    public async Task Http_WithoutStatusUrl_A2xxConfirms()
    {
        await using var strip = new FakePowerStrip();
        var options = Http(strip);
        options.StatusUrl = "";
        var outcome = await FenceDrivers.Create(options).PowerOffAsync("node2", CancellationToken.None);
        Assert.True(outcome.Confirmed, outcome.Detail);
        Assert.Single(strip.Requests);
    }

    [Fact]
    public async Task Http_BasicAuth_IsSent_AndAWrongPasswordFails()
    {
        await using var strip = new FakePowerStrip { RequiredAuthorization = "Basic " + Convert.ToBase64String(Encoding.UTF8.GetBytes("admin:s3cret")) };
        var options = Http(strip);
        options.User = "admin";
        options.Password = "s3cret";
        var (log, logs) = MemoryLog();

        var outcome = await FenceDrivers.Create(options, log).PowerOffAsync("node2", CancellationToken.None);

        Assert.True(outcome.Confirmed, outcome.Detail);
        Assert.All(strip.Requests, r => Assert.Equal(strip.RequiredAuthorization, r.Authorization));
        Assert.DoesNotContain(logs.Logs, l => l.Contains("s3cret", StringComparison.Ordinal));

        options.Password = "wrong";
        var refused = await FenceDrivers.Create(options).PowerOffAsync("node2", CancellationToken.None);
        Assert.False(refused.Confirmed);
        Assert.Contains("HTTP 401", refused.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Http_Unreachable_NotConfirmed()
    {
        var strip = new FakePowerStrip();
        var options = Http(strip);
        await strip.DisposeAsync();
        var outcome = await FenceDrivers.Create(options).PowerOffAsync("node2", CancellationToken.None);
        Assert.False(outcome.Confirmed);
        Assert.StartsWith("power strip unreachable", outcome.Detail, StringComparison.Ordinal);
    }

    // --- configuration ---

    [Theory]
    [InlineData("unknown driver", "Driver \"ipmi\" is unknown")]
    [InlineData("http without OffUrl", "OffUrl is required")]
    [InlineData("http relative OffUrl", "OffUrl must be an absolute http")]
    [InlineData("http bad pattern", "OffPattern is not a valid regular expression")]
    [InlineData("http plug without Plugs", "uses {plug} but Cluster:Fencing:Plugs is empty")]
    [InlineData("http zero timeout", "TimeoutSeconds must be positive")]
    [InlineData("agent without Agent", "Agent is required")]
    [InlineData("agent not found", "Agent \"fence_nonexistent_xyz\" was not found")]
    [InlineData("agent sets action", "must not set \"action\"")]
    [InlineData("agent newline in value", "is not a single key=value line")]
    public void Create_RejectsBadConfiguration(string name, string message)
    {
        var options = name switch
        {
            "unknown driver" => new FencingOptions { Driver = "ipmi" },
            "http without OffUrl" => new FencingOptions { Driver = "http" },
            "http relative OffUrl" => new FencingOptions { Driver = "http", OffUrl = "/outlet/1/off" },
            "http bad pattern" => new FencingOptions { Driver = "http", OffUrl = "http://strip/off", OffPattern = "(off" },
            "http plug without Plugs" => new FencingOptions { Driver = "http", OffUrl = "http://strip/outlet/{plug}/off" },
            "http zero timeout" => new FencingOptions { Driver = "http", OffUrl = "http://strip/off", TimeoutSeconds = 0 },
            "agent without Agent" => new FencingOptions { Driver = "agent" },
            "agent not found" => new FencingOptions { Driver = "agent", Agent = "fence_nonexistent_xyz" },
            "agent sets action" => Agent("fence_dummy", ("action", "reboot")),
            "agent newline in value" => Agent("fence_dummy", ("password", "x\naction=on")),
            _ => throw new ArgumentOutOfRangeException(nameof(name)),
        };
        var ex = Assert.Throws<InvalidOperationException>(() => FenceDrivers.Create(options));
        Assert.Contains(message, ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_FindsAgentsInSbinAndNamesDrivers()
    {
        Assert.Equal("agent", FenceDrivers.Create(Agent("fence_dummy")).Name);
        Assert.Equal("http", FenceDrivers.Create(new FencingOptions { Driver = "http", OffUrl = "http://strip/off" }).Name);
    }

    private static FencingOptions Agent(string agent, params (string Key, string Value)[] args) => new()
    {
        Driver = "agent",
        Agent = agent,
        TimeoutSeconds = 15,
        AgentArgs = args.ToDictionary(a => a.Key, a => a.Value),
    };

    private static FencingOptions Http(FakePowerStrip strip) => new()
    {
        Driver = "http",
        Plugs = new() { ["node1"] = "1", ["node2"] = "2" },
        OffUrl = strip.BaseUrl + "/outlet/{plug}/off?host={node}",
        OffMethod = "POST",
        StatusUrl = strip.BaseUrl + "/outlet/{plug}/status",
        TimeoutSeconds = 10,
    };

    private string Script(string name, string body)
    {
        var path = Path.Combine(_dir, name);
        File.WriteAllText(path, "#!/bin/sh\n" + body + "\n");
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private static (Logger Log, MemoryTarget Target) MemoryLog()
    {
        var factory = new LogFactory();
        var memory = new MemoryTarget("memory") { Layout = "${level}|${message}" };
        var config = new LoggingConfiguration(factory);
        config.AddRuleForAllLevels(memory);
        factory.Configuration = config;
        return (factory.GetLogger("fence"), memory);
    }

    // Killed processes may linger briefly as zombies until reaped; a zombie no longer runs.
    private static async Task<bool> IsRunningAsync(string pidFile)
    {
        var pid = (await File.ReadAllTextAsync(pidFile)).Trim();
        for (var i = 0; i < 50; i++)
        {
            var stat = $"/proc/{pid}/stat";
            if (!File.Exists(stat) || (await File.ReadAllTextAsync(stat)).Split(") ")[^1].StartsWith('Z'))
                return false;
            await Task.Delay(100);
        }
        return true;
    }
}
