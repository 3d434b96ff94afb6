using System.Collections.Concurrent;
using System.Net;

namespace Appliance.Cluster;

/// <summary>
/// Adds and removes a unit's floating addresses on this node and keeps announcing the ones held.
/// </summary>
/// <remarks>
/// Implementation notes:
/// - Adding must succeed (a unit without its address is useless) so its failure throws; the
///   announcements only speed up the switch of neighbours' caches, so theirs are logged.
/// - Announcing: one burst of 5 (gratuitous ARP with iputils arping, or unsolicited NA) at once,
///   another 5 s later for switches that were still learning, then one burst every refresh
///   period while held (a neighbour that missed both, or a cache entry a peer re-learned
///   wrongly during a split, heals within that period).
/// - AddAsync returns once the address is present; the bursts run in the background so a
///   takeover does not wait ~4 s for the first burst before starting services.
/// - Disposing stops the announcements but leaves the addresses: removing them is a unit's
///   decision (RemoveAsync), not a side effect of shutting the manager down.
/// </remarks>
public sealed class FloatingIpManager : IAsyncDisposable
{
    private const int BurstCount = 5;
    private static readonly TimeSpan SecondBurst = TimeSpan.FromSeconds(5);
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("cluster");

    private readonly TimeSpan _refresh;
    private readonly ConcurrentDictionary<FloatingAddress, Announcer> _held = new();

    public FloatingIpManager(int refreshSeconds = 60)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(refreshSeconds, 1);
        _refresh = TimeSpan.FromSeconds(refreshSeconds);
    }

    public IReadOnlyCollection<FloatingAddress> Held => [.. _held.Keys];

    /// <summary>Adds the address (already present is fine), then announces it.</summary>
    /// <exception cref="InvalidOperationException">ip could not add it; the message carries ip's error line.</exception>
    public async Task AddAsync(FloatingAddress address, CancellationToken ct)
    {
        if (!await IsPresentAsync(address, ct))
        {
            // nodad: the address must answer at once, and its owner has just been fenced or
            // released it; IPv6 duplicate detection would only hold it tentative for a second.
            List<string> args = ["addr", "add", address.Cidr, "dev", address.Interface];
            if (address.IsIPv6) args.Add("nodad");
            var r = await SystemCommand.RunAsync("ip", args, ct);
            // "File exists": it appeared between the check and the add — what we wanted.
            if (r.ExitCode != 0 && !r.Stderr.Contains("File exists", StringComparison.Ordinal))
                throw new InvalidOperationException($"cannot add {address}: {r.ErrorLine}");
            Log.Info("added {0}", address);
        }
        var announcer = new Announcer(address, _refresh);
        if (_held.TryAdd(address, announcer)) announcer.Start();
    }

    /// <summary>Removes the address (absent is fine) and stops announcing it.</summary>
    /// <exception cref="InvalidOperationException">ip could not remove an address that is present.</exception>
    public async Task RemoveAsync(FloatingAddress address, CancellationToken ct)
    {
        if (_held.TryRemove(address, out var announcer)) await announcer.DisposeAsync();
        if (!await IsPresentAsync(address, ct)) return;
        var r = await SystemCommand.RunAsync("ip", ["addr", "del", address.Cidr, "dev", address.Interface], ct);
        if (r.ExitCode != 0 && await IsPresentAsync(address, ct))
            throw new InvalidOperationException($"cannot remove {address}: {r.ErrorLine}");
        Log.Info("removed {0}", address);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var address in _held.Keys)
            if (_held.TryRemove(address, out var announcer)) await announcer.DisposeAsync();
    }

    /// <summary>Whether `ip -o addr show dev IF` lists the address with its prefix.</summary>
    internal static async Task<bool> IsPresentAsync(FloatingAddress address, CancellationToken ct)
    {
        var r = await SystemCommand.RunAsync("ip", ["-o", "addr", "show", "dev", address.Interface], ct);
        if (r.ExitCode != 0)
            throw new InvalidOperationException($"cannot list addresses of {address.Interface}: {r.ErrorLine}");
        // Lines look like "2: eth0    inet 192.0.2.10/24 brd 192.0.2.255 scope global eth0 …".
        foreach (var line in r.Stdout.Split('\n'))
        {
            var words = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            for (var i = 0; i + 1 < words.Length; i++)
            {
                if (words[i] is not ("inet" or "inet6")) continue;
                var cidr = words[i + 1].Split('/');
                if (cidr.Length == 2 && IPAddress.TryParse(cidr[0], out var a) && a.Equals(address.Address)
                    && cidr[1] == address.PrefixLength.ToString(System.Globalization.CultureInfo.InvariantCulture))
                    return true;
            }
        }
        return false;
    }

    /// <summary>The background announcements of one held address.</summary>
    private sealed class Announcer(FloatingAddress address, TimeSpan refresh) : IAsyncDisposable
    {
        private readonly CancellationTokenSource _stop = new();
        private Task _loop = Task.CompletedTask;

        public void Start() => _loop = Task.Run(() => LoopAsync(_stop.Token));

        private async Task LoopAsync(CancellationToken ct)
        {
            try
            {
                await AnnounceAsync(ct);
                await Task.Delay(SecondBurst, ct);
                await AnnounceAsync(ct);
                while (true)
                {
                    await Task.Delay(refresh, ct);
                    await AnnounceAsync(ct);
                }
            }
            catch (OperationCanceledException) when (ct.IsCancellationRequested)
            {
            }
        }

        private async Task AnnounceAsync(CancellationToken ct)
        {
            try
            {
                if (address.IsIPv6)
                {
                    await NeighbourAdvertisement.SendAsync(address, BurstCount, ct);
                    return;
                }
                // -U: unsolicited ARP (sender and target = the address), so neighbours update their cache.
                var r = await SystemCommand.RunAsync("arping",
                    ["-q", "-U", "-c", BurstCount.ToString(System.Globalization.CultureInfo.InvariantCulture), "-I", address.Interface, address.Address.ToString()], ct);
                if (r.ExitCode != 0) Log.Warn("announcing {0}: arping: {1}", address, r.ErrorLine);
            }
            catch (Exception ex) when (ex is not OperationCanceledException || !ct.IsCancellationRequested)
            {
                Log.Warn("announcing {0}: {1}", address, ex.Message);
            }
        }

        public async ValueTask DisposeAsync()
        {
            await _stop.CancelAsync();
            await _loop;
            _stop.Dispose();
        }
    }
}
