using System.Buffers;
using System.Text;
using Appliance.Pop3;

namespace Appliance.Tests.Pop3;

/// <summary>The parser and the dot-stuffing encoder over byte arrays (no sockets).</summary>
public sealed class Pop3ParserTests
{
    private static (Pop3LineStatus Status, string Line, long Consumed) ReadLine(byte[] input, int max = Pop3Parser.MaxLineLength)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(input));
        var status = Pop3Parser.TryReadLine(ref reader, max, out var line);
        return (status, Encoding.Latin1.GetString(line.ToArray()), reader.Consumed);
    }

    [Fact]
    public void TryReadLine_StripsCrlfOrBareLf()
    {
        Assert.Equal((Pop3LineStatus.Line, "STAT", 6L), ReadLine("STAT\r\nNOOP\r\n"u8.ToArray()));
        Assert.Equal((Pop3LineStatus.Line, "STAT", 5L), ReadLine("STAT\nNOOP"u8.ToArray()));
        Assert.Equal((Pop3LineStatus.Line, "", 2L), ReadLine("\r\n"u8.ToArray()));
    }

    [Fact]
    public void TryReadLine_IncompleteConsumesNothing()
    {
        Assert.Equal((Pop3LineStatus.Incomplete, "", 0L), ReadLine("STAT\r"u8.ToArray()));
        Assert.Equal((Pop3LineStatus.Incomplete, "", 0L), ReadLine([]));
    }

    [Fact]
    public void TryReadLine_TooLong()
    {
        var exact = Encoding.ASCII.GetBytes(new string('a', 8) + "\r\n");
        Assert.Equal(Pop3LineStatus.Line, ReadLine(exact, max: 10).Status);
        var over = Encoding.ASCII.GetBytes(new string('a', 9) + "\r\nNOOP\r\n");
        Assert.Equal((Pop3LineStatus.TooLong, "", 11L), ReadLine(over, max: 10));
        var unterminated = Encoding.ASCII.GetBytes(new string('a', 10));
        Assert.Equal((Pop3LineStatus.TooLongUnterminated, "", 10L), ReadLine(unterminated, max: 10));
    }

    [Fact]
    public void TryReadLine_WorksAcrossSegments()
    {
        var first = new Segment("US"u8.ToArray());
        var last = first.Append("ER bob\r"u8.ToArray()).Append("\nx"u8.ToArray());
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(first, 0, last, last.Memory.Length));
        Assert.Equal(Pop3LineStatus.Line, Pop3Parser.TryReadLine(ref reader, 512, out var line));
        Assert.Equal("USER bob", Encoding.ASCII.GetString(line.ToArray()));
        Assert.Equal(1, reader.Remaining);
    }

    [Fact]
    public void SkipPastLineEnd()
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>("xxxx"u8.ToArray()));
        Assert.False(Pop3Parser.SkipPastLineEnd(ref reader));
        Assert.Equal(0, reader.Remaining);
        reader = new SequenceReader<byte>(new ReadOnlySequence<byte>("xx\nNOOP"u8.ToArray()));
        Assert.True(Pop3Parser.SkipPastLineEnd(ref reader));
        Assert.Equal(4, reader.Remaining);
    }

    [Theory]
    [InlineData("stat", "STAT", "")]
    [InlineData("LIST 1", "LIST", "1")]
    [InlineData("PASS  two  spaces ", "PASS", " two  spaces ")]
    [InlineData("USER jürgen@example.com", "USER", "jürgen@example.com")]
    public void TryParseCommand_Accepts(string line, string keyword, string arguments)
    {
        Assert.True(Pop3Parser.TryParseCommand(Encoding.UTF8.GetBytes(line), out var command));
        Assert.Equal(new Pop3Command(keyword, arguments), command);
    }

    public static TheoryData<byte[]> Garbage => new()
    {
        Array.Empty<byte>(),
        " STAT"u8.ToArray(),
        "ST4T"u8.ToArray(),
        "TOOLONGKEYWORD"u8.ToArray(),
        new byte[] { 0x00, 0xff, 0xfe },
        new byte[] { (byte)'U', (byte)'S', (byte)'E', (byte)'R', (byte)' ', 0xc3, 0x28 },
        "USER a\0b"u8.ToArray(),
        "USER a\rb"u8.ToArray(),
    };

    [Theory]
    [MemberData(nameof(Garbage))]
    public void TryParseCommand_RejectsGarbage(byte[] line)
    {
        Assert.False(Pop3Parser.TryParseCommand(line, out _));
    }

    [Theory]
    [InlineData("1", true, 1)]
    [InlineData("0042", true, 42)]
    [InlineData("999999999", true, 999999999)]
    [InlineData("1000000000", false, 0)]
    [InlineData("-1", false, 0)]
    [InlineData("+1", false, 0)]
    [InlineData("1 ", false, 0)]
    [InlineData("", false, 0)]
    public void TryParseNumber(string text, bool ok, int value)
    {
        Assert.Equal(ok, Pop3Parser.TryParseNumber(text, out int parsed));
        if (ok)
        {
            Assert.Equal(value, parsed);
        }
    }

    [Fact]
    public void SaslPlain()
    {
        static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));
        Assert.True(Pop3Parser.TryDecodeSaslPlain(B64("\0bob\0pw with space"), out var user, out var password));
        Assert.Equal(("bob", "pw with space"), (user, password));
        Assert.True(Pop3Parser.TryDecodeSaslPlain(B64("bob\0bob\0pw"), out user, out _));
        Assert.Equal("bob", user);
        Assert.False(Pop3Parser.TryDecodeSaslPlain(B64("admin\0bob\0pw"), out _, out _));
        Assert.False(Pop3Parser.TryDecodeSaslPlain(B64("bob\0pw"), out _, out _));
        Assert.False(Pop3Parser.TryDecodeSaslPlain(B64("\0\0pw"), out _, out _));
        Assert.False(Pop3Parser.TryDecodeSaslPlain(B64("\0a\0b\0c"), out _, out _));
        Assert.False(Pop3Parser.TryDecodeSaslPlain("not base64!", out _, out _));
    }

    private static string Encode(string message, int bodyLines = -1, int chunk = int.MaxValue)
    {
        var encoder = new Pop3MessageEncoder(bodyLines);
        var output = new ArrayBufferWriter<byte>();
        var bytes = Encoding.UTF8.GetBytes(message);
        for (int i = 0; i < bytes.Length && !encoder.Done; i += chunk)
        {
            encoder.Encode(bytes.AsSpan(i, Math.Min(chunk, bytes.Length - i)), output);
        }

        encoder.Complete(output);
        return Encoding.UTF8.GetString(output.WrittenSpan);
    }

    [Theory]
    [InlineData("a\r\nb\r\n", "a\r\nb\r\n.\r\n")]
    [InlineData(".\r\n", "..\r\n.\r\n")]
    [InlineData("a\r\n.b\r\n..c\r\nd.e\r\n", "a\r\n..b\r\n...c\r\nd.e\r\n.\r\n")]
    [InlineData("a\r\nno end", "a\r\nno end\r\n.\r\n")]
    [InlineData("a\r\n.", "a\r\n..\r\n.\r\n")]
    [InlineData("ends in cr\r", "ends in cr\r\n.\r\n")]
    [InlineData("", ".\r\n")]
    [InlineData("bare\nlf\n.x\n", "bare\nlf\n..x\n.\r\n")]
    public void Encoder_DotStuffsAndTerminates(string stored, string sent)
    {
        Assert.Equal(sent, Encode(stored));
        for (int chunk = 1; chunk < 5; chunk++)
        {
            Assert.Equal(sent, Encode(stored, chunk: chunk));
        }
    }

    [Theory]
    [InlineData(0, "H: 1\r\nH: 2\r\n\r\n.\r\n")]
    [InlineData(1, "H: 1\r\nH: 2\r\n\r\n..one\r\n.\r\n")]
    [InlineData(2, "H: 1\r\nH: 2\r\n\r\n..one\r\n\r\n.\r\n")]
    [InlineData(10, "H: 1\r\nH: 2\r\n\r\n..one\r\n\r\nthree\r\n.\r\n")]
    public void Encoder_Top(int lines, string sent)
    {
        const string stored = "H: 1\r\nH: 2\r\n\r\n.one\r\n\r\nthree";
        Assert.Equal(sent, Encode(stored, lines));
        for (int chunk = 1; chunk < 5; chunk++)
        {
            Assert.Equal(sent, Encode(stored, lines, chunk));
        }
    }

    private sealed class Segment : ReadOnlySequenceSegment<byte>
    {
        public Segment(byte[] data) => Memory = data;

        public Segment Append(byte[] data)
        {
            var next = new Segment(data) { RunningIndex = RunningIndex + Memory.Length };
            Next = next;
            return next;
        }
    }
}
