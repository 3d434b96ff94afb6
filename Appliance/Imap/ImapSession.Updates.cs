using Appliance.Store;

namespace Appliance.Imap;

/// <summary>
/// Keeping the client's view of the selected mailbox current: the change feed marks the view
/// dirty (from whichever thread committed the change, so it only sets flags), and before each tagged reply,
/// and while IDLE, <see cref="SyncAsync"/> reads what changed since the MODSEQ the client knows
/// and tells it (RFC 9051 §7.5.1, §7.4; RFC 7162 §3.2.10 VANISHED).
/// </summary>
internal sealed partial class ImapSession
{
    private SelectedMailbox? _selected;
    private volatile string? _selectedName;
    private volatile bool _dirty;
    /// <summary>UIDs expunged elsewhere that the client has not been told about yet (withheld during FETCH/STORE/SEARCH).</summary>
    private readonly SortedSet<long> _pendingExpunges = [];

    /// <summary>Change feed callback, on the committing caller's thread: flag and wake, nothing else.</summary>
    private void OnFolderChanged(string folder)
    {
        if (!string.Equals(folder, _selectedName, StringComparison.Ordinal)) return;
        _dirty = true;
        try
        {
            _changeSignal.Release();
        }
        catch (SemaphoreFullException)
        {
            // Already signalled: one wake-up covers any number of changes.
        }
    }

    /// <summary>Sends what changed in the selected mailbox: EXPUNGE/VANISHED (when allowed), EXISTS, FETCH FLAGS.</summary>
    private async ValueTask SyncAsync(bool allowExpunge)
    {
        var sel = _selected;
        if (sel is null || !_dirty && (_pendingExpunges.Count == 0 || !allowExpunge)) return;
        _dirty = false;
        FolderChanges changes;
        try
        {
            changes = await _server.Store.GetChangesAsync(_user!, sel.Name, sel.HighestModSeq, Token);
        }
        catch (FolderNotFoundException)
        {
            // Deleted or renamed away by another session: nothing left to show.
            _w.Raw("* BYE [CLOSED] The selected mailbox was deleted\r\n"u8);
            _result = "mailbox deleted";
            _closing = true;
            return;
        }

        foreach (var uid in changes.Expunged)
        {
            if (sel.SeqOfUid(uid) > 0) _pendingExpunges.Add(uid);
        }
        if (allowExpunge && _pendingExpunges.Count > 0)
        {
            if (_qresync)
            {
                foreach (var uid in _pendingExpunges) sel.Remove(uid);
                _w.Raw("* VANISHED "u8).Text(SequenceSet.Format(_pendingExpunges)).Crlf();
            }
            else
            {
                foreach (var uid in _pendingExpunges)
                {
                    int seq = sel.Remove(uid);
                    if (seq > 0) _w.Raw("* "u8).Number(seq).Raw(" EXPUNGE\r\n"u8);
                }
            }
            _pendingExpunges.Clear();
        }

        long lastUid = sel.Messages.Count > 0 ? sel.Messages[^1].Uid : 0;
        int before = sel.Count;
        foreach (var m in changes.Changed)
        {
            if (m.Uid > lastUid) sel.Messages.Add(m);
        }
        if (sel.Count != before) _w.Raw("* "u8).Number(sel.Count).Raw(" EXISTS\r\n"u8);
        foreach (var m in changes.Changed)
        {
            if (m.Uid > lastUid) continue;
            int seq = sel.SeqOfUid(m.Uid);
            if (seq == 0) continue;
            var known = sel.Messages[seq - 1];
            if (known.ModSeq == m.ModSeq) continue;
            sel.Messages[seq - 1] = m;
            WriteFlagsFetch(seq, m, includeUid: _qresync);
        }
        sel.HighestModSeq = Math.Max(sel.HighestModSeq, changes.HighestModSeq);
        sel.UidNext = Math.Max(sel.UidNext, changes.UidNext);
        await FlushIfLargeAsync();
    }

    /// <summary>RFC 7162 §3.2.10: "* VANISHED (EARLIER) uids" for the UIDs expunged since a MODSEQ
    /// that <paramref name="uids"/> names (all of them when null); "*" covers any UID above the view's last.</summary>
    private void WriteVanishedEarlier(FolderChanges changes, SequenceSet? uids)
    {
        var sel = _selected!;
        long maxUid = sel.Messages.Count > 0 ? sel.Messages[^1].Uid : 0;
        var vanished = changes.Expunged.Where(u => uids is null || uids.Contains(u, Math.Max(maxUid, u))).Order().ToList();
        if (vanished.Count > 0) _w.Raw("* VANISHED (EARLIER) "u8).Text(SequenceSet.Format(vanished)).Crlf();
    }

    /// <summary>"* seq FETCH (FLAGS (...) [UID n] [MODSEQ (n)])" for a flag change.</summary>
    private void WriteFlagsFetch(int seq, StoredMessage m, bool includeUid)
    {
        _w.Raw("* "u8).Number(seq).Raw(" FETCH ("u8);
        if (includeUid) _w.Raw("UID "u8).Number(m.Uid).Space();
        _w.Raw("FLAGS "u8).WriteFlags(m.Flags, m.Keywords);
        if (_condStore) _w.Raw(" MODSEQ ("u8).Number(m.ModSeq).Raw(")"u8);
        _w.Raw(")\r\n"u8);
    }

    // RFC 2177 IDLE: updates as they happen until DONE.
    internal async ValueTask IdleAsync(ImapCommand c)
    {
        RequireArgs(c, 0);
        _w.Raw("+ idling\r\n"u8);
        await SyncAsync(allowExpunge: true);
        await FlushAsync();
        _timeout.CancelAfter(Autologout);
        while (true)
        {
            var read = _conn.Reader.ReadAsync(Token).AsTask();
            while (!read.IsCompleted)
            {
                using var stopWaiting = CancellationTokenSource.CreateLinkedTokenSource(Token);
                var signal = _changeSignal.WaitAsync(stopWaiting.Token);
                var first = await Task.WhenAny(read, signal);
                if (first == signal)
                {
                    if (signal.IsCanceled) break;
                    await SyncAsync(allowExpunge: true);
                    if (_closing)
                    {
                        await FlushAsync();
                        return;
                    }
                    if (_conn.Writer.UnflushedBytes > 0)
                    {
                        var flushed = await _conn.Writer.FlushAsync(Token);
                        if (flushed.IsCompleted) throw new IOException("connection closed by peer");
                    }
                }
                else
                {
                    await stopWaiting.CancelAsync();
                    try { await signal; }
                    catch (OperationCanceledException) { }
                }
            }
            if (TakeLine(await read, 1024, "Expected DONE") is not { } line) continue;
            if (!line.Equals("DONE", StringComparison.OrdinalIgnoreCase)) throw ImapException.Bad("Expected DONE");
            await CompleteAsync(c, "IDLE terminated");
            return;
        }
    }
}
