using Appliance.Store;

namespace Appliance.Cluster;

/// <summary>Encodings of the replication stream's payloads (records reuse the journal's own op encoding).</summary>
internal static class ReplicationCodec
{
    public static byte[] EncodeRecords(IReadOnlyList<JournalRecord> records) => ClusterWire.Encode(w =>
    {
        w.Write(records.Count);
        foreach (var r in records)
        {
            w.Write(r.Seq);
            w.Write((byte)r.Op.Type);
            r.Op.Write(w);
        }
    });

    public static List<JournalRecord> DecodeRecords(byte[] payload)
    {
        using var r = ClusterWire.Reader(payload);
        var n = r.ReadInt32();
        if (n is < 0 or > 1 << 20) throw new InvalidDataException("bad record count");
        var list = new List<JournalRecord>(n);
        for (var i = 0; i < n; i++)
        {
            var seq = r.ReadInt64();
            var type = (JournalOpType)r.ReadByte();
            list.Add(new JournalRecord(seq, JournalOp.Read(type, r)));
        }
        return list;
    }

    public static void WriteHistory(BinaryWriter w, IReadOnlyList<Generation> history)
    {
        w.Write(history.Count);
        foreach (var g in history) { w.Write(g.Epoch); w.Write(g.Node); w.Write(g.StartSeq); }
    }

    public static List<Generation> ReadHistory(BinaryReader r)
    {
        var n = r.ReadInt32();
        if (n is < 0 or > 1 << 16) throw new InvalidDataException("bad history length");
        var list = new List<Generation>(n);
        for (var i = 0; i < n; i++) list.Add(new Generation(r.ReadInt64(), r.ReadString(), r.ReadInt64()));
        return list;
    }

    public static byte[] EncodeState(long lastSeq, IReadOnlyList<Generation> history) =>
        ClusterWire.Encode(w => { w.Write(lastSeq); WriteHistory(w, history); });

    public static (long LastSeq, List<Generation> History) ReadState(byte[] payload)
    {
        using var r = ClusterWire.Reader(payload);
        return (r.ReadInt64(), ReadHistory(r));
    }
}
