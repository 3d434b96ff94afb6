// ImapLoad: IMAP load generator for `build.ps1 bench`.
//
//   ImapLoad mixed  --port N [--sessions 10 --commands 20000 --users 10]
//   ImapLoad idle   --port N --pid PID[,PID] [--connections 500 --users 10]
//   ImapLoad fill-maildir --dir MAILDIR [--messages 50000 --user big@bench.test]
//   ImapLoad append --port N [--user big@bench.test --messages 50000 --sessions 10]
//   ImapLoad search --port N [--user big@bench.test --messages 50000 --runs 5]
//   common: --host 127.0.0.1 --domain bench.test --user-prefix u --password bench-password
//
// Implementation notes
// - Raw sockets and a small line/literal reader (ImapConnection.cs), not a full client
//   library: the client's cost is small and the same for every server.
// - mixed: each session logs in to u{(s % users) + 1}, selects INBOX and learns its UIDs
//   (not timed); after all sessions are ready the clock runs until every session has had
//   OK for its share of --commands, drawn from a fixed weighted mix (Mix below) by a
//   random generator seeded with the session number, so every server gets the same
//   command stream. Any reply other than OK fails the run.
// - idle: logs each user in once (their first-login password hash is not a per-connection
//   cost), opens half of --connections sessions (LOGIN, SELECT INBOX, IDLE; 25 being set up
//   at a time), waits --settle seconds, sums VmRSS (and Pss, for information) over --pid and
//   all its descendants, opens the other half, waits, sums again: the figure is the marginal
//   memory of the second half, then ends the IDLEs and logs out.
// - fill-maildir / append load the same deterministic corpus (Corpus.cs) into a Dovecot
//   maildir or over IMAP APPEND (parallel sessions, LITERAL+ pipelined in batches when
//   offered); search times
//   UID SEARCH TEXT for the corpus word (median of --runs after one warm-up) and fails
//   unless every run finds exactly the messages that contain it.
// - Output is one line of key=value pairs on stdout; exit 0 on success, 1 on failure,
//   2 on a usage error.
using System.Diagnostics;
using System.Globalization;
using System.Text;

namespace ImapLoad;

internal static class Program
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;

    private static async Task<int> Main(string[] args)
    {
        Options o;
        try
        {
            o = Options.Parse(args);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"ImapLoad: {e.Message}");
            Console.Error.WriteLine(Options.Usage);
            return 2;
        }
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(o.TimeoutSeconds));
        try
        {
            return o.Mode switch
            {
                "mixed" => await MixedAsync(o, cts.Token).ConfigureAwait(false),
                "idle" => await IdleAsync(o, cts.Token).ConfigureAwait(false),
                "fill-maildir" => FillMaildir(o),
                "append" => await AppendAsync(o, cts.Token).ConfigureAwait(false),
                "search" => await SearchAsync(o, cts.Token).ConfigureAwait(false),
                _ => throw new InvalidOperationException(),
            };
        }
        catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ImapException or OperationCanceledException)
        {
            Console.Error.WriteLine($"ImapLoad {o.Mode}: {e.Message}");
            return 1;
        }
    }

    private static string User(Options o, int k) =>
        string.Create(Inv, $"{o.UserPrefix}{(k % o.Users) + 1}@{o.Domain}");

    // ---- mixed ---------------------------------------------------------------------------

    private enum Op { Select, FetchFlags, FetchHeaders, FetchBody, StoreSeen, SearchUnseen, Noop, Status, List }

    /// <summary>Relative weights of the client mix (out of 20).</summary>
    private static readonly (Op Op, int Weight)[] Mix =
    [
        (Op.Select, 1), (Op.FetchFlags, 1), (Op.FetchHeaders, 2), (Op.FetchBody, 6), (Op.StoreSeen, 3),
        (Op.SearchUnseen, 2), (Op.Noop, 3), (Op.Status, 1), (Op.List, 1),
    ];

    private static async Task<int> MixedAsync(Options o, CancellationToken ct)
    {
        var perSession = o.Commands / o.Sessions;
        // All sessions log in and select before the clock starts; no thread blocks meanwhile.
        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var allReady = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var settled = 0;
        void Settled()
        {
            if (Interlocked.Increment(ref settled) == o.Sessions)
            {
                allReady.TrySetResult();
            }
        }
        var failed = 0;
        var counts = new int[Enum.GetValues<Op>().Length];
        var sessions = Enumerable.Range(0, o.Sessions).Select(s => Task.Run(async () =>
        {
            ImapConnection? c = null;
            var passed = false;
            try
            {
                c = await ImapConnection.ConnectAsync(o.Host, o.Port, ct).ConfigureAwait(false);
                await c.LoginAsync(User(o, s), o.Password, ct).ConfigureAwait(false);
                var uids = await SelectAsync(c, ct).ConfigureAwait(false);
                if (uids.Count == 0)
                {
                    throw new ImapException($"{User(o, s)}: INBOX is empty");
                }
                passed = true;
                Settled();
                await start.Task.WaitAsync(ct).ConfigureAwait(false);
                var rng = new Random(s);
                var untagged = new List<string>();
                for (var i = 0; i < perSession; i++)
                {
                    var op = Pick(rng);
                    Interlocked.Increment(ref counts[(int)op]);
                    await RunOpAsync(c, op, rng, uids, untagged, ct).ConfigureAwait(false);
                }
                await c.CommandAsync("LOGOUT", null, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ImapException or OperationCanceledException)
            {
                Interlocked.Increment(ref failed);
                Console.Error.WriteLine($"ImapLoad mixed: session {s}: {e.Message}");
                if (!passed)
                {
                    Settled();
                }
            }
            finally
            {
                if (c is not null)
                {
                    await c.DisposeAsync().ConfigureAwait(false);
                }
            }
        }, ct)).ToArray();
        await allReady.Task.WaitAsync(ct).ConfigureAwait(false);
        var sw = Stopwatch.StartNew();
        start.SetResult();
        await Task.WhenAll(sessions).ConfigureAwait(false);
        sw.Stop();
        var total = perSession * o.Sessions;
        var mix = string.Join(',', Enum.GetValues<Op>().Select(op => $"{op}:{counts[(int)op]}"));
        Console.WriteLine(string.Format(Inv, "mode=mixed sessions={0} commands={1} failed_sessions={2} seconds={3:F3} rate={4:F1} mix={5}",
            o.Sessions, total, failed, sw.Elapsed.TotalSeconds, total / sw.Elapsed.TotalSeconds, mix));
        return failed == 0 ? 0 : 1;
    }

    private static Op Pick(Random rng)
    {
        var r = rng.Next(Mix.Sum(m => m.Weight));
        foreach (var (op, weight) in Mix)
        {
            if (r < weight)
            {
                return op;
            }
            r -= weight;
        }
        throw new InvalidOperationException();
    }

    /// <summary>SELECT INBOX, then UID FETCH 1:* (FLAGS); returns the UIDs in sequence order.</summary>
    private static async Task<List<long>> SelectAsync(ImapConnection c, CancellationToken ct)
    {
        await c.CommandAsync("SELECT INBOX", null, ct).ConfigureAwait(false);
        var untagged = new List<string>();
        await c.CommandAsync("UID FETCH 1:* (FLAGS)", untagged, ct).ConfigureAwait(false);
        var uids = new List<long>();
        foreach (var line in untagged)
        {
            var at = line.IndexOf("UID ", StringComparison.OrdinalIgnoreCase);
            if (line.Contains(" FETCH ", StringComparison.OrdinalIgnoreCase) && at >= 0)
            {
                var digits = line.AsSpan(at + 4);
                var end = 0;
                while (end < digits.Length && char.IsAsciiDigit(digits[end]))
                {
                    end++;
                }
                uids.Add(long.Parse(digits[..end], NumberStyles.None, Inv));
            }
        }
        return uids;
    }

    private static async Task RunOpAsync(ImapConnection c, Op op, Random rng, List<long> uids, List<string> untagged, CancellationToken ct)
    {
        var n = uids.Count;
        untagged.Clear();
        switch (op)
        {
            case Op.Select:
                await c.CommandAsync("SELECT INBOX", null, ct).ConfigureAwait(false);
                break;
            case Op.FetchFlags:
                await c.CommandAsync("UID FETCH 1:* (FLAGS)", null, ct).ConfigureAwait(false);
                break;
            case Op.FetchHeaders:
                {
                    var first = rng.Next(1, n + 1);
                    var last = Math.Min(n, first + 19);
                    await c.CommandAsync(string.Create(Inv, $"FETCH {first}:{last} (BODY.PEEK[HEADER.FIELDS (FROM SUBJECT DATE)])"), untagged, ct).ConfigureAwait(false);
                    ExpectFetches(untagged, last - first + 1, "FETCH headers");
                    break;
                }
            case Op.FetchBody:
                await c.CommandAsync(string.Create(Inv, $"FETCH {rng.Next(1, n + 1)} (BODY.PEEK[])"), untagged, ct).ConfigureAwait(false);
                ExpectFetches(untagged, 1, "FETCH BODY.PEEK[]");
                break;
            case Op.StoreSeen:
                await c.CommandAsync(string.Create(Inv, $"UID STORE {uids[rng.Next(n)]} +FLAGS (\\Seen)"), null, ct).ConfigureAwait(false);
                break;
            case Op.SearchUnseen:
                await c.CommandAsync("UID SEARCH UNSEEN", null, ct).ConfigureAwait(false);
                break;
            case Op.Noop:
                await c.CommandAsync("NOOP", null, ct).ConfigureAwait(false);
                break;
            case Op.Status:
                await c.CommandAsync("STATUS INBOX (MESSAGES UNSEEN)", null, ct).ConfigureAwait(false);
                break;
            case Op.List:
                await c.CommandAsync("LIST \"\" \"*\"", null, ct).ConfigureAwait(false);
                break;
        }
    }

    private static void ExpectFetches(List<string> untagged, int want, string what)
    {
        var got = untagged.Count(l => l.Contains(" FETCH ", StringComparison.OrdinalIgnoreCase) && l.Contains("BODY[", StringComparison.OrdinalIgnoreCase));
        if (got != want)
        {
            throw new ImapException($"{what}: {got} FETCH responses with a body section, expected {want}");
        }
    }

    // ---- idle ----------------------------------------------------------------------------

    private static async Task<int> IdleAsync(Options o, CancellationToken ct)
    {
        if (o.Pids.Count == 0)
        {
            throw new ImapException("idle needs --pid");
        }
        // Each user logs in once before the baseline: the first login of a user costs a
        // password hash (Argon2id, 19 MB, on the appliance) whose memory the process may keep
        // for a while. That is a per-user, not a per-connection, cost.
        for (int u = 0; u < Math.Min(o.Users, o.Connections); u++)
        {
            await using var warm = await ImapConnection.ConnectAsync(o.Host, o.Port, ct).ConfigureAwait(false);
            await warm.LoginAsync(User(o, u), o.Password, ct).ConfigureAwait(false);
            await warm.CommandAsync("LOGOUT", null, ct).ConfigureAwait(false);
        }
        var connections = new ImapConnection?[o.Connections];
        var tags = new string[o.Connections];
        var failed = 0;
        using var gate = new SemaphoreSlim(25);
        async Task OpenAsync(int from, int to) => await Task.WhenAll(Enumerable.Range(from, to - from).Select(async k =>
        {
            await gate.WaitAsync(ct).ConfigureAwait(false);
            try
            {
                var c = await ImapConnection.ConnectAsync(o.Host, o.Port, ct).ConfigureAwait(false);
                connections[k] = c;
                await c.LoginAsync(User(o, k), o.Password, ct).ConfigureAwait(false);
                await c.CommandAsync("SELECT INBOX", null, ct).ConfigureAwait(false);
                tags[k] = c.NextTag();
                await c.WriteAsync(tags[k] + " IDLE\r\n", ct).ConfigureAwait(false);
                await c.ReadContinuationAsync("IDLE", ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ImapException)
            {
                if (Interlocked.Increment(ref failed) <= 5)
                {
                    Console.Error.WriteLine($"ImapLoad idle: connection {k}: {e.Message}");
                }
            }
            finally
            {
                gate.Release();
            }
        })).ConfigureAwait(false);

        // The figure is the marginal cost: the first half of the connections is opened before
        // the baseline, so memory a process had already grown and freed (a garbage-collected
        // heap keeps it for reuse) is used up before the measured half arrives.
        int half = o.Connections / 2;
        var sw = Stopwatch.StartNew();
        await OpenAsync(0, half).ConfigureAwait(false);
        await Task.Delay(TimeSpan.FromSeconds(o.SettleSeconds), ct).ConfigureAwait(false);
        var before = ProcessMemory.Sum(o.Pids);
        int failedBefore = failed;
        await OpenAsync(half, o.Connections).ConfigureAwait(false);
        var setupSeconds = sw.Elapsed.TotalSeconds;
        await Task.Delay(TimeSpan.FromSeconds(o.SettleSeconds), ct).ConfigureAwait(false);
        var after = ProcessMemory.Sum(o.Pids);
        var idling = o.Connections - half - (failed - failedBefore);

        // End the IDLEs and log out (not measured; errors here do not change the figure).
        await Task.WhenAll(Enumerable.Range(0, o.Connections).Select(async k =>
        {
            var c = connections[k];
            if (c is null)
            {
                return;
            }
            try
            {
                if (tags[k] is not null)
                {
                    await c.WriteAsync("DONE\r\n", ct).ConfigureAwait(false);
                    await c.ReadTaggedAsync(tags[k], "IDLE", null, ct).ConfigureAwait(false);
                }
                await c.CommandAsync("LOGOUT", null, ct).ConfigureAwait(false);
            }
            catch (Exception e) when (e is IOException or System.Net.Sockets.SocketException or ImapException)
            {
            }
            finally
            {
                await c.DisposeAsync().ConfigureAwait(false);
            }
        })).ConfigureAwait(false);

        Console.WriteLine(string.Format(Inv,
            "mode=idle connections={0} failed={1} setup_seconds={2:F1} processes_before={3} processes_after={4} rss_before_kb={5} rss_after_kb={6} kb_per_connection={7:F1} pss_before_kb={8} pss_after_kb={9} pss_kb_per_connection={10:F1}",
            o.Connections, failed, setupSeconds, before.Processes, after.Processes, before.RssKb, after.RssKb,
            (after.RssKb - before.RssKb) / (double)Math.Max(1, idling), before.PssKb, after.PssKb,
            (after.PssKb - before.PssKb) / (double)Math.Max(1, idling)));
        return failed == 0 ? 0 : 1;
    }

    // ---- corpus: fill-maildir, append, search ---------------------------------------------

    private static int FillMaildir(Options o)
    {
        var dir = o.Dir ?? throw new ImapException("fill-maildir needs --dir");
        foreach (var sub in new[] { "cur", "new", "tmp" })
        {
            Directory.CreateDirectory(Path.Combine(dir, sub));
        }
        var sw = Stopwatch.StartNew();
        long bytes = 0;
        for (var i = 0; i < o.Messages; i++)
        {
            // Maildir files hold LF line ends, as an MDA writes them; S= is the file size.
            var text = Encoding.ASCII.GetString(Corpus.Message(i, o.User)).Replace("\r\n", "\n", StringComparison.Ordinal);
            var data = Encoding.ASCII.GetBytes(text);
            var name = string.Create(Inv, $"{1767225600 + i}.M{i}P1.bench,S={data.Length}:2,");
            File.WriteAllBytes(Path.Combine(dir, "cur", name), data);
            bytes += data.Length;
        }
        Console.WriteLine(string.Format(Inv, "mode=fill-maildir messages={0} bytes={1} hits={2} word={3} seconds={4:F1}",
            o.Messages, bytes, Corpus.Hits(o.Messages), Corpus.SearchWord, sw.Elapsed.TotalSeconds));
        return 0;
    }

    private static async Task<int> AppendAsync(Options o, CancellationToken ct)
    {
        // --sessions connections append message i where i % sessions == s, so a server that
        // commits concurrent appends together is not held to one fsync per message.
        var sw = Stopwatch.StartNew();
        var literalPlus = new bool[o.Sessions];
        await Task.WhenAll(Enumerable.Range(0, o.Sessions).Select(s => Task.Run(async () =>
        {
            var mine = Enumerable.Range(0, o.Messages).Where(i => i % o.Sessions == s).ToArray();
            await using var c = await ImapConnection.ConnectAsync(o.Host, o.Port, ct).ConfigureAwait(false);
            await c.LoginAsync(o.User, o.Password, ct).ConfigureAwait(false);
            literalPlus[s] = c.LiteralPlus && !o.SyncLiterals;
            await AppendSessionAsync(c, literalPlus[s], mine, o.User, ct).ConfigureAwait(false);
            await c.CommandAsync("LOGOUT", null, ct).ConfigureAwait(false);
        }, ct))).ConfigureAwait(false);
        Console.WriteLine(string.Format(Inv, "mode=append messages={0} sessions={1} literal_plus={2} seconds={3:F1} rate={4:F1}",
            o.Messages, o.Sessions, literalPlus.All(x => x) ? "yes" : "no", sw.Elapsed.TotalSeconds, o.Messages / sw.Elapsed.TotalSeconds));
        return 0;
    }

    /// <summary>
    /// APPENDs the given corpus messages to INBOX: with LITERAL+ 100 at a time in one write,
    /// then their 100 tagged replies; otherwise one synchronizing literal after another.
    /// </summary>
    private static async Task AppendSessionAsync(ImapConnection c, bool literalPlus, int[] messages, string to, CancellationToken ct)
    {
        const int Batch = 100;
        var tags = new List<string>(Batch);
        var buffer = new MemoryStream();
        for (var first = 0; first < messages.Length; first += Batch)
        {
            var batch = messages.AsSpan(first, Math.Min(Batch, messages.Length - first)).ToArray();
            if (literalPlus)
            {
                tags.Clear();
                buffer.SetLength(0);
                foreach (var i in batch)
                {
                    var message = Corpus.Message(i, to);
                    var tag = c.NextTag();
                    tags.Add(tag);
                    buffer.Write(Encoding.ASCII.GetBytes(string.Create(Inv, $"{tag} APPEND INBOX {{{message.Length}+}}\r\n")));
                    buffer.Write(message);
                    buffer.Write("\r\n"u8);
                }
                await c.WriteAsync(buffer.GetBuffer().AsMemory(0, (int)buffer.Length), ct).ConfigureAwait(false);
                foreach (var tag in tags)
                {
                    await c.ReadTaggedAsync(tag, "APPEND", null, ct).ConfigureAwait(false);
                }
            }
            else
            {
                foreach (var i in batch)
                {
                    var message = Corpus.Message(i, to);
                    var tag = c.NextTag();
                    await c.WriteAsync(string.Create(Inv, $"{tag} APPEND INBOX {{{message.Length}}}\r\n"), ct).ConfigureAwait(false);
                    await c.ReadContinuationAsync("APPEND", ct).ConfigureAwait(false);
                    await c.WriteAsync(message, ct).ConfigureAwait(false);
                    await c.WriteAsync("\r\n", ct).ConfigureAwait(false);
                    await c.ReadTaggedAsync(tag, "APPEND", null, ct).ConfigureAwait(false);
                }
            }
        }
    }

    /// <summary>
    /// Messages found: the numbers of "* SEARCH n n ..." or, from a server answering
    /// IMAP4rev2-style, the ALL set of "* ESEARCH (TAG "x") UID ALL 1:3,7".
    /// </summary>
    private static int CountSearchHits(List<string> untagged)
    {
        var hits = 0;
        foreach (var line in untagged)
        {
            var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length >= 2 && parts[1].Equals("SEARCH", StringComparison.OrdinalIgnoreCase))
            {
                hits += parts.Length - 2;
            }
            else if (parts.Length >= 2 && parts[1].Equals("ESEARCH", StringComparison.OrdinalIgnoreCase))
            {
                var all = Array.FindIndex(parts, p => p.Equals("ALL", StringComparison.OrdinalIgnoreCase));
                if (all > 0 && all + 1 < parts.Length)
                {
                    foreach (var range in parts[all + 1].Split(','))
                    {
                        var ends = range.Split(':');
                        hits += ends.Length == 1 ? 1 : (int)Math.Abs(long.Parse(ends[1], Inv) - long.Parse(ends[0], Inv)) + 1;
                    }
                }
            }
        }
        return hits;
    }

    private static async Task<int> SearchAsync(Options o, CancellationToken ct)
    {
        await using var c = await ImapConnection.ConnectAsync(o.Host, o.Port, ct).ConfigureAwait(false);
        await c.LoginAsync(o.User, o.Password, ct).ConfigureAwait(false);
        var untagged = new List<string>();
        var sw = Stopwatch.StartNew();
        await c.CommandAsync("SELECT INBOX", untagged, ct).ConfigureAwait(false);
        var selectMs = sw.Elapsed.TotalMilliseconds;
        var exists = untagged.Select(l => l.Split(' ')).Where(p => p.Length >= 3 && p[0] == "*" && p[2].Equals("EXISTS", StringComparison.OrdinalIgnoreCase))
            .Select(p => int.Parse(p[1], NumberStyles.None, Inv)).DefaultIfEmpty(-1).Last();
        if (exists != o.Messages)
        {
            throw new ImapException($"INBOX of {o.User} has {exists} messages, expected {o.Messages}");
        }
        var want = Corpus.Hits(o.Messages);
        var command = "UID SEARCH TEXT " + ImapConnection.Quote(Corpus.SearchWord);
        var times = new List<double>();
        for (var run = 0; run <= o.Runs; run++)
        {
            untagged.Clear();
            sw.Restart();
            await c.CommandAsync(command, untagged, ct).ConfigureAwait(false);
            var ms = sw.Elapsed.TotalMilliseconds;
            var hits = CountSearchHits(untagged);
            if (hits != want)
            {
                throw new ImapException($"{command} found {hits} messages, expected {want}");
            }
            if (run > 0)
            {
                times.Add(ms);
            }
            else
            {
                Console.Error.WriteLine(string.Format(Inv, "ImapLoad search: SELECT {0:F0} ms, warm-up search {1:F0} ms", selectMs, ms));
            }
        }
        await c.CommandAsync("LOGOUT", null, ct).ConfigureAwait(false);
        var sorted = times.Order().ToArray();
        Console.WriteLine(string.Format(Inv, "mode=search messages={0} word={1} hits={2} median_ms={3:F1} runs_ms={4}",
            o.Messages, Corpus.SearchWord, want, sorted[sorted.Length / 2], string.Join(',', times.Select(t => t.ToString("F1", Inv)))));
        return 0;
    }
}
