using Appliance.Filtering.Sieve;
using MimeKit;
using static Appliance.Tests.Filtering.Sieve.SieveTesting;

namespace Appliance.Tests.Filtering.Sieve;

/// <summary>
/// Vacation (RFC 5230, RFC 6131 seconds): the action's arguments and handle, when not to answer
/// (RFC 5230 §4.5, RFC 3834), and the reply's fields read back with MimeKit.
/// </summary>
public sealed class SieveVacationTests
{
    private const string Original = """
        From: "Wile E. Coyote" <coyote@desert.example.org>
        To: Road Runner <roadrunner@acme.example.com>
        Subject: I have a present for you
        Message-ID: <present-1@desert.example.org>
        References: <earlier@desert.example.org>

        Look, I'm sorry about the whole anvil thing.

        """;

    private static SieveContext Incoming(string message = Original, string from = "coyote@desert.example.org") =>
        Context(message, from, "roadrunner@acme.example.com") with { UserAddresses = ["roadrunner@acme.example.com", "rr@acme.example.com"] };

    private static VacationAction Vacation(string arguments, SieveContext? context = null) =>
        Assert.Single(Actions($"require [\"vacation\", \"vacation-seconds\", \"variables\"]; vacation {arguments};", context ?? Incoming()).OfType<VacationAction>());

    [Fact]
    public void Arguments_become_the_action()
    {
        var v = Vacation(":days 23 :addresses [\"tjs@example.edu\", \"ts4z@landru.example.edu\"] :subject \"Gone fishing\" :from \"rr@acme.example.com\" :handle \"fish\" \"I'm away until October 19.\"");
        Assert.Equal(new VacationAction("I'm away until October 19.", false, "Gone fishing", "rr@acme.example.com",
            ["tjs@example.edu", "ts4z@landru.example.edu"], "fish", TimeSpan.FromDays(23)), v);

        var defaults = Vacation("\"away\"");
        Assert.Equal(TimeSpan.FromDays(7), defaults.Period);
        Assert.Null(defaults.Subject);
        Assert.Null(defaults.From);
        Assert.Empty(defaults.Addresses);
        Assert.False(defaults.Mime);
        Assert.Equal(TimeSpan.FromDays(1), Vacation(":days 0 \"away\"").Period);
        Assert.Equal(TimeSpan.FromSeconds(1800), Vacation(":seconds 1800 \"away\"").Period);
        Assert.Equal(TimeSpan.Zero, Vacation(":seconds 0 \"away\"").Period);
    }

    [Fact]
    public void The_handle_follows_the_text_when_not_given()
    {
        var a = Vacation("\"away\"").Handle;
        Assert.Matches("^[0-9a-f]{64}$", a);
        Assert.Equal(a, Vacation("\"away\"").Handle);
        Assert.NotEqual(a, Vacation("\"away for longer\"").Handle);
        Assert.NotEqual(a, Vacation(":subject \"x\" \"away\"").Handle);
        Assert.NotEqual(a, Vacation(":from \"rr@acme.example.com\" \"away\"").Handle);
        Assert.NotEqual(a, Vacation(":mime \"away\"").Handle);
        Assert.Equal(a, Vacation(":days 3 \"away\"").Handle); // the period is not part of it
        Assert.Equal(a, Vacation("\"${x}away\"").Handle);     // the text after expansion
        Assert.Equal("h", Vacation(":handle \"h\" \"away\"").Handle);
    }

    [Fact]
    public void A_reply_goes_to_a_person_writing_to_the_user()
    {
        var context = Incoming();
        Assert.Null(SieveVacation.WhyNotRespond(context, Vacation("\"away\"")));
        // addressed to another of the user's addresses, or to one given by :addresses, or with a detail
        Assert.Null(SieveVacation.WhyNotRespond(Incoming(Original.Replace("To: Road Runner <roadrunner@", "Cc: x@other.test, RR <rr@")), Vacation("\"away\"")));
        var alias = Incoming(Original.Replace("roadrunner@acme.example.com", "beep@acme.example.com"));
        Assert.Equal("none of the recipient's addresses is in To, Cc, Bcc, Resent-To or Resent-Cc (RFC 5230 §4.5)", SieveVacation.WhyNotRespond(alias, Vacation("\"away\"")));
        Assert.Null(SieveVacation.WhyNotRespond(alias, Vacation(":addresses \"beep@acme.example.com\" \"away\"")));
        Assert.Null(SieveVacation.WhyNotRespond(Incoming(Original.Replace("roadrunner@acme", "Roadrunner+news@ACME")), Vacation("\"away\"")));
        Assert.Null(SieveVacation.WhyNotRespond(Incoming(Original.Replace("To: Road Runner <roadrunner@acme.example.com>", "To: list@lists.test\r\nResent-To: rr@acme.example.com")), Vacation("\"away\"")));
        Assert.Null(SieveVacation.WhyNotRespond(Incoming(Original.Replace("To: Road Runner <roadrunner@acme.example.com>", "To: undisclosed: rr@acme.example.com;")), Vacation("\"away\"")));
    }

    [Theory]
    [InlineData("", "", "the envelope sender is empty (a bounce or notification)")]
    [InlineData("MAILER-DAEMON@example.org", "", "the sender MAILER-DAEMON@example.org is a mailer or list address (RFC 3834 §2)")]
    [InlineData("owner-sieve@example.org", "", "the sender owner-sieve@example.org is a mailer or list address (RFC 3834 §2)")]
    [InlineData("sieve-request@example.org", "", "the sender sieve-request@example.org is a mailer or list address (RFC 3834 §2)")]
    [InlineData("LISTSERV@example.org", "", "the sender LISTSERV@example.org is a mailer or list address (RFC 3834 §2)")]
    [InlineData("majordomo@example.org", "", "the sender majordomo@example.org is a mailer or list address (RFC 3834 §2)")]
    [InlineData("coyote@desert.example.org", "Auto-Submitted: auto-replied\r\n", "the message is Auto-Submitted: auto-replied")]
    [InlineData("coyote@desert.example.org", "Auto-Submitted: auto-generated; owner-email=\"x@y\"\r\n", "the message is Auto-Submitted: auto-generated; owner-email=\"x@y\"")]
    [InlineData("coyote@desert.example.org", "List-Id: Desert news <news.desert.example.org>\r\n", "the message comes from a mailing list (List-Id)")]
    [InlineData("coyote@desert.example.org", "List-Unsubscribe: <mailto:u@desert.example.org>\r\n", "the message comes from a mailing list (List-Unsubscribe)")]
    [InlineData("coyote@desert.example.org", "List-Post: NO\r\n", "the message comes from a mailing list (List-Post)")]
    [InlineData("coyote@desert.example.org", "Precedence: bulk\r\n", "the message has Precedence: bulk")]
    [InlineData("coyote@desert.example.org", "Precedence: JUNK\r\n", "the message has Precedence: JUNK")]
    [InlineData("coyote@desert.example.org", "Precedence: list\r\n", "the message has Precedence: list")]
    [InlineData("coyote@desert.example.org", "X-Auto-Response-Suppress: DR, OOF\r\n", "the message asks for no auto-reply (X-Auto-Response-Suppress: DR, OOF)")]
    [InlineData("coyote@desert.example.org", "X-Auto-Response-Suppress: All\r\n", "the message asks for no auto-reply (X-Auto-Response-Suppress: All)")]
    [InlineData("coyote@desert.example.org", "X-Spam-Flag: YES\r\n", "the message is spam")]
    [InlineData("coyote@desert.example.org", "X-Spam-Status: Yes, score=12.1\r\n", "the message is spam")]
    [InlineData("coyote@desert.example.org", "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n", "the message is a delivery or read report")]
    [InlineData("roadrunner@acme.example.com", "", "the sender is the recipient")]
    [InlineData("RR@acme.example.com", "", "the sender is the recipient")]
    public void No_reply(string sender, string extraFields, string reason)
    {
        var context = Incoming(extraFields + Original, sender);
        Assert.Equal(reason, SieveVacation.WhyNotRespond(context, Vacation("\"away\"")));
    }

    [Theory]
    [InlineData("Auto-Submitted: no\r\n")]
    [InlineData("Precedence: first-class\r\n")]
    [InlineData("X-Auto-Response-Suppress: DR, RN\r\n")]
    [InlineData("X-Spam-Flag: NO\r\n")]
    public void Fields_that_do_not_stop_a_reply(string field) =>
        Assert.Null(SieveVacation.WhyNotRespond(Incoming(field + Original), Vacation("\"away\"")));

    [Fact]
    public void The_reply_headers()
    {
        var context = Incoming();
        var now = new DateTimeOffset(2025, 3, 4, 5, 6, 7, TimeSpan.Zero);
        var raw = SieveVacation.BuildReply(context, Vacation("\"I'm away — back Monday.\""), "mx.acme.example.com", now);
        var reply = MimeMessage.Load(new MemoryStream(raw));
        Assert.Equal("roadrunner@acme.example.com", Assert.IsType<MailboxAddress>(Assert.Single(reply.From)).Address);
        Assert.Equal("coyote@desert.example.org", Assert.IsType<MailboxAddress>(Assert.Single(reply.To)).Address);
        Assert.Equal("Auto: I have a present for you", reply.Subject);
        Assert.Equal("present-1@desert.example.org", reply.InReplyTo);
        Assert.Equal(["earlier@desert.example.org", "present-1@desert.example.org"], reply.References);
        Assert.Equal("auto-replied", reply.Headers["Auto-Submitted"]);
        Assert.EndsWith("@mx.acme.example.com", reply.MessageId);
        Assert.Equal(now, reply.Date);
        Assert.Equal("1.0", reply.Headers["MIME-Version"]);
        var body = Assert.IsType<TextPart>(reply.Body);
        Assert.True(body.IsPlain);
        Assert.Equal("utf-8", body.ContentType.Charset);
        Assert.Equal("I'm away — back Monday.", body.Text);
        Assert.DoesNotContain("\n", System.Text.Encoding.ASCII.GetString(raw).Replace("\r\n", ""));
    }

    [Fact]
    public void The_reply_with_subject_from_and_variables()
    {
        var context = Incoming();
        var vacation = Assert.Single(Actions("""
            require ["vacation", "variables"];
            if header :matches "subject" "*" { set "s" "${1}"; }
            vacation :subject "Re: ${s} (I'm away)" :from "Road Runner <rr@acme.example.com>" "Back soon.";
            """, context).OfType<VacationAction>());
        var reply = MimeMessage.Load(new MemoryStream(SieveVacation.BuildReply(context, vacation, "mx.acme.example.com", DateTimeOffset.UtcNow)));
        Assert.Equal("Re: I have a present for you (I'm away)", reply.Subject);
        var from = Assert.IsType<MailboxAddress>(Assert.Single(reply.From));
        Assert.Equal(("Road Runner", "rr@acme.example.com"), (from.Name, from.Address));
    }

    [Fact]
    public void A_mime_reason_is_the_body()
    {
        var context = Incoming();
        var vacation = Assert.Single(Actions("""
            require "vacation";
            vacation :mime text:
            Content-Type: multipart/alternative; boundary=foo

            --foo
            Content-Type: text/plain; charset=utf-8

            I'm at the beach relaxing.

            --foo
            Content-Type: text/html; charset=utf-8

            <p>I'm at the <b>beach</b> relaxing.</p>
            --foo--
            .
            ;
            """, context).OfType<VacationAction>());
        Assert.True(vacation.Mime);
        var reply = MimeMessage.Load(new MemoryStream(SieveVacation.BuildReply(context, vacation, "mx.acme.example.com", DateTimeOffset.UtcNow)));
        var alternative = Assert.IsType<MultipartAlternative>(reply.Body);
        Assert.Equal("I'm at the beach relaxing.", alternative.TextBody?.Trim());
        Assert.Contains("<b>beach</b>", alternative.HtmlBody ?? "");
    }

    [Fact]
    public void A_reply_to_a_message_without_subject_or_id()
    {
        var context = Incoming("From: coyote@desert.example.org\r\nTo: roadrunner@acme.example.com\r\n\r\nhi\r\n");
        var reply = MimeMessage.Load(new MemoryStream(SieveVacation.BuildReply(context, Vacation("\"away\"", context), "mx.test", DateTimeOffset.UtcNow)));
        Assert.Equal("Auto:", reply.Subject);
        Assert.Null(reply.InReplyTo);
        Assert.Empty(reply.References);
    }
}
