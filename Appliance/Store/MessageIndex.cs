using System.Net;
using System.Text;
using System.Text.RegularExpressions;
using MimeKit;
using MimeKit.Utils;

namespace Appliance.Store;

// Implementation notes
// What SEARCH and SORT/THREAD need from a message, extracted once from its bytes with MimeKit:
// decoded texts for the full-text index (RFC 9051 §6.4.4 matches after decoding encoded words,
// transfer encodings and charsets) and RFC 5256 sort keys. Extraction is CPU work done by the
// caller before it submits the write, not on the writer loop (the writer only inserts the rows,
// which is where FTS5 tokenizes the text); it never throws (a message
// MimeKit cannot read is indexed with empty texts and the internal date).

/// <summary>Search texts and sort keys of one message, and what a listing shows of its sender:
/// <see cref="FromName"/> the decoded display name of the first From address ("" when none),
/// <see cref="FromAddress"/> its address.</summary>
public sealed partial record MessageIndex(
    string Subject, string From, string To, string Cc, string Bcc, string Body, string Headers,
    long SentDateUnixMs, string BaseSubject, bool SubjectIsReply,
    string FromAddr, string ToAddr, string CcAddr, string DisplayFrom, string DisplayTo,
    string MessageId, string InReplyTo, string References,
    string FromName, string FromAddress)
{
    public static MessageIndex Extract(ReadOnlyMemory<byte> data, long internalDateUnixMs)
    {
        MimeMessage message;
        try
        {
            using var stream = new MemoryStream(data.ToArray(), writable: false);
            message = MimeMessage.Load(stream);
        }
        catch (FormatException)
        {
            return new("", "", "", "", "", "", "", internalDateUnixMs, "", false, "", "", "", "", "", "", "", "", "", "");
        }
        return Build(message, internalDateUnixMs);
    }

    private static MessageIndex Build(MimeMessage m, long internalDateUnixMs)
    {
        var headers = new StringBuilder();
        foreach (var h in m.Headers)
            headers.Append(h.Field).Append(": ").Append(OneLine(h.Value)).Append('\n');
        var body = new StringBuilder();
        foreach (var part in m.BodyParts)
        {
            if (part is not TextPart text) continue;
            string content;
            try { content = text.Text ?? ""; }
            catch (Exception ex) when (ex is NotSupportedException or ArgumentException or FormatException) { continue; }
            // HTML crudely: tags become spaces, then the runs of white space they leave collapse.
            if (text.IsHtml) content = Whitespace().Replace(WebUtility.HtmlDecode(HtmlTag().Replace(content, " ")), " ").Trim();
            if (body.Length > 0) body.Append('\n');
            body.Append(content);
        }
        var sent = internalDateUnixMs;
        var date = m.Headers[HeaderId.Date];
        if (date is not null && DateUtils.TryParse(date, out var parsed)) sent = parsed.ToUnixTimeMilliseconds();
        var subject = m.Subject ?? "";
        var baseSubject = BaseSubjectOf(subject, out var isReply);
        var from = m.From.Mailboxes.FirstOrDefault();
        var to = m.To.Mailboxes.FirstOrDefault();
        var cc = m.Cc.Mailboxes.FirstOrDefault();
        return new(
            subject, Addresses(m.From), Addresses(m.To), Addresses(m.Cc), Addresses(m.Bcc), body.ToString(), headers.ToString(),
            sent, baseSubject, isReply,
            Mailbox(from), Mailbox(to), Mailbox(cc), Display(from), Display(to),
            m.MessageId ?? "", m.InReplyTo ?? "", string.Join(' ', m.References),
            from?.Name?.Trim() ?? "", from?.Address ?? "");
    }

    private static string OneLine(string value) => value.Replace("\r", "", StringComparison.Ordinal).Replace('\n', ' ');

    private static string Addresses(InternetAddressList list) =>
        string.Join(", ", list.Mailboxes.Select(a => string.IsNullOrEmpty(a.Name) ? a.Address : $"{a.Name} <{a.Address}>"));

    /// <summary>RFC 5256 §3 addr-mailbox (the local part), lower case.</summary>
    private static string Mailbox(MailboxAddress? a) => a is null ? "" : a.LocalPart.ToLowerInvariant();

    /// <summary>RFC 5957 §3: the display name, else the addr-spec.</summary>
    private static string Display(MailboxAddress? a) =>
        a is null ? "" : !string.IsNullOrWhiteSpace(a.Name) ? a.Name.Trim() : a.Address.ToLowerInvariant();

    /// <summary>
    /// RFC 5256 §2.1 base subject (from the decoded subject), lower-cased so it compares
    /// case-insensitively. <paramref name="isReply"/> tells whether a Re:/Fwd: leader, a "(fwd)"
    /// trailer or a "[fwd: …]" wrapper was removed.
    /// </summary>
    public static string BaseSubjectOf(string subject, out bool isReply)
    {
        isReply = false;
        // (1) whitespace runs (folding included) become one space.
        var s = Whitespace().Replace(subject, " ");
        while (true)
        {
            // (2) subj-trailer: "(fwd)" and whitespace at the end.
            while (true)
            {
                if (s.EndsWith(' ')) s = s[..^1];
                else if (s.EndsWith("(fwd)", StringComparison.OrdinalIgnoreCase)) { s = s[..^5]; isReply = true; }
                else break;
            }
            // (3)-(5) subj-leaders, and a leading subj-blob when something is left after it.
            while (true)
            {
                var before = s;
                while (RemoveLeader(ref s, ref isReply)) { }
                var end = BlobEnd(s, 0);
                if (end > 0 && s[end..].Trim().Length > 0) s = s[end..];
                if (s == before) break;
            }
            // (6) "[fwd:" … "]" wrapper: unwrap and start over.
            if (s.StartsWith("[fwd:", StringComparison.OrdinalIgnoreCase) && s.EndsWith(']'))
            {
                s = s[5..^1];
                isReply = true;
                continue;
            }
            return s.ToLowerInvariant();
        }
    }

    /// <summary>subj-leader = (*subj-blob subj-refwd) / WSP.</summary>
    private static bool RemoveLeader(ref string s, ref bool isReply)
    {
        if (s.StartsWith(' ')) { s = s[1..]; return true; }
        var i = 0;
        while (BlobEnd(s, i) is var e && e > 0) i = e;
        // subj-refwd = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
        if (At(s, i, "re")) i += 2;
        else if (At(s, i, "fwd")) i += 3;
        else if (At(s, i, "fw")) i += 2;
        else return false;
        while (i < s.Length && s[i] == ' ') i++;
        if (BlobEnd(s, i) is var b && b > 0) i = b;
        if (i >= s.Length || s[i] != ':') return false;
        s = s[(i + 1)..];
        isReply = true;
        return true;
    }

    private static bool At(string s, int i, string word) =>
        i + word.Length <= s.Length && string.Compare(s, i, word, 0, word.Length, StringComparison.OrdinalIgnoreCase) == 0;

    /// <summary>subj-blob = "[" *BLOBCHAR "]" *WSP at <paramref name="start"/>: where it ends, or -1.</summary>
    private static int BlobEnd(string s, int start)
    {
        if (start >= s.Length || s[start] != '[') return -1;
        var i = start + 1;
        while (i < s.Length && s[i] is not ('[' or ']')) i++;
        if (i >= s.Length || s[i] != ']') return -1;
        i++;
        while (i < s.Length && s[i] == ' ') i++;
        return i;
    }

    [GeneratedRegex(@"[ \t\r\n]+")]
    private static partial Regex Whitespace();

    [GeneratedRegex(@"<[^>]*>")]
    private static partial Regex HtmlTag();
}
