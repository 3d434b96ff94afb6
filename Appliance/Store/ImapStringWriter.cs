using System.Globalization;
using System.Text;

namespace Appliance.Store;

/// <summary>
/// Writes IMAP strings (RFC 9051 §4.3, RFC 3501 §4.3) into a response being built as text.
/// The text is meant to go on the wire as UTF-8: literal lengths count UTF-8 octets.
/// </summary>
internal static class ImapStringWriter
{
    public static void AppendNil(StringBuilder sb) => sb.Append("NIL");

    /// <summary>nstring: NIL for null, else a quoted string or a literal.</summary>
    public static void AppendNString(StringBuilder sb, string? value)
    {
        if (value is null)
        {
            sb.Append("NIL");
        }
        else
        {
            AppendString(sb, value);
        }
    }

    /// <summary>RFC 9051 §4.3: quoted = DQUOTE *QUOTED-CHAR DQUOTE, where QUOTED-CHAR excludes
    /// CR, LF and (without UTF8=ACCEPT) 8-bit characters; anything else is sent as a literal
    /// <c>{n}\r\n</c>. NUL may appear in neither, so it is replaced by a space.</summary>
    public static void AppendString(StringBuilder sb, string value)
    {
        if (value.Contains('\0', StringComparison.Ordinal))
        {
            value = value.Replace('\0', ' ');
        }
        bool quotable = true;
        foreach (char c in value)
        {
            if (c is '\r' or '\n' || c > 0x7F)
            {
                quotable = false;
                break;
            }
        }
        if (quotable)
        {
            sb.Append('"');
            foreach (char c in value)
            {
                if (c is '"' or '\\')
                {
                    sb.Append('\\');
                }
                sb.Append(c);
            }
            sb.Append('"');
        }
        else
        {
            sb.Append('{')
              .Append(Encoding.UTF8.GetByteCount(value).ToString(CultureInfo.InvariantCulture))
              .Append("}\r\n")
              .Append(value);
        }
    }

    public static void AppendNumber(StringBuilder sb, long value) =>
        sb.Append(value.ToString(CultureInfo.InvariantCulture));
}
