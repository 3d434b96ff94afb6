using Microsoft.Extensions.Configuration;

namespace Appliance.Hosting;

/// <summary>
/// Reads appliance.json (if given) and APPLIANCE__Section__Key environment variables, in that
/// order of precedence (environment wins), into <see cref="ApplianceOptions"/>. Binding uses the
/// configuration source generator, so it is AOT safe.
/// </summary>
public static class ConfigLoader
{
    public static ApplianceOptions Load(string? configFile, string? dataDir)
    {
        var builder = new ConfigurationBuilder();
        if (configFile is not null)
        {
            if (!File.Exists(configFile)) throw new FileNotFoundException($"configuration file {configFile} not found");
            builder.AddJsonFile(Path.GetFullPath(configFile), optional: false);
        }
        builder.AddEnvironmentVariables("APPLIANCE__");
        var options = new ApplianceOptions();
        builder.Build().Bind(options);
        if (dataDir is not null) options.Node.DataDirectory = dataDir;
        if (string.IsNullOrEmpty(options.Node.Name)) options.Node.Name = System.Net.Dns.GetHostName();
        if (string.IsNullOrEmpty(options.Node.Hostname)) options.Node.Hostname = System.Net.Dns.GetHostName();
        options.Relay.TrustedNetworks = TrustedNetworks(options.Relay.TrustedNetworks);
        return options;
    }

    /// <summary>
    /// Relay:TrustedNetworks as CIDR ranges: blank entries (an emptied environment variable) are
    /// none, anything else that is not a range stops the start with its name rather than a crash later.
    /// </summary>
    public static string[] TrustedNetworks(IEnumerable<string?> entries) =>
        [.. entries.Select(e => (e ?? "").Trim()).Where(e => e.Length > 0).Select(e => System.Net.IPNetwork.TryParse(e, out _) ? e
            : throw new FormatException($"Relay:TrustedNetworks: \"{e}\" is not an address range (CIDR, like 192.0.2.0/24 or 2001:db8::/32)"))];
}
