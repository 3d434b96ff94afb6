using System.Buffers;
using System.Globalization;
using Appliance.Directory;
using Appliance.Store;

namespace Appliance.Pop3;

/// <summary>
/// TRANSACTION and UPDATE states. The maildrop is the INBOX as listed at login; message numbers
/// (1-based indexes into that snapshot) stay fixed for the session. DELE only marks; the store
/// changes only in UPDATE (QUIT).
/// </summary>
internal sealed partial class Pop3Session
{
    private const string Inbox = "INBOX";
    private const int CopyBufferSize = 64 * 1024;

    private MailUser? _user;
    private string? _lockKey;
    private StoredMessage[] _messages = [];
    private bool[] _deleted = [];
    private long _uidValidity;
    private int _retrieved;
    private int _deletedCount;
    private long _bytesSent;
    private CancellationTokenRegistration _tenure;
    private volatile bool _moved;

    private async ValueTask OpenMaildropAsync(MailUser user)
    {
        await LoadMaildropAsync(user);
        var (count, size) = Totals();
        WriteLine($"+OK Maildrop has {count} messages ({size} octets)");
        await FlushAsync();
    }

    /// <summary>Locks the maildrop and lists it (entering TRANSACTION), or throws the reason it cannot.</summary>
    private async ValueTask LoadMaildropAsync(MailUser user)
    {
        string key = user.Address.ToUpperInvariant();
        if (!_server.TryLockMailbox(key))
        {
            throw new Pop3Exception("Mailbox is locked by another POP3 session", "IN-USE", clientFault: false);
        }

        try
        {
            var folder = await _server.Store.GetFolderAsync(user, Inbox, Token);
            var messages = await _server.Store.ListAsync(user, Inbox, Token);
            _uidValidity = folder.UidValidity;
            _messages = [.. messages];
            _deleted = new bool[_messages.Length];
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            _server.ReleaseMailbox(key);
            _server.Logger.Error(ex, "pop3 cannot open maildrop of {0}", user.Address);
            throw new Pop3Exception("Mailbox temporarily unavailable", "SYS/TEMP", clientFault: false);
        }

        _lockKey = key;
        _user = user;
        _state = Pop3States.Transaction;
        // The session ends (and changes nothing) when the partition moves to the other node.
        _tenure = _server.Store.Tenure(user).Register(() =>
        {
            _moved = true;
            _ = _timeout.CancelAsync();
        });
    }

    private void ReleaseMaildrop()
    {
        _tenure.Dispose();
        if (_lockKey is not null)
        {
            _server.ReleaseMailbox(_lockKey);
            _lockKey = null;
        }
    }

    // RFC 1939 §5 STAT
    internal async ValueTask StatAsync(string arguments)
    {
        RequireNoArguments(arguments);
        var (count, size) = Totals();
        WriteLine($"+OK {count} {size}");
        await FlushAsync();
    }

    // RFC 1939 §5 LIST [msg]
    internal ValueTask ListAsync(string arguments) =>
        ScanListingAsync(arguments, () =>
        {
            var (count, size) = Totals();
            return $"+OK {count} messages ({size} octets)";
        }, i => Invariant($"{i + 1} {_messages[i].Size}"));

    // RFC 1939 §7 UIDL [msg]; unique id = "<uidvalidity>.<uid>" (stable across sessions and servers)
    internal ValueTask UidlAsync(string arguments) =>
        ScanListingAsync(arguments, () => "+OK Unique-ID listing follows", i => Invariant($"{i + 1} {_uidValidity}.{_messages[i].Uid}"));

    /// <summary>
    /// The shape LIST and UIDL share: with a message number one "+OK entry" line, without one a
    /// multi-line listing of every message not marked deleted.
    /// </summary>
    private async ValueTask ScanListingAsync(string arguments, Func<string> header, Func<int, string> entry)
    {
        if (arguments.Length > 0)
        {
            WriteLine("+OK " + entry(MessageNumber(arguments) - 1));
            await FlushAsync();
            return;
        }

        WriteLine(header());
        for (int i = 0; i < _messages.Length; i++)
        {
            if (!_deleted[i])
            {
                WriteLine(entry(i));
            }

            await FlushIfLargeAsync();
        }

        WriteLine(".");
        await FlushAsync();
    }

    // RFC 1939 §5 RETR msg
    internal async ValueTask RetrAsync(string arguments)
    {
        int n = MessageNumber(arguments);
        var message = _messages[n - 1];
        await SendMessageAsync(message, Invariant($"+OK {message.Size} octets"), new Pop3MessageEncoder());
        _retrieved++;
    }

    // RFC 1939 §7 TOP msg n
    internal async ValueTask TopAsync(string arguments)
    {
        var parts = Pop3Parser.SplitArguments(arguments);
        if (parts.Length != 2 || !Pop3Parser.TryParseNumber(parts[1], out int lines))
        {
            throw new Pop3Exception("Syntax: TOP msg n");
        }

        int n = MessageNumber(parts[0]);
        await SendMessageAsync(_messages[n - 1], "+OK Top of message follows", new Pop3MessageEncoder(lines));
    }

    // RFC 1939 §5 DELE msg: marks only
    internal async ValueTask DeleAsync(string arguments)
    {
        int n = MessageNumber(arguments);
        _deleted[n - 1] = true;
        WriteLine(Invariant($"+OK Message {n} deleted"));
        await FlushAsync();
    }

    // RFC 1939 §5 NOOP
    internal async ValueTask NoopAsync(string arguments)
    {
        RequireNoArguments(arguments);
        WriteLine("+OK");
        await FlushAsync();
    }

    // RFC 1939 §5 RSET: unmark all
    internal async ValueTask RsetAsync(string arguments)
    {
        RequireNoArguments(arguments);
        Array.Clear(_deleted);
        var (count, size) = Totals();
        WriteLine($"+OK Maildrop has {count} messages ({size} octets)");
        await FlushAsync();
    }

    // RFC 1939 §6 QUIT: in TRANSACTION enter UPDATE and remove the marked messages.
    internal async ValueTask QuitAsync(string arguments)
    {
        _closing = true;
        if (_state != Pop3States.Transaction || _user is null)
        {
            _result = "quit";
            WriteLine($"+OK {_server.Hostname} POP3 server signing off");
            await FlushAsync();
            return;
        }

        var uids = new List<long>();
        for (int i = 0; i < _messages.Length; i++)
        {
            if (_deleted[i])
            {
                uids.Add(_messages[i].Uid);
            }
        }

        try
        {
            if (uids.Count > 0)
            {
                await _server.Store.ExpungeAsync(_user, Inbox, uids, Token);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            _server.Logger.Error(ex, "pop3 expunge failed for {0}", _user.Address);
            _result = "update failed";
            throw new Pop3Exception("Some deleted messages not removed", "SYS/TEMP", clientFault: false);
        }

        _deletedCount = uids.Count;
        _result = "quit";
        var (count, _) = Totals();
        WriteLine($"+OK {_server.Hostname} POP3 server signing off ({count} messages left)");
        await FlushAsync();
    }

    private async ValueTask SendMessageAsync(StoredMessage message, string status, Pop3MessageEncoder encoder)
    {
        Stream body;
        try
        {
            body = _server.Store.OpenMessage(_user!, message);
        }
        catch (Exception ex) when (ex is IOException or UnauthorizedAccessException)
        {
            _server.Logger.Error(ex, "pop3 cannot open message {0} of {1}", message.Uid, _user!.Address);
            throw new Pop3Exception("Message temporarily unavailable", "SYS/TEMP", clientFault: false);
        }

        await using (body)
        {
            WriteLine(status);
            byte[] buffer = ArrayPool<byte>.Shared.Rent(CopyBufferSize);
            try
            {
                while (!encoder.Done)
                {
                    // A store read failing here, after "+OK", cannot be reported in band: the
                    // exception ends the session (the maildrop is untouched).
                    int read = await body.ReadAsync(buffer.AsMemory(0, CopyBufferSize), Token);
                    if (read == 0)
                    {
                        break;
                    }

                    encoder.Encode(buffer.AsSpan(0, read), _conn.Writer);
                    _bytesSent += read;
                    await FlushAsync();
                }
            }
            finally
            {
                ArrayPool<byte>.Shared.Return(buffer);
            }

            encoder.Complete(_conn.Writer);
            await FlushAsync();
        }
    }

    /// <summary>Keeps long listings from buffering without bound.</summary>
    private async ValueTask FlushIfLargeAsync()
    {
        if (_conn.Writer.CanGetUnflushedBytes && _conn.Writer.UnflushedBytes >= CopyBufferSize)
        {
            await FlushAsync();
        }
    }

    /// <summary>Parses a message number that refers to a message not marked deleted.</summary>
    private int MessageNumber(string argument)
    {
        if (!Pop3Parser.TryParseNumber(argument, out int n))
        {
            throw new Pop3Exception("Invalid message number");
        }

        if (n < 1 || n > _messages.Length)
        {
            throw new Pop3Exception("No such message", clientFault: false);
        }

        if (_deleted[n - 1])
        {
            throw new Pop3Exception($"Message {n} already deleted", clientFault: false);
        }

        return n;
    }

    private (int Count, long Size) Totals()
    {
        int count = 0;
        long size = 0;
        for (int i = 0; i < _messages.Length; i++)
        {
            if (!_deleted[i])
            {
                count++;
                size += _messages[i].Size;
            }
        }

        return (count, size);
    }

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
