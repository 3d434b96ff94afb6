using System.Net;
using System.Security.Cryptography.X509Certificates;
using Appliance.Directory;
using Appliance.Store;
using SmtpServer;
using SmtpServer.ComponentModel;
using SmtpServer.Net;
using SmtpServer.Protocol;
using Appliance.Hosting;
using Appliance.Monitoring;
using Appliance.Relay;

namespace Appliance.Smtp;

/// <summary>
/// One SMTP service on the SmtpServer engine: the MX (port 25: STARTTLS, SIZE, 8BITMIME,
/// PIPELINING, no AUTH) or submission (RFC 6409: 587 with STARTTLS and 465 with implicit TLS,
/// RFC 8314; AUTH required before MAIL). Reports the endpoints it bound (port 0 = ephemeral).
/// </summary>
public sealed class SmtpService
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("smtp");
    private readonly SmtpServer.SmtpServer _server;
    private readonly List<(IPEndPoint Endpoint, bool ImplicitTls)> _bound = [];
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly int _endpointCount;
    private Task? _running;

    /// <summary>The MX: mail for the hosted domains from anyone (and for elsewhere from Relay:TrustedNetworks).</summary>
    public static SmtpService Mx(IPEndPoint endpoint, X509Certificate2 certificate, string hostname, ApplianceOptions options,
        MailDirectory directory, MailStore store, OutboundQueue? queue, Func<byte[], byte[]> sign, NodeCounters counters, Filtering.SpamFilter? spam = null) =>
        new(SmtpRole.Mx, [(endpoint, false)], certificate, hostname, options, directory, store, queue, sign, counters, spam);

    /// <summary>Submission on the given endpoints (implicit TLS where the flag says so).</summary>
    public static SmtpService Submission(IReadOnlyList<(IPEndPoint Endpoint, bool ImplicitTls)> endpoints, X509Certificate2 certificate, string hostname,
        ApplianceOptions options, MailDirectory directory, MailStore store, OutboundQueue? queue, Func<byte[], byte[]> sign, NodeCounters counters) =>
        new(SmtpRole.Submission, endpoints, certificate, hostname, options, directory, store, queue, sign, counters);

    private SmtpService(SmtpRole role, IReadOnlyList<(IPEndPoint Endpoint, bool ImplicitTls)> endpoints, X509Certificate2 certificate, string hostname,
        ApplianceOptions options, MailDirectory directory, MailStore store, OutboundQueue? queue, Func<byte[], byte[]> sign, NodeCounters counters,
        Filtering.SpamFilter? spam = null)
    {
        var smtp = options.Smtp;
        var submission = role == SmtpRole.Submission;
        var limit = submission ? options.Submission.MaxMessageSize : smtp.MaxMessageSize;
        var maxSize = (int)Math.Min(limit, int.MaxValue - 1024);
        var builder = new SmtpServerOptionsBuilder()
            .ServerName(hostname)
            .MaxMessageSize(maxSize, MaxMessageSizeHandling.Strict)
            .CommandWaitTimeout(TimeSpan.FromSeconds(smtp.CommandTimeoutSeconds))
            .CustomSmtpGreeting(_ => $"220 {hostname} ESMTP Appliance");
        foreach (var (endpoint, implicitTls) in endpoints)
            builder = builder.Endpoint(b => b.Endpoint(endpoint).IsSecure(implicitTls).Certificate(certificate)
                // AUTH is offered before STARTTLS only in dev mode (loopback clients; SmtpAuthenticator refuses others).
                .AllowUnsecureAuthentication(submission && options.Node.DevMode).AuthenticationRequired(submission)
                .SessionTimeout(TimeSpan.FromSeconds(smtp.CommandTimeoutSeconds)));
        var serverOptions = builder.Build();
        _endpointCount = endpoints.Count;
        var listenerFactory = new EndpointListenerFactory();
        listenerFactory.EndpointStarted += (_, e) =>
        {
            lock (_bound)
            {
                _bound.Add(((IPEndPoint)e.LocalEndPoint, e.EndpointDefinition.IsSecure));
                if (_bound.Count == _endpointCount) _started.TrySetResult();
            }
        };
        var trusted = options.Relay.TrustedNetworks.Select(n => IPNetwork.Parse(n.Trim())).ToList();
        var limits = submission ? new SubmissionLimits(options.Submission) : null;
        var services = new ServiceProvider();
        services.Add(new SmtpConnectionLimitsFactory(listenerFactory, smtp.MaxConnectionsPerIp));
        services.Add(new SmtpRecipientFilter(directory, store, role, maxSize, submission ? options.Submission.MaxRecipients : smtp.MaxRecipients,
            submission ? [] : trusted, limits, counters, spam));
        services.Add(new SmtpDelivery(store, directory, hostname, maxSize, role, queue, limits, counters)
        {
            Sign = sign,
            Antivirus = options.Antivirus.Clamd.Trim() is { Length: > 0 } clamd ? new Filtering.ClamdClient(clamd, TimeSpan.FromSeconds(Math.Max(1, options.Antivirus.TimeoutSeconds))) : null,
            AntivirusOptions = options.Antivirus,
            // Sender authentication asks only a resolver the administrator named (DESIGN.md §7: nothing waits on public DNS by default).
            Authentication = role == SmtpRole.Mx && options.Dns.Servers.Length > 0
                ? new Filtering.SenderAuthentication(MxResolver.Client(options.Dns.Servers), Suffixes.Value) { TrustedArcSealers = options.Dmarc.TrustedArcSealers } : null,
            EnforceDmarc = options.Dmarc.Enforce,
            Spam = spam,
            Sieve = new Filtering.SieveDelivery(store, queue, hostname),
        });
        if (submission) services.Add(new SmtpAuthenticator(directory, options.Node.DevMode));
        _server = new SmtpServer.SmtpServer(serverOptions, services);
        _server.SessionCreated += (_, e) =>
        {
            e.Context.CommandExecuting += (_, c) =>
            {
                if (c.Command is EhloCommand ehlo) SmtpSessionState.Of(e.Context).Helo = ehlo.DomainOrAddress;
                else if (c.Command is HeloCommand helo) SmtpSessionState.Of(e.Context).Helo = helo.DomainOrAddress;
            };
        };
        _server.SessionFaulted += (_, e) =>
        {
            if (e.Exception is ConnectionRefusedException refused) Log.Info(refused.Message);
            else Log.Debug(e.Exception, "smtp session faulted");
        };
    }

    /// <summary>The Public Suffix List, read once per process (DMARC's organizational domains).</summary>
    private static readonly Lazy<Filtering.PublicSuffixes> Suffixes = new(() => new Filtering.PublicSuffixes());

    /// <summary>The endpoints bound, each with whether it is implicit TLS.</summary>
    public IReadOnlyList<(IPEndPoint Endpoint, bool ImplicitTls)> Endpoints
    {
        get { lock (_bound) return _bound.ToList(); }
    }

    /// <summary>Starts listening and returns once every endpoint is bound.</summary>
    public async Task StartAsync(CancellationToken ct)
    {
        _running = _server.StartAsync(CancellationToken.None);
        var done = await Task.WhenAny(_started.Task, _running);
        if (done == _running) await _running; // surfaces a bind failure
        await _started.Task.WaitAsync(ct);
    }

    public async Task StopAsync()
    {
        _server.Shutdown();
        if (_running is not null)
        {
            try { await _server.ShutdownTask.WaitAsync(TimeSpan.FromSeconds(10)); }
            catch (TimeoutException) { Log.Warn("smtp sessions still open at shutdown"); }
        }
    }
}
