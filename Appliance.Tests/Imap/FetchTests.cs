using System.Buffers;
using System.Text;
using Appliance.Imap;
using Appliance.Store;

namespace Appliance.Tests.Imap;

public sealed class FetchTests
{
    // multipart/mixed: 1 quoted-printable text, 2 base64 binary, 3 message/rfc822; an 8-bit
    // Subject and a folded header.
    private const string Mixed =
        "From: Alice <alice@example.org>\r\n" +
        "To: Bob <bob@example.org>\r\n" +
        "Subject: Café\r\n" +
        "X-Long: first\r\n" +
        " second\r\n" +
        "Date: Mon, 7 Feb 1994 21:52:25 -0800\r\n" +
        "Message-ID: <1@example.org>\r\n" +
        "MIME-Version: 1.0\r\n" +
        "Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
        "\r\n" +
        "preamble\r\n" +
        "--b1\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        "Content-Transfer-Encoding: quoted-printable\r\n" +
        "\r\n" +
        "caf=C3=A9 =3D ok=\r\n" +
        "done\r\n" +
        "--b1\r\n" +
        "Content-Type: application/octet-stream\r\n" +
        "Content-Transfer-Encoding: base64\r\n" +
        "\r\n" +
        "AAECAwRoZWxsbw==\r\n" +
        "--b1\r\n" +
        "Content-Type: message/rfc822\r\n" +
        "\r\n" +
        "Subject: inner\r\n" +
        "From: carol@example.org\r\n" +
        "\r\n" +
        "inner body\r\n" +
        "--b1--\r\n";

    private static readonly byte[] MixedBytes = Encoding.UTF8.GetBytes(Mixed);

    private static readonly StoredMessage Message = new(
        42, MixedBytes.Length, new DateTimeOffset(2026, 1, 5, 9, 3, 7, TimeSpan.FromMinutes(-330)),
        MessageFlags.Seen | MessageFlags.Flagged, ["$Label"], 7, "blob");

    private static readonly FetchContext Plain = new(false, false, false, () => ValueTask.CompletedTask);

    private static List<ImapValue> Args(string command)
    {
        var bytes = Encoding.UTF8.GetBytes("a " + command + "\r\n");
        var status = ImapParser.TryParse(new ReadOnlySequence<byte>(bytes), new ImapParserLimits(65536, 65536, 65536), 0,
            out var cmd, out _, out var failure);
        Assert.True(status == ImapParseStatus.Complete, failure.Text);
        return cmd!.Args;
    }

    /// <summary>"FETCH 1 items": parses the items after the sequence set.</summary>
    private static FetchRequest Request(string items, bool uid = false) => FetchRequest.Parse(Args("FETCH 1 " + items), 1, uid);

    private static async Task<string> Fetch(string items, byte[]? message = null, StoredMessage? m = null,
        FetchContext? ctx = null, bool uid = false, bool withStructure = true)
    {
        message ??= MixedBytes;
        m ??= Message with { Size = message.Length };
        var request = Request(items, uid);
        var structure = withStructure ? MessageStructure.Parse(new MemoryStream(message)) : null;
        var buffer = new ArrayBufferWriter<byte>();
        var w = new ImapWriter(buffer);
        await FetchResponder.WriteAsync(w, request, 3, m, structure, () => new MemoryStream(message), ctx ?? Plain, default);
        return Encoding.UTF8.GetString(buffer.WrittenSpan);
    }

    private static string Lit(string s) => "{" + Encoding.UTF8.GetByteCount(s) + "}\r\n" + s;

    [Fact]
    public async Task HeaderFieldsKeepMessageOrderFoldingAndEndWithBlankLine()
    {
        string got = await Fetch("(BODY.PEEK[HEADER.FIELDS (x-long Subject)])");
        // 8-bit "é" counts two octets; the continuation line stays; response names are upper-cased in request order.
        Assert.Equal("* 3 FETCH (BODY[HEADER.FIELDS (X-LONG SUBJECT)] " + Lit("Subject: Café\r\nX-Long: first\r\n second\r\n\r\n") + ")\r\n", got);
    }

    [Fact]
    public async Task HeaderFieldsNotIsTheComplement()
    {
        string got = await Fetch("BODY.PEEK[HEADER.FIELDS.NOT (From To Subject X-Long Date)]");
        Assert.Equal("* 3 FETCH (BODY[HEADER.FIELDS.NOT (FROM TO SUBJECT X-LONG DATE)] " + Lit(
            "Message-ID: <1@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n") + ")\r\n", got);
    }

    [Fact]
    public async Task PartialShowsOnlyTheOriginAndSlices()
    {
        // Part 1's body ends before the CRLF that precedes the boundary.
        Assert.Equal("* 3 FETCH (BODY[1] " + Lit("caf=C3=A9 =3D ok=\r\ndone") + ")\r\n", await Fetch("BODY.PEEK[1]"));
        Assert.Equal("* 3 FETCH (BODY[1]<5> {4}\r\n3=A9)\r\n", await Fetch("BODY.PEEK[1]<5.4>"));
        Assert.Equal("* 3 FETCH (BODY[]<0> {4}\r\nFrom)\r\n", await Fetch("BODY.PEEK[]<0.4>"));
        // Origin past the end: empty string.
        Assert.Equal("* 3 FETCH (BODY[1]<500> \"\")\r\n", await Fetch("BODY.PEEK[1]<500.10>"));
    }

    [Fact]
    public async Task HeaderFieldsOfAMessageWithoutBodyOrFinalLineEnd()
    {
        var bytes = Encoding.ASCII.GetBytes("Subject: a\r\nTo: b@example.org");
        Assert.Equal("* 3 FETCH (BODY[HEADER.FIELDS (TO)] " + Lit("To: b@example.org\r\n\r\n") + ")\r\n",
            await Fetch("BODY.PEEK[HEADER.FIELDS (TO)]", bytes));
    }

    [Fact]
    public async Task MimeHeaderOfAPart()
    {
        Assert.Equal("* 3 FETCH (BODY[1.MIME] " + Lit(
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n") + ")\r\n",
            await Fetch("BODY.PEEK[1.MIME]"));
    }

    [Fact]
    public async Task EncapsulatedMessageHeaderTextAndBody()
    {
        Assert.Equal("* 3 FETCH (BODY[3.HEADER] " + Lit("Subject: inner\r\nFrom: carol@example.org\r\n\r\n") +
            " BODY[3.TEXT] {10}\r\ninner body BODY[3.1] {10}\r\ninner body BODY[3.HEADER.FIELDS (FROM)] " +
            Lit("From: carol@example.org\r\n\r\n") + ")\r\n",
            await Fetch("(BODY.PEEK[3.HEADER] BODY.PEEK[3.TEXT] BODY.PEEK[3.1] BODY.PEEK[3.HEADER.FIELDS (From)])"));
        Assert.Equal("* 3 FETCH (BODY[3] " + Lit("Subject: inner\r\nFrom: carol@example.org\r\n\r\ninner body") + ")\r\n",
            await Fetch("BODY.PEEK[3]"));
    }

    [Fact]
    public async Task MissingPartsAndHeaderOfANonMessagePartAreEmpty()
    {
        Assert.Equal("* 3 FETCH (BODY[4] \"\" BODY[1.TEXT] \"\" BINARY[9] \"\" BINARY.SIZE[9] 0)\r\n",
            await Fetch("(BODY.PEEK[4] BODY.PEEK[1.TEXT] BINARY.PEEK[9] BINARY.SIZE[9])"));
    }

    [Fact]
    public async Task BinaryDecodesBase64AndQuotedPrintable()
    {
        // RFC 3516: NUL in the decoded content means literal8.
        Assert.Equal("* 3 FETCH (BINARY[2] ~{10}\r\n\0\u0001\u0002\u0003\u0004hello BINARY.SIZE[2] 10)\r\n",
            await Fetch("(BINARY.PEEK[2] BINARY.SIZE[2])"));
        Assert.Equal("* 3 FETCH (BINARY[1] " + Lit("café = okdone") + " BINARY.SIZE[1] 14)\r\n",
            await Fetch("(BINARY.PEEK[1] BINARY.SIZE[1])"));
        // Partial over the decoded bytes; the window has no NUL, so a plain literal.
        Assert.Equal("* 3 FETCH (BINARY[2]<5> {3}\r\nhel)\r\n", await Fetch("BINARY.PEEK[2]<5.3>"));
    }

    [Fact]
    public async Task UnknownTransferEncodingIsNoBeforeAnythingIsWritten()
    {
        string message = "Subject: x\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 a\r\n";
        var bytes = Encoding.UTF8.GetBytes(message);
        var request = Request("(UID BINARY[1])");
        var buffer = new ArrayBufferWriter<byte>();
        var e = await Assert.ThrowsAsync<ImapException>(async () => await FetchResponder.WriteAsync(new ImapWriter(buffer), request, 1,
            Message with { Size = bytes.Length }, MessageStructure.Parse(new MemoryStream(bytes)), () => new MemoryStream(bytes), Plain, default));
        Assert.Equal(ImapStatus.No, e.Status);
        Assert.Equal("UNKNOWN-CTE", e.Code);
        Assert.Equal(0, buffer.WrittenCount);
        // BODY[] of the same part is fine: no decoding.
        Assert.Equal("* 3 FETCH (BODY[1] {13}\r\nbegin 644 a\r\n)\r\n", await Fetch("BODY.PEEK[1]", bytes));
    }

    [Fact]
    public async Task SimpleItemsSizeEnvelopeStructureDateFlags()
    {
        var structure = MessageStructure.Parse(new MemoryStream(MixedBytes));
        string got = await Fetch("(FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY BODYSTRUCTURE UID MODSEQ)");
        Assert.Equal("* 3 FETCH (FLAGS (\\Seen \\Flagged $Label) INTERNALDATE \"05-Jan-2026 09:03:07 -0530\" RFC822.SIZE " +
            MixedBytes.Length + " ENVELOPE " + structure.Envelope + " BODY " + structure.Body + " BODYSTRUCTURE " + structure.BodyStructure +
            " UID 42 MODSEQ (7))\r\n", got);
        Assert.StartsWith("(\"Mon, 7 Feb 1994 21:52:25 -0800\" {5}\r\nCafé ((\"Alice\"", structure.Envelope);
        Assert.Equal("\"07-Feb-1994 21:52:25 +0000\"", "\"" + FetchResponder.FormatDate(new DateTimeOffset(1994, 2, 7, 21, 52, 25, TimeSpan.Zero)) + "\"");
    }

    [Fact]
    public async Task StructureIsRequiredWhenTheRequestNeedsIt()
    {
        await Assert.ThrowsAsync<ArgumentNullException>(async () => await Fetch("BODY.PEEK[3.TEXT]", withStructure: false));
    }

    [Fact]
    public async Task UidFlagsAndModSeqAreAddedFromTheContext()
    {
        var ctx = new FetchContext(IncludeUid: true, IncludeModSeq: true, IncludeFlags: true, () => ValueTask.CompletedTask);
        Assert.Equal("* 3 FETCH (UID 42 BODY[]<0> {4}\r\nFrom FLAGS (\\Seen \\Flagged $Label) MODSEQ (7))\r\n",
            await Fetch("BODY[]<0.4>", ctx: ctx, uid: true));
        // Asked for explicitly: not repeated.
        Assert.Equal("* 3 FETCH (FLAGS (\\Seen \\Flagged $Label) UID 42 MODSEQ (7))\r\n", await Fetch("(FLAGS UID MODSEQ)", ctx: ctx));
        // CHANGEDSINCE implies MODSEQ (RFC 7162 §3.1.4.1).
        Assert.Equal("* 3 FETCH (FLAGS (\\Seen \\Flagged $Label) MODSEQ (7))\r\n", await Fetch("(FLAGS) (CHANGEDSINCE 5)"));
    }

    [Fact]
    public async Task Rfc822ItemsAnswerUnderTheirOwnNames()
    {
        string header = Mixed[..(Mixed.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)];
        string text = Mixed[header.Length..];
        Assert.Equal("* 3 FETCH (RFC822.HEADER " + Lit(header) + " RFC822.TEXT " + Lit(text) + " RFC822 " + Lit(Mixed) + ")\r\n",
            await Fetch("(RFC822.HEADER RFC822.TEXT RFC822)"));
    }

    [Fact]
    public async Task LargeBodiesAreStreamedWithFlushes()
    {
        var body = new StringBuilder();
        for (int i = 0; i < 5000; i++) body.Append("line ").Append(i.ToString("D5", System.Globalization.CultureInfo.InvariantCulture)).Append(" xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n");
        var bytes = Encoding.ASCII.GetBytes("Subject: big\r\n\r\n" + body);
        var sent = new MemoryStream();
        var buffer = new ArrayBufferWriter<byte>();
        int flushes = 0;
        int largest = 0;
        var ctx = new FetchContext(false, false, false, () =>
        {
            flushes++;
            largest = Math.Max(largest, buffer.WrittenCount);
            sent.Write(buffer.WrittenSpan);
            buffer.ResetWrittenCount();
            return ValueTask.CompletedTask;
        });
        var m = Message with { Size = bytes.Length };
        // A stream that cannot seek, to check ranges are read forward only.
        await FetchResponder.WriteAsync(new ImapWriter(buffer), Request("(BODY.PEEK[TEXT] RFC822.SIZE BODY.PEEK[HEADER])"), 1, m,
            MessageStructure.Parse(new MemoryStream(bytes)), () => new ForwardOnlyStream(bytes), ctx, default);
        sent.Write(buffer.WrittenSpan);
        Assert.True(flushes >= 4, $"{flushes} flushes");
        Assert.True(largest < 2 * FetchResponder.FlushBytes, $"{largest} bytes buffered");
        Assert.Equal("* 1 FETCH (BODY[TEXT] " + Lit(body.ToString()) + " RFC822.SIZE " + bytes.Length + " BODY[HEADER] {16}\r\nSubject: big\r\n\r\n)\r\n",
            Encoding.ASCII.GetString(sent.ToArray()));
    }

    [Fact]
    public async Task LargeBase64PartIsDecodedAcrossChunks()
    {
        var data = new byte[300_000];
        new Random(7).NextBytes(data);
        var bytes = Encoding.ASCII.GetBytes("Subject: att\r\nContent-Transfer-Encoding: base64\r\n\r\n" +
            Convert.ToBase64String(data, Base64FormattingOptions.InsertLineBreaks) + "\r\n");
        var sent = new MemoryStream();
        var buffer = new ArrayBufferWriter<byte>();
        var ctx = new FetchContext(false, false, false, () =>
        {
            sent.Write(buffer.WrittenSpan);
            buffer.ResetWrittenCount();
            return ValueTask.CompletedTask;
        });
        await FetchResponder.WriteAsync(new ImapWriter(buffer), Request("(BINARY.SIZE[1] BINARY.PEEK[1]<100000.150000>)"), 1,
            Message with { Size = bytes.Length }, MessageStructure.Parse(new MemoryStream(bytes)), () => new MemoryStream(bytes), ctx, default);
        sent.Write(buffer.WrittenSpan);
        var expected = Encoding.ASCII.GetBytes("* 1 FETCH (BINARY.SIZE[1] 300000 BINARY[1]<100000> ~{150000}\r\n")
            .Concat(data.AsSpan(100_000, 150_000).ToArray()).Concat(")\r\n"u8.ToArray()).ToArray();
        Assert.Equal(expected, sent.ToArray());
    }

    [Fact]
    public async Task MessageShorterThanRecordedIsNotPaddedSilently()
    {
        var e = await Assert.ThrowsAsync<InvalidDataException>(() =>
            Fetch("BODY.PEEK[]", m: Message with { Size = MixedBytes.Length + 10 }));
        Assert.Contains("shorter", e.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("ALL", "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE")]
    [InlineData("FAST", "FLAGS INTERNALDATE RFC822.SIZE")]
    [InlineData("full", "FLAGS INTERNALDATE RFC822.SIZE ENVELOPE BODY")]
    [InlineData("body[header.fields (from \"to\")]<0.100>", "BODY[HEADER.FIELDS (FROM TO)]<0>")]
    [InlineData("(BODY.PEEK[1.2.HEADER.FIELDS.NOT (A)] BINARY.PEEK[1]<1.2> BINARY.SIZE[] RFC822.TEXT)",
        "BODY[1.2.HEADER.FIELDS.NOT (A)] BINARY[1]<1> BINARY.SIZE[] RFC822.TEXT")]
    public void ItemsParseToResponseLabels(string items, string labels)
    {
        Assert.Equal(labels, string.Join(' ', Request(items).Items.Select(i => i.Label)));
    }

    [Fact]
    public void ParsedPropertiesFollowTheItems()
    {
        var peek = Request("(UID BODY.PEEK[] BINARY.PEEK[1] RFC822.HEADER)");
        Assert.False(peek.SetsSeen);
        Assert.True(peek.NeedsContent);
        Assert.True(peek.NeedsStructure);
        Assert.False(peek.IncludesModSeq);
        Assert.True(Request("RFC822.TEXT").SetsSeen);
        Assert.True(Request("BINARY[]").SetsSeen);
        Assert.True(Request("BODY[1.MIME]").SetsSeen);
        var flags = Request("(FLAGS UID RFC822.SIZE)");
        Assert.False(flags.NeedsContent);
        Assert.False(flags.NeedsStructure);
        Assert.False(Request("RFC822").NeedsStructure);

        var mods = FetchRequest.Parse(Args("UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345 VANISHED)"), 1, uidCommand: true);
        Assert.Equal(12345, mods.ChangedSince);
        Assert.True(mods.Vanished);
        Assert.True(mods.IncludesModSeq);
    }

    [Theory]
    [InlineData("FOO")]
    [InlineData("(FLAGS FOO)")]
    [InlineData("()")]
    [InlineData("(ALL)")]
    [InlineData("BODY[MIME]")]
    [InlineData("BODY[1.]")]
    [InlineData("BODY[01]")]
    [InlineData("BODY[1.0]")]
    [InlineData("BODY[1X]")]
    [InlineData("BODY[HEADERS]")]
    [InlineData("BODY[HEADER.FIELDS]")]
    [InlineData("BODY[HEADER.FIELDS ()]")]
    [InlineData("BODY[HEADER.FIELDS (A:B)]")]
    [InlineData("BODY[HEADER.FIELDS (A  B)]")]
    [InlineData("BODY[]<1>")]
    [InlineData("BODY[]<0.0>")]
    [InlineData("BODY[]<a.1>")]
    [InlineData("BODY[]x")]
    [InlineData("BODY.PEEK")]
    [InlineData("BINARY[HEADER]")]
    [InlineData("BINARY[1.MIME]")]
    [InlineData("BINARY.SIZE[1]<0.1>")]
    [InlineData("BODY.FOO[]")]
    [InlineData("FLAGS (CHANGEDSINCE)")]
    [InlineData("FLAGS (CHANGEDSINCE x)")]
    [InlineData("FLAGS (FOO 1)")]
    [InlineData("FLAGS ()")]
    [InlineData("FLAGS (CHANGEDSINCE 1) extra")]
    [InlineData("FLAGS (VANISHED)")]
    [InlineData("FLAGS (CHANGEDSINCE 1 VANISHED)")]
    public void MalformedItemsAreBad(string items)
    {
        var e = Assert.Throws<ImapException>(() => Request(items));
        Assert.Equal(ImapStatus.Bad, e.Status);
    }

    [Fact]
    public void VanishedNeedsChangedSinceEvenInUidFetch()
    {
        var e = Assert.Throws<ImapException>(() => Request("FLAGS (VANISHED)", uid: true));
        Assert.Equal(ImapStatus.Bad, e.Status);
    }

    [Fact]
    public void StoreArgumentsParse()
    {
        var s = StoreRequest.Parse(Args("STORE 1 +FLAGS.SILENT (\\Seen $Label)"), 1);
        Assert.Equal(new StoreRequest(FlagMode.Add, true, MessageFlags.Seen, s.Keywords, null), s);
        Assert.Equal(["$Label"], s.Keywords);

        var r = StoreRequest.Parse(Args("STORE 1 (UNCHANGEDSINCE 0) flags \\Draft \\Answered"), 1);
        Assert.Equal((FlagMode.Replace, false, MessageFlags.Draft | MessageFlags.Answered, 0L), (r.Mode, r.Silent, r.Flags, r.UnchangedSince!.Value));

        var clear = StoreRequest.Parse(Args("STORE 1 -FLAGS ()"), 1);
        Assert.Equal((FlagMode.Remove, MessageFlags.None, 0), (clear.Mode, clear.Flags, clear.Keywords.Length));
    }

    [Theory]
    [InlineData("+FLAGS (\\Recent)")]
    [InlineData("FLAGS \\Seen \\Recent")]
    [InlineData("FLAGS (\\Unknown)")]
    [InlineData("FLAGS")]
    [InlineData("FLAG (\\Seen)")]
    [InlineData("+FLAGS.SILENT (\\Seen) extra")]
    [InlineData("FLAGS \"quoted\"")]
    [InlineData("(UNCHANGEDSINCE) FLAGS (\\Seen)")]
    [InlineData("(FOO 1) FLAGS (\\Seen)")]
    [InlineData("(UNCHANGEDSINCE 1)")]
    public void MalformedStoreIsBad(string arguments)
    {
        var e = Assert.Throws<ImapException>(() => StoreRequest.Parse(Args("STORE 1 " + arguments), 1));
        Assert.Equal(ImapStatus.Bad, e.Status);
    }

    private sealed class ForwardOnlyStream(byte[] bytes) : MemoryStream(bytes)
    {
        public override bool CanSeek => false;
        public override long Position { get => base.Position; set => throw new NotSupportedException(); }
        public override long Seek(long offset, SeekOrigin loc) => throw new NotSupportedException();
    }
}
