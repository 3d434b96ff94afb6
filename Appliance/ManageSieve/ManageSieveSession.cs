using System.Buffers;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Appliance.Directory;
using Appliance.Hosting;
using Appliance.Store;

namespace Appliance.ManageSieve;

/// <summary>
/// One ManageSieve connection (RFC 5804). Reads whole commands (literals included) with
/// System.IO.Pipelines, parses them with <see cref="ManageSieveParser"/>, checks the state once
/// against <see cref="ManageSieveCommandTable"/> and runs one handler per command (partial
/// files: authentication, scripts).
/// Invariants:
/// - Replies go out in command order; a bad command gets its NO at once and the rest of its
///   line (and a literal announced at its end) is discarded before the next command is read.
/// - Memory is bounded: a command is at most a line of <see cref="ManageSieveParser.MaxLineBytes"/>
///   outside literals plus the store's script size limit in literals; a larger literal is
///   refused with NO (QUOTA/MAXSIZE) and its bytes are read and dropped (over
///   <see cref="MaxSkippedLiteral"/> the connection is closed with BYE instead).
/// - Every read and write is bounded by the idle timeout.
/// - Scripts are read and written only where the user's partition is active: a login for a
///   mailbox active on the other node of a pair is forwarded there, and an authenticated
///   session ends (BYE TRYLATER) when its partition moves.
/// </summary>
internal sealed partial class ManageSieveSession
{
    private const int MaxErrors = 10;

    /// <summary>Bytes of an oversized literal read and dropped so the session can go on; beyond, BYE.</summary>
    internal const long MaxSkippedLiteral = 16L * 1024 * 1024;

    private readonly ManageSieveServer _server;
    private readonly SessionConnection _conn;
    private readonly IPAddress _remote;
    private readonly CancellationTokenSource _timeout;
    private readonly CancellationToken _stopping;
    private ManageSieveStates _state = ManageSieveStates.NotAuthenticated;
    private int _errors;
    private bool _closing;
    private string _result = "dropped";
    private int _commands;

    // Input still to discard after a refused command: literal bytes, then up to the line's end.
    private long _skipLiteral;
    private bool _skipLine;
    private readonly byte[] _skipTail = new byte[24];
    private int _skipTailLength;

    public ManageSieveSession(ManageSieveServer server, Socket socket, IPAddress remote, CancellationToken stopping)
    {
        _server = server;
        _conn = new SessionConnection(socket);
        _remote = remote;
        _stopping = stopping;
        _timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
    }

    private CancellationToken Token => _timeout.Token;

    /// <summary>TLS on this connection, or on the client's connection to the node that forwarded it.</summary>
    private bool Tls => _conn.IsTls || _forwarded?.Tls == true;

    private bool PlaintextAllowed => SessionConnection.PlaintextAllowed(Tls, _server.DevMode, _remote);

    private long MaxLiteral => _server.Store.SieveLimits.MaxScriptBytes;

    // RFC 5804 §1.7: the greeting is the capability response.
    public Task RunAsync() => RunGuardedAsync(async () =>
    {
        WriteCapabilities();
        WriteLine("OK \"Appliance ManageSieve ready\"");
        await FlushAsync();
        await CommandLoopAsync();
    });

    /// <summary>
    /// A session the other node of a pair forwarded after its login (the mailbox's partition is
    /// active here): no greeting; the refusal, or the OK of the login, goes back through
    /// <paramref name="answer"/> and the stream.
    /// </summary>
    public Task RunForwardedAsync(ForwardedLogin login, Func<ForwardRefusal?, Task> answer) => RunGuardedAsync(async () =>
    {
        _forwarded = login;
        _attemptedUser = login.User.Address;
        if (!_server.Store.IsServedHere(login.User))
        {
            await answer(new ForwardRefusal("TRYLATER", NotServedHere));
            _result = "refused: not served here";
            return;
        }
        await answer(null);
        BeginAuthenticated(login.User);
        WriteLine("OK \"Logged in\"");
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
            await _conn.TrySendFinalAsync(_stopping.IsCancellationRequested ? "BYE (TRYLATER) \"Server shutting down\""
                : _moved ? "BYE (TRYLATER) \"This mailbox has moved to the other server; please reconnect\""
                : "BYE \"Idle timeout, closing connection\"");
        }
        catch (Exception ex) when (ex is IOException or SocketException or System.Security.Authentication.AuthenticationException)
        {
            _result = "dropped: " + ex.GetType().Name;
        }
        catch (Exception ex)
        {
            _result = "failed: " + ex.GetType().Name;
            _server.Logger.Error(ex, "managesieve session from {0} failed", _remote);
        }
        finally
        {
            EndLogin();
            _server.Logger.Info(
                $"managesieve session remote={_remote} user={_user?.Address ?? _attemptedUser ?? "-"} tls={Tls} " +
                (_forwarded is null ? "" : "forwarded=yes ") + $"commands={_commands} result={_result}");
            await _conn.CloseAsync();
            _timeout.Dispose();
        }
    }

    private async Task CommandLoopAsync()
    {
        while (!_closing)
        {
            var (status, command, error, literal) = await ReadAsync(saslResponse: false);
            switch (status)
            {
                case ReadStatus.EndOfStream:
                    if (_result == "dropped") _result = "client closed";
                    return;
                case ReadStatus.Error:
                    await ReplyErrorAsync(new ManageSieveException(error));
                    break;
                case ReadStatus.LiteralTooLarge:
                    await ReplyErrorAsync(LiteralTooLarge(literal));
                    break;
                default:
                    _commands++;
                    await DispatchAsync(command!);
                    break;
            }
        }
    }

    private ManageSieveException LiteralTooLarge(long length) =>
        new($"A literal of {length} bytes is larger than the {MaxLiteral}-byte script size limit", "QUOTA/MAXSIZE",
            disconnect: length > MaxSkippedLiteral);

    private async ValueTask DispatchAsync(ManageSieveCommand command)
    {
        try
        {
            if (!ManageSieveCommandTable.Commands.TryGetValue(command.Name, out var entry))
                throw new ManageSieveException($"Unknown command {command.Name}");
            if ((entry.States & _state) == 0)
                throw new ManageSieveException(_state == ManageSieveStates.NotAuthenticated ? $"{command.Name} needs authentication first" : $"{command.Name} is not allowed once authenticated");
            await entry.Handler(this, command);
        }
        catch (ManageSieveException ex)
        {
            await ReplyErrorAsync(ex);
        }
        catch (UnitUnavailableException)
        {
            // The partition is moving between the nodes of a pair (RFC 5804 §1.3 TRYLATER).
            await ReplyErrorAsync(new ManageSieveException(NotServedHere, "TRYLATER", clientFault: false));
        }
    }

    /// <summary>The one place a protocol error becomes a reply (and counts towards the error limit).</summary>
    private async ValueTask ReplyErrorAsync(ManageSieveException error)
    {
        WriteLine(error.Reply);
        if (error.Disconnect)
        {
            _result = error.Message;
            _closing = true;
        }
        else if (error.ClientFault && ++_errors >= MaxErrors)
        {
            WriteLine("BYE \"Too many errors, closing connection\"");
            _result = "too many errors";
            _closing = true;
        }
        await FlushAsync();
    }

    private enum ReadStatus { Command, Error, LiteralTooLarge, EndOfStream }

    /// <summary>Reads one whole command (or SASL response line), skipping what an earlier refusal left to discard.</summary>
    private async ValueTask<(ReadStatus Status, ManageSieveCommand? Command, string Error, long Literal)> ReadAsync(bool saslResponse)
    {
        while (true)
        {
            _timeout.CancelAfter(_server.IdleTimeout);
            var result = await _conn.Reader.ReadAsync(Token);
            var status = Parse(result.Buffer, saslResponse, out var command, out var error, out var literal, out var consumed);
            if (status is not null)
            {
                _conn.Reader.AdvanceTo(consumed);
                return (status.Value, command, error, literal);
            }
            _conn.Reader.AdvanceTo(consumed, result.Buffer.End);
            if (result.IsCompleted) return (ReadStatus.EndOfStream, null, "", 0);
        }
    }

    // Synchronous so the SequenceReader never lives across an await. Null means "read more".
    private ReadStatus? Parse(ReadOnlySequence<byte> buffer, bool saslResponse, out ManageSieveCommand? command, out string error, out long literal, out SequencePosition consumed)
    {
        command = null;
        error = "";
        literal = 0;
        var reader = new SequenceReader<byte>(buffer);
        if (!Skip(ref reader))
        {
            consumed = reader.Position;
            return null;
        }
        var start = reader.Position;
        var startOffset = reader.Consumed;
        switch (ManageSieveParser.TryParse(ref reader, MaxLiteral, saslResponse, out command, out error, out literal))
        {
            case ManageSieveParseStatus.Command:
                consumed = reader.Position;
                return ReadStatus.Command;
            case ManageSieveParseStatus.Error:
                // The rest of the line goes, unless the error was found on its line end.
                var endedLine = false;
                if (reader.Consumed > startOffset)
                {
                    reader.Rewind(1);
                    endedLine = reader.TryRead(out var last) && last == '\n';
                }
                _skipLine = !endedLine;
                consumed = reader.Position;
                return ReadStatus.Error;
            case ManageSieveParseStatus.LiteralTooLarge:
                _skipLiteral = literal;
                _skipLine = true;
                consumed = reader.Position;
                return ReadStatus.LiteralTooLarge;
            default:
                consumed = start;
                return null;
        }
    }

    /// <summary>
    /// Discards what a refused command left: literal bytes, then up to the end of its line, and a
    /// literal announced at that line's end (and its line) in turn. False when the buffer ended first.
    /// </summary>
    private bool Skip(ref SequenceReader<byte> reader)
    {
        while (true)
        {
            if (_skipLiteral > 0)
            {
                var n = Math.Min(_skipLiteral, reader.Remaining);
                reader.Advance(n);
                _skipLiteral -= n;
                if (_skipLiteral > 0) return false;
            }
            if (!_skipLine) return true;
            if (!reader.TryRead(out var b)) return false;
            if (b == '\n')
            {
                _skipLine = false;
                if (ManageSieveParser.LiteralAtLineEnd(_skipTail.AsSpan(0, _skipTailLength)) is { } length)
                {
                    // A literal over the limit here was refused already; its bytes just go.
                    _skipLiteral = length;
                    _skipLine = true;
                }
                _skipTailLength = 0;
                continue;
            }
            if (_skipTailLength == _skipTail.Length)
            {
                _skipTail.AsSpan(1).CopyTo(_skipTail);
                _skipTailLength--;
            }
            _skipTail[_skipTailLength++] = b;
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
        if (result.IsCompleted) throw new IOException("connection closed by peer");
    }
}
