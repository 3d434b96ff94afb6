using System.Globalization;
using Appliance.Store;

namespace Appliance.Imap;

/// <summary>Selected-state commands: FETCH, STORE, SEARCH/SORT/THREAD, COPY/MOVE, EXPUNGE,
/// CLOSE/UNSELECT. The work of each lives in its module (Fetch*, StoreRequest, ImapSearch*);
/// here are the store calls and the view updates around them.</summary>
internal sealed partial class ImapSession
{
    /// <summary>
    /// The messages a command's sequence set names. By sequence number, a number past the end is
    /// BAD (RFC 9051 §6.4); by UID, missing UIDs are ignored. Messages already expunged
    /// elsewhere but still in the client's view are included: callers skip what is gone.
    /// </summary>
    private List<(int Seq, StoredMessage Message)> Targets(ImapCommand c, ImapValue setArg)
    {
        if (!SequenceSet.TryParse(setArg, out var set)) throw ImapException.Bad("Invalid sequence set");
        var sel = _selected!;
        if (!c.Uid && sel.Count > 0 && sel.OutOfRange(set)) throw ImapException.Bad("Invalid message sequence number");
        return sel.Resolve(set, c.Uid);
    }

    // RFC 9051 §6.4.5, RFC 3516 BINARY, RFC 7162 CHANGEDSINCE / VANISHED
    internal async ValueTask FetchAsync(ImapCommand c)
    {
        if (c.Args.Count < 2) throw ImapException.Bad("Syntax: FETCH sequence-set items");
        var request = FetchRequest.Parse(c.Args, 1, c.Uid);
        var targets = Targets(c, c.Args[0]);
        var sel = _selected!;
        if (request.ChangedSince is not null || request.IncludesModSeq) _condStore = true;
        if (request.ChangedSince is { } since)
        {
            if (request.Vanished)
            {
                SequenceSet.TryParse(c.Args[0], out var set);
                WriteVanishedEarlier(await _server.Store.GetChangesAsync(_user!, sel.Name, since, Token), set);
            }
            targets = targets.Where(t => t.Message.ModSeq > since).ToList();
        }

        // BODY[...] without PEEK sets \Seen (RFC 9051 §6.4.5); FLAGS then go with the response.
        var seenNow = new HashSet<long>();
        if (request.SetsSeen && !sel.ReadOnly)
        {
            var unseen = targets.Where(t => (t.Message.Flags & MessageFlags.Seen) == 0).Select(t => t.Message.Uid).ToList();
            if (unseen.Count > 0)
            {
                var result = await _server.Store.StoreFlagsAsync(_user!, sel.Name, unseen, FlagMode.Add, MessageFlags.Seen, [], null, Token);
                foreach (var u in result.Updated)
                {
                    sel.Apply(u);
                    seenNow.Add(u.Uid);
                }
            }
        }

        IReadOnlyDictionary<long, MessageStructure>? structures = null;
        if (request.NeedsStructure && targets.Count > 0)
            structures = await _server.Store.GetStructuresAsync(_user!, sel.Name, targets.Select(t => t.Message.Uid).ToList(), Token);

        foreach (var (seq, _) in targets)
        {
            var m = sel.Messages[seq - 1];
            MessageStructure? structure = null;
            if (structures is not null && !structures.TryGetValue(m.Uid, out structure)) continue; // expunged meanwhile
            // The file is opened before the response starts: a message expunged by another
            // session (its EXPUNGE still withheld) is skipped whole, never cut off inside a
            // literal whose length the client has already been told.
            Stream? opened = null;
            if (request.NeedsContent)
            {
                try
                {
                    opened = _server.Store.OpenMessage(_user!, m);
                }
                catch (FileNotFoundException)
                {
                    continue;
                }
            }
            var context = new FetchContext(c.Uid, _condStore, seenNow.Contains(m.Uid), FlushIfLargeAsync);
            try
            {
                await FetchResponder.WriteAsync(_w, request, seq, m, structure, () =>
                {
                    var stream = opened ?? _server.Store.OpenMessage(_user!, m);
                    opened = null;
                    return stream;
                }, context, Token);
            }
            finally
            {
                opened?.Dispose();
            }
            await FlushIfLargeAsync();
        }
        await CompleteAsync(c, "FETCH completed");
    }

    // RFC 9051 §6.4.6 with RFC 7162 UNCHANGEDSINCE
    internal async ValueTask StoreAsync(ImapCommand c)
    {
        if (c.Args.Count < 3) throw ImapException.Bad("Syntax: STORE sequence-set [(UNCHANGEDSINCE n)] item flags");
        var request = StoreRequest.Parse(c.Args, 1);
        var targets = Targets(c, c.Args[0]);
        var sel = _selected!;
        if (sel.ReadOnly) throw ImapException.No("Mailbox is read-only", "READ-ONLY");
        if (request.UnchangedSince is not null) _condStore = true;
        var result = targets.Count == 0
            ? new StoreFlagsResult([], [])
            : await _server.Store.StoreFlagsAsync(_user!, sel.Name, targets.Select(t => t.Message.Uid).ToList(),
                request.Mode, request.Flags, request.Keywords, request.UnchangedSince, Token);
        var updated = new HashSet<long>();
        foreach (var u in result.Updated)
        {
            sel.Apply(u);
            updated.Add(u.Uid);
        }
        var modified = result.Modified.ToHashSet();
        foreach (var (seq, _) in targets)
        {
            var m = sel.Messages[seq - 1];
            if (modified.Contains(m.Uid)) continue;
            // .SILENT suppresses the FETCH, except that with UNCHANGEDSINCE the new MODSEQ must be told (RFC 7162 §3.1.3).
            if (request.Silent && !(request.UnchangedSince is not null && updated.Contains(m.Uid))) continue;
            WriteFlagsFetch(seq, m, includeUid: c.Uid || _qresync);
        }
        string? code = null;
        if (modified.Count > 0)
        {
            var numbers = c.Uid ? modified.Order().ToList() : modified.Select(u => (long)sel.SeqOfUid(u)).Where(s => s > 0).Order().ToList();
            code = "MODIFIED " + SequenceSet.Format(numbers);
        }
        _dirty = true;
        await CompleteAsync(c, "STORE completed", code);
    }

    private ImapSearchContext SearchContext(ImapCommand c) =>
        new(new MailStoreSearchSource(_server.Store, _user!, _selected!.Name), _selected, _w, c.Tag, c.Uid, _rev2, _utf8, Token);

    // RFC 9051 §6.4.4, RFC 4731 ESEARCH, RFC 7162 MODSEQ search key
    internal async ValueTask SearchAsync(ImapCommand c)
    {
        if (await ImapSearchCommands.SearchAsync(SearchContext(c), c.Args)) _condStore = true;
        await CompleteAsync(c, "SEARCH completed");
    }

    // RFC 5256 SORT, RFC 5957 DISPLAYFROM/DISPLAYTO
    internal async ValueTask SortAsync(ImapCommand c)
    {
        if (await ImapSearchCommands.SortAsync(SearchContext(c), c.Args)) _condStore = true;
        await CompleteAsync(c, "SORT completed");
    }

    // RFC 5256 THREAD
    internal async ValueTask ThreadAsync(ImapCommand c)
    {
        if (await ImapSearchCommands.ThreadAsync(SearchContext(c), c.Args)) _condStore = true;
        await CompleteAsync(c, "THREAD completed");
    }

    // RFC 9051 §6.4.7 COPY, RFC 6851 MOVE, RFC 4315 COPYUID
    internal async ValueTask CopyAsync(ImapCommand c, bool move)
    {
        RequireArgs(c, 2);
        var target = Decode(c.Args[1]);
        var targets = Targets(c, c.Args[0]);
        var sel = _selected!;
        if (move && sel.ReadOnly) throw ImapException.No("Mailbox is read-only", "READ-ONLY");
        var uids = targets.Select(t => t.Message.Uid).Where(u => !_pendingExpunges.Contains(u)).ToList();
        CopyResult? result;
        try
        {
            result = uids.Count == 0 ? null : await _server.Store.CopyAsync(_user!, sel.Name, uids, target, move, Token);
        }
        catch (FolderNotFoundException)
        {
            throw ImapException.No("No such mailbox", "TRYCREATE");
        }
        if (uids.Count > 0 && result is null) throw ImapException.No("Quota exceeded", "OVERQUOTA");
        if (target == sel.Name) _dirty = true;
        string? code = result is { SourceUids.Length: > 0 }
            ? string.Create(CultureInfo.InvariantCulture,
                $"COPYUID {result.UidValidity} {SequenceSet.Format(result.SourceUids)} {SequenceSet.Format(result.TargetUids)}")
            : null;
        if (!move)
        {
            await CompleteAsync(c, "COPY completed", code);
            return;
        }
        // RFC 6851 §4.3: COPYUID goes in an untagged OK before the expunges.
        if (code is not null) _w.Raw("* OK ["u8).Text(code).Raw("] Moved\r\n"u8);
        if (result is not null) _pendingExpunges.UnionWith(result.SourceUids.Where(u => sel.SeqOfUid(u) > 0));
        _dirty = true;
        await CompleteAsync(c, "MOVE completed");
    }

    // RFC 9051 §6.4.3 EXPUNGE, RFC 4315 UID EXPUNGE
    internal async ValueTask ExpungeAsync(ImapCommand c)
    {
        SequenceSet? set = null;
        if (c.Uid)
        {
            RequireArgs(c, 1);
            if (!SequenceSet.TryParse(c.Args[0], out var s)) throw ImapException.Bad("Invalid UID set");
            set = s;
        }
        else
        {
            RequireArgs(c, 0);
        }
        var sel = _selected!;
        if (sel.ReadOnly) throw ImapException.No("Mailbox is read-only", "READ-ONLY");
        await ExpungeDeletedAsync(sel, set);
        await CompleteAsync(c, "EXPUNGE completed");
    }

    /// <summary>Removes the \Deleted messages (optionally only those in a UID set) as the store knows them now.</summary>
    private async ValueTask ExpungeDeletedAsync(SelectedMailbox sel, SequenceSet? uidSet)
    {
        // Flags as stored now, not as last told: another session may have just set or cleared \Deleted.
        var current = await _server.Store.ListAsync(_user!, sel.Name, Token);
        long maxUid = current.Count > 0 ? current[^1].Uid : 0;
        var uids = current
            .Where(m => (m.Flags & MessageFlags.Deleted) != 0 && (uidSet is null || uidSet.Contains(m.Uid, maxUid)))
            .Select(m => m.Uid).ToList();
        if (uids.Count == 0) return;
        await _server.Store.ExpungeAsync(_user!, sel.Name, uids, Token);
        _pendingExpunges.UnionWith(uids.Where(u => sel.SeqOfUid(u) > 0));
        _dirty = true;
    }

    // RFC 9051 §6.4.1 CLOSE (silent expunge), RFC 3691 UNSELECT
    internal async ValueTask CloseAsync(ImapCommand c, bool expunge)
    {
        RequireArgs(c, 0);
        var sel = _selected!;
        if (expunge && !sel.ReadOnly) await ExpungeDeletedAsync(sel, null);
        Unselect();
        await CompleteAsync(c, $"{c.Name} completed");
    }
}
