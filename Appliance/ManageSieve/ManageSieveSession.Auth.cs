using System.Text;
using Appliance.Directory;
using Appliance.Hosting;
using Appliance.Pop3;
using Appliance.Store;

namespace Appliance.ManageSieve;

/// <summary>Capabilities and the session's life: CAPABILITY, NOOP, LOGOUT, STARTTLS, AUTHENTICATE, UNAUTHENTICATE.</summary>
internal sealed partial class ManageSieveSession
{
    private const string NotServedHere = "Mailbox temporarily unavailable on this server, try again shortly";

    private MailUser? _user;
    private string? _attemptedUser;
    private ForwardedLogin? _forwarded;
    private CancellationTokenRegistration _tenure;
    private volatile bool _moved;

    // RFC 5804 §1.7: one line per capability, then OK.
    private void WriteCapabilities()
    {
        var sb = new StringBuilder();
        sb.Append("\"IMPLEMENTATION\" \"Appliance\"\r\n");
        // PLAIN only where plaintext passwords may go (TLS, or loopback in dev mode): the IMAP and POP3 rule.
        sb.Append(PlaintextAllowed ? "\"SASL\" \"PLAIN\"\r\n" : "\"SASL\" \"\"\r\n");
        sb.Append("\"SIEVE\" ").Append(ManageSieveParser.Quote(string.Join(' ', _server.Checker.Extensions))).Append("\r\n");
        if (_state == ManageSieveStates.NotAuthenticated && !Tls && _server.Certificate is not null) sb.Append("\"STARTTLS\"\r\n");
        sb.Append("\"MAXREDIRECTS\" \"5\"\r\n");
        if (_user is not null) sb.Append("\"OWNER\" ").Append(ManageSieveParser.Quote(_user.Address)).Append("\r\n");
        sb.Append("\"UNAUTHENTICATE\"\r\n");
        sb.Append("\"VERSION\" \"1.0\"");
        WriteLine(sb.ToString());
    }

    // RFC 5804 §2.4
    internal async ValueTask CapabilityAsync(ManageSieveCommand c)
    {
        RequireArgs(c, 0);
        WriteCapabilities();
        WriteLine("OK \"Capability completed\"");
        await FlushAsync();
    }

    // RFC 5804 §2.13: an optional tag, echoed in a TAG response code.
    internal async ValueTask NoopAsync(ManageSieveCommand c)
    {
        if (c.Args.Count > 1) throw new ManageSieveException("Syntax: NOOP [tag]");
        WriteLine(c.Args.Count == 0 ? "OK \"Done\"" : $"OK (TAG {ManageSieveParser.Quote(StringArg(c, 0, "tag"))}) \"Done\"");
        await FlushAsync();
    }

    // RFC 5804 §2.3
    internal async ValueTask LogoutAsync(ManageSieveCommand c)
    {
        RequireArgs(c, 0);
        WriteLine("OK \"Logout completed\"");
        await FlushAsync();
        _result = "logout";
        _closing = true;
    }

    // RFC 5804 §2.2: after the handshake the capabilities are sent again (now without STARTTLS, maybe with SASL PLAIN).
    internal async ValueTask StartTlsAsync(ManageSieveCommand c)
    {
        RequireArgs(c, 0);
        if (Tls) throw new ManageSieveException("TLS is already active");
        if (_server.Certificate is null) throw new ManageSieveException("TLS is not available", clientFault: false);
        // Anything pipelined after STARTTLS was sent in the clear and must not be acted on after
        // the handshake (command injection, CVE-2011-0411 family): refuse and close.
        if (_conn.HasBufferedInput()) throw new ManageSieveException("Data after STARTTLS", disconnect: true);
        WriteLine("OK \"Begin TLS negotiation now\"");
        await FlushAsync();
        _timeout.CancelAfter(_server.IdleTimeout);
        await _conn.StartTlsAsync(_server.Certificate, Token);
        WriteCapabilities();
        WriteLine("OK \"TLS negotiation successful\"");
        await FlushAsync();
    }

    // RFC 5804 §2.1 with SASL PLAIN (RFC 4616): the initial response as an argument, or after an empty challenge.
    internal async ValueTask AuthenticateAsync(ManageSieveCommand c)
    {
        if (c.Args.Count is < 1 or > 2) throw new ManageSieveException("Syntax: AUTHENTICATE mechanism [initial-response]");
        if (!string.Equals(StringArg(c, 0, "mechanism"), "PLAIN", StringComparison.OrdinalIgnoreCase))
            throw new ManageSieveException("Unsupported authentication mechanism");
        if (!PlaintextAllowed)
            throw new ManageSieveException("Plaintext authentication requires TLS; use STARTTLS first", "ENCRYPT-NEEDED");
        string response;
        if (c.Args.Count == 2)
        {
            response = StringArg(c, 1, "initial response");
        }
        else
        {
            WriteLine("\"\"");
            await FlushAsync();
            var (status, line, error, literal) = await ReadAsync(saslResponse: true);
            switch (status)
            {
                case ReadStatus.EndOfStream: throw new IOException("connection closed during AUTHENTICATE");
                case ReadStatus.Error: throw new ManageSieveException(error);
                case ReadStatus.LiteralTooLarge: throw LiteralTooLarge(literal);
            }
            if (line!.Args.Count != 1 || !line.Args[0].IsString || line.Args[0].Text is not { } text)
                throw new ManageSieveException("Syntax: the SASL response is one string");
            response = text;
        }
        // RFC 5804 §2.1: "*" cancels the exchange, which fails with NO.
        if (response == "*") throw new ManageSieveException("Authentication aborted", clientFault: false);
        if (!Pop3Parser.TryDecodeSaslPlain(response, out var user, out var password)) throw new ManageSieveException("Invalid SASL PLAIN response");
        await LoginAsync(user, password);
    }

    // RFC 5804 §2.14.1: back to the non-authenticated state, the connection kept.
    internal async ValueTask UnauthenticateAsync(ManageSieveCommand c)
    {
        RequireArgs(c, 0);
        EndLogin();
        _state = ManageSieveStates.NotAuthenticated;
        WriteLine("OK \"Unauthenticated\"");
        await FlushAsync();
    }

    private async ValueTask LoginAsync(string user, string password)
    {
        _attemptedUser = user;
        // The directory counts failures by address (the login throttle and the monitoring's figure).
        var auth = await _server.Authenticator.AuthenticateAsync(user, password, _remote, Token);
        if (auth.Outcome == AuthOutcome.Throttled) throw new ManageSieveException("Too many failed logins, try again later", "TRYLATER");
        if (auth.Outcome != AuthOutcome.Success || auth.User is null) throw new ManageSieveException("Authentication failed");
        // In a pair, a mailbox's scripts are served by the node where its partition is active:
        // from the other node the session is forwarded there.
        if (!_server.Store.IsServedHere(auth.User))
        {
            if (_server.Forwarder is { } forwarder && forwarder.ServedByPeer(auth.User))
            {
                await ForwardAsync(forwarder, auth.User);
                return;
            }
            throw new ManageSieveException(NotServedHere, "TRYLATER", clientFault: false);
        }
        BeginAuthenticated(auth.User);
        WriteLine("OK \"Logged in\"");
        await FlushAsync();
    }

    private void BeginAuthenticated(MailUser user)
    {
        _user = user;
        _state = ManageSieveStates.Authenticated;
        // The session ends (BYE TRYLATER, reconnect) when the partition moves to the other node.
        _tenure = _server.Store.Tenure(user).Register(() =>
        {
            _moved = true;
            _ = _timeout.CancelAsync();
        });
    }

    private void EndLogin()
    {
        _tenure.Dispose();
        _tenure = default;
        _user = null;
    }

    /// <summary>
    /// Hands the logged-in session to the node where the mailbox's partition is active and relays
    /// bytes both ways until either side closes; that node answers the login.
    /// </summary>
    private async ValueTask ForwardAsync(ISessionForwarder forwarder, MailUser user)
    {
        ForwardedSession session;
        try
        {
            session = await forwarder.ForwardAsync(new ForwardedLogin("managesieve", user, _remote, Tls, ""), Token);
        }
        catch (UnitUnavailableException ex)
        {
            _server.Logger.Warn($"managesieve session remote={_remote} user={user.Address}: cannot forward: {ex.Message}");
            throw new ManageSieveException(NotServedHere, "TRYLATER", clientFault: false);
        }
        await using (session)
        {
            if (session.Refusal is { } refusal) throw new ManageSieveException(refusal.Text, refusal.Code, clientFault: false);
            var (up, down) = await session.PumpAsync(_conn, _stopping);
            _result = $"forwarded to {session.Node} up={up} down={down}";
            _closing = true;
        }
    }

    private static void RequireArgs(ManageSieveCommand c, int count)
    {
        if (c.Args.Count != count)
            throw new ManageSieveException(count == 0 ? $"{c.Name} takes no arguments" : $"{c.Name} takes {count} argument(s)");
    }

    /// <summary>Argument <paramref name="index"/> as a string (quoted or literal) of UTF-8 text.</summary>
    private static string StringArg(ManageSieveCommand c, int index, string what)
    {
        var arg = c.Args[index];
        if (!arg.IsString) throw new ManageSieveException($"Syntax: the {what} must be a string");
        return arg.Text ?? throw new ManageSieveException($"The {what} is not UTF-8");
    }
}
