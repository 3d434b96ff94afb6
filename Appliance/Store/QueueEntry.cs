namespace Appliance.Store;

/// <summary>Where one recipient of a queued message stands.</summary>
public enum RecipientState
{
    /// <summary>Not delivered yet: tried again at the entry's next attempt.</summary>
    Queued = 0,
    /// <summary>Accepted by the next hop (or stored in a local mailbox).</summary>
    Sent = 1,
    /// <summary>Refused for good, or not delivered within the queue lifetime: bounced to the sender.</summary>
    Failed = 2,
}

/// <summary>
/// One recipient of a queued message: its state, the last answer about it (the remote reply, or
/// our own reason), when that changed (unix ms), and the DSN parameters the client gave
/// (RFC 3461 ORCPT and NOTIFY, null when absent).
/// </summary>
public sealed record QueuedRecipient(string Address, RecipientState State, string Reply, long Updated, string? Orcpt = null, string? Notify = null);

/// <summary>
/// A message in the outbound queue of a partition, without its bytes. Times are unix ms.
/// <see cref="Sender"/> is the envelope sender ("" for the null sender of a bounce),
/// <see cref="Account"/> the authenticated user who sent it ("" when none), <see cref="EnvId"/>
/// and <see cref="Ret"/> the RFC 3461 ENVID and RET of the submission.
/// </summary>
public sealed record QueueEntry(
    string Id, long Created, string Sender, string Account, long Size, bool Held, int Attempts, long NextAttempt,
    bool DelayNotified, string LastError, string? EnvId, string? Ret, QueuedRecipient[] Recipients)
{
    /// <summary>The partition whose unit holds the entry (set when read).</summary>
    public string Partition { get; init; } = "";
}
