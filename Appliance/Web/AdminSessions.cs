using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
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

public sealed class AdminSession(string id, string name, string csrf, DateTimeOffset created)
{
    public string Id { get; } = id;
    public string Name { get; } = name;
    public string Csrf { get; } = csrf;
    public DateTimeOffset Created { get; } = created;
    public DateTimeOffset LastSeen { get; set; } = created;
    /// <summary>A TOTP secret shown to the admin and waiting for a code to confirm it.</summary>
    public string? PendingTotp { get; set; }
}

public sealed class AdminSessions(TimeProvider time)
{
    public const string CookieName = "appliance_admin";
    public static readonly TimeSpan MaxAge = TimeSpan.FromHours(8);
    public static readonly TimeSpan IdleTimeout = TimeSpan.FromMinutes(30);
    private readonly ConcurrentDictionary<string, AdminSession> _sessions = new();

    public AdminSession Create(string name)
    {
        foreach (var (id, s) in _sessions)
            if (Expired(s)) _sessions.TryRemove(id, out _);
        var session = new AdminSession(NewSecret(), name, NewSecret(), time.GetUtcNow());
        _sessions[session.Id] = session;
        return session;
    }

    public AdminSession? Find(string? id)
    {
        if (id is null || !_sessions.TryGetValue(id, out var s)) return null;
        if (Expired(s)) { _sessions.TryRemove(id, out _); return null; }
        s.LastSeen = time.GetUtcNow();
        return s;
    }

    public void Remove(string id) => _sessions.TryRemove(id, out _);

    /// <summary>Ends every session of an admin (after a TOTP change, say) except <paramref name="keep"/>.</summary>
    public void RemoveAllOf(string name, string? keep)
    {
        foreach (var (id, s) in _sessions)
            if (s.Name == name && id != keep) _sessions.TryRemove(id, out _);
    }

    private bool Expired(AdminSession s)
    {
        var now = time.GetUtcNow();
        return now - s.Created > MaxAge || now - s.LastSeen > IdleTimeout;
    }

    /// <summary>256 random bits, URL-safe: session ids and CSRF tokens.</summary>
    internal static string NewSecret() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');

    public static void SetCookie(HttpContext ctx, AdminSession session) =>
        ctx.Response.Cookies.Append(CookieName, session.Id, new CookieOptions
        {
            HttpOnly = true, SameSite = SameSiteMode.Strict, Secure = ctx.Request.IsHttps, Path = "/", MaxAge = MaxAge,
        });

    public static void ClearCookie(HttpContext ctx) =>
        ctx.Response.Cookies.Delete(CookieName, new CookieOptions { HttpOnly = true, SameSite = SameSiteMode.Strict, Secure = ctx.Request.IsHttps, Path = "/" });

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
        var session = Find(ctx.Request.Cookies[CookieName]);
        if (session is null) return (null, Problems.Unauthorized("sign in, or send an API token (Authorization: Bearer …)"));
        if (!HttpMethods.IsGet(ctx.Request.Method) && !HttpMethods.IsHead(ctx.Request.Method))
        {
            var sent = ctx.Request.Headers["X-CSRF-Token"].ToString();
            if (!CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(sent), Encoding.UTF8.GetBytes(session.Csrf)))
                return (null, Problems.Forbidden("missing or wrong X-CSRF-Token header"));
        }
        return (new Caller("admin:" + session.Name, session.Name, ["admin"], session), null);
    }
}
