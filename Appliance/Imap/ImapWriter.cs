using System.Buffers;
using System.Globalization;
using System.Text;

namespace Appliance.Imap;

/// <summary>
/// Writes response syntax (RFC 9051 §7, §4.3) straight into the session's output buffer.
/// Strings choose their form: quoted when they can be, else a literal whose length counts
/// UTF-8 octets. <see cref="Utf8"/> (set once the client ENABLEs UTF8=ACCEPT) lets quoted
/// strings carry UTF-8.
/// </summary>
public sealed class ImapWriter(IBufferWriter<byte> output)
{
    public bool Utf8 { get; set; }

    public IBufferWriter<byte> Output { get; set; } = output;

    public ImapWriter Raw(ReadOnlySpan<byte> bytes)
    {
        Output.Write(bytes);
        return this;
    }

    /// <summary>ASCII / UTF-8 text written as is (protocol syntax, human-readable text).</summary>
    public ImapWriter Text(string text)
    {
        Encoding.UTF8.GetBytes(text, Output);
        return this;
    }

    public ImapWriter Number(long n)
    {
        Span<byte> buf = stackalloc byte[20];
        n.TryFormat(buf, out int written, default, CultureInfo.InvariantCulture);
        Output.Write(buf[..written]);
        return this;
    }

    public ImapWriter Space() => Raw(" "u8);

    public ImapWriter Crlf() => Raw("\r\n"u8);

    /// <summary>string: quoted if possible, else a literal.</summary>
    public ImapWriter String(string value) => String(Encoding.UTF8.GetBytes(value));

    public ImapWriter String(ReadOnlySpan<byte> value)
    {
        if (CanQuote(value))
        {
            Raw("\""u8);
            foreach (var b in value)
            {
                if (b is (byte)'"' or (byte)'\\') Raw("\\"u8);
                Output.Write([b]);
            }
            return Raw("\""u8);
        }
        return Literal(value);
    }

    public ImapWriter NString(string? value) => value is null ? Raw("NIL"u8) : String(value);

    /// <summary>astring: an atom when it is one (and not NIL), else a string.</summary>
    public ImapWriter AString(string value)
    {
        var bytes = Encoding.UTF8.GetBytes(value);
        if (bytes.Length > 0 && !value.Equals("NIL", StringComparison.OrdinalIgnoreCase) && bytes.All(IsAStringChar)) return Raw(bytes);
        return String(bytes);
    }

    public ImapWriter Literal(ReadOnlySpan<byte> value, bool binary = false)
    {
        if (binary) Raw("~"u8);
        Raw("{"u8).Number(value.Length).Raw("}\r\n"u8);
        return Raw(value);
    }

    private bool CanQuote(ReadOnlySpan<byte> value)
    {
        if (value.Length > 1024) return false;
        foreach (var b in value)
        {
            if (b is (byte)'\r' or (byte)'\n' or 0) return false;
            if (b > 0x7F && !Utf8) return false;
        }
        return true;
    }

    /// <summary>ASTRING-CHAR of RFC 9051 §9 (ATOM-CHAR or resp-specials "]").</summary>
    public static bool IsAStringChar(byte b) =>
        b > 0x20 && b < 0x7F && b is not ((byte)'(' or (byte)')' or (byte)'{' or (byte)'%' or (byte)'*' or (byte)'"' or (byte)'\\');
}
