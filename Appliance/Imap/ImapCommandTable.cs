using System.Collections.Frozen;

namespace Appliance.Imap;

/// <summary>IMAP connection states (RFC 9051 §3); Logout needs no entry: LOGOUT ends the loop.</summary>
[Flags]
internal enum ImapStates
{
    None = 0,
    NotAuthenticated = 1,
    Authenticated = 2,
    Selected = 4,
    LoggedIn = Authenticated | Selected,
    Any = NotAuthenticated | Authenticated | Selected,
}

internal delegate ValueTask ImapHandler(ImapSession session, ImapCommand command);

/// <param name="AllowsUid">Whether the command may be prefixed with UID.</param>
internal sealed record ImapCommandEntry(ImapHandler Handler, ImapStates States, bool AllowsUid = false);

/// <summary>
/// The command table as data: name → handler, the states it is allowed in, and whether a UID
/// form exists. The state check happens once, in <c>ImapSession.DispatchAsync</c>.
/// </summary>
internal static class ImapCommandTable
{
    public static readonly FrozenDictionary<string, ImapCommandEntry> Commands = new Dictionary<string, ImapCommandEntry>(StringComparer.Ordinal)
    {
        // Any state: RFC 9051 §6.1, RFC 2971 ID, RFC 5161 ENABLE is authenticated-only (below)
        ["CAPABILITY"] = new(static (s, c) => s.CapabilityAsync(c), ImapStates.Any),
        ["NOOP"] = new(static (s, c) => s.NoopAsync(c), ImapStates.Any),
        ["LOGOUT"] = new(static (s, c) => s.LogoutAsync(c), ImapStates.Any),
        ["ID"] = new(static (s, c) => s.IdAsync(c), ImapStates.Any),

        // Not authenticated: RFC 9051 §6.2
        ["STARTTLS"] = new(static (s, c) => s.StartTlsCommandAsync(c), ImapStates.NotAuthenticated),
        ["AUTHENTICATE"] = new(static (s, c) => s.AuthenticateAsync(c), ImapStates.NotAuthenticated),
        ["LOGIN"] = new(static (s, c) => s.LoginCommandAsync(c), ImapStates.NotAuthenticated),

        // Authenticated (and selected): RFC 9051 §6.3 and extensions
        ["ENABLE"] = new(static (s, c) => s.EnableAsync(c), ImapStates.LoggedIn),
        ["COMPRESS"] = new(static (s, c) => s.CompressAsync(c), ImapStates.LoggedIn),
        ["SELECT"] = new(static (s, c) => s.SelectAsync(c, readOnly: false), ImapStates.LoggedIn),
        ["EXAMINE"] = new(static (s, c) => s.SelectAsync(c, readOnly: true), ImapStates.LoggedIn),
        ["CREATE"] = new(static (s, c) => s.CreateAsync(c), ImapStates.LoggedIn),
        ["DELETE"] = new(static (s, c) => s.DeleteAsync(c), ImapStates.LoggedIn),
        ["RENAME"] = new(static (s, c) => s.RenameAsync(c), ImapStates.LoggedIn),
        ["SUBSCRIBE"] = new(static (s, c) => s.SubscribeAsync(c, subscribe: true), ImapStates.LoggedIn),
        ["UNSUBSCRIBE"] = new(static (s, c) => s.SubscribeAsync(c, subscribe: false), ImapStates.LoggedIn),
        ["LIST"] = new(static (s, c) => s.ListAsync(c, lsub: false), ImapStates.LoggedIn),
        ["LSUB"] = new(static (s, c) => s.ListAsync(c, lsub: true), ImapStates.LoggedIn),
        ["NAMESPACE"] = new(static (s, c) => s.NamespaceAsync(c), ImapStates.LoggedIn),
        ["STATUS"] = new(static (s, c) => s.StatusAsync(c), ImapStates.LoggedIn),
        ["APPEND"] = new(static (s, c) => s.AppendAsync(c), ImapStates.LoggedIn),
        ["IDLE"] = new(static (s, c) => s.IdleAsync(c), ImapStates.LoggedIn),
        ["GETQUOTA"] = new(static (s, c) => s.GetQuotaAsync(c), ImapStates.LoggedIn),
        ["GETQUOTAROOT"] = new(static (s, c) => s.GetQuotaRootAsync(c), ImapStates.LoggedIn),
        ["SETQUOTA"] = new(static (s, c) => s.SetQuotaAsync(c), ImapStates.LoggedIn),

        // Selected: RFC 9051 §6.4, RFC 6851 MOVE, RFC 5256 SORT/THREAD, RFC 3691 UNSELECT
        ["CHECK"] = new(static (s, c) => s.NoopAsync(c), ImapStates.Selected),
        ["CLOSE"] = new(static (s, c) => s.CloseAsync(c, expunge: true), ImapStates.Selected),
        ["UNSELECT"] = new(static (s, c) => s.CloseAsync(c, expunge: false), ImapStates.Selected),
        ["EXPUNGE"] = new(static (s, c) => s.ExpungeAsync(c), ImapStates.Selected, AllowsUid: true),
        ["SEARCH"] = new(static (s, c) => s.SearchAsync(c), ImapStates.Selected, AllowsUid: true),
        ["SORT"] = new(static (s, c) => s.SortAsync(c), ImapStates.Selected, AllowsUid: true),
        ["THREAD"] = new(static (s, c) => s.ThreadAsync(c), ImapStates.Selected, AllowsUid: true),
        ["FETCH"] = new(static (s, c) => s.FetchAsync(c), ImapStates.Selected, AllowsUid: true),
        ["STORE"] = new(static (s, c) => s.StoreAsync(c), ImapStates.Selected, AllowsUid: true),
        ["COPY"] = new(static (s, c) => s.CopyAsync(c, move: false), ImapStates.Selected, AllowsUid: true),
        ["MOVE"] = new(static (s, c) => s.CopyAsync(c, move: true), ImapStates.Selected, AllowsUid: true),
    }.ToFrozenDictionary(StringComparer.Ordinal);
}
