using System.Net.Http.Json;
using System.Text.Json.Serialization;
using Appliance.Hosting;
using Appliance.Relay;
using Appliance.Store;
using MimeKit;

namespace Appliance.Monitoring;

/// <summary>
/// Alerts, on the node where the monitor unit is active (one place decides, so one e-mail per
/// change). After every sample it reads each node's last checks from the monitor unit and
/// follows each check as Nagios does:
/// - a result counts once Monitoring:ConfirmSamples equal results came in a row (a hard state);
/// - a hard state other than OK opens an alert (e-mail to Contacts, a POST to each webhook), a
///   change between bad states is told again, OK closes it with a recovery notice;
/// - a check that changes state in more than FlapHighPercent of its last 20 results is flapping:
///   its alert says so once and stays quiet until it is calm (under FlapLowPercent);
/// - an alert nobody acknowledged within EscalateAfterMinutes goes to EscalationContacts too;
/// - a node that has sent no sample for three intervals (at least 30 s) is itself an alert (check "node").
/// Alerts are journaled in the monitor unit (<see cref="AlertRecord"/>), so acknowledgements and
/// escalations survive a failover; the soft-state counting starts over on the new node.
/// </summary>
public sealed class Alerter(MonitoringOptions options, MailStore store, OutboundQueue queue, string self, string hostname, IReadOnlyList<string> nodes)
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("monitoring");
    private const int FlapWindow = 20;
    private readonly Dictionary<(string Node, string Check), Track> _tracks = [];
    private readonly SemaphoreSlim _gate = new(1, 1);
    /// <summary>When this alerter began: a node never heard from is silent since then.</summary>
    private readonly long _started = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
    private static readonly HttpClient Http = new(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(10) };

    private sealed class Track
    {
        public CheckStatus Hard;
        public CheckStatus Last;
        public int Repeats;
        public long Seen = -1;
        public readonly Queue<CheckStatus> History = new();
        public bool Flapping;
    }

    /// <summary>What a webhook receives.</summary>
    public sealed record AlertNotice(string Kind, string Id, string Node, string Check, string Status, string Output, DateTime Opened,
        DateTime? Closed, string? AckedBy, bool Escalated, bool Flapping, string From);

    /// <summary>Looks at every node's checks as the monitor unit holds them now.</summary>
    public async Task EvaluateAsync(DateTimeOffset now, int intervalSeconds, CancellationToken ct)
    {
        await _gate.WaitAsync(ct);
        try
        {
            var monitor = store.Monitor;
            if (!monitor.IsPrimary) { _tracks.Clear(); return; }
            var t = now.ToUnixTimeSeconds();
            var open = monitor.ListAlerts(long.MaxValue).Where(a => a.IsOpen).ToDictionary(a => (a.Node, a.Check));
            var lastSample = monitor.ListSeries().GroupBy(s => s.Node).ToDictionary(g => g.Key, g => g.Max(s => s.Last));
            var silentAfter = Math.Max(3 * intervalSeconds, 30);
            var stale = new HashSet<string>();
            foreach (var node in nodes.Union(lastSample.Keys))
            {
                var last = lastSample.GetValueOrDefault(node, -1);
                var silent = last < 0 ? t - _started : t - last;
                if (silent > silentAfter) stale.Add(node);
                var result = silent > silentAfter
                    ? new CheckResult("node", CheckStatus.Critical, last < 0 ? $"NODE CRITICAL - {node} has sent no sample since monitoring started here"
                        : $"NODE CRITICAL - {node} has sent no sample for {silent} s")
                    : new CheckResult("node", CheckStatus.Ok, $"NODE OK - {node} reports");
                await FeedAsync(node, result, t, t, open);
            }
            var checks = monitor.ListChecks();
            foreach (var check in checks)
            {
                // A silent node's checks are its last words: the "node" alert speaks for it.
                if (stale.Contains(check.Node)) continue;
                await FeedAsync(check.Node, check.Result, check.Time, t, open);
            }
            // A check a reporting node no longer runs (a service or a block list taken out of the
            // configuration) cannot recover: its alert ends here.
            foreach (var gone in open.Values.Where(a => a.Check != "node" && !stale.Contains(a.Node)
                && !checks.Any(c => c.Node == a.Node && c.Result.Name == a.Check)).ToList())
            {
                var closed = gone with { Status = CheckStatus.Ok, Output = $"{gone.Check} is no longer checked on {gone.Node}", Changed = t, Closed = t };
                open.Remove((gone.Node, gone.Check));
                _tracks.Remove((gone.Node, gone.Check));
                await monitor.SaveAlertAsync(closed);
                Log.Info("alert {0} closed: {1}/{2} is no longer checked", gone.Id, gone.Node, gone.Check);
                await NotifyAsync("RECOVERY", closed, gone.Escalated ? [.. options.Contacts, .. options.EscalationContacts] : options.Contacts);
            }
            foreach (var alert in open.Values.Where(a => a.IsOpen && a.AckedBy.Length == 0 && !a.Escalated && t - a.Opened >= options.EscalateAfterMinutes * 60))
            {
                var escalated = alert with { Escalated = true };
                await monitor.SaveAlertAsync(escalated);
                Log.Warn("alert {0} {1}/{2} not acknowledged after {3} min: escalated", alert.Id, alert.Node, alert.Check, options.EscalateAfterMinutes);
                await NotifyAsync("ESCALATION", escalated, [.. options.Contacts, .. options.EscalationContacts]);
            }
        }
        finally
        {
            _gate.Release();
        }
    }

    private async Task FeedAsync(string node, CheckResult result, long resultTime, long now, Dictionary<(string, string), AlertRecord> open)
    {
        var key = (node, result.Name);
        if (!_tracks.TryGetValue(key, out var track))
        {
            // A new holder of the monitor unit starts from the alerts it inherited.
            var inherited = open.TryGetValue(key, out var a) ? a : null;
            track = new Track { Hard = inherited?.Status ?? CheckStatus.Ok, Last = inherited?.Status ?? CheckStatus.Ok, Flapping = inherited?.Flapping ?? false };
            _tracks[key] = track;
        }
        if (resultTime <= track.Seen) return; // nothing new from that node yet
        track.Seen = resultTime;
        track.Repeats = result.Status == track.Last ? track.Repeats + 1 : 1;
        track.Last = result.Status;
        track.History.Enqueue(result.Status);
        while (track.History.Count > FlapWindow) track.History.Dequeue();

        open.TryGetValue(key, out var alert);
        var wasFlapping = track.Flapping;
        var changes = track.History.Zip(track.History.Skip(1)).Count(p => p.First != p.Second);
        var percent = track.History.Count < 2 ? 0 : changes * 100.0 / (track.History.Count - 1);
        if (!track.Flapping && track.History.Count >= FlapWindow / 2 && percent > options.FlapHighPercent) track.Flapping = true;
        else if (track.Flapping && percent < options.FlapLowPercent) track.Flapping = false;

        var hardChanged = track.Repeats >= Math.Max(1, options.ConfirmSamples) && result.Status != track.Hard;
        if (hardChanged) track.Hard = result.Status;

        if (alert is null && hardChanged && result.Status != CheckStatus.Ok)
        {
            alert = new AlertRecord(Convert.ToHexStringLower(System.Security.Cryptography.RandomNumberGenerator.GetBytes(6)), node, result.Name, result.Status,
                result.Output, now, now, 0, "", 0, false, track.Flapping);
            open[key] = alert;
            await store.Monitor.SaveAlertAsync(alert);
            Log.Warn("alert {0} opened: {1}/{2} {3}: {4}", alert.Id, node, result.Name, CheckResult.StatusName(result.Status), result.Output);
            if (!track.Flapping) await NotifyAsync("PROBLEM", alert, options.Contacts);
        }
        else if (alert is not null && hardChanged && result.Status == CheckStatus.Ok)
        {
            var closed = alert with { Status = CheckStatus.Ok, Output = result.Output, Changed = now, Closed = now, Flapping = track.Flapping };
            open.Remove(key);
            await store.Monitor.SaveAlertAsync(closed);
            Log.Info("alert {0} closed: {1}/{2} is OK again", alert.Id, node, result.Name);
            if (!track.Flapping) await NotifyAsync("RECOVERY", closed, alert.Escalated ? [.. options.Contacts, .. options.EscalationContacts] : options.Contacts);
        }
        else if (alert is not null && (hardChanged || wasFlapping != track.Flapping))
        {
            var changed = alert with { Status = track.Hard, Output = hardChanged ? result.Output : alert.Output, Changed = now, Flapping = track.Flapping };
            open[key] = changed;
            await store.Monitor.SaveAlertAsync(changed);
            var kind = wasFlapping != track.Flapping ? track.Flapping ? "FLAPPINGSTART" : "FLAPPINGSTOP" : "PROBLEM";
            Log.Warn("alert {0} {1}: {2}/{3} {4}", alert.Id, kind, node, result.Name, CheckResult.StatusName(track.Hard));
            if (!track.Flapping || kind == "FLAPPINGSTART")
                await NotifyAsync(kind, changed, changed.Escalated ? [.. options.Contacts, .. options.EscalationContacts] : options.Contacts);
        }
    }

    /// <summary>Acknowledges an open alert here (the monitor unit is active here): escalation stops. False when there is no such open alert.</summary>
    public async Task<bool> AcknowledgeAsync(string id, string actor)
    {
        await _gate.WaitAsync();
        try
        {
            var monitor = store.Monitor;
            if (!monitor.IsPrimary) throw new UnitUnavailableException("the monitor unit is not active here");
            if (monitor.FindAlert(id) is not { IsOpen: true } alert) return false;
            if (alert.AckedBy.Length > 0) return true;
            var acked = alert with { AckedBy = actor, AckedAt = DateTimeOffset.UtcNow.ToUnixTimeSeconds() };
            await monitor.SaveAlertAsync(acked);
            Log.Info("alert {0} {1}/{2} acknowledged by {3}", id, alert.Node, alert.Check, actor);
            await NotifyAsync("ACKNOWLEDGEMENT", acked, []);
            return true;
        }
        finally
        {
            _gate.Release();
        }
    }

    /// <summary>An e-mail to <paramref name="recipients"/> (queued like any mail: hosted ones are delivered here) and a POST to each webhook.</summary>
    private async Task NotifyAsync(string kind, AlertRecord alert, IReadOnlyList<string> recipients)
    {
        var status = CheckResult.StatusName(alert.Status);
        var to = recipients.Select(r => r.Trim()).Where(r => r.Length > 0).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        if (to.Count > 0)
        {
            try
            {
                var message = Message(kind, alert, status, to);
                var id = await queue.EnqueueAsync(null, "", "", [.. to.Select(a => new OutboundQueue.Recipient(a))], null, null, message);
                Log.Info("alert {0} {1} mailed to {2} (queue id {3})", alert.Id, kind, string.Join(", ", to), id);
            }
            catch (Exception ex) when (ex is UnitUnavailableException or IOException or InvalidOperationException or FormatException or ParseException)
            {
                Log.Error("alert {0} {1}: cannot send the e-mail: {2}", alert.Id, kind, ex.Message);
            }
        }
        var notice = new AlertNotice(kind, alert.Id, alert.Node, alert.Check, status, alert.Output, Time(alert.Opened), alert.IsOpen ? null : Time(alert.Closed),
            alert.AckedBy.Length == 0 ? null : alert.AckedBy, alert.Escalated, alert.Flapping, self);
        foreach (var url in options.Webhooks.Where(u => u.Trim().Length > 0))
            _ = PostAsync(url.Trim(), notice);
    }

    private static async Task PostAsync(string url, AlertNotice notice)
    {
        try
        {
            using var response = await Http.PostAsJsonAsync(url, notice, MonitoringJson.Default.AlertNotice);
            if (!response.IsSuccessStatusCode) Log.Warn("alert {0} {1}: webhook {2} answered {3}", notice.Id, notice.Kind, url, (int)response.StatusCode);
        }
        catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException or InvalidOperationException or UriFormatException)
        {
            Log.Warn("alert {0} {1}: webhook {2}: {3}", notice.Id, notice.Kind, url, ex.Message);
        }
    }

    private byte[] Message(string kind, AlertRecord alert, string status, IReadOnlyList<string> to)
    {
        var from = options.From.Trim().Length > 0 ? options.From.Trim() : $"monitoring@{hostname}";
        var message = new MimeMessage();
        message.From.Add(new MailboxAddress("Appliance monitoring", from));
        foreach (var address in to) message.To.Add(MailboxAddress.Parse(address));
        message.Subject = $"[{kind}] {alert.Check} on {alert.Node} is {status}";
        message.Date = DateTimeOffset.UtcNow;
        message.MessageId = MimeKit.Utils.MimeUtils.GenerateMessageId(hostname);
        // RFC 3834: machine-made, so vacation responders and the like stay silent.
        message.Headers.Add("Auto-Submitted", "auto-generated");
        message.Headers.Add("X-Appliance-Alert", $"{alert.Id} {kind}");
        var lines = new List<string>
        {
            $"{kind}: the check \"{alert.Check}\" of node {alert.Node} is {status}.",
            "",
            alert.Output,
            "",
            $"Alert:        {alert.Id}",
            $"Since:        {Time(alert.Opened):yyyy-MM-dd HH:mm:ss} UTC",
        };
        if (!alert.IsOpen) lines.Add($"Closed:       {Time(alert.Closed):yyyy-MM-dd HH:mm:ss} UTC");
        if (alert.AckedBy.Length > 0) lines.Add($"Acknowledged: by {alert.AckedBy}");
        if (alert.Escalated) lines.Add("Escalated:    nobody acknowledged it in time");
        if (alert.Flapping) lines.Add("Flapping:     it keeps changing state; notices are held back until it settles");
        lines.Add("");
        lines.Add($"Acknowledge it in the admin panel (Monitoring) or with the API: POST /api/v1/monitoring/alerts/{alert.Id}/ack");
        lines.Add($"-- sent by {self}");
        message.Body = new TextPart("plain") { Text = string.Join("\r\n", lines) + "\r\n" };
        using var buffer = new MemoryStream();
        message.WriteTo(FormatOptions.Default, buffer);
        return buffer.ToArray();
    }

    private static DateTime Time(long unixSeconds) => DateTimeOffset.FromUnixTimeSeconds(unixSeconds).UtcDateTime;
}

[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase)]
[JsonSerializable(typeof(Alerter.AlertNotice))]
internal sealed partial class MonitoringJson : JsonSerializerContext;
