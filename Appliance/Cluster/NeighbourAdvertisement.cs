using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;

namespace Appliance.Cluster;

/// <summary>
/// Unsolicited IPv6 neighbour advertisements (RFC 4861 §7.2.6), the IPv6 counterpart of a
/// gratuitous ARP: neighbours that cached the previous owner's MAC for the floating address
/// switch to ours at once instead of after their reachability timeout.
/// </summary>
/// <remarks>
/// Sent from a raw ICMPv6 socket rather than an external tool: Debian's ndisc6 package does
/// not ship ndsend. Needs CAP_NET_RAW, which the process adding addresses has anyway. The
/// kernel fills in the ICMPv6 checksum on raw ICMPv6 sockets (RFC 3542 §3.1).
/// </remarks>
internal static class NeighbourAdvertisement
{
    private static readonly IPAddress AllNodes = IPAddress.Parse("ff02::1");

    /// <summary>Sends <paramref name="count"/> advertisements one second apart (as arping does).</summary>
    public static async Task SendAsync(FloatingAddress address, int count, CancellationToken ct)
    {
        var nic = NetworkInterface.GetAllNetworkInterfaces().FirstOrDefault(n => n.Name == address.Interface)
            ?? throw new InvalidOperationException($"no interface {address.Interface}");
        var index = nic.GetIPProperties().GetIPv6Properties().Index;
        var packet = Build(address.Address, nic.GetPhysicalAddress().GetAddressBytes());

        using var socket = new Socket(AddressFamily.InterNetworkV6, SocketType.Raw, ProtocolType.IcmpV6);
        // RFC 4861 §7.1.2: a receiver drops any NA whose hop limit is not 255.
        socket.SetSocketOption(SocketOptionLevel.IPv6, SocketOptionName.MulticastTimeToLive, 255);
        socket.SetSocketOption(SocketOptionLevel.IPv6, SocketOptionName.MulticastInterface, index);
        // Source = the floating address itself (it is added with "nodad", so usable at once).
        socket.Bind(new IPEndPoint(address.Address, 0));
        var to = new IPEndPoint(new IPAddress(AllNodes.GetAddressBytes(), index), 0);
        for (var i = 0; i < count; i++)
        {
            if (i > 0) await Task.Delay(TimeSpan.FromSeconds(1), ct);
            await socket.SendToAsync(packet, SocketFlags.None, to, ct);
        }
    }

    /// <summary>ICMPv6 type 136 with the Override flag and a target link-layer address option.</summary>
    internal static byte[] Build(IPAddress target, byte[] mac)
    {
        var optionUnits = (2 + mac.Length + 7) / 8;
        var packet = new byte[24 + optionUnits * 8];
        packet[0] = 136;          // Neighbor Advertisement
        packet[4] = 0x20;         // O: replace the cached link-layer address; not R, not S (unsolicited)
        target.GetAddressBytes().CopyTo(packet, 8);
        packet[24] = 2;           // option: Target Link-Layer Address
        packet[25] = (byte)optionUnits;
        mac.CopyTo(packet, 26);
        return packet;
    }
}
