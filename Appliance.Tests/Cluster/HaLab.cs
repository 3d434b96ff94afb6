using System.Diagnostics;
using System.Text.Json;
using Xunit.Abstractions;

namespace Appliance.Tests.Cluster;

/// <summary>
/// The HA fault suite's lab: lab/lab.sh namespaces, two real appliance processes started by
/// lab/pair.sh, and lab/ha_client.py delivering over SMTP to the units' floating addresses from
/// the client namespace and reading back over IMAP. One scenario = load running, a fault, the
/// recovery, then the count: every 250 must be readable (lost), none twice (duplicated), and no
/// floating address may be up on both nodes while both run (dual_active).
/// </summary>
public sealed class HaLab : IAsyncDisposable
{
    public const string FloatingA = "10.77.0.10";
    public const string FloatingB = "10.77.0.11";
    private readonly ITestOutputHelper _output;
    private readonly string _root = RepoRoot();
    public string Prefix { get; } = $"h{Convert.ToHexString(Guid.NewGuid().ToByteArray(), 0, 2).ToLowerInvariant()}-";
    public string Dir { get; }
    public string Exe { get; } = Environment.GetEnvironmentVariable("APPLIANCE_EXE") is { Length: > 0 } exe ? exe : $"dotnet {Path.Combine(AppContext.BaseDirectory, "appliance.dll")}";

    private HaLab(ITestOutputHelper output)
    {
        _output = output;
        Dir = Path.Combine(Path.GetTempPath(), "appliance-ha-" + Prefix);
    }

    public static async Task<HaLab> StartAsync(ITestOutputHelper output)
    {
        var lab = new HaLab(output);
        System.IO.Directory.CreateDirectory(lab.Dir);
        await lab.MustAsync("lab.sh", "up");
        await lab.StartNodeAsync("node1");
        await lab.StartNodeAsync("node2");
        await lab.MustAsync("pair.sh", "provision");
        return lab;
    }

    public static string RepoRoot()
    {
        for (var dir = new DirectoryInfo(AppContext.BaseDirectory); dir is not null; dir = dir.Parent)
            if (File.Exists(Path.Combine(dir.FullName, "Appliance.sln"))) return dir.FullName;
        throw new InvalidOperationException($"no Appliance.sln above {AppContext.BaseDirectory}");
    }

    public async Task<(int Exit, string Output)> RunAsync(string script, params string[] args)
    {
        var psi = new ProcessStartInfo("bash") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        psi.ArgumentList.Add(Path.Combine(_root, "lab", script));
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.ArgumentList.Add("--prefix");
        psi.ArgumentList.Add(Prefix);
        if (script == "pair.sh")
        {
            psi.ArgumentList.Add("--dir");
            psi.ArgumentList.Add(Dir);
        }
        psi.Environment["APPLIANCE_EXE"] = Exe;
        psi.Environment["LC_ALL"] = "C";
        using var p = Process.Start(psi)!;
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
        return (p.ExitCode, await stdout + await stderr);
    }

    public async Task<string> MustAsync(string script, params string[] args)
    {
        var (exit, text) = await RunAsync(script, args);
        Assert.True(exit == 0, $"{script} {string.Join(' ', args)} exited {exit}: {text}");
        return text;
    }

    public Task StartNodeAsync(string node, bool alone = false) => alone ? MustAsync("pair.sh", "start", node, "--alone") : MustAsync("pair.sh", "start", node);
    public Task KillNodeAsync(string node) => MustAsync("pair.sh", "kill", node);

    public bool Running(string node) =>
        File.Exists(Path.Combine(Dir, node + ".pid")) && int.TryParse(File.ReadAllText(Path.Combine(Dir, node + ".pid")).Trim(), out var pid)
        && File.Exists($"/proc/{pid}/status") && !File.ReadAllText($"/proc/{pid}/status").Contains("State:\tZ");

    /// <summary>The node's own view ("unit store-a: active on node1, … replication in sync"), or empty when it does not answer.</summary>
    public async Task<string> StatusAsync(string node)
    {
        if (!Running(node)) return "";
        var (exit, text) = await RunAsync("pair.sh", "cli", node, "cluster", "status");
        return exit == 0 ? text : "";
    }

    /// <summary>Whether <paramref name="node"/> itself runs the unit (as reported by that node).</summary>
    public async Task<bool> ActiveOnAsync(string node, string unit) =>
        (await StatusAsync(node)).Split('\n').Any(l => l.StartsWith($"unit {unit}: active on {node}", StringComparison.Ordinal));

    public async Task<bool> InSyncOnAsync(string node, string unit) =>
        (await StatusAsync(node)).Split('\n').Any(l => l.StartsWith($"unit {unit}: active on {node}", StringComparison.Ordinal) && l.Contains("replication in sync"));

    public async Task WaitAsync(Func<Task<bool>> condition, string what, int seconds = 60)
    {
        var sw = Stopwatch.StartNew();
        while (sw.Elapsed.TotalSeconds < seconds)
        {
            if (await condition()) return;
            await Task.Delay(200);
        }
        throw new TimeoutException($"{what} not reached in {seconds} s\nnode1:\n{await StatusAsync("node1")}\nnode2:\n{await StatusAsync("node2")}");
    }

    /// <summary>Both nodes up, links healed, each unit on its preferred node with its replica in sync.</summary>
    public async Task EnsureHealthyAsync()
    {
        File.Delete(Path.Combine(Dir, "fence-unreachable"));
        foreach (var node in new[] { "node1", "node2" })
        {
            await MustAsync("lab.sh", "poweron", node);
            if (!Running(node)) await StartNodeAsync(node);
        }
        await WaitAsync(async () => await InSyncOnAsync("node1", "store-a") && await InSyncOnAsync("node2", "store-b"), "both units on their preferred nodes, in sync", 90);
    }

    /// <summary>Samples, every 100 ms, whether a floating address is up on both nodes at once while both processes run.</summary>
    private async Task<int> WatchDualActiveAsync(CancellationToken ct)
    {
        var samples = 0;
        while (!ct.IsCancellationRequested)
        {
            if (Running("node1") && Running("node2"))
            {
                // node1 is read before and after node2: an address on node1 both times and on
                // node2 in between was up on both at one moment (two reads alone could straddle
                // a handover and see the address on each side of it).
                var before = await AddressesAsync("node1");
                var b = await AddressesAsync("node2");
                var after = await AddressesAsync("node1");
                foreach (var ip in new[] { FloatingA, FloatingB })
                    if (before.Contains(ip + "/") && b.Contains(ip + "/") && after.Contains(ip + "/") && Running("node1") && Running("node2")) samples++;
            }
            try { await Task.Delay(100, ct); } catch (OperationCanceledException) { }
        }
        return samples;
    }

    private async Task<string> AddressesAsync(string node) =>
        (await HostCommand.RunAsync("ip", "-n", Prefix + node, "-o", "-4", "addr", "show", "dev", "pub0")).Output;

    public sealed record Result(string Name, int Lost, int Duplicated, int DualActive, long DowntimeMs, int Acked, string? Error)
    {
        public string Line => $"scenario {Name} lost={Lost} duplicated={Duplicated} dual_active={DualActive} downtime_ms={DowntimeMs}";
    }

    /// <summary>Runs one scenario under load and counts what the clients saw.</summary>
    public async Task<Result> RunScenarioAsync(string name, Func<Task> faultAndRecovery)
    {
        string? error = null;
        await EnsureHealthyAsync();
        var log = Path.Combine(Dir, $"load-{name}.log");
        var stop = Path.Combine(Dir, $"stop-{name}");
        var client = new ProcessStartInfo("ip") { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var a in new[] { "netns", "exec", Prefix + "client", "python3", Path.Combine(_root, "lab", "ha_client.py"), "send",
            "--target", $"a:{FloatingA}:25:alice@lab.test", "--target", $"b:{FloatingB}:25:bob@lab.test",
            // Readers through the other unit's address: their sessions are forwarded to the node holding the mailbox.
            "--read", $"a:{FloatingB}:110:alice@lab.test:lab-password", "--read", $"b:{FloatingA}:110:bob@lab.test:lab-password",
            "--log", log, "--stop", stop, "--tag", name })
            client.ArgumentList.Add(a);
        using var load = Process.Start(client)!;
        using var watch = new CancellationTokenSource();
        var dual = WatchDualActiveAsync(watch.Token);
        try
        {
            await Task.Delay(1500);
            await faultAndRecovery();
            await EnsureHealthyAsync();
            await Task.Delay(1000);
        }
        catch (Exception ex) when (ex is TimeoutException or Xunit.Sdk.XunitException)
        {
            error = ex.Message;
            await EnsureHealthyAsync();
        }
        finally
        {
            await File.WriteAllTextAsync(stop, "");
            await load.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
            watch.Cancel();
        }
        var dualActive = await dual + CountSplitBrainAlerts();
        var (exit, text) = await HostCommand.RunAsync("ip", "netns", "exec", Prefix + "client", "python3", Path.Combine(_root, "lab", "ha_client.py"), "check",
            "--imap", $"a:{FloatingA}:143:alice@lab.test:lab-password", "--imap", $"b:{FloatingB}:143:bob@lab.test:lab-password",
            "--imap", $"a/forwarded:{FloatingB}:143:alice@lab.test:lab-password", "--imap", $"b/forwarded:{FloatingA}:143:bob@lab.test:lab-password",
            "--log", log, "--tag", name);
        Assert.True(exit == 0, text);
        using var json = JsonDocument.Parse(text.Trim().Split('\n')[^1]);
        var r = json.RootElement;
        var errors = r.GetProperty("errors").EnumerateArray().Select(e => e.GetString()).ToList();
        if (errors.Count > 0) error = (error is null ? "" : error + "; ") + string.Join("; ", errors);
        var result = new Result(name, r.GetProperty("lost").GetInt32(), r.GetProperty("duplicated").GetInt32(), dualActive,
            r.GetProperty("gap_ms").GetInt64(), r.GetProperty("acked").GetInt32(), error);
        _output.WriteLine($"{result.Line} (acked={result.Acked} forwarded_pop_reads={r.GetProperty("reads").GetInt32()} " +
            $"failed={r.GetProperty("read_errors").GetInt32()}{(error is null ? "" : ", error: " + error)})");
        return result;
    }

    private int _splitBrainsSeen;

    private int CountSplitBrainAlerts()
    {
        var total = 0;
        foreach (var node in new[] { "node1", "node2" })
        {
            var path = Path.Combine(Dir, node + ".log");
            if (File.Exists(path)) total += File.ReadLines(path).Count(l => l.Contains("ALERT split brain"));
        }
        var fresh = total - _splitBrainsSeen;
        _splitBrainsSeen = total;
        return fresh;
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in new[] { "node1", "node2" }) await RunAsync("pair.sh", "kill", node);
        await RunAsync("lab.sh", "down");
        // Keep the nodes' logs when asked (CI artifacts); the data directories go.
        var keep = Environment.GetEnvironmentVariable("APPLIANCE_HA_LOGS");
        if (keep is { Length: > 0 })
        {
            System.IO.Directory.CreateDirectory(keep);
            foreach (var f in System.IO.Directory.GetFiles(Dir, "*.log")) File.Copy(f, Path.Combine(keep, Path.GetFileName(f)), overwrite: true);
        }
        try { System.IO.Directory.Delete(Dir, recursive: true); } catch (IOException) { }
    }
}
