using Appliance.Imap;
using Appliance.Store;

namespace Appliance.Tests.Imap;

public sealed class ThreadTests
{
    // seq (uid = seq + 100), sent Feb <seq>, Message-ID, References, subject:
    //  1 <a>                   "Plan"
    //  2 <b>  a                "Re: Plan"
    //  3 <c>  a b              "Re: Plan"
    //  4 <d>  a x (x missing)  "Re: Plan"      -> dummy x under a is pruned, 4 becomes a's child
    //  5 <e>  y   (y missing)  "Lunch"         -> dummy y at the root keeps its two children
    //  6 <f>  y                "Re: Lunch"
    //  7 <g>                   "Other"
    //  8 <h>                   "Re: Other"     -> merged under 7 by subject (reply under non-reply)
    //  9 <i>  z   (z missing)  "Solo"          -> dummy z with one child: 9 promoted to the root
    // 10 (no Message-ID)       "Plan"          -> same subject as 1, neither a reply: new dummy over both
    private readonly FakeSearchSource _source = new();
    private readonly SearchHarness _imap;

    public ThreadTests()
    {
        var messages = new List<StoredMessage>();
        void Add(int seq, string id, string[] refs, string subject, bool reply, string inReplyTo = "")
        {
            messages.Add(SearchTests.Msg(seq + 100, 1000 + seq, $"2024-02-{seq:00}T12:00:00+00:00", seq == 2 ? MessageFlags.Seen : MessageFlags.None, [], seq));
            _source.SortInfo[seq + 100] = new MessageSortInfo(seq + 100, new DateTimeOffset(2024, 2, seq, 8, 0, 0, TimeSpan.Zero),
                subject, reply, "", "", "", "", "", id, inReplyTo, refs);
        }
        Add(1, "a", [], "Plan", false);
        Add(2, "b", ["a"], "Plan", true);
        Add(3, "c", ["a", "b"], "Plan", true);
        Add(4, "d", ["a", "x"], "Plan", true);
        Add(5, "e", ["y"], "Lunch", false);
        Add(6, "f", [], "Lunch", true, inReplyTo: "y");
        Add(7, "g", [], "Other", false);
        Add(8, "h", [], "Other", true);
        Add(9, "i", ["z"], "Solo", false);
        Add(10, "", [], "Plan", false);
        _imap = new SearchHarness(_source, new SelectedMailbox("INBOX", false, 1, messages));
    }

    [Fact]
    public async Task ReferencesBuildsTreesWithDummiesAndSubjectMerging() =>
        Assert.Equal("* THREAD ((1 (2 3)(4))(10))((5)(6))(7 8)(9)\r\n", await _imap.RunAsync("a THREAD REFERENCES UTF-8 ALL"));

    [Fact]
    public async Task ReferencesWithUids() =>
        Assert.Equal("* THREAD ((101 (102 103)(104))(110))((105)(106))(107 108)(109)\r\n", await _imap.RunAsync("a UID THREAD REFERENCES UTF-8 ALL"));

    [Fact]
    public async Task MissingMiddleMessageBecomesDummyAndIsPruned() =>
        // Without 2, message 3's reference to <b> is a dummy under 1; pruning makes 3 a child of 1.
        Assert.Equal("* THREAD ((1 (3)(4))(10))((5)(6))(7 8)(9)\r\n", await _imap.RunAsync("a THREAD REFERENCES UTF-8 UNSEEN"));

    [Fact]
    public async Task SiblingsAreOrderedBySentDate()
    {
        // Message 4 now predates 2: it comes first among 1's children.
        _source.SortInfo[104] = _source.SortInfo[104] with { SentDate = new DateTimeOffset(2024, 1, 31, 0, 0, 0, TimeSpan.Zero) };
        Assert.Equal("* THREAD (1 (4)(2 3))\r\n", await _imap.RunAsync("a THREAD REFERENCES UTF-8 1:4"));
    }

    [Fact]
    public async Task ReplyWithoutItsParentMergesUnderTheDummyOfItsSubject() =>
        // 6 alone (no 5): y's dummy has one child and is pruned; 6 is a root with subject Lunch.
        Assert.Equal("* THREAD (6)(7 8)\r\n", await _imap.RunAsync("a THREAD REFERENCES UTF-8 6:8"));

    [Fact]
    public async Task LoopsAreNotCreated()
    {
        // 1 claims to reply to 3, so 1 hangs under <c>. When 3 arrives, making it 2's child
        // would close the loop 3 > 1 > 2 > 3: that link is refused and 3 stays the root.
        _source.SortInfo[101] = _source.SortInfo[101] with { References = ["c"] };
        Assert.Equal("* THREAD (3 1 2)\r\n", await _imap.RunAsync("a THREAD REFERENCES UTF-8 1:3"));
    }

    [Fact]
    public async Task DuplicateMessageIdsAreKeptApart()
    {
        // 7 reuses <a>; it must not take over 1's place (it stays a thread of its own).
        _source.SortInfo[107] = _source.SortInfo[107] with { MessageId = "a" };
        Assert.Equal("* THREAD (1 2 3)(7)\r\n", await _imap.RunAsync("a THREAD REFERENCES UTF-8 1:3,7"));
    }

    [Fact]
    public async Task OrderedSubjectGroupsByBaseSubject() =>
        Assert.Equal("* THREAD (1 (2)(3)(4)(10))(5 6)(7 8)(9)\r\n", await _imap.RunAsync("a THREAD ORDEREDSUBJECT UTF-8 ALL"));

    [Fact]
    public async Task NoMatchesIsAnEmptyThreadResponse() =>
        Assert.Equal("* THREAD\r\n", await _imap.RunAsync("a THREAD REFERENCES UTF-8 KEYWORD $None"));

    [Theory]
    [InlineData("a THREAD JWZ UTF-8 ALL")]
    [InlineData("a THREAD REFERENCES UTF-8")]
    [InlineData("a THREAD (REFERENCES) UTF-8 ALL")]
    public async Task SyntaxErrorsAreBad(string command) => Assert.Equal(ImapStatus.Bad, (await _imap.FailAsync(command)).Status);

    [Fact]
    public async Task UnknownCharsetIsBadCharset() =>
        Assert.Equal(ImapStatus.No, (await _imap.FailAsync("a THREAD REFERENCES EBCDIC ALL")).Status);
}
