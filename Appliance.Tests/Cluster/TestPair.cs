using System.Net;
using System.Net.Sockets;
using Appliance.Cluster;
using Appliance.Hosting;
using MailKit.Net.Smtp;
using MimeKit;

namespace Appliance.Tests.Cluster;

/// <summary>
/// Two in-process nodes forming a pair over loopback: node1 heartbeats and replicates from
/// 127.0.0.1, node2 from 127.0.0.2 (one link), with free ports of their own. Fencing is the
/// real fence_dummy agent (it always confirms), so a stopped node's units are taken over.
/// Both nodes get the same directory entries (the provisioning journal is not here yet).
/// </summary>
public sealed class TestPair : IAsyncDisposable
{
    public static readonly string[] Mailboxes = ["alice", "bob"]; // alice on partition a, bob on b
    public string FenceStatusFile => _fenceStatus;
    private readonly string _fenceStatus = Path.Combine(Path.GetTempPath(), "appliance-fence-" + Guid.NewGuid().ToString("N")[..8]);
    private readonly int _heartbeatPort = FreePort();
    private readonly int _replicationPort = FreePort();
    private readonly Action<ClusterOptions, int>? _configure;
    private readonly Action<ApplianceOptions>? _configureNode;

    public TestNode[] Nodes { get; } = new TestNode[2];
    public TestNode Node1 => Nodes[0];
    public TestNode Node2 => Nodes[1];

    private TestPair(Action<ClusterOptions, int>? configure, Action<ApplianceOptions>? configureNode)
    {
        _configure = configure;
        _configureNode = configureNode;
    }

    public static async Task<TestPair> StartAsync(Action<ClusterOptions, int>? configure = null, Action<ApplianceOptions>? configureNode = null)
    {
        var pair = new TestPair(configure, configureNode);
        pair.Nodes[0] = await TestNode.StartAsync([], o => pair.Configure(o, 0));
        pair.Nodes[1] = await TestNode.StartAsync([], o => pair.Configure(o, 1));
        foreach (var node in pair.Nodes) pair.Provision(node);
        return pair;
    }

    /// <summary>A started pair with store-a active on node1 and store-b on node2.</summary>
    public static async Task<TestPair> StartPlacedAsync(Action<ApplianceOptions>? configureNode = null)
    {
        var pair = await StartAsync(configureNode: configureNode);
        await pair.WaitActiveAsync(pair.Node1, "store-a");
        await pair.WaitActiveAsync(pair.Node2, "store-b");
        return pair;
    }

    /// <summary>Waits until the unit's primary on <paramref name="node"/> reports its replica in sync.</summary>
    public Task WaitInSyncAsync(TestNode node, string unit) =>
        WaitForAsync(() => Cluster(node).Status().Any(l => l.StartsWith($"unit {unit}:", StringComparison.Ordinal) && l.Contains("in sync")), $"{unit} in sync");

    private void Provision(TestNode node)
    {
        foreach (var local in Mailboxes)
            if (node.Directory.FindMailbox($"{local}@{TestNode.Domain}") is null)
                node.Directory.AddMailbox($"{local}@{TestNode.Domain}", TestNode.Password, 0);
    }

    private void Configure(ApplianceOptions o, int index)
    {
        o.Node.Name = index == 0 ? "node1" : "node2";
        var c = o.Cluster;
        c.Peer = index == 0 ? "node2" : "node1";
        c.Secret = "test-secret-0123456789";
        c.Links = [new LinkOptions { Local = index == 0 ? "127.0.0.1" : "127.0.0.2", Peer = index == 0 ? "127.0.0.2" : "127.0.0.1" }];
        c.HeartbeatPort = _heartbeatPort;
        c.ReplicationPort = _replicationPort;
        c.HeartbeatIntervalMs = 100;
        c.DeadTimeMs = 2000;
        c.ReplicationTimeoutMs = 2000;
        c.FailbackDelaySeconds = 1;
        c.Units =
        [
            new UnitOptions { Name = "store-a", Preferred = "node1" },
            new UnitOptions { Name = "store-b", Preferred = "node2" },
        ];
        c.Fencing.Driver = "agent";
        c.Fencing.Agent = "fence_dummy";
        c.Fencing.AgentArgs["status_file"] = _fenceStatus;
        c.Fencing.DelaySeconds = 1;
        c.Fencing.RetrySeconds = 1;
        _configure?.Invoke(c, index);
        _configureNode?.Invoke(o);
    }

    public static ClusterManager Cluster(TestNode node) => node.Host.Cluster!;

    /// <summary>Waits until <paramref name="condition"/> holds (polling), failing with the pair's status after the timeout.</summary>
    public async Task WaitForAsync(Func<bool> condition, string what, int seconds = 20)
    {
        for (var i = 0; i < seconds * 20; i++)
        {
            if (condition()) return;
            await Task.Delay(50);
        }
        Assert.Fail($"timed out waiting for {what}:\n{StatusText()}");
    }

    public string StatusText() => string.Join('\n', Nodes.Where(n => n is not null).SelectMany(n => Cluster(n).Status()));

    public static bool Active(TestNode node, string unit) => Cluster(node).IsActiveHere(unit);

    public Task WaitActiveAsync(TestNode node, string unit) => WaitForAsync(() => Active(node, unit), $"{unit} active on {node.Host.Options.Node.Name}");

    /// <summary>Sends one message over SMTP to the node and returns once it answered 250.</summary>
    public static async Task SendAsync(TestNode node, string local, string subject, string? messageId = null)
    {
        using var client = new SmtpClient();
        await client.ConnectAsync(node.Smtp.Address.ToString(), node.Smtp.Port, MailKit.Security.SecureSocketOptions.None);
        var message = new MimeMessage();
        message.From.Add(MailboxAddress.Parse("sender@remote.test"));
        message.To.Add(MailboxAddress.Parse($"{local}@{TestNode.Domain}"));
        message.Subject = subject;
        if (messageId is not null) message.MessageId = messageId;
        message.Body = new TextPart("plain") { Text = "body of " + subject };
        await client.SendAsync(message);
        await client.DisconnectAsync(true);
    }

    public static async Task<string> DumpAsync(TestNode node, string partition) => await node.Store.Partition(partition).DumpAsync();

    private static int FreePort()
    {
        // A port free for TCP on both loopback addresses and for UDP (heartbeats use the same number).
        while (true)
        {
            using var tcp = new Socket(SocketType.Stream, ProtocolType.Tcp);
            tcp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var port = ((IPEndPoint)tcp.LocalEndPoint!).Port;
            try
            {
                using var udp1 = new Socket(SocketType.Dgram, ProtocolType.Udp);
                udp1.Bind(new IPEndPoint(IPAddress.Loopback, port));
                using var udp2 = new Socket(SocketType.Dgram, ProtocolType.Udp);
                udp2.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.2"), port));
                using var tcp2 = new Socket(SocketType.Stream, ProtocolType.Tcp);
                tcp2.Bind(new IPEndPoint(IPAddress.Parse("127.0.0.2"), port));
                return port;
            }
            catch (SocketException) { }
        }
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var node in Nodes.Where(n => n is not null)) await node.DisposeAsync();
        File.Delete(_fenceStatus);
    }
}
