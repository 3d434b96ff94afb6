using System.Collections.Frozen;

namespace Appliance.Pop3;

/// <summary>POP3 session states (RFC 1939 §3). UPDATE is entered only inside QUIT, so no command runs in it.</summary>
[Flags]
internal enum Pop3States
{
    None = 0,
    Authorization = 1,
    Transaction = 2,
    Any = Authorization | Transaction,
}

internal delegate ValueTask Pop3Handler(Pop3Session session, string arguments);

internal sealed record Pop3CommandEntry(Pop3Handler Handler, Pop3States States);

/// <summary>
/// The command table as data: keyword → handler and the states it is allowed in. The state
/// check happens once, in <c>Pop3Session.DispatchAsync</c>.
/// </summary>
internal static class Pop3CommandTable
{
    public static readonly FrozenDictionary<string, Pop3CommandEntry> Commands = new Dictionary<string, Pop3CommandEntry>(StringComparer.Ordinal)
    {
        // RFC 2449 §5 CAPA, RFC 1939 §5/§6 NOOP and QUIT
        ["CAPA"] = new(static (s, a) => s.CapaAsync(a), Pop3States.Any),
        ["QUIT"] = new(static (s, a) => s.QuitAsync(a), Pop3States.Any),
        ["NOOP"] = new(static (s, a) => s.NoopAsync(a), Pop3States.Transaction),

        // AUTHORIZATION state: RFC 1939 §7 USER/PASS, RFC 2595 §4 STLS, RFC 5034 AUTH
        ["USER"] = new(static (s, a) => s.UserAsync(a), Pop3States.Authorization),
        ["PASS"] = new(static (s, a) => s.PassAsync(a), Pop3States.Authorization),
        ["STLS"] = new(static (s, a) => s.StlsAsync(a), Pop3States.Authorization),
        ["AUTH"] = new(static (s, a) => s.AuthAsync(a), Pop3States.Authorization),

        // TRANSACTION state: RFC 1939 §5 and §7
        ["STAT"] = new(static (s, a) => s.StatAsync(a), Pop3States.Transaction),
        ["LIST"] = new(static (s, a) => s.ListAsync(a), Pop3States.Transaction),
        ["RETR"] = new(static (s, a) => s.RetrAsync(a), Pop3States.Transaction),
        ["DELE"] = new(static (s, a) => s.DeleAsync(a), Pop3States.Transaction),
        ["RSET"] = new(static (s, a) => s.RsetAsync(a), Pop3States.Transaction),
        ["TOP"] = new(static (s, a) => s.TopAsync(a), Pop3States.Transaction),
        ["UIDL"] = new(static (s, a) => s.UidlAsync(a), Pop3States.Transaction),
    }.ToFrozenDictionary(StringComparer.Ordinal);
}
