using Appliance.Store;

namespace Appliance.Imap;

/// <summary>
/// A session's view of its selected folder: the messages in sequence order (index + 1 is the
/// message sequence number, RFC 9051 §2.3.1.2) as this client knows them. The view only
/// changes when the session tells the client: new messages through EXISTS, flag changes
/// through FETCH, expunges through EXPUNGE/VANISHED. So messages expunged by another session
/// stay in the view (and keep their sequence numbers) until an EXPUNGE response may be sent.
/// </summary>
public sealed class SelectedMailbox(string name, bool readOnly, long uidValidity, List<StoredMessage> messages)
{
    public string Name { get; private set; } = name;
    public bool ReadOnly { get; } = readOnly;
    public long UidValidity { get; } = uidValidity;

    /// <summary>Messages in sequence order (ascending UID).</summary>
    public List<StoredMessage> Messages { get; } = messages;

    /// <summary>Highest MODSEQ the client has been told about (for resync).</summary>
    public long HighestModSeq { get; set; }

    public long UidNext { get; set; }

    public int Count => Messages.Count;

    /// <summary>Set when the folder was renamed under the session (it follows the new name).</summary>
    public void Rename(string newName) => Name = newName;

    /// <summary>Sequence number of a UID, or 0 when not in the view.</summary>
    public int SeqOfUid(long uid)
    {
        int lo = 0, hi = Messages.Count - 1;
        while (lo <= hi)
        {
            int mid = (lo + hi) >>> 1;
            long u = Messages[mid].Uid;
            if (u == uid) return mid + 1;
            if (u < uid) lo = mid + 1; else hi = mid - 1;
        }
        return 0;
    }

    /// <summary>
    /// The messages a sequence set names, ascending. For sequence numbers "*" is the last
    /// message and numbers past the end are an error the caller reports (BAD); for UIDs "*" is
    /// the highest UID and UIDs not present are ignored (RFC 9051 §6.4.9).
    /// </summary>
    public List<(int Seq, StoredMessage Message)> Resolve(SequenceSet set, bool uid)
    {
        var result = new List<(int, StoredMessage)>();
        if (Messages.Count == 0) return result;
        if (!uid)
        {
            var seqs = new SortedSet<int>();
            foreach (var (from, to) in set.Resolve(Messages.Count))
            {
                long a = Math.Max(1, from), b = Math.Min(Messages.Count, to);
                for (long s = a; s <= b; s++) seqs.Add((int)s);
            }
            foreach (var s in seqs) result.Add((s, Messages[s - 1]));
            return result;
        }
        long maxUid = Messages[^1].Uid;
        // Walk the view once, so a huge UID range costs the mailbox size, not the range size.
        var ranges = set.Resolve(maxUid).ToArray();
        for (int i = 0; i < Messages.Count; i++)
        {
            long u = Messages[i].Uid;
            foreach (var (a, b) in ranges)
            {
                if (u >= a && u <= b)
                {
                    result.Add((i + 1, Messages[i]));
                    break;
                }
            }
        }
        return result;
    }

    /// <summary>True when a message-sequence set names a number past the last message (BAD).</summary>
    public bool OutOfRange(SequenceSet set) =>
        Messages.Count == 0 || set.Ranges.Any(r => r.From > Messages.Count || r.To > Messages.Count);

    /// <summary>Records a flag change the client is being told about.</summary>
    public void Apply(FlagUpdate update)
    {
        int seq = SeqOfUid(update.Uid);
        if (seq == 0) return;
        Messages[seq - 1] = Messages[seq - 1] with { Flags = update.Flags, Keywords = update.Keywords, ModSeq = update.ModSeq };
    }

    /// <summary>Removes an expunged message from the view; returns the sequence number it had (0 if absent).</summary>
    public int Remove(long uid)
    {
        int seq = SeqOfUid(uid);
        if (seq > 0) Messages.RemoveAt(seq - 1);
        return seq;
    }
}
