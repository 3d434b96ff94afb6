using System.Net;
using Appliance.Directory;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace Appliance.Web;

/// <summary>
/// The admin panel: its page and assets (embedded, so it works offline) and the sign-in
/// session API it uses (/api/v1/session, docs/api.md). The panel itself is a script that
/// talks to the provisioning API with its session cookie and CSRF token.
/// </summary>
public sealed class AdminEndpoints(Provisioning.ProvisioningService provisioning, AdminSessions sessions, ApiEndpoints api)
{
    /// <summary>No inline script or style, nothing from elsewhere, never framed.</summary>
    public const string ContentSecurityPolicy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'";

    public void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/admin", ctx => Asset(ctx, "index.html").ExecuteAsync(ctx));
        app.MapGet("/admin/assets/{file}", ctx => Asset(ctx, ctx.Request.RouteValues["file"] as string ?? "").ExecuteAsync(ctx));

        app.MapGet("/api/v1/session", ctx => Session(ctx).ExecuteAsync(ctx));
        app.MapPost("/api/v1/session", async ctx => await (await SignInAsync(ctx)).ExecuteAsync(ctx));
        app.MapDelete("/api/v1/session", api.Handle("admin", (ctx, caller) =>
        {
            sessions.Remove(caller.Session?.Id ?? "");
            sessions.ClearCookie(ctx);
            return Task.FromResult(Results.NoContent());
        }));

        // TOTP: a new secret is shown, and only becomes active once a code from it is confirmed.
        app.MapPost("/api/v1/session/totp", api.Handle("admin", (ctx, caller) =>
        {
            if (caller.Session is not { } session) throw new DirectoryException("TOTP belongs to an admin sign-in, not to a token");
            session.PendingTotp = Totp.NewSecret();
            return Task.FromResult(Results.Json(new TotpSetup(session.PendingTotp, Totp.Uri(session.PendingTotp, session.Name, "Appliance")), WebJson.Default.TotpSetup));
        }));
        app.MapPost("/api/v1/session/totp/confirm", api.Handle("admin", async (ctx, caller) =>
        {
            if (caller.Session is not { PendingTotp: { } secret } session) throw new DirectoryException("ask for a new TOTP secret first");
            var body = await ApiEndpoints.Body(ctx, WebJson.Default.TotpCode);
            if (body.Code is null || !Totp.Verify(secret, body.Code, DateTimeOffset.UtcNow)) throw new DirectoryException("the code does not match; check the authenticator app's clock");
            await provisioning.SetAdminTotpAsync(session.Name, secret, caller.Actor);
            session.PendingTotp = null;
            sessions.RemoveAllOf(session.Name, keep: session.Id);
            return Results.NoContent();
        }));
        app.MapDelete("/api/v1/session/totp", api.Handle("admin", async (ctx, caller) =>
        {
            if (caller.Session is not { } session) throw new DirectoryException("TOTP belongs to an admin sign-in, not to a token");
            var body = await ApiEndpoints.Body(ctx, WebJson.Default.TotpCode);
            if (body.Code is null || !provisioning.Directory.VerifyAdminTotp(session.Name, body.Code)) throw new DirectoryException("the code does not match");
            await provisioning.SetAdminTotpAsync(session.Name, null, caller.Actor);
            return Results.NoContent();
        }));
    }

    private IResult Session(HttpContext ctx)
    {
        var session = sessions.Find(ctx.Request.Cookies[AdminSessions.CookieName]);
        return session is null
            ? Problems.Result(Problems.Unauthorized("not signed in"))
            : Results.Json(new SessionInfo(session.Name, session.Csrf, provisioning.Directory.AdminHasTotp(session.Name)), WebJson.Default.SessionInfo);
    }

    private async Task<IResult> SignInAsync(HttpContext ctx)
    {
        SessionLogin body;
        try { body = await ApiEndpoints.Body(ctx, WebJson.Default.SessionLogin); }
        catch (Exception ex) when (ex is System.Text.Json.JsonException or DirectoryException) { return Problems.Result(Problems.BadRequest("send {\"name\", \"password\"}")); }
        if (string.IsNullOrEmpty(body.Name) || string.IsNullOrEmpty(body.Password)) return Problems.Result(Problems.BadRequest("name and password are required"));
        var remote = ctx.Connection.RemoteIpAddress ?? IPAddress.None;
        var outcome = await provisioning.Directory.AuthenticateAdminAsync(body.Name, body.Password, body.Totp, remote, ctx.RequestAborted);
        switch (outcome)
        {
            case AdminLoginOutcome.Throttled: return Problems.Result(Problems.TooMany("too many failed sign-ins from this address; wait a few minutes"));
            case AdminLoginOutcome.TotpRequired: return Problems.Result(Problems.TotpRequired());
            case AdminLoginOutcome.BadCredentials: return Problems.Result(Problems.Unauthorized("wrong name, password or code"));
        }
        var session = sessions.Create(body.Name);
        sessions.SetCookie(ctx, session);
        return Results.Json(new SessionInfo(session.Name, session.Csrf, provisioning.Directory.AdminHasTotp(session.Name)), WebJson.Default.SessionInfo);
    }

    private static IResult Asset(HttpContext ctx, string file) => EmbeddedAssets.Result(ctx, "admin", file, ContentSecurityPolicy);
}
