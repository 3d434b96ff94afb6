using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Appliance.Hosting;
using DnsClient;
using MailKit.Net.Imap;
using MailKit.Net.Pop3;
using MailKit.Net.Smtp;
using MailKit.Security;

namespace Appliance.Monitoring;

/// <summary>
/// The checks a node runs on itself, each giving OK/WARNING/CRITICAL/UNKNOWN with a line and
/// perfdata as a Nagios plugin would: a probe of every service it listens on (the banner, and
/// a login as Monitoring:ProbeAccount when one is set), disk space, the outbound queue,
/// replication, the certificate's expiry, and our public addresses on DNS block lists. They
/// run where the service runs, as NRPE would, so a node that stops reporting is itself the
/// alert (see <see cref="Alerter"/>).
/// </summary>
/// <remarks>
/// Login probes must not lock their own address out (the login throttle counts every failure
/// by address, and loopback is where the probes come from): each probe makes one attempt (SASL
/// PLAIN, no fallback to other mechanisms), one probe signs in at a time, and after the probe
/// account is refused no probe signs in again for the throttle's window
/// (<paramref name="loginPause"/>); the checks stay CRITICAL meanwhile and say why.
/// </remarks>
public sealed class NodeChecks(MonitoringOptions options, Func<IReadOnlyDictionary<string, IPEndPoint>> endpoints, X509Certificate2 certificate,
    IReadOnlyList<string> dnsServers, TimeSpan loginPause, Filtering.ClamdClient? clamd = null, Filtering.RspamdClient? rspamd = null)
{
    private readonly SemaphoreSlim _loginGate = new(1, 1);
    private DateTimeOffset _loginPausedUntil;
    private string _loginRefusal = "";

    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private readonly LookupClient? _dns = dnsServers.Count == 0 || options.Dnsbl.Length == 0 ? null : Relay.MxResolver.Client(dnsServers);

    /// <summary>Every check, given this sample's measured values (disk, queue, replication come from them).</summary>
    public async Task<IReadOnlyList<CheckResult>> RunAsync(IReadOnlyList<MetricValue> values, CancellationToken ct)
    {
        var probes = endpoints().OrderBy(e => e.Key, StringComparer.Ordinal).Select(e => ProbeAsync(e.Key, e.Value, ct)).ToList();
        var dnsbl = DnsblAsync(ct);
        if (clamd is not null) probes.Add(ClamdAsync(clamd, ct));
        if (rspamd is not null) probes.Add(RspamdAsync(rspamd, ct));
        var results = new List<CheckResult>(await Task.WhenAll(probes));
        results.Add(Disk(values));
        results.Add(Queue(values));
        results.Add(Replication(values));
        results.Add(Certificate(DateTimeOffset.UtcNow));
        if (await dnsbl is { } listed) results.Add(listed);
        return results;
    }

    // ---- services ----

    private async Task<CheckResult> ProbeAsync(string name, IPEndPoint bound, CancellationToken ct)
    {
        var ep = bound.Address.Equals(IPAddress.Any) ? new IPEndPoint(IPAddress.Loopback, bound.Port)
            : bound.Address.Equals(IPAddress.IPv6Any) ? new IPEndPoint(IPAddress.IPv6Loopback, bound.Port) : bound;
        var label = name.ToUpperInvariant();
        var started = Stopwatch.GetTimestamp();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(Math.Max(1, options.ProbeTimeoutSeconds)));
        try
        {
            var detail = name switch
            {
                "http" or "https" or "admin" => await HttpAsync(ep, name != "http", timeout.Token),
                _ => await BannerAsync(name, ep, timeout.Token) + await LoginAsync(name, ep, timeout.Token),
            };
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            return new CheckResult(name, CheckStatus.Ok, $"{label} OK - {detail} in {seconds * 1000:F0} ms on port {ep.Port}",
                $"time={seconds.ToString("F6", Inv)}s;;;0");
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or AuthenticationException
            or MailKit.ProtocolException or MailKit.CommandException or HttpRequestException or InvalidDataException)
        {
            var why = ex is OperationCanceledException ? $"no answer within {options.ProbeTimeoutSeconds} s" : ex.Message.ReplaceLineEndings(" ");
            return new CheckResult(name, CheckStatus.Critical, $"{label} CRITICAL - port {ep.Port}: {why}");
        }
    }

    /// <summary>rspamd (Spam:Rspamd): /ping must answer pong. Mail goes on without its opinion meanwhile, so a WARNING.</summary>
    private async Task<CheckResult> RspamdAsync(Filtering.RspamdClient client, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        if (await client.PingAsync(ct))
        {
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            return new CheckResult("rspamd", CheckStatus.Ok, $"RSPAMD OK - pong from {client.BaseUrl} in {seconds * 1000:F0} ms", $"time={seconds.ToString("F6", Inv)}s;;;0");
        }
        return new CheckResult("rspamd", CheckStatus.Warning, $"RSPAMD WARNING - {client.BaseUrl} does not answer /ping (mail is scored without it meanwhile)");
    }

    /// <summary>The virus scanner the SMTP services wait on (Antivirus:Clamd): PING must get PONG.</summary>
    private async Task<CheckResult> ClamdAsync(Filtering.ClamdClient client, CancellationToken ct)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            await client.PingAsync(ct);
            var seconds = Stopwatch.GetElapsedTime(started).TotalSeconds;
            return new CheckResult("clamd", CheckStatus.Ok, $"CLAMD OK - PONG from {client.Address} in {seconds * 1000:F0} ms", $"time={seconds.ToString("F6", Inv)}s;;;0");
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            var why = ex is OperationCanceledException ? "no answer" : ex.Message;
            return new CheckResult("clamd", CheckStatus.Critical, $"CLAMD CRITICAL - {client.Address}: {why} (mail is answered 451 meanwhile, unless Antivirus:OnError is accept)");
        }
    }

    /// <summary>Connects (TLS first on the implicit-TLS ports), reads the greeting and says goodbye; returns the greeting.</summary>
    private static async Task<string> BannerAsync(string name, IPEndPoint ep, CancellationToken ct)
    {
        var (expect, bye) = name switch
        {
            "smtp" or "submission" or "smtps" => ("220", "QUIT\r\n"),
            "imap" or "imaps" => ("* OK", "a LOGOUT\r\n"),
            "pop3" or "pop3s" => ("+OK", "QUIT\r\n"),
            // RFC 5804 §1.7: the greeting is the capability list, IMPLEMENTATION first here.
            "managesieve" => ("\"IMPLEMENTATION\"", "LOGOUT\r\n"),
            _ => throw new InvalidDataException($"no probe for {name}"),
        };
        using var client = new TcpClient(ep.AddressFamily);
        await client.ConnectAsync(ep, ct);
        Stream stream = client.GetStream();
        if (name is "smtps" or "imaps" or "pop3s")
        {
            var tls = new SslStream(stream, false, (_, _, _, _) => true); // our own certificate: its expiry is a check of its own
            await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "localhost" }, ct);
            stream = tls;
        }
        await using (stream)
        {
            var line = await ReadLineAsync(stream, ct);
            if (!line.StartsWith(expect, StringComparison.Ordinal)) throw new InvalidDataException($"unexpected greeting \"{Truncate(line)}\"");
            await stream.WriteAsync(Encoding.ASCII.GetBytes(bye), ct);
            return Truncate(line);
        }
    }

    private static async Task<string> ReadLineAsync(Stream stream, CancellationToken ct)
    {
        var buffer = new byte[1024];
        var length = 0;
        while (length < buffer.Length)
        {
            var n = await stream.ReadAsync(buffer.AsMemory(length, 1), ct);
            if (n == 0) throw new IOException(length == 0 ? "connection closed without a greeting" : "connection closed mid-greeting");
            if (buffer[length++] == '\n') break;
        }
        return Encoding.ASCII.GetString(buffer, 0, length).TrimEnd();
    }

    /// <summary>With a probe account: signs in over the service's own TLS (STARTTLS where it offers it); returns what was proved.</summary>
    private async Task<string> LoginAsync(string name, IPEndPoint ep, CancellationToken ct)
    {
        // No ManageSieve client in MailKit: that probe stops at the greeting.
        if (options.ProbeAccount.Length == 0 || name is "smtp" or "managesieve") return "";
        await _loginGate.WaitAsync(ct);
        try
        {
            if (DateTimeOffset.UtcNow < _loginPausedUntil)
                throw new AuthenticationException($"{_loginRefusal} (login probes paused until {_loginPausedUntil:HH:mm:ss} UTC so that they do not lock their own address out)");
            try
            {
                return await SignInAsync(name, ep, ct);
            }
            catch (AuthenticationException ex)
            {
                _loginRefusal = $"login as {options.ProbeAccount} refused: {ex.Message}";
                _loginPausedUntil = DateTimeOffset.UtcNow + loginPause;
                throw new AuthenticationException(_loginRefusal, ex);
            }
        }
        finally
        {
            _loginGate.Release();
        }
    }

    private async Task<string> SignInAsync(string name, IPEndPoint ep, CancellationToken ct)
    {
        var secure = name is "smtps" or "imaps" or "pop3s" ? SecureSocketOptions.SslOnConnect : SecureSocketOptions.StartTlsWhenAvailable;
        MailKit.MailService client = name switch
        {
            "imap" or "imaps" => new ImapClient(),
            "pop3" or "pop3s" => new Pop3Client(),
            _ => new SmtpClient(),
        };
        using (client)
        {
            client.ServerCertificateValidationCallback = (_, _, _, _) => true;
            await client.ConnectAsync(ep.Address.ToString(), ep.Port, secure, ct);
            await client.AuthenticateAsync(new SaslMechanismPlain(options.ProbeAccount, options.ProbePassword), ct);
            await client.DisconnectAsync(true, ct);
        }
        return $", login as {options.ProbeAccount}";
    }

    private static async Task<string> HttpAsync(IPEndPoint ep, bool tls, CancellationToken ct)
    {
        using var handler = new SocketsHttpHandler { AllowAutoRedirect = false, UseProxy = false };
        handler.SslOptions.RemoteCertificateValidationCallback = (_, _, _, _) => true;
        using var http = new HttpClient(handler);
        var host = ep.AddressFamily == AddressFamily.InterNetworkV6 ? $"[{ep.Address}]" : ep.Address.ToString();
        using var response = await http.GetAsync($"{(tls ? "https" : "http")}://{host}:{ep.Port}/", ct);
        if ((int)response.StatusCode >= 500) throw new HttpRequestException($"HTTP {(int)response.StatusCode} {response.ReasonPhrase}");
        return $"HTTP {(int)response.StatusCode}";
    }

    // ---- resources ----

    private CheckResult Disk(IReadOnlyList<MetricValue> values)
    {
        var disks = values.Where(v => MetricValue.FamilyOf(v.Name) == "disk_used_percent").ToList();
        if (disks.Count == 0) return new CheckResult("disk", CheckStatus.Unknown, "DISK UNKNOWN - no file system measured");
        var status = disks.Aggregate(CheckStatus.Ok, (s, d) => CheckResult.Worst(s, Level(d.Value, options.DiskWarningPercent, options.DiskCriticalPercent)));
        var parts = disks.OrderByDescending(d => d.Value).Select(d => $"{Label(d.Name, "fs")} {d.Value:F0}% used");
        var perf = disks.Select(d => $"'{Label(d.Name, "fs")}'={d.Value.ToString("F1", Inv)}%;{options.DiskWarningPercent.ToString(Inv)};{options.DiskCriticalPercent.ToString(Inv)};0;100");
        return new CheckResult("disk", status, $"DISK {CheckResult.StatusName(status)} - {string.Join(", ", parts)}", string.Join(' ', perf));
    }

    private CheckResult Queue(IReadOnlyList<MetricValue> values)
    {
        var size = Value(values, "queue_messages") ?? 0;
        var age = Value(values, "queue_oldest_seconds") ?? 0;
        var status = CheckResult.Worst(Level(size, options.QueueWarningMessages, options.QueueCriticalMessages),
            Level(age / 60, options.QueueWarningAgeMinutes, options.QueueCriticalAgeMinutes));
        var oldest = size == 0 ? "" : $", oldest {Age(age)}";
        return new CheckResult("queue", status, $"QUEUE {CheckResult.StatusName(status)} - {size:F0} message(s) waiting{oldest}",
            $"messages={size.ToString(Inv)};{options.QueueWarningMessages};{options.QueueCriticalMessages};0 oldest={age.ToString("F0", Inv)}s;{(options.QueueWarningAgeMinutes * 60).ToString(Inv)};{(options.QueueCriticalAgeMinutes * 60).ToString(Inv)};0");
    }

    /// <summary>In a pair: every unit active here must replicate (WARNING while degraded or resyncing), and none may have failed here (CRITICAL).</summary>
    private static CheckResult Replication(IReadOnlyList<MetricValue> values)
    {
        var units = values.Where(v => MetricValue.FamilyOf(v.Name) == "unit_state").ToList();
        if (units.Count == 0) return new CheckResult("replication", CheckStatus.Ok, "REPLICATION OK - single node, nothing to replicate");
        var failed = units.Where(u => u.Value == (int)Cluster.UnitState.Failed).Select(u => Label(u.Name, "unit")).ToList();
        var active = units.Where(u => u.Value == (int)Cluster.UnitState.Active).Select(u => Label(u.Name, "unit")).ToList();
        var behind = active.Where(u => Value(values, MetricValue.Series("replication_in_sync", ("unit", u))) != 1).ToList();
        var lag = active.Sum(u => Value(values, MetricValue.Series("replication_lag_operations", ("unit", u))) ?? 0);
        var status = failed.Count > 0 ? CheckStatus.Critical : behind.Count > 0 ? CheckStatus.Warning : CheckStatus.Ok;
        var text = failed.Count > 0 ? $"failed here: {string.Join(", ", failed)}"
            : behind.Count > 0 ? $"not replicated to the peer: {string.Join(", ", behind)} ({lag:F0} operation(s) behind)"
            : active.Count == 0 ? "no unit active here" : $"{string.Join(", ", active)} in sync with the peer";
        return new CheckResult("replication", status, $"REPLICATION {CheckResult.StatusName(status)} - {text}", $"lag={lag.ToString(Inv)};;;0");
    }

    private CheckResult Certificate(DateTimeOffset now)
    {
        var days = (certificate.NotAfter.ToUniversalTime() - now.UtcDateTime).TotalDays;
        var status = days < options.CertificateCriticalDays ? CheckStatus.Critical : days < options.CertificateWarningDays ? CheckStatus.Warning : CheckStatus.Ok;
        var text = days < 0 ? $"expired on {certificate.NotAfter.ToUniversalTime():yyyy-MM-dd}" : $"expires in {days:F0} days ({certificate.NotAfter.ToUniversalTime():yyyy-MM-dd})";
        return new CheckResult("certificate", status, $"CERTIFICATE {CheckResult.StatusName(status)} - {certificate.GetNameInfo(X509NameType.SimpleName, false)} {text}",
            $"days={days.ToString("F1", Inv)};{options.CertificateWarningDays};{options.CertificateCriticalDays};0");
    }

    /// <summary>Each public address on each list (RFC 5782: the reversed address under the list's zone has an A record when listed).</summary>
    private async Task<CheckResult?> DnsblAsync(CancellationToken ct)
    {
        if (_dns is null || options.PublicAddresses.Length == 0) return null;
        var listed = new List<string>();
        var failures = new List<string>();
        foreach (var address in options.PublicAddresses)
        {
            if (!IPAddress.TryParse(address.Trim(), out var ip)) { failures.Add($"{address} is not an address"); continue; }
            foreach (var zone in options.Dnsbl)
            {
                var (isListed, detail) = await new Filtering.DnsList(zone.Trim().TrimEnd('.'), null).LookupAsync(_dns, ip, ct);
                if (isListed is null) failures.Add($"{zone}: {detail}");
                else if (isListed == true) listed.Add($"{ip} on {zone}");
            }
        }
        var status = listed.Count > 0 ? CheckStatus.Critical : failures.Count > 0 ? CheckStatus.Unknown : CheckStatus.Ok;
        var text = listed.Count > 0 ? "listed: " + string.Join(", ", listed)
            : failures.Count > 0 ? "lookup failed: " + string.Join(", ", failures)
            : $"{options.PublicAddresses.Length} address(es) on none of {options.Dnsbl.Length} list(s)";
        return new CheckResult("dnsbl", status, $"DNSBL {CheckResult.StatusName(status)} - {text}", $"listed={listed.Count};;1;0");
    }

    private static CheckStatus Level(double value, double warning, double critical) =>
        value >= critical ? CheckStatus.Critical : value >= warning ? CheckStatus.Warning : CheckStatus.Ok;

    private static double? Value(IReadOnlyList<MetricValue> values, string name) =>
        values.FirstOrDefault(v => v.Name == name) is { Name: not null } v ? v.Value : null;

    /// <summary>A label's value in a series name (unescaped well enough for a display).</summary>
    internal static string Label(string series, string label)
    {
        var key = label + "=\"";
        var start = series.IndexOf(key, StringComparison.Ordinal);
        if (start < 0) return "";
        start += key.Length;
        var b = new StringBuilder();
        for (var i = start; i < series.Length && series[i] != '"'; i++)
            b.Append(series[i] == '\\' && i + 1 < series.Length ? series[++i] switch { 'n' => '\n', var c => c } : series[i]);
        return b.ToString();
    }

    private static string Age(double seconds) => seconds switch
    {
        < 120 => $"{seconds:F0} s",
        < 7200 => $"{seconds / 60:F0} min",
        < 172_800 => $"{seconds / 3600:F1} h",
        _ => $"{seconds / 86_400:F1} days",
    };

    private static string Truncate(string line) => line.Length <= 80 ? line : line[..80] + "…";
}
