using System.Collections.Concurrent;
using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;
using Appliance.Hosting;
using Appliance.Store;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace Appliance.Relay;

/// <summary>What became of one recipient in one attempt.</summary>
/// <param name="State">Sent, Failed (permanent, bounce), or Queued (temporary, try again).</param>
/// <param name="Status">The enhanced status code (RFC 3463) of the answer.</param>
public sealed record RecipientOutcome(string Address, RecipientState State, string Status, string Reply, string? RemoteMta);

/// <summary>
/// One delivery attempt of a message to a domain's MX hosts (or the smart host) with MailKit's
/// SmtpClient (RFC 5321 §5): hosts in MX order and each of their addresses until one takes the
/// transaction. A host that cannot be reached, times out or refuses the session (greeting, EHLO)
/// sends us to the next; once a transaction runs its answers are final for this attempt: 5xx
/// fails the recipient (bounce), 4xx keeps it queued. STARTTLS is used whenever offered
/// (opportunistic: the certificate is not checked, as no MX can be held to one without DANE or
/// MTA-STS, see docs/rfc.md); with the smart host and its credentials TLS is required and the
/// certificate checked unless <c>Relay:SmartHostVerifyCertificate</c> is false.
/// </summary>
public sealed partial class SmtpTransport(RelayOptions options, string hostname, MxResolver resolver)
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("relay");

    public async Task<IReadOnlyList<RecipientOutcome>> DeliverAsync(string domain, string sender, IReadOnlyList<QueuedRecipient> recipients,
        byte[] data, string? envId, string? ret, CancellationToken ct)
    {
        // An address the SMTP client cannot write (the server's parser is more lenient) can
        // never be sent: it fails now instead of at every attempt.
        var unusable = recipients.Where(r => !Writable(r.Address)).ToList();
        if (unusable.Count > 0)
        {
            var rest = recipients.Except(unusable).ToList();
            var failed = unusable.Select(r => new RecipientOutcome(r.Address, RecipientState.Failed, "5.1.3", "553 5.1.3 Bad recipient address syntax", null));
            return rest.Count == 0 ? [.. failed] : [.. failed, .. await DeliverAsync(domain, sender, rest, data, envId, ret, ct)];
        }
        List<(string Host, IPAddress Address, int Port)> targets = [];
        var smart = options.SmartHost.Trim();
        try
        {
            if (smart.Length > 0)
            {
                var (host, port) = SplitHostPort(smart, 587);
                targets.AddRange((await resolver.AddressesAsync(host, ct)).Select(a => (host, a, port)));
                if (targets.Count == 0) throw new RouteException("4.4.4", $"smart host {host} has no address", permanent: false);
            }
            else
            {
                foreach (var mx in await resolver.ResolveAsync(domain, ct))
                    targets.AddRange(mx.Addresses.Select(a => (mx.Name, a, options.Port)));
            }
        }
        catch (RouteException ex)
        {
            return All(recipients, ex.Permanent ? RecipientState.Failed : RecipientState.Queued, ex.Status, ex.Message, null);
        }

        var problems = new List<string>();
        foreach (var (host, address, port) in targets)
        {
            ct.ThrowIfCancellationRequested();
            try
            {
                return await TryHostAsync(host, address, port, smart.Length > 0, sender, recipients, data, envId, ret, ct);
            }
            catch (NextHostException ex)
            {
                Log.Info("relay {0}[{1}]:{2}: {3}", host, address, port, ex.Message);
                problems.Add($"{host}[{address}]: {ex.Message}");
            }
        }
        return All(recipients, RecipientState.Queued, "4.4.1", "no host took the message: " + string.Join("; ", problems), null);
    }

    private async Task<IReadOnlyList<RecipientOutcome>> TryHostAsync(string host, IPAddress address, int port, bool smartHost, string sender,
        IReadOnlyList<QueuedRecipient> recipients, byte[] data, string? envId, string? ret, CancellationToken ct)
    {
        var key = $"{host}|{address}|{port}";
        var client = TakeIdle(key);
        var reused = client is not null;
        client ??= await ConnectAsync(host, address, port, smartHost, ct);
        client.Prepare(recipients, envId, ret);
        var remote = host;
        var keep = false;
        try
        {
            if (!reused && smartHost && options.SmartHostUser.Length > 0)
            {
                if (!client.IsSecure)
                    return All(recipients, RecipientState.Queued, "4.7.0", $"smart host {host} offers no TLS: the password is not sent in clear", remote);
                try { await client.AuthenticateAsync(options.SmartHostUser, options.SmartHostPassword, ct); }
                catch (AuthenticationException ex)
                {
                    // The administrator's credentials, not the sender's message: keep it queued.
                    return All(recipients, RecipientState.Queued, "4.7.0", $"smart host {host} refused our credentials: {ex.Message}", remote);
                }
            }
            var message = MimeMessage.Load(new MemoryStream(data, writable: false), ct);
            var mailboxes = recipients.Select(r => new MailboxAddress("", r.Address)).ToList();
            var reply = await client.SendAsync(FormatOptions.Default, message, new MailboxAddress("", sender), mailboxes, ct);
            keep = true;
            return [.. recipients.Select(r => client.Rejected.TryGetValue(r.Address, out var no)
                ? Outcome(r.Address, no.Code, no.Text, remote)
                : new RecipientOutcome(r.Address, RecipientState.Sent, "2.0.0", "250 " + reply, remote))];
        }
        catch (NoRecipientsAcceptedException)
        {
            return [.. recipients.Select(r => client.Rejected.TryGetValue(r.Address, out var no)
                ? Outcome(r.Address, no.Code, no.Text, remote)
                : new RecipientOutcome(r.Address, RecipientState.Queued, "4.0.0", "not accepted", remote))];
        }
        catch (SmtpCommandException ex)
        {
            // MAIL FROM or DATA refused: the same answer for every recipient still open.
            return [.. recipients.Select(r => client.Rejected.TryGetValue(r.Address, out var no)
                ? Outcome(r.Address, no.Code, no.Text, remote)
                : Outcome(r.Address, (int)ex.StatusCode, ex.Message, remote))];
        }
        catch (Exception ex) when (reused && ex is IOException or SmtpProtocolException or ServiceNotConnectedException or SocketException)
        {
            // A cached connection the host had closed meanwhile: once more on a fresh one.
            client.Dispose();
            client = null;
            return await TryHostAsync(host, address, port, smartHost, sender, recipients, data, envId, ret, ct);
        }
        catch (Exception ex) when (ex is IOException or SmtpProtocolException or TimeoutException or SocketException or SslHandshakeException or ServiceNotConnectedException
            || ex is OperationCanceledException && !ct.IsCancellationRequested)
        {
            // The session broke during the transaction: whether the host kept the message is
            // unknown, so it is tried again (a duplicate is better than a loss).
            return All(recipients, RecipientState.Queued, "4.4.2", $"connection to {host} lost: {Describe(ex)}", remote);
        }
        finally
        {
            if (client is not null)
            {
                if (keep && client.IsConnected) PutIdle(key, client);
                else client.Dispose();
            }
        }
    }

    /// <summary>A new session with the host (greeting, EHLO, STARTTLS when offered); NextHostException when it cannot be had.</summary>
    private async Task<RelayClient> ConnectAsync(string host, IPAddress address, int port, bool smartHost, CancellationToken ct)
    {
        var client = new RelayClient
        {
            LocalDomain = hostname,
            Timeout = Math.Max(1, options.TimeoutSeconds) * 1000,
            CheckCertificateRevocation = false,
        };
        if (!(smartHost && options.SmartHostVerifyCertificate)) client.ServerCertificateValidationCallback = (_, _, _, _) => true;
        var socket = new Socket(address.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
        try
        {
            using var connect = CancellationTokenSource.CreateLinkedTokenSource(ct);
            connect.CancelAfter(TimeSpan.FromSeconds(Math.Max(1, options.ConnectTimeoutSeconds)));
            await socket.ConnectAsync(address, port, connect.Token);
            var tls = smartHost && port == 465 ? SecureSocketOptions.SslOnConnect : SecureSocketOptions.StartTlsWhenAvailable;
            await client.ConnectAsync(socket, host, port, tls, ct);
            return client;
        }
        catch (Exception ex) when (ex is SocketException or IOException or SmtpCommandException or SmtpProtocolException or SslHandshakeException or TimeoutException
            || ex is OperationCanceledException && !ct.IsCancellationRequested)
        {
            socket.Dispose();
            client.Dispose();
            throw new NextHostException(ex is OperationCanceledException ? "connection timed out" : Describe(ex));
        }
    }

    // Sessions kept open after a transaction, per host address, for the next message to the
    // same place (as Postfix's connection cache): a burst to one domain or the smart host pays
    // for one greeting, EHLO and TLS handshake per parallel delivery, not one per message.
    private const int MaxIdlePerHost = 20;
    private static readonly TimeSpan MaxIdle = TimeSpan.FromSeconds(5);
    private readonly ConcurrentDictionary<string, ConcurrentQueue<(RelayClient Client, long Since)>> _idle = new();

    private RelayClient? TakeIdle(string key)
    {
        if (!_idle.TryGetValue(key, out var queue)) return null;
        while (queue.TryDequeue(out var idle))
        {
            if (idle.Client.IsConnected && Stopwatch.GetElapsedTime(idle.Since) < MaxIdle) return idle.Client;
            _ = CloseAsync(idle.Client);
        }
        return null;
    }

    private void PutIdle(string key, RelayClient client)
    {
        var queue = _idle.GetOrAdd(key, _ => new ConcurrentQueue<(RelayClient, long)>());
        if (queue.Count >= MaxIdlePerHost) _ = CloseAsync(client);
        else queue.Enqueue((client, Stopwatch.GetTimestamp()));
    }

    /// <summary>Closes cached sessions idle for too long (all of them with <paramref name="all"/>): called about once a second.</summary>
    public async Task CloseIdleAsync(bool all = false)
    {
        foreach (var queue in _idle.Values)
            for (var n = queue.Count; n > 0 && queue.TryPeek(out var oldest) && (all || Stopwatch.GetElapsedTime(oldest.Since) >= MaxIdle); n--)
                if (queue.TryDequeue(out var idle)) await CloseAsync(idle.Client);
    }

    private static async Task CloseAsync(RelayClient client)
    {
        try
        {
            using var quit = new CancellationTokenSource(TimeSpan.FromSeconds(5));
            if (client.IsConnected) await client.DisconnectAsync(quit: true, quit.Token);
        }
        catch (Exception ex) when (ex is IOException or SmtpProtocolException or SmtpCommandException or OperationCanceledException or ServiceNotConnectedException or SocketException) { }
        finally { client.Dispose(); }
    }

    private static bool Writable(string address)
    {
        try
        {
            _ = new MailboxAddress("", address);
            return true;
        }
        catch (ParseException)
        {
            return false;
        }
    }

    private static RecipientOutcome Outcome(string address, int code, string text, string? remote)
    {
        text = text.ReplaceLineEndings(" ").Trim();
        var status = EnhancedCode().Match(text) is { Success: true } m ? m.Value : code >= 500 ? "5.0.0" : "4.0.0";
        var state = code >= 500 ? RecipientState.Failed : code >= 400 ? RecipientState.Queued : RecipientState.Sent;
        return new RecipientOutcome(address, state, status, $"{code} {text}", remote);
    }

    private static IReadOnlyList<RecipientOutcome> All(IReadOnlyList<QueuedRecipient> recipients, RecipientState state, string status, string reply, string? remote) =>
        [.. recipients.Select(r => new RecipientOutcome(r.Address, state, status, reply, remote))];

    private static string Describe(Exception ex) => ex switch
    {
        SmtpCommandException c => $"{(int)c.StatusCode} {c.Message}",
        _ => ex.Message,
    };

    /// <summary>"host:port", "[v6]:port" or a bare host.</summary>
    public static (string Host, int Port) SplitHostPort(string text, int defaultPort)
    {
        if (text.StartsWith('['))
        {
            var close = text.IndexOf(']');
            var rest = text[(close + 1)..];
            return (text[1..close], rest.StartsWith(':') ? int.Parse(rest[1..]) : defaultPort);
        }
        var colon = text.LastIndexOf(':');
        return colon > 0 && text.IndexOf(':') == colon ? (text[..colon], int.Parse(text[(colon + 1)..])) : (text, defaultPort);
    }

    [GeneratedRegex(@"^[245]\.\d{1,3}\.\d{1,3}\b")]
    private static partial Regex EnhancedCode();

    private sealed class NextHostException(string message) : Exception(message);

    private sealed class NoRecipientsAcceptedException() : Exception("no recipient accepted");

    /// <summary>Records refused recipients instead of failing the whole send, and passes DSN parameters on (RFC 3461).</summary>
    private sealed class RelayClient : SmtpClient
    {
        private IReadOnlyList<QueuedRecipient> _recipients = [];
        private string? _envId;

        public Dictionary<string, (int Code, string Text)> Rejected { get; } = new(StringComparer.OrdinalIgnoreCase);

        /// <summary>For the next message on this session.</summary>
        public void Prepare(IReadOnlyList<QueuedRecipient> recipients, string? envId, string? ret)
        {
            _recipients = recipients;
            _envId = envId;
            Rejected.Clear();
            DeliveryStatusNotificationType = ret?.ToUpperInvariant() switch
            {
                "HDRS" => DeliveryStatusNotificationType.HeadersOnly,
                "FULL" => DeliveryStatusNotificationType.Full,
                _ => DeliveryStatusNotificationType.Unspecified,
            };
        }

        protected override void OnRecipientNotAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response) =>
            Rejected[mailbox.Address] = ((int)response.StatusCode, response.Response);

        protected override void OnNoRecipientsAccepted(MimeMessage message) => throw new NoRecipientsAcceptedException();

        protected override string? GetEnvelopeId(MimeMessage message) => _envId;

        protected override DeliveryStatusNotification? GetDeliveryStatusNotifications(MimeMessage message, MailboxAddress mailbox)
        {
            var notify = _recipients.FirstOrDefault(r => r.Address.Equals(mailbox.Address, StringComparison.OrdinalIgnoreCase))?.Notify;
            if (string.IsNullOrEmpty(notify)) return null;
            DeliveryStatusNotification flags = 0;
            foreach (var word in notify.Split(',', StringSplitOptions.TrimEntries))
                flags |= word.ToUpperInvariant() switch
                {
                    "SUCCESS" => DeliveryStatusNotification.Success,
                    "FAILURE" => DeliveryStatusNotification.Failure,
                    "DELAY" => DeliveryStatusNotification.Delay,
                    _ => 0,
                };
            return flags == 0 ? DeliveryStatusNotification.Never : flags;
        }
    }
}
