using Appliance.Directory;

namespace Appliance.Store;

// The folder-level API IMAP needs. Every mutation is journalled, durable when the task
// completes, and published on Changes after commit.
public sealed partial class MailStore
{
    /// <summary>The special-use folders every new mailbox gets (RFC 6154), with their attribute.</summary>
    public static readonly IReadOnlyList<(string Name, string SpecialUse)> DefaultFolders =
        [("Drafts", @"\Drafts"), ("Sent", @"\Sent"), ("Trash", @"\Trash"), ("Junk", @"\Junk"), ("Archive", @"\Archive")];

    /// <summary>Folder change notifications for live sessions.</summary>
    public ChangeFeed Changes { get; } = new();

    /// <summary>All folders of the account, INBOX first then by name (INBOX created when missing).</summary>
    public Task<IReadOnlyList<FolderInfo>> ListFoldersAsync(MailUser user, CancellationToken ct) => throw new NotImplementedException();

    /// <summary>One folder with counts, or null.</summary>
    public Task<FolderInfo?> GetFolderInfoAsync(MailUser user, string folder, CancellationToken ct) => throw new NotImplementedException();

    /// <summary>Creates a folder. Throws <see cref="FolderExistsException"/>.</summary>
    public Task CreateFolderAsync(MailUser user, string folder, string? specialUse, CancellationToken ct) => throw new NotImplementedException();

    /// <summary>Deletes a folder and its messages (not its children). Throws <see cref="FolderNotFoundException"/>; INBOX cannot be deleted (InvalidOperationException).</summary>
    public Task DeleteFolderAsync(MailUser user, string folder, CancellationToken ct) => throw new NotImplementedException();

    /// <summary>
    /// Renames a folder and its children ("a" → "b" also moves "a/x" → "b/x"), keeping UIDVALIDITY
    /// and UIDs. Renaming INBOX moves its messages to a new folder and leaves INBOX empty
    /// (RFC 9051 §6.3.6). Throws <see cref="FolderNotFoundException"/> / <see cref="FolderExistsException"/>.
    /// </summary>
    public Task RenameFolderAsync(MailUser user, string from, string to, CancellationToken ct) => throw new NotImplementedException();

    /// <summary>Subscriptions may name folders that do not exist (RFC 9051 §6.3.7).</summary>
    public Task SetSubscribedAsync(MailUser user, string folder, bool subscribed, CancellationToken ct) => throw new NotImplementedException();

    /// <summary>Subscribed names, including those with no folder.</summary>
    public Task<IReadOnlyList<string>> ListSubscriptionsAsync(MailUser user, CancellationToken ct) => throw new NotImplementedException();

    /// <summary>
    /// Appends messages all-or-nothing (MULTIAPPEND). Null when the quota would be exceeded;
    /// throws <see cref="FolderNotFoundException"/> when the folder is missing.
    /// </summary>
    public Task<AppendResult?> AppendAsync(MailUser user, string folder, IReadOnlyList<NewMessage> messages, CancellationToken ct) => throw new NotImplementedException();

    /// <summary>
    /// Copies (or moves: copy and expunge in one atomic step) messages to another folder of
    /// the same account. UIDs that no longer exist are skipped. Null when a copy would exceed
    /// the quota (a move never does). Throws <see cref="FolderNotFoundException"/> for a missing target.
    /// </summary>
    public Task<CopyResult?> CopyAsync(MailUser user, string folder, IReadOnlyCollection<long> uids, string target, bool move, CancellationToken ct) => throw new NotImplementedException();

    /// <summary>
    /// Changes flags of the given messages atomically; with <paramref name="unchangedSince"/>,
    /// messages whose MODSEQ is greater are left alone and reported in Modified. Messages
    /// whose flags would not change are not touched (no new MODSEQ) and not reported.
    /// </summary>
    public Task<StoreFlagsResult> StoreFlagsAsync(MailUser user, string folder, IReadOnlyCollection<long> uids, FlagMode mode,
        MessageFlags flags, string[] keywords, long? unchangedSince, CancellationToken ct) => throw new NotImplementedException();

    /// <summary>What changed in a folder after <paramref name="sinceModSeq"/> (QRESYNC, session resync).</summary>
    public Task<FolderChanges> GetChangesAsync(MailUser user, string folder, long sinceModSeq, CancellationToken ct) => throw new NotImplementedException();

    /// <summary>The parsed IMAP structure of the given messages (those that still exist).</summary>
    public Task<IReadOnlyDictionary<long, MessageStructure>> GetStructuresAsync(MailUser user, string folder, IReadOnlyCollection<long> uids, CancellationToken ct) => throw new NotImplementedException();

    /// <summary>
    /// UIDs of messages whose field contains <paramref name="text"/> (case-insensitive, after
    /// decoding MIME encodings and charsets), via the full-text index. For
    /// <see cref="TextField.Header"/>, <paramref name="headerName"/> names the header field;
    /// an empty text then means "has the header".
    /// </summary>
    public Task<IReadOnlySet<long>> SearchTextAsync(MailUser user, string folder, TextField field, string text, string? headerName, CancellationToken ct) => throw new NotImplementedException();

    /// <summary>Sort and thread keys of the given messages.</summary>
    public Task<IReadOnlyList<MessageSortInfo>> GetSortInfoAsync(MailUser user, string folder, IReadOnlyCollection<long> uids, CancellationToken ct) => throw new NotImplementedException();

    /// <summary>Bytes and message count of the account (QUOTA STORAGE and MESSAGE).</summary>
    public (long Bytes, long Messages) Usage(MailUser user) => throw new NotImplementedException();
}
