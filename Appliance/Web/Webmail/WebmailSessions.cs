using System.Collections.Concurrent;
using Appliance.Directory;
using Microsoft.AspNetCore.Http;

namespace Appliance.Web.Webmail;

// Implementation notes
// - Like the admin panel's (BrowserSessions): sessions live in memory on the node that made them,
//   a random 256-bit id in an HttpOnly, SameSite=Strict cookie (Secure over HTTPS) and a
//   separate CSRF token echoed in X-CSRF-Token on every change. A restart signs users out.
// - The session keeps the password the user signed in with, in memory only: the webmail sends
//   mail through the node's own submission service as that user (so every rule of submission
//   applies: MaySendAs, DKIM, limits), the way Roundcube keeps it for IMAP/SMTP. It also keeps
//   the password hash it was checked against: a password changed elsewhere (the admin, another
//   session) ends the session at its next request.
// - Uploaded attachments wait in the session (bounded per session) until a message takes them.

public sealed record PendingUpload(string Id, string Name, string Type, byte[] Data, DateTimeOffset Created)
{
    public static PendingUpload Of(string name, string type, byte[] data) => new(BrowserSession.NewSecret()[..16], name, type, data, DateTimeOffset.UtcNow);

    public UploadInfo Info => new(Id, Name, Type, Data.Length);
}

public sealed class WebmailSession(string id, string address, string password, string passwordHash, string csrf, DateTimeOffset created)
    : BrowserSession(id, address, csrf, created)
{
    public string Address => Owner;
    public string Password { get; set; } = password;
    public string PasswordHash { get; set; } = passwordHash;
    public ConcurrentDictionary<string, PendingUpload> Uploads { get; } = new(StringComparer.Ordinal);

    public long UploadedBytes => Uploads.Values.Sum(u => (long)u.Data.Length);
}

public sealed class WebmailSessions(TimeProvider time, TimeSpan maxAge, TimeSpan idleTimeout)
{
    public const string CookieName = "appliance_webmail";
    private static readonly TimeSpan UploadLifetime = TimeSpan.FromHours(1);
    private readonly BrowserSessions<WebmailSession> _sessions = new(CookieName, time, maxAge, idleTimeout);

    public WebmailSession Create(string address, string password, string passwordHash) =>
        _sessions.Add(new WebmailSession(BrowserSession.NewSecret(), address, password, passwordHash, BrowserSession.NewSecret(), time.GetUtcNow()));

    /// <summary>
    /// The session a request forwarded by the other node acts for: the peer's session, kept here
    /// under the same id and CSRF token (so uploads made through this node wait here for the
    /// message that takes them), its password brought up to date.
    /// </summary>
    public WebmailSession Adopt(string id, string address, string password, string passwordHash, string csrf)
    {
        if (Find(id) is { } known && known.Address == address && known.Csrf == csrf)
        {
            known.Password = password;
            known.PasswordHash = passwordHash;
            return known;
        }
        return _sessions.Add(new WebmailSession(id, address, password, passwordHash, csrf, time.GetUtcNow()));
    }

    /// <summary>The live session with this id, its uploads older than an hour dropped; or null.</summary>
    public WebmailSession? Find(string? id)
    {
        if (_sessions.Find(id) is not { } s) return null;
        var now = time.GetUtcNow();
        foreach (var (uploadId, u) in s.Uploads)
            if (now - u.Created > UploadLifetime) s.Uploads.TryRemove(uploadId, out _);
        return s;
    }

    public void Remove(string id) => _sessions.Remove(id);

    /// <summary>Ends every session of a mailbox except <paramref name="keep"/> (after a password change).</summary>
    public void RemoveAllOf(string address, string? keep) => _sessions.RemoveAllOf(address, keep);

    public void SetCookie(HttpContext ctx, WebmailSession session) => _sessions.SetCookie(ctx, session);

    public void ClearCookie(HttpContext ctx) => _sessions.ClearCookie(ctx);

    /// <summary>The signed-in session of a request, checking the CSRF token on anything but GET/HEAD.</summary>
    public (WebmailSession? Session, Problem? Problem) Identify(HttpContext ctx, MailDirectory directory)
    {
        var session = Find(ctx.Request.Cookies[CookieName]);
        if (session is null) return (null, Problems.Unauthorized("sign in first"));
        if (directory.FindMailbox(session.Address) is not { Enabled: true } box || box.PasswordHash != session.PasswordHash)
        {
            Remove(session.Id);
            return (null, Problems.Unauthorized("the session has ended (the password changed or the mailbox was disabled); sign in again"));
        }
        if (!BrowserSessions<WebmailSession>.CsrfAllows(ctx, session)) return (null, Problems.Forbidden("missing or wrong X-CSRF-Token header"));
        return (session, null);
    }
}
