using System.Collections.Frozen;

namespace Appliance.ManageSieve;

/// <summary>ManageSieve session states (RFC 5804 §1.8, §2).</summary>
[Flags]
internal enum ManageSieveStates
{
    None = 0,
    NotAuthenticated = 1,
    Authenticated = 2,
    Any = NotAuthenticated | Authenticated,
}

internal delegate ValueTask ManageSieveHandler(ManageSieveSession session, ManageSieveCommand command);

internal sealed record ManageSieveCommandEntry(ManageSieveHandler Handler, ManageSieveStates States);

/// <summary>
/// The command table as data: name → handler and the states it is allowed in. The state check
/// happens once, in <c>ManageSieveSession.DispatchAsync</c>.
/// </summary>
internal static class ManageSieveCommandTable
{
    public static readonly FrozenDictionary<string, ManageSieveCommandEntry> Commands = new Dictionary<string, ManageSieveCommandEntry>(StringComparer.Ordinal)
    {
        // Any state: RFC 5804 §2.4 CAPABILITY, §2.3 LOGOUT, §2.13 NOOP
        ["CAPABILITY"] = new(static (s, c) => s.CapabilityAsync(c), ManageSieveStates.Any),
        ["LOGOUT"] = new(static (s, c) => s.LogoutAsync(c), ManageSieveStates.Any),
        ["NOOP"] = new(static (s, c) => s.NoopAsync(c), ManageSieveStates.Any),

        // Non-authenticated: §2.1 AUTHENTICATE, §2.2 STARTTLS
        ["AUTHENTICATE"] = new(static (s, c) => s.AuthenticateAsync(c), ManageSieveStates.NotAuthenticated),
        ["STARTTLS"] = new(static (s, c) => s.StartTlsAsync(c), ManageSieveStates.NotAuthenticated),

        // Authenticated: §2.5–§2.12, §2.14 UNAUTHENTICATE
        ["HAVESPACE"] = new(static (s, c) => s.HaveSpaceAsync(c), ManageSieveStates.Authenticated),
        ["PUTSCRIPT"] = new(static (s, c) => s.PutScriptAsync(c), ManageSieveStates.Authenticated),
        ["LISTSCRIPTS"] = new(static (s, c) => s.ListScriptsAsync(c), ManageSieveStates.Authenticated),
        ["SETACTIVE"] = new(static (s, c) => s.SetActiveAsync(c), ManageSieveStates.Authenticated),
        ["GETSCRIPT"] = new(static (s, c) => s.GetScriptAsync(c), ManageSieveStates.Authenticated),
        ["DELETESCRIPT"] = new(static (s, c) => s.DeleteScriptAsync(c), ManageSieveStates.Authenticated),
        ["RENAMESCRIPT"] = new(static (s, c) => s.RenameScriptAsync(c), ManageSieveStates.Authenticated),
        ["CHECKSCRIPT"] = new(static (s, c) => s.CheckScriptAsync(c), ManageSieveStates.Authenticated),
        ["UNAUTHENTICATE"] = new(static (s, c) => s.UnauthenticateAsync(c), ManageSieveStates.Authenticated),
    }.ToFrozenDictionary(StringComparer.Ordinal);
}
