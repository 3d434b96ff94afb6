using Appliance.Monitoring;

namespace Appliance.Tests.ManageSieve;

/// <summary>The monitoring probes the ManageSieve greeting like the other services, and a stopped service goes CRITICAL.</summary>
public sealed class ManageSieveMonitoringTests
{
    [Fact]
    public async Task TheManageSieveCheck_IsOk_ThenCritical_WhenTheServiceStops()
    {
        await using var node = await TestNode.StartAsync(configure: o => o.Monitoring.IntervalSeconds = 1);
        var check = await WaitForCheckAsync(node, CheckStatus.Ok);
        Assert.Contains("\"IMPLEMENTATION\" \"Appliance\"", check.Output);

        await node.Host.StopServiceAsync("managesieve");
        check = await WaitForCheckAsync(node, CheckStatus.Critical);
        Assert.StartsWith("MANAGESIEVE CRITICAL - ", check.Output);
    }

    private static async Task<CheckResult> WaitForCheckAsync(TestNode node, CheckStatus status)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var check = node.Store.Monitor.ListChecks().Select(c => c.Result).FirstOrDefault(c => c.Name == "managesieve" && c.Status == status);
            if (check is not null) return check;
            Assert.True(DateTime.UtcNow < deadline, $"no managesieve check {status}: {string.Join("; ", node.Store.Monitor.ListChecks().Select(c => c.Result.Output))}");
            await Task.Delay(200);
        }
    }
}
