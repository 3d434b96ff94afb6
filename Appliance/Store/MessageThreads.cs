namespace Appliance.Store;

// RFC 5256 threading on the store's sort keys (MessageSortInfo): IMAP THREAD writes the trees
// as thread-lists (Imap/ImapThread.cs), the webmail flattens them into a listing
// (Partition.Listing.cs). Sequence numbers are only tie-breaks: callers number messages in UID order.

/// <summary>One node of a thread tree: a message, or a dummy (no message) standing for a missing parent or merged subject.</summary>
public sealed class ThreadNode
{
    public ThreadNode(MessageSortInfo? info = null, int seq = 0)
    {
        Info = info;
        Seq = seq;
    }

    public MessageSortInfo? Info { get; set; }
    public int Seq { get; set; }
    public ThreadNode? Parent { get; set; }
    public List<ThreadNode> Children { get; } = [];
    public bool IsDummy => Info is null;

    public void Add(ThreadNode child)
    {
        child.Parent = this;
        Children.Add(child);
    }

    public void Unlink()
    {
        Parent?.Children.Remove(this);
        Parent = null;
    }

    /// <summary>True when <paramref name="node"/> is this node or one of its ancestors.</summary>
    public bool HasAncestorOrSelf(ThreadNode node)
    {
        for (var n = this; n is not null; n = n.Parent)
        {
            if (n == node) return true;
        }
        return false;
    }
}

/// <summary>
/// RFC 5256 THREAD algorithms over (sequence number, sort keys) pairs. ORDEREDSUBJECT groups by base subject; REFERENCES follows §3
/// steps 1-7: link by References/In-Reply-To (no loops, a message's own references win),
/// gather roots, prune dummies, sort roots by sent date, merge threads with the same base
/// subject, and sort every set of siblings by sent date. Sent date ties break by sequence
/// number; a dummy sorts as its first child.
/// </summary>
public static class MessageThreads
{
    private const int MaxReferences = 256;

    // RFC 5256 §3 ORDEREDSUBJECT
    public static List<ThreadNode> OrderedSubject(IReadOnlyList<(int Seq, MessageSortInfo Info)> messages)
    {
        var sorted = messages.Select(m => new ThreadNode(m.Info, m.Seq)).ToList();
        sorted.Sort((a, b) =>
        {
            int r = AsciiCaseMap.Compare(a.Info!.BaseSubject, b.Info!.BaseSubject);
            return r != 0 ? r : CompareDate(a, b);
        });
        var threads = new List<ThreadNode>();
        ThreadNode? parent = null;
        foreach (var node in sorted)
        {
            if (parent is not null && AsciiCaseMap.Compare(parent.Info!.BaseSubject, node.Info!.BaseSubject) == 0)
            {
                parent.Add(node);
                continue;
            }
            parent = node;
            threads.Add(node);
        }
        threads.Sort(CompareDate);
        return threads;
    }

    // RFC 5256 §3 REFERENCES
    public static List<ThreadNode> References(IReadOnlyList<(int Seq, MessageSortInfo Info)> messages)
    {
        // (1) Link messages by Message-ID. A message without one, or repeating an earlier
        // message's, gets a unique id (it is kept out of the table).
        var table = new Dictionary<string, ThreadNode>(StringComparer.Ordinal);
        var all = new List<ThreadNode>();
        foreach (var (seq, mi) in messages)
        {
            ThreadNode node;
            if (mi.MessageId.Length > 0 && table.TryGetValue(mi.MessageId, out var existing) && existing.IsDummy)
            {
                node = existing;
                node.Info = mi;
                node.Seq = seq;
            }
            else
            {
                node = new ThreadNode(mi, seq);
                all.Add(node);
                if (mi.MessageId.Length > 0 && !table.ContainsKey(mi.MessageId)) table[mi.MessageId] = node;
            }

            // (1A) Link the referenced messages in order, never changing an existing parent
            // nor creating a loop.
            // At most the last MaxReferences ids: one message with a huge References header
            // would otherwise build a chain of dummies as deep as it is long (quadratic loop
            // checks, and recursion below as deep as the chain).
            string[] refs = mi.References.Length > 0 ? mi.References[^Math.Min(MaxReferences, mi.References.Length)..]
                : mi.InReplyTo.Length > 0 ? [mi.InReplyTo] : [];
            ThreadNode? prev = null;
            foreach (var id in refs)
            {
                if (id.Length == 0) continue;
                if (!table.TryGetValue(id, out var container))
                {
                    container = new ThreadNode();
                    table[id] = container;
                    all.Add(container);
                }
                if (prev is not null && container.Parent is null && !prev.HasAncestorOrSelf(container)) prev.Add(container);
                prev = container;
            }

            // (1B) The last reference is the parent: this message's own word beats what
            // earlier messages' References implied.
            node.Unlink();
            if (prev is not null && !prev.HasAncestorOrSelf(node)) prev.Add(node);
        }

        // (2) The root set; (3) the table is dropped with this method.
        var roots = all.Where(n => n.Parent is null).ToList();

        // (4) Prune dummies.
        roots = Prune(roots, atRoot: true);

        // (5) Sort the roots by sent date (a dummy by its first child's).
        foreach (var r in roots.Where(r => r.IsDummy)) r.Children.Sort(CompareDate);
        roots.Sort(CompareDate);

        // (6) Merge threads with the same base subject.
        roots = MergeSubjects(roots);

        // (7) Sort every set of siblings, children before their parents.
        foreach (var r in roots) SortTree(r);
        roots.Sort(CompareDate);
        return roots;
    }

    private static List<ThreadNode> Prune(List<ThreadNode> siblings, bool atRoot)
    {
        var result = new List<ThreadNode>();
        foreach (var node in siblings)
        {
            var children = Prune(node.Children, atRoot: false);
            node.Children.Clear();
            foreach (var ch in children) node.Add(ch);
            if (!node.IsDummy)
            {
                result.Add(node);
                continue;
            }
            // (4A) A dummy without children goes. (4B) One with children goes too and its
            // children take its place, except at the root where only a single child is promoted.
            if (node.Children.Count == 0) continue;
            if (atRoot && node.Children.Count > 1)
            {
                result.Add(node);
                continue;
            }
            foreach (var ch in node.Children) ch.Parent = node.Parent;
            result.AddRange(node.Children);
            node.Children.Clear();
        }
        return result;
    }

    private static List<ThreadNode> MergeSubjects(List<ThreadNode> roots)
    {
        // (6B) One thread per base subject: prefer a dummy, then a message that is not a reply.
        var table = new Dictionary<string, ThreadNode>(StringComparer.Ordinal);
        foreach (var r in roots)
        {
            var subject = Subject(r);
            if (subject.Length == 0) continue;
            if (!table.TryGetValue(subject, out var t)) table[subject] = r;
            else if (!t.IsDummy && (r.IsDummy || (t.Info!.SubjectIsReply && !r.Info!.SubjectIsReply))) table[subject] = r;
        }

        // (6C) Merge the others into it. Positions are kept: a root that gets a new dummy
        // parent is replaced by it, merged roots drop out (one pass, no list searches).
        var replaced = new Dictionary<ThreadNode, ThreadNode>();
        var removed = new HashSet<ThreadNode>();
        foreach (var r in roots)
        {
            if (removed.Contains(r)) continue;
            var subject = Subject(r);
            if (subject.Length == 0) continue;
            var t = table[subject];
            if (t == r) continue;
            if (t.IsDummy && r.IsDummy)
            {
                foreach (var ch in r.Children.ToList()) t.Add(ch);
                r.Children.Clear();
            }
            else if (t.IsDummy || (r.Info!.SubjectIsReply && !t.Info!.SubjectIsReply))
            {
                t.Add(r);
            }
            else
            {
                var dummy = new ThreadNode();
                replaced[t] = dummy;
                dummy.Add(t);
                dummy.Add(r);
                table[subject] = dummy;
                removed.Add(t);
            }
            removed.Add(r);
        }
        return [.. roots.Select(r => replaced.GetValueOrDefault(r, r)).Where(r => !removed.Contains(r))];
    }

    /// <summary>The base subject of a thread (its first child's for a dummy), folded for comparison.</summary>
    private static string Subject(ThreadNode n)
    {
        var info = n.IsDummy ? n.Children[0].Info : n.Info;
        return AsciiCaseMap.Key(info?.BaseSubject ?? "");
    }

    private static void SortTree(ThreadNode node)
    {
        foreach (var ch in node.Children) SortTree(ch);
        node.Children.Sort(CompareDate);
    }

    /// <summary>By sent date, then sequence number; a dummy as its first child.</summary>
    private static int CompareDate(ThreadNode a, ThreadNode b)
    {
        var x = First(a);
        var y = First(b);
        int r = x.Info!.SentDate.CompareTo(y.Info!.SentDate);
        return r != 0 ? r : x.Seq.CompareTo(y.Seq);

        static ThreadNode First(ThreadNode n)
        {
            while (n.IsDummy && n.Children.Count > 0) n = n.Children[0];
            return n;
        }
    }
}
