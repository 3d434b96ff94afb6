using Appliance.Directory;
namespace Appliance.Store;

// Types of the folder-level store API used by IMAP (and later webmail). Folder names are
// plain Unicode strings with '/' as the hierarchy delimiter; "INBOX" is always spelled so.

/// <summary>One folder of an account as LIST / STATUS need it.</summary>
public sealed record FolderInfo(
    string Name,
    long UidValidity,
    long UidNext,
    long HighestModSeq,
    int Messages,
    int Unseen,
    int Deleted,
    long Size,
    bool Subscribed,
    string? SpecialUse);

/// <summary>A message to append: bytes, the structure parsed from them, and its initial state.</summary>
public sealed record NewMessage(
    ReadOnlyMemory<byte> Data,
    MessageStructure Structure,
    DateTimeOffset InternalDate,
    MessageFlags Flags,
    string[] Keywords);

/// <summary>UIDs given to appended (or copied) messages, in order (RFC 4315 APPENDUID).</summary>
public sealed record AppendResult(long UidValidity, long[] Uids);

/// <summary>RFC 4315 COPYUID: source UIDs (ascending) and the UID each got in the target.</summary>
public sealed record CopyResult(long UidValidity, long[] SourceUids, long[] TargetUids);

/// <summary>How STORE combines the given flags with the current ones (RFC 9051 §6.4.6).</summary>
public enum FlagMode { Replace, Add, Remove }

/// <summary>The state of one message after a flag change.</summary>
public sealed record FlagUpdate(long Uid, MessageFlags Flags, string[] Keywords, long ModSeq);

/// <summary>
/// Outcome of a STORE: messages whose flags changed (with their new MODSEQ), and those not
/// changed because their MODSEQ was above UNCHANGEDSINCE (RFC 7162 §3.1.3 MODIFIED).
/// </summary>
public sealed record StoreFlagsResult(IReadOnlyList<FlagUpdate> Updated, IReadOnlyList<long> Modified);

/// <summary>
/// Everything that changed in a folder after a MODSEQ: messages added or re-flagged (with
/// their current state) and UIDs expunged since (from tombstones, for EXPUNGE/VANISHED).
/// </summary>
public sealed record FolderChanges(long HighestModSeq, long UidNext, IReadOnlyList<StoredMessage> Changed, IReadOnlyList<long> Expunged);

/// <summary>Where SEARCH looks for a string (RFC 9051 §6.4.4): always a case-insensitive substring match.</summary>
public enum TextField { Body, Text, Subject, From, To, Cc, Bcc, Header }

/// <summary>Per-message values SORT and THREAD need (RFC 5256), decoded and ready to compare.</summary>
/// <param name="SentDate">Date header (UTC), or the internal date when absent or unparsable.</param>
/// <param name="BaseSubject">RFC 5256 §2.1 base subject.</param>
/// <param name="SubjectIsReply">The subject had Re:/Fwd: style prefixes (for ORDEREDSUBJECT/REFERENCES).</param>
/// <param name="From">addr-mailbox of the first From address, lower case ("" when none).</param>
/// <param name="To">addr-mailbox of the first To address.</param>
/// <param name="Cc">addr-mailbox of the first Cc address.</param>
/// <param name="DisplayFrom">RFC 5957 display name of the first From address, else its addr-spec.</param>
/// <param name="DisplayTo">RFC 5957 display name of the first To address, else its addr-spec.</param>
/// <param name="MessageId">Message-ID without angle brackets, "" when none.</param>
/// <param name="InReplyTo">First message id of In-Reply-To, "" when none.</param>
/// <param name="References">Message ids of References in order, without brackets.</param>
public sealed record MessageSortInfo(
    long Uid,
    DateTimeOffset SentDate,
    string BaseSubject,
    bool SubjectIsReply,
    string From,
    string To,
    string Cc,
    string DisplayFrom,
    string DisplayTo,
    string MessageId,
    string InReplyTo,
    string[] References);

/// <summary>What a folder listing is sorted by (<see cref="MailStore.ListPageAsync"/>).</summary>
public enum MessageOrder { Date, From, Subject, Size }

/// <summary>One row of a folder listing.</summary>
/// <param name="Date">The Date header, else the internal date.</param>
/// <param name="FromName">Decoded display name of the first From address, "" when none.</param>
/// <param name="FromAddress">Address of the first From address, "" when none.</param>
/// <param name="To">RFC 5957 display of the first To address (its name, else its address), "" when none.</param>
/// <param name="Subject">The decoded subject, in full (not the base subject).</param>
/// <param name="Depth">Thread depth (0 for a thread's first message), 0 unless the listing is threaded.</param>
public sealed record MessageSummary(long Uid, MessageFlags Flags, string[] Keywords, DateTimeOffset Date, long Size,
    string FromName, string FromAddress, string To, string Subject, int Depth);

/// <summary>One page of a folder listing; <see cref="Total"/> counts all the rows the page is taken from.</summary>
public sealed record MessagePage(int Total, IReadOnlyList<MessageSummary> Messages);

public sealed class FolderNotFoundException(string folder) : Exception($"no folder {folder}")
{
    public string Folder { get; } = folder;
}

public sealed class FolderExistsException(string folder) : Exception($"folder {folder} exists")
{
    public string Folder { get; } = folder;
}

/// <summary>
/// Change notifications for live sessions (IDLE, and the untagged updates of the next command).
/// Published after the change is committed; a subscriber is told which folder of its account
/// changed and re-reads the changes itself, so notifications may be coalesced or duplicated.
/// Callbacks run right after the commit, on the thread of the task that made the change (not on the
/// store's writer loop): they must only signal, never block or do I/O.
/// </summary>
public sealed class ChangeFeed
{
    private readonly Dictionary<string, List<Action<string>>> _subscribers = new(StringComparer.OrdinalIgnoreCase);

    public IDisposable Subscribe(string account, Action<string> onFolderChanged)
    {
        lock (_subscribers)
        {
            if (!_subscribers.TryGetValue(account, out var list)) _subscribers[account] = list = [];
            list.Add(onFolderChanged);
        }
        return new Subscription(this, account, onFolderChanged);
    }

    internal void Publish(string account, string folder)
    {
        Action<string>[] targets;
        lock (_subscribers)
        {
            if (!_subscribers.TryGetValue(account, out var list)) return;
            targets = [.. list];
        }
        foreach (var t in targets) t(folder);
    }

    private void Unsubscribe(string account, Action<string> callback)
    {
        lock (_subscribers)
        {
            if (!_subscribers.TryGetValue(account, out var list)) return;
            list.Remove(callback);
            if (list.Count == 0) _subscribers.Remove(account);
        }
    }

    private sealed class Subscription(ChangeFeed feed, string account, Action<string> callback) : IDisposable
    {
        private int _disposed;
        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) feed.Unsubscribe(account, callback);
        }
    }
}

/// <summary>
/// Receives a primary partition's journal records as they are committed and says when they
/// are durable on the peer too (the cluster's replication; see Cluster/ReplicationSender).
/// </summary>
public interface IReplicationSink
{
    /// <summary>Called on the writer loop, in sequence order, once the records are written and before this node's fsync: must not block.</summary>
    void Ship(IReadOnlyList<JournalRecord> records);
    /// <summary>Completes when every record up to <paramref name="seq"/> is durable wherever it must be (peer, or the peer is known outdated or fenced); faults if the unit is being demoted.</summary>
    Task WhenDurableAsync(long seq);
}

/// <summary>The partition (logical unit) is not active on this node, or is moving: try again shortly.</summary>
public sealed class UnitUnavailableException(string message) : Exception(message);

/// <summary>
/// Delivery to a partition active on the other node of a pair (internal delivery over the
/// cluster links; set on the store by the cluster manager).
/// </summary>
public interface IRemoteDelivery
{
    /// <summary>Whether the partition is active on the other node right now.</summary>
    bool Serves(string partition);
    /// <summary>Delivers there, durable on both nodes when it returns; the UID, or null when over quota.</summary>
    Task<long?> DeliverAsync(MailUser user, string folder, ReadOnlyMemory<byte> data, DeliveryState state, CancellationToken ct);
    /// <summary>Claims a vacation reply there (<see cref="Partition.ClaimVacationAsync"/>): true when it may be sent.</summary>
    Task<bool> ClaimVacationAsync(MailUser user, string handle, string sender, DateTimeOffset now, DateTimeOffset until, CancellationToken ct);
}

/// <summary>How a delivered message starts out: its flags and keywords, and whether its folder is created when missing.</summary>
public sealed record DeliveryState(MessageFlags Flags, string[] Keywords, bool CreateFolder)
{
    public static readonly DeliveryState Plain = new(MessageFlags.None, [], false);
}
