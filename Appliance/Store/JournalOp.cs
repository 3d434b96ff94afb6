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
        JournalOpType.CreateFolder => CreateFolderOp.ReadBody(r, withSpecialUse: false),
        JournalOpType.CreateSpecialFolder => CreateFolderOp.ReadBody(r, withSpecialUse: true),
        JournalOpType.Subscribe => new SubscribeOp(r.ReadString(), r.ReadString(), r.ReadBoolean()),
        JournalOpType.DeleteFolder => new DeleteFolderOp(r.ReadString(), r.ReadString()),
        JournalOpType.RenameFolder => new RenameFolderOp(r.ReadString(), r.ReadString(), r.ReadString()),
        JournalOpType.Copy => CopyOp.ReadBody(r),
        JournalOpType.Batch => BatchOp.ReadBody(r),
        JournalOpType.Append => AppendOp.ReadBody(r),
        JournalOpType.SetFlags => SetFlagsOp.ReadBody(r),
        JournalOpType.Expunge => ExpungeOp.ReadBody(r),
        JournalOpType.DeleteAccount => new DeleteAccountOp(r.ReadString()),
        JournalOpType.Provision => new ProvisionOp(r.ReadInt64(), r.ReadInt64(), r.ReadString(), r.ReadString(), r.ReadString(), r.ReadString(), r.ReadString()),
        JournalOpType.QueueAdd => QueueAddOp.ReadBody(r),
        JournalOpType.QueueState => new QueueStateOp(QueueAddOp.ReadEntry(r)),
        JournalOpType.QueueRemove => new QueueRemoveOp(r.ReadString()),
        JournalOpType.Metrics => MetricsOp.ReadBody(r),
        JournalOpType.Alert => AlertOp.ReadBody(r),
        JournalOpType.Bayes => BayesOp.ReadBody(r),
        JournalOpType.Vacation => new VacationOp(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadInt64(), r.ReadInt64()),
        JournalOpType.SieveScript => SieveScriptOp.ReadBody(r),
        JournalOpType.Webmail => WebmailOp.ReadBody(r),
        _ => throw new InvalidDataException($"unknown journal op type {(byte)type}"),
    };
    /// <summary>The messages an op adds (an append, or the appends inside a batch).</summary>
    public static IEnumerable<AppendOp> AppendsOf(JournalOp op) => op switch
    {
        AppendOp a => [a],
        BatchOp b => b.Ops.OfType<AppendOp>(),
        _ => [],
    };

    /// <summary>
    /// The messages an op puts in the outbound queue, and the queue entries it ends (an op or
    /// the ops inside a batch).
    /// </summary>
    public static IEnumerable<QueueAddOp> QueueAddsOf(JournalOp op) => op switch
    {
        QueueAddOp q => [q],
        BatchOp b => b.Ops.OfType<QueueAddOp>(),
        _ => [],
    };

    public static IEnumerable<string> QueueRemovalsOf(JournalOp op) => op switch
    {
        QueueRemoveOp q => [q.Id],
        BatchOp b => b.Ops.OfType<QueueRemoveOp>().Select(r => r.Id),
        _ => [],
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
    CreateSpecialFolder = 6,
    Subscribe = 7,
    DeleteFolder = 8,
    RenameFolder = 9,
    Copy = 10,
    Batch = 11,
    Provision = 12,
    QueueAdd = 13,
    QueueState = 14,
    QueueRemove = 15,
    Metrics = 16,
    Alert = 17,
    SieveScript = 18,
    Bayes = 19,
    Vacation = 20,
    Webmail = 21,
}

/// <summary>A new folder; with a special use (RFC 6154) it is written under its own tag, so
/// records of tag 1 keep their original encoding.</summary>
public sealed record CreateFolderOp(string Account, string Folder, long UidValidity, string? SpecialUse = null) : JournalOp
{
    public override JournalOpType Type => SpecialUse is null ? JournalOpType.CreateFolder : JournalOpType.CreateSpecialFolder;
    public override void Write(BinaryWriter w)
    {
        w.Write(Account); w.Write(Folder); w.Write(UidValidity);
        if (SpecialUse is not null) w.Write(SpecialUse);
    }
    internal static CreateFolderOp ReadBody(BinaryReader r, bool withSpecialUse) =>
        new(r.ReadString(), r.ReadString(), r.ReadInt64(), withSpecialUse ? r.ReadString() : null);
}

/// <summary>Subscribes or unsubscribes a name (which need not be a folder).</summary>
public sealed record SubscribeOp(string Account, string Folder, bool Subscribed) : JournalOp
{
    public override JournalOpType Type => JournalOpType.Subscribe;
    public override void Write(BinaryWriter w) { w.Write(Account); w.Write(Folder); w.Write(Subscribed); }
}

/// <summary>Removes a folder and its messages (not its children).</summary>
public sealed record DeleteFolderOp(string Account, string Folder) : JournalOp
{
    public override JournalOpType Type => JournalOpType.DeleteFolder;
    public override void Write(BinaryWriter w) { w.Write(Account); w.Write(Folder); }
}

/// <summary>Renames a folder and every folder under it ("From/…" becomes "To/…").</summary>
public sealed record RenameFolderOp(string Account, string From, string To) : JournalOp
{
    public override JournalOpType Type => JournalOpType.RenameFolder;
    public override void Write(BinaryWriter w) { w.Write(Account); w.Write(From); w.Write(To); }
}

/// <summary>
/// Copies messages of one folder to another of the same account: SourceUids[i] becomes
/// TargetUids[i] at TargetModSeq. With <see cref="Move"/> the sources are expunged in the same
/// op (one journal record, so a move is never half done), tombstoned at SourceModSeq.
/// The copies share the sources' message files.
/// </summary>
public sealed record CopyOp(string Account, string Folder, string Target, long TargetModSeq, long[] SourceUids, long[] TargetUids,
    bool Move, long SourceModSeq) : JournalOp
{
    public override JournalOpType Type => JournalOpType.Copy;
    public override void Write(BinaryWriter w)
    {
        w.Write(Account); w.Write(Folder); w.Write(Target); w.Write(TargetModSeq);
        WriteLongs(w, SourceUids); WriteLongs(w, TargetUids); w.Write(Move); w.Write(SourceModSeq);
    }
    internal static CopyOp ReadBody(BinaryReader r) =>
        new(r.ReadString(), r.ReadString(), r.ReadString(), r.ReadInt64(), ReadLongs(r), ReadLongs(r), r.ReadBoolean(), r.ReadInt64());
}

/// <summary>
/// The ops of one request that must be applied all or none (MULTIAPPEND, a STORE whose messages
/// end in different states, renaming INBOX, a folder with its new parents), in one record so a
/// torn journal tail cannot keep half of them. Items are written as tag + body; never nested.
/// </summary>
public sealed record BatchOp(JournalOp[] Ops) : JournalOp
{
    public override JournalOpType Type => JournalOpType.Batch;
    public override void Write(BinaryWriter w)
    {
        w.Write(Ops.Length);
        foreach (var op in Ops)
        {
            w.Write((byte)op.Type);
            op.Write(w);
        }
    }
    internal static BatchOp ReadBody(BinaryReader r)
    {
        var n = r.ReadInt32();
        if (n is < 0 or > 1 << 20) throw new InvalidDataException("bad batch count");
        var ops = new JournalOp[n];
        for (var i = 0; i < n; i++)
        {
            var type = (JournalOpType)r.ReadByte();
            if (type == JournalOpType.Batch) throw new InvalidDataException("nested batch");
            ops[i] = Read(type, r);
        }
        return new(ops);
    }
}

/// <summary>A new message; <see cref="Data"/> carries its bytes so a replica needs nothing else.</summary>
public sealed record AppendOp(
    string Account, string Folder, long Uid, long ModSeq, long InternalDateUnixMs, MessageFlags Flags,
    string[] Keywords, string BlobId, MessageStructure Structure, byte[] Data) : JournalOp
{
    public override JournalOpType Type => JournalOpType.Append;

    /// <summary>
    /// Search text and sort keys extracted from <see cref="Data"/> by the caller, outside the
    /// writer loop. Not journalled: an op read back from the journal has none and the index is
    /// extracted again from its bytes when it is applied (replay, replica).
    /// </summary>
    public MessageIndex? Index { get; init; }

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

/// <summary>
/// A provisioning request appended to the journal of the monitor unit (DESIGN.md §4): its
/// sequence in the provisioning journal (decided by the primary), when and by whom, and the
/// request itself (JSON, passwords already hashed). Each node's provisioning agent applies it.
/// </summary>
public sealed record ProvisionOp(long ProvisionSeq, long Time, string Actor, string Kind, string Target, string Summary, string Payload) : JournalOp
{
    public override JournalOpType Type => JournalOpType.Provision;
    public override void Write(BinaryWriter w)
    {
        w.Write(ProvisionSeq); w.Write(Time); w.Write(Actor); w.Write(Kind); w.Write(Target); w.Write(Summary); w.Write(Payload);
    }
}

/// <summary>
/// A message put in the outbound queue of this partition (issue 5): the entry as the primary
/// decided it (id, recipients, first attempt) and the message bytes, so a replica needs nothing else.
/// </summary>
public sealed record QueueAddOp(QueueEntry Entry, byte[] Data) : JournalOp
{
    public override JournalOpType Type => JournalOpType.QueueAdd;
    public override void Write(BinaryWriter w)
    {
        WriteEntry(w, Entry);
        w.Write(Data.Length); w.Write(Data);
    }

    internal static QueueAddOp ReadBody(BinaryReader r)
    {
        var entry = ReadEntry(r);
        var n = r.ReadInt32();
        if (n < 0) throw new InvalidDataException("bad message length");
        return new(entry, r.ReadBytes(n));
    }

    internal static void WriteEntry(BinaryWriter w, QueueEntry e)
    {
        w.Write(e.Id); w.Write(e.Created); w.Write(e.Sender); w.Write(e.Account); w.Write(e.Size); w.Write(e.Held);
        w.Write(e.Attempts); w.Write(e.NextAttempt); w.Write(e.DelayNotified); w.Write(e.LastError);
        w.Write(e.EnvId ?? ""); w.Write(e.Ret ?? "");
        w.Write(e.Recipients.Length);
        foreach (var r in e.Recipients)
        {
            w.Write(r.Address); w.Write((byte)r.State); w.Write(r.Reply); w.Write(r.Updated); w.Write(r.Orcpt ?? ""); w.Write(r.Notify ?? "");
        }
    }

    internal static QueueEntry ReadEntry(BinaryReader r)
    {
        var id = r.ReadString(); var created = r.ReadInt64(); var sender = r.ReadString(); var account = r.ReadString();
        var size = r.ReadInt64(); var held = r.ReadBoolean(); var attempts = r.ReadInt32(); var next = r.ReadInt64();
        var notified = r.ReadBoolean(); var error = r.ReadString(); var envid = r.ReadString(); var ret = r.ReadString();
        var n = r.ReadInt32();
        if (n is < 0 or > 1 << 16) throw new InvalidDataException("bad recipient count");
        var rcpts = new QueuedRecipient[n];
        for (var i = 0; i < n; i++)
        {
            var address = r.ReadString(); var state = (RecipientState)r.ReadByte(); var reply = r.ReadString(); var updated = r.ReadInt64();
            var orcpt = r.ReadString(); var notify = r.ReadString();
            rcpts[i] = new(address, state, reply, updated, orcpt.Length == 0 ? null : orcpt, notify.Length == 0 ? null : notify);
        }
        return new(id, created, sender, account, size, held, attempts, next, notified, error, envid.Length == 0 ? null : envid, ret.Length == 0 ? null : ret, rcpts);
    }
}

/// <summary>The whole new state of a queued message after an attempt or an admin's change (absolute, not a delta).</summary>
public sealed record QueueStateOp(QueueEntry Entry) : JournalOp
{
    public override JournalOpType Type => JournalOpType.QueueState;
    public override void Write(BinaryWriter w) => QueueAddOp.WriteEntry(w, Entry);
}

/// <summary>A queued message leaves the queue (every recipient done, or deleted by an admin).</summary>
public sealed record QueueRemoveOp(string Id) : JournalOp
{
    public override JournalOpType Type => JournalOpType.QueueRemove;
    public override void Write(BinaryWriter w) => w.Write(Id);
}

/// <summary>
/// One node's sample for the monitoring history (issue 9, monitor unit only): its time (unix
/// seconds), every measured series with its value, and its checks' verdicts. The history's
/// round-robin tables are folded from these on every copy alike.
/// </summary>
public sealed record MetricsOp(string Node, long Time, string[] Names, double[] Values, Monitoring.CheckResult[] Checks) : JournalOp
{
    public override JournalOpType Type => JournalOpType.Metrics;
    public override void Write(BinaryWriter w)
    {
        w.Write(Node); w.Write(Time);
        WriteStrings(w, Names);
        foreach (var v in Values) w.Write(v);
        w.Write(Checks.Length);
        foreach (var c in Checks) { w.Write(c.Name); w.Write((byte)c.Status); w.Write(c.Output); w.Write(c.Perfdata); }
    }

    internal static MetricsOp ReadBody(BinaryReader r)
    {
        var node = r.ReadString(); var time = r.ReadInt64();
        var names = ReadStrings(r);
        var values = new double[names.Length];
        for (var i = 0; i < values.Length; i++) values[i] = r.ReadDouble();
        var n = r.ReadInt32();
        if (n is < 0 or > 1 << 16) throw new InvalidDataException("bad check count");
        var checks = new Monitoring.CheckResult[n];
        for (var i = 0; i < n; i++) checks[i] = new(r.ReadString(), (Monitoring.CheckStatus)r.ReadByte(), r.ReadString(), r.ReadString());
        return new(node, time, names, values, checks);
    }
}

/// <summary>The whole state of a monitoring alert after a change (opened, changed, acknowledged, escalated, closed).</summary>
public sealed record AlertOp(Monitoring.AlertRecord Alert) : JournalOp
{
    public override JournalOpType Type => JournalOpType.Alert;
    public override void Write(BinaryWriter w)
    {
        var a = Alert;
        w.Write(a.Id); w.Write(a.Node); w.Write(a.Check); w.Write((byte)a.Status); w.Write(a.Output); w.Write(a.Opened); w.Write(a.Changed);
        w.Write(a.Closed); w.Write(a.AckedBy); w.Write(a.AckedAt); w.Write(a.Escalated); w.Write(a.Flapping);
    }

    internal static AlertOp ReadBody(BinaryReader r) => new(new Monitoring.AlertRecord(r.ReadString(), r.ReadString(), r.ReadString(), (Monitoring.CheckStatus)r.ReadByte(),
        r.ReadString(), r.ReadInt64(), r.ReadInt64(), r.ReadInt64(), r.ReadString(), r.ReadInt64(), r.ReadBoolean(), r.ReadBoolean()));
}

/// <summary>
/// A user trained their spam filter with one message (issue 7): moved into Junk (spam) or out
/// of it (ham). Carries the message's key (a hash of its bytes) and its token hashes; applying
/// it counts the tokens for the class and, when the message had been learned as the other
/// class, takes them off that one first. Learning a message twice as the same class changes
/// nothing, so the op can be applied again, or on a replica, with the same outcome.
/// </summary>
public sealed record BayesOp(string Account, string Message, bool Spam, long[] Tokens) : JournalOp
{
    public override JournalOpType Type => JournalOpType.Bayes;
    public override void Write(BinaryWriter w)
    {
        w.Write(Account); w.Write(Message); w.Write(Spam);
        WriteLongs(w, Tokens);
    }

    internal static BayesOp ReadBody(BinaryReader r) => new(r.ReadString(), r.ReadString(), r.ReadBoolean(), ReadLongs(r));
}

/// <summary>
/// A vacation reply went to <see cref="Sender"/> at <see cref="Time"/> (unix seconds): no other
/// reply of the same handle goes to them before <see cref="Until"/> (RFC 5230 §4.1 :days).
/// Applying it also forgets the account's replies whose period ended by <see cref="Time"/>.
/// </summary>
public sealed record VacationOp(string Account, string Handle, string Sender, long Time, long Until) : JournalOp
{
    public override JournalOpType Type => JournalOpType.Vacation;
    public override void Write(BinaryWriter w)
    {
        w.Write(Account); w.Write(Handle); w.Write(Sender); w.Write(Time); w.Write(Until);
    }
}

/// <summary>What a <see cref="SieveScriptOp"/> does to a user's Sieve scripts.</summary>
public enum SieveScriptChange : byte { Put = 1, Delete = 2, Rename = 3, Activate = 4 }

/// <summary>
/// A change to one user's Sieve scripts (RFC 5804 PUTSCRIPT, DELETESCRIPT, RENAMESCRIPT,
/// SETACTIVE), with the state the primary decided: the whole content of a put script and
/// whether it is active, the new name of a renamed one, the one active name ("" for none).
/// </summary>
public sealed record SieveScriptOp(SieveScriptChange Change, string Account, string Name, string NewName, string Content, bool Active) : JournalOp
{
    public override JournalOpType Type => JournalOpType.SieveScript;
    public override void Write(BinaryWriter w)
    {
        w.Write((byte)Change); w.Write(Account); w.Write(Name); w.Write(NewName); w.Write(Content); w.Write(Active);
    }
    internal static SieveScriptOp ReadBody(BinaryReader r)
    {
        var change = (SieveScriptChange)r.ReadByte();
        if (change is < SieveScriptChange.Put or > SieveScriptChange.Activate) throw new InvalidDataException($"bad sieve change {(byte)change}");
        return new(change, r.ReadString(), r.ReadString(), r.ReadString(), r.ReadString(), r.ReadBoolean());
    }
}

/// <summary>What a <see cref="WebmailOp"/> does to a user's webmail items.</summary>
public enum WebmailChange : byte { Put = 1, Delete = 2, Move = 3, DeleteAccount = 4 }

/// <summary>
/// A change to one user's webmail items (db unit: contacts, notes, files, settings), with the
/// state the primary decided. Put: the whole item (<see cref="Data"/> carries its bytes, up to a
/// file's size, so a replica needs nothing else) and its time. Delete: the item
/// (<see cref="Kind"/>, <see cref="Id"/>) and, <see cref="WithChildren"/>, every item of any kind
/// under <see cref="Id"/> + "/". Move: the items at <see cref="Id"/> (any kind) become
/// <see cref="NewId"/> with <see cref="Parent"/> and <see cref="Name"/> at <see cref="Updated"/>,
/// and their children follow. DeleteAccount: everything of the account. Fields a change does not
/// use are empty.
/// </summary>
public sealed record WebmailOp(WebmailChange Change, string Account, string Kind, string Id, string Parent, string Name,
    string NewId, bool WithChildren, long Updated, byte[] Data) : JournalOp
{
    public override JournalOpType Type => JournalOpType.Webmail;
    public override void Write(BinaryWriter w)
    {
        w.Write((byte)Change); w.Write(Account); w.Write(Kind); w.Write(Id); w.Write(Parent); w.Write(Name);
        w.Write(NewId); w.Write(WithChildren); w.Write(Updated);
        w.Write(Data.Length); w.Write(Data);
    }

    internal static WebmailOp ReadBody(BinaryReader r)
    {
        var change = (WebmailChange)r.ReadByte();
        if (change is < WebmailChange.Put or > WebmailChange.DeleteAccount) throw new InvalidDataException($"bad webmail change {(byte)change}");
        var account = r.ReadString(); var kind = r.ReadString(); var id = r.ReadString(); var parent = r.ReadString(); var name = r.ReadString();
        var newId = r.ReadString(); var withChildren = r.ReadBoolean(); var updated = r.ReadInt64();
        var n = r.ReadInt32();
        if (n < 0) throw new InvalidDataException("bad webmail data length");
        return new(change, account, kind, id, parent, name, newId, withChildren, updated, r.ReadBytes(n));
    }
}

/// <summary>An op with its place in the partition's history.</summary>
public readonly record struct JournalRecord(long Seq, JournalOp Op);
