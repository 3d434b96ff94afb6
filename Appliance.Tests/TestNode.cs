using System.Net;
using Appliance.Directory;
using Appliance.Hosting;
using Appliance.Store;

namespace Appliance.Tests;

/// <summary>
/// An in-process node for tests: a temp data directory, every listener on an ephemeral port
/// (0) or disabled (-1), a domain and a few mailboxes. Restart keeps the data directory; the
/// directory is deleted when the node is disposed.
/// </summary>
public sealed class TestNode : IAsyncDisposable
{
    public const string Domain = "example.test";
    public const string Password = "correct horse battery";

    private readonly Action<ApplianceOptions>? _configure;

    public string DataDirectory { get; }
    public ApplianceHost Host { get; private set; } = null!;
    public IPEndPoint Smtp => Host.Endpoints["smtp"];
    public IPEndPoint Imap => Host.Endpoints["imap"];
    public IPEndPoint Imaps => Host.Endpoints["imaps"];
    public IPEndPoint Submission => Host.Endpoints["submission"];
    public IPEndPoint Smtps => Host.Endpoints["smtps"];
    public IPEndPoint ManageSieve => Host.Endpoints["managesieve"];
    public MailDirectory Directory => Host.Directory;
    public MailStore Store => Host.Store;

    static TestNode()
    {
        // APPLIANCE_TEST_LOG=1 shows the nodes' log on the console (debugging a failing test).
        if (Environment.GetEnvironmentVariable("APPLIANCE_TEST_LOG") == "1")
            Logging.Configure(Path.Combine(Path.GetTempPath(), "appliance-test-logs"), console: true);
    }

    private TestNode(string dataDirectory, Action<ApplianceOptions>? configure)
    {
        DataDirectory = dataDirectory;
        _configure = configure;
    }

    /// <summary>Starts a node with <see cref="Domain"/> and a mailbox for each local part given.</summary>
    public static async Task<TestNode> StartAsync(string[]? mailboxes = null, Action<ApplianceOptions>? configure = null)
    {
        var dir = Path.Combine(Path.GetTempPath(), "appliance-test-" + Guid.NewGuid().ToString("N")[..12]);
        var node = new TestNode(dir, configure);
        await node.StartHostAsync();
        node.Directory.AddDomain(Domain);
        foreach (var local in mailboxes ?? ["alice"])
            await node.Host.Provisioner.AddMailboxAsync($"{local}@{Domain}", Password, null, null);
        return node;
    }

    public ApplianceOptions Options()
    {
        var o = new ApplianceOptions();
        o.Node.DataDirectory = DataDirectory;
        o.Node.Name = "test";
        o.Node.Hostname = "mx.test";
        o.Listen.Address = "127.0.0.1";
        o.Listen.Smtp = 0;
        o.Listen.Pop3 = 0;
        o.Listen.Pop3s = 0;
        o.Listen.Submission = -1;
        o.Listen.Smtps = -1;
        o.Listen.Imap = 0;
        o.Listen.Imaps = 0;
        o.Listen.ManageSieve = 0;
        o.Listen.Http = -1;
        o.Listen.Https = -1;
        o.Security.LoginFailuresBeforeThrottle = 1000;
        // The collector's probes would take connection slots and write log lines in tests about
        // something else; the monitoring tests turn it on.
        o.Monitoring.IntervalSeconds = 0;
        _configure?.Invoke(o);
        return o;
    }

    private async Task StartHostAsync()
    {
        Host = ApplianceHost.Create(Options());
        await Host.StartAsync(CancellationToken.None);
    }

    /// <summary>Stops the node and starts it again on the same data directory (running <paramref name="whileStopped"/> in between).</summary>
    public async Task RestartAsync(Action? whileStopped = null)
    {
        await Host.DisposeAsync();
        whileStopped?.Invoke();
        await StartHostAsync();
    }

    private bool _stopped;

    /// <summary>Stops the node, keeping its data directory (<see cref="StartAgainAsync"/> brings it back).</summary>
    public async Task StopAsync()
    {
        if (_stopped) return;
        _stopped = true;
        await Host.DisposeAsync();
    }

    /// <summary>Stops the node as a crash would look to its pair peer: no handover, no goodbye.</summary>
    public async Task CrashAsync()
    {
        Host.Cluster?.SimulateCrashOnStop();
        await StopAsync();
    }

    public async Task StartAgainAsync()
    {
        await StartHostAsync();
        _stopped = false;
    }

    public MailUser User(string local) =>
        (Directory.FindMailbox($"{local}@{Domain}") ?? throw new InvalidOperationException($"no mailbox {local}")).ToUser();

    public Task<IReadOnlyList<StoredMessage>> InboxAsync(string local) =>
        Store.ListAsync(User(local), MailStore.Inbox, CancellationToken.None);

    /// <summary>The stored bytes of every message in a mailbox's INBOX, in UID order.</summary>
    public Task<List<byte[]>> InboxBytesAsync(string local) => FolderBytesAsync(local, MailStore.Inbox);

    /// <summary>Every message of a mailbox's folder as text (UTF-8), in UID order.</summary>
    public async Task<List<string>> FolderTextsAsync(string local, string folder) =>
        [.. (await FolderBytesAsync(local, folder)).Select(System.Text.Encoding.UTF8.GetString)];

    /// <summary>The stored bytes of every message in a mailbox's folder, in UID order.</summary>
    public async Task<List<byte[]>> FolderBytesAsync(string local, string folder)
    {
        var user = User(local);
        var result = new List<byte[]>();
        foreach (var m in await Store.ListAsync(user, folder, CancellationToken.None))
        {
            await using var s = Store.OpenMessage(user, m);
            using var ms = new MemoryStream();
            await s.CopyToAsync(ms);
            result.Add(ms.ToArray());
        }
        return result;
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
        try { System.IO.Directory.Delete(DataDirectory, recursive: true); }
        catch (IOException) { }
    }
}
