using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace Appliance.Cluster;

/// <summary>A floating address of a unit as configured: "ADDRESS/PREFIX dev INTERFACE".</summary>
public sealed record FloatingAddress(IPAddress Address, int PrefixLength, string Interface)
{
    public bool IsIPv6 => Address.AddressFamily == AddressFamily.InterNetworkV6;

    /// <summary>Parses "192.0.2.10/24 dev eth0" or "2001:db8::10/64 dev eth0".</summary>
    /// <exception cref="FormatException">The text is not in that form.</exception>
    public static FloatingAddress Parse(string text)
    {
        var parts = text.Split(' ', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);
        if (parts.Length != 3 || parts[1] != "dev")
            throw Bad(text, "expected \"ADDRESS/PREFIX dev INTERFACE\"");
        var slash = parts[0].IndexOf('/');
        if (slash < 0)
            throw Bad(text, "the prefix length is missing (\"/24\", \"/64\")");
        // A scope id ("fe80::1%eth0") would contradict the interface given after "dev".
        if (!IPAddress.TryParse(parts[0].AsSpan(0, slash), out var address)
            || address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6)
            || (address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId != 0))
            throw Bad(text, $"\"{parts[0][..slash]}\" is not an IPv4 or IPv6 address");
        var max = address.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        if (!int.TryParse(parts[0].AsSpan(slash + 1), NumberStyles.None, CultureInfo.InvariantCulture, out var prefix) || prefix > max)
            throw Bad(text, $"the prefix length must be 0..{max}");
        if (!IsInterfaceName(parts[2]))
            throw Bad(text, $"\"{parts[2]}\" is not an interface name");
        return new FloatingAddress(address, prefix, parts[2]);
    }

    public override string ToString() => $"{Address}/{PrefixLength} dev {Interface}";

    /// <summary>"ADDRESS/PREFIX" as iproute2 takes it.</summary>
    internal string Cidr => $"{Address}/{PrefixLength}";

    // Linux: at most 15 bytes (IFNAMSIZ - 1), no '/', ':' is an alias separator, no whitespace.
    private static bool IsInterfaceName(string name) =>
        name.Length is > 0 and <= 15 && name is not ("." or "..")
        && name.All(c => c > ' ' && c < 0x7f && c != '/' && c != ':');

    private static FormatException Bad(string text, string why) =>
        new($"floating address \"{text}\": {why}");
}
