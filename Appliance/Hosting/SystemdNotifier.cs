using System.Net.Sockets;
using System.Text;

namespace Appliance.Hosting;

/// <summary>
/// systemd's service notification protocol (sd_notify(3)) for a unit of Type=notify: datagrams
/// of KEY=VALUE lines to the unix socket named by $NOTIFY_SOCKET ("@name" is in the abstract
/// namespace). READY=1 once every listener is up, WATCHDOG=1 while the node is healthy (every
/// half of $WATCHDOG_USEC, when the watchdog is meant for this process), STOPPING=1 when a
/// stop begins, STATUS= for `systemctl status`. Without $NOTIFY_SOCKET every call does nothing.
/// </summary>
public sealed class SystemdNotifier : IDisposable
{
    private readonly Socket? _socket;
    private readonly UnixDomainSocketEndPoint? _endpoint;

    private SystemdNotifier(string? path, TimeSpan? watchdog)
    {
        WatchdogInterval = watchdog;
        if (string.IsNullOrEmpty(path)) return;
        // "@name": abstract namespace, which the endpoint spells with a leading NUL.
        _endpoint = new UnixDomainSocketEndPoint(path[0] == '@' ? "\0" + path[1..] : path);
        _socket = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
    }

    /// <summary>From $NOTIFY_SOCKET, $WATCHDOG_USEC and $WATCHDOG_PID (the watchdog is ours when the pid is absent or ours).</summary>
    public static SystemdNotifier FromEnvironment()
    {
        var path = Environment.GetEnvironmentVariable("NOTIFY_SOCKET");
        TimeSpan? watchdog = null;
        if (long.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_USEC"), out var usec) && usec > 0
            && (!int.TryParse(Environment.GetEnvironmentVariable("WATCHDOG_PID"), out var pid) || pid == Environment.ProcessId))
            watchdog = TimeSpan.FromTicks(usec * 10 / 2); // µs → ticks, pinged twice per period
        return new SystemdNotifier(path, watchdog);
    }

    /// <summary>Tests: a notifier for a given socket path ("@name": abstract).</summary>
    internal static SystemdNotifier For(string path, TimeSpan? watchdog) => new(path, watchdog);

    /// <summary>How often to send WATCHDOG=1; null when systemd watches nothing.</summary>
    public TimeSpan? WatchdogInterval { get; }

    public bool Enabled => _socket is not null;

    /// <summary>Sends one notification (lines joined by \n); a missing listener is not an error.</summary>
    public void Notify(params string[] lines)
    {
        if (_socket is null) return;
        try
        {
            _socket.SendTo(Encoding.UTF8.GetBytes(string.Join('\n', lines)), _endpoint!);
        }
        catch (SocketException ex)
        {
            NLog.LogManager.GetLogger("host").Warn("systemd notification not delivered: {0}", ex.Message);
        }
    }

    /// <summary>
    /// Until <paramref name="stop"/>: WATCHDOG=1 every <see cref="WatchdogInterval"/> while
    /// <paramref name="healthy"/> says so (a stuck node stops pinging and systemd restarts it,
    /// so the peer takes its units over).
    /// </summary>
    public async Task WatchdogAsync(Func<string?> healthy, CancellationToken stop)
    {
        if (_socket is null || WatchdogInterval is not { } interval) return;
        using var timer = new PeriodicTimer(interval);
        try
        {
            do
            {
                if (healthy() is { } problem) NLog.LogManager.GetLogger("host").Error("watchdog not pinged: {0}", problem);
                else Notify("WATCHDOG=1");
            }
            while (await timer.WaitForNextTickAsync(stop));
        }
        catch (OperationCanceledException)
        {
        }
    }

    public void Dispose() => _socket?.Dispose();
}
