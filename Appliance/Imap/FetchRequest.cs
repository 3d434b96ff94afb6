using System.Globalization;
using System.Text;

namespace Appliance.Imap;

// Implementation notes
// RFC 9051 §6.4.5 FETCH, RFC 3516 BINARY, RFC 7162 §3.1.4 CHANGEDSINCE / §3.2.6 VANISHED.
// The command parser keeps a bracketed section verbatim inside one atom
// ("BODY.PEEK[HEADER.FIELDS (From To)]<0.100>"), so the section grammar is parsed here, from
// the atom text. Everything is validated before any response is written: a malformed item is
// BAD for the whole command. Each item carries the label its response uses (RFC 9051 §7.5.2):
// PEEK is dropped, the partial shows only its origin.

public enum FetchItemKind
{
    Uid, Flags, InternalDate, Rfc822Size, Envelope, Body, BodyStructure, ModSeq,
    /// <summary>BODY[...], BODY.PEEK[...], RFC822, RFC822.HEADER, RFC822.TEXT.</summary>
    Section,
    /// <summary>BINARY[part], BINARY.PEEK[part] (RFC 3516).</summary>
    Binary,
    /// <summary>BINARY.SIZE[part] (RFC 3516).</summary>
    BinarySize,
}

/// <summary>What of a part a section names (RFC 9051 §6.4.5 section-text / section-msgtext).</summary>
public enum FetchSectionText { Content, Header, HeaderFields, HeaderFieldsNot, Text, Mime }

/// <summary>A section: <paramref name="Part"/> is "" for the whole message or "1.2.3";
/// <paramref name="Fields"/> are the upper-cased names of HEADER.FIELDS[.NOT], in request order.</summary>
public sealed record FetchSection(string Part, FetchSectionText Text, string[] Fields);

/// <summary>One fetch-att. <see cref="Label"/> is the response item name ("BODY[TEXT]&lt;0&gt;").
/// <see cref="Origin"/>/<see cref="Length"/> are the partial, when given.</summary>
public sealed record FetchItem(FetchItemKind Kind, string Label, FetchSection? Section = null, bool Peek = true,
    long? Origin = null, long? Length = null);

public sealed class FetchRequest
{
    private FetchRequest(List<FetchItem> items, long? changedSince, bool vanished)
    {
        Items = items;
        ChangedSince = changedSince;
        Vanished = vanished;
    }

    public IReadOnlyList<FetchItem> Items { get; }

    /// <summary>RFC 7162 §3.1.4.1 CHANGEDSINCE modifier: only messages with a greater MODSEQ.</summary>
    public long? ChangedSince { get; }

    /// <summary>RFC 7162 §3.2.6 VANISHED modifier (UID FETCH with CHANGEDSINCE only).</summary>
    public bool Vanished { get; }

    /// <summary>A non-peek BODY[...], BINARY[...], RFC822 or RFC822.TEXT: the session sets \Seen.</summary>
    public bool SetsSeen => Items.Any(i => i.Kind is FetchItemKind.Section or FetchItemKind.Binary && !i.Peek);

    /// <summary>ENVELOPE, BODY, BODYSTRUCTURE or any section other than the whole message.</summary>
    public bool NeedsStructure => Items.Any(i => i.Kind switch
    {
        FetchItemKind.Envelope or FetchItemKind.Body or FetchItemKind.BodyStructure => true,
        FetchItemKind.Section => !(i.Section!.Part.Length == 0 && i.Section.Text == FetchSectionText.Content),
        FetchItemKind.Binary or FetchItemKind.BinarySize => i.Section!.Part.Length > 0,
        _ => false,
    });

    /// <summary>Any item that reads the message bytes.</summary>
    public bool NeedsContent => Items.Any(i => i.Kind is FetchItemKind.Section or FetchItemKind.Binary or FetchItemKind.BinarySize);

    /// <summary>MODSEQ asked for, or implied by CHANGEDSINCE (RFC 7162 §3.1.4.1).</summary>
    public bool IncludesModSeq => ChangedSince is not null || Items.Any(i => i.Kind == FetchItemKind.ModSeq);

    /// <summary>
    /// Parses the arguments after the sequence set: a macro (ALL, FAST, FULL), one fetch-att or a
    /// parenthesized list of them, then an optional modifier list (RFC 7162).
    /// </summary>
    public static FetchRequest Parse(IReadOnlyList<ImapValue> args, int start, bool uidCommand)
    {
        if (start >= args.Count) throw ImapException.Bad("Missing fetch items");
        var first = args[start];
        var items = new List<FetchItem>();
        if (first.IsList)
        {
            if (first.Items.Count == 0) throw ImapException.Bad("Empty fetch item list");
            foreach (var v in first.Items) items.Add(ParseItem(v));
        }
        else if (first.Is("ALL") || first.Is("FAST") || first.Is("FULL"))
        {
            // RFC 9051 §6.4.5 macros.
            items.Add(new FetchItem(FetchItemKind.Flags, "FLAGS"));
            items.Add(new FetchItem(FetchItemKind.InternalDate, "INTERNALDATE"));
            items.Add(new FetchItem(FetchItemKind.Rfc822Size, "RFC822.SIZE"));
            if (!first.Is("FAST")) items.Add(new FetchItem(FetchItemKind.Envelope, "ENVELOPE"));
            if (first.Is("FULL")) items.Add(new FetchItem(FetchItemKind.Body, "BODY"));
        }
        else
        {
            items.Add(ParseItem(first));
        }

        long? changedSince = null;
        bool vanished = false;
        if (start + 1 < args.Count)
        {
            var mods = args[start + 1];
            if (!mods.IsList || mods.Items.Count == 0) throw ImapException.Bad("Invalid fetch modifiers");
            var m = mods.Items;
            for (int i = 0; i < m.Count; i++)
            {
                if (m[i].Is("CHANGEDSINCE") && changedSince is null && i + 1 < m.Count && m[i + 1].TryGetNumber(out long n))
                {
                    // RFC 7162 mod-sequence-value; 0 accepted (= every message), as Dovecot does.
                    changedSince = n;
                    i++;
                }
                else if (m[i].Is("VANISHED") && !vanished)
                {
                    vanished = true;
                }
                else
                {
                    throw ImapException.Bad("Unknown or repeated fetch modifier");
                }
            }
            if (start + 2 < args.Count) throw ImapException.Bad("Too many arguments");
        }
        // RFC 7162 §3.2.6: VANISHED only in UID FETCH, and only together with CHANGEDSINCE.
        if (vanished && (!uidCommand || changedSince is null))
            throw ImapException.Bad("VANISHED requires UID FETCH with CHANGEDSINCE");
        return new FetchRequest(items, changedSince, vanished);
    }

    private static FetchItem ParseItem(ImapValue v)
    {
        if (!v.IsAtom) throw ImapException.Bad("Invalid fetch item");
        string text = v.Text;
        int bracket = text.IndexOf('[', StringComparison.Ordinal);
        if (bracket < 0)
        {
            return text.ToUpperInvariant() switch
            {
                "UID" => new FetchItem(FetchItemKind.Uid, "UID"),
                "FLAGS" => new FetchItem(FetchItemKind.Flags, "FLAGS"),
                "INTERNALDATE" => new FetchItem(FetchItemKind.InternalDate, "INTERNALDATE"),
                "RFC822.SIZE" => new FetchItem(FetchItemKind.Rfc822Size, "RFC822.SIZE"),
                "ENVELOPE" => new FetchItem(FetchItemKind.Envelope, "ENVELOPE"),
                "BODY" => new FetchItem(FetchItemKind.Body, "BODY"),
                "BODYSTRUCTURE" => new FetchItem(FetchItemKind.BodyStructure, "BODYSTRUCTURE"),
                "MODSEQ" => new FetchItem(FetchItemKind.ModSeq, "MODSEQ"),
                // RFC 9051 §6.4.5: RFC822 = BODY[], RFC822.HEADER = BODY.PEEK[HEADER], RFC822.TEXT = BODY[TEXT].
                "RFC822" => new FetchItem(FetchItemKind.Section, "RFC822", new FetchSection("", FetchSectionText.Content, []), Peek: false),
                "RFC822.HEADER" => new FetchItem(FetchItemKind.Section, "RFC822.HEADER", new FetchSection("", FetchSectionText.Header, []), Peek: true),
                "RFC822.TEXT" => new FetchItem(FetchItemKind.Section, "RFC822.TEXT", new FetchSection("", FetchSectionText.Text, []), Peek: false),
                _ => throw ImapException.Bad($"Unknown fetch item {text}"),
            };
        }

        string name = text[..bracket].ToUpperInvariant();
        int close = text.LastIndexOf(']');
        if (close < bracket) throw ImapException.Bad("Invalid section");
        string spec = text[(bracket + 1)..close];
        string rest = text[(close + 1)..];
        var (kind, peek, binary) = name switch
        {
            "BODY" => (FetchItemKind.Section, false, false),
            "BODY.PEEK" => (FetchItemKind.Section, true, false),
            "BINARY" => (FetchItemKind.Binary, false, true),
            "BINARY.PEEK" => (FetchItemKind.Binary, true, true),
            "BINARY.SIZE" => (FetchItemKind.BinarySize, true, true),
            _ => throw ImapException.Bad($"Unknown fetch item {name}"),
        };

        FetchSection section;
        if (binary)
        {
            // RFC 3516 section-binary = "[" [section-part] "]"
            if (spec.Length > 0 && !IsPart(spec)) throw ImapException.Bad("Invalid BINARY section");
            section = new FetchSection(spec, FetchSectionText.Content, []);
        }
        else
        {
            section = ParseSection(spec);
        }

        long? origin = null, length = null;
        if (rest.Length > 0)
        {
            // RFC 9051 partial = "<" number64 "." nz-number64 ">"; not for BINARY.SIZE.
            if (kind == FetchItemKind.BinarySize || rest.Length < 5 || rest[0] != '<' || rest[^1] != '>')
                throw ImapException.Bad("Invalid partial");
            var range = rest[1..^1].Split('.');
            if (range.Length != 2 || !TryNumber(range[0], out long o) || !TryNumber(range[1], out long n) || n == 0)
                throw ImapException.Bad("Invalid partial");
            origin = o;
            length = n;
        }

        string prefix = kind switch { FetchItemKind.Section => "BODY", FetchItemKind.Binary => "BINARY", _ => "BINARY.SIZE" };
        string label = prefix + "[" + SectionLabel(section) + "]"
            + (origin is null ? "" : "<" + origin.Value.ToString(CultureInfo.InvariantCulture) + ">");
        return new FetchItem(kind, label, section, peek, origin, length);
    }

    /// <summary>RFC 9051 section-spec = section-msgtext / (section-part ["." section-text]).</summary>
    private static FetchSection ParseSection(string spec)
    {
        if (spec.Length == 0) return new FetchSection("", FetchSectionText.Content, []);
        // The part number is the leading run of digit groups; the text follows the last dot.
        int i = 0;
        int partEnd = 0;
        while (i < spec.Length && char.IsAsciiDigit(spec[i]))
        {
            while (i < spec.Length && char.IsAsciiDigit(spec[i])) i++;
            partEnd = i;
            if (i < spec.Length && spec[i] == '.') i++;
            else break;
        }
        string part = spec[..partEnd];
        if (part.Length > 0 && !IsPart(part)) throw ImapException.Bad("Invalid section part");
        string textSpec;
        if (partEnd == spec.Length) textSpec = "";
        else if (part.Length > 0)
        {
            if (spec[partEnd] != '.') throw ImapException.Bad("Invalid section");
            textSpec = spec[(partEnd + 1)..];
            if (textSpec.Length == 0) throw ImapException.Bad("Invalid section");
        }
        else textSpec = spec;

        if (textSpec.Length == 0) return new FetchSection(part, FetchSectionText.Content, []);
        string upper = textSpec.ToUpperInvariant();
        if (upper == "HEADER") return new FetchSection(part, FetchSectionText.Header, []);
        if (upper == "TEXT") return new FetchSection(part, FetchSectionText.Text, []);
        if (upper == "MIME")
        {
            // MIME only follows a part number (section-text, not section-msgtext).
            if (part.Length == 0) throw ImapException.Bad("MIME needs a part number");
            return new FetchSection(part, FetchSectionText.Mime, []);
        }
        FetchSectionText kind;
        string list;
        if (upper.StartsWith("HEADER.FIELDS.NOT ", StringComparison.Ordinal))
        {
            kind = FetchSectionText.HeaderFieldsNot;
            list = textSpec["HEADER.FIELDS.NOT ".Length..];
        }
        else if (upper.StartsWith("HEADER.FIELDS ", StringComparison.Ordinal))
        {
            kind = FetchSectionText.HeaderFields;
            list = textSpec["HEADER.FIELDS ".Length..];
        }
        else
        {
            throw ImapException.Bad("Invalid section");
        }
        return new FetchSection(part, kind, ParseHeaderList(list));
    }

    /// <summary>header-list = "(" header-fld-name *(SP header-fld-name) ")", names as atoms or quoted strings.</summary>
    private static string[] ParseHeaderList(string list)
    {
        if (list.Length < 3 || list[0] != '(' || list[^1] != ')') throw ImapException.Bad("Invalid header list");
        var names = new List<string>();
        int i = 1, end = list.Length - 1;
        while (true)
        {
            var name = new StringBuilder();
            if (i < end && list[i] == '"')
            {
                i++;
                while (true)
                {
                    if (i >= end) throw ImapException.Bad("Invalid header list");
                    char c = list[i++];
                    if (c == '"') break;
                    if (c == '\\')
                    {
                        if (i >= end || list[i] is not ('"' or '\\')) throw ImapException.Bad("Invalid header list");
                        c = list[i++];
                    }
                    name.Append(c);
                }
            }
            else
            {
                while (i < end && list[i] != ' ')
                {
                    char c = list[i++];
                    if (c > 0x7F || !ImapWriter.IsAStringChar((byte)c)) throw ImapException.Bad("Invalid header field name");
                    name.Append(c);
                }
            }
            // RFC 5322 §3.6.8 field-name = 1*ftext (printable ASCII except ":").
            if (name.Length == 0 || name.ToString().Any(c => c is <= ' ' or > '~' or ':'))
                throw ImapException.Bad("Invalid header field name");
            names.Add(name.ToString().ToUpperInvariant());
            if (i == end) break;
            if (list[i] != ' ' || i + 1 == end) throw ImapException.Bad("Invalid header list");
            i++;
        }
        return names.ToArray();
    }

    private static string SectionLabel(FetchSection s)
    {
        string text = s.Text switch
        {
            FetchSectionText.Content => "",
            FetchSectionText.Header => "HEADER",
            FetchSectionText.Text => "TEXT",
            FetchSectionText.Mime => "MIME",
            FetchSectionText.HeaderFields => "HEADER.FIELDS (" + string.Join(' ', s.Fields.Select(FieldLabel)) + ")",
            _ => "HEADER.FIELDS.NOT (" + string.Join(' ', s.Fields.Select(FieldLabel)) + ")",
        };
        if (s.Part.Length == 0) return text;
        return text.Length == 0 ? s.Part : s.Part + "." + text;
    }

    /// <summary>A field name as an astring: atom when it is one, else quoted.</summary>
    private static string FieldLabel(string name) =>
        name.All(c => ImapWriter.IsAStringChar((byte)c)) && name != "NIL"
            ? name
            : "\"" + name.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    /// <summary>section-part = nz-number *("." nz-number).</summary>
    private static bool IsPart(string s)
    {
        foreach (var n in s.Split('.'))
        {
            if (n.Length is 0 or > 9 || n[0] == '0' || !n.All(char.IsAsciiDigit)) return false;
        }
        return true;
    }

    private static bool TryNumber(string s, out long n)
    {
        n = 0;
        if (s.Length is 0 or > 19 || !s.All(char.IsAsciiDigit)) return false;
        return long.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out n);
    }
}
