using System.Net;
using Appliance.Cluster;
using Xunit.Abstractions;

namespace Appliance.Tests.Cluster;

public class FloatingIpTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData("192.0.2.10/24 dev eth0", "192.0.2.10", 24, "eth0")]
    [InlineData("  2001:db8::10/64   dev  bond0.12 ", "2001:db8::10", 64, "bond0.12")]
    [InlineData("2001:DB8:0::10/128 dev eth0", "2001:db8::10", 128, "eth0")]
    public void Parse_ReadsAddressPrefixAndInterface(string text, string address, int prefix, string dev)
    {
        var a = FloatingAddress.Parse(text);
        Assert.Equal(IPAddress.Parse(address), a.Address);
        Assert.Equal(prefix, a.PrefixLength);
        Assert.Equal(dev, a.Interface);
        Assert.Equal($"{address}/{prefix} dev {dev}", a.ToString());
        Assert.Equal(a, FloatingAddress.Parse(a.ToString()));
    }

    [Theory]
    [InlineData("", "expected")]
    [InlineData("192.0.2.10/24", "expected")]
    [InlineData("192.0.2.10/24 eth0", "expected")]
    [InlineData("192.0.2.10/24 dev eth0 extra", "expected")]
    [InlineData("192.0.2.10 dev eth0", "prefix length is missing")]
    [InlineData("192.0.2.10/33 dev eth0", "0..32")]
    [InlineData("2001:db8::10/129 dev eth0", "0..128")]
    [InlineData("192.0.2.10/-1 dev eth0", "0..32")]
    [InlineData("192.0.2.300/24 dev eth0", "not an IPv4 or IPv6 address")]
    [InlineData("mail.example/24 dev eth0", "not an IPv4 or IPv6 address")]
    [InlineData("fe80::1%2/64 dev eth0", "not an IPv4 or IPv6 address")]
    [InlineData("192.0.2.10/24 dev a/b", "not an interface name")]
    [InlineData("192.0.2.10/24 dev averyverylongname0", "not an interface name")]
    public void Parse_RejectsWithReason(string text, string reason)
    {
        var ex = Assert.Throws<FormatException>(() => FloatingAddress.Parse(text));
        Assert.Contains(reason, ex.Message);
        Assert.Contains($"\"{text}\"", ex.Message);
    }

    [Fact]
    public async Task Add_OnMissingInterface_ThrowsWithIpsError()
    {
        await using var manager = new FloatingIpManager();
        var ex = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            manager.AddAsync(FloatingAddress.Parse("198.51.100.10/24 dev fipnosuchdev"), CancellationToken.None));
        Assert.Contains("does not exist", ex.Message);
        Assert.Empty(manager.Held);
    }

    [Fact]
    public Task IPv4_NeighbourLearnsNewOwnerFromGratuitousArp() =>
        AnnouncementTest("198.51.100.2/24", "198.51.100.10/24");

    [Fact]
    public Task IPv6_NeighbourLearnsNewOwnerFromUnsolicitedAdvertisement() =>
        AnnouncementTest("2001:db8:213::2/64", "2001:db8:213::10/64");

    /// <summary>
    /// A veth pair: our end in the root namespace (where the manager, i.e. this process, runs)
    /// and the other in a fresh namespace standing for a router on the LAN. The "router" still
    /// caches the previous owner's MAC for the floating address, as after a failover; the
    /// announcement must replace it with ours without the router asking.
    /// </summary>
    private async Task AnnouncementTest(string neighbourCidr, string floatingCidr)
    {
        if (!RootOnly.Available(output)) return;
        var id = Convert.ToHexString(Guid.NewGuid().ToByteArray(), 0, 3).ToLowerInvariant();
        string ns = $"fip{id}", ours = $"fip{id}a", theirs = $"fip{id}b";
        var floating = FloatingAddress.Parse($"{floatingCidr} dev {ours}");
        var ip = floating.Address.ToString();
        try
        {
            await HostCommand.MustAsync("ip", "netns", "add", ns);
            await HostCommand.MustAsync("ip", "link", "add", "name", ours, "type", "veth", "peer", "name", theirs, "netns", ns);
            await HostCommand.MustAsync("ip", "link", "set", ours, "up");
            await HostCommand.MustAsync("ip", "-n", ns, "link", "set", "lo", "up");
            await HostCommand.MustAsync("ip", "-n", ns, "addr", "add", neighbourCidr, "dev", theirs, "nodad");
            await HostCommand.MustAsync("ip", "-n", ns, "link", "set", theirs, "up");
            await HostCommand.MustAsync("ip", "-n", ns, "neigh", "replace", ip, "lladdr", "02:00:00:00:00:99", "dev", theirs, "nud", "stale");
            var ourMac = (await File.ReadAllTextAsync($"/sys/class/net/{ours}/address")).Trim();

            await using var manager = new FloatingIpManager();
            await manager.AddAsync(floating, CancellationToken.None);
            await manager.AddAsync(floating, CancellationToken.None); // already held: fine
            Assert.Equal([floating], manager.Held);
            Assert.Contains($" {floatingCidr} ", await HostCommand.MustAsync("ip", "-o", "addr", "show", "dev", ours));

            // The first burst goes out at once; allow for the 5 s second burst.
            var neigh = "";
            for (var i = 0; i < 80 && !neigh.Contains(ourMac, StringComparison.OrdinalIgnoreCase); i++)
            {
                await Task.Delay(100);
                neigh = await HostCommand.MustAsync("ip", "-n", ns, "neigh", "show", ip, "dev", theirs);
            }
            output.WriteLine(neigh);
            Assert.Contains(ourMac, neigh, StringComparison.OrdinalIgnoreCase);
            // And the neighbour reaches the address here.
            await HostCommand.MustAsync("ip", "netns", "exec", ns, "ping", "-c1", "-W2", ip);

            await manager.RemoveAsync(floating, CancellationToken.None);
            await manager.RemoveAsync(floating, CancellationToken.None); // already gone: fine
            Assert.Empty(manager.Held);
            Assert.DoesNotContain(ip, await HostCommand.MustAsync("ip", "-o", "addr", "show", "dev", ours));
        }
        finally
        {
            await HostCommand.RunAsync("ip", "link", "del", ours);
            await HostCommand.RunAsync("ip", "netns", "del", ns);
        }
    }
}
