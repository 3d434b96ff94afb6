// SmtpSink: the receiving end of `build.ps1 bench`'s relay figure (relay_throughput): the
// smart host both relays (the appliance, Postfix) hand their outgoing mail to.
//
// Implementation notes
// - SMTP on --host:--port (127.0.0.1): every message is accepted and dropped once read
//   (SinkSession.cs); nothing touches the disk, so the sink does none of the work a relay
//   waits on and is not the bottleneck.
// - Each message is counted once by its Message-ID: a second arrival of the same id is a
//   duplicate (a relay delivers at least once, and retries after a session lost after DATA).
//   A message without a Message-ID counts as new every time.
// - A control port (--control) answers one request line per connection with one line of
//   counters, `messages=M unique=U duplicates=D recipients=R sessions=S`:
//     count              the counters now
//     wait N SECONDS     the counters once U >= N, or when SECONDS have passed
// - The counters are printed to stdout again when the process ends (SIGTERM, Ctrl+C).
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;

namespace SmtpSink;

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
            Console.Error.WriteLine($"SmtpSink: {e.Message}");
            Console.Error.WriteLine(Options.Usage);
            return 2;
        }

        var counters = new Counters();
        var address = IPAddress.Parse(o.Host);
        var smtp = new TcpListener(address, o.Port);
        var control = new TcpListener(address, o.Control);
        smtp.Start(512);
        control.Start(16);
        using var term = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        void Stop(PosixSignalContext context)
        {
            Console.WriteLine($"final {counters.Line()}");
            context.Cancel = true;
            Environment.Exit(0);
        }
        Console.WriteLine($"listening smtp={o.Host}:{o.Port} control={o.Host}:{o.Control}");

        var controlLoop = AcceptLoopAsync(control, socket => ControlAsync(socket, counters));
        var smtpLoop = AcceptLoopAsync(smtp, socket => new SinkSession(socket, counters, o.Hostname).RunAsync());
        await Task.WhenAll(controlLoop, smtpLoop).ConfigureAwait(false);
        return 0;
    }

    private static async Task AcceptLoopAsync(TcpListener listener, Func<Socket, Task> handle)
    {
        while (true)
        {
            var socket = await listener.AcceptSocketAsync().ConfigureAwait(false);
            socket.NoDelay = true;
            _ = Task.Run(async () =>
            {
                try
                {
                    await handle(socket).ConfigureAwait(false);
                }
                catch (Exception e) when (e is IOException or SocketException or OperationCanceledException)
                {
                    // The peer went away or idled out: nothing to count.
                }
                finally
                {
                    socket.Dispose();
                }
            });
        }
    }

    private static async Task ControlAsync(Socket socket, Counters counters)
    {
        using var stream = new NetworkStream(socket, ownsSocket: false);
        using var reader = new StreamReader(stream, Encoding.ASCII, false, 256, leaveOpen: true);
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(10));
        var request = (await reader.ReadLineAsync(timeout.Token).ConfigureAwait(false) ?? "").Split(' ', StringSplitOptions.RemoveEmptyEntries);
        string reply;
        if (request is ["count"])
        {
            reply = counters.Line();
        }
        else if (request is ["wait", var n, var s]
            && long.TryParse(n, NumberStyles.None, CultureInfo.InvariantCulture, out var target)
            && int.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out var seconds))
        {
            await counters.WaitAsync(target, TimeSpan.FromSeconds(seconds)).ConfigureAwait(false);
            reply = counters.Line();
        }
        else
        {
            reply = "error usage: count | wait N SECONDS";
        }
        await stream.WriteAsync(Encoding.ASCII.GetBytes(reply + "\n")).ConfigureAwait(false);
    }
}

/// <summary>What has arrived; one lock, taken once per message.</summary>
internal sealed class Counters
{
    private readonly object _gate = new();
    private readonly HashSet<string> _ids = new(StringComparer.Ordinal);
    private readonly List<(long Target, TaskCompletionSource Done)> _waiters = [];
    private long _messages;
    private long _unique;
    private long _recipients;
    private long _sessions;

    public void Session() => Interlocked.Increment(ref _sessions);

    public void Message(string? messageId, int recipients)
    {
        lock (_gate)
        {
            _messages++;
            _recipients += recipients;
            if (messageId is null || _ids.Add(messageId))
            {
                _unique++;
            }
            _waiters.RemoveAll(w =>
            {
                if (_unique < w.Target)
                {
                    return false;
                }
                w.Done.TrySetResult();
                return true;
            });
        }
    }

    public async Task WaitAsync(long target, TimeSpan timeout)
    {
        var done = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            if (_unique >= target)
            {
                return;
            }
            _waiters.Add((target, done));
        }
        await Task.WhenAny(done.Task, Task.Delay(timeout)).ConfigureAwait(false);
        lock (_gate)
        {
            _waiters.RemoveAll(w => w.Done == done);
        }
    }

    public string Line()
    {
        lock (_gate)
        {
            return string.Create(CultureInfo.InvariantCulture,
                $"messages={_messages} unique={_unique} duplicates={_messages - _unique} recipients={_recipients} sessions={Interlocked.Read(ref _sessions)}");
        }
    }
}

internal sealed class Options
{
    public const string Usage = "usage: SmtpSink --port N --control N [--host 127.0.0.1] [--hostname sink.bench]";

    public string Host { get; private set; } = "127.0.0.1";
    public int Port { get; private set; }
    public int Control { get; private set; }
    public string Hostname { get; private set; } = "sink.bench";

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
                case "--port": o.Port = PortNumber(key, v); break;
                case "--control": o.Control = PortNumber(key, v); break;
                case "--hostname": o.Hostname = v; break;
                default: throw new ArgumentException($"unknown option {key}");
            }
        }
        if (o.Port == 0 || o.Control == 0)
        {
            throw new ArgumentException("--port and --control are required");
        }
        if (!IPAddress.TryParse(o.Host, out var address) || !IPAddress.IsLoopback(address))
        {
            throw new ArgumentException($"--host must be a loopback address, got '{o.Host}'");
        }
        return o;
    }

    private static int PortNumber(string key, string v) =>
        int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n is > 0 and < 65536
            ? n
            : throw new ArgumentException($"{key} needs a port number, got '{v}'");
}
