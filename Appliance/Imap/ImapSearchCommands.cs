using System.Text;
using Appliance.Store;

namespace Appliance.Imap;

/// <summary>
/// SEARCH (RFC 9051 §6.4.4, ESEARCH RFC 4731, CONDSTORE MODSEQ RFC 7162 §3.1.5), SORT and
/// THREAD (RFC 5256, DISPLAYFROM/DISPLAYTO RFC 5957). Each writes its untagged response to
/// <see cref="ImapSearchContext.Writer"/>; the caller writes the tagged OK. Errors are thrown
/// as <see cref="ImapException"/>: BAD for syntax, NO [BADCHARSET ...] for an unknown charset.
/// Each returns true when the MODSEQ search key was used, so the session can enable CONDSTORE
/// implicitly (RFC 7162 §3.1).
/// </summary>
public static class ImapSearchCommands
{
    [Flags]
    private enum ReturnOptions { None = 0, Min = 1, Max = 2, Count = 4, All = 8 }

    // RFC 9051 §6.4.4 SEARCH: [RETURN (options)] [CHARSET charset] search-key *(SP search-key)
    public static async Task<bool> SearchAsync(ImapSearchContext c, IReadOnlyList<ImapValue> args)
    {
        int i = 0;
        ReturnOptions? options = null;
        if (i < args.Count && args[i].Is("RETURN"))
        {
            i++;
            if (i >= args.Count || !args[i].IsList) throw ImapException.Bad("RETURN needs a list of options");
            options = ParseReturn(args[i++]);
        }
        var charset = Encoding.UTF8;
        if (i < args.Count && args[i].Is("CHARSET"))
        {
            // RFC 6855 §3: after ENABLE UTF8=ACCEPT a SEARCH must not carry a charset.
            if (c.Utf8Accept) throw ImapException.Bad("CHARSET is not allowed once UTF8=ACCEPT is enabled");
            i++;
            if (i >= args.Count) throw ImapException.Bad("CHARSET needs a charset name");
            charset = ImapSearchParser.Charset(args[i++]);
        }
        var key = ImapSearchParser.Parse(args, i, charset);
        bool modSeq = ImapSearchParser.UsesModSeq(key);
        var matched = await new ImapSearchEvaluator(c.Source, c.Mailbox).EvaluateAsync(key, c.Ct);

        var w = c.Writer;
        if (options is null && !c.Rev2)
        {
            w.Raw("* SEARCH"u8);
            foreach (var m in matched) w.Space().Number(Number(c, m));
            if (modSeq && matched.Count > 0) w.Raw(" (MODSEQ "u8).Number(matched.Max(m => m.Message.ModSeq)).Raw(")"u8);
            w.Crlf();
            return modSeq;
        }

        // RFC 4731 ESEARCH; RETURN () and IMAP4rev2's plain SEARCH mean ALL.
        var o = options is null or ReturnOptions.None ? ReturnOptions.All : options.Value;
        w.Raw("* ESEARCH (TAG "u8).String(c.Tag).Raw(")"u8);
        if (c.Uid) w.Raw(" UID"u8);
        if (matched.Count > 0 && o.HasFlag(ReturnOptions.Min)) w.Raw(" MIN "u8).Number(Number(c, matched[0]));
        if (matched.Count > 0 && o.HasFlag(ReturnOptions.Max)) w.Raw(" MAX "u8).Number(Number(c, matched[^1]));
        if (o.HasFlag(ReturnOptions.Count)) w.Raw(" COUNT "u8).Number(matched.Count);
        if (matched.Count > 0 && o.HasFlag(ReturnOptions.All)) w.Raw(" ALL "u8).Text(SequenceSet.Format(matched.Select(m => Number(c, m))));
        if (modSeq && matched.Count > 0)
        {
            // RFC 7162 §3.1.10: with only MIN and/or MAX, the highest MODSEQ of the messages returned.
            long highest = (o & (ReturnOptions.All | ReturnOptions.Count)) == 0
                ? Math.Max(o.HasFlag(ReturnOptions.Min) ? matched[0].Message.ModSeq : 0, o.HasFlag(ReturnOptions.Max) ? matched[^1].Message.ModSeq : 0)
                : matched.Max(m => m.Message.ModSeq);
            w.Raw(" MODSEQ "u8).Number(highest);
        }
        w.Crlf();
        return modSeq;
    }

    // RFC 5256 §3 SORT: (sort-criterion *(SP sort-criterion)) SP charset 1*(SP search-key)
    public static async Task<bool> SortAsync(ImapSearchContext c, IReadOnlyList<ImapValue> args)
    {
        if (args.Count < 3 || !args[0].IsList) throw ImapException.Bad("SORT needs (criteria) charset search-keys");
        var criteria = ImapSort.ParseCriteria(args[0]);
        var (key, matched, evaluator) = await SearchForAsync(c, args);
        bool modSeq = ImapSearchParser.UsesModSeq(key);
        var info = ImapSort.NeedsSortInfo(criteria) ? await SortInfoAsync(c, evaluator, matched) : [];
        var sorted = ImapSort.Sort(matched, info, criteria);

        var w = c.Writer;
        w.Raw("* SORT"u8);
        foreach (var m in sorted) w.Space().Number(Number(c, m));
        // RFC 7162 §3.1.5: SORT with MODSEQ gets the same trailer as SEARCH.
        if (modSeq && sorted.Count > 0) w.Raw(" (MODSEQ "u8).Number(sorted.Max(m => m.Message.ModSeq)).Raw(")"u8);
        w.Crlf();
        return modSeq;
    }

    // RFC 5256 §3 THREAD: thread-alg SP charset 1*(SP search-key)
    public static async Task<bool> ThreadAsync(ImapSearchContext c, IReadOnlyList<ImapValue> args)
    {
        if (args.Count < 3 || !args[0].IsAtom) throw ImapException.Bad("THREAD needs algorithm charset search-keys");
        var algorithm = args[0].Keyword;
        if (algorithm is not ("REFERENCES" or "ORDEREDSUBJECT")) throw ImapException.Bad($"unknown threading algorithm {args[0].Text}");
        var (key, matched, evaluator) = await SearchForAsync(c, args);
        var info = await SortInfoAsync(c, evaluator, matched);
        var keyed = matched.Select(m => (m.Seq, info[m.Message.Uid])).ToList();
        var threads = algorithm == "REFERENCES" ? MessageThreads.References(keyed) : MessageThreads.OrderedSubject(keyed);

        var w = c.Writer;
        w.Raw("* THREAD"u8);
        if (threads.Count > 0) w.Space();
        foreach (var t in threads) ImapThread.Write(w, t, c.Uid);
        w.Crlf();
        return ImapSearchParser.UsesModSeq(key);
    }

    /// <summary>The charset at args[1] and the search keys after it, as SORT and THREAD have them.</summary>
    private static async Task<(SearchKey Key, List<(int Seq, StoredMessage Message)> Matched, ImapSearchEvaluator Evaluator)> SearchForAsync(
        ImapSearchContext c, IReadOnlyList<ImapValue> args)
    {
        var charset = ImapSearchParser.Charset(args[1]);
        var key = ImapSearchParser.Parse(args, 2, charset);
        var evaluator = new ImapSearchEvaluator(c.Source, c.Mailbox);
        var matched = await evaluator.EvaluateAsync(key, c.Ct);
        return (key, matched, evaluator);
    }

    /// <summary>Sort info of the matched messages, reusing what SENT* keys already fetched.</summary>
    private static async Task<Dictionary<long, MessageSortInfo>> SortInfoAsync(
        ImapSearchContext c, ImapSearchEvaluator evaluator, List<(int Seq, StoredMessage Message)> matched)
    {
        var info = evaluator.SortInfo is { } known ? new Dictionary<long, MessageSortInfo>(known) : [];
        var missing = matched.Where(m => !info.ContainsKey(m.Message.Uid)).Select(m => m.Message.Uid).ToList();
        if (missing.Count > 0)
        {
            foreach (var i in await c.Source.GetSortInfoAsync(missing, c.Ct)) info[i.Uid] = i;
        }
        foreach (var (_, m) in matched)
        {
            if (!info.ContainsKey(m.Uid)) info[m.Uid] = ImapSearchEvaluator.Fallback(m);
        }
        return info;
    }

    private static ReturnOptions ParseReturn(ImapValue list)
    {
        var o = ReturnOptions.None;
        foreach (var item in list.Items)
        {
            o |= item.Keyword switch
            {
                "MIN" => ReturnOptions.Min,
                "MAX" => ReturnOptions.Max,
                "COUNT" => ReturnOptions.Count,
                "ALL" => ReturnOptions.All,
                "SAVE" => throw ImapException.Bad("RETURN SAVE (SEARCHRES) is not supported"),
                _ => throw ImapException.Bad($"unknown search return option {item}"),
            };
        }
        return o;
    }

    private static long Number(ImapSearchContext c, (int Seq, StoredMessage Message) m) => c.Uid ? m.Message.Uid : m.Seq;
}
