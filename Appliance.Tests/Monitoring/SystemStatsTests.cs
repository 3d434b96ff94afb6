using Appliance.Monitoring;

namespace Appliance.Tests.Monitoring;

/// <summary>The system collector over fixture /proc files (exact rates between two reads) and once over this machine's /proc.</summary>
public sealed class SystemStatsTests : IDisposable
{
    private static readonly DateTimeOffset T0 = new(2025, 1, 1, 12, 0, 0, TimeSpan.Zero);
    private readonly string _root = Path.Combine(Path.GetTempPath(), "appliance-stats-" + Guid.NewGuid().ToString("N")[..12]);

    private string Proc => Path.Combine(_root, "proc");

    public SystemStatsTests()
    {
        System.IO.Directory.CreateDirectory(Path.Combine(Proc, "self"));
        System.IO.Directory.CreateDirectory(Path.Combine(Proc, "net"));
        // sda1 is a partition of sda: its I/O is already counted in the disk's.
        var sda1 = Path.Combine(_root, "sys", "class", "block", "sda1");
        System.IO.Directory.CreateDirectory(sda1);
        File.WriteAllText(Path.Combine(sda1, "partition"), "1\n");
    }

    public void Dispose()
    {
        try { System.IO.Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
    }

    private void Write(string relative, string text) => File.WriteAllText(Path.Combine(Proc, relative), text);

    private static Dictionary<string, double> ToMap(IReadOnlyList<MetricValue> values) => values.ToDictionary(v => v.Name, v => v.Value);

    private void WriteCounters(string cpu, long sdaRead, long sdaWritten, long sdaTicks, long nvmeTicks, long eth0Rx, long eth0Tx, long eth0RxErrors)
    {
        Write("stat", $"{cpu}\ncpu0 1 2 3 4 5 6 7 8 9 10\nintr 12345 0 0\nctxt 999\n");
        Write("diskstats", $"""
               8       0 sda 100 0 {sdaRead} 50 200 0 {sdaWritten} 70 0 {sdaTicks} 120 0 0 0 0 0 0
               8       1 sda1 100 0 {sdaRead} 50 200 0 {sdaWritten} 70 0 {sdaTicks} 120 0 0 0 0 0 0
               7       0 loop0 1 0 {sdaRead} 1 1 0 {sdaWritten} 1 0 {sdaTicks} 2 0 0 0 0 0 0
             259       0 nvme0n1 1 0 0 1 1 0 0 1 0 {nvmeTicks} 2 0 0 0 0 0 0
             """);
        Write("net/dev", $"""
            Inter-|   Receive                                                |  Transmit
             face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
                lo: {eth0Rx * 7} 10 0 0 0 0 0 0 {eth0Tx * 7} 10 0 0 0 0 0 0
              eth0: {eth0Rx} 10 {eth0RxErrors} 0 0 0 0 0 {eth0Tx} 10 0 0 0 0 0 0
            eth1:{eth0Rx} 10 0 0 0 0 0 0 {eth0Tx} 10 0 0 0 0 0 0
            """);
    }

    [Fact]
    public void FirstRead_HasGaugesOnly_SecondRead_HasExactRatesOverTheInterval()
    {
        // guest (9th column) is part of user already: counting it twice would make the share 23 %, not 30 %.
        WriteCounters("cpu  100 0 100 700 100 0 0 0 0 0", sdaRead: 4000, sdaWritten: 10_000, sdaTicks: 1000, nvmeTicks: 0, eth0Rx: 50_000, eth0Tx: 8000, eth0RxErrors: 3);
        Write("loadavg", "0.52 1.25 2.00 3/412 9876\n");
        var stats = new SystemStats(Proc);

        var first = ToMap(stats.Read(T0));
        Assert.Equal(new[] { 0.52, 1.25, 2.00 }, new[] { first["load1"], first["load5"], first["load15"] });
        Assert.DoesNotContain(first.Keys, k => k.StartsWith("cpu_", StringComparison.Ordinal) || k.Contains("_per_second", StringComparison.Ordinal) || k.StartsWith("disk_busy", StringComparison.Ordinal));

        WriteCounters("cpu  400 0 100 1300 200 0 0 0 300 0", sdaRead: 6000, sdaWritten: 11_000, sdaTicks: 3500, nvmeTicks: 20_000, eth0Rx: 60_000, eth0Tx: 13_000, eth0RxErrors: 23);
        var second = ToMap(stats.Read(T0.AddSeconds(10)));

        Assert.Equal(30, second["cpu_percent"], 9);
        Assert.Equal(10, second["cpu_iowait_percent"], 9);
        Assert.Equal(2000 * 512 / 10.0, second["disk_read_bytes_per_second{dev=\"sda\"}"]);
        Assert.Equal(51_200, second["disk_write_bytes_per_second{dev=\"sda\"}"]);
        Assert.Equal(25, second["disk_busy_percent{dev=\"sda\"}"]);
        Assert.Equal(100, second["disk_busy_percent{dev=\"nvme0n1\"}"]);
        Assert.Equal(1000, second["net_receive_bytes_per_second{if=\"eth0\"}"]);
        Assert.Equal(500, second["net_transmit_bytes_per_second{if=\"eth0\"}"]);
        Assert.Equal(2, second["net_receive_errors_per_second{if=\"eth0\"}"]);
        Assert.Equal(0, second["net_transmit_errors_per_second{if=\"eth0\"}"]);
        Assert.Equal(1000, second["net_receive_bytes_per_second{if=\"eth1\"}"]);
        Assert.DoesNotContain(second.Keys, k => k.Contains("sda1", StringComparison.Ordinal) || k.Contains("loop0", StringComparison.Ordinal) || k.Contains("\"lo\"", StringComparison.Ordinal));
        Assert.Equal(16, second.Keys.Count(k => k.Contains("_per_second", StringComparison.Ordinal) || k.StartsWith("disk_busy", StringComparison.Ordinal) || k.StartsWith("cpu_", StringComparison.Ordinal)));
    }

    [Fact]
    public void CounterThatWentBackwards_GivesNoRateThatTime_OthersStillDo()
    {
        WriteCounters("cpu  100 0 100 700 100 0 0 0 0 0", sdaRead: 4000, sdaWritten: 10_000, sdaTicks: 1000, nvmeTicks: 0, eth0Rx: 50_000, eth0Tx: 8000, eth0RxErrors: 3);
        var stats = new SystemStats(Proc);
        stats.Read(T0);

        // The interface was recreated (rx restarts from zero) and the CPU counters were reset.
        WriteCounters("cpu  10 0 10 70 10 0 0 0 0 0", sdaRead: 4000, sdaWritten: 9000, sdaTicks: 1000, nvmeTicks: 0, eth0Rx: 100, eth0Tx: 9000, eth0RxErrors: 3);
        var second = ToMap(stats.Read(T0.AddSeconds(10)));

        Assert.False(second.ContainsKey("cpu_percent"));
        Assert.False(second.ContainsKey("net_receive_bytes_per_second{if=\"eth0\"}"));
        Assert.Equal(100, second["net_transmit_bytes_per_second{if=\"eth0\"}"]);
        Assert.False(second.ContainsKey("disk_write_bytes_per_second{dev=\"sda\"}"));
        Assert.Equal(0, second["disk_read_bytes_per_second{dev=\"sda\"}"]);

        // The next interval counts from the reset values again.
        WriteCounters("cpu  40 0 10 130 20 0 0 0 0 0", sdaRead: 4000, sdaWritten: 9500, sdaTicks: 1000, nvmeTicks: 0, eth0Rx: 1100, eth0Tx: 9000, eth0RxErrors: 3);
        var third = ToMap(stats.Read(T0.AddSeconds(20)));
        Assert.Equal(30, third["cpu_percent"], 9);
        Assert.Equal(100, third["net_receive_bytes_per_second{if=\"eth0\"}"]);
        Assert.Equal(25_600, third["disk_write_bytes_per_second{dev=\"sda\"}"]);
    }

    [Fact]
    public void Memory_FromKilobytes()
    {
        Write("meminfo", "MemTotal:        1000 kB\nMemFree:          100 kB\nMemAvailable:     250 kB\nSwapTotal:        100 kB\nSwapFree:          40 kB\nHugePages_Total:       0\n");
        var values = ToMap(new SystemStats(Proc).Read(T0));

        Assert.Equal(1_024_000, values["memory_total_bytes"]);
        Assert.Equal(256_000, values["memory_available_bytes"]);
        Assert.Equal(75, values["memory_used_percent"]);
        Assert.Equal(61_440, values["swap_used_bytes"]);
    }

    [Fact]
    public void MissingFiles_YieldNothing_AndDoNotThrow()
    {
        var stats = new SystemStats(Path.Combine(_root, "no-such-proc"));
        Assert.Empty(stats.Read(T0));
        Assert.Empty(stats.Read(T0.AddSeconds(10)));
    }

    [Fact]
    public void MalformedLines_AreSkipped()
    {
        Assert.Null(SystemStats.ParseStat("cpu  1 2 x 4 5 6 7 8\n"));
        Assert.Null(SystemStats.ParseStat("cpu  1 2 3\n"));
        Assert.Null(SystemStats.ParseStat("cpu0 1 2 3 4 5 6 7 8\n"));
        Assert.Equal(new SystemStats.CpuTimes(36, 4, 5), SystemStats.ParseStat("cpu  1 2 3 4 5 6 7 8 100 100\n"));
        Assert.Null(SystemStats.ParseLoadavg("0.1 zero\n"));

        var mem = SystemStats.ParseMeminfo("MemTotal: 10 kB\ngarbage\nMemFree: lots kB\nBroken 5 kB\nOdd: 1 2 3\n");
        Assert.Equal(KeyValuePair.Create("MemTotal", 10_240.0), Assert.Single(mem));

        var disks = SystemStats.ParseDiskstats("8 0 sda 1 0 2 0 1 0 4 0 0 9 0\n8 0 short 1 2 3\n8 16 sdb 1 0 x 0 1 0 4 0 0 9 0\n\n");
        Assert.Equal(new SystemStats.DiskCounters(1024, 2048, 9), Assert.Single(disks, d => d.Key == "sda").Value);
        Assert.Single(disks);

        var net = SystemStats.ParseNetDev("Inter-| Receive | Transmit\n eth0: 1 2 3\n eth1: 10 0 7 0 0 0 0 0 20 0 8 0 0 0 0 0\n : 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\nwlan0: a b\n");
        Assert.Equal(new SystemStats.NetCounters(10, 20, 7, 8), Assert.Single(net).Value);
    }

    [Fact]
    public void Mounts_DecodeOctalEscapes()
    {
        var mounts = SystemStats.ParseMounts("/dev/sdb1 /mnt/my\\040disk\\011x ext4 rw 0 0\n/dev/sdc1 /back\\134slash xfs rw 0 0\nnonsense\n");
        Assert.Equal(new[] { ("/mnt/my disk\tx", "ext4"), ("/back\\slash", "xfs") }, mounts);
    }

    [Fact]
    public void FileSystems_RealOnes_PlusTheOneHoldingAWatchedPath_LastMountWins_NoFileBindMounts()
    {
        string Dir(string name) => System.IO.Directory.CreateDirectory(Path.Combine(_root, name)).FullName;
        var data = Dir("data dir");
        var watched = Dir("watched");
        var tmp = Dir("tmp");
        var kernel = Dir("kernel");
        var over = Dir("over");
        var hosts = Path.Combine(_root, "hosts");
        File.WriteAllText(hosts, "127.0.0.1 localhost\n");
        var escaped = data.Replace(" ", "\\040", StringComparison.Ordinal);
        Write("self/mounts", $"""
            /dev/sda1 {escaped} ext4 rw,relatime 0 0
            tmpfs {watched} tmpfs rw 0 0
            tmpfs {tmp} tmpfs rw 0 0
            proc {kernel} proc rw 0 0
            /dev/sdb1 {over} ext4 rw 0 0
            tmpfs {over} tmpfs rw 0 0
            /dev/sdc1 /no/such/mount xfs rw 0 0
            /dev/sda1 {hosts} ext4 rw 0 0
            """);

        var values = ToMap(new SystemStats(Proc, [Path.Combine(watched, "mail", "store")]).Read(T0));

        var reported = values.Keys.Where(k => k.StartsWith("disk_total_bytes", StringComparison.Ordinal)).ToList();
        Assert.Equal(new[] { $"disk_total_bytes{{fs=\"{data}\"}}", $"disk_total_bytes{{fs=\"{watched}\"}}" }, reported);
        foreach (var fs in new[] { data, watched })
        {
            var label = $"{{fs=\"{fs}\"}}";
            Assert.InRange(values["disk_used_bytes" + label], 0, values["disk_total_bytes" + label]);
            Assert.InRange(values["disk_used_percent" + label], 0, 100);
        }
        // statvfs reads the real file system under the fixture directory: its size is what .NET sees.
        Assert.Equal(new DriveInfo(data).TotalSize, values[$"disk_total_bytes{{fs=\"{data}\"}}"]);
    }

    [Fact]
    public void ThisMachine_SecondReadHasCpuMemoryTheDataFileSystemAndTraffic()
    {
        var dataDir = System.IO.Directory.CreateDirectory(Path.Combine(_root, "data")).FullName;
        var stats = new SystemStats("/proc", [dataDir]);
        var first = ToMap(stats.Read(DateTimeOffset.UtcNow));
        Assert.DoesNotContain("cpu_percent", first.Keys);
        Thread.Sleep(300);
        var second = ToMap(stats.Read(DateTimeOffset.UtcNow));

        Assert.InRange(second["cpu_percent"], 0, 100);
        Assert.True(second["memory_total_bytes"] > 0);
        Assert.InRange(second["memory_used_percent"], 0, 100);

        // The file system holding the data directory: the reported mount point that is its longest prefix.
        var holder = second.Keys
            .Where(k => k.StartsWith("disk_used_percent{fs=\"", StringComparison.Ordinal))
            .Select(k => k["disk_used_percent{fs=\"".Length..^2])
            .Where(fs => fs == "/" || dataDir.StartsWith(fs + "/", StringComparison.Ordinal))
            .MaxBy(fs => fs.Length);
        Assert.NotNull(holder);
        Assert.InRange(second[$"disk_used_percent{{fs=\"{holder}\"}}"], 0, 100);
        Assert.Equal(new DriveInfo(holder).TotalSize, second[$"disk_total_bytes{{fs=\"{holder}\"}}"]);

        var hasInterface = SystemStats.ParseNetDev(File.ReadAllText("/proc/net/dev")).Keys.Any(name => name != "lo");
        Assert.Equal(hasInterface, second.Keys.Any(k => k.StartsWith("net_", StringComparison.Ordinal)));
    }
}
