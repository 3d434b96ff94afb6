// SmtpLoad: SMTP ingest load generator for `build.ps1 bench`.
//
// Implementation notes
// - N parallel sessions, one TCP connection each: EHLO once, then per message
//   MAIL FROM / RCPT TO / DATA / "." and RSET between messages, QUIT at the end.
//   No PIPELINING: every command waits for its reply, the same for every server.
// - Message i goes to u{(i % mailboxes) + 1}@domain; messages are built up front
//   (size bytes each, CRLF lines, no line starts with '.'), so the clock measures
//   the server, not the generator. With --corpus, message i is instead ImapLoad's
//   search corpus message i (bench/ImapLoad/Corpus.cs), and --to sends every message
//   to one address (how the appliance's search folder is filled).
// - The clock runs from the first connect until every session has its last 250
//   and, with --wait-maildir, until the maildir tree under that directory holds
//   --expect files (for servers that answer 250 before delivery, e.g. Postfix), or,
//   with --wait-sink, until bench/SmtpSink (its control port) has --expect distinct
//   messages (for relaying: the 250 only means queued, the sink is the destination).
// - Output is one line of key=value pairs; exit 0 only if every message got 250
//   (and, with --wait-maildir, was seen delivered in time).
using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace SmtpLoad;

internal static class Program
{
    private static async Task<int> Main(string[] args)
    {
        Options o;
        try
        {
            o = Options.Parse(args);
        }
        catch (ArgumentException e)
        {
            Console.Error.WriteLine($"SmtpLoad: {e.Message}");
            Console.Error.WriteLine(Options.Usage);
            return 2;
        }

        var messages = BuildMessages(o);
        using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(o.TimeoutSeconds));
        var failures = 0;
        var sw = Stopwatch.StartNew();
        var sessions = Enumerable.Range(0, o.Sessions).Select(s => Task.Run(async () =>
        {
            var mine = Enumerable.Range(0, o.Messages).Where(i => i % o.Sessions == s).ToArray();
            var failed = await RunSessionAsync(o, mine, messages, cts.Token).ConfigureAwait(false);
            Interlocked.Add(ref failures, failed);
        })).ToArray();
        await Task.WhenAll(sessions).ConfigureAwait(false);
        var acceptedSeconds = sw.Elapsed.TotalSeconds;

        var delivered = -1;
        var waitFailed = false;
        if (o.WaitSink is not null)
        {
            var expect = o.Expect ?? (o.Messages - failures);
            delivered = await WaitSinkAsync(o.WaitSink, expect, o.WaitTimeoutSeconds).ConfigureAwait(false);
            if (delivered < expect)
            {
                Console.Error.WriteLine($"SmtpLoad: the sink has only {delivered} of {expect} messages after {o.WaitTimeoutSeconds} s");
                waitFailed = true;
            }
        }
        else if (o.WaitMaildir is not null)
        {
            var expect = o.Expect ?? (o.Messages - failures);
            var deadline = sw.Elapsed + TimeSpan.FromSeconds(o.WaitTimeoutSeconds);
            while (true)
            {
                delivered = CountMaildirFiles(o.WaitMaildir);
                if (delivered >= expect)
                {
                    break;
                }
                if (sw.Elapsed > deadline)
                {
                    Console.Error.WriteLine($"SmtpLoad: only {delivered} of {expect} messages delivered after {o.WaitTimeoutSeconds} s");
                    waitFailed = true;
                    break;
                }
                await Task.Delay(10).ConfigureAwait(false);
            }
        }
        sw.Stop();

        var seconds = sw.Elapsed.TotalSeconds;
        var ok = o.Messages - failures;
        var inv = CultureInfo.InvariantCulture;
        Console.WriteLine(string.Format(inv,
            "sent={0} failed={1} accepted_seconds={2:F3} delivered={3} seconds={4:F3} rate={5:F1}",
            ok, failures, acceptedSeconds, delivered, seconds, ok / seconds));
        return failures == 0 && !waitFailed ? 0 : 1;
    }

    private static byte[][] BuildMessages(Options o)
    {
        var result = new byte[o.Messages][];
        if (o.Corpus)
        {
            // Corpus lines are words of letters: none starts with '.', no dot-stuffing needed.
            for (var i = 0; i < o.Messages; i++)
            {
                result[i] = [.. ImapLoad.Corpus.Message(i, Recipient(o, i)), .. ".\r\n"u8];
            }
            return result;
        }
        var filler = "The quick brown fox jumps over the lazy dog 0123456789 abcdefghijklmnopqrstu";
        for (var i = 0; i < o.Messages; i++)
        {
            var rcpt = Recipient(o, i);
            var sb = new StringBuilder(o.Size + 256);
            sb.Append("From: Load Generator <").Append(o.From).Append(">\r\n");
            sb.Append("To: <").Append(rcpt).Append(">\r\n");
            sb.Append("Subject: bench message ").Append(i.ToString(CultureInfo.InvariantCulture)).Append("\r\n");
            sb.Append("Date: ").Append(DateTimeOffset.UtcNow.ToString("ddd, dd MMM yyyy HH:mm:ss +0000", CultureInfo.InvariantCulture)).Append("\r\n");
            sb.Append("Message-ID: <bench.").Append(i.ToString(CultureInfo.InvariantCulture)).Append('.')
              .Append(Guid.NewGuid().ToString("N")).Append("@load.test>\r\n");
            sb.Append("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n");
            while (sb.Length < o.Size - 80)
            {
                sb.Append(filler).Append("\r\n");
            }
            while (sb.Length < o.Size - 2)
            {
                sb.Append('x');
            }
            sb.Append("\r\n.\r\n");
            result[i] = Encoding.ASCII.GetBytes(sb.ToString());
        }
        return result;
    }

    private static string Recipient(Options o, int i) =>
        o.To ?? string.Create(CultureInfo.InvariantCulture, $"{o.UserPrefix}{(i % o.Mailboxes) + 1}@{o.Domain}");

    /// <summary>Sends the given messages over one connection; returns how many failed.</summary>
    private static async Task<int> RunSessionAsync(Options o, int[] indexes, byte[][] messages, CancellationToken ct)
    {
        var failed = 0;
        var done = 0;
        try
        {
            using var client = new TcpClient { NoDelay = true };
            await client.ConnectAsync(o.Host, o.Port, ct).ConfigureAwait(false);
            var stream = client.GetStream();
            using var reader = new StreamReader(stream, Encoding.ASCII, false, 4096, leaveOpen: true);
            async Task<int> Reply()
            {
                while (true)
                {
                    var line = await reader.ReadLineAsync(ct).ConfigureAwait(false)
                        ?? throw new IOException("connection closed by server");
                    if (line.Length < 3 || !int.TryParse(line.AsSpan(0, 3), NumberStyles.None, CultureInfo.InvariantCulture, out var code))
                    {
                        throw new IOException($"bad reply: {line}");
                    }
                    if (line.Length == 3 || line[3] == ' ')
                    {
                        return code;
                    }
                }
            }
            async Task<int> Command(string cmd)
            {
                await stream.WriteAsync(Encoding.ASCII.GetBytes(cmd + "\r\n"), ct).ConfigureAwait(false);
                return await Reply().ConfigureAwait(false);
            }

            Expect(await Reply().ConfigureAwait(false), 220, "banner");
            Expect(await Command("EHLO load.test").ConfigureAwait(false), 250, "EHLO");
            var first = true;
            foreach (var i in indexes)
            {
                if (!first)
                {
                    Expect(await Command("RSET").ConfigureAwait(false), 250, "RSET");
                }
                first = false;
                var step = "MAIL";
                try
                {
                    Expect(await Command($"MAIL FROM:<{o.From}>").ConfigureAwait(false), 250, step);
                    step = "RCPT";
                    Expect(await Command($"RCPT TO:<{Recipient(o, i)}>").ConfigureAwait(false), 250, step);
                    step = "DATA";
                    Expect(await Command("DATA").ConfigureAwait(false), 354, step);
                    step = "end of data";
                    await stream.WriteAsync(messages[i], ct).ConfigureAwait(false);
                    Expect(await Reply().ConfigureAwait(false), 250, step);
                }
                catch (ReplyException e)
                {
                    failed++;
                    Report(e.Message);
                }
                done++;
            }
            await Command("QUIT").ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or SocketException or ReplyException or OperationCanceledException)
        {
            Report($"session aborted after {done} messages: {e.Message}");
            failed += indexes.Length - done;
        }
        return failed;
    }

    private static int _reported;

    private static void Report(string message)
    {
        if (Interlocked.Increment(ref _reported) <= 5)
        {
            Console.Error.WriteLine($"SmtpLoad: {message}");
        }
    }

    private static void Expect(int got, int want, string step)
    {
        if (got != want)
        {
            throw new ReplyException($"{step}: expected {want}, got {got}");
        }
    }

    /// <summary>
    /// Asks SmtpSink's control port to answer once it holds <paramref name="expect"/> distinct
    /// messages (or the time is up); returns how many it holds then (-1 when it cannot be asked).
    /// </summary>
    private static async Task<int> WaitSinkAsync(string endpoint, int expect, int seconds)
    {
        var colon = endpoint.LastIndexOf(':');
        try
        {
            using var client = new TcpClient { NoDelay = true };
            await client.ConnectAsync(endpoint[..colon], int.Parse(endpoint[(colon + 1)..], CultureInfo.InvariantCulture)).ConfigureAwait(false);
            var stream = client.GetStream();
            await stream.WriteAsync(Encoding.ASCII.GetBytes(string.Create(CultureInfo.InvariantCulture, $"wait {expect} {seconds}\n"))).ConfigureAwait(false);
            using var reader = new StreamReader(stream, Encoding.ASCII);
            var line = await reader.ReadLineAsync().ConfigureAwait(false) ?? "";
            Console.Error.WriteLine($"SmtpLoad: sink: {line}");
            foreach (var pair in line.Split(' '))
            {
                if (pair.StartsWith("unique=", StringComparison.Ordinal))
                {
                    return int.Parse(pair["unique=".Length..], CultureInfo.InvariantCulture);
                }
            }
            return -1;
        }
        catch (Exception e) when (e is IOException or SocketException or FormatException)
        {
            Console.Error.WriteLine($"SmtpLoad: sink at {endpoint}: {e.Message}");
            return -1;
        }
    }

    /// <summary>Counts delivered messages: files in directories named new or cur under root.</summary>
    private static int CountMaildirFiles(string root)
    {
        if (!Directory.Exists(root))
        {
            return 0;
        }
        var n = 0;
        var opts = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = 0 };
        foreach (var dir in Directory.EnumerateDirectories(root, "*", opts))
        {
            var name = Path.GetFileName(dir);
            if (name is "new" or "cur")
            {
                n += Directory.EnumerateFiles(dir).Count();
            }
        }
        return n;
    }

    private sealed class ReplyException(string message) : Exception(message);
}

internal sealed class Options
{
    public const string Usage =
        "usage: SmtpLoad --port N [--host 127.0.0.1] [--sessions 10] [--messages 2000] [--size 4096]\n" +
        "                [--domain bench.test] [--mailboxes 10] [--user-prefix u] [--from load@load.test]\n" +
        "                [--wait-maildir DIR | --wait-sink HOST:CONTROLPORT] [--expect N] [--wait-timeout 120]\n" +
        "                [--corpus yes] [--to ADDRESS]";

    public string Host { get; private set; } = "127.0.0.1";
    public int Port { get; private set; }
    public int Sessions { get; private set; } = 10;
    public int Messages { get; private set; } = 2000;
    public int Size { get; private set; } = 4096;
    public string Domain { get; private set; } = "bench.test";
    public int Mailboxes { get; private set; } = 10;
    public string UserPrefix { get; private set; } = "u";
    public string From { get; private set; } = "load@load.test";
    public string? WaitMaildir { get; private set; }
    /// <summary>SmtpSink's control endpoint, host:port: wait until it holds --expect messages.</summary>
    public string? WaitSink { get; private set; }
    /// <summary>Send ImapLoad's search corpus instead of filler messages (--size is ignored).</summary>
    public bool Corpus { get; private set; }
    /// <summary>Every message to this address instead of u1..uN.</summary>
    public string? To { get; private set; }
    public int? Expect { get; private set; }
    public int WaitTimeoutSeconds { get; private set; } = 120;
    /// <summary>Upper bound for the sending phase; sessions still running are aborted.</summary>
    public int TimeoutSeconds { get; private set; } = 300;

    public static Options Parse(string[] args)
    {
        var o = new Options();
        for (var i = 0; i < args.Length; i++)
        {
            var key = args[i];
            if (i + 1 >= args.Length)
            {
                throw new ArgumentException($"missing value for {key}");
            }
            var v = args[++i];
            switch (key)
            {
                case "--host": o.Host = v; break;
                case "--port": o.Port = Int(key, v, 1); break;
                case "--sessions": o.Sessions = Int(key, v, 1); break;
                case "--messages": o.Messages = Int(key, v, 1); break;
                case "--size": o.Size = Int(key, v, 512); break;
                case "--domain": o.Domain = v; break;
                case "--mailboxes": o.Mailboxes = Int(key, v, 1); break;
                case "--user-prefix": o.UserPrefix = v; break;
                case "--from": o.From = v; break;
                case "--wait-maildir": o.WaitMaildir = v; break;
                case "--wait-sink": o.WaitSink = v.LastIndexOf(':') > 0 ? v : throw new ArgumentException("--wait-sink needs host:port"); break;
                case "--expect": o.Expect = Int(key, v, 0); break;
                case "--wait-timeout": o.WaitTimeoutSeconds = Int(key, v, 1); break;
                case "--timeout": o.TimeoutSeconds = Int(key, v, 1); break;
                case "--corpus": o.Corpus = v == "yes" || (v == "no" ? false : throw new ArgumentException("--corpus needs yes or no")); break;
                case "--to": o.To = v; break;
                default: throw new ArgumentException($"unknown option {key}");
            }
        }
        if (o.Port == 0)
        {
            throw new ArgumentException("--port is required");
        }
        return o;
    }

    private static int Int(string key, string v, int min) =>
        int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min
            ? n
            : throw new ArgumentException($"{key} needs an integer >= {min}, got '{v}'");
}
