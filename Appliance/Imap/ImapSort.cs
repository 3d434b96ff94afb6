using System.Text;
using Appliance.Store;

namespace Appliance.Imap;

public enum SortKey { Arrival, Cc, Date, From, Size, Subject, To, DisplayFrom, DisplayTo }

public readonly record struct SortCriterion(SortKey Key, bool Reverse);

/// <summary>
/// RFC 5256 §3 SORT ordering: criteria in priority order, each optionally REVERSEd, and the
/// sequence number as the final, never reversed tie-break. Strings collate with
/// i;ascii-casemap (RFC 4790: a-z folded to A-Z, then by code point, i.e. UTF-8 octet order).
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
        SortKey.Subject => CompareCaseMap(info[a.Uid].BaseSubject, info[b.Uid].BaseSubject),
        SortKey.From => CompareCaseMap(info[a.Uid].From, info[b.Uid].From),
        SortKey.To => CompareCaseMap(info[a.Uid].To, info[b.Uid].To),
        SortKey.Cc => CompareCaseMap(info[a.Uid].Cc, info[b.Uid].Cc),
        SortKey.DisplayFrom => CompareCaseMap(info[a.Uid].DisplayFrom, info[b.Uid].DisplayFrom),
        SortKey.DisplayTo => CompareCaseMap(info[a.Uid].DisplayTo, info[b.Uid].DisplayTo),
        _ => 0,
    };

    /// <summary>i;ascii-casemap (RFC 4790 §9.2): ASCII letters fold to upper case, the rest compares by code point.</summary>
    public static int CompareCaseMap(string a, string b)
    {
        var ea = a.EnumerateRunes();
        var eb = b.EnumerateRunes();
        while (true)
        {
            bool ha = ea.MoveNext(), hb = eb.MoveNext();
            if (!ha || !hb) return ha == hb ? 0 : ha ? 1 : -1;
            int r = Fold(ea.Current).CompareTo(Fold(eb.Current));
            if (r != 0) return r;
        }

        static int Fold(Rune r) => r.Value is >= 'a' and <= 'z' ? r.Value - 32 : r.Value;
    }

    /// <summary>The i;ascii-casemap equality key of a string (base subjects in THREAD).</summary>
    public static string CaseMapKey(string s)
    {
        var chars = s.ToCharArray();
        for (int i = 0; i < chars.Length; i++)
        {
            if (chars[i] is >= 'a' and <= 'z') chars[i] = (char)(chars[i] - 32);
        }
        return new string(chars);
    }
}
