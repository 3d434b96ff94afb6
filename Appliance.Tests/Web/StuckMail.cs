using System.Net;
using Appliance.Hosting;
using Appliance.Store;
using Appliance.Tests.Relay;
using Appliance.Tests.Smtp;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace Appliance.Tests.Web;

/// <summary>
/// A node with mail stuck in its outbound queue, for the queue's API, CLI and panel: remote.test's
/// MX (in a <see cref="TestDns"/>) is a <see cref="TestMx"/> that answers 451 to carol and takes
/// dave's copy, and the next attempt is an hour away, so a message alice sends to both stays
/// queued after its first attempt, for carol only.
/// </summary>
public sealed class StuckMail : IAsyncDisposable
{
    public const string Alice = "alice@" + TestNode.Domain;
    public const string Carol = "carol@remote.test";
    public const string Dave = "dave@remote.test";
    public const string Greylisted = "451 4.7.1 Greylisted, try again later";

    private StuckMail(TestDns dns, TestMx mx, TestNode node)
    {
        Dns = dns;
        Mx = mx;
        Node = node;
    }

    public TestDns Dns { get; }
    public TestMx Mx { get; }
    public TestNode Node { get; }

    public static async Task<StuckMail> StartAsync(Action<ApplianceOptions>? configure = null)
    {
        var dns = TestDns.Start();
        dns.Route("remote.test", "127.0.0.1");
        var mx = await TestMx.StartAsync(IPAddress.Loopback);
        mx.OnRcpt = address => address.Equals(Carol, StringComparison.OrdinalIgnoreCase) ? Greylisted : null;
        var node = await TestNode.StartAsync(["alice"], o =>
        {
            OutboundDeliveryTests.UseTestNetwork(o, dns, mx.Endpoint.Port);
            o.Relay.RetryMinSeconds = 3600;
            o.Relay.RetryMaxSeconds = 3600;
            configure?.Invoke(o);
        });
        return new StuckMail(dns, mx, node);
    }

    /// <summary>Alice sends to carol and dave through submission; returns the entry once its first attempt is recorded.</summary>
    public async Task<QueueEntry> SendAsync(string subject)
    {
        var message = Mailkit.Text(Alice, Carol, subject, "a message that will wait");
        message.To.Add(MailboxAddress.Parse(Dave));
        var before = (await Node.Host.Queue.ListQueueAsync()).Select(e => e.Id).ToHashSet();
        using (var client = new SmtpClient { ServerCertificateValidationCallback = (_, _, _, _) => true })
        {
            await client.ConnectAsync(Node.Submission.Address.ToString(), Node.Submission.Port, SecureSocketOptions.StartTls);
            await client.AuthenticateAsync(Alice, TestNode.Password);
            await client.SendAsync(message);
            await client.DisconnectAsync(true);
        }
        return await WaitAsync(e => !before.Contains(e.Id) && e.Attempts >= 1, $"the first attempt of '{subject}'");
    }

    /// <summary>The first queue entry that matches, waiting for it (a minute at most).</summary>
    public async Task<QueueEntry> WaitAsync(Func<QueueEntry, bool> match, string what)
    {
        for (var i = 0; i < 600; i++)
        {
            if ((await Node.Host.Queue.ListQueueAsync()).FirstOrDefault(match) is { } entry) return entry;
            await Task.Delay(100);
        }
        throw new TimeoutException("waited a minute for " + what);
    }

    public async ValueTask DisposeAsync()
    {
        await Node.DisposeAsync();
        await Mx.DisposeAsync();
        await Dns.DisposeAsync();
    }
}
