using System.Net;
using System.Security.Cryptography.X509Certificates;
using Appliance.Directory;
using Appliance.Store;
using SmtpServer;
using SmtpServer.ComponentModel;
using SmtpServer.Net;
using SmtpServer.Protocol;
using SmtpOptions = Appliance.Hosting.SmtpOptions;

namespace Appliance.Smtp;

/// <summary>
/// Inbound SMTP (MX) on the SmtpServer engine: STARTTLS, SIZE, 8BITMIME, PIPELINING; no AUTH
/// here (submission is its own listener). Reports the endpoints it bound (port 0 = ephemeral).
/// </summary>
public sealed class SmtpMxServer
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("smtp");
    private readonly SmtpServer.SmtpServer _server;
    private readonly List<IPEndPoint> _bound = [];
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly int _endpointCount;
    private Task? _running;

    public SmtpMxServer(IPEndPoint endpoint, X509Certificate2 certificate, string hostname, SmtpOptions options, MailDirectory directory, MailStore store)
    {
        var maxSize = (int)Math.Min(options.MaxMessageSize, int.MaxValue - 1024);
        var serverOptions = new SmtpServerOptionsBuilder()
            .ServerName(hostname)
            .MaxMessageSize(maxSize, MaxMessageSizeHandling.Strict)
            .CommandWaitTimeout(TimeSpan.FromSeconds(options.CommandTimeoutSeconds))
            .CustomSmtpGreeting(_ => $"220 {hostname} ESMTP Appliance")
            .Endpoint(b => b.Endpoint(endpoint).IsSecure(false).Certificate(certificate)
                .AllowUnsecureAuthentication(false).AuthenticationRequired(false)
                .SessionTimeout(TimeSpan.FromSeconds(options.CommandTimeoutSeconds)))
            .Build();
        _endpointCount = 1;
        var listenerFactory = new EndpointListenerFactory();
        listenerFactory.EndpointStarted += (_, e) =>
        {
            lock (_bound)
            {
                _bound.Add((IPEndPoint)e.LocalEndPoint);
                if (_bound.Count == _endpointCount) _started.TrySetResult();
            }
        };
        var services = new ServiceProvider();
        services.Add(new SmtpConnectionLimitsFactory(listenerFactory, options.MaxConnectionsPerIp));
        services.Add(new SmtpRecipientFilter(directory, store, options));
        services.Add(new SmtpDelivery(store, hostname, maxSize));
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

    public IReadOnlyList<IPEndPoint> Endpoints
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
