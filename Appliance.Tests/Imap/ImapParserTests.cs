using System.Buffers;
using System.Text;
using Appliance.Imap;

namespace Appliance.Tests.Imap;

public sealed class ImapParserTests
{
    private static readonly ImapParserLimits Limits = new(MaxLineBytes: 200, MaxLiteralBytes: 100, MaxAppendLiteralBytes: 1000);

    private static (ImapParseStatus Status, ImapCommand? Command, ImapParser.Failure Failure, long Consumed) Parse(string text, int acknowledged = 0)
    {
        var buffer = new ReadOnlySequence<byte>(Encoding.UTF8.GetBytes(text));
        var status = ImapParser.TryParse(buffer, Limits, acknowledged, out var command, out var consumed, out var failure);
        return (status, command, failure, buffer.Slice(0, consumed).Length);
    }

    [Fact]
    public void Parses_tag_uid_command_atoms_quoted_and_lists()
    {
        var (status, c, _, consumed) = Parse("a1 uid fetch 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100>) \"q \\\"x\\\"\"\r\nnext");
        Assert.Equal(ImapParseStatus.Complete, status);
        Assert.Equal("a1", c!.Tag);
        Assert.Equal("FETCH", c.Name);
        Assert.True(c.Uid);
        Assert.Equal(3, c.Args.Count);
        Assert.Equal("1:*", c.Args[0].Text);
        Assert.True(c.Args[1].IsList);
        Assert.Equal("BODY.PEEK[HEADER.FIELDS (From To)]<0.100>", c.Args[1].Items[1].Text);
        Assert.Equal("q \"x\"", c.Args[2].Text);
        Assert.Equal(ImapValueKind.Quoted, c.Args[2].Kind);
        Assert.Equal(Encoding.UTF8.GetByteCount("a1 uid fetch 1:* (FLAGS BODY.PEEK[HEADER.FIELDS (From To)]<0.100>) \"q \\\"x\\\"\"\r\n"), consumed);
    }

    [Fact]
    public void Synchronizing_literal_asks_for_continuation_then_completes()
    {
        Assert.Equal(ImapParseStatus.NeedContinuation, Parse("a LOGIN {5}\r\n").Status);
        Assert.Equal(ImapParseStatus.NeedMore, Parse("a LOGIN {5}\r\nal", acknowledged: 1).Status);
        var (status, c, _, _) = Parse("a LOGIN {5}\r\nalice {3+}\r\npw!\r\n", acknowledged: 1);
        Assert.Equal(ImapParseStatus.Complete, status);
        Assert.Equal(["alice", "pw!"], c!.Args.Select(a => a.Text));
        Assert.Equal(ImapValueKind.Literal, c.Args[0].Kind);
    }

    [Fact]
    public void Binary_literal_is_marked()
    {
        var (status, c, _, _) = Parse("a APPEND INBOX ~{3+}\r\n\0\x01\x02\r\n");
        Assert.Equal(ImapParseStatus.Complete, status);
        Assert.True(c!.Args[1].Binary);
        Assert.Equal(new byte[] { 0, 1, 2 }, c.Args[1].Bytes);
    }

    [Fact]
    public void Oversized_append_literal_is_refused_before_its_data_with_TOOBIG()
    {
        var (status, _, failure, _) = Parse("a APPEND INBOX {5000}\r\n");
        Assert.Equal(ImapParseStatus.Error, status);
        Assert.Equal(ImapStatus.No, failure.Status);
        Assert.Equal("TOOBIG", failure.Code);
        Assert.Equal("a", failure.Tag);
        Assert.False(failure.Disconnect);
    }

    [Fact]
    public void Oversized_non_synchronizing_literal_disconnects()
    {
        var (status, _, failure, _) = Parse("a LOGIN {500+}\r\n");
        Assert.Equal(ImapParseStatus.Error, status);
        Assert.True(failure.Disconnect);
    }

    [Theory]
    [InlineData("a FETCH (1\r\n")]
    [InlineData("a FETCH 1)\r\n")]
    [InlineData("a LOGIN \"unterminated\r\n")]
    [InlineData("+ NOOP\r\n")]
    [InlineData("a NO\x01OP\r\n")]
    public void Malformed_lines_are_errors_that_consume_the_line(string line)
    {
        var (status, _, failure, consumed) = Parse(line + "b NOOP\r\n");
        Assert.Equal(ImapParseStatus.Error, status);
        Assert.Equal(ImapStatus.Bad, failure.Status);
        Assert.Equal(Encoding.UTF8.GetByteCount(line), consumed);
        Assert.False(failure.DiscardLine);
    }

    [Fact]
    public void Overlong_line_is_an_error_and_the_rest_is_discarded()
    {
        var (status, _, failure, _) = Parse("a SEARCH " + new string('x', 300));
        Assert.Equal(ImapParseStatus.Error, status);
        Assert.Equal("TOOBIG", failure.Code);
        Assert.True(failure.DiscardLine);
    }

    [Fact]
    public void Too_deep_nesting_is_refused()
    {
        var deep = new ImapParserLimits(10_000, 100, 100, MaxDepth: 5);
        var buffer = new ReadOnlySequence<byte>(Encoding.ASCII.GetBytes("a SEARCH " + new string('(', 10) + "ALL" + new string(')', 10) + "\r\n"));
        Assert.Equal(ImapParseStatus.Error, ImapParser.TryParse(buffer, deep, 0, out _, out _, out var failure));
        Assert.Equal(ImapStatus.Bad, failure.Status);
    }

    [Fact]
    public void Incomplete_command_needs_more_without_consuming()
    {
        var (status, _, _, consumed) = Parse("a SELECT INB");
        Assert.Equal(ImapParseStatus.NeedMore, status);
        Assert.Equal(0, consumed);
    }

    [Theory]
    [InlineData("Entwürfe", "Entw&APw-rfe")]
    [InlineData("A&B", "A&-B")]
    [InlineData("日本語", "&ZeVnLIqe-")]
    public void Modified_utf7_round_trips(string name, string wire)
    {
        Assert.Equal(wire, MailboxName.EncodeUtf7(name));
        Assert.Equal(name, MailboxName.DecodeUtf7(wire));
    }

    [Theory]
    [InlineData("&Jjo!")]
    [InlineData("&AGE-")] // "a" must not be encoded
    [InlineData("&U,BTFw")]
    public void Invalid_modified_utf7_is_refused(string wire) => Assert.Null(MailboxName.DecodeUtf7(wire));

    [Theory]
    [InlineData("*", "a/b/c", true)]
    [InlineData("%", "a/b", false)]
    [InlineData("a/%", "a/b", true)]
    [InlineData("a/%", "a/b/c", false)]
    [InlineData("inbox", "INBOX", true)]
    [InlineData("*a*a*a*a*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false)]
    public void List_patterns_match(string pattern, string name, bool expected) =>
        Assert.Equal(expected, MailboxName.Matches(pattern, name));
}
