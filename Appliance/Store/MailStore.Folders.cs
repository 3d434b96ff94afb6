using Appliance.Directory;

namespace Appliance.Store;

// The folder-level API IMAP needs. Every mutation is journalled, durable when the task
// completes, and published on Changes after commit. Publishing happens in the caller's
// continuation once the write request completed (the writer loop completes requests with
// RunContinuationsAsynchronously), so subscribers never run on, or hold up, the writer loop.
// Folder names are normalized here (FolderName); Partition takes them as stored.
public sealed partial class MailStore
{
    /// <summary>The special-use folders every new mailbox gets (RFC 6154), with their attribute.</summary>
    public static readonly IReadOnlyList<(string Name, string SpecialUse)> DefaultFolders =
        [("Drafts", @"\Drafts"), ("Sent", @"\Sent"), ("Trash", @"\Trash"), (Junk, @"\Junk"), ("Archive", @"\Archive")];

    /// <summary>The folder spam is delivered to (a new mailbox's \Junk).</summary>
    public const string Junk = "Junk";

    /// <summary>Folder change notifications for live sessions.</summary>
    public ChangeFeed Changes { get; } = new();

    /// <summary>
    /// All folders of the account, INBOX first then by name: a new mailbox's folders (INBOX and
    /// the special-use defaults) are created at its first listing, INBOX when missing.
    /// </summary>
    public async Task<IReadOnlyList<FolderInfo>> ListFoldersAsync(MailUser user, CancellationToken ct)
    {
        var p = For(user);
        var folders = await p.ListFolderInfosAsync(user.Address, ct);
        var hasInbox = folders.Count > 0 && folders[0].Name == Inbox;
        var hasSpecial = folders.Any(f => f.SpecialUse is not null);
        if (hasInbox && hasSpecial) return folders;
        if (!hasSpecial) await CreateMailboxAsync(user); // INBOX and the defaults (existing ones are kept)
        else await p.CreateFoldersAsync(user.Address, [(Inbox, null)]);
        return await p.ListFolderInfosAsync(user.Address, ct);
    }

    /// <summary>
    /// Gives a new mailbox its folders (INBOX and <see cref="DefaultFolders"/>, subscribed) at its
    /// first login or listing: provisioning only records a mailbox in the directory, so a bulk of
    /// thousands costs no store writes, and mail can arrive before (INBOX is made at delivery).
    /// An account that has any special-use folder is left as it is.
    /// </summary>
    public async Task EnsureMailboxAsync(MailUser user)
    {
        if (!await For(user).HasSpecialFoldersAsync(user.Address)) await CreateMailboxAsync(user);
    }

    /// <summary>One folder with counts, or null.</summary>
    public Task<FolderInfo?> GetFolderInfoAsync(MailUser user, string folder, CancellationToken ct) =>
        For(user).GetFolderInfoAsync(user.Address, FolderName(folder), ct);

    /// <summary>Creates a folder. Throws <see cref="FolderExistsException"/>.</summary>
    public async Task CreateFolderAsync(MailUser user, string folder, string? specialUse, CancellationToken ct)
    {
        // RFC 9051 §6.3.4: a trailing delimiter only says that inferior names are intended.
        folder = FolderName(folder.TrimEnd('/'));
        await For(user).CreateFolderAsync(user.Address, folder, specialUse);
        Changes.Publish(user.Address, folder);
    }

    /// <summary>Deletes a folder and its messages (not its children). Throws <see cref="FolderNotFoundException"/>; INBOX cannot be deleted (InvalidOperationException).</summary>
    public async Task DeleteFolderAsync(MailUser user, string folder, CancellationToken ct)
    {
        folder = FolderName(folder);
        await For(user).DeleteFolderAsync(user.Address, folder);
        Changes.Publish(user.Address, folder);
    }

    /// <summary>
    /// Renames a folder and its children ("a" → "b" also moves "a/x" → "b/x"), keeping UIDVALIDITY
    /// and UIDs. Renaming INBOX moves its messages to a new folder and leaves INBOX empty
    /// (RFC 9051 §6.3.6). Throws <see cref="FolderNotFoundException"/> / <see cref="FolderExistsException"/>.
    /// </summary>
    public async Task RenameFolderAsync(MailUser user, string from, string to, CancellationToken ct)
    {
        from = FolderName(from);
        to = FolderName(to.TrimEnd('/'));
        await For(user).RenameFolderAsync(user.Address, from, to);
        Changes.Publish(user.Address, from);
        Changes.Publish(user.Address, to);
    }

    /// <summary>Subscriptions may name folders that do not exist (RFC 9051 §6.3.7).</summary>
    public Task SetSubscribedAsync(MailUser user, string folder, bool subscribed, CancellationToken ct) =>
        For(user).SetSubscribedAsync(user.Address, FolderName(folder), subscribed);

    /// <summary>Subscribed names, including those with no folder.</summary>
    public Task<IReadOnlyList<string>> ListSubscriptionsAsync(MailUser user, CancellationToken ct) =>
        For(user).ListSubscriptionsAsync(user.Address, ct);

    /// <summary>
    /// Appends messages all-or-nothing (MULTIAPPEND). Null when the quota would be exceeded;
    /// throws <see cref="FolderNotFoundException"/> when the folder is missing.
    /// </summary>
    public async Task<AppendResult?> AppendAsync(MailUser user, string folder, IReadOnlyList<NewMessage> messages, CancellationToken ct)
    {
        folder = FolderName(folder);
        var result = await For(user).AppendAsync(user.Address, folder, messages, user.QuotaBytes, ct);
        if (result is { Uids.Length: > 0 }) Changes.Publish(user.Address, folder);
        return result;
    }

    /// <summary>
    /// Copies (or moves: copy and expunge in one atomic step) messages to another folder of
    /// the same account. UIDs that no longer exist are skipped. Null when a copy would exceed
    /// the quota (a move never does). Throws <see cref="FolderNotFoundException"/> for a missing target.
    /// </summary>
    public async Task<CopyResult?> CopyAsync(MailUser user, string folder, IReadOnlyCollection<long> uids, string target, bool move, CancellationToken ct)
    {
        folder = FolderName(folder);
        target = FolderName(target);
        var result = await For(user).CopyAsync(user.Address, folder, uids, target, move, user.QuotaBytes);
        if (result is { SourceUids.Length: > 0 })
        {
            Changes.Publish(user.Address, target);
            if (move) Changes.Publish(user.Address, folder);
        }
        if (result is { TargetUids.Length: > 0 }) await TrainOnCopyAsync(user, folder, target, result.TargetUids, ct);
        return result;
    }

    /// <summary>
    /// Changes flags of the given messages atomically; with <paramref name="unchangedSince"/>,
    /// messages whose MODSEQ is greater are left alone and reported in Modified. Messages
    /// whose flags would not change are not touched (no new MODSEQ) and not reported.
    /// </summary>
    public async Task<StoreFlagsResult> StoreFlagsAsync(MailUser user, string folder, IReadOnlyCollection<long> uids, FlagMode mode,
        MessageFlags flags, string[] keywords, long? unchangedSince, CancellationToken ct)
    {
        folder = FolderName(folder);
        var result = await For(user).StoreFlagsAsync(user.Address, folder, uids, mode, flags, keywords, unchangedSince);
        if (result.Updated.Count > 0) Changes.Publish(user.Address, folder);
        return result;
    }

    /// <summary>What changed in a folder after <paramref name="sinceModSeq"/> (QRESYNC, session resync).</summary>
    public Task<FolderChanges> GetChangesAsync(MailUser user, string folder, long sinceModSeq, CancellationToken ct) =>
        For(user).GetChangesAsync(user.Address, FolderName(folder), sinceModSeq, ct);

    /// <summary>The parsed IMAP structure of the given messages (those that still exist).</summary>
    public Task<IReadOnlyDictionary<long, MessageStructure>> GetStructuresAsync(MailUser user, string folder, IReadOnlyCollection<long> uids, CancellationToken ct) =>
        For(user).GetStructuresAsync(user.Address, FolderName(folder), uids, ct);

    /// <summary>
    /// UIDs of messages whose field contains <paramref name="text"/> (case-insensitive, after
    /// decoding MIME encodings and charsets), via the full-text index. For
    /// <see cref="TextField.Header"/>, <paramref name="headerName"/> names the header field;
    /// an empty text then means "has the header".
    /// </summary>
    public Task<IReadOnlySet<long>> SearchTextAsync(MailUser user, string folder, TextField field, string text, string? headerName, CancellationToken ct) =>
        For(user).SearchTextAsync(user.Address, FolderName(folder), field, text, headerName, ct);

    /// <summary>Sort and thread keys of the given messages.</summary>
    public Task<IReadOnlyList<MessageSortInfo>> GetSortInfoAsync(MailUser user, string folder, IReadOnlyCollection<long> uids, CancellationToken ct) =>
        For(user).GetSortInfoAsync(user.Address, FolderName(folder), uids, ct);

    /// <summary>
    /// One page of a folder's messages (the webmail's list): sorted by <paramref name="order"/>,
    /// ties broken by UID in the same direction, <paramref name="limit"/> rows from
    /// <paramref name="offset"/>. With <paramref name="only"/>, just those UIDs (a search result).
    /// With <paramref name="threads"/>, rows come in conversation order instead (RFC 5256
    /// REFERENCES threads, ordered by their newest message, newest first when descending; within
    /// a thread oldest first) with their depth, and <paramref name="order"/> is not used.
    /// Messages marked \Deleted are listed like the others. Throws <see cref="FolderNotFoundException"/>.
    /// </summary>
    public Task<MessagePage> ListPageAsync(MailUser user, string folder, MessageOrder order, bool descending, int offset, int limit,
        bool threads, IReadOnlySet<long>? only, CancellationToken ct) =>
        For(user).ListPageAsync(user.Address, FolderName(folder), order, descending, offset, limit, threads, only, ct);

    /// <summary>Bytes and message count of the account (QUOTA STORAGE and MESSAGE).</summary>
    public (long Bytes, long Messages) Usage(MailUser user) => For(user).Usage(user.Address);

    /// <summary>INBOX is case-insensitive (RFC 9051 §5.1), also as the first level of a hierarchy; it is always spelled "INBOX".</summary>
    public static string FolderName(string name)
    {
        if (name.Equals(Inbox, StringComparison.OrdinalIgnoreCase)) return Inbox;
        if (name.StartsWith(Inbox + "/", StringComparison.OrdinalIgnoreCase)) return Inbox + name[Inbox.Length..];
        return name;
    }
}
