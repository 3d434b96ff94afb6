using System.Text;

namespace Appliance.Cluster.Fencing;

/// <summary>
/// Runs a fence-agents executable (fence_ipmilan, fence_apc_snmp, …) with the standard stdin
/// protocol: key=value lines, then end of input. Arguments, passwords included, travel on stdin
/// only, never on the command line where any local user can read them (/proc/PID/cmdline).
/// </summary>
/// <remarks>
/// Implementation notes. Exit codes: off 0 = done; status 0 = on, 2 = off (fencing.py). A real
/// fence agent already waits for the device to report "off" before its off action returns 0; the
/// extra status call also catches scripts that do not. An agent without a status action fails it
/// with "Unrecognised action", and then its successful off is the confirmation. One timeout covers
/// both calls; on expiry the whole process tree is killed, since agents spawn ipmitool, snmpget, ….
/// </remarks>
internal sealed class AgentFenceDriver : IFenceDriver
{
    private readonly FencingOptions _options;
    private readonly string _agentPath;
    private readonly NLog.Logger _log;

    public AgentFenceDriver(FencingOptions options, string agentPath, NLog.Logger log)
    {
        _options = options;
        _agentPath = agentPath;
        _log = log;
    }

    public string Name => "agent";

    public async Task<FenceOutcome> PowerOffAsync(string node, CancellationToken ct)
    {
        var plug = _options.Plugs.GetValueOrDefault(node);
        _log.Info("fence attempt driver=agent node={0} plug={1} agent={2}", node, plug ?? "-", _agentPath);
        using var attempt = CancellationTokenSource.CreateLinkedTokenSource(ct);
        attempt.CancelAfter(TimeSpan.FromSeconds(_options.TimeoutSeconds));
        FenceOutcome outcome;
        try
        {
            outcome = await OffThenStatusAsync(plug, attempt.Token);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            outcome = new(false, $"agent did not finish within {_options.TimeoutSeconds}s (killed)");
        }
        catch (IOException ex)
        {
            outcome = new(false, "agent could not be run: " + HttpFenceDriver.OneLine(ex.Message));
        }
        if (outcome.Confirmed)
            _log.Info("fence confirmed driver=agent node={0}: {1}", node, outcome.Detail);
        else
            _log.Warn("fence failed driver=agent node={0}: {1}", node, outcome.Detail);
        return outcome;
    }

    private async Task<FenceOutcome> OffThenStatusAsync(string? plug, CancellationToken ct)
    {
        var off = await RunAsync("off", plug, ct);
        if (off.ExitCode != 0)
            return new(false, $"agent off failed (exit {off.ExitCode}): {off.Message}");
        var status = await RunAsync("status", plug, ct);
        return status.ExitCode switch
        {
            2 => new(true, "agent reports off"),
            0 => new(false, "agent off returned success but status reports on"),
            _ when status.Output.Contains("Unrecognised action", StringComparison.OrdinalIgnoreCase)
                || status.Output.Contains("Unrecognized action", StringComparison.OrdinalIgnoreCase)
                => new(true, "agent off succeeded (agent has no status action): " + off.Message),
            _ => new(false, $"agent status failed (exit {status.ExitCode}): {status.Message}"),
        };
    }

    private async Task<AgentRun> RunAsync(string action, string? plug, CancellationToken ct)
    {
        var input = new StringBuilder();
        input.Append("action=").Append(action).Append('\n');
        if (plug is not null)
            input.Append("plug=").Append(plug).Append('\n');
        foreach (var (key, value) in _options.AgentArgs)
            input.Append(key).Append('=').Append(value).Append('\n');
        var run = await SystemCommand.RunAsync(_agentPath, [], ct, input.ToString());
        var output = run.Stderr + "\n" + run.Stdout;
        return new AgentRun(run.ExitCode, output, Summary(output));
    }

    // fence-agents print warnings ("Parse error: Ignoring unknown option") before the real error.
    private static string Summary(string output)
    {
        var lines = output.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        var line = lines.FirstOrDefault(l => l.Contains("fail", StringComparison.OrdinalIgnoreCase) || l.Contains("error", StringComparison.OrdinalIgnoreCase))
            ?? lines.FirstOrDefault() ?? "(no output)";
        return HttpFenceDriver.OneLine(line);
    }

    private readonly record struct AgentRun(int ExitCode, string Output, string Message);
}
