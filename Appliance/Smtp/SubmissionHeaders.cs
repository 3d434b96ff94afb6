using System.Text;
using Appliance.Directory;
using MimeKit;

namespace Appliance.Smtp;

/// <summary>
/// The header checks of a submitted message (RFC 6409): every From (and Sender) address must be
/// one the user may send as, so a user cannot forge another's identity even with an envelope
/// sender of their own; a message without From is refused; a missing Date or Message-ID is
/// supplied by us (§8.1, §8.3).
/// </summary>
internal static class SubmissionHeaders
{
    public readonly record struct Result(string? Refusal, byte[] Added);

    public static Result Check(byte[] message, string user, MailDirectory directory, string hostname)
    {
        HeaderList headers;
        try
        {
            using var stream = new MemoryStream(message, writable: false);
            headers = HeaderList.Load(stream);
        }
        catch (FormatException)
        {
            return new("5.6.0 Malformed message header", []);
        }
        var from = Addresses(headers, HeaderId.From);
        if (from is null || from.Count == 0) return new("5.6.0 Message has no usable From header", []);
        var sender = Addresses(headers, HeaderId.Sender) ?? [];
        foreach (var address in from.Concat(sender))
            if (!directory.MaySendAs(user, address))
                return new($"5.7.1 From address <{address}> is not yours to send from (logged in as {user})", []);
        var added = new StringBuilder();
        if (!headers.Contains(HeaderId.Date)) added.Append("Date: ").Append(MimeKit.Utils.DateUtils.FormatDate(DateTimeOffset.Now)).Append("\r\n");
        if (!headers.Contains(HeaderId.MessageId)) added.Append("Message-ID: <").Append(MimeKit.Utils.MimeUtils.GenerateMessageId(hostname)).Append(">\r\n");
        return new(null, Encoding.ASCII.GetBytes(added.ToString()));
    }

    /// <summary>The mailbox addresses of every header of that kind (groups flattened); null when one does not parse.</summary>
    private static List<string>? Addresses(HeaderList headers, HeaderId id)
    {
        var result = new List<string>();
        foreach (var header in headers.Where(h => h.Id == id))
        {
            if (!InternetAddressList.TryParse(header.Value, out var list)) return null;
            result.AddRange(list.Mailboxes.Select(m => m.Address));
        }
        return result;
    }
}
