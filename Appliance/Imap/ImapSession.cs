using System.Buffers;
using System.IO.Compression;
using System.Net;
using System.Net.Sockets;
using Appliance.Directory;
using Appliance.Hosting;
using Appliance.Store;

namespace Appliance.Imap;

/// <summary>
/// One IMAP connection. Bytes arrive through a PipeReader and are parsed by
/// <see cref="ImapParser"/> (restartable, so literals simply make the buffer grow until the
/// command is whole); the state check happens once in <see cref="DispatchAsync"/> against
/// <see cref="ImapCommandTable"/>; handlers live in partial files by state.
/// Invariants:
/// - Commands are executed one at a time, responses go out in command order.
/// - The client's view of the selected folder (<see cref="SelectedMailbox"/>) changes only
///   together with the untagged response that tells the client: new messages with EXISTS,
///   flag changes with FETCH, expunges with EXPUNGE/VANISHED, and expunges are withheld while a
///   FETCH, STORE or SEARCH by sequence number runs (RFC 9051 §7.5.1 / RFC 3501 §7.4.1).
/// - Other sessions' changes reach us through the store's change feed, which only sets a flag
///   and wakes IDLE; the changes themselves are read from the store (modseq, tombstones).
/// - Every read and write is bounded by the autologout timer; every line and literal by a limit.
/// </summary>
internal sealed partial class ImapSession
{
    private const int MaxErrors = 20;
    private const int FlushThreshold = 64 * 1024;

    private readonly ImapServer _server;
    private readonly SessionConnection _conn;
    private readonly IPAddress _remote;
    private readonly CancellationTokenSource _timeout;
    private readonly CancellationToken _stopping;
    private readonly SemaphoreSlim _changeSignal = new(0, 1);
    private readonly ImapWriter _w;
    private bool _compressed;
    private ImapStates _state = ImapStates.NotAuthenticated;
    private int _errors;
    private bool _closing;
    private bool _discarding;
    private string _result = "logout";
    private long _commands;

    public ImapSession(ImapServer server, Socket socket, IPAddress remote, CancellationToken stopping)
    {
        _server = server;
        _conn = new SessionConnection(socket);
        _remote = remote;
        _stopping = stopping;
        _timeout = CancellationTokenSource.CreateLinkedTokenSource(stopping);
        _w = new ImapWriter(_conn.Writer);
    }

    private CancellationToken Token => _timeout.Token;

    private TimeSpan Autologout => TimeSpan.FromSeconds(Math.Max(1,
        _state == ImapStates.NotAuthenticated ? _server.Options.PreAuthTimeoutSeconds : _server.Options.IdleTimeoutSeconds));

    /// <summary>Plaintext mechanisms need TLS, except in dev mode from a loopback address.</summary>
    private bool PlaintextAllowed => SessionConnection.PlaintextAllowed(_conn.IsTls, _server.DevMode, _remote);

    public Task RunAsync(bool implicitTls) => RunGuardedAsync(async () =>
    {
        if (implicitTls) await StartTlsAsync();
        _w.Raw("* OK ["u8).Text(Capabilities()).Raw("] "u8).Text(_server.Hostname).Raw(" IMAP ready\r\n"u8);
        await FlushAsync();
        await CommandLoopAsync();
    });

    /// <summary>
    /// A session the other node of a pair forwarded after its login (the mailbox's partition is
    /// active here): no greeting, it starts authenticated once <paramref name="answer"/> has told
    /// the other node it is taken, with the tagged OK of the client's LOGIN.
    /// </summary>
    public Task RunForwardedAsync(ForwardedLogin login, Func<ForwardRefusal?, Task> answer) => RunGuardedAsync(async () =>
    {
        _forwarded = login;
        _attemptedUser = login.User.Address;
        var refusal = !_server.Store.IsServedHere(login.User) ? new ForwardRefusal("UNAVAILABLE", NotServedHere)
            : !_server.TryAddUserSession(login.User.Address) ? new ForwardRefusal("LIMIT", TooManySessions)
            : null;
        await answer(refusal);
        if (refusal is not null)
        {
            _result = "refused: " + refusal.Text;
            return;
        }
        await BeginAuthenticatedAsync(login.Tag, login.User);
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
            _result = _stopping.IsCancellationRequested ? "server stopping" : _moved ? "mailbox moved to the other node" : "autologout";
            await TrySendFinalAsync(_stopping.IsCancellationRequested ? "* BYE [UNAVAILABLE] Server shutting down"
                : _moved ? "* BYE [UNAVAILABLE] This mailbox has moved to the other server; please reconnect"
                : "* BYE Autologout; idle for too long");
        }
        catch (Exception ex) when (ex is IOException or SocketException or System.Security.Authentication.AuthenticationException or InvalidDataException)
        {
            _result = "dropped: " + ex.GetType().Name;
        }
        catch (Exception ex)
        {
            _result = "failed: " + ex.GetType().Name;
            _server.Logger.Error(ex, "imap session from {0} failed", _remote);
            await TrySendFinalAsync("* BYE [SERVERBUG] Internal error, closing connection");
        }
        finally
        {
            EndLogin();
            _server.Logger.Info(
                $"imap session remote={_remote} user={_user?.Address ?? _attemptedUser ?? "-"} tls={_conn.IsTls || _forwarded?.Tls == true} " +
                (_forwarded is null ? "" : "forwarded=yes ") +
                $"compress={_compressed} commands={_commands} result={_result}");
            await CloseAsync();
        }
    }

    private async Task CommandLoopAsync()
    {
        while (!_closing)
        {
            var command = await ReadCommandAsync();
            if (command is null)
            {
                if (_result == "logout") _result = "connection closed";
                return;
            }
            _commands++;
            await DispatchAsync(command);
        }
    }

    /// <summary>Reads the next whole command, answering "+" to synchronizing literals and
    /// replying to malformed ones itself. Null at end of stream.</summary>
    private async ValueTask<ImapCommand?> ReadCommandAsync()
    {
        int acknowledged = 0;
        while (!_closing)
        {
            _timeout.CancelAfter(Autologout);
            var result = await _conn.Reader.ReadAsync(Token);
            var buffer = result.Buffer;
            if (_discarding)
            {
                var lf = buffer.PositionOf((byte)'\n');
                if (lf is null)
                {
                    _conn.Reader.AdvanceTo(buffer.End);
                    if (result.IsCompleted) return null;
                    continue;
                }
                _conn.Reader.AdvanceTo(buffer.GetPosition(1, lf.Value));
                _discarding = false;
                continue;
            }

            var status = ParseCommand(buffer, acknowledged, out var command, out var consumed, out var failure);
            switch (status)
            {
                case ImapParseStatus.Complete:
                    _conn.Reader.AdvanceTo(consumed);
                    return command;
                case ImapParseStatus.Error:
                    _conn.Reader.AdvanceTo(consumed);
                    _discarding = failure.DiscardLine;
                    acknowledged = 0;
                    await ReplyAsync(failure.Tag ?? "*", failure.Status, failure.Code, failure.Text, clientFault: true);
                    if (failure.Disconnect)
                    {
                        _result = "literal too large";
                        await TrySendFinalAsync("* BYE Literal too large, closing connection");
                        _closing = true;
                    }
                    continue;
                case ImapParseStatus.NeedContinuation:
                    _conn.Reader.AdvanceTo(buffer.Start, buffer.End);
                    if (result.IsCompleted) return null;
                    acknowledged++;
                    _w.Raw("+ Ready for literal data\r\n"u8);
                    await FlushAsync();
                    continue;
                default:
                    _conn.Reader.AdvanceTo(buffer.Start, buffer.End);
                    if (result.IsCompleted) return null;
                    continue;
            }
        }
        return null;
    }

    // Synchronous so no SequenceReader lives across an await.
    private ImapParseStatus ParseCommand(ReadOnlySequence<byte> buffer, int acknowledged, out ImapCommand? command,
        out SequencePosition consumed, out ImapParser.Failure failure) =>
        ImapParser.TryParse(buffer, _server.Limits, acknowledged, out command, out consumed, out failure);

    private async ValueTask DispatchAsync(ImapCommand command)
    {
        try
        {
            if (!ImapCommandTable.Commands.TryGetValue(command.Name, out var entry))
                throw ImapException.Bad($"Unknown command {command.Name}");
            if (command.Uid && !entry.AllowsUid) throw ImapException.Bad($"UID {command.Name} does not exist");
            if ((entry.States & _state) == 0)
            {
                throw ImapException.Bad(_state == ImapStates.NotAuthenticated
                    ? $"{command.Name} needs authentication first"
                    : $"{command.Name} is not allowed in this state");
            }
            await entry.Handler(this, command);
        }
        catch (ImapException ex)
        {
            await ReplyAsync(command.Tag, ex.Status, ex.Code, ex.Message, clientFault: ex.Status == ImapStatus.Bad);
        }
        catch (FolderNotFoundException)
        {
            await ReplyAsync(command.Tag, ImapStatus.No, "NONEXISTENT", "No such mailbox", clientFault: false);
        }
        catch (FolderExistsException)
        {
            await ReplyAsync(command.Tag, ImapStatus.No, "ALREADYEXISTS", "Mailbox already exists", clientFault: false);
        }
    }

    /// <summary>The one place a failed command becomes a reply (and counts towards the error limit).</summary>
    private async ValueTask ReplyAsync(string tag, ImapStatus status, string? code, string text, bool clientFault)
    {
        _w.Text(tag).Raw(status switch { ImapStatus.No => " NO "u8, ImapStatus.Bad => " BAD "u8, _ => " OK "u8 });
        if (code is not null) _w.Raw("["u8).Text(code).Raw("] "u8);
        _w.Text(text).Crlf();
        if (clientFault && ++_errors >= MaxErrors)
        {
            _w.Raw("* BYE Too many errors, closing connection\r\n"u8);
            _result = "too many errors";
            _closing = true;
        }
        await FlushAsync();
    }

    /// <summary>Finishes a command successfully: pending untagged updates first, then the tagged OK.</summary>
    private async ValueTask CompleteAsync(ImapCommand command, string text, string? code = null)
    {
        await SyncAsync(ExpungeAllowed(command));
        _w.Text(command.Tag).Raw(" OK "u8);
        if (code is not null) _w.Raw("["u8).Text(code).Raw("] "u8);
        _w.Text(text).Crlf();
        await FlushAsync();
    }

    /// <summary>RFC 9051 §7.5.1: no EXPUNGE during FETCH, STORE, SEARCH by sequence number (and their
    /// relatives SORT, THREAD, COPY, which also name messages by number).</summary>
    private static bool ExpungeAllowed(ImapCommand command) =>
        command.Uid || command.Name is not ("FETCH" or "STORE" or "SEARCH" or "SORT" or "THREAD" or "COPY");

    private void Untagged(string text) => _w.Raw("* "u8).Text(text).Crlf();

    private async ValueTask FlushAsync()
    {
        _timeout.CancelAfter(Autologout);
        var result = await _conn.Writer.FlushAsync(Token);
        if (result.IsCompleted) throw new IOException("connection closed by peer");
    }

    /// <summary>Flushes when enough output is buffered (long FETCH/SEARCH responses).</summary>
    private ValueTask FlushIfLargeAsync() => _conn.Writer.UnflushedBytes >= FlushThreshold ? FlushAsync() : ValueTask.CompletedTask;

    /// <summary>RFC 9051 §6.2.1 / RFC 8314: TLS over the same connection.</summary>
    private async Task StartTlsAsync()
    {
        _timeout.CancelAfter(Autologout);
        await _conn.StartTlsAsync(_server.Certificate!, Token);
        _w.Output = _conn.Writer;
    }

    /// <summary>RFC 4978: raw DEFLATE (RFC 1951) both ways from the next byte on.</summary>
    private async Task StartCompressionAsync()
    {
        await _conn.ReplaceStreamAsync(s => new DeflateDuplexStream(s));
        _compressed = true;
        _w.Output = _conn.Writer;
    }

    private Task TrySendFinalAsync(string line) => _conn.TrySendFinalAsync(line);

    private async Task CloseAsync()
    {
        await _conn.CloseAsync();
        _timeout.Dispose();
    }

    /// <summary>COMPRESS=DEFLATE transport: inflates what is read, deflates what is written;
    /// Flush is a zlib sync flush so every response reaches the client whole.</summary>
    private sealed class DeflateDuplexStream(Stream inner) : Stream
    {
        private readonly DeflateStream _inflate = new(inner, CompressionMode.Decompress, leaveOpen: true);
        private readonly DeflateStream _deflate = new(inner, CompressionLevel.Fastest, leaveOpen: true);

        public override bool CanRead => true;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override int Read(byte[] buffer, int offset, int count) => _inflate.Read(buffer, offset, count);
        public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => _inflate.ReadAsync(buffer, cancellationToken);
        public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => _inflate.ReadAsync(buffer, offset, count, cancellationToken);
        public override void Write(byte[] buffer, int offset, int count) => _deflate.Write(buffer, offset, count);
        public override ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default) => _deflate.WriteAsync(buffer, cancellationToken);
        public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => _deflate.WriteAsync(buffer, offset, count, cancellationToken);
        public override void Flush() => _deflate.Flush();
        public override Task FlushAsync(CancellationToken cancellationToken) => _deflate.FlushAsync(cancellationToken);
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                _inflate.Dispose();
                _deflate.Dispose();
                inner.Dispose();
            }
            base.Dispose(disposing);
        }

        public override async ValueTask DisposeAsync()
        {
            await _inflate.DisposeAsync();
            await _deflate.DisposeAsync();
            await inner.DisposeAsync();
            await base.DisposeAsync();
        }
    }
}
