using Appliance.Store;

namespace Appliance.Cluster;

/// <summary>Encodings of the replication stream's payloads (records reuse the journal's own op encoding).</summary>
internal static class ReplicationCodec
{
    /// <summary>
    /// Records as the journal encodes them, each followed by the search index of its messages
    /// when the primary still has it (live batches): the replica then does not parse the
    /// messages again (both nodes of a small pair share few cores). Journal catch-up records
    /// carry none and are extracted on the replica.
    /// Added with the webmail's listing: the sender (FromName, FromAddress) of every index sent,
    /// after all the records. A peer of the version before reads no further; records from it lack
    /// the trailer, and their messages are extracted again on this side rather than stored without a sender.
    /// </summary>
    public static byte[] EncodeRecords(IReadOnlyList<JournalRecord> records) => ClusterWire.Encode(w =>
    {
        w.Write(records.Count);
        foreach (var r in records)
        {
            w.Write(r.Seq);
            w.Write((byte)r.Op.Type);
            r.Op.Write(w);
            foreach (var append in JournalOp.AppendsOf(r.Op))
            {
                w.Write(append.Index is not null);
                if (append.Index is { } x) WriteIndex(w, x);
            }
        }
        foreach (var r in records)
            foreach (var append in JournalOp.AppendsOf(r.Op))
                if (append.Index is { } x) { w.Write(x.FromName); w.Write(x.FromAddress); }
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
            var op = WithIndexes(JournalOp.Read(type, r), r);
            list.Add(new JournalRecord(seq, op));
        }
        var hasSenders = r.BaseStream.Position < r.BaseStream.Length;
        for (var i = 0; i < list.Count; i++) list[i] = list[i] with { Op = WithSenders(list[i].Op, r, hasSenders) };
        return list;
    }

    private static JournalOp WithSenders(JournalOp op, BinaryReader r, bool hasSenders) => op switch
    {
        AppendOp { Index: { } x } a => a with { Index = hasSenders ? x with { FromName = r.ReadString(), FromAddress = r.ReadString() } : null },
        BatchOp b => new BatchOp([.. b.Ops.Select(o => WithSenders(o, r, hasSenders))]),
        _ => op,
    };

    private static JournalOp WithIndexes(JournalOp op, BinaryReader r) => op switch
    {
        AppendOp a => r.ReadBoolean() ? a with { Index = ReadIndex(r) } : a,
        BatchOp b => new BatchOp([.. b.Ops.Select(o => o is AppendOp ? WithIndexes(o, r) : o)]),
        _ => op,
    };

    private static void WriteIndex(BinaryWriter w, MessageIndex x)
    {
        w.Write(x.Subject); w.Write(x.From); w.Write(x.To); w.Write(x.Cc); w.Write(x.Bcc); w.Write(x.Body); w.Write(x.Headers);
        w.Write(x.SentDateUnixMs); w.Write(x.BaseSubject); w.Write(x.SubjectIsReply);
        w.Write(x.FromAddr); w.Write(x.ToAddr); w.Write(x.CcAddr); w.Write(x.DisplayFrom); w.Write(x.DisplayTo);
        w.Write(x.MessageId); w.Write(x.InReplyTo); w.Write(x.References);
    }

    private static MessageIndex ReadIndex(BinaryReader r) => new(
        r.ReadString(), r.ReadString(), r.ReadString(), r.ReadString(), r.ReadString(), r.ReadString(), r.ReadString(),
        r.ReadInt64(), r.ReadString(), r.ReadBoolean(),
        r.ReadString(), r.ReadString(), r.ReadString(), r.ReadString(), r.ReadString(),
        r.ReadString(), r.ReadString(), r.ReadString(),
        FromName: "", FromAddress: ""); // from the trailer (DecodeRecords)

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
