namespace Appliance.Store;

/// <summary>
/// One mutation of a partition, as written to its journal and shipped to a replica.
/// Implementation notes: every op carries absolute values decided by the primary (UIDs,
/// MODSEQs, UIDVALIDITY, final flag sets, message bytes), so applying the same op twice, or on
/// another node, yields the same state. Encoding is a small hand-written binary format (no
/// reflection, AOT safe); new op types get new tags, old tags never change meaning.
/// </summary>
public abstract record JournalOp
{
    public abstract JournalOpType Type { get; }
    public abstract void Write(BinaryWriter w);

    public static JournalOp Read(JournalOpType type, BinaryReader r) => type switch
    {
        JournalOpType.CreateFolder => CreateFolderOp.ReadBody(r),
        JournalOpType.Append => AppendOp.ReadBody(r),
        JournalOpType.SetFlags => SetFlagsOp.ReadBody(r),
        JournalOpType.Expunge => ExpungeOp.ReadBody(r),
        JournalOpType.DeleteAccount => new DeleteAccountOp(r.ReadString()),
        _ => throw new InvalidDataException($"unknown journal op type {(byte)type}"),
    };
    // Shared encodings: a count, then the items (counts bounded so a corrupt record cannot allocate wildly).

    protected static void WriteStrings(BinaryWriter w, string[] values)
    {
        w.Write(values.Length);
        foreach (var v in values) w.Write(v);
    }

    protected static string[] ReadStrings(BinaryReader r)
    {
        var n = r.ReadInt32();
        if (n is < 0 or > 1 << 20) throw new InvalidDataException("bad string count");
        var values = new string[n];
        for (var i = 0; i < n; i++) values[i] = r.ReadString();
        return values;
    }

    protected static void WriteLongs(BinaryWriter w, long[] values)
    {
        w.Write(values.Length);
        foreach (var v in values) w.Write(v);
    }

    protected static long[] ReadLongs(BinaryReader r)
    {
        var n = r.ReadInt32();
        if (n is < 0 or > 1 << 24) throw new InvalidDataException("bad uid count");
        var values = new long[n];
        for (var i = 0; i < n; i++) values[i] = r.ReadInt64();
        return values;
    }
}

public enum JournalOpType : byte
{
    CreateFolder = 1,
    Append = 2,
    SetFlags = 3,
    Expunge = 4,
    DeleteAccount = 5,
}

public sealed record CreateFolderOp(string Account, string Folder, long UidValidity) : JournalOp
{
    public override JournalOpType Type => JournalOpType.CreateFolder;
    public override void Write(BinaryWriter w) { w.Write(Account); w.Write(Folder); w.Write(UidValidity); }
    internal static CreateFolderOp ReadBody(BinaryReader r) => new(r.ReadString(), r.ReadString(), r.ReadInt64());
}

/// <summary>A new message; <see cref="Data"/> carries its bytes so a replica needs nothing else.</summary>
public sealed record AppendOp(
    string Account, string Folder, long Uid, long ModSeq, long InternalDateUnixMs, MessageFlags Flags,
    string[] Keywords, string BlobId, MessageStructure Structure, byte[] Data) : JournalOp
{
    public override JournalOpType Type => JournalOpType.Append;

    public override void Write(BinaryWriter w)
    {
        w.Write(Account); w.Write(Folder); w.Write(Uid); w.Write(ModSeq); w.Write(InternalDateUnixMs);
        w.Write((int)Flags); WriteStrings(w, Keywords); w.Write(BlobId);
        w.Write(Structure.Envelope); w.Write(Structure.Body); w.Write(Structure.BodyStructure); w.Write(Structure.PartOffsets);
        w.Write(Data.Length); w.Write(Data);
    }

    internal static AppendOp ReadBody(BinaryReader r)
    {
        var account = r.ReadString(); var folder = r.ReadString(); var uid = r.ReadInt64(); var modSeq = r.ReadInt64();
        var date = r.ReadInt64(); var flags = (MessageFlags)r.ReadInt32(); var keywords = ReadStrings(r);
        var blob = r.ReadString();
        var structure = new MessageStructure(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadString());
        var data = r.ReadBytes(r.ReadInt32());
        return new(account, folder, uid, modSeq, date, flags, keywords, blob, structure, data);
    }
}

/// <summary>Final flag state of each listed message (not a delta), all at one MODSEQ.</summary>
public sealed record SetFlagsOp(string Account, string Folder, long ModSeq, long[] Uids, MessageFlags Flags, string[] Keywords) : JournalOp
{
    public override JournalOpType Type => JournalOpType.SetFlags;
    public override void Write(BinaryWriter w)
    {
        w.Write(Account); w.Write(Folder); w.Write(ModSeq); WriteLongs(w, Uids); w.Write((int)Flags);
        WriteStrings(w, Keywords);
    }
    internal static SetFlagsOp ReadBody(BinaryReader r) =>
        new(r.ReadString(), r.ReadString(), r.ReadInt64(), ReadLongs(r), (MessageFlags)r.ReadInt32(), ReadStrings(r));
}

public sealed record ExpungeOp(string Account, string Folder, long ModSeq, long[] Uids) : JournalOp
{
    public override JournalOpType Type => JournalOpType.Expunge;
    public override void Write(BinaryWriter w) { w.Write(Account); w.Write(Folder); w.Write(ModSeq); WriteLongs(w, Uids); }
    internal static ExpungeOp ReadBody(BinaryReader r) => new(r.ReadString(), r.ReadString(), r.ReadInt64(), ReadLongs(r));
}

public sealed record DeleteAccountOp(string Account) : JournalOp
{
    public override JournalOpType Type => JournalOpType.DeleteAccount;
    public override void Write(BinaryWriter w) => w.Write(Account);
}

/// <summary>An op with its place in the partition's history.</summary>
public readonly record struct JournalRecord(long Seq, JournalOp Op);
