using System.Buffers;
using System.Text;
using Appliance.Imap;
using Appliance.Store;

namespace Appliance.Tests.Imap;

public sealed class SearchTests
{
    // seq uid size internal date (its own zone)        flags              keywords modseq
    //  1  10 1000 2024-01-01 10:00 +00:00                \Seen                        5
    //  2  20 2500 2024-01-02 23:30 -05:00 (Jan 3 UTC)    \Seen \Answered    $Work     7
    //  3  30  500 2024-01-03 01:00 +02:00 (Jan 2 UTC)    \Flagged                     9
    //  4  40 4000 2024-01-05 12:00 +00:00                \Seen \Deleted     $Later    3
    //  5  50 3000 2024-01-06 12:00 +00:00                \Draft                      12
    //  6  60  100 2024-01-07 12:00 +00:00                                             8
    private static SelectedMailbox Mailbox() => new("INBOX", false, 1, [
        Msg(10, 1000, "2024-01-01T10:00:00+00:00", MessageFlags.Seen, [], 5),
        Msg(20, 2500, "2024-01-02T23:30:00-05:00", MessageFlags.Seen | MessageFlags.Answered, ["$Work"], 7),
        Msg(30, 500, "2024-01-03T01:00:00+02:00", MessageFlags.Flagged, [], 9),
        Msg(40, 4000, "2024-01-05T12:00:00+00:00", MessageFlags.Seen | MessageFlags.Deleted, ["$Later"], 3),
        Msg(50, 3000, "2024-01-06T12:00:00+00:00", MessageFlags.Draft, [], 12),
        Msg(60, 100, "2024-01-07T12:00:00+00:00", MessageFlags.None, [], 8),
    ]);

    internal static StoredMessage Msg(long uid, long size, string date, MessageFlags flags, string[] keywords, long modSeq) =>
        new(uid, size, DateTimeOffset.Parse(date, System.Globalization.CultureInfo.InvariantCulture), flags, keywords, modSeq, "blob" + uid);

    private static FakeSearchSource Source()
    {
        var s = new FakeSearchSource();
        s.Fields[10] = new() { [TextField.Subject] = "Quarterly report", [TextField.From] = "Alice <alice@example.com>", [TextField.Body] = "numbers attached", [TextField.Header] = "X-Priority: 1" };
        s.Fields[20] = new() { [TextField.Subject] = "Re: Quarterly report", [TextField.From] = "Bob <bob@example.com>", [TextField.Body] = "looks fine" };
        s.Fields[30] = new() { [TextField.Subject] = "Lunch", [TextField.From] = "alice@example.com", [TextField.Body] = "café at noon", [TextField.Header] = "X-Priority: 5" };
        s.Fields[40] = new() { [TextField.Subject] = "Old news", [TextField.From] = "carol@example.com", [TextField.Body] = "report later" };
        s.Fields[50] = new() { [TextField.Subject] = "Draft", [TextField.From] = "me@example.com", [TextField.Body] = "unfinished" };
        s.Fields[60] = new() { [TextField.Subject] = "Hello", [TextField.From] = "dave@example.com", [TextField.Body] = "hi" };
        foreach (var (uid, sent) in new[] { (10L, "2023-12-31T23:00:00+00:00"), (20, "2024-01-02T08:00:00+00:00"), (30, "2024-01-03T08:00:00+00:00"),
                     (40, "2024-01-04T08:00:00+00:00"), (50, "2024-01-05T08:00:00+00:00"), (60, "2024-01-06T08:00:00+00:00") })
            s.SortInfo[uid] = new MessageSortInfo(uid, DateTimeOffset.Parse(sent, System.Globalization.CultureInfo.InvariantCulture), "", false, "", "", "", "", "", "", "", []);
        return s;
    }

    private readonly FakeSearchSource _source = Source();
    private readonly SearchHarness _imap;

    public SearchTests() => _imap = new SearchHarness(_source, Mailbox());

    [Theory]
    [InlineData("a SEARCH ALL", "* SEARCH 1 2 3 4 5 6")]
    [InlineData("a SEARCH SEEN", "* SEARCH 1 2 4")]
    [InlineData("a SEARCH UNSEEN", "* SEARCH 3 5 6")]
    [InlineData("a SEARCH ANSWERED", "* SEARCH 2")]
    [InlineData("a SEARCH UNANSWERED", "* SEARCH 1 3 4 5 6")]
    [InlineData("a SEARCH FLAGGED", "* SEARCH 3")]
    [InlineData("a SEARCH UNFLAGGED DRAFT", "* SEARCH 5")]
    [InlineData("a SEARCH DELETED", "* SEARCH 4")]
    [InlineData("a SEARCH UNDELETED UNDRAFT", "* SEARCH 1 2 3 6")]
    [InlineData("a SEARCH KEYWORD $work", "* SEARCH 2")]
    [InlineData("a SEARCH UNKEYWORD $Work UNKEYWORD $Later", "* SEARCH 1 3 5 6")]
    [InlineData("a SEARCH RECENT", "* SEARCH")]
    [InlineData("a SEARCH NEW", "* SEARCH")]
    [InlineData("a SEARCH OLD SEEN", "* SEARCH 1 2 4")]
    public async Task FlagKeys(string command, string expected) => Assert.Equal(expected + "\r\n", await _imap.RunAsync(command));

    [Theory]
    [InlineData("a SEARCH OR FLAGGED DRAFT", "* SEARCH 3 5")]
    [InlineData("a SEARCH NOT SEEN", "* SEARCH 3 5 6")]
    [InlineData("a SEARCH NOT NOT SEEN", "* SEARCH 1 2 4")]
    [InlineData("a SEARCH (OR ANSWERED DELETED) SEEN", "* SEARCH 2 4")]
    [InlineData("a SEARCH OR (SEEN UNDELETED) (UNSEEN LARGER 1000)", "* SEARCH 1 2 5")]
    [InlineData("a SEARCH NOT (OR SEEN FLAGGED)", "* SEARCH 5 6")]
    [InlineData("a SEARCH OR OR FLAGGED DRAFT ANSWERED", "* SEARCH 2 3 5")]
    public async Task BooleanKeys(string command, string expected) => Assert.Equal(expected + "\r\n", await _imap.RunAsync(command));

    [Theory]
    [InlineData("a SEARCH 2:4", "* SEARCH 2 3 4")]
    [InlineData("a SEARCH 4:2,6", "* SEARCH 2 3 4 6")]
    [InlineData("a SEARCH *", "* SEARCH 6")]
    [InlineData("a SEARCH 5:10", "* SEARCH 5 6")]
    [InlineData("a SEARCH 7:9", "* SEARCH")]
    [InlineData("a SEARCH UID 20:40", "* SEARCH 2 3 4")]
    [InlineData("a SEARCH UID 25:*", "* SEARCH 3 4 5 6")]
    [InlineData("a SEARCH UID 100:*", "* SEARCH 6")]
    [InlineData("a UID SEARCH 1:2", "* SEARCH 10 20")]
    [InlineData("a UID SEARCH UID 15,30:50 SEEN", "* SEARCH 40")]
    [InlineData("a UID SEARCH NOT UID 20:*", "* SEARCH 10")]
    public async Task SequenceAndUidSets(string command, string expected) => Assert.Equal(expected + "\r\n", await _imap.RunAsync(command));

    [Theory]
    // Internal dates compare by their own date: message 2 is Jan 2 (-05:00) though Jan 3 in UTC.
    [InlineData("a SEARCH ON 2-Jan-2024", "* SEARCH 2")]
    [InlineData("a SEARCH ON 3-jan-2024", "* SEARCH 3")]
    [InlineData("a SEARCH BEFORE 3-Jan-2024", "* SEARCH 1 2")]
    [InlineData("a SEARCH SINCE \"3-Jan-2024\"", "* SEARCH 3 4 5 6")]
    [InlineData("a SEARCH SINCE 02-Jan-2024 BEFORE 6-Jan-2024", "* SEARCH 2 3 4")]
    [InlineData("a SEARCH SENTBEFORE 1-Jan-2024", "* SEARCH 1")]
    [InlineData("a SEARCH SENTON 4-Jan-2024", "* SEARCH 4")]
    [InlineData("a SEARCH SENTSINCE 5-Jan-2024", "* SEARCH 5 6")]
    public async Task Dates(string command, string expected) => Assert.Equal(expected + "\r\n", await _imap.RunAsync(command));

    [Fact]
    public async Task SentDatesFetchSortInfoOnlyForMessagesCheapKeysLeaveOpen()
    {
        Assert.Equal("* SEARCH 5 6\r\n", await _imap.RunAsync("a SEARCH UNSEEN SENTSINCE 5-Jan-2024"));
        Assert.Equal(["SortInfo 30,50,60"], _source.Calls);
    }

    [Theory]
    [InlineData("a SEARCH LARGER 1000", "* SEARCH 2 4 5")]
    [InlineData("a SEARCH SMALLER 1000", "* SEARCH 3 6")]
    [InlineData("a SEARCH LARGER 499 SMALLER 1001", "* SEARCH 1 3")]
    public async Task Sizes(string command, string expected) => Assert.Equal(expected + "\r\n", await _imap.RunAsync(command));

    [Theory]
    [InlineData("a SEARCH SUBJECT report", "* SEARCH 1 2")]
    [InlineData("a SEARCH FROM ALICE", "* SEARCH 1 3")]
    [InlineData("a SEARCH BODY \"at noon\"", "* SEARCH 3")]
    [InlineData("a SEARCH TEXT report", "* SEARCH 1 2 4")]
    [InlineData("a SEARCH HEADER X-Priority 1", "* SEARCH 1")]
    [InlineData("a SEARCH HEADER X-Priority \"\"", "* SEARCH 1 3")]
    [InlineData("a SEARCH NOT SUBJECT report SEEN", "* SEARCH 4")]
    [InlineData("a SEARCH OR SUBJECT lunch FROM bob", "* SEARCH 2 3")]
    public async Task TextKeys(string command, string expected) => Assert.Equal(expected + "\r\n", await _imap.RunAsync(command));

    [Fact]
    public async Task TextKeysAreNotSearchedWhenCheapKeysDecide()
    {
        Assert.Equal("* SEARCH\r\n", await _imap.RunAsync("a SEARCH SUBJECT report DRAFT FLAGGED"));
        Assert.Empty(_source.Calls);
        Assert.Equal("* SEARCH 1 2 3 4 5 6\r\n", await _imap.RunAsync("a SEARCH OR ALL BODY x"));
        Assert.Empty(_source.Calls);
    }

    [Fact]
    public async Task EachDistinctTextKeyIsSearchedOnce()
    {
        // Once SUBJECT report is known, the OR is decided for every message: FROM is never asked.
        Assert.Equal("* SEARCH 1 2\r\n", await _imap.RunAsync("a SEARCH SUBJECT report OR SUBJECT report FROM nobody"));
        Assert.Equal(["Subject report"], _source.Calls);
        _source.Calls.Clear();
        Assert.Equal("* SEARCH 1 2 3\r\n", await _imap.RunAsync("a SEARCH OR SUBJECT lunch OR FROM bob FROM alice"));
        Assert.Equal(["Subject lunch", "From bob", "From alice"], _source.Calls);
    }

    [Fact]
    public async Task TextUsesTheCharset()
    {
        // "café" in ISO-8859-1, as a LITERAL+ literal.
        var line = Encoding.ASCII.GetBytes("a SEARCH CHARSET ISO-8859-1 BODY {4+}\r\ncaf").Concat(new byte[] { 0xE9 }).Concat("\r\n"u8.ToArray()).ToArray();
        Assert.Equal("* SEARCH 3\r\n", await _imap.RunAsync(line));
        Assert.Equal(["Body café"], _source.Calls);
        Assert.Equal("* SEARCH 1 2\r\n", await _imap.RunAsync("a SEARCH CHARSET utf-8 SUBJECT report"));
        Assert.Equal("* SEARCH 1 2\r\n", await _imap.RunAsync("a SEARCH CHARSET US-ASCII SUBJECT report"));
    }

    [Fact]
    public async Task UnknownCharsetIsBadCharset()
    {
        var e = await _imap.FailAsync("a SEARCH CHARSET KOI8-R SUBJECT report");
        Assert.Equal(ImapStatus.No, e.Status);
        Assert.Equal("BADCHARSET (US-ASCII UTF-8 ISO-8859-1)", e.Code);
    }

    [Fact]
    public async Task CharsetAfterUtf8AcceptIsBad()
    {
        // RFC 6855 §3.
        _imap.Utf8Accept = true;
        Assert.Equal(ImapStatus.Bad, (await _imap.FailAsync("a SEARCH CHARSET UTF-8 SUBJECT report")).Status);
        Assert.Equal("* SEARCH 3\r\n", await _imap.RunAsync("a SEARCH BODY \"café\""));
    }

    [Theory]
    [InlineData("a SEARCH")]
    [InlineData("a SEARCH FROB")]
    [InlineData("a SEARCH SUBJECT")]
    [InlineData("a SEARCH LARGER x")]
    [InlineData("a SEARCH BEFORE 32-Jan-2024")]
    [InlineData("a SEARCH BEFORE 2024-01-01")]
    [InlineData("a SEARCH OR SEEN")]
    [InlineData("a SEARCH NOT")]
    [InlineData("a SEARCH ()")]
    [InlineData("a SEARCH 0:3")]
    [InlineData("a SEARCH $")]
    [InlineData("a SEARCH UID $")]
    [InlineData("a SEARCH RETURN (SAVE) ALL")]
    [InlineData("a SEARCH RETURN (FOO) ALL")]
    [InlineData("a SEARCH RETURN ALL")]
    [InlineData("a SEARCH CHARSET")]
    [InlineData("a SEARCH MODSEQ")]
    [InlineData("a SEARCH MODSEQ \"/flags/\\\\seen\" bogus 5")]
    public async Task SyntaxErrorsAreBad(string command) => Assert.Equal(ImapStatus.Bad, (await _imap.FailAsync(command)).Status);

    [Theory]
    [InlineData("a SEARCH RETURN (MIN MAX COUNT ALL) SEEN", "* ESEARCH (TAG \"a\") MIN 1 MAX 4 COUNT 3 ALL 1:2,4")]
    [InlineData("a SEARCH RETURN (MIN COUNT) UNSEEN", "* ESEARCH (TAG \"a\") MIN 3 COUNT 3")]
    [InlineData("a SEARCH RETURN (MAX) ALL", "* ESEARCH (TAG \"a\") MAX 6")]
    [InlineData("a SEARCH RETURN () UNDELETED", "* ESEARCH (TAG \"a\") ALL 1:3,5:6")]
    [InlineData("a UID SEARCH RETURN (ALL MIN) UNDELETED", "* ESEARCH (TAG \"a\") UID MIN 10 ALL 10,20,30,50,60")]
    [InlineData("a SEARCH RETURN (MIN MAX COUNT ALL) KEYWORD $None", "* ESEARCH (TAG \"a\") COUNT 0")]
    [InlineData("a SEARCH RETURN (ALL) KEYWORD $None", "* ESEARCH (TAG \"a\")")]
    [InlineData("a UID SEARCH RETURN () KEYWORD $None", "* ESEARCH (TAG \"a\") UID")]
    public async Task Esearch(string command, string expected) => Assert.Equal(expected + "\r\n", await _imap.RunAsync(command));

    [Fact]
    public async Task Rev2AnswersPlainSearchWithEsearch()
    {
        _imap.Rev2 = true;
        Assert.Equal("* ESEARCH (TAG \"a\") ALL 1:2,4\r\n", await _imap.RunAsync("a SEARCH SEEN"));
        Assert.Equal("* ESEARCH (TAG \"b\") UID ALL 10,20,40\r\n", await _imap.RunAsync("b UID SEARCH SEEN"));
        Assert.Equal("* ESEARCH (TAG \"c\") COUNT 3\r\n", await _imap.RunAsync("c SEARCH RETURN (COUNT) SEEN"));
        Assert.Equal("* ESEARCH (TAG \"d\")\r\n", await _imap.RunAsync("d SEARCH KEYWORD $None"));
    }

    [Fact]
    public async Task EsearchTagIsAQuotedString()
    {
        Assert.Equal("* ESEARCH (TAG \"x.1\") COUNT 1\r\n", await _imap.RunAsync("x.1 SEARCH RETURN (COUNT) FLAGGED"));
    }

    [Fact]
    public async Task ModSeqAddsTheHighestModSeqOfTheResult()
    {
        Assert.Equal("* SEARCH 3 5 6 (MODSEQ 12)\r\n", await _imap.RunAsync("a SEARCH MODSEQ 8"));
        Assert.True(_imap.LastUsedModSeq);
        Assert.Equal("* SEARCH 30 60 (MODSEQ 9)\r\n", await _imap.RunAsync("a UID SEARCH MODSEQ \"/flags/\\\\draft\" all 8 UNDRAFT"));
        Assert.True(_imap.LastUsedModSeq);
        Assert.Equal("* SEARCH\r\n", await _imap.RunAsync("a SEARCH MODSEQ 13"));
        Assert.True(_imap.LastUsedModSeq);
        Assert.Equal("* SEARCH 5\r\n", await _imap.RunAsync("a SEARCH DRAFT"));
        Assert.False(_imap.LastUsedModSeq);
    }

    [Theory]
    [InlineData("a SEARCH RETURN (ALL) MODSEQ 8", "* ESEARCH (TAG \"a\") ALL 3,5:6 MODSEQ 12")]
    [InlineData("a SEARCH RETURN (COUNT) MODSEQ 8", "* ESEARCH (TAG \"a\") COUNT 3 MODSEQ 12")]
    // RFC 7162 §3.1.10: with only MIN/MAX, the MODSEQ of the messages returned.
    [InlineData("a SEARCH RETURN (MIN) MODSEQ 8", "* ESEARCH (TAG \"a\") MIN 3 MODSEQ 9")]
    [InlineData("a SEARCH RETURN (MIN MAX) MODSEQ 8", "* ESEARCH (TAG \"a\") MIN 3 MAX 6 MODSEQ 9")]
    [InlineData("a SEARCH RETURN (COUNT) MODSEQ 100", "* ESEARCH (TAG \"a\") COUNT 0")]
    public async Task EsearchModSeq(string command, string expected) => Assert.Equal(expected + "\r\n", await _imap.RunAsync(command));

    [Fact]
    public async Task EmptyMailbox()
    {
        var imap = new SearchHarness(new FakeSearchSource(), new SelectedMailbox("INBOX", false, 1, []));
        Assert.Equal("* SEARCH\r\n", await imap.RunAsync("a SEARCH 1:*"));
        Assert.Equal("* SEARCH\r\n", await imap.RunAsync("a UID SEARCH UID 1:* SUBJECT x"));
        Assert.Equal("* ESEARCH (TAG \"a\") COUNT 0\r\n", await imap.RunAsync("a SEARCH RETURN (COUNT MIN) ALL"));
    }
}

/// <summary>
/// Stands in for the store's full-text index and header decoding: messages are given their
/// fields as plain strings, matched case-insensitively; every call is recorded.
/// </summary>
internal sealed class FakeSearchSource : ISearchSource
{
    public Dictionary<long, Dictionary<TextField, string>> Fields { get; } = [];
    public Dictionary<long, MessageSortInfo> SortInfo { get; } = [];
    public List<string> Calls { get; } = [];

    public Task<IReadOnlySet<long>> SearchTextAsync(TextField field, string text, string? headerName, CancellationToken ct)
    {
        Calls.Add($"{field} {headerName} {text}".Replace("  ", " "));
        var result = new HashSet<long>();
        foreach (var (uid, fields) in Fields)
        {
            var key = field == TextField.Header ? TextField.Header : field;
            string? value = key switch
            {
                TextField.Header => fields.TryGetValue(TextField.Header, out var h) ? Header(h, headerName!) : null,
                TextField.Text => string.Join("\n", fields.Values),
                _ => fields.GetValueOrDefault(field),
            };
            if (value is not null && value.Contains(text, StringComparison.OrdinalIgnoreCase)) result.Add(uid);
        }
        return Task.FromResult<IReadOnlySet<long>>(result);
    }

    /// <summary>Headers are kept as "Name: value" lines under TextField.Header.</summary>
    private static string? Header(string headers, string name) =>
        headers.Split('\n').Where(l => l.StartsWith(name + ":", StringComparison.OrdinalIgnoreCase))
            .Select(l => l[(name.Length + 1)..].Trim()).FirstOrDefault();

    public Task<IReadOnlyList<MessageSortInfo>> GetSortInfoAsync(IReadOnlyCollection<long> uids, CancellationToken ct)
    {
        Calls.Add("SortInfo " + string.Join(',', uids));
        return Task.FromResult<IReadOnlyList<MessageSortInfo>>(uids.Where(SortInfo.ContainsKey).Select(u => SortInfo[u]).ToList());
    }
}

/// <summary>Runs one command line through the real parser and the search commands, returning what was written.</summary>
internal sealed class SearchHarness(FakeSearchSource source, SelectedMailbox mailbox)
{
    public bool Rev2 { get; set; }
    public bool Utf8Accept { get; set; }
    public bool LastUsedModSeq { get; private set; }

    public async Task<string> RunAsync(string line) => await RunAsync(Encoding.UTF8.GetBytes(line + "\r\n"));

    public async Task<string> RunAsync(byte[] line)
    {
        var status = ImapParser.TryParse(new ReadOnlySequence<byte>(line), new ImapParserLimits(65536, 65536, 65536), 0,
            out var command, out _, out var failure);
        Assert.True(status == ImapParseStatus.Complete, failure.Text);
        var output = new ArrayBufferWriter<byte>();
        var c = new ImapSearchContext(source, mailbox, new ImapWriter(output), command!.Tag, command.Uid, Rev2, Utf8Accept, default);
        LastUsedModSeq = command.Name switch
        {
            "SEARCH" => await ImapSearchCommands.SearchAsync(c, command.Args),
            "SORT" => await ImapSearchCommands.SortAsync(c, command.Args),
            "THREAD" => await ImapSearchCommands.ThreadAsync(c, command.Args),
            _ => throw new ArgumentException(command.Name),
        };
        return Encoding.UTF8.GetString(output.WrittenSpan);
    }

    /// <summary>The exception the command fails with.</summary>
    public async Task<ImapException> FailAsync(string line) => await Assert.ThrowsAsync<ImapException>(() => RunAsync(line));
}
