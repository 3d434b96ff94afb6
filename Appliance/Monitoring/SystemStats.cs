using System.Globalization;
using System.Runtime.InteropServices;

namespace Appliance.Monitoring;

/// <summary>
/// The Linux half of the node collector: CPU, load, memory, file systems, disk I/O and traffic
/// per interface, read from /proc and statvfs(3) every collection interval. Counters become
/// per-second rates between two reads, so the first read yields gauges only and a counter that
/// went backwards (device re-added, interface recreated, 32-bit wrap) yields no rate that time.
/// </summary>
/// <remarks>
/// Each file is parsed by a pure function that skips what it does not understand: a kernel with
/// an extra column or an odd line must cost one series, never the whole collection. Not
/// thread-safe: one collector loop owns an instance.
/// </remarks>
public sealed partial class SystemStats
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("monitoring");

    // Not disks: kernel interfaces, and read-only images (squashfs, erofs) that are always 100 % full.
    private static readonly HashSet<string> VirtualFileSystems =
    [
        "proc", "sysfs", "tmpfs", "devtmpfs", "devpts", "mqueue", "securityfs", "debugfs", "tracefs",
        "pstore", "bpf", "autofs", "fusectl", "configfs", "nsfs", "hugetlbfs", "binfmt_misc", "squashfs",
        "erofs", "cgroup", "cgroup2", "efivarfs", "rpc_pipefs", "nfsd", "ramfs", "rootfs", "selinuxfs",
    ];

    private readonly string _procRoot;
    private readonly string _sysRoot;
    private readonly string[] _watchedPaths;

    private DateTimeOffset? _lastTime;
    private CpuTimes? _lastCpu;
    private Dictionary<string, DiskCounters> _lastDisks = [];
    private Dictionary<string, NetCounters> _lastNet = [];

    /// <param name="procRoot">Lets tests point at a fixture directory; its sibling "sys" then stands for /sys.</param>
    /// <param name="watchedPaths">Directories whose file systems are always reported (the data directory), even tmpfs.</param>
    public SystemStats(string procRoot = "/proc", IReadOnlyList<string>? watchedPaths = null)
    {
        _procRoot = procRoot;
        _sysRoot = procRoot == "/proc" ? "/sys" : Path.Combine(Path.GetDirectoryName(Path.GetFullPath(procRoot).TrimEnd('/')) ?? "/", "sys");
        _watchedPaths = [.. (watchedPaths ?? []).Select(Path.GetFullPath)];
    }

    /// <summary>Gauges now, and per-second rates since the previous call.</summary>
    public IReadOnlyList<MetricValue> Read(DateTimeOffset now)
    {
        var values = new List<MetricValue>();
        var seconds = _lastTime is { } last ? (now - last).TotalSeconds : 0;

        var cpu = ReadText("stat") is { } stat ? ParseStat(stat) : null;
        if (cpu is { } c && _lastCpu is { } p && seconds > 0)
        {
            var (total, idle, iowait) = (c.Total - p.Total, c.Idle - p.Idle, c.IoWait - p.IoWait);
            if (total > 0 && idle >= 0 && iowait >= 0 && total >= idle + iowait)
            {
                values.Add(new("cpu_percent", (total - idle - iowait) / total * 100));
                values.Add(new("cpu_iowait_percent", iowait / total * 100));
            }
        }

        if (ReadText("loadavg") is { } loadavg && ParseLoadavg(loadavg) is { } load)
        {
            values.Add(new("load1", load.Load1));
            values.Add(new("load5", load.Load5));
            values.Add(new("load15", load.Load15));
        }

        if (ReadText("meminfo") is { } meminfo) AddMemory(values, ParseMeminfo(meminfo));
        if (ReadText("self/mounts") is { } mounts) AddFileSystems(values, ParseMounts(mounts));

        var disks = ReadText("diskstats") is { } diskstats
            ? ParseDiskstats(diskstats).Where(d => IsWholeDisk(d.Key)).ToDictionary()
            : [];
        var net = ReadText("net/dev") is { } netDev
            ? ParseNetDev(netDev).Where(n => n.Key != "lo").ToDictionary()
            : [];
        if (seconds > 0)
        {
            foreach (var (dev, d) in disks)
                if (_lastDisks.TryGetValue(dev, out var before))
                {
                    AddRate(values, "disk_read_bytes_per_second", "dev", dev, d.ReadBytes, before.ReadBytes, seconds);
                    AddRate(values, "disk_write_bytes_per_second", "dev", dev, d.WriteBytes, before.WriteBytes, seconds);
                    // Milliseconds with I/O in flight per second of wall time; coarse accounting can overshoot 100.
                    if (d.BusyMs >= before.BusyMs)
                        values.Add(new(MetricValue.Series("disk_busy_percent", ("dev", dev)), Math.Min(100, (d.BusyMs - before.BusyMs) / (seconds * 1000) * 100)));
                }
            foreach (var (name, n) in net)
                if (_lastNet.TryGetValue(name, out var before))
                {
                    AddRate(values, "net_receive_bytes_per_second", "if", name, n.ReceiveBytes, before.ReceiveBytes, seconds);
                    AddRate(values, "net_transmit_bytes_per_second", "if", name, n.TransmitBytes, before.TransmitBytes, seconds);
                    AddRate(values, "net_receive_errors_per_second", "if", name, n.ReceiveErrors, before.ReceiveErrors, seconds);
                    AddRate(values, "net_transmit_errors_per_second", "if", name, n.TransmitErrors, before.TransmitErrors, seconds);
                }
        }

        (_lastTime, _lastCpu, _lastDisks, _lastNet) = (now, cpu, disks, net);
        return values;
    }

    private static void AddRate(List<MetricValue> values, string family, string label, string key, double now, double before, double seconds)
    {
        if (now >= before) values.Add(new(MetricValue.Series(family, (label, key)), (now - before) / seconds));
    }

    private static void AddMemory(List<MetricValue> values, IReadOnlyDictionary<string, double> m)
    {
        if (m.TryGetValue("MemTotal", out var total) && m.TryGetValue("MemAvailable", out var available))
        {
            values.Add(new("memory_total_bytes", total));
            values.Add(new("memory_available_bytes", available));
            if (total > 0) values.Add(new("memory_used_percent", (total - available) / total * 100));
        }
        if (m.TryGetValue("SwapTotal", out var swapTotal) && m.TryGetValue("SwapFree", out var swapFree))
            values.Add(new("swap_used_bytes", swapTotal - swapFree));
    }

    private void AddFileSystems(List<MetricValue> values, IReadOnlyList<(string Point, string Type)> mounts)
    {
        var byPoint = new Dictionary<string, string>();
        foreach (var (point, type) in mounts) byPoint[point] = type;
        // A file mounted on a file (a container's /etc/hosts) is a bind mount, not a file system of its own.
        var wanted = byPoint.Where(m => !VirtualFileSystems.Contains(m.Value) && !File.Exists(m.Key)).Select(m => m.Key).ToList();
        foreach (var path in _watchedPaths)
            if (byPoint.Keys.Where(point => IsUnder(path, point)).MaxBy(point => point.Length) is { } holder && !wanted.Contains(holder))
                wanted.Add(holder);

        foreach (var point in wanted)
        {
            if (statvfs(point, out var s) != 0)
            {
                // Unreadable or unmounted since /proc was read: a gap in one series, not an error.
                Log.Debug("statvfs {0} failed (errno {1})", point, Marshal.GetLastPInvokeError());
                continue;
            }
            var fs = ("fs", point);
            var used = (double)(s.Blocks - s.BlocksFree) * s.FragmentSize;
            var available = (double)s.BlocksAvailable * s.FragmentSize;
            values.Add(new(MetricValue.Series("disk_total_bytes", fs), (double)s.Blocks * s.FragmentSize));
            values.Add(new(MetricValue.Series("disk_used_bytes", fs), used));
            // As df(1) counts it: blocks reserved for root are not available to the mail store,
            // so 100 % means the service can no longer write.
            if (used + available > 0) values.Add(new(MetricValue.Series("disk_used_percent", fs), used / (used + available) * 100));
            // btrfs and vfat have no inode table and report 0 inodes.
            if (s.Files > 0) values.Add(new(MetricValue.Series("disk_inodes_used_percent", fs), (double)(s.Files - s.FilesFree) / s.Files * 100));
        }
    }

    private static bool IsUnder(string path, string mountPoint) =>
        mountPoint == "/" || path == mountPoint || path.StartsWith(mountPoint.TrimEnd('/') + "/", StringComparison.Ordinal);

    // Whole disks only: a partition's traffic is already in its disk's, and loop/ram/zram are memory or files.
    private bool IsWholeDisk(string name) =>
        !name.StartsWith("loop", StringComparison.Ordinal) && !name.StartsWith("ram", StringComparison.Ordinal) && !name.StartsWith("zram", StringComparison.Ordinal)
        && !File.Exists(Path.Combine(_sysRoot, "class", "block", name.Replace('/', '!'), "partition"));

    private string? ReadText(string relative)
    {
        try { return File.ReadAllText(Path.Combine(_procRoot, relative)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return null; }
    }

    internal readonly record struct CpuTimes(double Total, double Idle, double IoWait);

    internal readonly record struct DiskCounters(double ReadBytes, double WriteBytes, double BusyMs);

    internal readonly record struct NetCounters(double ReceiveBytes, double TransmitBytes, double ReceiveErrors, double TransmitErrors);

    /// <summary>The "cpu " line of /proc/stat, in clock ticks summed over all CPUs.</summary>
    internal static CpuTimes? ParseStat(string text)
    {
        foreach (var line in text.Split('\n'))
        {
            if (!line.StartsWith("cpu ", StringComparison.Ordinal)) continue;
            // user nice system idle iowait irq softirq steal: guest and guest_nice that follow are
            // already counted in user and nice.
            var f = Numbers(line, 3);
            if (f is null || f.Length < 8) return null;
            return new(f[..8].Sum(), f[3], f[4]);
        }
        return null;
    }

    internal static (double Load1, double Load5, double Load15)? ParseLoadavg(string text) =>
        Numbers(text.Split(' ', 4, StringSplitOptions.RemoveEmptyEntries).Take(3)) is [var a, var b, var c] ? (a, b, c) : null;

    /// <summary>/proc/meminfo as name → value, kB already turned into bytes.</summary>
    internal static IReadOnlyDictionary<string, double> ParseMeminfo(string text)
    {
        var values = new Dictionary<string, double>();
        foreach (var line in text.Split('\n'))
        {
            var colon = line.IndexOf(':');
            if (colon <= 0) continue;
            var rest = line[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (rest.Length is 0 or > 2 || !TryNumber(rest[0], out var value)) continue;
            values[line[..colon]] = rest is [_, "kB"] ? value * 1024 : value;
        }
        return values;
    }

    /// <summary>/proc/diskstats per device: bytes read and written (sectors are always 512 bytes here), and ms with I/O in flight.</summary>
    internal static IReadOnlyDictionary<string, DiskCounters> ParseDiskstats(string text)
    {
        var disks = new Dictionary<string, DiskCounters>();
        foreach (var line in text.Split('\n'))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            // major minor name, then reads, merged, sectors read, ms, writes, merged, sectors written, ms, in flight, io ticks…
            if (f.Length < 13 || Numbers(f.Skip(3).Take(10)) is not { } n) continue;
            disks[f[2]] = new(n[2] * 512, n[6] * 512, n[9]);
        }
        return disks;
    }

    /// <summary>/proc/net/dev per interface: bytes and errors received and transmitted.</summary>
    internal static IReadOnlyDictionary<string, NetCounters> ParseNetDev(string text)
    {
        var interfaces = new Dictionary<string, NetCounters>();
        foreach (var line in text.Split('\n'))
        {
            // The header lines have '|' and no "name:"; a busy counter may touch the colon ("eth0:123").
            var colon = line.IndexOf(':');
            if (colon <= 0 || line.Contains('|')) continue;
            var name = line[..colon].Trim();
            if (name.Length == 0 || Numbers(line, colon + 1) is not { Length: >= 16 } n) continue;
            interfaces[name] = new(n[0], n[8], n[2], n[10]);
        }
        return interfaces;
    }

    /// <summary>/proc/self/mounts as (mount point, fs type), in mount order, octal escapes (\040 for a space) decoded.</summary>
    internal static IReadOnlyList<(string Point, string Type)> ParseMounts(string text)
    {
        var mounts = new List<(string, string)>();
        foreach (var line in text.Split('\n'))
        {
            var f = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (f.Length >= 3 && f[1].StartsWith('/')) mounts.Add((Unescape(f[1]), f[2]));
        }
        return mounts;
    }

    private static string Unescape(string field)
    {
        if (!field.Contains('\\')) return field;
        var b = new System.Text.StringBuilder(field.Length);
        for (var i = 0; i < field.Length; i++)
        {
            if (field[i] == '\\' && i + 3 < field.Length && IsOctal(field[i + 1]) && IsOctal(field[i + 2]) && IsOctal(field[i + 3]))
            {
                b.Append((char)((field[i + 1] - '0') * 64 + (field[i + 2] - '0') * 8 + (field[i + 3] - '0')));
                i += 3;
            }
            else b.Append(field[i]);
        }
        return b.ToString();

        static bool IsOctal(char c) => c is >= '0' and <= '7';
    }

    private static double[]? Numbers(string line, int start) =>
        Numbers(line[start..].Split(' ', StringSplitOptions.RemoveEmptyEntries));

    /// <summary>All fields as numbers, or null if any is not one: a half-understood line is worse than none.</summary>
    private static double[]? Numbers(IEnumerable<string> fields)
    {
        var numbers = new List<double>();
        foreach (var field in fields)
        {
            if (!TryNumber(field, out var n)) return null;
            numbers.Add(n);
        }
        return [.. numbers];
    }

    private static bool TryNumber(string s, out double value) =>
        double.TryParse(s, NumberStyles.Float, CultureInfo.InvariantCulture, out value);

    // glibc's struct statvfs on 64-bit Linux (x86-64, arm64): eleven unsigned longs, then six spare ints.
    [StructLayout(LayoutKind.Sequential, Size = 112)]
    private struct StatVfs
    {
        public ulong BlockSize, FragmentSize, Blocks, BlocksFree, BlocksAvailable, Files, FilesFree;
    }

    [LibraryImport("libc", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static partial int statvfs(string path, out StatVfs buf);
}
