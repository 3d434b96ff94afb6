using System.Globalization;
using Appliance.Store;

namespace Appliance.Imap;

/// <summary>Authenticated-state commands on mailboxes: NAMESPACE, LIST/LSUB (RFC 5258
/// LIST-EXTENDED, RFC 5819 LIST-STATUS, RFC 6154 SPECIAL-USE), STATUS, CREATE, DELETE, RENAME,
/// (UN)SUBSCRIBE, SELECT/EXAMINE (with CONDSTORE/QRESYNC), APPEND (MULTIAPPEND, UTF8), QUOTA.</summary>
internal sealed partial class ImapSession
{
    private static readonly string[] SpecialUses = [@"\All", @"\Archive", @"\Drafts", @"\Flagged", @"\Junk", @"\Sent", @"\Trash"];

    private string Decode(ImapValue value) => MailboxName.Decode(value, _utf8);

    private ImapWriter WriteMailbox(string name) => _w.AString(MailboxName.Encode(name, _utf8));

    // RFC 2342: one personal namespace, no prefix.
    internal ValueTask NamespaceAsync(ImapCommand c)
    {
        RequireArgs(c, 0);
        Untagged("NAMESPACE ((\"\" \"/\")) NIL NIL");
        return CompleteAsync(c, "NAMESPACE completed");
    }

    // RFC 9051 §6.3.9 LIST with RFC 5258 selection and return options; RFC 3501 §6.3.9 LSUB.
    internal async ValueTask ListAsync(ImapCommand c, bool lsub)
    {
        int i = 0;
        bool selSubscribed = false, selSpecialUse = false, recursive = false;
        // CHILDREN (RFC 3348) and SPECIAL-USE (RFC 6154) attributes are always returned, so
        // RETURN (CHILDREN) and RETURN (SPECIAL-USE) change nothing.
        bool retSubscribed = lsub;
        string[] statusItems = [];
        if (!lsub && i < c.Args.Count && c.Args[i].IsList)
        {
            foreach (var o in c.Args[i].Items)
            {
                switch (o.Keyword)
                {
                    case "SUBSCRIBED": selSubscribed = retSubscribed = true; break;
                    case "SPECIAL-USE": selSpecialUse = true; break;
                    case "RECURSIVEMATCH": recursive = true; break;
                    case "REMOTE": break;
                    default: throw ImapException.Bad("Unknown LIST selection option");
                }
            }
            if (recursive && !selSubscribed) throw ImapException.Bad("RECURSIVEMATCH needs another selection option");
            i++;
        }
        if (c.Args.Count < i + 2 || !c.Args[i].IsString) throw ImapException.Bad("Syntax: LIST reference mailbox");
        var reference = _utf8 ? c.Args[i].Text : MailboxName.DecodeUtf7(c.Args[i].Text) ?? throw ImapException.Bad("invalid reference");
        var patternArg = c.Args[i + 1];
        var patterns = (patternArg.IsList ? patternArg.Items : [patternArg])
            .Select(p => p.IsString ? (_utf8 ? p.Text : MailboxName.DecodeUtf7(p.Text) ?? throw ImapException.Bad("invalid pattern")) : throw ImapException.Bad("invalid pattern"))
            .ToList();
        i += 2;
        if (!lsub && i < c.Args.Count)
        {
            if (!c.Args[i].Is("RETURN") || i + 1 >= c.Args.Count || !c.Args[i + 1].IsList) throw ImapException.Bad("Syntax: RETURN (options)");
            var opts = c.Args[i + 1].Items;
            for (int k = 0; k < opts.Count; k++)
            {
                switch (opts[k].Keyword)
                {
                    case "SUBSCRIBED": retSubscribed = true; break;
                    case "CHILDREN" or "SPECIAL-USE": break;
                    case "STATUS" when k + 1 < opts.Count && opts[k + 1].IsList:
                        statusItems = ParseStatusItems(opts[++k]);
                        break;
                    default: throw ImapException.Bad("Unknown LIST return option");
                }
            }
            i += 2;
        }
        if (i != c.Args.Count) throw ImapException.Bad("Too many arguments");

        if (patterns.Count == 1 && patterns[0].Length == 0)
        {
            // RFC 9051 §6.3.9: the hierarchy delimiter and root.
            _w.Raw(lsub ? "* LSUB (\\Noselect) \"/\" \"\"\r\n"u8 : "* LIST (\\Noselect) \"/\" \"\"\r\n"u8);
            await CompleteAsync(c, $"{c.Name} completed");
            return;
        }

        var folders = await _server.Store.ListFoldersAsync(_user!, Token);
        var byName = folders.ToDictionary(f => f.Name, StringComparer.Ordinal);
        var subscribed = (await _server.Store.ListSubscriptionsAsync(_user!, Token)).ToHashSet(StringComparer.Ordinal);
        // Every existing name plus implied parents ("a" when only "a/b" exists) and, for
        // subscription listings, subscribed names that do not exist.
        var withChildren = Parents(folders.Select(f => f.Name));
        var withSubscribedChildren = Parents(subscribed);
        var names = new SortedSet<string>(folders.Select(f => f.Name), StringComparer.Ordinal);
        names.UnionWith(withChildren);
        if (selSubscribed || lsub) names.UnionWith(subscribed);

        foreach (var name in names)
        {
            if (!patterns.Any(p => MailboxName.Matches(MailboxName.Combine(reference, p), name))) continue;
            bool exists = byName.TryGetValue(name, out var info);
            bool isSubscribed = subscribed.Contains(name);
            bool childInfo = false;
            if (selSubscribed || lsub)
            {
                if (!isSubscribed)
                {
                    if (!(recursive && withSubscribedChildren.Contains(name))) continue;
                    childInfo = true;
                }
            }
            if (selSpecialUse && info?.SpecialUse is null) continue;

            var attrs = new List<string>();
            if (!exists) attrs.Add(lsub || !_rev2 && !selSubscribed ? @"\Noselect" : @"\NonExistent");
            attrs.Add(withChildren.Contains(name) ? @"\HasChildren" : @"\HasNoChildren");
            if (retSubscribed && isSubscribed && !lsub) attrs.Add(@"\Subscribed");
            if (info?.SpecialUse is { } use) attrs.Add(use);
            _w.Raw(lsub ? "* LSUB ("u8 : "* LIST ("u8).Text(string.Join(' ', attrs)).Raw(") \"/\" "u8);
            WriteMailbox(name);
            if (childInfo) _w.Raw(" (\"CHILDINFO\" (\"SUBSCRIBED\"))"u8);
            _w.Crlf();
            if (statusItems.Length > 0 && exists) WriteStatus(name, info!, statusItems);
            await FlushIfLargeAsync();
        }
        await CompleteAsync(c, $"{c.Name} completed");
    }

    /// <summary>Every superior name of the given names ("a" and "a/b" for "a/b/c").</summary>
    private static HashSet<string> Parents(IEnumerable<string> names)
    {
        var parents = new HashSet<string>(StringComparer.Ordinal);
        foreach (var n in names)
        {
            for (int d = n.IndexOf('/'); d > 0; d = n.IndexOf('/', d + 1)) parents.Add(n[..d]);
        }
        return parents;
    }

    private static string[] ParseStatusItems(ImapValue list)
    {
        if (!list.IsList || list.Items.Count == 0) throw ImapException.Bad("STATUS needs a list of items");
        var items = list.Items.Select(i => i.Keyword).ToArray();
        foreach (var item in items)
        {
            if (item is not ("MESSAGES" or "UIDNEXT" or "UIDVALIDITY" or "UNSEEN" or "DELETED" or "SIZE" or "HIGHESTMODSEQ" or "RECENT" or "APPENDLIMIT"))
                throw ImapException.Bad($"Unknown STATUS item {item}");
        }
        return items;
    }

    private void WriteStatus(string name, FolderInfo f, string[] items)
    {
        _w.Raw("* STATUS "u8);
        WriteMailbox(name).Raw(" ("u8);
        for (int k = 0; k < items.Length; k++)
        {
            if (k > 0) _w.Space();
            _w.Text(items[k]).Space();
            _w.Number(items[k] switch
            {
                "MESSAGES" => f.Messages,
                "UIDNEXT" => f.UidNext,
                "UIDVALIDITY" => f.UidValidity,
                "UNSEEN" => f.Unseen,
                "DELETED" => f.Deleted,
                "SIZE" => f.Size,
                "HIGHESTMODSEQ" => f.HighestModSeq,
                "APPENDLIMIT" => _server.MaxAppendBytes,
                _ => 0, // RECENT: this server has no \Recent (RFC 9051 removed it)
            });
        }
        _w.Raw(")\r\n"u8);
    }

    // RFC 9051 §6.3.11 (STATUS=SIZE RFC 8438, DELETED, APPENDLIMIT RFC 7889, HIGHESTMODSEQ RFC 7162)
    internal async ValueTask StatusAsync(ImapCommand c)
    {
        RequireArgs(c, 2);
        var name = Decode(c.Args[0]);
        var items = ParseStatusItems(c.Args[1]);
        if (items.Contains("HIGHESTMODSEQ")) _condStore = true;
        var info = await _server.Store.GetFolderInfoAsync(_user!, name, Token) ?? throw new FolderNotFoundException(name);
        WriteStatus(name, info, items);
        await CompleteAsync(c, "STATUS completed");
    }

    // RFC 9051 §6.3.4; RFC 6154 §3 CREATE-SPECIAL-USE: CREATE name (USE (\Sent))
    internal async ValueTask CreateAsync(ImapCommand c)
    {
        if (c.Args.Count is < 1 or > 2) throw ImapException.Bad("Syntax: CREATE mailbox [(USE (attributes))]");
        var name = Decode(c.Args[0]);
        string? use = null;
        if (c.Args.Count == 2)
        {
            var p = c.Args[1];
            if (!p.IsList || p.Items.Count != 2 || !p.Items[0].Is("USE") || !p.Items[1].IsList) throw ImapException.Bad("Syntax: (USE (attributes))");
            foreach (var a in p.Items[1].Items)
            {
                var attr = SpecialUses.FirstOrDefault(s => s.Equals(a.Text, StringComparison.OrdinalIgnoreCase))
                    ?? throw ImapException.No("Unsupported special-use attribute", "USEATTR");
                if (use is not null && use != attr) throw ImapException.No("One special use per mailbox", "USEATTR");
                use = attr;
            }
        }
        if (name == MailStore.Inbox) throw new FolderExistsException(name);
        // The store creates missing parents too (RFC 9051 §6.3.4 SHOULD), so the hierarchy stays selectable.
        await _server.Store.CreateFolderAsync(_user!, name, use, Token);
        await CompleteAsync(c, "CREATE completed");
    }

    // RFC 9051 §6.3.5: children stay (the name becomes \NonExistent when it has any).
    internal async ValueTask DeleteAsync(ImapCommand c)
    {
        RequireArgs(c, 1);
        var name = Decode(c.Args[0]);
        if (name == MailStore.Inbox) throw ImapException.No("INBOX cannot be deleted", "CANNOT");
        bool wasSelected = _selected?.Name == name;
        await _server.Store.DeleteFolderAsync(_user!, name, Token);
        if (wasSelected)
        {
            Unselect();
            Untagged("OK [CLOSED] Mailbox deleted");
        }
        await CompleteAsync(c, "DELETE completed");
    }

    // RFC 9051 §6.3.6, INBOX included (its messages move, INBOX stays, empty).
    internal async ValueTask RenameAsync(ImapCommand c)
    {
        RequireArgs(c, 2);
        var from = Decode(c.Args[0]);
        var to = Decode(c.Args[1]);
        if (to == MailStore.Inbox) throw new FolderExistsException(to);
        if (to.StartsWith(from + "/", StringComparison.Ordinal)) throw ImapException.No("A mailbox cannot move under itself", "CANNOT");
        await _server.Store.RenameFolderAsync(_user!, from, to, Token);
        if (_selected is { } sel && from != MailStore.Inbox)
        {
            if (sel.Name == from) sel.Rename(to);
            else if (sel.Name.StartsWith(from + "/", StringComparison.Ordinal)) sel.Rename(to + sel.Name[from.Length..]);
            _selectedName = sel.Name;
        }
        if (_selected?.Name == MailStore.Inbox && from == MailStore.Inbox) _dirty = true;
        await CompleteAsync(c, "RENAME completed");
    }

    // RFC 9051 §6.3.7 / §6.3.8
    internal async ValueTask SubscribeAsync(ImapCommand c, bool subscribe)
    {
        RequireArgs(c, 1);
        await _server.Store.SetSubscribedAsync(_user!, Decode(c.Args[0]), subscribe, Token);
        await CompleteAsync(c, $"{c.Name} completed");
    }

    // RFC 9051 §6.3.2 / §6.3.3 with RFC 7162 §3.1.8 (CONDSTORE) and §3.2.5 (QRESYNC)
    internal async ValueTask SelectAsync(ImapCommand c, bool readOnly)
    {
        if (c.Args.Count is < 1 or > 2) throw ImapException.Bad($"Syntax: {c.Name} mailbox [(parameters)]");
        var name = Decode(c.Args[0]);
        (long UidValidity, long ModSeq, SequenceSet? Known)? qresync = null;
        if (c.Args.Count == 2)
        {
            if (!c.Args[1].IsList) throw ImapException.Bad("SELECT parameters must be a list");
            var ps = c.Args[1].Items;
            for (int k = 0; k < ps.Count; k++)
            {
                if (ps[k].Is("CONDSTORE")) _condStore = true;
                else if (ps[k].Is("QRESYNC") && k + 1 < ps.Count && ps[k + 1].IsList)
                {
                    if (!_qresync) throw ImapException.Bad("ENABLE QRESYNC first");
                    qresync = ParseQresync(ps[++k]);
                }
                else throw ImapException.Bad("Unknown SELECT parameter");
            }
        }

        if (_selected is not null)
        {
            Unselect();
            if (_qresync || _rev2) Untagged("OK [CLOSED] Previous mailbox closed");
        }
        // Listen before reading, so nothing that happens in between is missed.
        _selectedName = name;
        _dirty = false;
        var info = await _server.Store.GetFolderInfoAsync(_user!, name, Token);
        if (info is null)
        {
            _selectedName = null;
            throw ImapException.No("No such mailbox", "NONEXISTENT");
        }
        var messages = await _server.Store.ListAsync(_user!, name, Token);
        var view = new SelectedMailbox(name, readOnly, info.UidValidity, [.. messages])
        {
            HighestModSeq = info.HighestModSeq,
            UidNext = Math.Max(info.UidNext, messages.Count > 0 ? messages[^1].Uid + 1 : 1),
        };
        _selected = view;
        _state = ImapStates.Selected;
        _pendingExpunges.Clear();

        _w.Raw("* FLAGS "u8).Text(ImapFlags.SelectFlags).Crlf();
        _w.Raw("* "u8).Number(view.Count).Raw(" EXISTS\r\n"u8);
        if (!_rev2)
        {
            _w.Raw("* 0 RECENT\r\n"u8);
            int firstUnseen = view.Messages.FindIndex(m => (m.Flags & MessageFlags.Seen) == 0);
            if (firstUnseen >= 0) _w.Raw("* OK [UNSEEN "u8).Number(firstUnseen + 1).Raw("] First unseen\r\n"u8);
        }
        _w.Raw("* OK [UIDVALIDITY "u8).Number(view.UidValidity).Raw("] UIDs valid\r\n"u8);
        _w.Raw("* OK [UIDNEXT "u8).Number(view.UidNext).Raw("] Predicted next UID\r\n"u8);
        _w.Raw("* OK [PERMANENTFLAGS "u8).Text(readOnly ? "()" : ImapFlags.PermanentFlags).Raw("] Flags permitted\r\n"u8);
        _w.Raw("* OK [HIGHESTMODSEQ "u8).Number(view.HighestModSeq).Raw("] Highest\r\n"u8);
        if (info.SpecialUse is { } use && _rev2)
        {
            _w.Raw("* LIST ("u8).Text(use).Raw(") \"/\" "u8);
            WriteMailbox(name).Crlf();
        }
        if (qresync is { } q && q.UidValidity == view.UidValidity) await ResyncAsync(q.ModSeq, q.Known);
        _w.Text(c.Tag).Raw(readOnly ? " OK [READ-ONLY] "u8 : " OK [READ-WRITE] "u8).Text(c.Name).Raw(" completed\r\n"u8);
        await FlushAsync();
    }

    private static (long, long, SequenceSet?) ParseQresync(ImapValue list)
    {
        var p = list.Items;
        if (p.Count is < 2 or > 4 || !p[0].TryGetNumber(out long uidValidity) || !p[1].TryGetNumber(out long modSeq) || uidValidity == 0)
            throw ImapException.Bad("Syntax: QRESYNC (uidvalidity modseq [known-uids [seq-match]])");
        SequenceSet? known = null;
        if (p.Count >= 3)
        {
            if (!SequenceSet.TryParse(p[2], out var k)) throw ImapException.Bad("invalid known-uids");
            known = k;
        }
        // The sequence-match data (p[3]) only helps servers that cannot list expunged UIDs; this one keeps tombstones.
        return (uidValidity, modSeq, known);
    }

    /// <summary>QRESYNC (RFC 7162 §3.2.5.1): what changed since the client's MODSEQ, as VANISHED (EARLIER) and FETCH.</summary>
    private async ValueTask ResyncAsync(long sinceModSeq, SequenceSet? known)
    {
        var sel = _selected!;
        var changes = await _server.Store.GetChangesAsync(_user!, sel.Name, sinceModSeq, Token);
        WriteVanishedEarlier(changes, known);
        long maxUid = sel.Messages.Count > 0 ? sel.Messages[^1].Uid : 0;
        foreach (var m in changes.Changed)
        {
            int seq = sel.SeqOfUid(m.Uid);
            if (seq == 0 || known is not null && !known.Contains(m.Uid, maxUid)) continue;
            WriteFlagsFetch(seq, sel.Messages[seq - 1], includeUid: true);
        }
    }

    private void Unselect()
    {
        _selected = null;
        _selectedName = null;
        _pendingExpunges.Clear();
        _state = ImapStates.Authenticated;
    }

    // RFC 9051 §6.3.12 with RFC 3502 MULTIAPPEND, RFC 4315 APPENDUID, RFC 6855 UTF8 (literal8), RFC 3516 binary literals.
    internal async ValueTask AppendAsync(ImapCommand c)
    {
        if (c.Args.Count < 2) throw ImapException.Bad("Syntax: APPEND mailbox [(flags)] [date-time] message");
        var name = Decode(c.Args[0]);
        var messages = new List<NewMessage>();
        int i = 1;
        while (i < c.Args.Count)
        {
            var flags = MessageFlags.None;
            string[] keywords = [];
            var date = DateTimeOffset.UtcNow;
            if (c.Args[i].IsList)
            {
                (flags, keywords) = ImapFlags.Parse(c.Args[i]);
                i++;
            }
            if (i < c.Args.Count && c.Args[i].Kind == ImapValueKind.Quoted)
            {
                date = ParseDateTime(c.Args[i].Text);
                i++;
            }
            if (i >= c.Args.Count) throw ImapException.Bad("APPEND needs a message literal");
            var data = c.Args[i];
            if (data.Is("UTF8") && i + 1 < c.Args.Count && c.Args[i + 1] is { IsList: true, Items: [{ Kind: ImapValueKind.Literal } inner] })
            {
                data = inner;
                i++;
            }
            if (data.Kind != ImapValueKind.Literal) throw ImapException.Bad("APPEND needs a message literal");
            i++;
            if (data.Bytes.Length == 0) throw ImapException.No("Empty message", "CANNOT");
            using var stream = new MemoryStream(data.Bytes, writable: false);
            messages.Add(new NewMessage(data.Bytes, MessageStructure.Parse(stream), date, flags, keywords));
        }

        AppendResult? result;
        try
        {
            result = await _server.Store.AppendAsync(_user!, name, messages, Token);
        }
        catch (FolderNotFoundException)
        {
            throw ImapException.No("No such mailbox", "TRYCREATE");
        }
        if (result is null) throw ImapException.No("Quota exceeded", "OVERQUOTA");
        if (_selected?.Name == name) _dirty = true;
        await CompleteAsync(c, "APPEND completed",
            string.Create(CultureInfo.InvariantCulture, $"APPENDUID {result.UidValidity} {SequenceSet.Format(result.Uids)}"));
    }

    /// <summary>RFC 9051 date-time: "dd-Mon-yyyy hh:mm:ss +zzzz" (day may be space-padded).</summary>
    internal static DateTimeOffset ParseDateTime(string text)
    {
        if (DateTimeOffset.TryParseExact(text.TrimStart(), "d-MMM-yyyy HH:mm:ss zzzz",
                CultureInfo.InvariantCulture, DateTimeStyles.None, out var value))
            return value;
        throw ImapException.Bad("Invalid date-time");
    }

    // RFC 9208: one quota root "" per account with the STORAGE resource (in units of 1024 octets).
    internal async ValueTask GetQuotaRootAsync(ImapCommand c)
    {
        RequireArgs(c, 1);
        var name = Decode(c.Args[0]);
        if (await _server.Store.GetFolderInfoAsync(_user!, name, Token) is null) throw new FolderNotFoundException(name);
        _w.Raw("* QUOTAROOT "u8);
        WriteMailbox(name);
        if (_user!.QuotaBytes > 0)
        {
            _w.Raw(" \"\"\r\n"u8);
            WriteQuota();
        }
        else
        {
            _w.Crlf();
        }
        await CompleteAsync(c, "GETQUOTAROOT completed");
    }

    internal async ValueTask GetQuotaAsync(ImapCommand c)
    {
        RequireArgs(c, 1);
        if (!c.Args[0].IsString || c.Args[0].Text.Length != 0 || _user!.QuotaBytes <= 0) throw ImapException.No("No such quota root", "NONEXISTENT");
        WriteQuota();
        await CompleteAsync(c, "GETQUOTA completed");
    }

    internal ValueTask SetQuotaAsync(ImapCommand c) =>
        throw ImapException.No("Quotas are set by the administrator", "NOPERM");

    private void WriteQuota()
    {
        var (bytes, _) = _server.Store.Usage(_user!);
        _w.Raw("* QUOTA \"\" (STORAGE "u8).Number((bytes + 1023) / 1024).Space().Number(_user!.QuotaBytes / 1024).Raw(")\r\n"u8);
    }
}
