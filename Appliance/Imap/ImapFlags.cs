using Appliance.Store;

namespace Appliance.Imap;

/// <summary>System flags and keywords (RFC 9051 §2.3.2) in and out of their wire form.</summary>
public static class ImapFlags
{
    /// <summary>FLAGS of SELECT: the system flags plus the $-keywords clients use most.</summary>
    public const string SelectFlags = @"(\Answered \Flagged \Deleted \Seen \Draft $Forwarded $MDNSent $Junk $NotJunk $Phishing)";
    /// <summary>PERMANENTFLAGS: \* means clients may create keywords.</summary>
    public const string PermanentFlags = @"(\Answered \Flagged \Deleted \Seen \Draft $Forwarded $MDNSent $Junk $NotJunk $Phishing \*)";

    public const int MaxKeywords = 64;

    private static readonly (string Name, MessageFlags Flag)[] System =
    [
        (@"\Seen", MessageFlags.Seen), (@"\Answered", MessageFlags.Answered), (@"\Flagged", MessageFlags.Flagged),
        (@"\Deleted", MessageFlags.Deleted), (@"\Draft", MessageFlags.Draft),
    ];

    /// <summary>
    /// Parses a flag list (or a single flag). \Recent is accepted and ignored (RFC 9051 removed
    /// it); other unknown backslash flags and invalid keywords are BAD.
    /// </summary>
    public static (MessageFlags Flags, string[] Keywords) Parse(ImapValue value)
    {
        var items = value.IsList ? value.Items : [value];
        var flags = MessageFlags.None;
        var keywords = new List<string>();
        foreach (var item in items)
        {
            if (!item.IsAtom) throw ImapException.Bad("flags must be atoms");
            var text = item.Text;
            if (text.StartsWith('\\'))
            {
                var match = System.FirstOrDefault(s => s.Name.Equals(text, StringComparison.OrdinalIgnoreCase));
                if (match.Name is not null) flags |= match.Flag;
                else if (!text.Equals(@"\Recent", StringComparison.OrdinalIgnoreCase)) throw ImapException.Bad($"unknown system flag {text}");
                continue;
            }
            if (text.Length == 0 || text.Length > 100 || !item.Bytes.All(IsAtomChar) || text.Contains(']'))
                throw ImapException.Bad("invalid keyword");
            if (!keywords.Contains(text, StringComparer.OrdinalIgnoreCase)) keywords.Add(text);
        }
        if (keywords.Count > MaxKeywords) throw ImapException.No("too many keywords", "LIMIT");
        return (flags, keywords.ToArray());
    }

    /// <summary>Writes "(\Seen $Keyword ...)".</summary>
    public static ImapWriter WriteFlags(this ImapWriter w, MessageFlags flags, string[] keywords)
    {
        w.Raw("("u8);
        bool first = true;
        foreach (var (name, flag) in System)
        {
            if ((flags & flag) == 0) continue;
            if (!first) w.Space();
            w.Text(name);
            first = false;
        }
        foreach (var k in keywords)
        {
            if (!first) w.Space();
            w.Text(k);
            first = false;
        }
        return w.Raw(")"u8);
    }

    private static bool IsAtomChar(byte b) => ImapWriter.IsAStringChar(b) && b != ']';
}
