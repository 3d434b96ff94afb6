using System.Buffers;
using System.Globalization;
using System.IO.Pipelines;
using System.Text;
using Appliance.Directory;
using Appliance.Hosting;
using Appliance.Pop3;
using Appliance.Store;

namespace Appliance.Imap;

/// <summary>Any-state and not-authenticated commands: CAPABILITY, NOOP, LOGOUT, ID, STARTTLS,
/// AUTHENTICATE, LOGIN; and the session-wide switches ENABLE and COMPRESS.</summary>
internal sealed partial class ImapSession
{
    private const int MaxSaslLine = 8 * 1024;

    private MailUser? _user;
    private string? _attemptedUser;
    private IDisposable? _feed;
    private bool _condStore;
    private bool _qresync;
    private bool _utf8;
    private bool _rev2;
    private ForwardedLogin? _forwarded;
    private CancellationTokenRegistration _tenure;
    private volatile bool _moved;

    private string Capabilities()
    {
        var sb = new StringBuilder("CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+ SASL-IR ID ENABLE IDLE");
        if (_state == ImapStates.NotAuthenticated)
        {
            if (!_conn.IsTls && _server.Certificate is not null) sb.Append(" STARTTLS");
            sb.Append(PlaintextAllowed ? " AUTH=PLAIN" : " LOGINDISABLED");
            return sb.ToString();
        }
        sb.Append(" NAMESPACE UIDPLUS MOVE UNSELECT CHILDREN SPECIAL-USE CREATE-SPECIAL-USE LIST-EXTENDED LIST-STATUS");
        sb.Append(" QUOTA QUOTA=RES-STORAGE CONDSTORE QRESYNC ESEARCH SORT SORT=DISPLAY THREAD=REFERENCES THREAD=ORDEREDSUBJECT");
        sb.Append(" APPENDLIMIT=").Append(_server.MaxAppendBytes.ToString(CultureInfo.InvariantCulture));
        sb.Append(" BINARY MULTIAPPEND STATUS=SIZE UTF8=ACCEPT");
        if (!_compressed) sb.Append(" COMPRESS=DEFLATE");
        return sb.ToString();
    }

    // RFC 9051 §6.1.1
    internal async ValueTask CapabilityAsync(ImapCommand c)
    {
        RequireArgs(c, 0);
        Untagged(Capabilities());
        await CompleteAsync(c, "CAPABILITY completed");
    }

    // RFC 9051 §6.1.2 (and CHECK, which rev2 removed: a NOOP here, every change is durable at once)
    internal ValueTask NoopAsync(ImapCommand c)
    {
        RequireArgs(c, 0);
        return CompleteAsync(c, $"{c.Name} completed");
    }

    // RFC 9051 §6.1.3
    internal async ValueTask LogoutAsync(ImapCommand c)
    {
        RequireArgs(c, 0);
        _w.Raw("* BYE Logging out\r\n"u8).Text(c.Tag).Raw(" OK LOGOUT completed\r\n"u8);
        await FlushAsync();
        _closing = true;
    }

    // RFC 2971 ID: the client's list is logged; ours names the implementation only.
    internal async ValueTask IdAsync(ImapCommand c)
    {
        RequireArgs(c, 1);
        var arg = c.Args[0];
        if (!arg.IsNil && !arg.IsList) throw ImapException.Bad("ID takes a list or NIL");
        if (arg.IsList)
        {
            if (arg.Items.Count % 2 != 0 || arg.Items.Count > 60 || arg.Items.Any(i => !i.IsString)) throw ImapException.Bad("invalid ID list");
            var pairs = new StringBuilder();
            for (int i = 0; i < arg.Items.Count; i += 2)
                pairs.Append(' ').Append(arg.Items[i].Text).Append('=').Append(arg.Items[i + 1].IsNil ? "NIL" : arg.Items[i + 1].Text);
            _server.Logger.Debug($"imap client id remote={_remote}{pairs}");
        }
        _w.Raw("* ID (\"name\" \"Appliance\" \"vendor\" \"Appliance\")\r\n"u8);
        await CompleteAsync(c, "ID completed");
    }

    // RFC 9051 §6.2.1
    internal async ValueTask StartTlsCommandAsync(ImapCommand c)
    {
        RequireArgs(c, 0);
        if (_conn.IsTls) throw ImapException.Bad("TLS is already active");
        if (_server.Certificate is null) throw ImapException.No("TLS is not available");
        // Anything pipelined after STARTTLS was sent in the clear and must not be acted on after
        // the handshake (command injection, CVE-2011-0411 family): refuse and close.
        if (_conn.HasBufferedInput())
        {
            _w.Text(c.Tag).Raw(" BAD Data after STARTTLS\r\n* BYE Closing connection\r\n"u8);
            await FlushAsync();
            _result = "data after STARTTLS";
            _closing = true;
            return;
        }
        _w.Text(c.Tag).Raw(" OK Begin TLS negotiation now\r\n"u8);
        await FlushAsync();
        await StartTlsAsync();
    }

    // RFC 9051 §6.2.2 with RFC 4959 SASL-IR; PLAIN (RFC 4616) is the one mechanism.
    internal async ValueTask AuthenticateAsync(ImapCommand c)
    {
        if (c.Args.Count is < 1 or > 2 || !c.Args[0].IsAtom) throw ImapException.Bad("Syntax: AUTHENTICATE mechanism [initial-response]");
        if (!c.Args[0].Is("PLAIN")) throw ImapException.No("Unsupported authentication mechanism", "CANNOT");
        RequirePlaintextAllowed();
        string response;
        if (c.Args.Count == 2)
        {
            response = c.Args[1].Text == "=" ? "" : c.Args[1].Text;
        }
        else
        {
            _w.Raw("+ \r\n"u8);
            await FlushAsync();
            response = await ReadSaslLineAsync();
        }
        if (response == "*") throw ImapException.Bad("Authentication cancelled");
        if (!Pop3Parser.TryDecodeSaslPlain(response, out var user, out var password)) throw ImapException.Bad("Invalid SASL PLAIN response");
        await LoginAsync(c, user, password);
    }

    // RFC 9051 §6.2.3
    internal async ValueTask LoginCommandAsync(ImapCommand c)
    {
        RequireArgs(c, 2);
        if (!c.Args[0].IsString || !c.Args[1].IsString) throw ImapException.Bad("Syntax: LOGIN user password");
        RequirePlaintextAllowed();
        await LoginAsync(c, c.Args[0].Text, c.Args[1].Text);
    }

    // RFC 5161 ENABLE: CONDSTORE, QRESYNC (RFC 7162), UTF8=ACCEPT (RFC 6855), IMAP4rev2 (RFC 9051).
    internal async ValueTask EnableAsync(ImapCommand c)
    {
        if (c.Args.Count == 0 || c.Args.Any(a => !a.IsAtom)) throw ImapException.Bad("Syntax: ENABLE capability...");
        var enabled = new List<string>();
        foreach (var a in c.Args)
        {
            switch (a.Keyword)
            {
                case "CONDSTORE" when !_condStore:
                    _condStore = true;
                    enabled.Add("CONDSTORE");
                    break;
                case "QRESYNC" when !_qresync:
                    _qresync = _condStore = true;
                    enabled.Add("QRESYNC");
                    break;
                case "UTF8=ACCEPT" when !_utf8:
                    _utf8 = _w.Utf8 = true;
                    enabled.Add("UTF8=ACCEPT");
                    break;
                case "IMAP4REV2" when !_rev2:
                    _rev2 = true;
                    enabled.Add("IMAP4rev2");
                    break;
            }
        }
        Untagged(enabled.Count == 0 ? "ENABLED" : "ENABLED " + string.Join(' ', enabled));
        await CompleteAsync(c, "ENABLE completed");
    }

    // RFC 4978 COMPRESS=DEFLATE
    internal async ValueTask CompressAsync(ImapCommand c)
    {
        RequireArgs(c, 1);
        if (!c.Args[0].Is("DEFLATE")) throw ImapException.Bad("Unknown compression mechanism");
        if (_compressed) throw ImapException.No("Compression is already active", "COMPRESSIONACTIVE");
        _w.Text(c.Tag).Raw(" OK DEFLATE active\r\n"u8);
        await FlushAsync();
        await StartCompressionAsync();
    }

    private void RequirePlaintextAllowed()
    {
        if (!PlaintextAllowed) throw ImapException.No("Plaintext authentication requires TLS; use STARTTLS first", "PRIVACYREQUIRED");
    }

    private static void RequireArgs(ImapCommand c, int count)
    {
        if (c.Args.Count != count) throw ImapException.Bad(count == 0 ? $"{c.Name} takes no arguments" : $"{c.Name} takes {count} argument(s)");
    }

    private async ValueTask LoginAsync(ImapCommand c, string user, string password)
    {
        _attemptedUser = user;
        var auth = await _server.Authenticator.AuthenticateAsync(user, password, _remote, Token);
        if (auth.Outcome == AuthOutcome.Throttled) throw ImapException.No("Too many failed logins, try again later", "UNAVAILABLE");
        if (auth.Outcome != AuthOutcome.Success || auth.User is null) throw ImapException.No("Authentication failed", "AUTHENTICATIONFAILED");
        // In a pair, a mailbox is served by the node where its partition is active: from the
        // other node the session is forwarded there.
        if (!_server.Store.IsServedHere(auth.User))
        {
            if (_server.Forwarder is { } forwarder && forwarder.ServedByPeer(auth.User))
            {
                await ForwardAsync(c, forwarder, auth.User);
                return;
            }
            throw ImapException.No(NotServedHere, "UNAVAILABLE");
        }
        if (!_server.TryAddUserSession(auth.User.Address)) throw ImapException.No(TooManySessions, "LIMIT");
        await BeginAuthenticatedAsync(c.Tag, auth.User);
    }

    private const string NotServedHere = "Mailbox temporarily unavailable on this server, try again shortly";
    private const string TooManySessions = "Too many sessions for this mailbox";

    /// <summary>Enters the authenticated state (the user's session already counted) and answers the login.</summary>
    private async ValueTask BeginAuthenticatedAsync(string tag, MailUser user)
    {
        _user = user;
        _state = ImapStates.Authenticated;
        _feed = _server.Store.Changes.Subscribe(_user.Address, OnFolderChanged);
        // The session ends (BYE, reconnect) when the partition moves to the other node.
        _tenure = _server.Store.Tenure(user).Register(() =>
        {
            _moved = true;
            _ = _timeout.CancelAsync();
        });
        // A mailbox provisioned since its last login gets its folders now (Sent, Drafts, …).
        try { await _server.Store.EnsureMailboxAsync(user); }
        catch (UnitUnavailableException) { /* the partition is moving: the session ends anyway */ }
        _w.Text(tag).Raw(" OK ["u8).Text(Capabilities()).Raw("] Logged in\r\n"u8);
        await FlushAsync();
    }

    /// <summary>
    /// Hands the logged-in session to the node where the mailbox's partition is active and
    /// relays bytes both ways until either side closes; that node answers the login.
    /// </summary>
    private async ValueTask ForwardAsync(ImapCommand c, ISessionForwarder forwarder, MailUser user)
    {
        ForwardedSession session;
        try
        {
            session = await forwarder.ForwardAsync(new ForwardedLogin("imap", user, _remote, _conn.IsTls, c.Tag), Token);
        }
        catch (UnitUnavailableException ex)
        {
            _server.Logger.Warn($"imap session remote={_remote} user={user.Address}: cannot forward: {ex.Message}");
            throw ImapException.No(NotServedHere, "UNAVAILABLE");
        }
        await using (session)
        {
            if (session.Refusal is { } refusal) throw ImapException.No(refusal.Text, refusal.Code);
            var (up, down) = await session.PumpAsync(_conn, _stopping);
            _result = $"forwarded to {session.Node} up={up} down={down}";
            _closing = true;
        }
    }

    private void EndLogin()
    {
        _tenure.Dispose();
        _feed?.Dispose();
        _feed = null;
        if (_user is not null) _server.RemoveUserSession(_user.Address);
    }

    /// <summary>Reads one SASL response line (RFC 9051 §6.2.2).</summary>
    private async ValueTask<string> ReadSaslLineAsync()
    {
        while (true)
        {
            _timeout.CancelAfter(Autologout);
            if (TakeLine(await _conn.Reader.ReadAsync(Token), MaxSaslLine, "Authentication line too long") is { } line) return line;
        }
    }

    /// <summary>
    /// Takes one raw line (SASL response, IDLE's DONE) from what the reader returned, without its
    /// CRLF; null when no whole line is there yet. A longer line than <paramref name="maxBytes"/>
    /// is BAD and the rest of it is discarded; the end of the stream is an IOException.
    /// </summary>
    private string? TakeLine(ReadResult result, int maxBytes, string tooLong)
    {
        var buffer = result.Buffer;
        var lf = buffer.PositionOf((byte)'\n');
        if (lf is null)
        {
            if (buffer.Length > maxBytes)
            {
                _conn.Reader.AdvanceTo(buffer.End);
                _discarding = true;
                throw ImapException.Bad(tooLong);
            }
            _conn.Reader.AdvanceTo(buffer.Start, buffer.End);
            if (result.IsCompleted) throw new IOException("connection closed in the middle of a command");
            return null;
        }
        var line = buffer.Slice(0, lf.Value);
        // Decoded before AdvanceTo: after it the reader may reuse the buffer.
        var text = line.Length > maxBytes ? null : Encoding.ASCII.GetString(line.ToArray()).TrimEnd('\r');
        _conn.Reader.AdvanceTo(buffer.GetPosition(1, lf.Value));
        return text ?? throw ImapException.Bad(tooLong);
    }
}
