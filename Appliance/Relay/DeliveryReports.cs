using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using MimeKit.Utils;

namespace Appliance.Relay;

// Implementation notes
// - RFC 3464 delivery status notifications inside an RFC 6522 multipart/report: a text part for
//   people, a message/delivery-status part for programs, and the original (message/rfc822) or
//   its header block (text/rfc822-headers).
// - The report is written as bytes, not through MimeKit's object model, so the returned original
//   is embedded exactly as it was queued: never re-encoded, re-folded or re-wrapped. Its part is
//   labelled 8bit when it holds 8-bit bytes (RFC 6152 transport), 7bit otherwise.
// - Every text that comes from outside (the remote's reply, addresses, host names, envelope id)
//   goes through Clean(): control characters (CR and LF included) become spaces, so a hostile
//   reply cannot start a header line or a MIME boundary; header fields are folded at spaces to
//   78 columns and never exceed 998 (RFC 5322 §2.1.1).
// - The boundary is random and checked against every part, the original included.

/// <summary>One recipient's line in a report.</summary>
/// <param name="Address">Final recipient (the envelope address this report is about).</param>
/// <param name="OriginalRecipient">The ORCPT parameter as the client sent it ("rfc822;bob@example.net",
/// the address in xtext, RFC 3461 §4.2), or null. Decoded from xtext before it is written.</param>
/// <param name="Action">What happened to the message for this recipient.</param>
/// <param name="Status">RFC 3463 enhanced status code, "5.1.1" or "4.4.1".</param>
/// <param name="RemoteMta">Host name of the remote MTA that answered, or null.</param>
/// <param name="DiagnosticCode">The remote's reply text ("550 5.1.1 &lt;bob@example.net&gt;: user unknown"),
/// written as "smtp; ...", or null.</param>
/// <param name="LastAttempt">When delivery was last tried, or null.</param>
/// <param name="WillRetryUntil">For <see cref="DsnAction.Delayed"/>: when the queue gives up.</param>
public sealed record DsnRecipient(
    string Address,
    string? OriginalRecipient,
    DsnAction Action,
    string Status,
    string? RemoteMta,
    string? DiagnosticCode,
    DateTimeOffset? LastAttempt,
    DateTimeOffset? WillRetryUntil);

/// <summary>RFC 3464 §2.3.3 action-value.</summary>
public enum DsnAction { Failed, Delayed, Delivered, Relayed, Expanded }

/// <summary>Builds bounce and delay reports (DSNs) for the sender of a queued message.</summary>
public static class DeliveryReports
{
    /// <summary>Originals larger than this come back as their header block only.</summary>
    public const int MaxReturnedSize = 1024 * 1024;

    private const int FoldAt = 78;       // RFC 5322 §2.1.1 SHOULD
    private const int MaxWord = 900;     // keeps every line under the 998 MUST, field name included
    private const int MaxDiagnostic = 4096;

    /// <summary>
    /// The whole report message (RFC 5322 bytes, CRLF line ends), addressed to
    /// <paramref name="originalSender"/>. The caller never sends one to the null reverse-path
    /// (RFC 5321 §6.1 / RFC 3461 §6.2); an empty sender throws.
    /// </summary>
    /// <param name="reportingMta">Our host name.</param>
    /// <param name="envelopeId">The ENVID parameter as the client sent it (xtext), or null; decoded
    /// from xtext before it is written (RFC 3461 §6.3).</param>
    /// <param name="originalSender">The envelope sender the report goes to.</param>
    /// <param name="arrival">When we accepted the message.</param>
    /// <param name="recipients">At least one recipient the report is about.</param>
    /// <param name="original">The original message bytes as queued.</param>
    /// <param name="headersOnly">RET=HDRS: return only the original's header block.</param>
    public static byte[] Build(string reportingMta, string? envelopeId, string originalSender, DateTimeOffset arrival,
        IReadOnlyList<DsnRecipient> recipients, ReadOnlyMemory<byte> original, bool headersOnly)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(reportingMta);
        ArgumentException.ThrowIfNullOrWhiteSpace(originalSender);
        ArgumentNullException.ThrowIfNull(recipients);
        if (recipients.Count == 0) throw new ArgumentException("A report is about at least one recipient.", nameof(recipients));

        var host = NoSpaces(Clean(reportingMta, asciiOnly: true));
        var headerBlock = HeaderBlockLength(original.Span);
        var tooBig = original.Length > MaxReturnedSize;
        var returnedHeadersOnly = headersOnly || tooBig;
        var returned = returnedHeadersOnly ? original[..headerBlock] : original;

        var text = Encoding.UTF8.GetBytes(HumanText(host, arrival, recipients, headersOnly, tooBig));
        var status = Encoding.ASCII.GetBytes(StatusText(host, envelopeId, arrival, recipients));
        var textEightBit = HasEightBit(text);
        var returnedEightBit = HasEightBit(returned.Span);
        var boundary = NewBoundary(text, status, returned.Span);

        var failed = recipients.Any(r => r.Action == DsnAction.Failed);
        var delayed = recipients.Any(r => r.Action == DsnAction.Delayed);
        var subject = failed ? "Undelivered Mail Returned to Sender"
            : delayed ? "Delayed Mail (still being retried)"
            : "Successful Mail Delivery Report";

        var head = new StringBuilder();
        Field(head, "From", $"Mail Delivery System <MAILER-DAEMON@{host}>");
        Field(head, "To", $"<{NoSpaces(Clean(originalSender, asciiOnly: false).Trim('<', '>'))}>");
        Field(head, "Subject", subject);
        Field(head, "Date", DateUtils.FormatDate(DateTimeOffset.Now));
        Field(head, "Message-ID", $"<{DateTime.UtcNow:yyyyMMddHHmmss}.{Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8))}@{host}>");
        if (OriginalMessageId(original.Span[..headerBlock]) is { } inReplyTo)
        {
            // Threads the report under the message in the sender's mail program.
            Field(head, "In-Reply-To", inReplyTo);
            Field(head, "References", inReplyTo);
        }
        Field(head, "Auto-Submitted", "auto-replied"); // RFC 3834 §5: no auto-replies to this
        Field(head, "MIME-Version", "1.0");
        Field(head, "Content-Type", $"multipart/report; report-type=delivery-status; boundary=\"{boundary}\"");
        if (textEightBit || returnedEightBit) Field(head, "Content-Transfer-Encoding", "8bit"); // RFC 2045 §6.4
        head.Append("\r\n");
        head.Append("This is a MIME-encapsulated message.\r\n\r\n");

        head.Append("--").Append(boundary).Append("\r\n");
        Field(head, "Content-Type", "text/plain; charset=utf-8");
        Field(head, "Content-Transfer-Encoding", textEightBit ? "8bit" : "7bit");
        Field(head, "Content-Description", "Notification");
        head.Append("\r\n");

        var statusHead = new StringBuilder();
        statusHead.Append("\r\n--").Append(boundary).Append("\r\n");
        Field(statusHead, "Content-Type", "message/delivery-status");
        Field(statusHead, "Content-Description", "Delivery report");
        statusHead.Append("\r\n");

        var originalHead = new StringBuilder();
        originalHead.Append("\r\n--").Append(boundary).Append("\r\n");
        Field(originalHead, "Content-Type", returnedHeadersOnly ? "text/rfc822-headers" : "message/rfc822");
        Field(originalHead, "Content-Description", returnedHeadersOnly ? "Headers of your message" : "Your message");
        Field(originalHead, "Content-Transfer-Encoding", returnedEightBit ? "8bit" : "7bit");
        originalHead.Append("\r\n");

        var end = Encoding.ASCII.GetBytes($"\r\n--{boundary}--\r\n");

        using var output = new MemoryStream(returned.Length + text.Length + status.Length + 2048);
        output.Write(Encoding.UTF8.GetBytes(head.ToString()));
        output.Write(text);
        output.Write(Encoding.ASCII.GetBytes(statusHead.ToString()));
        output.Write(status);
        output.Write(Encoding.ASCII.GetBytes(originalHead.ToString()));
        output.Write(returned.Span); // byte-exact; the CRLF before the closing delimiter belongs to it (RFC 2046 §5.1.1)
        output.Write(end);
        return output.ToArray();
    }

    // RFC 3464 §2.2 per-message fields, then §2.3 one block per recipient, blank line between.
    private static string StatusText(string host, string? envelopeId, DateTimeOffset arrival, IReadOnlyList<DsnRecipient> recipients)
    {
        var s = new StringBuilder();
        if (envelopeId is not null && Clean(XtextDecode(envelopeId), asciiOnly: true) is { Length: > 0 } envid)
            Field(s, "Original-Envelope-Id", envid);
        Field(s, "Reporting-MTA", $"dns; {host}");
        Field(s, "Arrival-Date", DateUtils.FormatDate(arrival));
        foreach (var r in recipients)
        {
            s.Append("\r\n");
            if (r.OriginalRecipient is not null && OriginalRecipientField(r.OriginalRecipient) is { } orcpt)
                Field(s, "Original-Recipient", orcpt);
            Field(s, "Final-Recipient", RecipientAddress(r.Address));
            Field(s, "Action", r.Action.ToString().ToLowerInvariant());
            Field(s, "Status", StatusCode(r));
            if (r.RemoteMta is not null && NoSpaces(Clean(r.RemoteMta, asciiOnly: true)) is { Length: > 0 } mta)
                Field(s, "Remote-MTA", $"dns; {mta}");
            if (Diagnostic(r.DiagnosticCode, asciiOnly: true) is { } diagnostic)
                Field(s, "Diagnostic-Code", $"smtp; {diagnostic}");
            if (r.LastAttempt is { } last) Field(s, "Last-Attempt-Date", DateUtils.FormatDate(last));
            if (r.Action == DsnAction.Delayed && r.WillRetryUntil is { } until) Field(s, "Will-Retry-Until", DateUtils.FormatDate(until));
        }
        return s.ToString();
    }

    private static string HumanText(string host, DateTimeOffset arrival, IReadOnlyList<DsnRecipient> recipients, bool headersOnly, bool tooBig)
    {
        var t = new StringBuilder();
        Paragraph(t, $"This is the mail delivery system at {host}.");

        var failed = recipients.Where(r => r.Action == DsnAction.Failed).ToList();
        var delayed = recipients.Where(r => r.Action == DsnAction.Delayed).ToList();
        var done = recipients.Where(r => r.Action is DsnAction.Delivered or DsnAction.Relayed or DsnAction.Expanded).ToList();
        var received = When(arrival);

        if (failed.Count > 0)
        {
            Paragraph(t, $"Your message (received {received}) could not be delivered to {Count(failed.Count)}. The mail system has stopped trying.");
            foreach (var r in failed) Recipient(t, r, null);
            Paragraph(t, "What you can do: check each address above for typing mistakes and send the message again. " +
                "If the address is right, the problem is on the recipient's side: tell them another way (for example by phone) " +
                "and quote the server's answer. If you need help, forward this notice to your mail administrator.");
        }
        if (delayed.Count > 0)
        {
            Paragraph(t, $"Your message (received {received}) has not been delivered yet to {Count(delayed.Count)}. " +
                "This is only a warning: you do not need to send the message again.");
            foreach (var r in delayed)
            {
                Recipient(t, r, r.WillRetryUntil is { } until
                    ? $"The mail system will keep trying until {When(until)}. If it still cannot deliver the message by then, you will get another notice."
                    : "The mail system will keep trying. If it cannot deliver the message in the end, you will get another notice.");
            }
        }
        if (done.Count > 0)
        {
            Paragraph(t, $"Your message (received {received}) was handed on for {Count(done.Count)}:");
            foreach (var r in done)
            {
                Paragraph(t, Clean(r.Address, asciiOnly: false), "  ");
                Paragraph(t, r.Action switch
                {
                    DsnAction.Delivered => "Delivered to the recipient's mailbox.",
                    DsnAction.Relayed => "Passed to a mail system that does not send delivery reports; there will be no further notice.",
                    _ => "Delivered to a list or alias, which passed it on to its members.",
                }, "    ");
                t.Append("\r\n");
            }
        }

        Paragraph(t, tooBig
            ? $"Your message was larger than {MaxReturnedSize / (1024 * 1024)} MiB, so only its headers are attached below, not its text or attachments."
            : headersOnly
                ? "Only the headers of your message are attached below, not its text or attachments."
                : "Your message is attached below.");
        return t.ToString().TrimEnd() + "\r\n";
    }

    /// <summary>One recipient's lines: address, reason in words, the remote's answer, then <paramref name="more"/>.</summary>
    private static void Recipient(StringBuilder t, DsnRecipient r, string? more)
    {
        Paragraph(t, Clean(r.Address, asciiOnly: false), "  ");
        Paragraph(t, Reason(r), "    ");
        if (Diagnostic(r.DiagnosticCode, asciiOnly: false) is { } answer)
        {
            var who = r.RemoteMta is not null && NoSpaces(Clean(r.RemoteMta, asciiOnly: false)) is { Length: > 0 } mta
                ? $"The recipient's mail server ({mta}) answered:"
                : "The answer was:";
            Paragraph(t, who, "    ");
            Paragraph(t, answer, "      ");
        }
        if (more is not null) Paragraph(t, more, "    ");
        t.Append("\r\n");
    }

    // RFC 3463 subject.detail in words a user can act on.
    private static string Reason(DsnRecipient r)
    {
        var (_, subject, detail) = ParseStatus(r.Status) ?? (0, -1, -1);
        return (subject, detail) switch
        {
            (1, 1) => "The address does not exist at the recipient's mail system.",
            (1, 2) => "The recipient's domain does not exist or does not accept mail.",
            (1, 6) => "The recipient has moved; this address is no longer in use.",
            (1, _) => "The address was not accepted as valid.",
            (2, 1) => "The recipient's mailbox is disabled and does not accept messages.",
            (2, 2) => "The recipient's mailbox is full.",
            (2, 3) or (3, 4) => "The message is larger than the recipient's mail system accepts. Send large files as a link instead.",
            (4, 1) => "The recipient's mail server did not answer.",
            (4, 2) => "The connection to the recipient's mail server was lost.",
            (4, 3) => "Looking up the recipient's domain (DNS) failed.",
            (4, 4) => "No mail server could be found for the recipient's domain.",
            (4, 7) => "The message could not be delivered in time and has expired.",
            (4, _) => "There was a network or routing problem reaching the recipient's mail server.",
            (6, _) => "The recipient's mail system could not handle the content of the message.",
            (7, 1) => "The recipient's mail system refused to accept the message from you (it may have taken it for spam).",
            (7, _) => "The recipient's mail system refused the message because of its security policy (for example, it took it for spam).",
            _ => r.Action == DsnAction.Delayed
                ? "The recipient's mail system could not be reached or asked to try again later."
                : "The recipient's mail system did not accept the message.",
        };
    }

    private static string Count(int n) => n == 1 ? "this recipient" : $"these {n} recipients";

    private static string When(DateTimeOffset at) =>
        at.ToUniversalTime().ToString("dddd d MMMM yyyy 'at' HH:mm 'UTC'", CultureInfo.InvariantCulture);

    /// <summary>The enhanced status code, or a class default when the given one is malformed.</summary>
    private static string StatusCode(DsnRecipient r) => ParseStatus(r.Status) is var (c, s, d)
        ? $"{c}.{s}.{d}"
        : r.Action switch { DsnAction.Failed => "5.0.0", DsnAction.Delayed => "4.0.0", _ => "2.0.0" };

    // RFC 3463 §2: class "." subject "." detail; class 2, 4 or 5; subject and detail 1-3 digits.
    private static (int Class, int Subject, int Detail)? ParseStatus(string? status)
    {
        var parts = (status ?? "").Trim().Split('.');
        if (parts.Length != 3 || parts[0] is not ("2" or "4" or "5")) return null;
        if (!Digits(parts[1]) || !Digits(parts[2])) return null;
        return (parts[0][0] - '0', int.Parse(parts[1], CultureInfo.InvariantCulture), int.Parse(parts[2], CultureInfo.InvariantCulture));

        static bool Digits(string s) => s.Length is >= 1 and <= 3 && s.All(char.IsAsciiDigit);
    }

    private static string? Diagnostic(string? text, bool asciiOnly)
    {
        if (text is null) return null;
        var clean = Clean(text, asciiOnly);
        if (clean.StartsWith("smtp;", StringComparison.OrdinalIgnoreCase)) clean = clean[5..].TrimStart();
        if (clean.Length > MaxDiagnostic) clean = clean[..MaxDiagnostic] + "...";
        return clean.Length > 0 ? clean : null;
    }

    // RFC 3464 §2.3.2: an address outside US-ASCII is written as the RFC 6533 §3 "utf-8" type in
    // its 7-bit utf-8-addr-xtext form: each non-ASCII character, "+", "=" and "\" as \x{HEX}.
    private static string RecipientAddress(string address)
    {
        var clean = NoSpaces(Clean(address, asciiOnly: false).Trim('<', '>'));
        if (clean.All(char.IsAscii)) return $"rfc822; {clean}";
        var s = new StringBuilder("utf-8; ");
        foreach (var rune in clean.EnumerateRunes())
        {
            if (rune.IsAscii && rune.Value is not ('+' or '=' or '\\')) s.Append((char)rune.Value);
            else s.Append("\\x{").Append(rune.Value.ToString("X", CultureInfo.InvariantCulture)).Append('}');
        }
        return s.ToString();
    }

    // RFC 3464 §2.3.1 address-type ";" generic-address, the ORCPT's address decoded from xtext.
    private static string? OriginalRecipientField(string orcpt)
    {
        var semicolon = orcpt.IndexOf(';');
        var type = semicolon > 0 ? NoSpaces(Clean(orcpt[..semicolon], asciiOnly: true)) : "rfc822";
        var address = NoSpaces(Clean(XtextDecode(semicolon >= 0 ? orcpt[(semicolon + 1)..] : orcpt), asciiOnly: true));
        return type.Length > 0 && address.Length > 0 ? $"{type};{address}" : null;
    }

    // RFC 3461 §4: "+" and two upper-case hex digits stand for one character. A value that is
    // not valid xtext is returned as it is.
    private static string XtextDecode(string value)
    {
        if (!value.Contains('+')) return value;
        var s = new StringBuilder(value.Length);
        for (var i = 0; i < value.Length; i++)
        {
            if (value[i] != '+') { s.Append(value[i]); continue; }
            if (i + 2 >= value.Length || !IsUpperHex(value[i + 1]) || !IsUpperHex(value[i + 2])) return value;
            s.Append((char)Convert.ToByte(value.Substring(i + 1, 2), 16));
            i += 2;
        }
        return s.ToString();

        static bool IsUpperHex(char c) => char.IsAsciiDigit(c) || c is >= 'A' and <= 'F';
    }

    /// <summary>
    /// Control characters (CR, LF, TAB, C1) become single spaces and runs of spaces one space;
    /// with <paramref name="asciiOnly"/> anything outside printable US-ASCII becomes "?".
    /// </summary>
    internal static string Clean(string value, bool asciiOnly)
    {
        var s = new StringBuilder(value.Length);
        foreach (var rune in value.EnumerateRunes())
        {
            var v = rune.Value;
            var space = v < 0x20 || v is 0x7F or (>= 0x80 and <= 0x9F) or 0x2028 or 0x2029 or 0x85;
            if (space || v == ' ')
            {
                if (s.Length > 0 && s[^1] != ' ') s.Append(' ');
            }
            else if (v > 0x7E && asciiOnly) s.Append('?');
            else s.Append(rune.ToString());
        }
        return s.ToString().Trim();
    }

    private static string NoSpaces(string value) => value.Replace(" ", "", StringComparison.Ordinal);

    /// <summary>Appends "Name: value" folded at spaces to <see cref="FoldAt"/> columns, CRLF-terminated.</summary>
    private static void Field(StringBuilder s, string name, string value)
    {
        var column = name.Length + 1;
        s.Append(name).Append(':');
        foreach (var word in Words(Clean(value, asciiOnly: false)))
        {
            if (column + 1 + word.Length > FoldAt && column > name.Length + 1)
            {
                s.Append("\r\n");
                column = 0;
            }
            s.Append(' ').Append(word);
            column += 1 + word.Length;
        }
        s.Append("\r\n");
    }

    /// <summary>Appends <paramref name="text"/> wrapped at 76 columns, each line indented, then a blank line after top-level paragraphs.</summary>
    private static void Paragraph(StringBuilder t, string text, string indent = "")
    {
        var line = new StringBuilder(indent);
        foreach (var word in Words(text))
        {
            if (line.Length > indent.Length && line.Length + 1 + word.Length > 76)
            {
                t.Append(line).Append("\r\n");
                line.Clear().Append(indent);
            }
            if (line.Length > indent.Length) line.Append(' ');
            line.Append(word);
        }
        t.Append(line).Append("\r\n");
        if (indent.Length == 0) t.Append("\r\n");
    }

    /// <summary>Space-separated words, any longer than <see cref="MaxWord"/> cut so no line can pass 998 octets.</summary>
    private static IEnumerable<string> Words(string text)
    {
        foreach (var word in text.Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            var rest = word;
            // Non-ASCII text is at most 3 UTF-8 octets per UTF-16 unit: cut such words shorter.
            var max = rest.All(char.IsAscii) ? MaxWord : MaxWord / 3;
            while (rest.Length > max)
            {
                var cut = char.IsHighSurrogate(rest[max - 1]) ? max - 1 : max;
                yield return rest[..cut];
                rest = rest[cut..];
            }
            yield return rest;
        }
    }

    /// <summary>Length of the header block including the last header line's line end (before the empty line).</summary>
    internal static int HeaderBlockLength(ReadOnlySpan<byte> message)
    {
        var start = 0;
        while (start < message.Length)
        {
            if (message[start] == (byte)'\n') return start;
            if (message[start] == (byte)'\r' && start + 1 < message.Length && message[start + 1] == (byte)'\n') return start;
            var lf = message[start..].IndexOf((byte)'\n');
            if (lf < 0) return message.Length;
            start += lf + 1;
        }
        return message.Length;
    }

    /// <summary>The original's Message-ID as "&lt;id&gt;" when it has a well-formed one.</summary>
    private static string? OriginalMessageId(ReadOnlySpan<byte> headers)
    {
        var text = Encoding.Latin1.GetString(headers);
        string? value = null;
        foreach (var line in text.Split('\n'))
        {
            var l = line.TrimEnd('\r');
            if (value is not null)
            {
                if (l.Length > 0 && l[0] is ' ' or '\t') { value += l; continue; } // RFC 5322 §2.2.3 unfolding
                break;
            }
            if (l.StartsWith("Message-ID:", StringComparison.OrdinalIgnoreCase)) value = l[11..];
        }
        if (value is null) return null;
        var open = value.IndexOf('<');
        var close = open < 0 ? -1 : value.IndexOf('>', open);
        if (close < 0) return null;
        var id = value[(open + 1)..close];
        return id.Length is > 0 and <= 900 && id.Contains('@') && id.All(c => c is > ' ' and < '\x7F' and not '<')
            ? $"<{id}>"
            : null;
    }

    private static bool HasEightBit(ReadOnlySpan<byte> bytes) => bytes.IndexOfAnyInRange((byte)0x80, (byte)0xFF) >= 0;

    private static string NewBoundary(ReadOnlySpan<byte> text, ReadOnlySpan<byte> status, ReadOnlySpan<byte> original)
    {
        while (true)
        {
            var boundary = "=_dsn_" + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));
            var b = Encoding.ASCII.GetBytes(boundary);
            if (text.IndexOf(b) < 0 && status.IndexOf(b) < 0 && original.IndexOf(b) < 0) return boundary;
        }
    }
}
