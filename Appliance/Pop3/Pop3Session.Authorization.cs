using System.Text;
using Appliance.Directory;
using Appliance.Hosting;
using Appliance.Store;

namespace Appliance.Pop3;

/// <summary>AUTHORIZATION state: CAPA, STLS, USER/PASS, AUTH PLAIN, QUIT.</summary>
internal sealed partial class Pop3Session
{
    private string? _pendingUser;
    private string? _attemptedUser;

    // RFC 2449 §5 CAPA; capabilities depend on state and on whether plaintext login is allowed here.
    internal async ValueTask CapaAsync(string arguments)
    {
        RequireNoArguments(arguments);
        var reply = new StringBuilder();
        reply.Append("+OK Capability list follows\r\n");
        reply.Append("TOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\nPIPELINING\r\n");
        if (_state == Pop3States.Authorization)
        {
            if (PlaintextAllowed)
            {
                reply.Append("USER\r\nSASL PLAIN\r\n");
            }

            if (!_conn.IsTls && _server.Certificate is not null)
            {
                reply.Append("STLS\r\n");
            }
        }

        reply.Append("IMPLEMENTATION Appliance\r\n.");
        WriteLine(reply.ToString());
        await FlushAsync();
    }

    // RFC 2595 §4 STLS
    internal async ValueTask StlsAsync(string arguments)
    {
        RequireNoArguments(arguments);
        if (_conn.IsTls)
        {
            throw new Pop3Exception("Already using TLS");
        }

        if (_server.Certificate is null)
        {
            throw new Pop3Exception("TLS not available", "SYS/PERM", clientFault: false);
        }

        // Anything the client sent after STLS was sent in the clear and must not be acted on
        // after the handshake (command injection, CVE-2011-0411 family): refuse and close.
        if (_conn.HasBufferedInput())
        {
            throw new Pop3Exception("Data after STLS", disconnect: true);
        }

        WriteLine("+OK Begin TLS negotiation");
        await FlushAsync();
        _pendingUser = null;
        await StartTlsAsync();
    }

    // RFC 1939 §7 USER
    internal async ValueTask UserAsync(string arguments)
    {
        RequirePlaintextAllowed();
        if (arguments.Length == 0 || arguments.Contains(' ', StringComparison.Ordinal))
        {
            throw new Pop3Exception("USER needs one argument");
        }

        _pendingUser = arguments;
        WriteLine("+OK Send your password");
        await FlushAsync();
    }

    // RFC 1939 §7 PASS (the password may contain spaces: the whole rest of the line)
    internal async ValueTask PassAsync(string arguments)
    {
        RequirePlaintextAllowed();
        if (_pendingUser is null)
        {
            throw new Pop3Exception("USER first");
        }

        string user = _pendingUser;
        _pendingUser = null;
        await LoginAsync(user, arguments);
    }

    // RFC 5034 AUTH; only PLAIN (RFC 4616) is offered. "AUTH" alone lists mechanisms (RFC 1734 clients).
    internal async ValueTask AuthAsync(string arguments)
    {
        var parts = Pop3Parser.SplitArguments(arguments);
        if (parts.Length == 0)
        {
            WriteLine(PlaintextAllowed ? "+OK\r\nPLAIN\r\n." : "+OK\r\n.");
            await FlushAsync();
            return;
        }

        if (parts.Length > 2)
        {
            throw new Pop3Exception("Syntax: AUTH mechanism [initial-response]");
        }

        if (!string.Equals(parts[0], "PLAIN", StringComparison.OrdinalIgnoreCase))
        {
            throw new Pop3Exception("Unsupported authentication mechanism");
        }

        RequirePlaintextAllowed();
        string response;
        if (parts.Length == 2)
        {
            response = parts[1] == "=" ? "" : parts[1];
        }
        else
        {
            WriteLine("+ ");
            await FlushAsync();
            var (status, line) = await ReadLineAsync(Pop3Parser.MaxSaslLineLength);
            if (status == ReadStatus.EndOfStream)
            {
                throw new IOException("connection closed during AUTH");
            }

            if (status == ReadStatus.TooLong)
            {
                throw new Pop3Exception("line too long");
            }

            response = Pop3Parser.DecodeLine(line) ?? "";
        }

        if (response == "*")
        {
            throw new Pop3Exception("Authentication cancelled", clientFault: false);
        }

        if (!Pop3Parser.TryDecodeSaslPlain(response, out string user, out string password))
        {
            throw new Pop3Exception("Invalid SASL PLAIN response");
        }

        await LoginAsync(user, password);
    }

    private void RequirePlaintextAllowed()
    {
        if (!PlaintextAllowed)
        {
            throw new Pop3Exception("Plaintext authentication requires TLS; use STLS first", "AUTH");
        }
    }

    private static void RequireNoArguments(string arguments)
    {
        if (arguments.Length != 0)
        {
            throw new Pop3Exception("No arguments expected");
        }
    }

    private async ValueTask LoginAsync(string user, string password)
    {
        _attemptedUser = user;
        var auth = await _server.Authenticator.AuthenticateAsync(user, password, _remote, Token);
        switch (auth.Outcome)
        {
            case AuthOutcome.Throttled:
                throw new Pop3Exception("Too many failed logins, try again later", "AUTH");
            case AuthOutcome.Success when auth.User is not null:
                break;
            default:
                throw new Pop3Exception("Authentication failed", "AUTH");
        }
        // In a pair, a mailbox is served by the node where its partition is active: from the
        // other node the session is forwarded there (RFC 3206 SYS/TEMP when it cannot be).
        if (!_server.Store.IsServedHere(auth.User))
        {
            if (_server.Forwarder is { } forwarder && forwarder.ServedByPeer(auth.User))
            {
                await ForwardAsync(forwarder, auth.User);
                return;
            }
            throw new Pop3Exception(NotServedHere, "SYS/TEMP");
        }

        await OpenMaildropAsync(auth.User);
    }

    private const string NotServedHere = "Mailbox temporarily unavailable on this server, try again shortly";

    /// <summary>
    /// Hands the logged-in session to the node where the mailbox's partition is active and
    /// relays bytes both ways until either side closes; that node opens the maildrop and answers.
    /// </summary>
    private async ValueTask ForwardAsync(ISessionForwarder forwarder, MailUser user)
    {
        ForwardedSession session;
        try
        {
            session = await forwarder.ForwardAsync(new ForwardedLogin("pop3", user, _remote, _conn.IsTls, ""), Token);
        }
        catch (UnitUnavailableException ex)
        {
            _server.Logger.Warn($"pop3 session remote={_remote} user={user.Address}: cannot forward: {ex.Message}");
            throw new Pop3Exception(NotServedHere, "SYS/TEMP", clientFault: false);
        }
        await using (session)
        {
            if (session.Refusal is { } refusal) throw new Pop3Exception(refusal.Text, refusal.Code, clientFault: false);
            var (up, down) = await session.PumpAsync(_conn, _stopping);
            _result = $"forwarded to {session.Node} up={up} down={down}";
            _closing = true;
        }
    }
}
