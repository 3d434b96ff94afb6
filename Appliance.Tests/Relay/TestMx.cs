using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Appliance.Tests.Relay;

// Implementation notes
// - A scriptable receiving MTA for delivery tests, on raw sockets so that every reply can be chosen
//   by the test (GreetingReply, OnMailFrom, OnRcpt, DataReply) or withheld (StallGreeting,
//   DropAfterData). A scripted reply may span lines: "550 5.1.1 a\n550 5.1.1 b" is sent as a
//   multi-line reply. Any 421 reply closes the connection after it is sent (RFC 5321 §3.8).
// - Commands are read one line at a time from a buffer and answered in order, which is all that
//   PIPELINING (RFC 2920) asks of a server. After STARTTLS the buffer is emptied, so commands a
//   client pipelined in plaintext are not executed inside TLS (RFC 3207 §4.2).
// - A message is recorded (Received, WaitAsync) only when its reply to the final dot is 2xx, and
//   before that reply is written: a client that has seen 250 finds it recorded.
// - Data is the message as sent, dot-unstuffed (RFC 5321 §4.5.2), without the terminating
//   ".\r\n": the message's own last CRLF is kept. Only ".\r\n" after a CRLF ends DATA.
// - Parameters are recorded raw (xtext not decoded), keyed case-insensitively. MAIL accepts SIZE,
//   BODY, RET, ENVID, SMTPUTF8, AUTH and RCPT accepts NOTIFY, ORCPT, after EHLO only; anything else
//   is 555 5.5.4 (RFC 5321 §4.1.1.11), so a client sending what was not advertised is noticed.
// - Lines are bounded by the 64 KiB read buffer; a longer line drops the connection.

/// <summary>A message a <see cref="TestMx"/> accepted.</summary>
public sealed record ReceivedMail(
    string From,
    IReadOnlyList<string> To,
    byte[] Data,
    bool Secure,
    string? AuthenticatedUser,
    string Helo,
    IReadOnlyDictionary<string, string> MailParameters,
    IReadOnlyDictionary<string, IReadOnlyDictionary<string, string>> RcptParameters);

/// <summary>A scriptable SMTP server (a remote MX or a smart host) for tests.</summary>
public sealed class TestMx : IAsyncDisposable
{
    private const int BufferSize = 64 * 1024;
    private static readonly HashSet<string> MailParameterNames = new(StringComparer.OrdinalIgnoreCase) { "SIZE", "BODY", "RET", "ENVID", "SMTPUTF8", "AUTH" };
    private static readonly HashSet<string> RcptParameterNames = new(StringComparer.OrdinalIgnoreCase) { "NOTIFY", "ORCPT" };

    private readonly TcpListener _listener;
    private readonly X509Certificate2? _certificate;
    private readonly string? _requireUser;
    private readonly string? _requirePassword;
    private readonly CancellationTokenSource _stop = new();
    private readonly object _gate = new();
    private readonly List<ReceivedMail> _received = [];
    private readonly List<string> _commands = [];
    private readonly List<(Socket Socket, Task Task)> _sessions = [];
    private readonly Task _acceptLoop;
    private TaskCompletionSource _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _connections;
    private int _queueIds;

    private TestMx(TcpListener listener, X509Certificate2? certificate, string? requireUser, string? requirePassword)
    {
        _listener = listener;
        _certificate = certificate;
        _requireUser = requireUser;
        _requirePassword = requirePassword;
        Endpoint = (IPEndPoint)listener.LocalEndpoint;
        _acceptLoop = Task.Run(AcceptAsync);
    }

    /// <summary>Listens on <paramref name="address"/> (any 127/8 address works on Linux loopback).</summary>
    public static Task<TestMx> StartAsync(IPAddress address, int port = 0, X509Certificate2? certificate = null,
        string? requireUser = null, string? requirePassword = null)
    {
        var listener = new TcpListener(address, port);
        listener.Start();
        return Task.FromResult(new TestMx(listener, certificate, requireUser, requirePassword));
    }

    /// <summary>A port free on <paramref name="address"/> now, with nothing listening: an MX that is down until started there.</summary>
    public static async Task<int> FreePortAsync(IPAddress address)
    {
        await using var probe = await StartAsync(address);
        return probe.Endpoint.Port;
    }

    /// <summary>One MX per address, all on one port (as several MX hosts of a domain all listen on 25).</summary>
    public static async Task<TestMx[]> StartSamePortAsync(IReadOnlyList<IPAddress> addresses, X509Certificate2? certificate = null)
    {
        for (var attempt = 0; ; attempt++)
        {
            var started = new List<TestMx>();
            try
            {
                foreach (var address in addresses)
                    started.Add(await StartAsync(address, started.Count == 0 ? 0 : started[0].Endpoint.Port, certificate));
                return [.. started];
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse && attempt < 50)
            {
                foreach (var mx in started) await mx.DisposeAsync();
            }
        }
    }

    /// <summary>A self-signed RSA 2048 certificate for <paramref name="name"/>, usable by an SslStream server on Linux.</summary>
    public static X509Certificate2 TestCertificate(string name)
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest($"CN={name}", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(name);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        // Re-import through PFX: on Linux an ephemeral key from CreateSelfSigned is not usable by SslStream.
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pfx), null);
    }

    public IPEndPoint Endpoint { get; }

    /// <summary>The name in the banner and the EHLO reply.</summary>
    public string Name { get; set; } = "mx.test";

    /// <summary>Advertised in EHLO SIZE; MAIL with a larger SIZE, or a larger message, gets 552 5.3.4.</summary>
    public long MaxMessageSize { get; set; } = 50 * 1024 * 1024;

    public IReadOnlyList<ReceivedMail> Received
    {
        get { lock (_gate) return [.. _received]; }
    }

    /// <summary>Every command line received, in order, over all connections (not message data or AUTH continuations).</summary>
    public IReadOnlyList<string> Commands
    {
        get { lock (_gate) return [.. _commands]; }
    }

    /// <summary>Accepted connections so far.</summary>
    public int Connections => Volatile.Read(ref _connections);

    // ---- scripting; null or false means normal behaviour ----

    /// <summary>Replaces the 220 greeting, e.g. "421 4.3.2 go away" (then closes) or "554 5.7.1 no" (then 503 to all but QUIT).</summary>
    public string? GreetingReply { get; set; }

    /// <summary>Accept connections but never greet.</summary>
    public bool StallGreeting { get; set; }

    /// <summary>Reply to MAIL FROM for the given reverse-path ("" for &lt;&gt;); null for 250.</summary>
    public Func<string, string?>? OnMailFrom { get; set; }

    /// <summary>Reply to RCPT TO for the given address; null for 250. Recipients not given 2xx are not in To.</summary>
    public Func<string, string?>? OnRcpt { get; set; }

    /// <summary>Reply to the final dot; null for 250. The message is recorded only if it is 2xx.</summary>
    public string? DataReply { get; set; }

    /// <summary>Read the whole message, then close the connection without replying (nothing recorded).</summary>
    public bool DropAfterData { get; set; }

    /// <summary>The first recorded message (already received or still to come) that matches.</summary>
    public async Task<ReceivedMail> WaitAsync(Func<ReceivedMail, bool>? match = null, TimeSpan? timeout = null)
    {
        var limit = timeout ?? TimeSpan.FromSeconds(30);
        using var deadline = new CancellationTokenSource(limit);
        while (true)
        {
            List<ReceivedMail> received;
            Task changed;
            lock (_gate)
            {
                received = [.. _received];
                changed = _changed.Task;
            }
            var found = received.FirstOrDefault(m => match?.Invoke(m) ?? true);
            if (found is not null) return found;
            try
            {
                await changed.WaitAsync(deadline.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException($"{Name} at {Endpoint}: no matching message within {limit} ({received.Count} received, {Connections} connections)");
            }
        }
    }

    public async ValueTask DisposeAsync()
    {
        List<(Socket Socket, Task Task)> sessions;
        lock (_gate)
        {
            _stop.Cancel();
            sessions = [.. _sessions];
        }
        _listener.Stop();
        foreach (var (socket, _) in sessions) socket.Dispose();
        await Task.WhenAll([_acceptLoop, .. sessions.Select(s => s.Task)]);
        _stop.Dispose();
    }

    private Task AcceptAsync() => TestListener.AcceptAsync(_listener, _stop, _gate, socket =>
    {
        Interlocked.Increment(ref _connections);
        _sessions.Add((socket, Task.Run(() => ServeAsync(socket))));
    });

    private async Task ServeAsync(Socket socket)
    {
        var session = new Session(this, new NetworkStream(socket, ownsSocket: true));
        try
        {
            await session.RunAsync(_stop.Token);
        }
        catch (Exception e) when (e is IOException or SocketException or ObjectDisposedException
            or OperationCanceledException or System.Security.Authentication.AuthenticationException or InvalidDataException)
        {
        }
        finally
        {
            await session.Stream.DisposeAsync();
        }
    }

    private void Record(ReceivedMail mail)
    {
        TaskCompletionSource changed;
        lock (_gate)
        {
            _received.Add(mail);
            changed = _changed;
            _changed = new(TaskCreationOptions.RunContinuationsAsynchronously);
        }
        changed.SetResult();
    }

    private void Log(string line)
    {
        lock (_gate) _commands.Add(line);
    }

    /// <summary>One SMTP connection (RFC 5321 §4.1).</summary>
    private sealed class Session(TestMx mx, Stream stream)
    {
        private readonly byte[] _buffer = new byte[BufferSize];
        private int _start;
        private int _end;
        private CancellationToken _ct;

        private bool _secure;
        private bool _extended;
        private string? _helo;
        private string? _user;
        private string? _from;
        private Dictionary<string, string> _mailParameters = new(StringComparer.OrdinalIgnoreCase);
        private readonly List<string> _to = [];
        private readonly Dictionary<string, IReadOnlyDictionary<string, string>> _rcptParameters = new(StringComparer.OrdinalIgnoreCase);

        public Stream Stream { get; private set; } = stream;

        public async Task RunAsync(CancellationToken ct)
        {
            _ct = ct;
            if (mx.StallGreeting)
            {
                while (await ReadLineAsync() is not null) { } // until the client gives up
                return;
            }
            var greeting = mx.GreetingReply ?? $"220 {mx.Name} ESMTP TestMx";
            if (!await ReplyAsync(greeting)) return;
            var refusing = !greeting.StartsWith('2'); // RFC 5321 §3.1: after 554, wait for QUIT

            while (await ReadLineAsync() is { } raw)
            {
                var line = Encoding.UTF8.GetString(raw).TrimEnd('\r', '\n');
                mx.Log(line);
                var space = line.IndexOf(' ');
                var verb = (space < 0 ? line : line[..space]).ToUpperInvariant();
                var arg = space < 0 ? "" : line[(space + 1)..].Trim();
                if (refusing && verb != "QUIT")
                {
                    if (!await ReplyAsync("503 5.5.1 No service here, send QUIT")) return;
                    continue;
                }
                var keepOpen = verb switch
                {
                    "EHLO" => await EhloAsync(arg),
                    "HELO" => await HeloAsync(arg),
                    "STARTTLS" => await StartTlsAsync(arg),
                    "AUTH" => await AuthAsync(arg),
                    "MAIL" => await MailAsync(arg),
                    "RCPT" => await RcptAsync(arg),
                    "DATA" => await DataAsync(arg),
                    "RSET" => await ResetAsync(),
                    "NOOP" => await ReplyAsync("250 2.0.0 OK"),
                    "VRFY" => await ReplyAsync("252 2.5.0 Cannot VRFY user"),
                    "QUIT" => await QuitAsync(),
                    _ => await ReplyAsync("500 5.5.2 Command not recognized"),
                };
                if (!keepOpen) return;
            }
        }

        // RFC 5321 §4.1.1.1 EHLO: lists the service extensions (RFC 1869)
        private async Task<bool> EhloAsync(string arg)
        {
            if (arg.Length == 0) return await ReplyAsync("501 5.5.4 EHLO needs a domain");
            _helo = arg;
            _extended = true;
            ClearTransaction();
            var lines = new List<string>
            {
                $"250 {mx.Name} greets {arg}", "250 PIPELINING", "250 8BITMIME", $"250 SIZE {mx.MaxMessageSize}",
                "250 ENHANCEDSTATUSCODES", "250 DSN", "250 SMTPUTF8",
            };
            if (mx._certificate is not null && !_secure) lines.Add("250 STARTTLS");
            if (mx._requireUser is not null && (mx._certificate is null || _secure)) lines.Add("250 AUTH PLAIN LOGIN");
            return await ReplyAsync(string.Join('\n', lines));
        }

        // RFC 5321 §4.1.1.1 HELO: no extensions
        private async Task<bool> HeloAsync(string arg)
        {
            if (arg.Length == 0) return await ReplyAsync("501 5.5.4 HELO needs a domain");
            _helo = arg;
            _extended = false;
            ClearTransaction();
            return await ReplyAsync($"250 {mx.Name}");
        }

        // RFC 3207 STARTTLS
        private async Task<bool> StartTlsAsync(string arg)
        {
            if (mx._certificate is null) return await ReplyAsync("502 5.5.1 STARTTLS not offered");
            if (_secure) return await ReplyAsync("503 5.5.1 TLS already active");
            if (arg.Length > 0) return await ReplyAsync("501 5.5.4 STARTTLS takes no argument");
            if (!await ReplyAsync("220 2.0.0 Ready to start TLS")) return false;
            _start = _end = 0; // §4.2: forget anything pipelined in plaintext
            var tls = new SslStream(Stream, leaveInnerStreamOpen: false);
            Stream = tls;
            await tls.AuthenticateAsServerAsync(new SslServerAuthenticationOptions { ServerCertificate = mx._certificate }, _ct);
            _secure = true;
            _helo = null; // §4.2: the client starts over with EHLO
            _user = null;
            ClearTransaction();
            return true;
        }

        // RFC 4954 AUTH with PLAIN (RFC 4616) and LOGIN
        private async Task<bool> AuthAsync(string arg)
        {
            if (mx._requireUser is null) return await ReplyAsync("502 5.5.1 AUTH not offered");
            if (_helo is null || !_extended) return await ReplyAsync("503 5.5.1 Send EHLO first");
            if (_user is not null) return await ReplyAsync("503 5.5.1 Already authenticated");
            if (_from is not null) return await ReplyAsync("503 5.5.1 AUTH not allowed during a mail transaction");
            if (mx._certificate is not null && !_secure) return await ReplyAsync("538 5.7.11 Encryption required for requested authentication mechanism");
            var parts = arg.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 0) return await ReplyAsync("501 5.5.4 AUTH needs a mechanism");
            var initial = parts.Length > 1 ? parts[1] : null;
            string? user, password;
            switch (parts[0].ToUpperInvariant())
            {
                case "PLAIN":
                    var response = initial ?? await ChallengeAsync("334 ");
                    if (response is null) return false;
                    if (response == "*") return await ReplyAsync("501 5.7.0 Authentication cancelled");
                    var fields = Decode(response)?.Split('\0');
                    if (fields is not { Length: 3 }) return await ReplyAsync("501 5.5.2 Malformed PLAIN response");
                    (user, password) = (fields[1], fields[2]);
                    break;
                case "LOGIN":
                    var u = initial ?? await ChallengeAsync("334 VXNlcm5hbWU6");
                    if (u is null) return false;
                    if (u == "*") return await ReplyAsync("501 5.7.0 Authentication cancelled");
                    var p = await ChallengeAsync("334 UGFzc3dvcmQ6");
                    if (p is null) return false;
                    if (p == "*") return await ReplyAsync("501 5.7.0 Authentication cancelled");
                    (user, password) = (Decode(u), Decode(p));
                    if (user is null || password is null) return await ReplyAsync("501 5.5.2 Malformed LOGIN response");
                    break;
                default:
                    return await ReplyAsync("504 5.5.4 Unrecognized authentication type");
            }
            if (user != mx._requireUser || password != mx._requirePassword)
                return await ReplyAsync("535 5.7.8 Authentication credentials invalid");
            _user = user;
            return await ReplyAsync("235 2.7.0 Authentication successful");
        }

        // RFC 5321 §4.1.1.2 MAIL
        private async Task<bool> MailAsync(string arg)
        {
            if (_helo is null) return await ReplyAsync("503 5.5.1 Send EHLO first");
            if (mx._requireUser is not null && _user is null) return await ReplyAsync("530 5.7.0 Authentication required");
            if (_from is not null) return await ReplyAsync("503 5.5.1 Nested MAIL command");
            if (!TryParsePath(arg, "FROM:", out var address, out var parameters)) return await ReplyAsync("501 5.5.4 Syntax: MAIL FROM:<address>");
            if (parameters.Keys.FirstOrDefault(k => !_extended || !MailParameterNames.Contains(k)) is { } unknown)
                return await ReplyAsync($"555 5.5.4 {unknown} not recognized");
            if (parameters.TryGetValue("SIZE", out var size) && long.TryParse(size, out var declared) && declared > mx.MaxMessageSize)
                return await ReplyAsync("552 5.3.4 Message size exceeds fixed maximum message size");
            var reply = mx.OnMailFrom?.Invoke(address) ?? "250 2.1.0 Sender OK";
            if (reply.StartsWith('2'))
            {
                _from = address;
                _mailParameters = parameters;
            }
            return await ReplyAsync(reply);
        }

        // RFC 5321 §4.1.1.3 RCPT
        private async Task<bool> RcptAsync(string arg)
        {
            if (_from is null) return await ReplyAsync("503 5.5.1 Need MAIL before RCPT");
            if (!TryParsePath(arg, "TO:", out var address, out var parameters) || address.Length == 0)
                return await ReplyAsync("501 5.5.4 Syntax: RCPT TO:<address>");
            if (parameters.Keys.FirstOrDefault(k => !_extended || !RcptParameterNames.Contains(k)) is { } unknown)
                return await ReplyAsync($"555 5.5.4 {unknown} not recognized");
            var reply = mx.OnRcpt?.Invoke(address) ?? "250 2.1.5 Recipient OK";
            if (reply.StartsWith('2'))
            {
                _to.Add(address);
                _rcptParameters[address] = parameters;
            }
            return await ReplyAsync(reply);
        }

        // RFC 5321 §4.1.1.4 DATA, §4.5.2 transparency
        private async Task<bool> DataAsync(string arg)
        {
            if (arg.Length > 0) return await ReplyAsync("501 5.5.4 DATA takes no argument");
            if (_from is null) return await ReplyAsync("503 5.5.1 Need MAIL before DATA");
            if (_to.Count == 0) return await ReplyAsync("554 5.5.1 No valid recipients");
            if (!await ReplyAsync("354 Start mail input; end with <CRLF>.<CRLF>")) return false;
            using var data = new MemoryStream();
            var afterCrlf = true;
            while (true)
            {
                var line = await ReadLineAsync();
                if (line is null) return false;
                if (afterCrlf && line.AsSpan().SequenceEqual(".\r\n"u8)) break;
                var unstuffed = line.Length > 1 && line[0] == (byte)'.' ? line.AsSpan(1) : line.AsSpan();
                if (data.Length <= mx.MaxMessageSize) data.Write(unstuffed);
                afterCrlf = line.AsSpan().EndsWith("\r\n"u8);
            }
            if (mx.DropAfterData) return false;
            var reply = data.Length > mx.MaxMessageSize
                ? "552 5.3.4 Message size exceeds fixed maximum message size"
                : mx.DataReply ?? $"250 2.0.0 Ok: queued as Q{Interlocked.Increment(ref mx._queueIds)}";
            if (reply.StartsWith('2'))
                mx.Record(new ReceivedMail(_from, [.. _to], data.ToArray(), _secure, _user, _helo!, _mailParameters, new Dictionary<string, IReadOnlyDictionary<string, string>>(_rcptParameters, StringComparer.OrdinalIgnoreCase)));
            ClearTransaction();
            return await ReplyAsync(reply);
        }

        // RFC 5321 §4.1.1.10 QUIT: reply, then close
        private async Task<bool> QuitAsync()
        {
            await ReplyAsync("221 2.0.0 Bye");
            return false;
        }

        // RFC 5321 §4.1.1.5 RSET
        private async Task<bool> ResetAsync()
        {
            ClearTransaction();
            return await ReplyAsync("250 2.0.0 OK");
        }

        private void ClearTransaction()
        {
            _from = null;
            _mailParameters = new(StringComparer.OrdinalIgnoreCase);
            _to.Clear();
            _rcptParameters.Clear();
        }

        /// <summary>"FROM:&lt;a@b&gt; K=V K2" → a@b and {K: V, K2: ""}; a bare address without brackets is tolerated.</summary>
        private static bool TryParsePath(string arg, string prefix, out string address, out Dictionary<string, string> parameters)
        {
            address = "";
            parameters = new(StringComparer.OrdinalIgnoreCase);
            if (!arg.StartsWith(prefix, StringComparison.OrdinalIgnoreCase)) return false;
            var rest = arg[prefix.Length..].TrimStart();
            string tail;
            if (rest.StartsWith('<'))
            {
                var close = rest.IndexOf('>');
                if (close < 0) return false;
                address = rest[1..close];
                tail = rest[(close + 1)..];
            }
            else
            {
                var space = rest.IndexOf(' ');
                address = space < 0 ? rest : rest[..space];
                tail = space < 0 ? "" : rest[space..];
                if (address.Length == 0) return false;
            }
            foreach (var p in tail.Split(' ', StringSplitOptions.RemoveEmptyEntries))
            {
                var eq = p.IndexOf('=');
                parameters[eq < 0 ? p : p[..eq]] = eq < 0 ? "" : p[(eq + 1)..];
            }
            return true;
        }

        private static string? Decode(string base64)
        {
            if (base64 == "=") return ""; // RFC 4954 §4: an empty initial response
            try
            {
                return Encoding.UTF8.GetString(Convert.FromBase64String(base64));
            }
            catch (FormatException)
            {
                return null;
            }
        }

        /// <summary>Sends a 334 challenge and returns the client's line (null when it hung up).</summary>
        private async Task<string?> ChallengeAsync(string challenge)
        {
            if (!await ReplyAsync(challenge)) return null;
            var line = await ReadLineAsync();
            return line is null ? null : Encoding.UTF8.GetString(line).TrimEnd('\r', '\n').Trim();
        }

        /// <summary>Writes a (possibly multi-line) reply; false when the connection is to be closed (421).</summary>
        private async Task<bool> ReplyAsync(string reply)
        {
            var lines = reply.Split('\n').Select(l => l.TrimEnd('\r')).ToArray();
            var text = new StringBuilder();
            for (var i = 0; i < lines.Length; i++)
            {
                var l = lines[i];
                if (i < lines.Length - 1) l = l.Length > 3 ? l[..3] + "-" + l[4..] : l[..Math.Min(3, l.Length)] + "-";
                text.Append(l).Append("\r\n");
            }
            await Stream.WriteAsync(Encoding.UTF8.GetBytes(text.ToString()), _ct);
            await Stream.FlushAsync(_ct);
            return !reply.StartsWith("421", StringComparison.Ordinal);
        }

        /// <summary>The next line including its LF (and CR), or null at end of stream.</summary>
        private async Task<byte[]?> ReadLineAsync()
        {
            while (true)
            {
                var lf = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
                if (lf >= 0)
                {
                    var line = _buffer[_start..(lf + 1)];
                    _start = lf + 1;
                    return line;
                }
                if (_start > 0)
                {
                    Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                    _end -= _start;
                    _start = 0;
                }
                if (_end == _buffer.Length) throw new InvalidDataException("line longer than 64 KiB");
                var n = await Stream.ReadAsync(_buffer.AsMemory(_end), _ct);
                if (n == 0) return null;
                _end += n;
            }
        }
    }
}
