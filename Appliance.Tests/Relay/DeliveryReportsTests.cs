using System.Text;
using System.Text.Json;
using Appliance.Relay;
using MimeKit;
using MimeKit.Utils;

namespace Appliance.Tests.Relay;

/// <summary>
/// Bounce and delay reports (RFC 3464 in an RFC 6522 multipart/report), read back with MimeKit
/// and, once, with Python's email package as an independent parser.
/// </summary>
public sealed class DeliveryReportsTests
{
    private const string Host = "mail.example.test";
    private static readonly DateTimeOffset Arrival = new(2026, 5, 10, 9, 30, 0, TimeSpan.FromHours(2));
    private static readonly DateTimeOffset Attempt = new(2026, 5, 10, 9, 31, 5, TimeSpan.Zero);
    private static readonly DateTimeOffset GiveUp = new(2026, 5, 15, 7, 30, 0, TimeSpan.Zero);

    private const string Headers =
        "Received: from [192.0.2.7] by mail.example.test with ESMTPSA; Sun, 10 May 2026 09:30:00 +0200\r\n" +
        "From: Alice <alice@example.test>\r\n" +
        "To: bob@example.net, carol@example.org\r\n" +
        "Subject: Quarterly report\r\n" +
        "Message-ID:\r\n <orig-123@example.test>\r\n" +
        "MIME-Version: 1.0\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        "Content-Transfer-Encoding: 8bit\r\n";
    private const string Body = "Grüße aus Köln — the figures are attached.\r\nZahlen: 42 €\r\n";

    private static readonly byte[] Original = Encoding.UTF8.GetBytes(Headers + "\r\n" + Body);

    private static DsnRecipient Bob => new("bob@example.net", "rfc822;bob@example.net", DsnAction.Failed, "5.1.1",
        "mx.example.net", "550 5.1.1 <bob@example.net>: user unknown", Attempt, null);
    private static DsnRecipient Carol => new("carol@example.org", null, DsnAction.Failed, "5.2.2",
        "mx1.example.org", "552-5.2.2 carol's mailbox is full\r\n552 5.2.2 try again later", Attempt, null);
    private static DsnRecipient Dave => new("dave@example.com", null, DsnAction.Delayed, "4.4.1",
        null, null, Attempt, GiveUp);

    private static byte[] Report(IReadOnlyList<DsnRecipient> recipients, byte[]? original = null, bool headersOnly = false, string? envid = null) =>
        DeliveryReports.Build(Host, envid, "alice@example.test", Arrival, recipients, original ?? Original, headersOnly);

    /// <summary>The text part as one line: it is wrapped for reading.</summary>
    private static string Flat(string text) => string.Join(' ', text.Split([' ', '\r', '\n'], StringSplitOptions.RemoveEmptyEntries));

    private static MimeMessage Load(byte[] report) => MimeMessage.Load(new MemoryStream(report));

    private static (TextPart Text, MessageDeliveryStatus Status, MimeEntity Returned) Parts(MimeMessage m)
    {
        var report = Assert.IsType<MultipartReport>(m.Body);
        Assert.Equal("delivery-status", report.ReportType);
        Assert.Equal(3, report.Count);
        var text = Assert.IsType<TextPart>(report[0]);
        Assert.True(text.IsPlain);
        return (text, Assert.IsType<MessageDeliveryStatus>(report[1]), report[2]);
    }

    /// <summary>The header fields and the content bytes a parser sees in the report's third part.</summary>
    private static (HeaderList Headers, byte[] Content) Returned(byte[] report)
    {
        using var stream = new MemoryStream(report);
        var parser = new MimeParser(stream, MimeFormat.Entity);
        long begin = -1;
        (long Begin, long HeadersEnd, long End)? span = null;
        parser.MimeEntityBegin += (_, e) => { if (e.Parent is MultipartReport) begin = e.BeginOffset; };
        parser.MimeEntityEnd += (_, e) =>
        {
            if (e.Parent is MultipartReport && e.Entity is MessagePart or TextRfc822Headers) span = (begin, e.HeadersEndOffset, e.EndOffset);
        };
        parser.ParseMessage();
        Assert.NotNull(span);
        var (b, h, end) = span.Value;
        var headers = HeaderList.Load(new MemoryStream(report[(int)b..(int)h]));
        return (headers, report[(int)h..(int)end]);
    }

    [Fact]
    public void Failed_TwoRecipients_ReportsEachAndReturnsTheOriginalByteForByte()
    {
        var bytes = Report([Bob, Carol]);
        var m = Load(bytes);

        Assert.Equal("Undelivered Mail Returned to Sender", m.Subject);
        var from = Assert.IsType<MailboxAddress>(Assert.Single(m.From));
        Assert.Equal(("Mail Delivery System", "MAILER-DAEMON@mail.example.test"), (from.Name, from.Address));
        Assert.Equal("alice@example.test", Assert.IsType<MailboxAddress>(Assert.Single(m.To)).Address);
        Assert.EndsWith("@mail.example.test", m.MessageId);
        Assert.Equal("orig-123@example.test", m.InReplyTo);
        Assert.Equal(["orig-123@example.test"], m.References.ToArray());
        Assert.Equal("auto-replied", m.Headers["Auto-Submitted"]);
        Assert.True(m.Date > DateTimeOffset.UnixEpoch);

        var (text, status, returned) = Parts(m);
        var words = Flat(text.Text);
        Assert.Contains("could not be delivered to these 2 recipients", words);
        Assert.Contains("bob@example.net", words);
        Assert.Contains("The address does not exist", words);
        Assert.Contains("550 5.1.1 <bob@example.net>: user unknown", words);
        Assert.Contains("The recipient's mailbox is full", words);
        Assert.Contains("mx1.example.org", words);
        Assert.Contains("Your message is attached", words);

        Assert.Equal(3, status.StatusGroups.Count);
        var message = status.StatusGroups[0];
        Assert.Equal("dns; mail.example.test", message["Reporting-MTA"]);
        Assert.Null(message["Original-Envelope-Id"]);
        Assert.True(DateUtils.TryParse(message["Arrival-Date"], out var arrival));
        Assert.Equal(Arrival, arrival);

        var bob = status.StatusGroups[1];
        Assert.Equal("rfc822;bob@example.net", bob["Original-Recipient"]);
        Assert.Equal("rfc822; bob@example.net", bob["Final-Recipient"]);
        Assert.Equal("failed", bob["Action"]);
        Assert.Equal("5.1.1", bob["Status"]);
        Assert.Equal("dns; mx.example.net", bob["Remote-MTA"]);
        Assert.Equal("smtp; 550 5.1.1 <bob@example.net>: user unknown", bob["Diagnostic-Code"]);
        Assert.True(DateUtils.TryParse(bob["Last-Attempt-Date"], out var last));
        Assert.Equal(Attempt, last);
        Assert.Null(bob["Will-Retry-Until"]);

        var carol = status.StatusGroups[2];
        Assert.Null(carol["Original-Recipient"]);
        Assert.Equal("rfc822; carol@example.org", carol["Final-Recipient"]);
        Assert.Equal("5.2.2", carol["Status"]);
        Assert.Equal("smtp; 552-5.2.2 carol's mailbox is full 552 5.2.2 try again later", carol["Diagnostic-Code"]);

        var part = Assert.IsType<MessagePart>(returned);
        Assert.Equal("message/rfc822", part.ContentType.MimeType);
        var (partHeaders, content) = Returned(bytes);
        Assert.Equal("8bit", partHeaders[HeaderId.ContentTransferEncoding]);
        Assert.Equal("8bit", m.Body!.Headers[HeaderId.ContentTransferEncoding]); // RFC 2045 §6.4: the multipart says so too
        Assert.Equal("Quarterly report", part.Message!.Subject);
        Assert.Equal(Body.ReplaceLineEndings("\n"), part.Message.TextBody?.ReplaceLineEndings("\n"));
        Assert.Equal(Original, content);
    }

    [Fact]
    public async Task PythonEmailPackage_ReadsTheSameReport()
    {
        var path = Path.GetTempFileName();
        try
        {
            File.WriteAllBytes(path, Report([Bob, Dave], envid: "QQ314159"));
            const string script = """
                import email, email.policy, json, sys
                with open(sys.argv[1], 'rb') as f:
                    m = email.message_from_binary_file(f, policy=email.policy.default)
                parts = m.get_payload()
                inner = parts[2].get_payload(0)
                print(json.dumps({
                    'type': m.get_content_type(),
                    'report_type': m.get_param('report-type'),
                    'subject': str(m['subject']),
                    'parts': [p.get_content_type() for p in parts],
                    'text': parts[0].get_content(),
                    'blocks': [{k: str(v) for k, v in b.items()} for b in parts[1].get_payload()],
                    'inner_subject': str(inner['subject']),
                    'inner_body': inner.get_content(),
                    'defects': [repr(d) for p in m.walk() for d in p.defects],
                }))
                """;
            var (exit, output) = await HostCommand.RunAsync("python3", "-c", script, path);
            Assert.True(exit == 0, output);
            using var json = JsonDocument.Parse(output);
            var r = json.RootElement;

            Assert.Equal("multipart/report", r.GetProperty("type").GetString());
            Assert.Equal("delivery-status", r.GetProperty("report_type").GetString());
            Assert.Equal("Undelivered Mail Returned to Sender", r.GetProperty("subject").GetString());
            Assert.Equal(["text/plain", "message/delivery-status", "message/rfc822"],
                r.GetProperty("parts").EnumerateArray().Select(p => p.GetString()));
            Assert.Contains("user unknown", r.GetProperty("text").GetString());
            Assert.Empty(r.GetProperty("defects").EnumerateArray());

            var blocks = r.GetProperty("blocks").EnumerateArray().ToList();
            Assert.Equal(3, blocks.Count);
            Assert.Equal("QQ314159", blocks[0].GetProperty("Original-Envelope-Id").GetString());
            Assert.Equal("dns; mail.example.test", blocks[0].GetProperty("Reporting-MTA").GetString());
            Assert.Equal("failed", blocks[1].GetProperty("Action").GetString());
            Assert.Equal("smtp; 550 5.1.1 <bob@example.net>: user unknown", blocks[1].GetProperty("Diagnostic-Code").GetString());
            Assert.Equal("delayed", blocks[2].GetProperty("Action").GetString());
            Assert.Equal("4.4.1", blocks[2].GetProperty("Status").GetString());

            Assert.Equal("Quarterly report", r.GetProperty("inner_subject").GetString());
            Assert.Equal(Body.ReplaceLineEndings("\n"), r.GetProperty("inner_body").GetString()!.ReplaceLineEndings("\n"));
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void Delayed_SaysItKeepsTryingUntilTheRetryLimit()
    {
        var m = Load(Report([Dave]));

        Assert.Equal("Delayed Mail (still being retried)", m.Subject);
        var (text, status, _) = Parts(m);
        var words = Flat(text.Text);
        Assert.Contains("has not been delivered yet", words);
        Assert.Contains("do not need to send the message again", words);
        Assert.Contains("keep trying until Friday 15 May 2026 at 07:30 UTC", words);

        var dave = status.StatusGroups[1];
        Assert.Equal("delayed", dave["Action"]);
        Assert.Equal("4.4.1", dave["Status"]);
        Assert.Null(dave["Diagnostic-Code"]);
        Assert.Null(dave["Remote-MTA"]);
        Assert.True(DateUtils.TryParse(dave["Will-Retry-Until"], out var until));
        Assert.Equal(GiveUp, until);
    }

    [Fact]
    public void RetHdrs_ReturnsOnlyTheHeaderBlock()
    {
        var bytes = Report([Bob], headersOnly: true);
        var (text, _, returned) = Parts(Load(bytes));

        Assert.IsType<TextRfc822Headers>(returned);
        Assert.Equal("text/rfc822-headers", returned.ContentType.MimeType);
        var (partHeaders, content) = Returned(bytes);
        Assert.Equal(Encoding.UTF8.GetBytes(Headers), content);
        Assert.Equal("7bit", partHeaders[HeaderId.ContentTransferEncoding]); // the 8-bit text stayed behind
        Assert.True(bytes.AsSpan().IndexOf("figures are attached"u8) < 0, "the body came back");
        Assert.Contains("Only the headers of your message", Flat(text.Text));
    }

    [Fact]
    public void OriginalOverOneMebibyte_ReturnsOnlyItsHeaders()
    {
        var big = new StringBuilder(Headers).Append("\r\n");
        while (big.Length <= DeliveryReports.MaxReturnedSize + 1000) big.Append(new string('x', 76)).Append("\r\n");
        var original = Encoding.ASCII.GetBytes(big.ToString());

        var bytes = Report([Bob], original);
        var (text, _, returned) = Parts(Load(bytes));

        Assert.IsType<TextRfc822Headers>(returned);
        Assert.True(bytes.Length < 64 * 1024, $"report is {bytes.Length} bytes");
        Assert.Contains("larger than 1 MiB", Flat(text.Text));
        Assert.Equal("7bit", Returned(bytes).Headers[HeaderId.ContentTransferEncoding]);
    }

    [Fact]
    public void LineBreaksInRemoteText_DoNotCreateHeadersOrRecipients()
    {
        var hostile = Bob with
        {
            RemoteMta = "mx.example.net\r\nBcc: victim@example.com",
            DiagnosticCode = "550 5.1.1 unknown\r\nX-Injected: yes\r\n\r\nFinal-Recipient: rfc822; evil@attacker.test\r\nAction: delivered\n\rStatus: 2.0.0",
        };
        var longWord = Carol with { DiagnosticCode = "550 " + new string('A', 5000) + " end" };
        var bytes = Report([hostile, longWord]);
        var m = Load(bytes);
        var (_, status, _) = Parts(m);

        Assert.Null(m.Headers["Bcc"]);
        Assert.Null(m.Headers["X-Injected"]);
        Assert.Equal(3, status.StatusGroups.Count);
        var group = status.StatusGroups[1];
        Assert.Null(group["X-Injected"]);
        Assert.Null(group["Bcc"]);
        Assert.Equal("failed", group["Action"]);
        Assert.Equal("5.1.1", group["Status"]);
        Assert.Equal("rfc822; bob@example.net", group["Final-Recipient"]);
        Assert.Equal("smtp; 550 5.1.1 unknown X-Injected: yes Final-Recipient: rfc822; evil@attacker.test Action: delivered Status: 2.0.0",
            group["Diagnostic-Code"]);
        Assert.StartsWith("dns; mx.example.net", group["Remote-MTA"]);

        // Every line of the report ends in CRLF and stays within 998 octets (RFC 5322 §2.1.1).
        for (int i = 0, start = 0; i < bytes.Length; i++)
        {
            if (bytes[i] == '\r') Assert.True(i + 1 < bytes.Length && bytes[i + 1] == '\n', $"bare CR at {i}");
            if (bytes[i] != '\n') continue;
            Assert.True(i > 0 && bytes[i - 1] == '\r', $"bare LF at {i}");
            Assert.True(i - 1 - start <= 998, $"line of {i - 1 - start} octets at {start}");
            start = i + 1;
        }
        Assert.Contains(new string('A', 100), status.StatusGroups[2]["Diagnostic-Code"]);
    }

    [Theory]
    [InlineData(null, null)]
    [InlineData("QQ314159", "QQ314159")]
    [InlineData("id+2Bplus+3Dequals", "id+plus=equals")] // xtext, RFC 3461 §4 and §6.3
    public void EnvelopeId_IsWrittenOnlyWhenGiven(string? envid, string? expected)
    {
        var ascii = Encoding.ASCII.GetBytes(Headers.Replace("8bit", "7bit", StringComparison.Ordinal) + "\r\nplain body\r\n");
        var bytes = Report([Bob], ascii, envid: envid);
        var m = Load(bytes);
        var (_, status, _) = Parts(m);

        Assert.Equal(expected, status.StatusGroups[0]["Original-Envelope-Id"]);
        Assert.Equal(expected is not null, Encoding.ASCII.GetString(bytes).Contains("Original-Envelope-Id:", StringComparison.Ordinal));
        var (partHeaders, content) = Returned(bytes);
        Assert.Equal("7bit", partHeaders[HeaderId.ContentTransferEncoding]);
        Assert.Null(m.Body!.Headers[HeaderId.ContentTransferEncoding]);
        Assert.Equal(ascii, content);
    }

    [Fact]
    public void NonAsciiRecipient_IsWrittenAsUtf8AddressType_AndNoMessageIdMeansNoThreading()
    {
        var original = Encoding.UTF8.GetBytes("From: alice@example.test\r\nSubject: hi\r\n\r\nhello\r\n");
        var m = Load(Report([Bob with { Address = "jürgen+news@example.de", OriginalRecipient = null }], original));
        var (text, status, _) = Parts(m);

        Assert.Equal("utf-8; j\\x{FC}rgen\\x{2B}news@example.de", status.StatusGroups[1]["Final-Recipient"]); // RFC 6533 §3 utf-8-addr-xtext
        Assert.Contains("jürgen+news@example.de", text.Text);
        Assert.Null(m.InReplyTo);
        Assert.Empty(m.References);
    }
}
