// One SMTP session of the sink (RFC 5321 server side, the least a relay needs).
//
// Implementation notes
// - EHLO advertises PIPELINING, SIZE and 8BITMIME; no STARTTLS, CHUNKING nor DSN, so every
//   client talks plain ESMTP with DATA. Replies are collected and written when no complete
//   line is left in the input (RFC 2920 §3.1): a pipelined MAIL/RCPT/DATA group is answered
//   in one write, a client waiting for one reply gets it at once.
// - After DATA every line is read up to the "." line before the 250 is sent; the message is
//   not kept, only its Message-ID (for the duplicate count) is taken from the header.
// - Bounded: 64 kB input buffer (a longer command line ends the session; a longer message
//   line is skipped over), 5 minutes of silence end the session.
using System.Globalization;
using System.Net.Sockets;
using System.Text;

namespace SmtpSink;

internal sealed class SinkSession(Socket socket, Counters counters, string hostname)
{
    private static readonly TimeSpan IdleTimeout = TimeSpan.FromMinutes(5);
    private readonly byte[] _input = new byte[64 * 1024];
    private readonly MemoryStream _output = new();
    private int _start;
    private int _end;

    // Transaction state.
    private bool _mail;
    private int _recipients;
    private bool _data;
    private bool _headers;
    private bool _inMessageId;
    private bool _midLine;
    private StringBuilder? _messageId;
    private long _accepted;

    public async Task RunAsync()
    {
        counters.Session();
        using var stream = new NetworkStream(socket, ownsSocket: false);
        Reply($"220 {hostname} ESMTP SmtpSink");
        while (true)
        {
            var lf = Array.IndexOf(_input, (byte)'\n', _start, _end - _start);
            if (lf < 0)
            {
                if (_output.Length > 0)
                {
                    await stream.WriteAsync(_output.GetBuffer().AsMemory(0, (int)_output.Length)).ConfigureAwait(false);
                    _output.SetLength(0);
                }
                if (_start > 0)
                {
                    Buffer.BlockCopy(_input, _start, _input, 0, _end - _start);
                    _end -= _start;
                    _start = 0;
                }
                if (_end == _input.Length)
                {
                    if (!_data)
                    {
                        Reply("500 5.5.2 Line too long");
                        await stream.WriteAsync(_output.GetBuffer().AsMemory(0, (int)_output.Length)).ConfigureAwait(false);
                        return;
                    }
                    // A message line longer than the buffer: neither a header of ours nor the end.
                    _end = 0;
                    _midLine = true;
                }
                using var idle = new CancellationTokenSource(IdleTimeout);
                var n = await stream.ReadAsync(_input.AsMemory(_end), idle.Token).ConfigureAwait(false);
                if (n == 0)
                {
                    return;
                }
                _end += n;
                continue;
            }
            var line = _input.AsSpan(_start, lf - _start + 1);
            _start = lf + 1;
            if (_data)
            {
                DataLine(line);
                _midLine = false;
            }
            else if (!Command(line))
            {
                await stream.WriteAsync(_output.GetBuffer().AsMemory(0, (int)_output.Length)).ConfigureAwait(false);
                return;
            }
        }
    }

    private void DataLine(ReadOnlySpan<byte> line)
    {
        if (_midLine)
        {
            return;
        }
        var text = line.TrimEnd("\r\n"u8);
        if (text.SequenceEqual("."u8))
        {
            counters.Message(_messageId?.ToString(), _recipients);
            _accepted++;
            Reply(string.Create(CultureInfo.InvariantCulture, $"250 2.0.0 Ok: queued as S{_accepted}"));
            ResetTransaction();
            return;
        }
        if (!_headers)
        {
            return;
        }
        if (text.IsEmpty)
        {
            _headers = false;
            return;
        }
        if (text[0] is (byte)' ' or (byte)'\t')
        {
            if (_inMessageId)
            {
                _messageId!.Append(Encoding.ASCII.GetString(text).Trim());
            }
            return;
        }
        _inMessageId = text.Length >= 11 && Encoding.ASCII.GetString(text[..11]).Equals("Message-ID:", StringComparison.OrdinalIgnoreCase);
        if (_inMessageId)
        {
            _messageId = new StringBuilder(Encoding.ASCII.GetString(text[11..]).Trim());
        }
    }

    /// <summary>Handles one command line; false when the session is to end.</summary>
    private bool Command(ReadOnlySpan<byte> line)
    {
        var text = Encoding.ASCII.GetString(line.TrimEnd("\r\n"u8));
        var space = text.IndexOf(' ');
        var verb = (space < 0 ? text : text[..space]).ToUpperInvariant();
        switch (verb)
        {
            case "EHLO":
                ResetTransaction();
                Reply($"250-{hostname}\r\n250-PIPELINING\r\n250-SIZE 104857600\r\n250 8BITMIME");
                break;
            case "HELO":
                ResetTransaction();
                Reply($"250 {hostname}");
                break;
            case "MAIL":
                ResetTransaction();
                _mail = true;
                Reply("250 2.1.0 Ok");
                break;
            case "RCPT" when !_mail:
                Reply("503 5.5.1 Need MAIL first");
                break;
            case "RCPT":
                _recipients++;
                Reply("250 2.1.5 Ok");
                break;
            case "DATA" when _recipients == 0:
                // RFC 2920 §3.1: a pipelined DATA after failed RCPTs gets 554 (or 503).
                Reply("554 5.5.1 No valid recipients");
                break;
            case "DATA":
                _data = true;
                _headers = true;
                Reply("354 End data with <CR><LF>.<CR><LF>");
                break;
            case "RSET":
                ResetTransaction();
                Reply("250 2.0.0 Ok");
                break;
            case "NOOP":
                Reply("250 2.0.0 Ok");
                break;
            case "QUIT":
                Reply("221 2.0.0 Bye");
                return false;
            default:
                Reply("502 5.5.2 Command not recognized");
                break;
        }
        return true;
    }

    private void ResetTransaction()
    {
        _mail = false;
        _recipients = 0;
        _data = false;
        _headers = false;
        _inMessageId = false;
        _messageId = null;
    }

    private void Reply(string text)
    {
        var bytes = Encoding.ASCII.GetBytes(text + "\r\n");
        _output.Write(bytes, 0, bytes.Length);
    }
}
