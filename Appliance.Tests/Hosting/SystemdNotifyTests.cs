using System.Net.Sockets;
using System.Text;
using Appliance.Hosting;

namespace Appliance.Tests.Hosting;

/// <summary>
/// The sd_notify protocol as systemd's manager sees it: a datagram socket named by
/// NOTIFY_SOCKET receives READY=1 once the node listens, WATCHDOG=1 at half the watchdog
/// period while it is healthy, and STOPPING=1 when SIGTERM starts the stop.
/// </summary>
public sealed class SystemdNotifyTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), "appliance-notify-" + Guid.NewGuid().ToString("N")[..8]);

    public SystemdNotifyTests() => System.IO.Directory.CreateDirectory(_dir);

    public void Dispose()
    {
        try { System.IO.Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private static Socket Listen(string name)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        socket.Bind(new UnixDomainSocketEndPoint(name));
        return socket;
    }

    private static async Task<string> ReceiveAsync(Socket socket, int seconds = 30)
    {
        var buffer = new byte[4096];
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(seconds));
        var n = await socket.ReceiveAsync(buffer, SocketFlags.None, timeout.Token);
        return Encoding.UTF8.GetString(buffer, 0, n);
    }

    [Fact]
    public async Task TheRunningNode_SaysReady_PingsTheWatchdog_AndSaysStopping()
    {
        var path = Path.Combine(_dir, "notify.sock");
        using var manager = Listen(path);
        var env = ApplianceProcess.DefaultEnvironment();
        env["NOTIFY_SOCKET"] = path;
        env["WATCHDOG_USEC"] = "400000";
        await using var node = await ApplianceProcess.RunAsync(["--data", Path.Combine(_dir, "data")], env);

        var ready = await ReceiveAsync(manager);
        Assert.StartsWith("READY=1\n", ready);
        Assert.Contains("STATUS=node ", ready);
        Assert.Equal("WATCHDOG=1", await ReceiveAsync(manager));
        Assert.Equal("WATCHDOG=1", await ReceiveAsync(manager));

        var stopping = node.SignalAndWaitAsync("TERM");
        string message;
        do message = await ReceiveAsync(manager);
        while (message == "WATCHDOG=1");
        Assert.StartsWith("STOPPING=1", message);
        Assert.Equal(0, await stopping);
    }

    [Fact]
    public async Task AnAbstractSocketName_IsReached_AndNoSocketMeansNothingIsSent()
    {
        var name = "appliance-test-" + Guid.NewGuid().ToString("N")[..8];
        using var manager = Listen("\0" + name);
        using (var notifier = SystemdNotifier.For("@" + name, watchdog: null))
        {
            Assert.True(notifier.Enabled);
            notifier.Notify("STATUS=hello", "READY=1");
            Assert.Equal("STATUS=hello\nREADY=1", await ReceiveAsync(manager, 5));
            // No watchdog asked for: the loop returns at once.
            await notifier.WatchdogAsync(() => null, CancellationToken.None);
        }

        using var none = SystemdNotifier.For("", TimeSpan.FromMilliseconds(10));
        Assert.False(none.Enabled);
        none.Notify("READY=1");
        await none.WatchdogAsync(() => null, CancellationToken.None);
    }

    [Fact]
    public async Task AnUnhealthyNode_StopsPingingTheWatchdog()
    {
        var path = Path.Combine(_dir, "watchdog.sock");
        using var manager = Listen(path);
        using var notifier = SystemdNotifier.For(path, TimeSpan.FromMilliseconds(50));
        var healthy = true;
        using var stop = new CancellationTokenSource();
        var loop = notifier.WatchdogAsync(() => healthy ? null : "stuck", stop.Token);
        Assert.Equal("WATCHDOG=1", await ReceiveAsync(manager, 5));
        healthy = false;
        await Task.Delay(200);
        while (manager.Available > 0) await ReceiveAsync(manager, 1); // pings sent before the change
        await Task.Delay(300);
        Assert.Equal(0, manager.Available);
        healthy = true;
        Assert.Equal("WATCHDOG=1", await ReceiveAsync(manager, 5));
        await stop.CancelAsync();
        await loop;
    }
}
