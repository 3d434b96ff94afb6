using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace Appliance.Web;

/// <summary>A signed-in browser: the admin panel's or the webmail's.</summary>
public abstract class BrowserSession(string id, string owner, string csrf, DateTimeOffset created)
{
    public string Id { get; } = id;

    /// <summary>Who signed in: the admin's name, the mailbox's address.</summary>
    public string Owner { get; } = owner;

    public string Csrf { get; } = csrf;
    public DateTimeOffset Created { get; } = created;
    public DateTimeOffset LastSeen { get; set; } = created;

    /// <summary>256 random bits, URL-safe: session ids and CSRF tokens.</summary>
    public static string NewSecret() => Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)).TrimEnd('=').Replace('+', '-').Replace('/', '_');
}

/// <summary>
/// Browser sessions in memory, the way the admin panel and the webmail keep them: a random
/// 256-bit id in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS), a separate CSRF token
/// the page echoes in X-CSRF-Token on every change, an absolute and an idle lifetime.
/// </summary>
public sealed class BrowserSessions<T>(string cookieName, TimeProvider time, TimeSpan maxAge, TimeSpan idleTimeout) where T : BrowserSession
{
    private readonly ConcurrentDictionary<string, T> _sessions = new(StringComparer.Ordinal);


    /// <summary>Keeps a new session (dropping the expired ones on the way).</summary>
    public T Add(T session)
    {
        foreach (var (id, s) in _sessions)
            if (Expired(s)) _sessions.TryRemove(id, out _);
        _sessions[session.Id] = session;
        return session;
    }

    /// <summary>The live session with this id (its idle time starts again), or null.</summary>
    public T? Find(string? id)
    {
        if (id is null || !_sessions.TryGetValue(id, out var s)) return null;
        if (Expired(s)) { _sessions.TryRemove(id, out _); return null; }
        s.LastSeen = time.GetUtcNow();
        return s;
    }

    /// <summary>The session the request's cookie names, or null.</summary>
    public T? FromCookie(HttpContext ctx) => Find(ctx.Request.Cookies[cookieName]);

    public void Remove(string id) => _sessions.TryRemove(id, out _);

    /// <summary>Ends every session of <paramref name="owner"/> except <paramref name="keep"/>.</summary>
    public void RemoveAllOf(string owner, string? keep)
    {
        foreach (var (id, s) in _sessions)
            if (s.Owner == owner && id != keep) _sessions.TryRemove(id, out _);
    }

    private bool Expired(T s)
    {
        var now = time.GetUtcNow();
        return now - s.Created > maxAge || now - s.LastSeen > idleTimeout;
    }

    /// <summary>Whether a request may act for the session: anything but GET/HEAD must carry its CSRF token.</summary>
    public static bool CsrfAllows(HttpContext ctx, T session)
    {
        if (HttpMethods.IsGet(ctx.Request.Method) || HttpMethods.IsHead(ctx.Request.Method)) return true;
        var sent = ctx.Request.Headers["X-CSRF-Token"].ToString();
        return CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(sent), Encoding.UTF8.GetBytes(session.Csrf));
    }

    public void SetCookie(HttpContext ctx, T session) =>
        ctx.Response.Cookies.Append(cookieName, session.Id, new CookieOptions
        {
            HttpOnly = true, SameSite = SameSiteMode.Strict, Secure = ctx.Request.IsHttps, Path = "/", MaxAge = maxAge,
        });

    public void ClearCookie(HttpContext ctx) =>
        ctx.Response.Cookies.Delete(cookieName, new CookieOptions { HttpOnly = true, SameSite = SameSiteMode.Strict, Secure = ctx.Request.IsHttps, Path = "/" });
}
