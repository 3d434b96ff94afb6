using Appliance.Store;

namespace Appliance.Imap;

/// <summary>
/// Evaluates a search-key tree over the selected-mailbox view.
///
/// Implementation notes: keys answered from the view (flags, sets, sizes, internal dates,
/// MODSEQ) cost nothing; text keys need the store's full-text search and SENT* keys its sort
/// info. So evaluation uses three-valued logic: a key whose data is not fetched yet is
/// "unknown", and And/Or/Not follow Kleene's rules (false And unknown = false). Each pass
/// decides what it can; while messages stay undecided, the first unknown text key met is
/// fetched (once per distinct key, for the whole folder) or the sort info of the undecided
/// messages is, and the pass repeats. A text key behind cheap keys that already failed is
/// therefore never sent to the store.
///
/// Dates compare by date only (RFC 9051 §6.4.4): BEFORE/ON/SINCE use the date part of the
/// internal date in the offset it was stored with; SENT* use the date part of
/// <see cref="MessageSortInfo.SentDate"/>, which the store gives in UTC (not the sender's zone).
/// </summary>
public sealed class ImapSearchEvaluator(ISearchSource source, SelectedMailbox mailbox)
{
    private readonly Dictionary<TextKey, IReadOnlySet<long>> _text = [];
    private Dictionary<long, MessageSortInfo>? _sortInfo;
    private TextKey? _pendingText;
    private bool _needSortInfo;

    /// <summary>Sort info fetched so far (for SORT/THREAD to reuse), keyed by UID.</summary>
    public Dictionary<long, MessageSortInfo>? SortInfo => _sortInfo;

    /// <summary>Matching messages, ascending by sequence number.</summary>
    public async Task<List<(int Seq, StoredMessage Message)>> EvaluateAsync(SearchKey key, CancellationToken ct)
    {
        var messages = mailbox.Messages;
        long maxUid = messages.Count == 0 ? 0 : messages[^1].Uid;
        var undecided = Enumerable.Range(1, messages.Count).ToList();
        var matched = new List<int>();
        while (true)
        {
            _pendingText = null;
            _needSortInfo = false;
            var next = new List<int>();
            foreach (var seq in undecided)
            {
                // Only a message left undecided may ask for data: one decided by cheap keys
                // must not make the store run a text search.
                var (pendingText, needSortInfo) = (_pendingText, _needSortInfo);
                var result = Eval(key, seq, messages[seq - 1], maxUid);
                if (result is null) next.Add(seq);
                else (_pendingText, _needSortInfo) = (pendingText, needSortInfo);
                if (result == true) matched.Add(seq);
            }
            undecided = next;
            if (undecided.Count == 0) break;
            if (_pendingText is { } text)
            {
                _text[text] = await source.SearchTextAsync(text.Field, text.Text, text.HeaderName, ct);
            }
            else if (_needSortInfo)
            {
                var infos = await source.GetSortInfoAsync(undecided.Select(s => messages[s - 1].Uid).ToList(), ct);
                _sortInfo ??= [];
                foreach (var info in infos) _sortInfo[info.Uid] = info;
                // A message gone from the store meanwhile: its sent date falls back to the internal date.
                foreach (var s in undecided)
                {
                    var m = messages[s - 1];
                    if (!_sortInfo.ContainsKey(m.Uid)) _sortInfo[m.Uid] = Fallback(m);
                }
            }
            else
            {
                throw new InvalidOperationException("search evaluation made no progress");
            }
        }
        matched.Sort();
        return matched.Select(s => (s, messages[s - 1])).ToList();
    }

    /// <summary>Sort info for messages the store no longer has: empty strings, internal date as sent date.</summary>
    public static MessageSortInfo Fallback(StoredMessage m) =>
        new(m.Uid, m.InternalDate, "", false, "", "", "", "", "", "", "", []);

    private bool? Eval(SearchKey key, int seq, StoredMessage m, long maxUid)
    {
        switch (key)
        {
            case AllKey: return true;
            case NoneKey: return false;
            case FlagKey f: return ((m.Flags & f.Flag) != 0) == f.Set;
            case KeywordKey k: return m.Keywords.Contains(k.Keyword, StringComparer.OrdinalIgnoreCase) == k.Set;
            case SequenceKey s: return s.Set.Contains(seq, mailbox.Count);
            case UidKey u: return u.Set.Contains(m.Uid, maxUid);
            case SizeKey z: return z.Larger ? m.Size > z.Size : m.Size < z.Size;
            case ModSeqKey ms: return m.ModSeq >= ms.ModSeq;
            case DateKey d:
                {
                    DateOnly date;
                    if (!d.Sent) date = DateOnly.FromDateTime(m.InternalDate.DateTime);
                    else if (_sortInfo is not null && _sortInfo.TryGetValue(m.Uid, out var info)) date = DateOnly.FromDateTime(info.SentDate.DateTime);
                    else
                    {
                        _needSortInfo = true;
                        return null;
                    }
                    return d.Comparison switch
                    {
                        DateComparison.Before => date < d.Date,
                        DateComparison.On => date == d.Date,
                        _ => date >= d.Date,
                    };
                }
            case TextKey t:
                if (_text.TryGetValue(t, out var uids)) return uids.Contains(m.Uid);
                _pendingText ??= t;
                return null;
            case NotKey n: return !Eval(n.Key, seq, m, maxUid);
            case OrKey o:
                {
                    var left = Eval(o.Left, seq, m, maxUid);
                    if (left == true) return true;
                    var right = Eval(o.Right, seq, m, maxUid);
                    if (right == true) return true;
                    return left is null || right is null ? null : false;
                }
            case AndKey a:
                {
                    bool unknown = false;
                    foreach (var k in a.Keys)
                    {
                        var r = Eval(k, seq, m, maxUid);
                        if (r == false) return false;
                        if (r is null) unknown = true;
                    }
                    return unknown ? null : true;
                }
            default: throw new InvalidOperationException($"unknown search key {key}");
        }
    }
}
