using Appliance.Directory;

namespace Appliance.Store;

/// <summary>One message as listed from a folder (ordered by UID).</summary>
public sealed record StoredMessage(
    long Uid,
    long Size,
    DateTimeOffset InternalDate,
    MessageFlags Flags,
    string[] Keywords,
    long ModSeq,
    string BlobId);

[Flags]
public enum MessageFlags
{
    None = 0,
    Seen = 1,
    Answered = 2,
    Flagged = 4,
    Deleted = 8,
    Draft = 16,
}

public sealed record FolderStatus(string Name, long UidValidity, long UidNext, long HighestModSeq, int Messages);

/// <summary>Outcome of delivering one message to one mailbox.</summary>
public enum DeliveryOutcome { Delivered, OverQuota, NoSuchMailbox }

/// <summary>
/// The mailbox store as protocol servers use it. Every mutation is journalled and durable
/// (fsync) when the returned task completes. Kept behind an interface so a farm can put the
/// store on another engine later (DESIGN.md §1).
/// </summary>
public interface IMailStore
{
    Task<FolderStatus> GetFolderAsync(MailUser user, string folder, CancellationToken ct);
    Task<IReadOnlyList<StoredMessage>> ListAsync(MailUser user, string folder, CancellationToken ct);
    /// <summary>Opens the immutable bytes of a message for reading.</summary>
    Stream OpenMessage(MailUser user, StoredMessage message);
    /// <summary>Removes the messages with these UIDs (those already gone are ignored).</summary>
    Task ExpungeAsync(MailUser user, string folder, IReadOnlyCollection<long> uids, CancellationToken ct);
    /// <summary>Bytes used by the mailbox (for quota).</summary>
    long UsedBytes(MailUser user);
    /// <summary>Whether the mailbox's partition is active on this node (always true on a single node).</summary>
    bool IsServedHere(MailUser user);
    /// <summary>Cancelled when the mailbox's partition stops being active here (never, on a single node).</summary>
    CancellationToken Tenure(MailUser user);
}
