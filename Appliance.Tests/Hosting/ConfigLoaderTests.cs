using Appliance.Hosting;

namespace Appliance.Tests.Hosting;

public sealed class ConfigLoaderTests
{
    [Fact]
    public void TrustedNetworks_BlankEntriesAreNone_AndABadOneIsNamed()
    {
        Assert.Equal(["127.0.0.0/8", "2001:db8::/32"], ConfigLoader.TrustedNetworks(["", " 127.0.0.0/8 ", null, "2001:db8::/32", "  "]));
        var ex = Assert.Throws<FormatException>(() => ConfigLoader.TrustedNetworks(["10.0.0.0/8", "localnet"]));
        Assert.Contains("\"localnet\"", ex.Message);
    }

    [Fact]
    public void AnEmptiedEnvironmentVariable_DoesNotStopTheStart()
    {
        Environment.SetEnvironmentVariable("APPLIANCE__Relay__TrustedNetworks__0", "");
        try
        {
            var options = ConfigLoader.Load(null, Path.GetTempPath());
            Assert.Empty(options.Relay.TrustedNetworks);
        }
        finally { Environment.SetEnvironmentVariable("APPLIANCE__Relay__TrustedNetworks__0", null); }
    }
}
