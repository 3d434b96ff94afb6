using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using System.Threading.Channels;
using Appliance.Directory;
using Appliance.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace Appliance.Web.Webmail;

/// <summary>A request the webmail refuses, with the status and the sentence the user sees.</summary>
public sealed class WebmailException(int status, string detail) : Exception(detail)
{
    public int Status { get; } = status;
}

/// <summary>
/// The webmail (docs/webmail.md): its page and assets at / (embedded, so it works offline), and
/// the JSON API under /webmail/api the page uses, every call acting on the signed-in mailbox.
/// Mail is read and changed through the same store API IMAP uses (so a move into Junk trains the
/// spam filter, and IMAP clients see every change at once); sending goes through the node's own
/// submission service (WebmailComposer); the address book, notes, files and settings live in the
/// db unit (WebmailEndpoints.Data.cs). In a pair, a call whose unit is active on the other node is forwarded there (WebmailForwarding).
/// </summary>
public sealed partial class WebmailEndpoints
{
    /// <summary>The page's policy: nothing inline, nothing from elsewhere, frames only from here (the reading pane).</summary>
    public const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self'; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";

    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("webmail");
    private readonly MailStore _store;
    private readonly MailDirectory _directory;
    private readonly Provisioning.ProvisioningService _provisioning;
    private readonly WebmailSessions _sessions;
    private readonly WebmailComposer _composer;
    private readonly Hosting.WebmailOptions _options;
    private readonly Func<string, string?> _checkSieve;
    private readonly bool _devMode;
    private readonly WebmailForwarding _forwarding;

    /// <summary>What a call needs active on the node that serves it: the mailbox's partition, the db unit, or neither.</summary>
    private enum Needs { Mailbox, Db, Nothing }

    public WebmailEndpoints(MailStore store, Provisioning.ProvisioningService provisioning, WebmailComposer composer, Hosting.WebmailOptions options,
        Func<string, string?> checkSieve, bool devMode, TimeProvider time, Hosting.ISessionForwarder? forwarder = null)
    {
        _store = store;
        _provisioning = provisioning;
        _directory = provisioning.Directory;
        _composer = composer;
        _options = options;
        _checkSieve = checkSieve;
        _devMode = devMode;
        _sessions = new WebmailSessions(time, TimeSpan.FromHours(options.SessionHours), TimeSpan.FromMinutes(options.IdleMinutes));
        _forwarding = new WebmailForwarding(forwarder, _sessions, _directory);
    }

    /// <summary>Serves the requests the other node of a pair forwards here (register it with the cluster).</summary>
    public WebmailForwarding Forwarding => _forwarding;

    public void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/", ctx => Asset(ctx, "index.html").ExecuteAsync(ctx));
        app.MapGet("/webmail/assets/{file}", ctx => Asset(ctx, ctx.Request.RouteValues["file"] as string ?? "").ExecuteAsync(ctx));

        app.MapGet("/webmail/api/session", ctx => SessionInfo(ctx).ExecuteAsync(ctx));
        app.MapPost("/webmail/api/session", async ctx => await (await SignInAsync(ctx)).ExecuteAsync(ctx));
        app.MapDelete("/webmail/api/session", Handle((ctx, s, _) =>
        {
            _sessions.Remove(s.Id);
            _sessions.ClearCookie(ctx);
            return Task.FromResult(Results.NoContent());
        }, Needs.Nothing));

        MapMail(app);
        MapMessages(app);
        MapCompose(app);
        MapData(app);
    }

    // ---- plumbing ----

    /// <summary>
    /// Runs a handler for the signed-in mailbox: the session (and the CSRF token on changes) is
    /// checked first, and the store's and the handler's refusals become problem documents.
    /// What <paramref name="needs"/> names must be active here; in a pair a request for a unit
    /// active on the other node is forwarded there (WebmailForwarding).
    /// </summary>
    private RequestDelegate Handle(Func<HttpContext, WebmailSession, MailUser, Task<IResult>> handler, Needs needs = Needs.Mailbox) => async ctx =>
    {
        ctx.Response.Headers.CacheControl = "no-store";
        var (session, problem, forwarded) = Identify(ctx);
        if (session is null)
        {
            await Problems.Result(problem!).ExecuteAsync(ctx);
            return;
        }
        var user = _directory.FindMailbox(session.Address)!.ToUser();
        IResult result;
        try
        {
            if (!ServedHere(user, needs))
            {
                if (forwarded || !_forwarding.CanForward)
                    throw new WebmailException(503, "your mailbox is being served by the other node at the moment; try again in a few seconds");
                await _forwarding.ForwardAsync(ctx, session, user);
                return;
            }
            result = await handler(ctx, session, user);
        }
        catch (WebmailException ex) { result = Problem(ex.Status, ex.Message); }
        catch (FolderNotFoundException ex) { result = Problem(404, $"there is no folder {ex.Folder}"); }
        catch (FolderExistsException ex) { result = Problem(409, $"a folder {ex.Folder} already exists"); }
        catch (UnitUnavailableException ex) { result = Problem(503, ex.Message); }
        catch (JsonException) { result = Problem(400, "the request's body is not the JSON this call expects"); }
        catch (BadHttpRequestException ex) { result = Problem(ex.StatusCode, ex.Message); }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested) { return; }
        await result.ExecuteAsync(ctx);
    };

    private bool ServedHere(MailUser user, Needs needs) => needs switch
    {
        Needs.Mailbox => _store.IsServedHere(user),
        Needs.Db => _store.WebmailWritable,
        _ => true,
    };

    /// <summary>The request's session: a browser's (cookie, CSRF token on changes) or, on the internal port, the one the other node forwarded it for.</summary>
    private (WebmailSession? Session, Problem? Problem, bool Forwarded) Identify(HttpContext ctx)
    {
        if (_forwarding.ForwardedSessionId(ctx) is { } id)
            return _sessions.Find(id) is { } adopted ? (adopted, null, true) : (null, Problems.Unauthorized("the forwarded session has ended"), true);
        var (session, problem) = _sessions.Identify(ctx, _directory);
        return (session, problem, false);
    }

    internal static IResult Problem(int status, string detail) => Problems.Result(status switch
    {
        400 => Problems.BadRequest(detail),
        401 => Problems.Unauthorized(detail),
        403 => Problems.Forbidden(detail),
        404 => Problems.NotFound(detail),
        409 => Problems.Conflict(detail),
        429 => Problems.TooMany(detail),
        _ => new Problem("https://appliance.invalid/problems/webmail", status switch
        {
            413 => "Too large",
            503 => "Unavailable",
            _ => "Refused",
        }, status, detail),
    });

    /// <summary>Reads a JSON body (1 MiB at most unless said); a missing or empty one is refused.</summary>
    internal static async Task<T> Body<T>(HttpContext ctx, JsonTypeInfo<T> type, long maxBytes = 1 << 20) where T : class
    {
        if (ctx.Request.ContentLength > maxBytes) throw new WebmailException(413, "the request is too large");
        try
        {
            return await JsonSerializer.DeserializeAsync(ctx.Request.Body, type, ctx.RequestAborted)
                ?? throw new WebmailException(400, "the request needs a JSON body");
        }
        catch (JsonException)
        {
            throw new WebmailException(400, "the request's body is not the JSON this call expects");
        }
    }

    private static string Query(HttpContext ctx, string name, string? fallback = null) =>
        ctx.Request.Query[name].ToString() is { Length: > 0 } v ? v
        : fallback ?? throw new WebmailException(400, $"the query needs {name}=");

    private static long QueryUid(HttpContext ctx) =>
        long.TryParse(Query(ctx, "uid"), NumberStyles.None, CultureInfo.InvariantCulture, out var uid) && uid > 0 ? uid
        : throw new WebmailException(400, "uid= must be a message's UID");

    private static int QueryInt(HttpContext ctx, string name, int fallback, int min, int max) =>
        ctx.Request.Query[name].ToString() is { Length: > 0 } v
            ? int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min && n <= max ? n
              : throw new WebmailException(400, $"{name}= must be a number from {min} to {max}")
            : fallback;

    private static IResult Json<T>(T value, JsonTypeInfo<T> type, int status = 200) => Results.Json(value, type, statusCode: status);

    private static IResult Asset(HttpContext ctx, string file) => EmbeddedAssets.Result(ctx, "webmail", file, ContentSecurityPolicy);

    // ---- session ----

    private IResult SessionInfo(HttpContext ctx)
    {
        ctx.Response.Headers.CacheControl = "no-store";
        var (session, problem) = _sessions.Identify(ctx, _directory);
        return session is null ? Problems.Result(problem!) : Json(Info(session), WebmailJson.Default.WebmailSessionInfo);
    }

    private WebmailSessionInfo Info(WebmailSession session)
    {
        var name = "";
        try { name = LoadSettings(session.Address).DisplayName ?? ""; }
        catch (UnitUnavailableException) { } // the db unit is moving: the name shows once it is back
        return new WebmailSessionInfo(session.Address, name, session.Csrf);
    }

    private async Task<IResult> SignInAsync(HttpContext ctx)
    {
        ctx.Response.Headers.CacheControl = "no-store";
        var remote = ctx.Connection.RemoteIpAddress ?? IPAddress.None;
        if (!_devMode && !ctx.Request.IsHttps && !IPAddress.IsLoopback(remote))
            return Problem(403, "sign in over HTTPS (https://…): a password is never sent in the clear");
        WebmailLogin body;
        try { body = await Body(ctx, WebmailJson.Default.WebmailLogin); }
        catch (WebmailException) { return Problem(400, "send {\"address\", \"password\"}"); }
        if (string.IsNullOrWhiteSpace(body.Address) || string.IsNullOrEmpty(body.Password)) return Problem(400, "enter your address and password");
        var result = await _directory.AuthenticateAsync(body.Address, body.Password, remote, ctx.RequestAborted);
        switch (result.Outcome)
        {
            case AuthOutcome.Throttled:
                return Problem(429, "too many failed sign-ins from this address; wait a few minutes");
            case AuthOutcome.BadCredentials:
                Log.Info("webmail login failed user={0} ip={1}", body.Address, remote);
                return Problem(401, "wrong address or password");
        }
        var user = result.User!;
        var box = _directory.FindMailbox(user.Address)!; // read after the check: a migrated hash was just replaced
        var session = _sessions.Create(user.Address, body.Password, box.PasswordHash);
        _sessions.SetCookie(ctx, session);
        Log.Info("webmail login user={0} ip={1}", user.Address, remote);
        return Json(Info(session), WebmailJson.Default.WebmailSessionInfo);
    }

    // ---- folders and the message list ----

    private void MapMail(IEndpointRouteBuilder app)
    {
        app.MapGet("/webmail/api/folders", Handle(async (ctx, _, user) =>
        {
            var folders = await _store.ListFoldersAsync(user, ctx.RequestAborted);
            return Json(new WebmailFolders([.. folders.Select(f => new WebmailFolder(f.Name, f.SpecialUse, f.Messages, f.Unseen, f.Subscribed))]),
                WebmailJson.Default.WebmailFolders);
        }));
        app.MapPost("/webmail/api/folders", Handle(async (ctx, _, user) =>
        {
            var body = await Body(ctx, WebmailJson.Default.FolderCreate);
            var name = CheckFolderName(body.Name);
            await _store.CreateFolderAsync(user, name, null, ctx.RequestAborted);
            await _store.SetSubscribedAsync(user, name, true, ctx.RequestAborted);
            return Results.StatusCode(201);
        }));
        app.MapPost("/webmail/api/folders/rename", Handle(async (ctx, _, user) =>
        {
            var body = await Body(ctx, WebmailJson.Default.FolderRename);
            var from = await OwnFolderAsync(user, body.Folder, ctx.RequestAborted);
            var to = CheckFolderName(body.NewName);
            await _store.RenameFolderAsync(user, from, to, ctx.RequestAborted);
            await _store.SetSubscribedAsync(user, from, false, ctx.RequestAborted);
            await _store.SetSubscribedAsync(user, to, true, ctx.RequestAborted);
            return Results.NoContent();
        }));
        app.MapDelete("/webmail/api/folders", Handle(async (ctx, _, user) =>
        {
            var folder = await OwnFolderAsync(user, Query(ctx, "folder"), ctx.RequestAborted);
            await _store.DeleteFolderAsync(user, folder, ctx.RequestAborted);
            await _store.SetSubscribedAsync(user, folder, false, ctx.RequestAborted);
            return Results.NoContent();
        }));

        app.MapGet("/webmail/api/messages", Handle(ListMessagesAsync));
        app.MapGet("/webmail/api/events", Handle(EventsAsync));
    }

    /// <summary>A folder the user made (not INBOX, not special-use), which may be renamed or deleted.</summary>
    private async Task<string> OwnFolderAsync(MailUser user, string? name, CancellationToken ct)
    {
        if (string.IsNullOrEmpty(name)) throw new WebmailException(400, "name the folder");
        var info = await _store.GetFolderInfoAsync(user, name, ct) ?? throw new WebmailException(404, $"there is no folder {name}");
        if (info.Name == MailStore.Inbox || info.SpecialUse is not null)
            throw new WebmailException(400, $"{info.Name} is one of the mailbox's standard folders: it cannot be renamed or deleted");
        return info.Name;
    }

    private static string CheckFolderName(string? name)
    {
        name = name?.Trim().Trim('/');
        if (string.IsNullOrEmpty(name) || name.Length > 200 || name.Any(char.IsControl) || name.Contains("//", StringComparison.Ordinal) || name.Contains('*') || name.Contains('%'))
            throw new WebmailException(400, "a folder name must be 1 to 200 characters, without control characters, * or %");
        return MailStore.FolderName(name);
    }

    private async Task<IResult> ListMessagesAsync(HttpContext ctx, WebmailSession session, MailUser user)
    {
        var clock = Stopwatch.StartNew();
        var ct = ctx.RequestAborted;
        var folder = MailStore.FolderName(Query(ctx, "folder", MailStore.Inbox));
        var offset = QueryInt(ctx, "offset", 0, 0, int.MaxValue);
        var limit = QueryInt(ctx, "limit", 50, 1, 500);
        var order = Query(ctx, "sort", "date") switch
        {
            "date" => MessageOrder.Date,
            "from" => MessageOrder.From,
            "subject" => MessageOrder.Subject,
            "size" => MessageOrder.Size,
            _ => throw new WebmailException(400, "sort= is date, from, subject or size"),
        };
        var descending = Query(ctx, "order", "desc") switch
        {
            "desc" => true,
            "asc" => false,
            _ => throw new WebmailException(400, "order= is asc or desc"),
        };
        var threads = Query(ctx, "threads", "0") == "1";
        IReadOnlySet<long>? only = null;
        if (ctx.Request.Query["q"].ToString().Trim() is { Length: > 0 } q)
        {
            if (q.Length > 200) throw new WebmailException(400, "search for 200 characters at most");
            only = await _store.SearchTextAsync(user, folder, TextField.Text, q, null, ct);
        }
        var page = await _store.ListPageAsync(user, folder, order, descending, offset, limit, threads, only, ct);
        var uids = page.Messages.Select(m => m.Uid).ToArray();
        var structures = uids.Length == 0 ? new Dictionary<long, MessageStructure>() : await _store.GetStructuresAsync(user, folder, uids, ct);
        var rows = page.Messages.Select(m => new MessageRow(
            m.Uid, new MailAddress(m.FromName, m.FromAddress), FirstTo(m.To), m.Subject, m.Date, m.Size,
            m.Flags.HasFlag(MessageFlags.Seen), m.Flags.HasFlag(MessageFlags.Flagged), m.Flags.HasFlag(MessageFlags.Answered), m.Flags.HasFlag(MessageFlags.Draft),
            structures.TryGetValue(m.Uid, out var s) && WebmailReader.HasAttachments(s), m.Depth)).ToList();
        ctx.Response.Headers["Server-Timing"] = "app;dur=" + clock.Elapsed.TotalMilliseconds.ToString("0.0", CultureInfo.InvariantCulture);
        return Json(new MessageList(folder, page.Total, offset, rows), WebmailJson.Default.MessageList);
    }

    /// <summary>The index keeps the first To recipient's display: its name, else its address.</summary>
    private static MailAddress[] FirstTo(string display) =>
        display.Length == 0 ? []
        : display.Contains('@') && !display.Any(char.IsWhiteSpace) ? [new MailAddress("", display)]
        : [new MailAddress(display, "")];

    /// <summary>
    /// Server-sent events: "folder" with the folder's name whenever one of the mailbox's folders
    /// changes (new mail, or a change made by an IMAP client or another tab), and a comment every
    /// 25 s so proxies keep the stream open.
    /// </summary>
    private async Task<IResult> EventsAsync(HttpContext ctx, WebmailSession session, MailUser user)
    {
        var changed = Channel.CreateBounded<string>(new BoundedChannelOptions(64) { FullMode = BoundedChannelFullMode.DropOldest });
        using var subscription = _store.Changes.Subscribe(session.Address, folder => changed.Writer.TryWrite(folder));
        ctx.Response.Headers.ContentType = "text/event-stream";
        ctx.Response.Headers["X-Accel-Buffering"] = "no";
        // Ends with the server too: an open stream would otherwise hold a stopping node for Kestrel's whole shutdown timeout.
        var stopping = ctx.RequestServices.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        using var ends = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, stopping);
        var ct = ends.Token;
        try
        {
            await ctx.Response.WriteAsync("retry: 5000\n\n", ct);
            await ctx.Response.Body.FlushAsync(ct);
            while (!ct.IsCancellationRequested)
            {
                using var wait = CancellationTokenSource.CreateLinkedTokenSource(ct);
                wait.CancelAfter(TimeSpan.FromSeconds(25));
                string? folder = null;
                try { folder = await changed.Reader.ReadAsync(wait.Token); }
                catch (OperationCanceledException) when (!ct.IsCancellationRequested) { }
                if (folder is null)
                {
                    await ctx.Response.WriteAsync(": keep-alive\n\n", ct);
                    // Signed out or expired meanwhile, or the mailbox moved to the other node: the page reconnects.
                    if (_sessions.Find(session.Id) is null || !_store.IsServedHere(user)) break;
                }
                else
                {
                    var data = JsonSerializer.Serialize(new Dictionary<string, string> { ["folder"] = folder }, WebmailJson.Default.DictionaryStringString);
                    await ctx.Response.WriteAsync($"event: folder\ndata: {data}\n\n", ct);
                }
                await ctx.Response.Body.FlushAsync(ct);
            }
        }
        catch (OperationCanceledException) { }
        catch (IOException) { }
        return Results.Empty; // the stream was the answer
    }
}
