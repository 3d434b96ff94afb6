using System.Collections.Concurrent;
using System.Net;

namespace Appliance.Directory;

/// <summary>
/// Counts failed logins per remote address over a sliding window. Past the limit an address is
/// answered "throttled" (after a delay) without its password even being checked, until the
/// window passes; a success clears its count.
/// </summary>
public sealed class LoginThrottle(int limit, TimeSpan window)
{
    private readonly ConcurrentDictionary<IPAddress, (int Failures, DateTime Since)> _failures = new();

    public bool IsThrottled(IPAddress remote)
    {
        if (!_failures.TryGetValue(remote, out var entry)) return false;
        if (DateTime.UtcNow - entry.Since > window)
        {
            _failures.TryRemove(remote, out _);
            return false;
        }
        return entry.Failures >= limit;
    }

    /// <summary>Failed logins counted since the node started, throttled or not (the monitoring's figure).</summary>
    public long FailuresTotal => Interlocked.Read(ref _failuresTotal);
    private long _failuresTotal;

    public void Failed(IPAddress remote)
    {
        Interlocked.Increment(ref _failuresTotal);
        _failures.AddOrUpdate(remote, _ => (1, DateTime.UtcNow),
            (_, e) => DateTime.UtcNow - e.Since > window ? (1, DateTime.UtcNow) : (e.Failures + 1, e.Since));
    }

    public void Succeeded(IPAddress remote) => _failures.TryRemove(remote, out _);
}
