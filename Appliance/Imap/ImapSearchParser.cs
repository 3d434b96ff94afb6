using System.Globalization;
using System.Text;
using Appliance.Store;

namespace Appliance.Imap;

/// <summary>
/// Parses search-key lists (RFC 9051 §6.4.4, RFC 7162 §3.1.5 MODSEQ) and the CHARSET that
/// decodes their strings. Syntax errors are BAD; an unsupported charset is
/// NO [BADCHARSET (...)]. The "$" of SEARCHRES is not supported (BAD).
/// </summary>
public static class ImapSearchParser
{
    /// <summary>Charsets we decode. Code-page encodings are not registered in this AOT build, so only those .NET has built in.</summary>
    public const string SupportedCharsets = "(US-ASCII UTF-8 ISO-8859-1)";

    private const int MaxDepth = 100;

    /// <summary>The encoding for a CHARSET name; NO [BADCHARSET] when unsupported.</summary>
    public static Encoding Charset(ImapValue value)
    {
        if (!value.IsString) throw ImapException.Bad("charset expected");
        return value.Text.ToUpperInvariant() switch
        {
            "US-ASCII" or "ASCII" or "UTF-8" or "UTF8" => Encoding.UTF8,
            "ISO-8859-1" or "LATIN1" or "ISO_8859-1" => Encoding.Latin1,
            _ => throw ImapException.No($"unsupported charset {value.Text}", "BADCHARSET " + SupportedCharsets),
        };
    }

    /// <summary>Parses <paramref name="args"/> from <paramref name="start"/> to the end as one And of search keys.</summary>
    public static SearchKey Parse(IReadOnlyList<ImapValue> args, int start, Encoding charset)
    {
        if (start >= args.Count) throw ImapException.Bad("search key expected");
        var keys = new List<SearchKey>();
        int i = start;
        while (i < args.Count) keys.Add(ParseKey(args, ref i, charset, 0));
        return keys.Count == 1 ? keys[0] : new AndKey(keys);
    }

    /// <summary>True when the tree uses the MODSEQ key (CONDSTORE then adds MODSEQ to the response).</summary>
    public static bool UsesModSeq(SearchKey key) => key switch
    {
        ModSeqKey => true,
        NotKey n => UsesModSeq(n.Key),
        OrKey o => UsesModSeq(o.Left) || UsesModSeq(o.Right),
        AndKey a => a.Keys.Any(UsesModSeq),
        _ => false,
    };

    private static SearchKey ParseKey(IReadOnlyList<ImapValue> args, ref int i, Encoding charset, int depth)
    {
        if (depth > MaxDepth) throw ImapException.Bad("search keys nested too deeply");
        var v = args[i++];
        if (v.IsList)
        {
            if (v.Items.Count == 0) throw ImapException.Bad("empty search key group");
            var keys = new List<SearchKey>();
            int j = 0;
            while (j < v.Items.Count) keys.Add(ParseKey(v.Items, ref j, charset, depth + 1));
            return keys.Count == 1 ? keys[0] : new AndKey(keys);
        }
        if (!v.IsAtom) throw ImapException.Bad($"search key expected, got {v}");
        if (v.Bytes.Contains((byte)'$')) throw ImapException.Bad("search result variable $ (SEARCHRES) is not supported");
        if (v.Bytes[0] is (>= (byte)'0' and <= (byte)'9') or (byte)'*')
        {
            if (!SequenceSet.TryParse(v, out var seq)) throw ImapException.Bad($"invalid sequence set {v.Text}");
            return new SequenceKey(seq);
        }
        switch (v.Keyword)
        {
            case "ALL": return new AllKey();
            case "ANSWERED": return new FlagKey(MessageFlags.Answered, true);
            case "DELETED": return new FlagKey(MessageFlags.Deleted, true);
            case "DRAFT": return new FlagKey(MessageFlags.Draft, true);
            case "FLAGGED": return new FlagKey(MessageFlags.Flagged, true);
            case "SEEN": return new FlagKey(MessageFlags.Seen, true);
            case "UNANSWERED": return new FlagKey(MessageFlags.Answered, false);
            case "UNDELETED": return new FlagKey(MessageFlags.Deleted, false);
            case "UNDRAFT": return new FlagKey(MessageFlags.Draft, false);
            case "UNFLAGGED": return new FlagKey(MessageFlags.Flagged, false);
            case "UNSEEN": return new FlagKey(MessageFlags.Seen, false);
            // RFC 9051 drops \Recent: no message is recent, so NEW (RECENT UNSEEN) matches nothing too.
            case "RECENT" or "NEW": return new NoneKey();
            case "OLD": return new AllKey();
            case "KEYWORD": return Keyword(Next(args, ref i, "KEYWORD"), true);
            case "UNKEYWORD": return Keyword(Next(args, ref i, "UNKEYWORD"), false);
            case "BEFORE": return new DateKey(Date(Next(args, ref i, "BEFORE")), DateComparison.Before, false);
            case "ON": return new DateKey(Date(Next(args, ref i, "ON")), DateComparison.On, false);
            case "SINCE": return new DateKey(Date(Next(args, ref i, "SINCE")), DateComparison.Since, false);
            case "SENTBEFORE": return new DateKey(Date(Next(args, ref i, "SENTBEFORE")), DateComparison.Before, true);
            case "SENTON": return new DateKey(Date(Next(args, ref i, "SENTON")), DateComparison.On, true);
            case "SENTSINCE": return new DateKey(Date(Next(args, ref i, "SENTSINCE")), DateComparison.Since, true);
            case "LARGER": return new SizeKey(Number(Next(args, ref i, "LARGER")), true);
            case "SMALLER": return new SizeKey(Number(Next(args, ref i, "SMALLER")), false);
            case "BODY": return Text(TextField.Body, args, ref i, charset, "BODY");
            case "TEXT": return Text(TextField.Text, args, ref i, charset, "TEXT");
            case "SUBJECT": return Text(TextField.Subject, args, ref i, charset, "SUBJECT");
            case "FROM": return Text(TextField.From, args, ref i, charset, "FROM");
            case "TO": return Text(TextField.To, args, ref i, charset, "TO");
            case "CC": return Text(TextField.Cc, args, ref i, charset, "CC");
            case "BCC": return Text(TextField.Bcc, args, ref i, charset, "BCC");
            case "HEADER":
                {
                    var name = Next(args, ref i, "HEADER");
                    if (!name.IsString || name.Bytes.Length == 0 || name.Bytes.Any(b => b is <= 32 or >= 127 or (byte)':'))
                        throw ImapException.Bad("HEADER needs a header field name");
                    var value = Next(args, ref i, "HEADER");
                    if (!value.IsString) throw ImapException.Bad("HEADER needs a string");
                    return new TextKey(TextField.Header, charset.GetString(value.Bytes), name.Text);
                }
            case "UID":
                {
                    var set = Next(args, ref i, "UID");
                    if (set.IsAtom && set.Bytes.Contains((byte)'$')) throw ImapException.Bad("search result variable $ (SEARCHRES) is not supported");
                    if (!SequenceSet.TryParse(set, out var uids)) throw ImapException.Bad("UID needs a sequence set");
                    return new UidKey(uids);
                }
            case "NOT": return new NotKey(ParseAfter(args, ref i, charset, depth, "NOT"));
            case "OR":
                {
                    var left = ParseAfter(args, ref i, charset, depth, "OR");
                    var right = ParseAfter(args, ref i, charset, depth, "OR");
                    return new OrKey(left, right);
                }
            case "MODSEQ": return ModSeq(args, ref i);
            default: throw ImapException.Bad($"unknown search key {v.Text}");
        }
    }

    private static SearchKey ParseAfter(IReadOnlyList<ImapValue> args, ref int i, Encoding charset, int depth, string key)
    {
        if (i >= args.Count) throw ImapException.Bad($"{key} needs a search key");
        return ParseKey(args, ref i, charset, depth + 1);
    }

    private static ImapValue Next(IReadOnlyList<ImapValue> args, ref int i, string key)
    {
        if (i >= args.Count) throw ImapException.Bad($"{key} needs an argument");
        return args[i++];
    }

    private static TextKey Text(TextField field, IReadOnlyList<ImapValue> args, ref int i, Encoding charset, string key)
    {
        var value = Next(args, ref i, key);
        if (!value.IsString) throw ImapException.Bad($"{key} needs a string");
        return new TextKey(field, charset.GetString(value.Bytes), null);
    }

    private static KeywordKey Keyword(ImapValue value, bool set)
    {
        if (!value.IsAtom || value.Bytes.Length == 0) throw ImapException.Bad("KEYWORD needs a flag keyword");
        return new KeywordKey(value.Text, set);
    }

    private static long Number(ImapValue value)
    {
        if (!value.TryGetNumber(out var n)) throw ImapException.Bad($"number expected, got {value}");
        return n;
    }

    /// <summary>RFC 7162: MODSEQ [entry-name entry-type-req] mod-sequence-valzer. The entry is accepted and ignored (one MODSEQ per message).</summary>
    private static ModSeqKey ModSeq(IReadOnlyList<ImapValue> args, ref int i)
    {
        var v = Next(args, ref i, "MODSEQ");
        if (!v.TryGetNumber(out _))
        {
            if (!v.IsString || v.IsAtom) throw ImapException.Bad("MODSEQ entry name must be a quoted string");
            var type = Next(args, ref i, "MODSEQ");
            if (!(type.Is("priv") || type.Is("shared") || type.Is("all"))) throw ImapException.Bad("MODSEQ entry type must be priv, shared or all");
            v = Next(args, ref i, "MODSEQ");
        }
        if (!v.TryGetNumber(out var n)) throw ImapException.Bad("MODSEQ needs a mod-sequence value");
        return new ModSeqKey(n);
    }

    /// <summary>RFC 9051 date: date-day "-" date-month "-" date-year, as an atom or quoted.</summary>
    public static DateOnly Date(ImapValue value)
    {
        if (value.Kind is not (ImapValueKind.Atom or ImapValueKind.Quoted)) throw ImapException.Bad("date expected");
        // "d" takes one or two digits, "MMM" any case of the English month (invariant culture).
        if (DateOnly.TryParseExact(value.Text, "d-MMM-yyyy", CultureInfo.InvariantCulture, DateTimeStyles.None, out var date))
            return date;
        throw ImapException.Bad($"invalid date {value.Text} (want d-Mon-yyyy)");
    }
}
