using Appliance.Monitoring;

namespace Appliance.Hosting;

public sealed partial class ControlCommands
{
    /// <summary>
    /// <c>appliance check [--service NAME]</c> as a Nagios plugin (Monitoring Plugins guidelines):
    /// one status line "SERVICE STATUS - text | perfdata" on stdout and the exit code of the
    /// status (0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN). Without --service every check of this
    /// node counts, and the line names the ones that are not OK.
    /// </summary>
    private static async Task<int> CheckAsync(MonitoringService monitoring, string[] args, Output output)
    {
        string? service = null;
        if (args is ["--service", var s]) service = s;
        else if (args.Length > 0)
        {
            output("APPLIANCE UNKNOWN - usage: appliance check [--service NAME]", false);
            return (int)CheckStatus.Unknown;
        }
        var checks = await monitoring.CheckNowAsync(CancellationToken.None);
        if (service is not null)
        {
            if (checks.FirstOrDefault(c => c.Name == service) is not { } check)
            {
                output($"APPLIANCE UNKNOWN - no check named {service} (checks: {string.Join(", ", checks.Select(c => c.Name))})", false);
                return (int)CheckStatus.Unknown;
            }
            output(check.Perfdata.Length > 0 ? $"{check.Output} | {check.Perfdata}" : check.Output, false);
            return (int)check.Status;
        }
        var worst = checks.Aggregate(CheckStatus.Ok, (w, c) => CheckResult.Worst(w, c.Status));
        var bad = checks.Where(c => c.Status != CheckStatus.Ok).ToList();
        var text = bad.Count == 0 ? $"{checks.Count} checks OK ({string.Join(", ", checks.Select(c => c.Name))})"
            : string.Join("; ", bad.Select(c => c.Output));
        var perf = string.Join(' ', checks.Where(c => c.Perfdata.Length > 0).SelectMany(c => c.Perfdata.Split(' ').Select(p => Prefixed(c.Name, p))));
        output($"APPLIANCE {CheckResult.StatusName(worst)} - {text}" + (perf.Length > 0 ? " | " + perf : ""), false);
        return (int)worst;
    }

    /// <summary>"time=0.01s" of the smtp check is "smtp_time=0.01s" in the summary; quoted labels keep their quotes.</summary>
    private static string Prefixed(string check, string perf) =>
        perf.StartsWith('\'') ? $"'{check}_{perf[1..]}" : $"{check}_{perf}";
}
