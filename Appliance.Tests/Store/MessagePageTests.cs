using System.Diagnostics;
using System.Globalization;
using System.Text;
using Appliance.Directory;
using Appliance.Store;
using Microsoft.Data.Sqlite;
using Xunit.Abstractions;

namespace Appliance.Tests.Store;

/// <summary>The webmail's folder listing (MailStore.ListPageAsync): orders, paging, search restriction, threads.</summary>
public sealed class MessagePageTests(ITestOutputHelper output) : IAsyncLifetime
{
    private static readonly CancellationToken None = CancellationToken.None;
    private static readonly DateTimeOffset Arrival = new(2024, 3, 4, 12, 0, 0, TimeSpan.Zero);
    private readonly string _root = Path.Combine(Path.GetTempPath(), "appliance-page-" + Guid.NewGuid().ToString("N")[..12]);
    private readonly MailUser _alice = new("alice@example.test", "a", 0);
    private MailStore _store = null!;

    private string PartitionDir => Path.Combine(_root, "units", "store-a");

    public async Task InitializeAsync()
    {
        _store = MailStore.Open(_root, ["a"], 1 << 20);
        await _store.CreateMailboxAsync(_alice);
    }

    public async Task DisposeAsync()
    {
        await _store.DisposeAsync();
        SqliteConnection.ClearAllPools();
        try { System.IO.Directory.Delete(_root, recursive: true); }
        catch (IOException) { }
    }

    /// <summary>A message of exactly <paramref name="size"/> bytes when given (the body is padded).</summary>
    private static NewMessage Message(string headers, int size = 0, MessageFlags flags = MessageFlags.None, params string[] keywords)
    {
        var head = headers.ReplaceLineEndings("\r\n") + "\r\n";
        var text = head + new string('x', Math.Max(1, size - head.Length - 2)) + "\r\n";
        var bytes = Encoding.UTF8.GetBytes(text);
        if (size > 0) Assert.Equal(size, bytes.Length);
        return new NewMessage(bytes, MessageStructure.Parse(new MemoryStream(bytes)), Arrival, flags, keywords);
    }

    private async Task<long[]> AppendAsync(string folder, params NewMessage[] messages) =>
        (await _store.AppendAsync(_alice, folder, messages, None))!.Uids;

    private Task<MessagePage> PageAsync(MessageOrder order, bool descending, int offset = 0, int limit = 50, bool threads = false,
        IReadOnlySet<long>? only = null, string folder = "INBOX") =>
        _store.ListPageAsync(_alice, folder, order, descending, offset, limit, threads, only, None);

    private async Task<IReadOnlyList<long>> UidsAsync(MessageOrder order, bool descending, int offset = 0, int limit = 50, IReadOnlySet<long>? only = null) =>
        [.. (await PageAsync(order, descending, offset, limit, only: only)).Messages.Select(m => m.Uid)];

    /// <summary>
    /// Five messages in INBOX:
    /// uid  Date            From                         Subject           size
    ///  1   03-03           "Cärol" (encoded) carol@     =?utf-8?…?= …     700   keyword
    ///  2   03-01 12:00     alice@ (no name)             Re: Apple         500   \Seen
    ///  3   03-05           Bob bob@                     cherry            900
    ///  4   03-01 12:00     bob b2@ (ties 3 from, 2 date) apple            500   \Deleted
    ///  5   none (arrival 03-04)  none                   Déjà vu (encoded) 600
    /// </summary>
    private Task<long[]> FiveAsync() => AppendAsync("INBOX",
        Message("Date: Sun, 03 Mar 2024 12:00:00 +0000\nFrom: =?utf-8?q?C=C3=A4rol?= <carol@x.test>\nTo: Dan <dan@x.test>, eve@x.test\nSubject: banana\n", 700, MessageFlags.None, "$Work"),
        Message("Date: Fri, 01 Mar 2024 12:00:00 +0000\nFrom: alice@x.test\nTo: Eve@X.test\nSubject: Re: Apple\n", 500, MessageFlags.Seen),
        Message("Date: Tue, 05 Mar 2024 12:00:00 +0000\nFrom: Bob <bob@x.test>\nSubject: cherry\n", 900),
        Message("Date: Fri, 01 Mar 2024 13:00:00 +0100\nFrom: bob <b2@x.test>\nSubject: apple\n", 500, MessageFlags.Deleted),
        Message("Subject: =?utf-8?q?D=C3=A9j=C3=A0_vu?=\n", 600));

    [Fact]
    public async Task EveryOrder_BothDirections_TiesByUidInTheSameDirection()
    {
        await FiveAsync();

        Assert.Equal([2L, 4, 1, 5, 3], await UidsAsync(MessageOrder.Date, false));
        Assert.Equal([3L, 5, 1, 4, 2], await UidsAsync(MessageOrder.Date, true));
        // The name, else the address, ASCII case ignored; no From first.
        Assert.Equal([5L, 2, 3, 4, 1], await UidsAsync(MessageOrder.From, false));
        Assert.Equal([1L, 4, 3, 2, 5], await UidsAsync(MessageOrder.From, true));
        // The base subject: "Re: Apple" and "apple" tie.
        Assert.Equal([2L, 4, 1, 3, 5], await UidsAsync(MessageOrder.Subject, false));
        Assert.Equal([5L, 3, 1, 4, 2], await UidsAsync(MessageOrder.Subject, true));
        Assert.Equal([2L, 4, 5, 1, 3], await UidsAsync(MessageOrder.Size, false));
        Assert.Equal([3L, 1, 5, 4, 2], await UidsAsync(MessageOrder.Size, true));
    }

    [Fact]
    public async Task Rows_CarryDecodedSenderSubjectFirstToFlagsAndTheDateHeaderElseArrival()
    {
        await FiveAsync();

        var rows = (await PageAsync(MessageOrder.Date, false)).Messages.ToDictionary(m => m.Uid);

        var carol = rows[1];
        Assert.Equal((MessageFlags.None, new DateTimeOffset(2024, 3, 3, 12, 0, 0, TimeSpan.Zero), 700L, "Cärol", "carol@x.test", "Dan", "banana"),
            (carol.Flags, carol.Date, carol.Size, carol.FromName, carol.FromAddress, carol.To, carol.Subject));
        Assert.Equal(["$Work"], carol.Keywords);
        Assert.Equal(("", "alice@x.test", "eve@x.test", "Re: Apple", MessageFlags.Seen), (rows[2].FromName, rows[2].FromAddress, rows[2].To, rows[2].Subject, rows[2].Flags));
        Assert.Equal(MessageFlags.Deleted, rows[4].Flags); // listed like the others
        Assert.Equal(new DateTimeOffset(2024, 3, 1, 12, 0, 0, TimeSpan.Zero), rows[4].Date);
        Assert.Equal(("", "", "", "Déjà vu", Arrival), (rows[5].FromName, rows[5].FromAddress, rows[5].To, rows[5].Subject, rows[5].Date));
        Assert.All(rows.Values, r => Assert.Equal(0, r.Depth));
    }

    [Fact]
    public async Task OffsetAndLimit_PageTheRows_PastTheEndIsEmpty_TotalCountsAll()
    {
        await FiveAsync();

        Assert.Equal([4L, 2], await UidsAsync(MessageOrder.Date, true, offset: 3, limit: 2));
        Assert.Equal([2L], await UidsAsync(MessageOrder.Date, true, offset: 4, limit: 10));
        Assert.Equal([1L, 3], await UidsAsync(MessageOrder.Size, false, offset: 3, limit: 5));
        foreach (var (offset, limit) in new[] { (5, 10), (100, 10), (0, 0) })
        {
            var page = await PageAsync(MessageOrder.Date, true, offset, limit);
            Assert.Equal(5, page.Total);
            Assert.Empty(page.Messages);
        }
        Assert.Equal(5, (await PageAsync(MessageOrder.Subject, false, 1, 1)).Total);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => PageAsync(MessageOrder.Date, true, offset: -1));
    }

    [Fact]
    public async Task Only_RestrictsTheRowsAndTheTotal_ToThoseUidsOfTheFolder()
    {
        await FiveAsync();
        var found = new HashSet<long> { 1, 2, 5, 999 };

        var page = await PageAsync(MessageOrder.Date, true, only: found);
        Assert.Equal(3, page.Total);
        Assert.Equal([5L, 1, 2], page.Messages.Select(m => m.Uid));
        Assert.Equal([1L], await UidsAsync(MessageOrder.Date, true, 1, 1, found));
        Assert.Equal([2L, 5, 1], await UidsAsync(MessageOrder.Size, false, only: found));
        Assert.Equal([5L, 1, 2], await UidsAsync(MessageOrder.Subject, true, only: found));
        Assert.Equal([1L, 2, 5], await UidsAsync(MessageOrder.From, true, only: found));
        Assert.Equal(new MessagePage(0, []).Total, (await PageAsync(MessageOrder.Date, true, only: new HashSet<long>())).Total);
        Assert.Empty((await PageAsync(MessageOrder.Date, true, only: new HashSet<long>())).Messages);

        // A search by subject through the store, as the webmail's q= does it.
        var hits = await _store.SearchTextAsync(_alice, "INBOX", TextField.Subject, "déjà", null, None);
        Assert.Equal([5L], await UidsAsync(MessageOrder.Date, true, only: hits));
    }

    [Fact]
    public async Task MissingFolder_Throws()
    {
        await Assert.ThrowsAsync<FolderNotFoundException>(() => PageAsync(MessageOrder.Date, true, folder: "Nope"));
        await Assert.ThrowsAsync<FolderNotFoundException>(() => PageAsync(MessageOrder.Date, true, threads: true, folder: "Nope"));
    }

    /// <summary>
    /// uid  Message-ID  refs                 Subject     Date
    ///  1   a                                Plan        03-01
    ///  2   b           In-Reply-To a        Re: Plan    03-02
    ///  3   c           References a b       Re: Plan    03-05
    ///  4   d                                Lunch       03-03
    ///  5   e           (none)               Re: Lunch   03-04   grouped with 4 by subject only
    ///  6   f                                Other       03-06
    ///  7   g           In-Reply-To a        Re: Plan    03-03   2's younger sibling
    ///  8   h           In-Reply-To m (lost) Q           03-07   8 and 9 share a missing parent
    ///  9   i           In-Reply-To m (lost) Re: Q       03-08
    /// </summary>
    private Task<long[]> ConversationsAsync() => AppendAsync("INBOX",
        Message("Message-ID: <a@x>\nDate: Fri, 01 Mar 2024 12:00:00 +0000\nSubject: Plan\n"),
        Message("Message-ID: <b@x>\nIn-Reply-To: <a@x>\nDate: Sat, 02 Mar 2024 12:00:00 +0000\nSubject: Re: Plan\n"),
        Message("Message-ID: <c@x>\nReferences: <a@x> <b@x>\nDate: Tue, 05 Mar 2024 12:00:00 +0000\nSubject: Re: Plan\n"),
        Message("Message-ID: <d@x>\nDate: Sun, 03 Mar 2024 12:00:00 +0000\nSubject: Lunch\n"),
        Message("Message-ID: <e@x>\nDate: Mon, 04 Mar 2024 12:00:00 +0000\nSubject: Re: Lunch\n"),
        Message("Message-ID: <f@x>\nDate: Wed, 06 Mar 2024 12:00:00 +0000\nSubject: Other\n"),
        Message("Message-ID: <g@x>\nIn-Reply-To: <a@x>\nDate: Sun, 03 Mar 2024 12:00:00 +0000\nSubject: Re: Plan\n"),
        Message("Message-ID: <h@x>\nIn-Reply-To: <m@x>\nDate: Thu, 07 Mar 2024 12:00:00 +0000\nSubject: Q\n"),
        Message("Message-ID: <i@x>\nIn-Reply-To: <m@x>\nDate: Fri, 08 Mar 2024 12:00:00 +0000\nSubject: Re: Q\n"));

    private async Task<IReadOnlyList<(long Uid, int Depth)>> ThreadRowsAsync(bool descending, int offset = 0, int limit = 50, IReadOnlySet<long>? only = null) =>
        [.. (await PageAsync(MessageOrder.Date, descending, offset, limit, threads: true, only: only)).Messages.Select(m => (m.Uid, m.Depth))];

    [Fact]
    public async Task Threads_ComeInConversationOrder_NewestThreadFirst_WithDepths()
    {
        await ConversationsAsync();

        // The thread with the missing parent has no row for it: its two messages stand at depth 0.
        Assert.Equal([(8L, 0), (9, 0), (6, 0), (1, 0), (2, 1), (3, 2), (7, 1), (4, 0), (5, 1)], await ThreadRowsAsync(descending: true));
        // Ascending orders the threads by their newest message, oldest first; a thread still reads top down.
        Assert.Equal([(4L, 0), (5, 1), (1, 0), (2, 1), (3, 2), (7, 1), (6, 0), (8, 0), (9, 0)], await ThreadRowsAsync(descending: false));

        var page = await PageAsync(MessageOrder.Date, true, 3, 3, threads: true);
        Assert.Equal(9, page.Total);
        Assert.Equal([(1L, 0), (2, 1), (3, 2)], page.Messages.Select(m => (m.Uid, m.Depth)));
        Assert.Equal("Re: Plan", page.Messages[2].Subject);
        Assert.Empty((await PageAsync(MessageOrder.Date, true, 9, 3, threads: true)).Messages);
    }

    [Fact]
    public async Task Threads_FollowTheFolder_AfterAnArrivalAndAnExpunge()
    {
        await ConversationsAsync();
        Assert.Equal([(8L, 0), (9, 0), (6, 0), (1, 0), (2, 1), (3, 2), (7, 1), (4, 0), (5, 1)], await ThreadRowsAsync(descending: true));

        // A late reply to "Lunch" makes it the newest conversation.
        await AppendAsync("INBOX", Message("Message-ID: <j@x>\nIn-Reply-To: <d@x>\nDate: Sat, 09 Mar 2024 12:00:00 +0000\nSubject: Re: Lunch\n"));
        Assert.Equal([(4L, 0), (5, 1), (10, 1), (8, 0), (9, 0), (6, 0), (1, 0), (2, 1), (3, 2), (7, 1)], await ThreadRowsAsync(descending: true));

        // Expunging 2 and 10: 3 hangs from 1 directly, after its older sibling 7, and Lunch falls back to its place.
        await _store.ExpungeAsync(_alice, "INBOX", [2, 10], None);
        Assert.Equal([(8L, 0), (9, 0), (6, 0), (1, 0), (7, 1), (3, 1), (4, 0), (5, 1)], await ThreadRowsAsync(descending: true));
        Assert.Equal(8, (await PageAsync(MessageOrder.Date, true, 0, 3, threads: true)).Total);
    }

    [Fact]
    public async Task Threads_WithOnly_ThreadTheMatchesAmongThemselves()
    {
        await ConversationsAsync();

        // Without 2, 3's reference to <b> is a missing parent under 1: 3 becomes 1's child.
        var rows = await ThreadRowsAsync(descending: true, only: new HashSet<long> { 1, 3, 4, 6 });
        Assert.Equal([(6L, 0), (1, 0), (3, 1), (4, 0)], rows);
        Assert.Equal(4, (await PageAsync(MessageOrder.Date, true, 0, 1, threads: true, only: new HashSet<long> { 1, 3, 4, 6, 77 })).Total);
    }

    [Fact]
    public async Task AnIndexFromBeforeTheListing_GetsTheSenderColumnsAndTheDateIndex()
    {
        await AppendAsync("INBOX",
            Message("Date: Fri, 01 Mar 2024 12:00:00 +0000\nFrom: =?utf-8?q?J=C3=B6rg?= <Jorg@X.test>\nSubject: old\n"),
            Message("Date: Sat, 02 Mar 2024 12:00:00 +0000\nSubject: older still\n"));
        await _store.DisposeAsync();
        var db = $"Data Source={Path.Combine(PartitionDir, "index.db")};Pooling=False";
        using (var c = new SqliteConnection(db))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "DROP INDEX message_index_date; ALTER TABLE message_index DROP COLUMN from_name; ALTER TABLE message_index DROP COLUMN from_address;";
            cmd.ExecuteNonQuery();
        }

        _store = MailStore.Open(_root, ["a"], 1 << 20);

        var rows = (await PageAsync(MessageOrder.Date, true)).Messages;
        Assert.Equal([2L, 1], rows.Select(r => r.Uid));
        Assert.Equal(("Jörg", "Jorg@X.test"), (rows[1].FromName, rows[1].FromAddress));
        Assert.Equal(("", ""), (rows[0].FromName, rows[0].FromAddress));
        using (var c = new SqliteConnection(db))
        {
            c.Open();
            using var cmd = c.CreateCommand();
            cmd.CommandText = "SELECT (SELECT count(*) FROM sqlite_master WHERE name = 'message_index_date') || ' ' || (SELECT count(*) FROM meta WHERE key = 'index_from_backfill')";
            Assert.Equal("1 0", cmd.ExecuteScalar());
        }
        // New messages and copies get their sender at once.
        var uid = (await AppendAsync("INBOX", Message("From: Ann <ann@x.test>\nSubject: new\n")))[0];
        await _store.CopyAsync(_alice, "INBOX", [uid], "Archive", move: false, None);
        Assert.Equal("Ann", (await PageAsync(MessageOrder.From, true, 0, 1, folder: "Archive")).Messages.Single().FromName);
    }

    /// <summary>
    /// The measurement on a 50,000-message folder, printed, never asserted: run with
    /// APPLIANCE_MEASURE_LISTING=1 dotnet test --filter MessagePageTests.Measure --logger "console;verbosity=detailed".
    /// </summary>
    [Fact]
    public async Task Measure_FiftyThousandMessages()
    {
        if (Environment.GetEnvironmentVariable("APPLIANCE_MEASURE_LISTING") != "1") return;
        const int count = 50_000, batch = 500;
        var random = new Random(7);
        string[] names = ["Alice", "Bob", "Carol", "Dan", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy"];
        var watch = Stopwatch.StartNew();
        for (var start = 0; start < count; start += batch)
        {
            var messages = new NewMessage[batch];
            for (var i = 0; i < batch; i++)
            {
                var n = start + i;
                var thread = n / 5; // conversations of five: each message answers the previous one
                var date = new DateTimeOffset(2020, 1, 1, 0, 0, 0, TimeSpan.Zero).AddMinutes(n * 30 + random.Next(0, 600));
                var refs = n % 5 == 0 ? "" : $"In-Reply-To: <m{n - 1}@x.test>\nReferences: <m{thread * 5}@x.test> <m{n - 1}@x.test>\n";
                messages[i] = Message($"Message-ID: <m{n}@x.test>\n{refs}Date: {date.ToString("ddd, dd MMM yyyy HH:mm:ss", CultureInfo.InvariantCulture)} +0000\n" +
                    $"From: {names[random.Next(names.Length)]} <u{random.Next(1000)}@x.test>\nTo: alice@example.test\n" +
                    $"Subject: {(n % 5 == 0 ? "" : "Re: ")}topic {thread} =?utf-8?q?gr=C3=BC=C3=9Fe?=\n", 300 + random.Next(0, 2000));
            }
            await _store.AppendAsync(_alice, "INBOX", messages, None);
        }
        output.WriteLine($"appended {count} messages in {watch.Elapsed.TotalSeconds:F1} s");
        var only = new HashSet<long>(Enumerable.Range(0, 500).Select(_ => (long)random.Next(1, count + 1)));

        await TimeAsync("date desc, first page", () => PageAsync(MessageOrder.Date, true, 0, 50));
        await TimeAsync("date desc, last page", () => PageAsync(MessageOrder.Date, true, count - 50, 50));
        await TimeAsync("date asc, first page", () => PageAsync(MessageOrder.Date, false, 0, 50));
        await TimeAsync("subject asc, first page", () => PageAsync(MessageOrder.Subject, false, 0, 50));
        await TimeAsync("from asc, first page", () => PageAsync(MessageOrder.From, false, 0, 50));
        await TimeAsync("size desc, first page", () => PageAsync(MessageOrder.Size, true, 0, 50));
        await TimeAsync("threads desc, first page", () => PageAsync(MessageOrder.Date, true, 0, 50, threads: true));
        await TimeAsync($"only {only.Count} uids, date desc", () => PageAsync(MessageOrder.Date, true, 0, 50, only: only));
        await TimeAsync($"only {only.Count} uids, threads", () => PageAsync(MessageOrder.Date, true, 0, 50, threads: true, only: only));

        // Where the threaded view's time goes: reading every message's keys, then the threading.
        var all = Enumerable.Range(1, count).Select(i => (long)i).ToList();
        var w = Stopwatch.StartNew();
        var info = await _store.GetSortInfoAsync(_alice, "INBOX", all, None);
        var read = w.Elapsed.TotalMilliseconds;
        w.Restart();
        var threads = MessageThreads.References([.. info.Select((m, i) => (i + 1, m))]);
        output.WriteLine($"threads: reading the keys {read:F0} ms (GetSortInfoAsync, more columns), RFC 5256 REFERENCES {w.Elapsed.TotalMilliseconds:F0} ms, {threads.Count} threads");

        async Task TimeAsync(string what, Func<Task<MessagePage>> list)
        {
            var first = await list(); // warm: the statement cache and the page cache
            var times = new List<double>();
            for (var i = 0; i < 5; i++)
            {
                var w = Stopwatch.StartNew();
                await list();
                times.Add(w.Elapsed.TotalMilliseconds);
            }
            times.Sort();
            output.WriteLine($"{what,-32} median {times[2],7:F1} ms  (min {times[0]:F1}, max {times[^1]:F1}; {first.Messages.Count} of {first.Total})");
        }
    }
}
