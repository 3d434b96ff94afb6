using Appliance.Store;

namespace Appliance.Imap;

/// <summary>THREAD responses: the trees come from <see cref="MessageThreads"/> (RFC 5256 §3), written here as thread-lists.</summary>
public static class ImapThread
{
    /// <summary>
    /// RFC 5256 §4 thread-list: "(" number ... ")". A message with one child continues the
    /// list; with several, each child's subtree is a nested list; a dummy writes only the nested lists.
    /// </summary>
    public static void Write(ImapWriter w, ThreadNode root, bool uid)
    {
        w.Raw("("u8);
        WriteMembers(w, root, uid);
        w.Raw(")"u8);
    }

    private static void WriteMembers(ImapWriter w, ThreadNode node, bool uid)
    {
        while (true)
        {
            if (!node.IsDummy)
            {
                w.Number(uid ? node.Info!.Uid : node.Seq);
                if (node.Children.Count == 0) return;
                w.Space();
            }
            if (node.Children.Count == 1 && !node.IsDummy)
            {
                node = node.Children[0];
                continue;
            }
            foreach (var ch in node.Children) Write(w, ch, uid);
            return;
        }
    }
}
