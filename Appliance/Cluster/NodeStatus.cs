namespace Appliance.Cluster;

/// <summary>The state of one unit as a node tells its peer in every heartbeat.</summary>
public enum UnitState : byte { Stopped = 0, Starting = 1, Active = 2, Stopping = 3, Failed = 4 }

internal sealed record UnitStatus(
    string Name,
    UnitState State,
    long Epoch,
    long LastSeq,
    bool Outdated,
    /// <summary>Outdate request this copy agreed to (replica side).</summary>
    long OutdatedToken,
    /// <summary>Primary side: nonzero while it asks the peer to agree to be outdated.</summary>
    long OutdateRequest,
    /// <summary>Replica side: its replication stream is connected and caught up.</summary>
    bool InSync,
    /// <summary>Primary side: the node it hands the unit to (planned switchover), or "".</summary>
    string HandOverTo,
    /// <summary>Primary side: the highest seq clients may have been told is stored (the peer's ack, or everything while degraded).</summary>
    long AckedSeq,
    /// <summary>First seq of the unit's current generation (where its epoch began).</summary>
    long EpochStart);

/// <summary>
/// One heartbeat: the sender's view of itself. Sent every HeartbeatIntervalMs over every link,
/// authenticated with an HMAC over the whole datagram. <see cref="Seq"/> orders datagrams of
/// one incarnation (a process start); <see cref="SeenSeq"/> echoes the peer's last seq this node
/// had received, so a node knows its peer has seen a state it published (the start handshake).
/// <see cref="Leaving"/>: the node is stopping cleanly; once it has stopped all its units its
/// silence is a departure, not a failure, and it is not fenced.
/// </summary>
/// <see cref="ProvisionedSeq"/>: the last provisioning request the node's agent applied (the
/// admin panel's queue per node); written last, so a datagram without it reads as 0.
internal sealed record NodeStatus(string Node, long Incarnation, long Seq, long SeenSeq, bool Standby, bool Ready, UnitStatus[] Units, bool Leaving = false, long ProvisionedSeq = 0)
{
    private const uint Magic = 0x41504842; // "APHB"

    public UnitStatus? Unit(string name) => Array.Find(Units, u => u.Name == name);

    public byte[] Encode(string secret)
    {
        var body = ClusterWire.Encode(w =>
        {
            w.Write(Magic); w.Write(Node); w.Write(Incarnation); w.Write(Seq); w.Write(SeenSeq); w.Write(Standby); w.Write(Ready); w.Write(Leaving);
            w.Write(Units.Length);
            foreach (var u in Units)
            {
                w.Write(u.Name); w.Write((byte)u.State); w.Write(u.Epoch); w.Write(u.LastSeq); w.Write(u.Outdated);
                w.Write(u.OutdatedToken); w.Write(u.OutdateRequest); w.Write(u.InSync); w.Write(u.HandOverTo); w.Write(u.AckedSeq); w.Write(u.EpochStart);
            }
            w.Write(ProvisionedSeq);
        });
        return ClusterWire.Sign(body, secret);
    }

    /// <summary>The status in a datagram, or null when it is not an authentic heartbeat.</summary>
    public static NodeStatus? Decode(ReadOnlySpan<byte> datagram, string secret)
    {
        if (ClusterWire.Verified(datagram, secret) is not { } body) return null;
        try
        {
            using var r = ClusterWire.Reader(body);
            if (r.ReadUInt32() != Magic) return null;
            var node = r.ReadString(); var incarnation = r.ReadInt64(); var seq = r.ReadInt64(); var seen = r.ReadInt64();
            var standby = r.ReadBoolean(); var ready = r.ReadBoolean(); var leaving = r.ReadBoolean();
            var n = r.ReadInt32();
            if (n is < 0 or > 64) return null;
            var units = new UnitStatus[n];
            for (var i = 0; i < n; i++)
                units[i] = new UnitStatus(r.ReadString(), (UnitState)r.ReadByte(), r.ReadInt64(), r.ReadInt64(), r.ReadBoolean(),
                    r.ReadInt64(), r.ReadInt64(), r.ReadBoolean(), r.ReadString(), r.ReadInt64(), r.ReadInt64());
            var provisioned = r.BaseStream.Position + 8 <= r.BaseStream.Length ? r.ReadInt64() : 0;
            return new NodeStatus(node, incarnation, seq, seen, standby, ready, units, leaving, provisioned);
        }
        catch (EndOfStreamException) { return null; }
    }
}
