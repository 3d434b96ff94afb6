using Appliance.Cluster;
using Appliance.Hosting;
using Appliance.Store;

namespace Appliance.Tests.Cluster;

/// <summary>A pair section that cannot work is refused at start with a message naming the key.</summary>
public sealed class ClusterConfigTests
{
    [Theory]
    [InlineData("no secret", "Cluster:Secret")]
    [InlineData("no links", "Cluster:Links")]
    [InlineData("peer is self", "names this node")]
    [InlineData("unit missing", "no unit store-b")]
    [InlineData("bad witness", "Cluster:Witness")]
    [InlineData("bad address", "floating address")]
    [InlineData("db as a mailbox partition", "Store:Partitions: 'db'")]
    [InlineData("monitor as a mailbox partition", "Store:Partitions: 'monitor'")]
    [InlineData("store-db", "unknown unit 'store-db'")]
    public void BadPairConfiguration_IsRefusedWithTheKey(string case_, string expected)
    {
        var dir = Path.Combine(Path.GetTempPath(), "appliance-cfg-" + Guid.NewGuid().ToString("N")[..8]);
        var o = new ApplianceOptions();
        o.Node.DataDirectory = dir;
        o.Node.Name = "node1";
        o.Node.Hostname = "mx.test";
        var c = o.Cluster;
        c.Peer = "node2";
        c.Secret = "a-secret-of-enough-length";
        c.Links = [new LinkOptions { Local = "127.0.0.1", Peer = "127.0.0.2" }];
        c.Units = [new UnitOptions { Name = "store-a", Preferred = "node1" }, new UnitOptions { Name = "store-b", Preferred = "node2" }];
        switch (case_)
        {
            case "no secret": c.Secret = ""; break;
            case "no links": c.Links = []; break;
            case "peer is self": c.Peer = "node1"; break;
            case "unit missing": c.Units = [c.Units[0]]; break;
            case "bad witness": c.Witness = "witness.example"; break;
            case "bad address": c.Units[0].Addresses = ["10.0.0.10 eth0"]; break;
            case "db as a mailbox partition": o.Store.Partitions = ["a", "b", "db"]; break;
            case "monitor as a mailbox partition": o.Store.Partitions = ["a", "monitor", "b"]; break;
            case "store-db": c.Units = [.. c.Units, new UnitOptions { Name = "store-db", Preferred = "node1" }]; break;
        }
        try
        {
            var ex = Assert.ThrowsAny<Exception>(() => ApplianceHost.Create(o));
            Assert.True(ex is InvalidOperationException or FormatException, ex.ToString());
            Assert.Contains(expected, ex.Message);
        }
        finally
        {
            Microsoft.Data.Sqlite.SqliteConnection.ClearAllPools();
            try { System.IO.Directory.Delete(dir, recursive: true); } catch (IOException) { }
        }
    }

    [Theory]
    [InlineData("a", "store-a")]
    [InlineData("monitor", "monitor")]
    [InlineData("db", "db")]
    public void EveryPartition_HasOneUnit_AndBack(string partition, string unit)
    {
        Assert.Equal(unit, MailStore.UnitName(partition));
        Assert.Equal(partition, MailStore.PartitionOfUnit(unit));
        Assert.Equal(partition is "monitor" or "db", MailStore.IsServicePartition(partition));
    }

    [Theory]
    [InlineData("webmail")]
    [InlineData("store-db")]
    [InlineData("store-monitor")]
    [InlineData("a")]
    public void AUnitWithoutAPartition_HasNone(string unit) => Assert.Null(MailStore.PartitionOfUnit(unit));
}
