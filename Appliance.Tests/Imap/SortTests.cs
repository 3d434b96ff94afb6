using Appliance.Imap;
using Appliance.Store;

namespace Appliance.Tests.Imap;

public sealed class SortTests
{
    // seq uid size arrival (UTC)          sent    base subject   from          display from
    //  1  10 1000 Jan 1 10:00             Jan 1   meeting        carol@x       Carol
    //  2  20 2500 Jan 3 04:30 (-05:00)    Jan 2   meeting (Re:)  alice@x       alice@x
    //  3  30  500 Jan 2 23:00 (+02:00)    Jan 3   budget         bob@x         Zed
    //  4  40 4000 Jan 5                   Jan 4   Meeting        alice@x       Bob
    //  5  50 3000 Jan 6                   Jan 5   budget (Fwd)   bob@x         Alice
    //  6  60  100 Jan 7                   Jan 6   (none)         (none)        (none)
    private readonly FakeSearchSource _source = new();
    private readonly SearchHarness _imap;

    public SortTests()
    {
        var mailbox = new SelectedMailbox("INBOX", false, 1, [
            SearchTests.Msg(10, 1000, "2024-01-01T10:00:00+00:00", MessageFlags.Seen, [], 5),
            SearchTests.Msg(20, 2500, "2024-01-02T23:30:00-05:00", MessageFlags.Seen, [], 7),
            SearchTests.Msg(30, 500, "2024-01-03T01:00:00+02:00", MessageFlags.None, [], 9),
            SearchTests.Msg(40, 4000, "2024-01-05T12:00:00+00:00", MessageFlags.Seen, [], 3),
            SearchTests.Msg(50, 3000, "2024-01-06T12:00:00+00:00", MessageFlags.None, [], 12),
            SearchTests.Msg(60, 100, "2024-01-07T12:00:00+00:00", MessageFlags.None, [], 8),
        ]);
        Info(10, 1, "meeting", false, "carol@x", "Carol", "dan@x");
        Info(20, 2, "meeting", true, "alice@x", "alice@x", "carol@x");
        Info(30, 3, "budget", false, "bob@x", "Zed", "");
        Info(40, 4, "Meeting", false, "alice@x", "Bob", "bob@x");
        Info(50, 5, "budget", true, "bob@x", "Alice", "alice@x");
        Info(60, 6, "", false, "", "", "");
        _imap = new SearchHarness(_source, mailbox);
    }

    private void Info(long uid, int sentDay, string subject, bool reply, string from, string displayFrom, string to) =>
        _source.SortInfo[uid] = new MessageSortInfo(uid, new DateTimeOffset(2024, 1, sentDay, 8, 0, 0, TimeSpan.Zero), subject, reply,
            from, to, "", displayFrom, to, "", "", []);

    [Theory]
    // RFC 5256 example shape: SUBJECT then REVERSE DATE; the empty string collates first.
    [InlineData("a SORT (SUBJECT REVERSE DATE) UTF-8 ALL", "* SORT 6 5 3 4 2 1")]
    [InlineData("a SORT (FROM SIZE) UTF-8 ALL", "* SORT 6 2 4 3 5 1")]
    // REVERSE reverses its own key only: ties stay in sequence order.
    [InlineData("a SORT (REVERSE FROM) UTF-8 ALL", "* SORT 1 3 5 2 4 6")]
    // ARRIVAL compares instants: message 2 arrived after message 3.
    [InlineData("a SORT (ARRIVAL) UTF-8 ALL", "* SORT 1 3 2 4 5 6")]
    [InlineData("a SORT (REVERSE ARRIVAL) UTF-8 ALL", "* SORT 6 5 4 2 3 1")]
    [InlineData("a SORT (DATE) UTF-8 ALL", "* SORT 1 2 3 4 5 6")]
    [InlineData("a SORT (SIZE) UTF-8 SEEN", "* SORT 1 2 4")]
    [InlineData("a UID SORT (REVERSE SIZE) US-ASCII SEEN", "* SORT 40 20 10")]
    [InlineData("a SORT (TO) UTF-8 ALL", "* SORT 3 6 5 4 2 1")]
    [InlineData("a SORT (DISPLAYFROM) UTF-8 ALL", "* SORT 6 5 2 4 1 3")]
    [InlineData("a SORT (DISPLAYTO DATE) UTF-8 ALL", "* SORT 3 6 5 4 2 1")]
    [InlineData("a SORT (CC ARRIVAL) UTF-8 ALL", "* SORT 1 3 2 4 5 6")]
    [InlineData("a SORT (SUBJECT) UTF-8 KEYWORD $None", "* SORT")]
    public async Task Orders(string command, string expected) => Assert.Equal(expected + "\r\n", await _imap.RunAsync(command));

    [Fact]
    public async Task ArrivalAndSizeNeedNoSortInfo()
    {
        Assert.Equal("* SORT 3 1 2 5 4\r\n", await _imap.RunAsync("a SORT (SIZE ARRIVAL) UTF-8 2:*,1 SMALLER 4001 LARGER 100"));
        Assert.Empty(_source.Calls);
        Assert.Equal("* SORT 3 5\r\n", await _imap.RunAsync("a SORT (SUBJECT) UTF-8 UNSEEN SMALLER 3500 LARGER 100"));
        Assert.Equal(["SortInfo 30,50"], _source.Calls);
    }

    [Fact]
    public async Task ModSeqTrailer()
    {
        Assert.Equal("* SORT 6 3 5 (MODSEQ 12)\r\n", await _imap.RunAsync("a SORT (SIZE) UTF-8 MODSEQ 8"));
        Assert.True(_imap.LastUsedModSeq);
    }

    [Theory]
    [InlineData("a SORT () UTF-8 ALL")]
    [InlineData("a SORT (REVERSE) UTF-8 ALL")]
    [InlineData("a SORT (REVERSE REVERSE DATE) UTF-8 ALL")]
    [InlineData("a SORT (COLOUR) UTF-8 ALL")]
    [InlineData("a SORT DATE UTF-8 ALL")]
    [InlineData("a SORT (DATE) UTF-8")]
    [InlineData("a SORT (DATE) UTF-8 FROB")]
    public async Task SyntaxErrorsAreBad(string command) => Assert.Equal(ImapStatus.Bad, (await _imap.FailAsync(command)).Status);

    [Fact]
    public async Task UnknownCharsetIsBadCharset()
    {
        var e = await _imap.FailAsync("a SORT (DATE) KOI8-R ALL");
        Assert.Equal(ImapStatus.No, e.Status);
        Assert.StartsWith("BADCHARSET", e.Code);
    }

    [Theory]
    [InlineData("abc", "ABD", -1)]
    [InlineData("abc", "ABC", 0)]
    [InlineData("", "a", -1)]
    [InlineData("Z", "a", 1)]
    // U+005B..U+0060 sort after the letters of both cases (they fold to upper case).
    [InlineData("_", "z", 1)]
    [InlineData("é", "z", 1)]
    public void CaseMapCollation(string a, string b, int sign) => Assert.Equal(sign, Math.Sign(AsciiCaseMap.Compare(a, b)));
}
