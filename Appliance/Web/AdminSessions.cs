using Appliance.Directory;
using Microsoft.AspNetCore.Http;

namespace Appliance.Web;

// Implementation notes
// - Admin panel sessions live in memory on the node that created them: a random 256-bit id in
//   an HttpOnly, SameSite=Strict cookie (Secure over HTTPS), and a separate random CSRF token
//   the page must echo in X-CSRF-Token on every change (synchronizer token). A restart or a
//   failover signs admins out; that is acceptable for a panel and keeps secrets off disk.
// - Sessions end after 8 hours, or 30 minutes without a request.

/// <summary>Who is calling the API: an admin with a panel session, or an API token.</summary>
public sealed record Caller(string Actor, string Name, IReadOnlyList<string> Scopes, AdminSession? Session)
{
    /// <summary>admin includes everything; provision includes read.</summary>
    public bool Has(string scope) =>
        Scopes.Contains("admin") || Scopes.Contains(scope) || (scope == "read" && Scopes.Contains("provision"));
}

public sealed class AdminSession(string id, string name, string csrf, DateTimeOffset created) : BrowserSession(id, name, csrf, created)
{
    public string Name => Owner;

    /// <summary>A TOTP secret shown to the admin and waiting for a code to confirm it.</summary>
    public string? PendingTotp { get; set; }
}

public sealed class AdminSessions(TimeProvider time)
{
    public const string CookieName = "appliance_admin";
    public static readonly TimeSpan MaxAge = TimeSpan.FromHours(8);
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromMinutes(30);
    private readonly BrowserSessions<AdminSession> _sessions = new(CookieName, time, MaxAge, IdleTimeout);

    public AdminSession Create(string name) =>
        _sessions.Add(new AdminSession(BrowserSession.NewSecret(), name, BrowserSession.NewSecret(), time.GetUtcNow()));

    public AdminSession? Find(string? id) => _sessions.Find(id);

    public void Remove(string id) => _sessions.Remove(id);

    /// <summary>Ends every session of an admin (after a TOTP change, say) except <paramref name="keep"/>.</summary>
    public void RemoveAllOf(string name, string? keep) => _sessions.RemoveAllOf(name, keep);

    public void SetCookie(HttpContext ctx, AdminSession session) => _sessions.SetCookie(ctx, session);

    public void ClearCookie(HttpContext ctx) => _sessions.ClearCookie(ctx);

    /// <summary>
    /// The caller of an API request, or the problem to answer: a bearer token, else the session
    /// cookie (with the CSRF token on anything but GET/HEAD).
    /// </summary>
    public (Caller? Caller, Problem? Problem) Identify(HttpContext ctx, MailDirectory directory)
    {
        var auth = ctx.Request.Headers.Authorization.ToString();
        if (auth.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            var token = directory.AuthenticateToken(auth["Bearer ".Length..].Trim());
            return token is null
                ? (null, Problems.Unauthorized("the API token is not valid"))
                : (new Caller("token:" + token.Name, token.Name, token.Scopes, null), null);
        }
        var session = _sessions.FromCookie(ctx);
        if (session is null) return (null, Problems.Unauthorized("sign in, or send an API token (Authorization: Bearer …)"));
        if (!BrowserSessions<AdminSession>.CsrfAllows(ctx, session)) return (null, Problems.Forbidden("missing or wrong X-CSRF-Token header"));
        return (new Caller("admin:" + session.Name, session.Name, ["admin"], session), null);
    }
}
