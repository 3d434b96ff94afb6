using Appliance.Store;

namespace Appliance.Imap;

/// <summary>
/// What SEARCH, SORT and THREAD need from the store beyond the selected-mailbox view: full-text
/// matches and the decoded header values used for sorting and threading. One instance serves
/// one selected folder.
/// </summary>
public interface ISearchSource
{
    /// <summary>UIDs of the folder's messages whose <paramref name="field"/> contains <paramref name="text"/> (case-insensitive).</summary>
    Task<IReadOnlySet<long>> SearchTextAsync(TextField field, string text, string? headerName, CancellationToken ct);

    /// <summary>Sort and thread keys of the given messages (those that still exist).</summary>
    Task<IReadOnlyList<MessageSortInfo>> GetSortInfoAsync(IReadOnlyCollection<long> uids, CancellationToken ct);
}
