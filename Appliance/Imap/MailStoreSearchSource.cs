using Appliance.Directory;
using Appliance.Store;

namespace Appliance.Imap;

/// <summary>The store's search API for one user's folder.</summary>
public sealed class MailStoreSearchSource(MailStore store, MailUser user, string folder) : ISearchSource
{
    public Task<IReadOnlySet<long>> SearchTextAsync(TextField field, string text, string? headerName, CancellationToken ct) =>
        store.SearchTextAsync(user, folder, field, text, headerName, ct);

    public Task<IReadOnlyList<MessageSortInfo>> GetSortInfoAsync(IReadOnlyCollection<long> uids, CancellationToken ct) =>
        store.GetSortInfoAsync(user, folder, uids, ct);
}
