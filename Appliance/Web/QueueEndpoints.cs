using Appliance.Directory;
using Appliance.Relay;
using Appliance.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Appliance.Web;

/// <summary>
/// The outbound queue under /api/v1/queue (docs/api.md): list and show with the read scope,
/// retry, hold, release and delete with provision, through the same identification, scope check
/// and problem mapping as the rest of the API (<see cref="ApiEndpoints.Handle"/>). An unknown id
/// is the queue's NotFound, so a 404 problem.
/// </summary>
public sealed class QueueEndpoints(IQueueCommands queue, ApiEndpoints api)
{
    public void Map(IEndpointRouteBuilder app)
    {
        const string Queue = "/api/v1/queue";
        app.MapGet(Queue, api.Handle("read", async (ctx, _) =>
        {
            var q = ctx.Request.Query;
            var offset = Math.Max(0, Int(q["offset"], 0));
            var limit = Math.Clamp(Int(q["limit"], ApiEndpoints.MaxPageSize), 1, ApiEndpoints.MaxPageSize);
            var search = q["search"].ToString().Trim();
            var all = await queue.ListQueueAsync();
            var matching = search.Length == 0 ? all : all.Where(e => Matches(e, search)).ToList();
            var page = matching.Skip(offset).Take(limit).Select(e => View(e, null)).ToList();
            return Results.Json(new QueuePage(matching.Count, offset, limit, page), WebJson.Default.QueuePage);
        }));
        app.MapGet(Queue + "/{id}", api.Handle("read", async (ctx, _) =>
        {
            var (entry, headers) = await queue.ShowQueuedAsync(Route(ctx));
            return Results.Json(View(entry, headers), WebJson.Default.QueueEntryView);
        }));
        app.MapPost(Queue + "/retry", api.Handle("provision", async (ctx, caller) =>
            Results.Json(new QueueCount(await queue.RetryQueuedAsync(null, caller.Actor)), WebJson.Default.QueueCount)));
        app.MapPost(Queue + "/{id}/retry", api.Handle("provision", async (ctx, caller) =>
            Results.Json(new QueueCount(await queue.RetryQueuedAsync(Route(ctx), caller.Actor)), WebJson.Default.QueueCount)));
        app.MapPost(Queue + "/{id}/hold", api.Handle("provision", async (ctx, caller) =>
        {
            await queue.HoldQueuedAsync(Route(ctx), hold: true, caller.Actor);
            return Results.NoContent();
        }));
        app.MapPost(Queue + "/{id}/release", api.Handle("provision", async (ctx, caller) =>
        {
            await queue.HoldQueuedAsync(Route(ctx), hold: false, caller.Actor);
            return Results.NoContent();
        }));
        app.MapDelete(Queue + "/{id}", api.Handle("provision", async (ctx, caller) =>
        {
            await queue.DeleteQueuedAsync(Route(ctx), caller.Actor);
            return Results.NoContent();
        }));
    }

    private static string Route(HttpContext ctx) =>
        ctx.Request.RouteValues["id"] as string is { Length: > 0 } id ? id : throw new DirectoryException("a queue id is required");

    /// <summary>?search=: a piece of the id, the sender or a recipient, in any case.</summary>
    private static bool Matches(QueueEntry e, string search) =>
        e.Id.Contains(search, StringComparison.OrdinalIgnoreCase)
        || e.Sender.Contains(search, StringComparison.OrdinalIgnoreCase)
        || e.Recipients.Any(r => r.Address.Contains(search, StringComparison.OrdinalIgnoreCase));

    private static int Int(Microsoft.Extensions.Primitives.StringValues value, int fallback) =>
        int.TryParse(value.ToString(), System.Globalization.NumberStyles.None, null, out var n) ? n : fallback;

    public static QueueEntryView View(QueueEntry e, string? headers) => new(
        e.Id, e.Partition, Time(e.Created), e.Sender, e.Account, e.Size, e.Held, e.Attempts, Time(e.NextAttempt), e.DelayNotified, e.LastError,
        [.. e.Recipients.Select(r => new QueuedRecipientView(r.Address, StateName(r.State), r.Reply, Time(r.Updated), r.Orcpt, r.Notify))],
        e.EnvId, e.Ret, headers);

    /// <summary>The inverse of <see cref="View"/>, for the CLI over the API.</summary>
    public static QueueEntry Entry(QueueEntryView v) =>
        new(v.Id, UnixMs(v.Created), v.Sender, v.Account, v.Size, v.Held, v.Attempts, UnixMs(v.NextAttempt), v.DelayNotified, v.LastError, v.EnvId, v.Ret,
            [.. v.Recipients.Select(r => new QueuedRecipient(r.Address, StateOf(r.State), r.Reply, UnixMs(r.Updated), r.Orcpt, r.Notify))])
        { Partition = v.Partition };

    public static string StateName(RecipientState state) => state switch
    {
        RecipientState.Sent => "sent",
        RecipientState.Failed => "failed",
        _ => "queued",
    };

    private static RecipientState StateOf(string state) => state switch
    {
        "sent" => RecipientState.Sent,
        "failed" => RecipientState.Failed,
        _ => RecipientState.Queued,
    };

    private static DateTime Time(long unixMs) => DateTimeOffset.FromUnixTimeMilliseconds(unixMs).UtcDateTime;

    private static long UnixMs(DateTime t) => new DateTimeOffset(DateTime.SpecifyKind(t.ToUniversalTime(), DateTimeKind.Utc)).ToUnixTimeMilliseconds();
}

/// <summary>One recipient of a queued message; times are ISO 8601 UTC.</summary>
public sealed record QueuedRecipientView(string Address, string State, string Reply, DateTime Updated, string? Orcpt = null, string? Notify = null);

/// <summary>A queued message (with its header block when asked for one entry); times are ISO 8601 UTC.</summary>
public sealed record QueueEntryView(
    string Id, string Partition, DateTime Created, string Sender, string Account, long Size, bool Held, int Attempts, DateTime NextAttempt,
    bool DelayNotified, string LastError, IReadOnlyList<QueuedRecipientView> Recipients, string? EnvId = null, string? Ret = null, string? Headers = null);

public sealed record QueuePage(int Total, int Offset, int Limit, IReadOnlyList<QueueEntryView> Items);

public sealed record QueueCount(int Count);
