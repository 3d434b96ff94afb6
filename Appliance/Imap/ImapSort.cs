using Appliance.Store;

namespace Appliance.Imap;

public enum SortKey { Arrival, Cc, Date, From, Size, Subject, To, DisplayFrom, DisplayTo }

public readonly record struct SortCriterion(SortKey Key, bool Reverse);

/// <summary>
/// RFC 5256 §3 SORT ordering: criteria in priority order, each optionally REVERSEd, and the
/// sequence number as the final, never reversed tie-break. Strings collate with
/// i;ascii-casemap (<see cref="AsciiCaseMap"/>).
/// </summary>
public static class ImapSort
{
    public static List<SortCriterion> ParseCriteria(ImapValue list)
    {
        var result = new List<SortCriterion>();
        bool reverse = false;
        foreach (var item in list.Items)
        {
            var k = item.Keyword;
            if (k == "REVERSE")
            {
                if (reverse) throw ImapException.Bad("REVERSE must be followed by a sort key");
                reverse = true;
                continue;
            }
            SortKey key = k switch
            {
                "ARRIVAL" => SortKey.Arrival,
                "CC" => SortKey.Cc,
                "DATE" => SortKey.Date,
                "FROM" => SortKey.From,
                "SIZE" => SortKey.Size,
                "SUBJECT" => SortKey.Subject,
                "TO" => SortKey.To,
                "DISPLAYFROM" => SortKey.DisplayFrom,
                "DISPLAYTO" => SortKey.DisplayTo,
                _ => throw ImapException.Bad($"unknown sort key {item}"),
            };
            result.Add(new SortCriterion(key, reverse));
            reverse = false;
        }
        if (reverse) throw ImapException.Bad("REVERSE must be followed by a sort key");
        if (result.Count == 0) throw ImapException.Bad("SORT needs at least one sort key");
        return result;
    }

    /// <summary>ARRIVAL and SIZE come from the view; everything else from the store's sort info.</summary>
    public static bool NeedsSortInfo(IEnumerable<SortCriterion> criteria) =>
        criteria.Any(c => c.Key is not (SortKey.Arrival or SortKey.Size));

    public static List<(int Seq, StoredMessage Message)> Sort(
        List<(int Seq, StoredMessage Message)> messages, IReadOnlyDictionary<long, MessageSortInfo> info, IReadOnlyList<SortCriterion> criteria)
    {
        var sorted = new List<(int Seq, StoredMessage Message)>(messages);
        sorted.Sort((a, b) =>
        {
            foreach (var c in criteria)
            {
                int r = Compare(c.Key, a.Message, b.Message, info);
                if (r != 0) return c.Reverse ? -r : r;
            }
            return a.Seq.CompareTo(b.Seq);
        });
        return sorted;
    }

    private static int Compare(SortKey key, StoredMessage a, StoredMessage b, IReadOnlyDictionary<long, MessageSortInfo> info) => key switch
    {
        SortKey.Arrival => a.InternalDate.CompareTo(b.InternalDate),
        SortKey.Size => a.Size.CompareTo(b.Size),
        SortKey.Date => info[a.Uid].SentDate.CompareTo(info[b.Uid].SentDate),
        SortKey.Subject => AsciiCaseMap.Compare(info[a.Uid].BaseSubject, info[b.Uid].BaseSubject),
        SortKey.From => AsciiCaseMap.Compare(info[a.Uid].From, info[b.Uid].From),
        SortKey.To => AsciiCaseMap.Compare(info[a.Uid].To, info[b.Uid].To),
        SortKey.Cc => AsciiCaseMap.Compare(info[a.Uid].Cc, info[b.Uid].Cc),
        SortKey.DisplayFrom => AsciiCaseMap.Compare(info[a.Uid].DisplayFrom, info[b.Uid].DisplayFrom),
        SortKey.DisplayTo => AsciiCaseMap.Compare(info[a.Uid].DisplayTo, info[b.Uid].DisplayTo),
        _ => 0,
    };
}
