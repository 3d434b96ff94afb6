using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text.Json;
using Appliance.Cluster;
using Appliance.Cluster.Fencing;
using Appliance.Directory;
using Appliance.Imap;
using Appliance.ManageSieve;
using Appliance.Pop3;
using Appliance.Provisioning;
using Appliance.Smtp;
using Appliance.Store;
using Appliance.Tls;

namespace Appliance.Hosting;

/// <summary>
/// One node with every role it hosts in single-node mode: directory, store partitions, MX,
/// POP3/POP3S, IMAP/IMAPS, ManageSieve and the control socket. Start order: data (identity, TLS, directory, store with
/// journal replay), then listeners; stop is the reverse, so nothing accepts work it cannot store.
/// </summary>
public sealed class ApplianceHost : IAsyncDisposable
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("host");
    private readonly List<Func<Task>> _stops = [];
    private readonly Dictionary<string, IPEndPoint> _endpoints = [];

    public ApplianceOptions Options { get; }
    public string DataDirectory { get; }
    /// <summary>The MX's spam defences (issue 7).</summary>
    public Filtering.SpamFilter Spam { get; }
    public NodeIdentity Identity { get; }
    public X509Certificate2 Certificate { get; }
    public MailDirectory Directory { get; }
    public MailStore Store { get; }
    public Provisioner Provisioner { get; }
    /// <summary>Every administrative change: journal, agent, bulk jobs.</summary>
    public ProvisioningService Provisioning { get; }
    /// <summary>The outbound queue: what submission and trusted relays send elsewhere, bounces, and its delivery.</summary>
    public Relay.OutboundQueue Queue { get; }
    private readonly ProvisioningAgent _agent;
    /// <summary>This node's provisioning agent (tests drive its purge).</summary>
    public ProvisioningAgent Agent => _agent;
    /// <summary>The cluster manager in a pair; null on a single node.</summary>
    public ClusterManager? Cluster { get; }
    private readonly FloatingIpManager? _floatingIps;
    /// <summary>The first admin's password when this start created it (shown once), else null.</summary>
    public string? FirstAdminPassword { get; }
    public IReadOnlyDictionary<string, IPEndPoint> Endpoints => _endpoints;
    private Web.WebServer? _web;
    /// <summary>The routes the HTTP listener serves (empty without one).</summary>
    public IReadOnlyList<(string Method, string Path)> WebRoutes => _web?.Routes ?? [];
    public string ControlSocketPath => Path.Combine(DataDirectory, "control.sock");
    /// <summary>This node's event counters (SMTP replies by outcome and reason).</summary>
    public Monitoring.NodeCounters Counters { get; } = new();
    /// <summary>Failed logins of every protocol, and the throttle they feed.</summary>
    public LoginThrottle Throttle { get; }
    /// <summary>The collector, the checks, /metrics and (where the monitor unit is active) the alerts.</summary>
    public Monitoring.MonitoringService Monitoring { get; }
    private ImapServer? _imap;
    private Pop3Server? _pop3;
    private ManageSieveServer? _manageSieve;
    public int ImapSessions => _imap?.ActiveSessions ?? 0;
    public int Pop3Sessions => _pop3?.ActiveSessions ?? 0;
    public int ManageSieveSessions => _manageSieve?.ActiveSessions ?? 0;

    /// <summary>How to stop each running service by the name its check carries (smtp, submission, imap, pop3, managesieve, http).</summary>
    private readonly Dictionary<string, Func<Task>> _services = [];

    private ApplianceHost(ApplianceOptions options)
    {
        Options = options;
        DataDirectory = Path.GetFullPath(options.Node.DataDirectory);
        if (!System.IO.Directory.Exists(DataDirectory))
        {
            // Password hashes, keys and mail live here: only the service user may look in.
            System.IO.Directory.CreateDirectory(DataDirectory);
            if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(DataDirectory, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }
        IFenceDriver? fence = null;
        if (options.Cluster.Enabled)
        {
            ClusterManager.Validate(options.Cluster, options.Node.Name, options.Store.Partitions);
            fence = FenceDrivers.Create(options.Cluster.Fencing);
            // A crashed process leaves its units' floating addresses behind: drop them before
            // anything else (opening the store may take a while), nothing is active yet.
            _floatingIps = new FloatingIpManager();
            foreach (var address in options.Cluster.Units.SelectMany(u => u.Addresses).Select(FloatingAddress.Parse))
            {
                try { _floatingIps.RemoveAsync(address, CancellationToken.None).GetAwaiter().GetResult(); }
                catch (InvalidOperationException ex) { Log.Warn("clearing floating address {0}: {1}", address, ex.Message); }
            }
        }
        if (options.Antivirus.Clamd.Trim().Length > 0) Filtering.ClamdClient.Endpoint(options.Antivirus.Clamd.Trim()); // a bad address stops the start
        if (options.Antivirus.OnError is not ("tempfail" or "accept"))
            throw new InvalidOperationException($"Antivirus:OnError: '{options.Antivirus.OnError}' is neither tempfail nor accept");
        Spam = new Filtering.SpamFilter(options.Spam, options.Dns.Servers, DataDirectory); // bad lists or thresholds stop the start
        Identity = LoadIdentity(DataDirectory, options.Node.Name);
        Certificate = CertificateProvider.Load(options.Tls, DataDirectory, options.Node.Hostname);
        Throttle = new LoginThrottle(options.Security.LoginFailuresBeforeThrottle, TimeSpan.FromSeconds(options.Security.LoginFailureWindowSeconds));
        if (options.Store.Partitions.FirstOrDefault(MailStore.IsServicePartition) is { } taken)
            throw new InvalidOperationException($"Store:Partitions: '{taken}' is the {taken} unit's name, not a mailbox partition's");
        Directory = new MailDirectory(Path.Combine(DataDirectory, "directory.db"), options.Store.Partitions, Throttle);
        // Every node hosts the service units' partitions (units/monitor, units/db) beside the mailbox ones.
        Store = MailStore.Open(DataDirectory, [.. options.Store.Partitions, .. MailStore.ServicePartitions], options.Store.JournalSegmentBytes,
            options.Store.JournalRetainBytes < 0 ? long.MaxValue : options.Store.JournalRetainBytes);
        Store.SieveLimits = new SieveLimits(options.ManageSieve.MaxScriptBytes, options.ManageSieve.MaxScripts);
        Provisioner = new Provisioner(Directory, Store, options.Store.DefaultQuotaBytes);
        // The journal is the monitor unit's partition (DESIGN.md §3, units/monitor/); jobs are this node's.
        var journal = new ProvisioningJournal(Store, Directory, Path.Combine(DataDirectory, "jobs.db"));
        _agent = new ProvisioningAgent(Directory, Store, journal);
        Provisioning = new ProvisioningService(Directory, journal, _agent, options.Store.DefaultQuotaBytes,
            TimeSpan.FromDays(Math.Max(0, options.Provisioning.DeletedRetentionDays)), options.Node.Name);
        FirstAdminPassword = Directory.EnsureFirstAdmin("admin");
        Queue = new Relay.OutboundQueue(Store, Directory, options.Relay, options.Node.Hostname, options.Dns.Servers);
        if (fence is not null)
        {
            var ips = _floatingIps!;
            Cluster = new ClusterManager(options.Cluster, options.Node.Name, Store, DataDirectory, fence,
                async (addresses, add, ct) =>
                {
                    foreach (var text in addresses)
                    {
                        var address = FloatingAddress.Parse(text);
                        if (add) await ips.AddAsync(address, ct);
                        else await ips.RemoveAsync(address, ct);
                    }
                });
        }
        Monitoring = new Monitoring.MonitoringService(this);
    }

    /// <summary>Opens the node's data. Listeners start with <see cref="StartAsync"/>.</summary>
    public static ApplianceHost Create(ApplianceOptions options) => new(options);

    public async Task StartAsync(CancellationToken ct)
    {
        var address = IPAddress.Parse(Options.Listen.Address);
        var hostname = Options.Node.Hostname;

        // Requests journaled but not applied before a stop (or a crash) are applied first; then
        // the agent follows this node's copy of the journal.
        await _agent.ApplyPendingAsync();
        var agentStop = new CancellationTokenSource();
        var agentLoop = _agent.RunAsync(agentStop.Token);
        var purge = PurgeLoopAsync(agentStop.Token);
        _stops.Add(async () => { await agentStop.CancelAsync(); await agentLoop; await purge; });

        var control = new ControlServer(ControlSocketPath, new ControlCommands(Provisioning, Cluster, Queue, Monitoring));
        control.Start();
        _stops.Add(async () => await control.DisposeAsync());

        // The outbound queue delivers the queues of the partitions active here (all of them on a
        // single node); it starts before the listeners that fill it.
        var queueStop = new CancellationTokenSource();
        var queueLoop = Queue.RunAsync(queueStop.Token);
        _stops.Add(async () => { await queueStop.CancelAsync(); await queueLoop; });
        // Outgoing mail is DKIM-signed with its From domain's key (RFC 6376), before it is stored or queued.
        Func<byte[], byte[]> sign = m => Relay.DkimSigning.SignIfKeyed(m, Directory);

        if (Options.Listen.Smtp >= 0)
        {
            var mx = SmtpService.Mx(new IPEndPoint(address, Options.Listen.Smtp), Certificate, hostname, Options, Directory, Store, Queue, sign, Counters, Spam);
            await mx.StartAsync(ct);
            _endpoints["smtp"] = mx.Endpoints[0].Endpoint;
            _stops.Add(mx.StopAsync);
            _services["smtp"] = mx.StopAsync;
        }

        List<(IPEndPoint, bool)> submission = [];
        if (Options.Listen.Submission >= 0) submission.Add((new IPEndPoint(address, Options.Listen.Submission), false));
        if (Options.Listen.Smtps >= 0) submission.Add((new IPEndPoint(address, Options.Listen.Smtps), true));
        if (submission.Count > 0)
        {
            var msa = SmtpService.Submission(submission, Certificate, hostname, Options, Directory, Store, Queue, sign, Counters);
            await msa.StartAsync(ct);
            foreach (var (ep, implicitTls) in msa.Endpoints) _endpoints[implicitTls ? "smtps" : "submission"] = ep;
            _stops.Add(msa.StopAsync);
            _services["submission"] = msa.StopAsync;
        }

        if (Options.Listen.Pop3 >= 0 || Options.Listen.Pop3s >= 0)
        {
            // One server for both ports: they share the maildrop locks and per-address limits.
            var pop3 = new Pop3Server(Store, Directory, Certificate, Options.Pop3, Options.Node.DevMode, hostname) { Forwarder = Cluster };
            Cluster?.HostSessions("pop3", pop3);
            _stops.Add(pop3.StopAsync);
            _services["pop3"] = pop3.StopAsync;
            _pop3 = pop3;
            if (Options.Listen.Pop3 >= 0) _endpoints["pop3"] = await pop3.StartAsync(new IPEndPoint(address, Options.Listen.Pop3), implicitTls: false, ct);
            if (Options.Listen.Pop3s >= 0) _endpoints["pop3s"] = await pop3.StartAsync(new IPEndPoint(address, Options.Listen.Pop3s), implicitTls: true, ct);
        }

        if (Options.Listen.Imap >= 0 || Options.Listen.Imaps >= 0)
        {
            // One server for both ports: they share per-address and per-user limits.
            var imap = new ImapServer(Store, Directory, Certificate, Options.Imap, Options.Smtp.MaxMessageSize, Options.Node.DevMode, hostname) { Forwarder = Cluster };
            Cluster?.HostSessions("imap", imap);
            _stops.Add(imap.StopAsync);
            _services["imap"] = imap.StopAsync;
            _imap = imap;
            if (Options.Listen.Imap >= 0) _endpoints["imap"] = await imap.StartAsync(new IPEndPoint(address, Options.Listen.Imap), implicitTls: false, ct);
            if (Options.Listen.Imaps >= 0) _endpoints["imaps"] = await imap.StartAsync(new IPEndPoint(address, Options.Listen.Imaps), implicitTls: true, ct);
        }

        if (Options.Listen.ManageSieve >= 0)
        {
            var sieve = new ManageSieveServer(Store, Directory, Certificate, Options.ManageSieve,
                SieveChecker.Parser(Options.ManageSieve.MaxScriptBytes), Options.Node.DevMode) { Forwarder = Cluster };
            Cluster?.HostSessions("managesieve", sieve);
            _stops.Add(sieve.StopAsync);
            _services["managesieve"] = sieve.StopAsync;
            _manageSieve = sieve;
            _endpoints["managesieve"] = sieve.Start(new IPEndPoint(address, Options.Listen.ManageSieve), ct);
        }

        if (Options.Listen.Http >= 0 || Options.Listen.Https >= 0 || Options.Listen.Admin >= 0)
        {
            var web = await Web.WebServer.StartAsync(address, Options.Listen.Http, Options.Listen.Https, Options.Listen.Admin, Certificate, Options.Node.DevMode,
                Provisioning, Store, Identity.Name, Queue, Monitoring, Options.Monitoring, Cluster,
                new Web.WebmailSetup(_endpoints.GetValueOrDefault("submission"), Options.Submission.MaxMessageSize, Options.Webmail,
                    SieveChecker.Parser(Options.ManageSieve.MaxScriptBytes).Check), ct);
            foreach (var (scheme, ep) in web.Endpoints) _endpoints[scheme] = ep;
            _web = web;
            _stops.Add(async () => await web.DisposeAsync());
            _services["http"] = async () => await web.DisposeAsync();
        }

        if (Cluster is { } cluster)
        {
            // Last: a unit becomes active only once the services that serve it are listening;
            // stopping demotes the units (and drops their addresses) before the listeners close.
            Store.Remote = cluster;
            Queue.Cluster = cluster;
            cluster.QueueHandler = Queue.HandleForwardedAsync;
            cluster.Requeue = Queue.RequeueAsync;
            Provisioning.Peer = cluster;
            cluster.ProvisionedSeq = () => _agent.AppliedSeq;
            cluster.ProvisionHandler = Provisioning.SubmitForwardedAsync;
            cluster.MetricsHandler = Monitoring.RecordForwardedAsync;
            cluster.AlertAckHandler = async (id, actor) =>
                await Monitoring.Alerter.AcknowledgeAsync(id, actor) ? (0, []) : (3, [$"no open alert {id}"]);
            cluster.BeforeDelivery = async user =>
            {
                if (Directory.IsRetained(user.Address)) await _agent.ApplyPendingAsync();
            };
            await cluster.StartAsync();
            _stops.Add(async () => await cluster.DisposeAsync());
        }

        // The collector starts once there is something to measure and stops first.
        var monitoringStop = new CancellationTokenSource();
        var monitoringLoop = Monitoring.RunAsync(monitoringStop.Token);
        _stops.Add(async () => { await monitoringStop.CancelAsync(); await monitoringLoop; });

        foreach (var (name, ep) in _endpoints) Log.Info("{0} listening on {1}", name, ep);
        Log.Info("node {0} ({1}) ready, data in {2}", Identity.Name, Identity.Id, DataDirectory);
    }

    /// <summary>
    /// Stops one service (smtp, submission, imap, pop3, managesieve, http) while the node keeps running: its
    /// port closes, its sessions end, and its check goes CRITICAL. Maintenance and the
    /// monitoring's own tests use it; a restart of the node brings it back.
    /// </summary>
    public async Task StopServiceAsync(string name)
    {
        if (!_services.Remove(name, out var stop)) throw new InvalidOperationException($"no running service {name} (running: {string.Join(", ", _services.Keys)})");
        Log.Warn("service {0} stopped on request; the node keeps running without it", name);
        await stop();
    }

    /// <summary>Hourly: the mail of removed mailboxes whose retention period is over is deleted.</summary>
    private async Task PurgeLoopAsync(CancellationToken ct)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromHours(1));
        do
        {
            try { await Provisioning.PurgeExpiredAsync(DateTimeOffset.UtcNow); }
            catch (Exception ex) when (ex is IOException or InvalidOperationException or Microsoft.Data.Sqlite.SqliteException) { Log.Warn(ex, "purging removed mailboxes"); }
        }
        while (await WaitAsync(timer, ct));
    }

    private static async Task<bool> WaitAsync(PeriodicTimer timer, CancellationToken ct)
    {
        try { return await timer.WaitForNextTickAsync(ct); }
        catch (OperationCanceledException) { return false; }
    }

    public async Task StopAsync()
    {
        for (var i = _stops.Count - 1; i >= 0; i--)
        {
            try { await _stops[i](); }
            catch (Exception ex) { Log.Warn(ex, "error while stopping"); }
        }
        _stops.Clear();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        if (_floatingIps is not null) await _floatingIps.DisposeAsync();
        await Store.DisposeAsync();
        Certificate.Dispose();
    }

    private static NodeIdentity LoadIdentity(string dataDir, string name)
    {
        var path = Path.Combine(dataDir, "node.json");
        if (File.Exists(path))
            return JsonSerializer.Deserialize(File.ReadAllText(path), ControlJson.Default.NodeIdentity) ?? throw new InvalidDataException($"{path} is empty");
        var identity = new NodeIdentity(name, Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8)), DateTimeOffset.UtcNow.ToUnixTimeSeconds());
        File.WriteAllText(path, JsonSerializer.Serialize(identity, ControlJson.Default.NodeIdentity));
        return identity;
    }
}
