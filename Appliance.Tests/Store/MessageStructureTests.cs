using System.Text;
using Appliance.Store;
using MimeKit;

namespace Appliance.Tests.Store;

public sealed class MessageStructureTests
{
    private static MessageStructure Parse(string message) =>
        MessageStructure.Parse(new MemoryStream(Encoding.UTF8.GetBytes(message)));

    private static string Slice(string message, long start, long end) =>
        Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(message), (int)start, (int)(end - start));

    private const string NilEnvelope = "(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)";

    [Fact]
    public void Rfc3501SampleEnvelopeAndBodyAreReproduced()
    {
        // RFC 3501 §8: the FETCH response of the sample session, rebuilt as a message.
        var body = new StringBuilder();
        for (int i = 0; i < 91; i++)
        {
            body.Append('x', 31).Append("\r\n");
        }
        body.Append('y', 23).Append("\r\n");
        string message =
            "Date: Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\r\n" +
            "From: Terry Gray <gray@cac.washington.edu>\r\n" +
            "Subject: IMAP4rev1 WG mtg summary and minutes\r\n" +
            "To: imap@cac.washington.edu\r\n" +
            "cc: minutes@CNRI.Reston.VA.US, John Klensin <KLENSIN@MIT.EDU>\r\n" +
            "Message-Id: <B27397-0100000@cac.washington.edu>\r\n" +
            "MIME-Version: 1.0\r\n" +
            "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\r\n" +
            "\r\n" + body;

        var s = Parse(message);

        Assert.Equal(
            "(\"Wed, 17 Jul 1996 02:23:25 -0700 (PDT)\" \"IMAP4rev1 WG mtg summary and minutes\" " +
            "((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) " +
            "((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) " +
            "((\"Terry Gray\" NIL \"gray\" \"cac.washington.edu\")) " +
            "((NIL NIL \"imap\" \"cac.washington.edu\")) " +
            "((NIL NIL \"minutes\" \"CNRI.Reston.VA.US\")(\"John Klensin\" NIL \"KLENSIN\" \"MIT.EDU\")) " +
            "NIL NIL \"<B27397-0100000@cac.washington.edu>\")",
            s.Envelope);
        Assert.Equal("(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92)", s.Body);
        Assert.Equal("(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 3028 92 NIL NIL NIL NIL)", s.BodyStructure);
        Assert.True(MessageStructure.TryFindPart(s.PartOffsets, "1", out var part));
        Assert.Equal(body.ToString(), Slice(message, part.BodyStart, part.End));
    }

    [Fact]
    public void TextWithoutContentTypeDefaultsToUsAscii()
    {
        var s = Parse("Subject: plain\r\n\r\none\r\ntwo\r\nthree");
        // RFC 2045 §5.2 default; the last line has no CRLF but still counts.
        Assert.Equal("(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 15 3 NIL NIL NIL NIL)", s.BodyStructure);
    }

    private const string MixedMessage =
        "From: Alice <alice@example.org>\r\n" +
        "Subject: report\r\n" +
        "MIME-Version: 1.0\r\n" +
        "Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
        "\r\n" +
        "This is a multi-part message.\r\n" +
        "--b1\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        "Content-Transfer-Encoding: quoted-printable\r\n" +
        "\r\n" +
        "Hello\r\n" +
        "World\r\n" +
        "--b1\r\n" +
        "Content-Type: application/pdf; name=\"report.pdf\"\r\n" +
        "Content-Transfer-Encoding: base64\r\n" +
        "Content-ID: <part2@example.org>\r\n" +
        "Content-Description: The \"final\" report\r\n" +
        "Content-Disposition: attachment;\r\n filename=\"report.pdf\"; size=9\r\n" +
        "Content-Language: en, de\r\n" +
        "\r\n" +
        "JVBERi0xLjQK\r\n" +
        "JSVFT0YK\r\n" +
        "--b1--\r\n" +
        "epilogue\r\n";

    [Fact]
    public void MultipartWithAttachmentCountsEncodedOctetsAndLines()
    {
        var s = Parse(MixedMessage);

        // Octets exclude the CRLF that belongs to the next boundary (RFC 2046 §5.1.1):
        // "Hello\r\nWorld" = 12 octets, 2 lines; "JVBERi0xLjQK\r\nJSVFT0YK" = 22 octets.
        Assert.Equal(
            "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 12 2 NIL NIL NIL NIL)" +
            "(\"APPLICATION\" \"PDF\" (\"NAME\" \"report.pdf\") \"<part2@example.org>\" \"The \\\"final\\\" report\" \"BASE64\" 22" +
            " NIL (\"ATTACHMENT\" (\"FILENAME\" \"report.pdf\" \"SIZE\" \"9\")) (\"en\" \"de\") NIL)" +
            " \"MIXED\" (\"BOUNDARY\" \"b1\") NIL NIL NIL)",
            s.BodyStructure);
        Assert.Equal(
            "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"utf-8\") NIL NIL \"QUOTED-PRINTABLE\" 12 2)" +
            "(\"APPLICATION\" \"PDF\" (\"NAME\" \"report.pdf\") \"<part2@example.org>\" \"The \\\"final\\\" report\" \"BASE64\" 22)" +
            " \"MIXED\")",
            s.Body);

        Assert.True(MessageStructure.TryFindPart(s.PartOffsets, "1", out var text));
        Assert.Equal("Hello\r\nWorld", Slice(MixedMessage, text.BodyStart, text.End));
        Assert.StartsWith("Content-Type: text/plain", Slice(MixedMessage, text.HeaderStart, text.BodyStart), StringComparison.Ordinal);
        Assert.True(MessageStructure.TryFindPart(s.PartOffsets, "2", out var pdf));
        Assert.Equal("JVBERi0xLjQK\r\nJSVFT0YK", Slice(MixedMessage, pdf.BodyStart, pdf.End));
        Assert.Equal(-1, pdf.InnerBodyStart);
        Assert.True(MessageStructure.TryFindPart(s.PartOffsets, "", out var root));
        Assert.Equal(0, root.HeaderStart);
        Assert.Equal(MixedMessage.Length, root.End);
        Assert.StartsWith("This is a multi-part", Slice(MixedMessage, root.BodyStart, root.End), StringComparison.Ordinal);
        Assert.False(MessageStructure.TryFindPart(s.PartOffsets, "3", out _));
    }

    private const string ForwardMessage =
        "From: bob@example.org\r\n" +
        "Subject: Fwd: lunch\r\n" +
        "Content-Type: multipart/mixed; boundary=outer\r\n" +
        "\r\n" +
        "--outer\r\n" +
        "\r\n" +
        "see below\r\n" +
        "--outer\r\n" +
        "Content-Type: message/rfc822\r\n" +
        "\r\n" +
        "From: Carol <carol@example.net>\r\n" +
        "Subject: lunch\r\n" +
        "Date: Tue, 1 Apr 2025 12:00:00 +0000\r\n" +
        "Content-Type: multipart/alternative; boundary=inner\r\n" +
        "\r\n" +
        "--inner\r\n" +
        "Content-Type: text/plain\r\n" +
        "\r\n" +
        "noon?\r\n" +
        "--inner\r\n" +
        "Content-Type: text/html\r\n" +
        "\r\n" +
        "<p>noon?</p>\r\n" +
        "--inner--\r\n" +
        "--outer--\r\n";

    [Fact]
    public void NestedMessageHasEnvelopeBodyAndLines()
    {
        var s = Parse(ForwardMessage);

        const string innerEnvelope =
            "(\"Tue, 1 Apr 2025 12:00:00 +0000\" \"lunch\" ((\"Carol\" NIL \"carol\" \"example.net\")) " +
            "((\"Carol\" NIL \"carol\" \"example.net\")) ((\"Carol\" NIL \"carol\" \"example.net\")) NIL NIL NIL NIL NIL)";
        Assert.True(MessageStructure.TryFindPart(s.PartOffsets, "2", out var forwarded));
        string inner = Slice(ForwardMessage, forwarded.BodyStart, forwarded.End);
        Assert.StartsWith("From: Carol", inner, StringComparison.Ordinal);
        Assert.EndsWith("--inner--", inner, StringComparison.Ordinal);
        int innerLines = inner.Split("\r\n").Length;
        Assert.Equal(
            "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 9 1)" +
            "(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"7BIT\" " + Encoding.ASCII.GetByteCount(inner) + " " + innerEnvelope + " " +
            "((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 5 1)" +
            "(\"TEXT\" \"HTML\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 12 1) \"ALTERNATIVE\") " +
            innerLines + ") \"MIXED\")",
            s.Body);
        Assert.Contains("\"ALTERNATIVE\" (\"BOUNDARY\" \"inner\") NIL NIL NIL) " + innerLines + " NIL NIL NIL NIL) \"MIXED\"", s.BodyStructure, StringComparison.Ordinal);

        // Sections inside the encapsulated message: 2.HEADER / 2.TEXT via InnerBodyStart, 2.1 and 2.2.
        Assert.StartsWith("From: Carol", Slice(ForwardMessage, forwarded.BodyStart, forwarded.InnerBodyStart), StringComparison.Ordinal);
        Assert.StartsWith("--inner", Slice(ForwardMessage, forwarded.InnerBodyStart, forwarded.End), StringComparison.Ordinal);
        Assert.True(MessageStructure.TryFindPart(s.PartOffsets, "2.1", out var plain));
        Assert.Equal("noon?", Slice(ForwardMessage, plain.BodyStart, plain.End));
        Assert.True(MessageStructure.TryFindPart(s.PartOffsets, "2.2", out var html));
        Assert.Equal("<p>noon?</p>", Slice(ForwardMessage, html.BodyStart, html.End));
    }

    [Fact]
    public void EncodedWordsStayRawAndFoldingIsRemoved()
    {
        var s = Parse(
            "Subject: =?utf-8?B?w6TDtsO8?=\r\n =?utf-8?Q?_caf=C3=A9?=\r\n" +
            "From: =?iso-8859-1?q?J=F6rg?= <jorg@example.de>\r\n\r\nx");
        Assert.Equal(
            "(NIL \"=?utf-8?B?w6TDtsO8?= =?utf-8?Q?_caf=C3=A9?=\" " +
            "((\"=?iso-8859-1?q?J=F6rg?=\" NIL \"jorg\" \"example.de\")) " +
            "((\"=?iso-8859-1?q?J=F6rg?=\" NIL \"jorg\" \"example.de\")) " +
            "((\"=?iso-8859-1?q?J=F6rg?=\" NIL \"jorg\" \"example.de\")) NIL NIL NIL NIL NIL)",
            s.Envelope);
    }

    [Fact]
    public void EightBitHeaderAndSpecialsAreLiteralOrEscaped()
    {
        var s = Parse("Subject: caf\u00e9 \"now\"\r\nMessage-ID: <a\\b@x>\r\n\r\n");
        // "café" is 5 UTF-8 octets: 11 octets in all, so a literal; \ and " are escaped in quoted strings.
        Assert.Equal("(NIL {11}\r\ncaf\u00e9 \"now\" NIL NIL NIL NIL NIL NIL NIL \"<a\\\\b@x>\")", s.Envelope);
    }

    [Fact]
    public void AddressesWithGroupsQuotingCommentsAndRoutes()
    {
        var s = Parse(
            "From: \"Doe, \\\"JD\\\" John\" <john.doe@example.com>\r\n" +
            "Sender: secretary@example.com (The Secretary)\r\n" +
            "Reply-To: \r\n" +
            "To: undisclosed-recipients:;\r\n" +
            "Cc: Team: Ann <ann@x.org>,\r\n\t\"bob smith\"@x.org;, John Q. Public <@r1,@r2:jqp@[192.0.2.1]>\r\n" +
            "Bcc: nodomain\r\n" +
            "\r\nbody");
        const string from = "((\"Doe, \\\"JD\\\" John\" NIL \"john.doe\" \"example.com\"))";
        Assert.Equal(
            "(NIL NIL " + from + " " +
            "((\"The Secretary\" NIL \"secretary\" \"example.com\")) " +
            from + " " +  // RFC 3501 §7.4.2: empty Reply-To defaults to From
            "((NIL NIL \"undisclosed-recipients\" NIL)(NIL NIL NIL NIL)) " +
            "((NIL NIL \"Team\" NIL)(\"Ann\" NIL \"ann\" \"x.org\")(NIL NIL \"\\\"bob smith\\\"\" \"x.org\")(NIL NIL NIL NIL)" +
            "(\"John Q. Public\" \"@r1,@r2\" \"jqp\" \"[192.0.2.1]\")) " +
            "((NIL NIL \"nodomain\" \"MISSING_DOMAIN\")) NIL NIL)",
            s.Envelope);
    }

    [Fact]
    public void MissingHeadersAreNilAndEmptyOnesAreEmptyStrings()
    {
        var s = Parse("Subject:\r\nTo: \r\nX-Other: 1\r\n\r\nhello\r\n");
        // RFC 3501 §7.4.2: absent Date → NIL, present-but-empty Subject → "", empty To → NIL,
        // no From → sender and reply-to NIL too.
        Assert.Equal("(NIL \"\" NIL NIL NIL NIL NIL NIL NIL NIL)", s.Envelope);
    }

    [Theory]
    [InlineData("")]
    [InlineData("just text\r\nwithout any header\r\n")]
    [InlineData("\r\n\r\nbody after blank line")]
    [InlineData("Subject: x\r\nContent-Type: multipart/mixed\r\n\r\nno boundary parameter\r\n")]
    [InlineData("Subject: x\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\n--q\r\nContent-Type: text/plain\r\n\r\nnever closed")]
    [InlineData("Subject: x\r\nContent-Type: multipart/mixed; boundary=q\r\n\r\nno boundary line at all")]
    [InlineData("Content-Type: message/rfc822\r\n\r\n")]
    [InlineData("Content-Type: /;;;===\"\r\nContent-Disposition: ;\r\nFrom: <<<@@@>>>,,;;::\r\nTo: \"unterminated\r\n\r\nx")]
    [InlineData("Subject: headers only, no blank line, no CRLF")]
    [InlineData("From: a@b\nSubject: bare LF\n\nbody\n")]
    public void BrokenMimeNeverThrowsAndStaysWellFormed(string message)
    {
        var s = Parse(message);
        AssertWellFormed(s.Envelope);
        AssertWellFormed(s.Body);
        AssertWellFormed(s.BodyStructure);
        Assert.True(MessageStructure.TryFindPart(s.PartOffsets, "", out var root));
        Assert.InRange(root.End, 0, Encoding.UTF8.GetByteCount(message));
    }

    [Fact]
    public void MessageWithoutHeadersIsOnePlainTextBody()
    {
        var s = Parse("just text\r\nwithout any header\r\n");
        Assert.Equal(NilEnvelope, s.Envelope);
        Assert.Equal("(\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 31 2)", s.Body);
    }

    [Fact]
    public void MultipartWithoutBoundaryKeepsItsBodyAsOnePart()
    {
        const string message = "Subject: x\r\nContent-Type: multipart/mixed\r\n\r\nno boundary\r\n";
        var s = Parse(message);
        Assert.Equal("((\"TEXT\" \"PLAIN\" (\"CHARSET\" \"US-ASCII\") NIL NIL \"7BIT\" 13 1) \"MIXED\")", s.Body);
        Assert.True(MessageStructure.TryFindPart(s.PartOffsets, "1", out var part));
        Assert.Equal("no boundary\r\n", Slice(message, part.BodyStart, part.End));
    }

    [Theory]
    [InlineData("Content-Type: message/rfc822\r\n\r\n")]
    [InlineData("Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\nU3ViamVjdDogaGkNCg0KYm9keQ0K\r\n")]
    [InlineData("Content-Type: multipart/digest; boundary=d\r\n\r\n--d\r\n\r\nSubject: in digest\r\n\r\nx\r\n--d--\r\n")]
    public void EncapsulatedMessagesAlwaysHaveEnvelopeBodyAndLines(string message)
    {
        var s = Parse(message);
        AssertWellFormed(s.BodyStructure);
        // "MESSAGE" "RFC822" params id desc enc octets ( envelope ) ( body ) lines
        int at = s.Body.IndexOf("(\"MESSAGE\" \"RFC822\"", StringComparison.Ordinal);
        Assert.True(at >= 0, s.Body);
        Assert.Matches("^\\(\"MESSAGE\" \"RFC822\" NIL NIL NIL \"[0-9A-Z]+\" [0-9]+ \\((NIL|\").*\\) [0-9]+\\)", s.Body[at..]);
    }

    [Fact]
    public void RandomBinaryGarbageNeverThrows()
    {
        var random = new Random(20261125);
        for (int i = 0; i < 300; i++)
        {
            var bytes = new byte[random.Next(0, 2000)];
            random.NextBytes(bytes);
            if (i % 3 == 0)
            {
                // Make some inputs look like MIME so the parser goes deeper.
                var prefix = "Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\n"u8.ToArray();
                bytes = [.. prefix, .. bytes, .. "\r\n--z\r\n\r\n"u8.ToArray()];
            }
            var s = MessageStructure.Parse(new MemoryStream(bytes));
            AssertWellFormed(s.Envelope);
            AssertWellFormed(s.BodyStructure);
        }
    }

    [Fact]
    public void LoadedMessageAndUnseekableStreamGiveTheSameResult()
    {
        var fromStream = Parse(MixedMessage);
        var loaded = MimeMessage.Load(new MemoryStream(Encoding.ASCII.GetBytes(MixedMessage)));
        Assert.Equal(fromStream, MessageStructure.Parse(loaded));
        Assert.Equal(fromStream, MessageStructure.Parse(new ForwardOnlyStream(Encoding.ASCII.GetBytes(MixedMessage))));
    }

    [Fact]
    public void OffsetsAreRelativeToTheStartPosition()
    {
        var bytes = Encoding.ASCII.GetBytes("IGNORED PREFIX" + MixedMessage);
        var stream = new MemoryStream(bytes) { Position = 14 };
        Assert.Equal(Parse(MixedMessage), MessageStructure.Parse(stream));
    }

    /// <summary>Checks IMAP syntax: balanced parentheses outside quoted strings, valid escapes,
    /// literal lengths that match their UTF-8 octets.</summary>
    private static void AssertWellFormed(string response)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(response);
        int depth = 0;
        for (int i = 0; i < bytes.Length; i++)
        {
            byte b = bytes[i];
            if (b == '"')
            {
                for (i++; i < bytes.Length && bytes[i] != '"'; i++)
                {
                    Assert.True(bytes[i] is not ((byte)'\r' or (byte)'\n') and < 0x80, response);
                    if (bytes[i] == '\\')
                    {
                        i++;
                        Assert.True(bytes[i] is (byte)'\\' or (byte)'"', response);
                    }
                }
                Assert.True(i < bytes.Length, response);
            }
            else if (b == '{')
            {
                int close = Array.IndexOf(bytes, (byte)'}', i);
                int length = int.Parse(Encoding.ASCII.GetString(bytes, i + 1, close - i - 1), System.Globalization.CultureInfo.InvariantCulture);
                Assert.Equal((byte)'\r', bytes[close + 1]);
                Assert.Equal((byte)'\n', bytes[close + 2]);
                i = close + 2 + length;
                Assert.True(i < bytes.Length, response);
            }
            else if (b == '(')
            {
                depth++;
            }
            else if (b == ')')
            {
                depth--;
                Assert.True(depth >= 0, response);
            }
            else
            {
                Assert.True(b is (byte)' ' or >= (byte)'0' and <= (byte)'9' || response.AsSpan(i).StartsWith("NIL"), response);
                if (b == 'N')
                {
                    i += 2;
                }
            }
        }
        Assert.Equal(0, depth);
        Assert.StartsWith("(", response, StringComparison.Ordinal);
    }

    private sealed class ForwardOnlyStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;
    }
}
