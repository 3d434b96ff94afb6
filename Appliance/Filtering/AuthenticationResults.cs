using System.Text;

namespace Appliance.Filtering;

/// <summary>
/// The Authentication-Results header field (RFC 8601) this node adds to mail it accepts on the
/// MX, and the removal of any such field a sender wrote in our name (§5: a field with our
/// authserv-id that we did not add would let a forger claim checks that never passed).
/// </summary>
public static class AuthenticationResults
{
    /// <summary>"Authentication-Results: HOST; spf=pass (reason) smtp.mailfrom=x@example.com\r\n" (folded after the id).</summary>
    public static byte[] Header(string authservId, IEnumerable<string> results) =>
        Encoding.UTF8.GetBytes($"Authentication-Results: {authservId};\r\n\t{string.Join(";\r\n\t", results)}\r\n");

    /// <summary>A result with a comment: "spf=fail (why) smtp.mailfrom=…"; the comment cannot break out of its parentheses or the line.</summary>
    public static string Result(string method, string result, string? comment, string property) =>
        comment is { Length: > 0 }
            ? $"{method}={result} ({Comment(comment)}) {property}"
            : $"{method}={result} {property}";

    private static string Comment(string text)
    {
        var b = new StringBuilder();
        foreach (var c in text)
            b.Append(c is '(' or ')' or '\\' ? '\\' + c.ToString() : char.IsControl(c) ? " " : c.ToString());
        return b.Length > 200 ? b.ToString(0, 200) + "…" : b.ToString();
    }

    /// <summary>
    /// The message without the Authentication-Results fields of its header block whose
    /// authserv-id is <paramref name="authservId"/> (continuation lines included); the same
    /// array when there is none.
    /// </summary>
    public static byte[] StripOurs(byte[] message, string authservId) => HeaderFields.Remove(message, (name, value) =>
    {
        if (!name.Equals("Authentication-Results", StringComparison.OrdinalIgnoreCase)) return false;
        var id = value.TrimStart(' ', '\t', '\r', '\n');
        var stop = id.IndexOfAny([';', ' ', '\t', '\r', '\n']);
        return (stop < 0 ? id : id[..stop]).Equals(authservId, StringComparison.OrdinalIgnoreCase);
    });
}

/// <summary>Edits of a message's header block that leave every other byte as it was.</summary>
public static class HeaderFields
{
    /// <summary>
    /// The message without the fields of its header block that <paramref name="remove"/> picks
    /// (given the name and the raw value, continuation lines included); the same array when
    /// none is picked.
    /// </summary>
    public static byte[] Remove(byte[] message, Func<string, string, bool> remove)
    {
        var ranges = new List<(int Start, int End)>();
        var pos = 0;
        while (pos < message.Length)
        {
            var end = Array.IndexOf(message, (byte)'\n', pos);
            end = end < 0 ? message.Length : end + 1;
            var line = message.AsSpan(pos, end - pos);
            if (line.Length <= 2 && line.Trim("\r\n"u8).IsEmpty) break; // the blank line ends the header block
            var fieldEnd = end;
            while (fieldEnd < message.Length && message[fieldEnd] is (byte)' ' or (byte)'\t')
            {
                var next = Array.IndexOf(message, (byte)'\n', fieldEnd);
                fieldEnd = next < 0 ? message.Length : next + 1;
            }
            var field = Encoding.Latin1.GetString(message, pos, fieldEnd - pos);
            var colon = field.IndexOf(':');
            if (colon > 0 && remove(field[..colon].Trim(), field[(colon + 1)..])) ranges.Add((pos, fieldEnd));
            pos = fieldEnd;
        }
        if (ranges.Count == 0) return message;
        var kept = new List<byte>(message.Length);
        var from = 0;
        foreach (var (start, stopAt) in ranges)
        {
            kept.AddRange(message.AsSpan(from, start - from));
            from = stopAt;
        }
        kept.AddRange(message.AsSpan(from));
        return [.. kept];
    }

    /// <summary>The message without any field named one of <paramref name="names"/>.</summary>
    public static byte[] Remove(byte[] message, IReadOnlyCollection<string> names) =>
        Remove(message, (name, _) => names.Contains(name, StringComparer.OrdinalIgnoreCase));
}
