using System.Reflection;
using System.Runtime.InteropServices;
using Appliance.Cli;
using Appliance.Hosting;

// Composition root and command-line dispatch (DESIGN.md §5).
var (command, rest, configFile, dataDir) = ParseGlobal(args);
switch (command)
{
    case "run":
        return await RunAsync(configFile, dataDir);
    case "witness":
        return await WitnessAsync(rest, configFile, dataDir);
    case "version":
        Console.WriteLine($"appliance {typeof(ApplianceHost).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion ?? "unknown"}");
        return 0;
    case "help" or "--help" or "-h":
        PrintUsage(Console.Out);
        return 0;
    case "check":
        {
            // A Nagios plugin: whatever goes wrong, one status line and an exit code of 0–3.
            ApplianceOptions options;
            try { options = ConfigLoader.Load(configFile, dataDir); }
            catch (Exception ex) when (ex is FileNotFoundException or InvalidDataException or FormatException) { Console.WriteLine($"APPLIANCE UNKNOWN - {ex.Message}"); return 3; }
            return await ControlClient.CheckAsync(Path.Combine(Path.GetFullPath(options.Node.DataDirectory), "control.sock"), rest, Console.Out);
        }
    case "domain" or "mailbox" or "alias" or "token" or "import" or "cluster" or "admin" or "queue":
        {
            ApplianceOptions options;
            try { options = ConfigLoader.Load(configFile, dataDir); }
            catch (Exception ex) when (ex is FileNotFoundException or InvalidDataException or FormatException) { Console.Error.WriteLine(ex.Message); return 2; }
            if (ApiTarget(ref rest) is { } api)
            {
                if (api.Problem is not null) { Console.Error.WriteLine(api.Problem); return 2; }
                return await ControlClient.RunOverApiAsync(api.Url!, api.Token!, api.Insecure, [command, .. rest], Console.In, Console.Out, Console.Error);
            }
            var socket = Path.Combine(Path.GetFullPath(options.Node.DataDirectory), "control.sock");
            return await ControlClient.RunAsync(socket, [command, .. rest], Console.In, Console.Out, Console.Error);
        }
    default:
        Console.Error.WriteLine($"unknown command '{command}'");
        PrintUsage(Console.Error);
        return 2;
}

// --url URL [--token TOKEN] [--insecure]: a management command against a node's API instead of
// the local control socket; the token may come from APPLIANCE_TOKEN instead (kept out of ps).
static (Uri? Url, string? Token, bool Insecure, string? Problem)? ApiTarget(ref string[] args)
{
    var rest = args.ToList();
    string? Take(string name)
    {
        var i = rest.IndexOf(name);
        if (i < 0 || i + 1 >= rest.Count) return null;
        var v = rest[i + 1];
        rest.RemoveRange(i, 2);
        return v;
    }
    var url = Take("--url");
    if (url is null) return null;
    var token = Take("--token") ?? Environment.GetEnvironmentVariable("APPLIANCE_TOKEN");
    var insecure = rest.Remove("--insecure");
    args = [.. rest];
    if (!Uri.TryCreate(url.EndsWith('/') ? url : url + "/", UriKind.Absolute, out var uri) || (uri.Scheme != "https" && uri.Scheme != "http"))
        return (null, null, false, $"--url: '{url}' is not an http(s) URL (e.g. https://node1:8443/)");
    if (string.IsNullOrEmpty(token)) return (null, null, false, "--url needs an API token: --token TOKEN or APPLIANCE_TOKEN (appliance token create)");
    return (uri, token, insecure, null);
}

static (string Command, string[] Others, string? Config, string? Data) ParseGlobal(string[] args)
{
    string? config = null, data = null;
    var rest = new List<string>();
    for (var i = 0; i < args.Length; i++)
    {
        if (args[i] == "--config" && i + 1 < args.Length) config = args[++i];
        else if (args[i] == "--data" && i + 1 < args.Length) data = args[++i];
        else rest.Add(args[i]);
    }
    var command = rest.Count > 0 ? rest[0] : "run";
    return (command, rest.Skip(1).ToArray(), config, data);
}

// appliance witness --listen ADDR:PORT [--lease SECONDS]: the tie-breaker of a pair without a
// fencing device, on a third machine; it needs the pair's Cluster:Secret (from --config or
// APPLIANCE__Cluster__Secret).
static async Task<int> WitnessAsync(string[] args, string? configFile, string? dataDir)
{
    string? listen = null;
    var lease = 10;
    for (var i = 0; i < args.Length; i++)
    {
        if (args[i] == "--listen" && i + 1 < args.Length) listen = args[++i];
        else if (args[i] == "--lease" && i + 1 < args.Length && int.TryParse(args[++i], out var l) && l >= 5) lease = l;
        else { Console.Error.WriteLine($"witness: unexpected argument '{args[i]}' (usage: appliance witness --listen ADDR:PORT [--lease SECONDS>=5])"); return 2; }
    }
    if (listen is null || !System.Net.IPEndPoint.TryParse(listen, out var endpoint) || endpoint.Port == 0)
    {
        Console.Error.WriteLine("witness: --listen ADDR:PORT is required (e.g. 0.0.0.0:7792)");
        return 2;
    }
    ApplianceOptions options;
    try { options = ConfigLoader.Load(configFile, dataDir); }
    catch (Exception ex) when (ex is FileNotFoundException or InvalidDataException or FormatException) { Console.Error.WriteLine(ex.Message); return 2; }
    Logging.Configure(options.Node.DataDirectory, console: true);
    Appliance.Cluster.WitnessServer witness;
    try { witness = new Appliance.Cluster.WitnessServer(endpoint, options.Cluster.Secret, TimeSpan.FromSeconds(lease)); }
    catch (Exception ex) when (ex is InvalidOperationException or System.Net.Sockets.SocketException) { Console.Error.WriteLine($"witness: {ex.Message}"); return 1; }
    await using (witness)
    {
        var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.TrySetResult(); });
        using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult(); });
        await stop.Task;
    }
    NLog.LogManager.Shutdown();
    return 0;
}

static async Task<int> RunAsync(string? configFile, string? dataDir)
{
    ApplianceOptions options;
    try { options = ConfigLoader.Load(configFile, dataDir); }
    catch (Exception ex) when (ex is FileNotFoundException or InvalidDataException or FormatException or InvalidOperationException)
    {
        Console.Error.WriteLine($"configuration: {ex.Message}");
        return 2;
    }
    Logging.Configure(options.Node.DataDirectory, console: true);
    ApplianceHost created;
    try { created = ApplianceHost.Create(options); }
    catch (Exception ex) when (ex is InvalidOperationException or FormatException)
    {
        // A pair section that cannot work (no secret, no links, a bad address, a fencing
        // driver without its device) stops the start with one line, before anything listens.
        Console.Error.WriteLine($"configuration: {ex.Message}");
        return 2;
    }
    await using var host = created;
    if (host.FirstAdminPassword is { } password)
    {
        Console.WriteLine("==================================================================");
        Console.WriteLine($" First start: admin credential (shown once)  user: admin  password: {password}");
        Console.WriteLine("==================================================================");
    }
    var stop = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
    using var sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stop.TrySetResult(); });
    using var sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stop.TrySetResult(); });
    // Under systemd (Type=notify, firmware/systemd/appliance.service): ready once listening,
    // watchdog pings while the node's loop runs, "stopping" for the handover at a stop.
    using var systemd = SystemdNotifier.FromEnvironment();
    try
    {
        await host.StartAsync(CancellationToken.None);
    }
    catch (System.Net.Sockets.SocketException ex)
    {
        NLog.LogManager.GetLogger("host").Fatal("cannot listen: {0}", ex.Message);
        return 1;
    }
    systemd.Notify("READY=1", $"STATUS=node {options.Node.Name} serving");
    using var watchdogStop = new CancellationTokenSource();
    var watchdog = systemd.WatchdogAsync(() => host.Cluster?.Health(), watchdogStop.Token);
    await stop.Task;
    NLog.LogManager.GetLogger("host").Info("stopping");
    systemd.Notify("STOPPING=1", "STATUS=stopping: handing units over");
    await host.StopAsync();
    await watchdogStop.CancelAsync();
    await watchdog;
    NLog.LogManager.GetLogger("host").Info("stopped");
    NLog.LogManager.Shutdown();
    return 0;
}

static void PrintUsage(TextWriter w) => w.WriteLine("""
    usage: appliance [run] [--config FILE] [--data DIR]
           appliance domain add|list|remove DOMAIN | quota DOMAIN SIZE   (SIZE for every mailbox of the domain)
           appliance mailbox add ADDRESS --password-stdin [--quota SIZE]
           appliance mailbox list [DOMAIN] | set ADDRESS [--quota SIZE] [--enable|--disable] [--password-stdin]
           appliance mailbox remove ADDRESS [--purge]   (mail kept Provisioning:DeletedRetentionDays unless --purge) | purge ADDRESS
           appliance alias add ADDRESS|@DOMAIN TARGET… | list [DOMAIN] | remove ADDRESS [TARGET]
           appliance import CSVFILE            (address,password[,quota] per line)
           appliance token create [--name N] [--scope admin|read|provision]
           appliance admin password NAME --password-stdin     (sets, or adds, an admin of the panel)
           appliance queue list | show ID | retry ID|--all | delete ID | hold ID | release ID   (the outbound queue)
           appliance cluster status | switchover UNIT | standby NODE | online NODE
           appliance check [--service NAME]     (a Nagios plugin: one status line, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN)
           appliance witness --listen ADDR:PORT [--lease SECONDS]   (tie-breaker for a pair without fencing)
           appliance version
    management commands take the same --data/--config as run and talk to the running node;
    or, from anywhere, to a node's API: --url https://NODE:8443/ --token TOKEN (or APPLIANCE_TOKEN) [--insecure]
    """);
