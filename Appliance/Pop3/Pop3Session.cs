using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Appliance.Directory;
using Appliance.Hosting;
using Appliance.Store;

namespace Appliance.Pop3;

/// <summary>
/// One POP3 connection. Reads lines with System.IO.Pipelines, parses them with
/// <see cref="Pop3Parser"/>, checks the state once against <see cref="Pop3CommandTable"/>
/// and runs one handler per command (partial files by state).
/// Invariants:
/// - Replies go out in command order; pipelined commands are answered one after another.
/// - Every read and write is bounded by the idle timeout; every line by a length limit.
/// - The maildrop is changed in the store only in the UPDATE state (QUIT after TRANSACTION);
///   a connection that ends any other way leaves the mailbox untouched.
/// - The mailbox lock is held from a successful login to the end of the session.
/// </summary>
internal sealed partial class Pop3Session
{
    private const int MaxErrors = 10;

    private readonly Pop3Server _server;
    private readonly SessionConnection _conn;
    private readonly IPAddress _remote;
    private readonly CancellationTokenSource _timeout;
    private readonly CancellationToken _stopping;
    private Pop3States _state = Pop3States.Authorization;
    private int _errors;
    private bool _closing;
    private string _result = "dropped";
    private ForwardedLogin? _forwarded;

    public Pop3Session(Pop3Server server, Socket socket, IPAddress remote, CancellationToken stopping)
    {
        _server = server;
        _conn = new SessionConnection(socket);
        _remote = remote;
        _stopping = stopping;
        _timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
    }

    private CancellationToken Token => _timeout.Token;

    /// <summary>Plaintext mechanisms need TLS, except in dev mode from a loopback address.</summary>
    private bool PlaintextAllowed => SessionConnection.PlaintextAllowed(_conn.IsTls, _server.DevMode, _remote);

    public Task RunAsync(bool implicitTls) => RunGuardedAsync(async () =>
    {
        if (implicitTls)
        {
            await StartTlsAsync();
        }

        WriteLine($"+OK {_server.Hostname} POP3 ready");
        await FlushAsync();
        await CommandLoopAsync();
    });

    /// <summary>
    /// A session the other node of a pair forwarded after its login (the mailbox's partition is
    /// active here): no greeting; the maildrop is opened and locked here, the refusal (locked,
    /// unavailable) or the +OK of the login goes back through <paramref name="answer"/> and the stream.
    /// </summary>
    public Task RunForwardedAsync(ForwardedLogin login, Func<ForwardRefusal?, Task> answer) => RunGuardedAsync(async () =>
    {
        _forwarded = login;
        _attemptedUser = login.User.Address;
        try
        {
            if (!_server.Store.IsServedHere(login.User)) throw new Pop3Exception(NotServedHere, "SYS/TEMP");
            await LoadMaildropAsync(login.User);
        }
        catch (Pop3Exception ex)
        {
            await answer(new ForwardRefusal(ex.ResponseCode, ex.Message));
            _result = "refused: " + ex.Message;
            return;
        }
        await answer(null);
        var (count, size) = Totals();
        WriteLine($"+OK Maildrop has {count} messages ({size} octets)");
        await FlushAsync();
        await CommandLoopAsync();
    });

    private async Task RunGuardedAsync(Func<Task> run)
    {
        try
        {
            await run();
        }
        catch (OperationCanceledException)
        {
            _result = _stopping.IsCancellationRequested ? "server stopping" : _moved ? "mailbox moved to the other node" : "idle timeout";
            await TrySendFinalAsync(_stopping.IsCancellationRequested ? "-ERR [SYS/TEMP] Server shutting down"
                : _moved ? "-ERR [SYS/TEMP] This mailbox has moved to the other server; please reconnect"
                : "-ERR Idle timeout, closing connection");
        }
        catch (Exception ex) when (ex is IOException or SocketException or System.Security.Authentication.AuthenticationException)
        {
            _result = "dropped: " + ex.GetType().Name;
        }
        catch (Exception ex)
        {
            _result = "failed: " + ex.GetType().Name;
            _server.Logger.Error(ex, "pop3 session from {0} failed", _remote);
        }
        finally
        {
            ReleaseMaildrop();
            _server.Logger.Info(
                $"pop3 session remote={_remote} user={_user?.Address ?? _attemptedUser ?? "-"} tls={_conn.IsTls || _forwarded?.Tls == true} " +
                (_forwarded is null ? "" : "forwarded=yes ") +
                $"retrieved={_retrieved} deleted={_deletedCount} bytes={_bytesSent} result={_result}");
            await CloseAsync();
        }
    }

    private async Task CommandLoopAsync()
    {
        while (!_closing)
        {
            var (status, line) = await ReadLineAsync(Pop3Parser.MaxLineLength);
            if (status == ReadStatus.EndOfStream)
            {
                return;
            }

            if (status == ReadStatus.TooLong)
            {
                await ReplyErrorAsync(new Pop3Exception("line too long"));
                continue;
            }

            if (!Pop3Parser.TryParseCommand(line, out var command))
            {
                await ReplyErrorAsync(new Pop3Exception("unknown command"));
                continue;
            }

            await DispatchAsync(command);
        }
    }

    private async ValueTask DispatchAsync(Pop3Command command)
    {
        try
        {
            if (!Pop3CommandTable.Commands.TryGetValue(command.Keyword, out var entry))
            {
                throw new Pop3Exception("unknown command");
            }

            if ((entry.States & _state) == 0)
            {
                throw new Pop3Exception($"{command.Keyword} not allowed in this state");
            }

            await entry.Handler(this, command.Arguments);
        }
        catch (Pop3Exception ex)
        {
            await ReplyErrorAsync(ex);
        }
    }

    /// <summary>The one place a protocol error becomes a reply (and counts towards the error limit).</summary>
    private async ValueTask ReplyErrorAsync(Pop3Exception error)
    {
        WriteLine(error.Reply);
        if (error.ClientFault && ++_errors >= MaxErrors)
        {
            WriteLine("-ERR Too many errors, closing connection");
            _result = "too many errors";
            _closing = true;
        }
        else if (error.Disconnect)
        {
            _result = error.Message;
            _closing = true;
        }

        await FlushAsync();
    }

    private enum ReadStatus { Line, TooLong, EndOfStream }

    /// <summary>
    /// Reads one line of at most <paramref name="maxLength"/> bytes. An overlong line is read to
    /// its end and thrown away (bounded memory), so the reply to it comes in command order.
    /// </summary>
    private async ValueTask<(ReadStatus Status, byte[] Line)> ReadLineAsync(int maxLength)
    {
        bool discarding = false;
        while (true)
        {
            _timeout.CancelAfter(_server.IdleTimeout);
            var result = await _conn.Reader.ReadAsync(Token);
            var buffer = result.Buffer;
            var status = Parse(buffer, maxLength, ref discarding, out var line, out var consumed);
            if (status != ReadStatus.EndOfStream)
            {
                // Only what was consumed has been examined: pipelined lines after it are read next.
                _conn.Reader.AdvanceTo(consumed);
                return (status, line);
            }

            _conn.Reader.AdvanceTo(consumed, buffer.End);

            if (result.IsCompleted)
            {
                return (ReadStatus.EndOfStream, []);
            }
        }
    }

    // Synchronous so the SequenceReader never lives across an await. EndOfStream here means "need more".
    private static ReadStatus Parse(ReadOnlySequence<byte> buffer, int maxLength, ref bool discarding, out byte[] line, out SequencePosition consumed)
    {
        line = [];
        var reader = new SequenceReader<byte>(buffer);
        if (discarding)
        {
            bool ended = Pop3Parser.SkipPastLineEnd(ref reader);
            consumed = reader.Position;
            if (!ended)
            {
                return ReadStatus.EndOfStream;
            }

            discarding = false;
            return ReadStatus.TooLong;
        }

        var status = Pop3Parser.TryReadLine(ref reader, maxLength, out var raw);
        switch (status)
        {
            case Pop3LineStatus.Line:
                line = raw.ToArray();
                consumed = reader.Position;
                return ReadStatus.Line;
            case Pop3LineStatus.TooLong:
                consumed = reader.Position;
                return ReadStatus.TooLong;
            case Pop3LineStatus.TooLongUnterminated:
                discarding = true;
                consumed = reader.Position;
                return ReadStatus.EndOfStream;
            default:
                consumed = buffer.Start;
                return ReadStatus.EndOfStream;
        }
    }

    private void WriteLine(string text)
    {
        Encoding.UTF8.GetBytes(text, _conn.Writer);
        _conn.Writer.Write("\r\n"u8);
    }

    private async ValueTask FlushAsync()
    {
        _timeout.CancelAfter(_server.IdleTimeout);
        var result = await _conn.Writer.FlushAsync(Token);
        if (result.IsCompleted)
        {
            throw new IOException("connection closed by peer");
        }
    }

    /// <summary>RFC 2595 §4 / RFC 8314: TLS over the same connection.</summary>
    private Task StartTlsAsync()
    {
        _timeout.CancelAfter(_server.IdleTimeout);
        return _conn.StartTlsAsync(_server.Certificate!, Token);
    }

    private Task TrySendFinalAsync(string line) => _conn.TrySendFinalAsync(line);

    private async Task CloseAsync()
    {
        await _conn.CloseAsync();
        _timeout.Dispose();
    }
}
