using Appliance.Monitoring;
using Appliance.Store;
using MimeKit;
using static Appliance.Tests.Relay.OutboundDeliveryTests;

namespace Appliance.Tests.Monitoring;

/// <summary>
/// The alert rules, driven sample by sample on a real node whose own collector is off: check
/// results are journaled in its monitor unit as the collectors would send them, and the
/// notices are real e-mails delivered to a hosted contact. Times are made up (one sample per
/// 10 s) so that flapping and silence need no waiting.
/// </summary>
public sealed class AlerterTests : IAsyncLifetime
{
    private TestNode _node = null!;
    private long _time = DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    public async Task InitializeAsync() => _node = await TestNode.StartAsync(["ops"], o =>
    {
        o.Monitoring.IntervalSeconds = 0;
        o.Monitoring.Contacts = ["ops@" + TestNode.Domain];
        o.Monitoring.EscalateAfterMinutes = 1e6;
    });

    public async Task DisposeAsync() => await _node.DisposeAsync();

    private Appliance.Hosting.MonitoringOptions Options => _node.Host.Options.Monitoring;

    /// <summary>
    /// One round 10 s after the last: this node reports the disk check with <paramref name="status"/>
    /// (none when null), and <paramref name="other"/> reports when given; then the alerter looks.
    /// </summary>
    private async Task RoundAsync(CheckStatus? status, CheckStatus? other = null)
    {
        _time += 10;
        var monitor = _node.Store.Monitor;
        CheckResult[] checks = status is { } s ? [new CheckResult("disk", s, $"DISK {CheckResult.StatusName(s)} - made up")] : [];
        await monitor.RecordMetricsAsync(new MetricsOp("test", _time, ["load1"], [0.5], checks));
        if (other is { } o) await monitor.RecordMetricsAsync(new MetricsOp("other", _time, ["load1"], [0.5], [new CheckResult("disk", o, "DISK - made up")]));
        await _node.Host.Monitoring.Alerter.EvaluateAsync(DateTimeOffset.FromUnixTimeSeconds(_time), 10, CancellationToken.None);
    }

    private async Task<List<string>> SubjectsAsync() =>
        [.. (await _node.InboxBytesAsync("ops")).Select(b => MimeMessage.Load(new MemoryStream(b)).Subject ?? "")];

    /// <summary>
    /// Once at least <paramref name="count"/> have arrived, the subjects in order; notices queued
    /// in one round are delivered in parallel and may arrive in either order, so they are sorted.
    /// </summary>
    private async Task<List<string>> SubjectsAsync(int count)
    {
        List<string> subjects = [];
        await WaitUntilAsync(async () => (subjects = await SubjectsAsync()).Count >= count, $"{count} alert e-mail(s)");
        return [.. subjects.Order(StringComparer.Ordinal)];
    }

    /// <summary>Every notice queued so far has been delivered.</summary>
    private Task QueueEmptyAsync() =>
        WaitUntilAsync(() => Task.FromResult(_node.Store.PartitionNames.All(p => _node.Store.Partition(p).QueueSummary().Count == 0)), "the notices delivered");

    private IReadOnlyList<AlertRecord> Alerts(string node = "test", string check = "disk") =>
        [.. _node.Store.Monitor.ListAlerts(0).Where(a => a.Node == node && a.Check == check)];

    [Fact]
    public async Task A_result_counts_once_confirmed_and_the_alert_ends_with_a_recovery()
    {
        await RoundAsync(CheckStatus.Ok);
        await RoundAsync(CheckStatus.Critical);
        Assert.Empty(Alerts()); // one bad result is not yet a state
        await RoundAsync(CheckStatus.Critical);
        var alert = Assert.Single(Alerts());
        Assert.True(alert.IsOpen);
        Assert.Equal(CheckStatus.Critical, alert.Status);
        await RoundAsync(CheckStatus.Warning);
        await RoundAsync(CheckStatus.Warning);
        Assert.Equal(CheckStatus.Warning, Assert.Single(Alerts()).Status);
        await RoundAsync(CheckStatus.Ok);
        Assert.True(Assert.Single(Alerts()).IsOpen);
        await RoundAsync(CheckStatus.Ok);
        Assert.False(Assert.Single(Alerts()).IsOpen);

        Assert.Equal(["[PROBLEM] disk on test is CRITICAL", "[PROBLEM] disk on test is WARNING", "[RECOVERY] disk on test is OK"], await SubjectsAsync(3));
    }

    [Fact]
    public async Task A_flapping_check_goes_quiet_and_says_when_it_settles()
    {
        Options.ConfirmSamples = 1;
        for (var i = 0; i < 20; i++) await RoundAsync(i % 2 == 0 ? CheckStatus.Critical : CheckStatus.Ok);
        // Told as long as the window is too short to call it flapping (10 results), then quiet.
        await SubjectsAsync(1);
        await QueueEmptyAsync();
        var told = await SubjectsAsync();
        Assert.InRange(told.Count, 2, 10);
        for (var i = 0; i < 20; i++) await RoundAsync(i % 2 == 0 ? CheckStatus.Ok : CheckStatus.Critical);
        await QueueEmptyAsync();
        Assert.Equal(told, await SubjectsAsync());
        var open = Assert.Single(Alerts(), a => a.IsOpen);
        Assert.True(open.Flapping);

        // It stays CRITICAL: once under FlapLowPercent of changes, one notice says it settled, and in what state.
        for (var i = 0; i < 20 && Alerts().Single(a => a.IsOpen).Flapping; i++) await RoundAsync(CheckStatus.Critical);
        Assert.False(Alerts().Single(a => a.IsOpen).Flapping);
        var subjects = await SubjectsAsync(told.Count + 1);
        Assert.Equal(told.Count + 1, subjects.Count);
        Assert.Contains("[FLAPPINGSTOP] disk on test is CRITICAL", subjects);
    }

    [Fact]
    public async Task A_silent_node_is_an_alert_and_its_last_checks_are_not_judged()
    {
        await RoundAsync(CheckStatus.Ok, other: CheckStatus.Ok);
        await RoundAsync(CheckStatus.Ok, other: CheckStatus.Critical);
        // "other" falls silent with a CRITICAL last word; 30 s later it is the node that is reported.
        for (var i = 0; i < 5; i++) await RoundAsync(CheckStatus.Ok);
        var silent = Assert.Single(Alerts("other", "node"));
        Assert.Equal(CheckStatus.Critical, silent.Status);
        Assert.Contains("other has sent no sample for", silent.Output);
        Assert.Empty(Alerts("other", "disk"));
        Assert.Empty(Alerts("test", "node"));
        Assert.Equal(["[PROBLEM] node on other is CRITICAL"], await SubjectsAsync(1));

        // It reports again: the node alert closes.
        await RoundAsync(CheckStatus.Ok, other: CheckStatus.Ok);
        await RoundAsync(CheckStatus.Ok, other: CheckStatus.Ok);
        Assert.False(Assert.Single(Alerts("other", "node")).IsOpen);
    }

    [Fact]
    public async Task The_alert_of_a_check_no_longer_run_ends()
    {
        await RoundAsync(CheckStatus.Critical);
        await RoundAsync(CheckStatus.Critical);
        Assert.True(Assert.Single(Alerts()).IsOpen);
        // The node reports on, without that check (the service was taken out of the configuration).
        await RoundAsync(null);
        var alert = Assert.Single(Alerts());
        Assert.False(alert.IsOpen);
        Assert.Equal("disk is no longer checked on test", alert.Output);
        Assert.Equal(["[PROBLEM] disk on test is CRITICAL", "[RECOVERY] disk on test is OK"], await SubjectsAsync(2));
    }
}
