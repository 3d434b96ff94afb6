using System.Text;

namespace Appliance.Imap;

public enum ImapValueKind { Atom, Quoted, Literal, List }

/// <summary>
/// One parsed command argument (RFC 9051 §4): an atom, a quoted string, a literal (its bytes;
/// <see cref="Binary"/> for literal8 <c>~{n}</c>), or a parenthesized list. NIL arrives as the
/// atom "NIL". An atom may contain a bracketed part with spaces and parentheses
/// (<c>BODY[HEADER.FIELDS (From To)]&lt;0.100&gt;</c>), kept verbatim.
/// </summary>
public sealed class ImapValue
{
    private ImapValue(ImapValueKind kind, byte[] bytes, List<ImapValue>? items, bool binary)
    {
        Kind = kind;
        Bytes = bytes;
        Items = items ?? [];
        Binary = binary;
    }

    public ImapValueKind Kind { get; }
    public byte[] Bytes { get; }
    public List<ImapValue> Items { get; }
    public bool Binary { get; }

    public static ImapValue Atom(byte[] bytes) => new(ImapValueKind.Atom, bytes, null, false);
    public static ImapValue Atom(string text) => new(ImapValueKind.Atom, Encoding.UTF8.GetBytes(text), null, false);
    public static ImapValue Quoted(byte[] bytes) => new(ImapValueKind.Quoted, bytes, null, false);
    public static ImapValue Literal(byte[] bytes, bool binary = false) => new(ImapValueKind.Literal, bytes, null, binary);
    public static ImapValue List(List<ImapValue> items) => new(ImapValueKind.List, [], items, false);

    public bool IsList => Kind == ImapValueKind.List;
    public bool IsAtom => Kind == ImapValueKind.Atom;
    /// <summary>An astring / string: atom, quoted or literal.</summary>
    public bool IsString => Kind != ImapValueKind.List;
    public bool IsNil => IsAtom && Is("NIL");

    /// <summary>The content decoded as UTF-8 (atoms and quoted strings are ASCII unless UTF8=ACCEPT).</summary>
    public string Text => Encoding.UTF8.GetString(Bytes);

    /// <summary>Case-insensitive comparison of an atom with an ASCII keyword.</summary>
    public bool Is(string keyword)
    {
        if (Kind != ImapValueKind.Atom || Bytes.Length != keyword.Length) return false;
        for (int i = 0; i < Bytes.Length; i++)
        {
            int a = Bytes[i], b = keyword[i];
            if (a is >= 'a' and <= 'z') a -= 32;
            if (b is >= 'a' and <= 'z') b -= 32;
            if (a != b) return false;
        }
        return true;
    }

    /// <summary>Atom text upper-cased (ASCII), for keyword dispatch.</summary>
    public string Keyword => IsAtom ? Encoding.ASCII.GetString(Bytes).ToUpperInvariant() : "";

    /// <summary>A number (RFC 9051 number64); false for anything else.</summary>
    public bool TryGetNumber(out long value)
    {
        value = 0;
        if (Kind != ImapValueKind.Atom || Bytes.Length is 0 or > 19) return false;
        foreach (var b in Bytes)
        {
            if (b is < (byte)'0' or > (byte)'9') return false;
            value = value * 10 + (b - '0');
        }
        return value >= 0;
    }

    public override string ToString() => Kind switch
    {
        ImapValueKind.List => "(" + string.Join(' ', Items) + ")",
        ImapValueKind.Quoted => "\"" + Text + "\"",
        ImapValueKind.Literal => "{" + Bytes.Length + "}",
        _ => Text,
    };
}

/// <summary>One command as parsed: tag, name (upper case; "UID FETCH" gives Name FETCH with Uid set) and arguments.</summary>
public sealed record ImapCommand(string Tag, string Name, bool Uid, List<ImapValue> Args);
