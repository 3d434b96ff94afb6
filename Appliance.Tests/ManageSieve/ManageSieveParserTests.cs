using System.Buffers;
using System.Text;
using Appliance.ManageSieve;

namespace Appliance.Tests.ManageSieve;

/// <summary>RFC 5804 §4 command syntax over bytes: whole, split anywhere, and arbitrary input.</summary>
public sealed class ManageSieveParserTests
{
    private static (ManageSieveParseStatus Status, ManageSieveCommand? Command, string Error, long Literal, long Consumed) Parse(string input, long maxLiteral = 1000, bool sasl = false)
    {
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(input)));
        var status = ManageSieveParser.TryParse(ref reader, maxLiteral, sasl, out var command, out var error, out var literal);
        return (status, command, error, literal, reader.Consumed);
    }

    [Fact]
    public void Strings_Literals_AndNumbers()
    {
        var (status, command, _, _, consumed) = Parse("putScript \"a \\\"b\\\" \\\\\" {5+}\r\nk\r\np;\r\nNOOP\r\n");
        Assert.Equal(ManageSieveParseStatus.Command, status);
        Assert.Equal("PUTSCRIPT", command!.Name);
        Assert.Equal(["a \"b\" \\", "k\r\np;"], command.Args.Select(a => a.Text));
        Assert.Equal("putScript \"a \\\"b\\\" \\\\\" {5+}\r\nk\r\np;\r\n".Length, consumed);

        (status, command, _, _, _) = Parse("HAVESPACE {1}\r\nx 4294967295\r\n");
        Assert.Equal(ManageSieveParseStatus.Command, status);
        Assert.Equal(4294967295, command!.Args[1].Number);
        Assert.False(command.Args[1].IsString);

        (status, command, _, _, _) = Parse("\"*\"\r\n", sasl: true);
        Assert.Equal("*", command!.Args.Single().Text);
    }

    /// <summary>Every prefix of a valid command is "read more", never an error (restartable parsing).</summary>
    [Fact]
    public void EveryPrefix_IsIncomplete()
    {
        const string input = "PUTSCRIPT \"name\" {12+}\r\nkeep;\r\nstop;\r\n";
        for (var i = 0; i < input.Length; i++)
            Assert.Equal(ManageSieveParseStatus.Incomplete, Parse(input[..i]).Status);
        Assert.Equal(ManageSieveParseStatus.Command, Parse(input).Status);
    }

    [Theory]
    [InlineData("NOOP \"a\"\"b\"\r\n", "Syntax error: expected a space between arguments")]
    [InlineData("NOOP atom\r\n", "Syntax error: expected a string or a number")]
    [InlineData("NOOP \"a\\x\"\r\n", "Syntax error: only \\\" and \\\\ are escapes in a quoted string")]
    [InlineData("NOOP {x}\r\n", "Syntax error: literal without a length")]
    [InlineData("NOOP 99999999999\r\n", "Number too large")]
    [InlineData("NOOP \"a\"\rx", "Syntax error: CR without LF")]
    [InlineData("{5+}\r\n", "Syntax error: expected a command name")]
    public void SyntaxErrors_SayWhat(string input, string error)
    {
        var result = Parse(input);
        Assert.Equal(ManageSieveParseStatus.Error, result.Status);
        Assert.Equal(error, result.Error);
    }

    [Fact]
    public void ALiteralOverTheLimit_IsReported_BeforeItsBytesArrive()
    {
        var result = Parse("PUTSCRIPT \"a\" {1001+}\r\n");
        Assert.Equal(ManageSieveParseStatus.LiteralTooLarge, result.Status);
        Assert.Equal(1001, result.Literal);
        Assert.Equal("PUTSCRIPT \"a\" {1001+}\r\n".Length, result.Consumed);
        Assert.Equal(ManageSieveParseStatus.Command, Parse("PUTSCRIPT \"a\" {1000+}\r\n" + new string('x', 1000) + "\r\n").Status);
    }

    [Fact]
    public void LiteralBytes_ThatAreNotUtf8_HaveNoText()
    {
        byte[] bytes = [.. "PUTSCRIPT \"a\" {2+}\r\n"u8, 0xff, 0xfe, .. "\r\n"u8];
        var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
        Assert.Equal(ManageSieveParseStatus.Command, ManageSieveParser.TryParse(ref reader, 1000, false, out var command, out _, out _));
        Assert.Null(command!.Args[1].Text);
    }

    [Theory]
    [InlineData("PUTSCRIPT \"a\" {12+}\r", 12L)]
    [InlineData("x {7}", 7L)]
    [InlineData("NOOP \"x\"", null)]
    [InlineData("{}", null)]
    public void TheLiteralAnnouncedAtALinesEnd_IsFound(string line, long? length) =>
        Assert.Equal(length, ManageSieveParser.LiteralAtLineEnd(Encoding.ASCII.GetBytes(line)));

    [Fact]
    public void ServerStrings_AreQuoted_OrLiterals()
    {
        Assert.Equal("\"say \\\"hi\\\" \\\\\"", ManageSieveParser.Quote("say \"hi\" \\"));
        Assert.Equal("{4}\r\na\r\nb", ManageSieveParser.Quote("a\r\nb"));
    }

    /// <summary>Arbitrary bytes never throw: each call says command, error, too large or read more.</summary>
    [Fact]
    public void RandomInput_NeverThrows()
    {
        var random = new Random(5804);
        var alphabet = "AZaz09 \"\\{}+\r\n\u00e9\0"u8.ToArray();
        for (var i = 0; i < 20_000; i++)
        {
            var bytes = new byte[random.Next(1, 40)];
            for (var j = 0; j < bytes.Length; j++) bytes[j] = random.Next(4) == 0 ? (byte)random.Next(256) : alphabet[random.Next(alphabet.Length)];
            var reader = new SequenceReader<byte>(new ReadOnlySequence<byte>(bytes));
            var status = ManageSieveParser.TryParse(ref reader, 16, random.Next(2) == 0, out var command, out _, out _);
            Assert.True(status != ManageSieveParseStatus.Command || command is not null);
            Assert.True(reader.Consumed <= bytes.Length);
        }
    }
}
