using Xunit.Abstractions;

namespace Appliance.Tests.Cluster;

/// <summary>
/// The HA fault suite (issue 4; also `build.ps1 ha-suite`): two real appliance processes in
/// network namespaces, clients delivering and reading through the floating addresses the whole
/// time, and one fault per scenario. Prints one line per scenario,
/// <c>scenario NAME lost=N duplicated=N dual_active=N downtime_ms=N</c>, and fails unless every
/// scenario lost nothing and never ran a unit on both nodes.
/// </summary>
[Collection(Timing.Collection)]
public sealed class HaSuiteTests(ITestOutputHelper output)
{
    [Fact]
    public async Task FaultSuite_EveryAcknowledgedMessageSurvives_AndNoUnitRunsTwice()
    {
        if (!RootOnly.Available(output)) return;
        await using var lab = await HaLab.StartAsync(output);
        var results = new List<HaLab.Result>();
        // APPLIANCE_HA_SCENARIOS=a,b runs only those (build.ps1 ha-suite -Scenarios).
        var only = Environment.GetEnvironmentVariable("APPLIANCE_HA_SCENARIOS") is { Length: > 0 } list ? list.Split(',') : null;
        foreach (var (name, scenario) in Scenarios(lab))
            if (only is null || only.Contains(name)) results.Add(await lab.RunScenarioAsync(name, scenario));

        if (Environment.GetEnvironmentVariable("APPLIANCE_HA_REPORT") is { Length: > 0 } report)
            await File.WriteAllLinesAsync(report, results.Select(r => r.Line));
        var bad = results.Where(r => r.Lost > 0 || r.DualActive > 0 || r.Error is not null || r.Acked == 0).ToList();
        Assert.True(bad.Count == 0, string.Join('\n', bad.Select(r => $"{r.Line} acked={r.Acked} {r.Error}")));
    }

    private static IEnumerable<(string, Func<Task>)> Scenarios(HaLab lab)
    {
        // kill -9 the process of node1: node2 fences it (the lab device powers it off), takes
        // store-a; node1 comes back, resyncs, and store-a fails back.
        yield return ("kill_node", async () =>
        {
            await lab.KillNodeAsync("node1");
            await lab.WaitAsync(() => lab.ActiveOnAsync("node2", "store-a"), "store-a taken over by node2");
        });
        // The fence device powers node2 off (its processes die, its links go dark).
        yield return ("power_off", async () =>
        {
            await lab.MustAsync("lab.sh", "poweroff", "node2");
            await lab.WaitAsync(() => lab.ActiveOnAsync("node1", "store-b"), "store-b taken over by node1");
        });
        // Both replication links cut, heartbeats still on the public link: nothing moves, the
        // primaries go degraded once the peer has marked its copies outdated, then resync.
        yield return ("cut_replication", async () =>
        {
            await lab.MustAsync("lab.sh", "cut", "node1", "repl");
            await Task.Delay(6000);
            Assert.True(await lab.ActiveOnAsync("node1", "store-a") && await lab.ActiveOnAsync("node2", "store-b"), "a unit moved although both nodes were alive");
            await lab.MustAsync("lab.sh", "heal", "node1", "repl");
        });
        // node1's public link cut: heartbeats still flow over the replication links, so nothing
        // moves; clients of store-a wait for the link.
        yield return ("cut_public", async () =>
        {
            await lab.MustAsync("lab.sh", "cut", "node1", "public");
            await Task.Delay(6000);
            Assert.True(await lab.ActiveOnAsync("node2", "store-b"), "store-b left node2");
            await lab.MustAsync("lab.sh", "heal", "node1", "public");
        });
        // Every link between the nodes cut (node2 isolated): each sees the other dead, node1
        // (fencing first) powers node2 off and takes store-b.
        yield return ("cut_all_links", async () =>
        {
            await lab.MustAsync("lab.sh", "cut", "node2", "all");
            await lab.WaitAsync(() => lab.ActiveOnAsync("node1", "store-b"), "store-b taken over by node1");
        });
        // A node returning while mail keeps arriving: it resyncs from the survivor under load.
        yield return ("return_resync", async () =>
        {
            await lab.KillNodeAsync("node2");
            await lab.WaitAsync(() => lab.ActiveOnAsync("node1", "store-b"), "store-b taken over by node1");
            await Task.Delay(3000);
            await lab.MustAsync("lab.sh", "poweron", "node2");
            await lab.StartNodeAsync("node2");
            await lab.WaitAsync(() => lab.InSyncOnAsync("node2", "store-b"), "store-b back on node2, in sync");
        });
        // The primary dies while the other node is resyncing: the copy that is behind must not
        // be promoted; the unit waits for the node with the newer copy.
        yield return ("primary_dies_during_resync", async () =>
        {
            await lab.KillNodeAsync("node1");
            await lab.WaitAsync(() => lab.ActiveOnAsync("node2", "store-a"), "store-a taken over by node2");
            await Task.Delay(3000);
            await lab.MustAsync("lab.sh", "poweron", "node1");
            await lab.StartNodeAsync("node1");
            await lab.KillNodeAsync("node2");
            await Task.Delay(6000);
            await lab.MustAsync("lab.sh", "poweron", "node2");
            await lab.StartNodeAsync("node2");
        });
        // Planned switchover of store-a to node2 and back.
        yield return ("switchover", async () =>
        {
            await lab.MustAsync("pair.sh", "cli", "node1", "cluster", "switchover", "store-a");
            Assert.True(await lab.ActiveOnAsync("node2", "store-a"), "store-a not on node2 after the switchover");
            await Task.Delay(2000);
            await lab.MustAsync("pair.sh", "cli", "node2", "cluster", "switchover", "store-a");
        });
        // Cold start with one node: alone it waits for its peer; started with the override it
        // fences the (dead) peer and serves both units.
        yield return ("cold_start_one_node", async () =>
        {
            await lab.KillNodeAsync("node1");
            await lab.KillNodeAsync("node2");
            await lab.MustAsync("lab.sh", "poweron", "node1");
            await lab.StartNodeAsync("node1");
            await Task.Delay(5000);
            Assert.False(await lab.ActiveOnAsync("node1", "store-a"), "node1 took a unit without seeing its peer and without the override");
            await lab.KillNodeAsync("node1");
            await lab.StartNodeAsync("node1", alone: true);
            await lab.WaitAsync(async () => await lab.ActiveOnAsync("node1", "store-a") && await lab.ActiveOnAsync("node1", "store-b"), "node1 serving both units alone");
            await Task.Delay(2000);
            // Back to a normal pair: node1 restarted without the override, node2 back.
            await lab.MustAsync("lab.sh", "poweron", "node2");
            await lab.StartNodeAsync("node2");
        });
        // The fence device does not answer: node2 dies, node1 must not take store-b until a
        // fence is confirmed (it retries), then takes it once the device is back.
        yield return ("fence_unreachable", async () =>
        {
            await File.WriteAllTextAsync(Path.Combine(lab.Dir, "fence-unreachable"), "");
            await lab.KillNodeAsync("node2");
            await Task.Delay(7000);
            Assert.False(await lab.ActiveOnAsync("node1", "store-b"), "store-b taken over without a confirmed fence");
            File.Delete(Path.Combine(lab.Dir, "fence-unreachable"));
            await lab.WaitAsync(() => lab.ActiveOnAsync("node1", "store-b"), "store-b taken over once the fence succeeded");
        });
    }
}
