// A minimal IMAP client over a raw socket: tagged commands, a buffered line reader that
// skips literals ({n} at the end of a line, then n bytes), nothing parsed beyond what
// the bench needs. The same code talks to every server, so its overhead cancels out.
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace ImapLoad;

internal sealed class ImapException(string message) : Exception(message);

internal sealed class ImapConnection : IAsyncDisposable
{
    private readonly Socket _socket;
    private readonly NetworkStream _stream;
    private readonly byte[] _buffer = new byte[64 * 1024];
    private int _start;
    private int _end;
    private int _tag;

    private ImapConnection(Socket socket)
    {
        _socket = socket;
        _stream = new NetworkStream(socket, ownsSocket: true);
    }

    public bool LiteralPlus { get; private set; }

    /// <summary>Connects and reads the greeting (the first untagged OK).</summary>
    public static async Task<ImapConnection> ConnectAsync(string host, int port, CancellationToken ct)
    {
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(host, port, ct).ConfigureAwait(false);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
        var c = new ImapConnection(socket);
        var greeting = await c.ReadLineAsync(ct).ConfigureAwait(false);
        if (!greeting.StartsWith("* OK", StringComparison.Ordinal) && !greeting.StartsWith("* PREAUTH", StringComparison.Ordinal))
        {
            await c.DisposeAsync().ConfigureAwait(false);
            throw new ImapException($"greeting: {greeting}");
        }
        c.NoteCapabilities(greeting);
        return c;
    }

    /// <summary>LOGIN with quoted user and password; fails unless the server answers OK.</summary>
    public async Task LoginAsync(string user, string password, CancellationToken ct)
    {
        await CommandAsync($"LOGIN {Quote(user)} {Quote(password)}", null, ct).ConfigureAwait(false);
        if (!LiteralPlus)
        {
            await CommandAsync("CAPABILITY", null, ct).ConfigureAwait(false);
        }
    }

    /// <summary>
    /// Sends one command and reads up to its tagged reply; untagged lines (literals left out)
    /// go to <paramref name="untagged"/> when given. Throws unless the reply is OK.
    /// </summary>
    public async Task<string> CommandAsync(string command, List<string>? untagged, CancellationToken ct)
    {
        var tag = NextTag();
        await WriteAsync(tag + " " + command + "\r\n", ct).ConfigureAwait(false);
        return await ReadTaggedAsync(tag, command, untagged, ct).ConfigureAwait(false);
    }

    public string NextTag() => "a" + (++_tag).ToString(CultureInfo.InvariantCulture);

    public async Task WriteAsync(string text, CancellationToken ct) =>
        await _stream.WriteAsync(Encoding.ASCII.GetBytes(text), ct).ConfigureAwait(false);

    public async Task WriteAsync(ReadOnlyMemory<byte> bytes, CancellationToken ct) =>
        await _stream.WriteAsync(bytes, ct).ConfigureAwait(false);

    /// <summary>Reads lines until the one tagged <paramref name="tag"/>; throws unless it is OK.</summary>
    public async Task<string> ReadTaggedAsync(string tag, string what, List<string>? untagged, CancellationToken ct)
    {
        while (true)
        {
            var line = await ReadLineAsync(ct).ConfigureAwait(false);
            if (line.StartsWith(tag, StringComparison.Ordinal) && line.Length > tag.Length && line[tag.Length] == ' ')
            {
                var status = line.AsSpan(tag.Length + 1);
                if (!status.StartsWith("OK", StringComparison.OrdinalIgnoreCase))
                {
                    throw new ImapException($"{Shorten(what)}: {line}");
                }
                NoteCapabilities(line);
                return line;
            }
            if (line.StartsWith("* CAPABILITY", StringComparison.OrdinalIgnoreCase))
            {
                NoteCapabilities(line);
            }
            untagged?.Add(line);
        }
    }

    /// <summary>Reads until a continuation request ("+ ..."), e.g. after IDLE or a synchronizing literal.</summary>
    public async Task ReadContinuationAsync(string what, CancellationToken ct)
    {
        while (true)
        {
            var line = await ReadLineAsync(ct).ConfigureAwait(false);
            if (line.StartsWith('+'))
            {
                return;
            }
            if (!line.StartsWith('*'))
            {
                throw new ImapException($"{what}: expected a continuation, got {line}");
            }
        }
    }

    /// <summary>
    /// One logical response line without CRLF. A literal at the end of a physical line is
    /// skipped (its bytes are not kept) and replaced by "{n}", and the line goes on.
    /// </summary>
    public async Task<string> ReadLineAsync(CancellationToken ct)
    {
        var sb = new StringBuilder();
        while (true)
        {
            var physical = await ReadPhysicalLineAsync(ct).ConfigureAwait(false);
            sb.Append(physical);
            var n = LiteralSize(physical);
            if (n < 0)
            {
                return sb.ToString();
            }
            await SkipAsync(n, ct).ConfigureAwait(false);
        }
    }

    private static long LiteralSize(string line)
    {
        if (!line.EndsWith('}'))
        {
            return -1;
        }
        var open = line.LastIndexOf('{');
        if (open < 0)
        {
            return -1;
        }
        var digits = line.AsSpan(open + 1, line.Length - open - 2).TrimEnd('+');
        return long.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out var n) ? n : -1;
    }

    private async Task<string> ReadPhysicalLineAsync(CancellationToken ct)
    {
        StringBuilder? longLine = null;
        while (true)
        {
            var i = Array.IndexOf(_buffer, (byte)'\n', _start, _end - _start);
            if (i >= 0)
            {
                var len = i - _start;
                if (len > 0 && _buffer[i - 1] == '\r')
                {
                    len--;
                }
                var text = Encoding.Latin1.GetString(_buffer, _start, len);
                _start = i + 1;
                return longLine is null ? text : longLine.Append(text).ToString();
            }
            if (_start > 0 || _end == _buffer.Length)
            {
                if (_end - _start == _buffer.Length)
                {
                    // A line longer than the buffer (e.g. UID SEARCH results): keep what we have.
                    // The last byte may be the CR of CRLF; keep it for the next round.
                    longLine ??= new StringBuilder();
                    longLine.Append(Encoding.Latin1.GetString(_buffer, _start, _end - _start - 1));
                    _buffer[0] = _buffer[_end - 1];
                    _start = 0;
                    _end = 1;
                }
                else
                {
                    Buffer.BlockCopy(_buffer, _start, _buffer, 0, _end - _start);
                    _end -= _start;
                    _start = 0;
                }
            }
            await FillAsync(ct).ConfigureAwait(false);
        }
    }

    private async Task SkipAsync(long n, CancellationToken ct)
    {
        while (n > 0)
        {
            if (_start == _end)
            {
                _start = _end = 0;
                await FillAsync(ct).ConfigureAwait(false);
            }
            var take = (int)Math.Min(n, _end - _start);
            _start += take;
            n -= take;
        }
    }

    private async Task FillAsync(CancellationToken ct)
    {
        var read = await _stream.ReadAsync(_buffer.AsMemory(_end), ct).ConfigureAwait(false);
        if (read == 0)
        {
            throw new IOException("connection closed by server");
        }
        _end += read;
    }

    private void NoteCapabilities(string line)
    {
        if (line.Contains("LITERAL+", StringComparison.OrdinalIgnoreCase))
        {
            LiteralPlus = true;
        }
    }

    public static string Quote(string s) => "\"" + s.Replace("\\", "\\\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal) + "\"";

    private static string Shorten(string command) =>
        command.StartsWith("LOGIN ", StringComparison.OrdinalIgnoreCase) ? "LOGIN" : command.Length > 60 ? command[..60] : command;

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync().ConfigureAwait(false);
        _socket.Dispose();
    }
}
