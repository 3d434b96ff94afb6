using System.Reflection;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Appliance.Directory;
using Appliance.Provisioning;
using Appliance.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Appliance.Web;

/// <summary>
/// The provisioning API under /api/v1 (docs/api.md). Every handler identifies the caller,
/// checks the scope, and turns a refused change into a problem document in one place (<see cref="Run"/>).
/// </summary>
public sealed class ApiEndpoints(ProvisioningService provisioning, MailStore store, AdminSessions sessions, string nodeName)
{
    public const int MaxPageSize = 500;
    private MailDirectory Directory => provisioning.Directory;

    public void Map(IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/api/v1");
        api.MapGet("/openapi.json", async ctx => await Results.Stream(OpenApiDocument(), "application/json").ExecuteAsync(ctx));
        api.MapGet("/dashboard", Handle("read", (ctx, _) => Dashboard()));

        api.MapGet("/domains", Handle("read", (ctx, _) => Ok(Directory.ListDomainSummaries(), WebJson.Default.IReadOnlyListDomainSummary)));
        api.MapPost("/domains", Handle("provision", async (ctx, caller) =>
        {
            var body = await Body(ctx, WebJson.Default.DomainCreate);
            var name = await provisioning.AddDomainAsync(Need(body.Name, "name"), caller.Actor);
            return Results.Json(new DomainName(name), WebJson.Default.DomainName, statusCode: 201);
        }));
        api.MapDelete("/domains/{name}", Handle("provision", async (ctx, caller) =>
        {
            var name = Route(ctx, "name");
            await provisioning.RemoveDomainAsync(name, caller.Actor);
            return Results.NoContent();
        }));
        api.MapPut("/domains/{name}/quota", Handle("provision", async (ctx, caller) =>
        {
            var name = Route(ctx, "name");
            var body = await Body(ctx, WebJson.Default.QuotaChange);
            var job = provisioning.StartDomainQuota(name, body.QuotaBytes ?? throw new DirectoryException("quotaBytes is required"), caller.Actor);
            return Accepted(job);
        }));
        api.MapGet("/domains/{name}/dkim", Handle("read", async (ctx, _) =>
        {
            var name = Route(ctx, "name");
            var record = await provisioning.GetDkimRecordAsync(name) ?? throw new DirectoryException($"domain {name} has no DKIM key yet (POST to make one)", DirectoryError.NotFound);
            return Results.Json(record, WebJson.Default.DkimRecord);
        }));
        api.MapPost("/domains/{name}/dkim", Handle("provision", async (ctx, caller) =>
        {
            var record = await provisioning.NewDkimKeyAsync(Route(ctx, "name"), caller.Actor);
            return Results.Json(record, WebJson.Default.DkimRecord, statusCode: 201);
        }));

        api.MapGet("/mailboxes", Handle("read", (ctx, _) =>
        {
            var q = ctx.Request.Query;
            var offset = Math.Max(0, Int(q["offset"], 0));
            var limit = Math.Clamp(Int(q["limit"], 50), 1, MaxPageSize);
            var domain = q["domain"].ToString() is { Length: > 0 } d ? d.Trim().ToLowerInvariant() : null;
            var (total, page) = Directory.SearchMailboxes(domain, q["search"], offset, limit);
            return Ok(new MailboxPage(total, offset, limit, page.Select(View).ToList()), WebJson.Default.MailboxPage);
        }));
        api.MapGet("/mailboxes/{address}", Handle("read", (ctx, _) =>
        {
            var address = Route(ctx, "address");
            return Directory.FindMailbox(address.Trim().ToLowerInvariant()) is { } box
                ? Ok(View(box), WebJson.Default.MailboxView)
                : throw new DirectoryException($"no such mailbox {address}", DirectoryError.NotFound);
        }));
        api.MapPost("/mailboxes", Handle("provision", async (ctx, caller) =>
        {
            var body = await Body(ctx, WebJson.Default.MailboxCreate);
            var box = await provisioning.AddMailboxAsync(Need(body.Address, "address"), Need(body.Password, "password"), null, body.QuotaBytes, caller.Actor);
            return Results.Json(View(box), WebJson.Default.MailboxView, statusCode: 201);
        }));
        api.MapMethods("/mailboxes/{address}", ["PATCH"], Handle("provision", async (ctx, caller) =>
        {
            var address = Route(ctx, "address");
            var body = await Body(ctx, WebJson.Default.MailboxPatch);
            var box = await provisioning.UpdateMailboxAsync(address, body.Password, body.QuotaBytes, body.Enabled, caller.Actor);
            return Results.Json(View(box), WebJson.Default.MailboxView);
        }));
        api.MapGet("/mailboxes/{address}/sender-lists", Handle("read", (ctx, _) =>
        {
            var address = Route(ctx, "address").Trim().ToLowerInvariant();
            if (Directory.FindMailbox(address) is null) throw new DirectoryException($"no such mailbox {address}", DirectoryError.NotFound);
            var (allow, block) = Directory.SenderLists(address);
            return Ok(new SenderLists { Allow = [.. allow], Block = [.. block] }, WebJson.Default.SenderLists);
        }));
        api.MapPut("/mailboxes/{address}/sender-lists", Handle("provision", async (ctx, caller) =>
        {
            var body = await Body(ctx, WebJson.Default.SenderLists);
            var (allow, block) = await provisioning.SetSenderListsAsync(Route(ctx, "address"), body.Allow ?? [], body.Block ?? [], caller.Actor);
            return Results.Json(new SenderLists { Allow = [.. allow], Block = [.. block] }, WebJson.Default.SenderLists);
        }));
        api.MapDelete("/mailboxes/{address}", Handle("provision", async (ctx, caller) =>
        {
            var address = Route(ctx, "address");
            await provisioning.RemoveMailboxAsync(address, ctx.Request.Query["purge"] == "true", caller.Actor);
            return Results.NoContent();
        }));
        api.MapPost("/mailboxes/bulk", Handle("provision", async (ctx, caller) =>
        {
            var body = await Body(ctx, WebJson.Default.BulkRequest);
            if (body.Mailboxes is not { Count: > 0 } items) throw new DirectoryException("mailboxes: at least one is needed");
            var entries = items.Select((m, i) => new BulkEntry(null, i, m?.Address ?? "", m?.Password, m?.PasswordHash, m?.QuotaBytes)).ToList();
            return Accepted(provisioning.StartBulk(entries, [], caller.Actor));
        }));
        api.MapPost("/mailboxes/import", Handle("provision", async (ctx, caller) =>
        {
            using var reader = new StreamReader(ctx.Request.Body, System.Text.Encoding.UTF8);
            var text = await reader.ReadToEndAsync(ctx.RequestAborted);
            return Accepted(await provisioning.StartImportAsync(text, caller.Actor));
        }));
        api.MapGet("/jobs/{id}", Handle("read", (ctx, _) =>
        {
            var id = Route(ctx, "id");
            return provisioning.GetJob(id) is { } job ? Ok(job, WebJson.Default.Job) : throw new DirectoryException($"no such job {id}", DirectoryError.NotFound);
        }));

        api.MapGet("/aliases", Handle("read", (ctx, _) =>
        {
            var domain = ctx.Request.Query["domain"].ToString() is { Length: > 0 } d ? d.Trim().ToLowerInvariant() : null;
            var aliases = Directory.ListAliases(domain).GroupBy(a => a.Source).Select(g => new AliasView(g.Key, g.Select(a => a.Target).ToList())).ToList();
            return Ok(aliases, WebJson.Default.ListAliasView);
        }));
        api.MapPost("/aliases", Handle("provision", async (ctx, caller) =>
        {
            var body = await Body(ctx, WebJson.Default.AliasCreate);
            var targets = body.Targets ?? [];
            var source = await provisioning.AddAliasAsync(Need(body.Source, "source"), targets, caller.Actor);
            var now = Directory.ListAliases(Addresses.DomainOf(source)).Where(a => a.Source == source).Select(a => a.Target).ToList();
            return Results.Json(new AliasView(source, now), WebJson.Default.AliasView, statusCode: 201);
        }));
        api.MapDelete("/aliases/{source}", Handle("provision", async (ctx, caller) =>
        {
            var source = Route(ctx, "source");
            var target = ctx.Request.Query["target"].ToString();
            await provisioning.RemoveAliasAsync(source, target.Length > 0 ? target : null, caller.Actor);
            return Results.NoContent();
        }));

        api.MapPost("/tokens", Handle("admin", async (ctx, caller) =>
        {
            var body = await Body(ctx, WebJson.Default.TokenCreate);
            var token = await provisioning.CreateTokenAsync(Need(body.Name, "name"), body.Scopes ?? "read", caller.Actor);
            return Results.Json(new TokenCreated(token), WebJson.Default.TokenCreated, statusCode: 201);
        }));
        api.MapPut("/admins/{name}/password", Handle("admin", async (ctx, caller) =>
        {
            var name = Route(ctx, "name");
            var body = await Body(ctx, WebJson.Default.PasswordChange);
            await provisioning.SetAdminPasswordAsync(name, Need(body.Password, "password"), caller.Actor);
            return Results.NoContent();
        }));

        api.MapGet("/provisioning", Handle("read", (ctx, _) =>
        {
            var limit = Math.Clamp(Int(ctx.Request.Query["limit"], 20), 1, MaxPageSize);
            var (_, recent) = provisioning.Journal.List(null, 0, limit);
            return Ok(new ProvisioningView(provisioning.Journal.LastSeq, provisioning.Progress(), recent), WebJson.Default.ProvisioningView);
        }));
        api.MapGet("/audit", Handle("read", (ctx, _) =>
        {
            var q = ctx.Request.Query;
            var (total, items) = provisioning.Journal.List(q["search"], Math.Max(0, Int(q["offset"], 0)), Math.Clamp(Int(q["limit"], 50), 1, MaxPageSize));
            return Ok(new AuditPage(total, items), WebJson.Default.AuditPage);
        }));
    }

    private Task<IResult> Dashboard()
    {
        var domains = Directory.ListDomainSummaries();
        var (total, _) = Directory.SearchMailboxes(null, null, 0, 1);
        var disabled = Directory.CountDisabled();
        var version = typeof(ApiEndpoints).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "";
        var view = new DashboardView(domains.Count, total, domains.Sum(d => d.Aliases), disabled, nodeName, version,
            new JournalPosition(provisioning.Journal.LastSeq), provisioning.Progress());
        return Ok(view, WebJson.Default.DashboardView);
    }

    private MailboxView View(MailboxRecord m)
    {
        var user = m.ToUser();
        long? used = store.Hosts(m.Partition) && store.IsServedHere(user) ? store.UsedBytes(user) : null;
        return new MailboxView(m.Address, m.Domain, m.QuotaBytes, used, m.Enabled, m.Partition);
    }

    /// <summary>A route handler: <see cref="Run"/> with the request's context, and its result written out.</summary>
    public RequestDelegate Handle(string scope, Func<HttpContext, Caller, Task<IResult>> action)
    {
        return Respond;

        async Task Respond(HttpContext ctx)
        {
            var result = await Run(ctx, scope, caller => action(ctx, caller));
            await result.ExecuteAsync(ctx);
        }
    }

    private static string Route(HttpContext ctx, string name) => ctx.Request.RouteValues[name] as string ?? "";

    /// <summary>Identifies the caller, checks the scope, runs the action and maps refusals to problems.</summary>
    public async Task<IResult> Run(HttpContext ctx, string scope, Func<Caller, Task<IResult>> action)
    {
        var (caller, problem) = sessions.Identify(ctx, Directory);
        if (problem is not null) return Problems.Result(problem);
        if (!caller!.Has(scope)) return Problems.Result(Problems.Forbidden($"this token lacks the '{scope}' scope"));
        try
        {
            return await action(caller);
        }
        catch (DirectoryException ex)
        {
            return Problems.Result(Problems.From(ex));
        }
        catch (JsonException ex)
        {
            return Problems.Result(Problems.BadRequest($"the body is not valid JSON: {ex.Message}"));
        }
        catch (BadHttpRequestException ex)
        {
            return Problems.Result(new Problem("https://appliance.invalid/problems/bad-request", "Bad request", ex.StatusCode, ex.Message));
        }
    }

    private static Task<IResult> Ok<T>(T value, JsonTypeInfo<T> type) => Task.FromResult(Results.Json(value, type));

    private static IResult Accepted(Job job) => Results.Json(new JobRef(job.Id), WebJson.Default.JobRef, statusCode: 202);

    public static async Task<T> Body<T>(HttpContext ctx, JsonTypeInfo<T> type) where T : class =>
        await JsonSerializer.DeserializeAsync(ctx.Request.Body, type, ctx.RequestAborted) ?? throw new DirectoryException("a JSON body is required");

    private static string Need(string? value, string name) => string.IsNullOrWhiteSpace(value) ? throw new DirectoryException($"{name} is required") : value;

    private static int Int(Microsoft.Extensions.Primitives.StringValues value, int fallback) =>
        int.TryParse(value.ToString(), System.Globalization.NumberStyles.None, null, out var n) ? n : fallback;

    private static Stream OpenApiDocument() =>
        typeof(ApiEndpoints).Assembly.GetManifestResourceStream("openapi.json") ?? throw new InvalidOperationException("openapi.json is not embedded");
}
