using System.Net;
using Appliance.Directory;
using Appliance.Hosting;
using Appliance.Monitoring;
using Appliance.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Appliance.Web;

/// <summary>
/// Monitoring over HTTP (docs/api.md): /metrics in the Prometheus text format for this node (no
/// token from Monitoring:MetricsNetworks, else a read token or an admin session), and under
/// /api/v1/monitoring the history, the checks and the alerts of every node as the monitor unit
/// holds them, and the acknowledgement of an alert (made where the monitor unit is active).
/// </summary>
public sealed class MonitoringEndpoints(MonitoringService monitoring, MonitoringOptions options, MailStore store, Cluster.ClusterManager? cluster, ApiEndpoints api)
{
    private readonly IReadOnlyList<IPNetwork> _open = [.. options.MetricsNetworks.Select(n => IPNetwork.Parse(n.Trim()))];

    /// <summary>The ranges the panel offers, and how long each is.</summary>
    private static readonly Dictionary<string, long> Ranges = new(StringComparer.Ordinal)
    {
        ["1h"] = 3600, ["6h"] = 6 * 3600, ["24h"] = 86_400, ["7d"] = 7 * 86_400, ["30d"] = 30 * 86_400, ["1y"] = 365 * 86_400,
    };

    /// <summary>At most about this many points per graph: wider ranges take wider buckets.</summary>
    private const int MaxPoints = 720;

    public void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/metrics", ServeMetricsAsync);

        const string Base = "/api/v1/monitoring";
        app.MapGet(Base + "/nodes", api.Handle("read", (ctx, _) =>
        {
            var nodes = store.Monitor.ListSeries().GroupBy(s => s.Node)
                .Select(g => new MonitoringNode(g.Key, Time(g.Max(s => s.Last)), [.. g.Select(s => s.Name).Order(StringComparer.Ordinal)]))
                .ToList();
            return Task.FromResult(Results.Json(new MonitoringNodes(nodes), WebJson.Default.MonitoringNodes));
        }));
        app.MapGet(Base + "/series", api.Handle("read", (ctx, _) =>
        {
            var q = ctx.Request.Query;
            var node = q["node"].ToString();
            var metric = q["metric"].ToString();
            if (node.Length == 0 || metric.Length == 0) throw new DirectoryException("node and metric are required");
            var now = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            long from, to;
            if (q["from"].ToString() is { Length: > 0 } fromText)
            {
                from = Parse(fromText, "from");
                to = q["to"].ToString() is { Length: > 0 } toText ? Parse(toText, "to") : now;
            }
            else
            {
                var range = q["range"].ToString() is { Length: > 0 } r ? r : "1h";
                if (!Ranges.TryGetValue(range, out var span)) throw new DirectoryException($"range must be one of {string.Join(", ", Ranges.Keys)}");
                (from, to) = (now - span, now);
            }
            if (to <= from) throw new DirectoryException("to must be after from");
            var (step, points) = store.Monitor.MetricHistory(node, metric, from, to, now, (to - from) / MaxPoints);
            return Task.FromResult(Results.Json(new MetricSeriesView(node, metric, Time(from), Time(to), step,
                [.. points.Select(p => new MetricPointView(Time(p.Time), p.Avg, p.Min, p.Max))]), WebJson.Default.MetricSeriesView));
        }));
        app.MapGet(Base + "/checks", api.Handle("read", (ctx, _) =>
        {
            var checks = store.Monitor.ListChecks()
                .OrderByDescending(c => CheckResult.Rank(c.Result.Status)).ThenBy(c => c.Node, StringComparer.Ordinal).ThenBy(c => c.Result.Name, StringComparer.Ordinal)
                .Select(c => new CheckView(c.Node, c.Result.Name, CheckResult.StatusName(c.Result.Status), c.Result.Output, Time(c.Time)))
                .ToList();
            return Task.FromResult(Results.Json(new CheckList(checks), WebJson.Default.CheckList));
        }));
        app.MapGet(Base + "/alerts", api.Handle("read", (ctx, _) =>
        {
            var since = DateTimeOffset.UtcNow.AddDays(-1).ToUnixTimeSeconds();
            var alerts = store.Monitor.ListAlerts(since).Select(View).ToList();
            return Task.FromResult(Results.Json(new AlertList(alerts), WebJson.Default.AlertList));
        }));
        app.MapPost(Base + "/alerts/{id}/ack", api.Handle("provision", async (ctx, caller) =>
        {
            var id = ctx.Request.RouteValues["id"] as string ?? "";
            bool done;
            if (store.Monitor.IsPrimary) done = await monitoring.Alerter.AcknowledgeAsync(id, caller.Actor);
            else if (cluster is { PeerHoldsMonitor: true })
            {
                var (exit, lines) = await cluster.ForwardAlertAckAsync(id, caller.Actor, ctx.RequestAborted);
                if (exit is not (0 or 3)) throw new DirectoryException(string.Join(' ', lines), DirectoryError.Unavailable);
                done = exit == 0;
            }
            else throw new DirectoryException("the monitor unit is not active on either node", DirectoryError.Unavailable);
            return done ? Results.NoContent() : throw new DirectoryException($"no open alert {id}", DirectoryError.NotFound);
        }));
    }

    private async Task ServeMetricsAsync(HttpContext ctx)
    {
        var remote = ctx.Connection.RemoteIpAddress is { IsIPv4MappedToIPv6: true } mapped ? mapped.MapToIPv4() : ctx.Connection.RemoteIpAddress;
        var result = remote is not null && _open.Any(n => n.Contains(remote))
            ? Metrics()
            : await api.Run(ctx, "read", _ => Task.FromResult(Metrics()));
        await result.ExecuteAsync(ctx);
    }

    private IResult Metrics() => Results.Text(monitoring.PrometheusText(), "text/plain; version=0.0.4; charset=utf-8");

    public static AlertView View(AlertRecord a) => new(a.Id, a.Node, a.Check, CheckResult.StatusName(a.Status), a.Output, Time(a.Opened), Time(a.Changed),
        a.IsOpen ? null : Time(a.Closed), a.AckedBy.Length == 0 ? null : a.AckedBy, a.AckedBy.Length == 0 ? null : Time(a.AckedAt), a.Escalated, a.Flapping);

    private static long Parse(string text, string name) =>
        DateTimeOffset.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, System.Globalization.DateTimeStyles.AssumeUniversal, out var t)
            ? t.ToUnixTimeSeconds()
            : throw new DirectoryException($"{name} is not an ISO 8601 time");

    private static DateTime Time(long unixSeconds) => DateTimeOffset.FromUnixTimeSeconds(unixSeconds).UtcDateTime;
}

public sealed record MonitoringNode(string Name, DateTime LastSample, IReadOnlyList<string> Metrics);
public sealed record MonitoringNodes(IReadOnlyList<MonitoringNode> Nodes);
public sealed record MetricPointView(DateTime Time, double Avg, double Min, double Max);
public sealed record MetricSeriesView(string Node, string Metric, DateTime From, DateTime To, long Step, IReadOnlyList<MetricPointView> Points);
public sealed record CheckView(string Node, string Name, string Status, string Output, DateTime Time);
public sealed record CheckList(IReadOnlyList<CheckView> Checks);
/// <summary>An alert; <see cref="Closed"/>, <see cref="AckedBy"/> and <see cref="AckedAt"/> are left out while it is open or not acknowledged.</summary>
public sealed record AlertView(string Id, string Node, string Check, string Status, string Output, DateTime Opened, DateTime Changed,
    DateTime? Closed, string? AckedBy, DateTime? AckedAt, bool Escalated, bool Flapping);
public sealed record AlertList(IReadOnlyList<AlertView> Alerts);
