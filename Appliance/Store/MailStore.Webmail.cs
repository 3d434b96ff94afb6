using Appliance.Directory;

namespace Appliance.Store;

// Each user's webmail items (contacts, notes, personal files, settings), in the db unit's
// partition (Partition.Webmail.cs), whatever partition the user's mail is in. Reads go to this
// node's copy, active or not (a replica's is as of its last applied record). Changes only where
// the db unit is active: elsewhere they throw UnitUnavailableException, and the caller sends the
// request to the other node of the pair.
public sealed partial class MailStore
{
    /// <summary>Whether the db unit is active on this node, so webmail items can be changed here (always, on a single node).</summary>
    public bool WebmailWritable => Db.IsPrimary;

    public IReadOnlyList<WebmailItem> ListWebmailItems(MailUser user, string kind, string? parent = null, bool withData = false) =>
        Db.ListWebmailItems(user.Address, kind, parent, withData);

    public WebmailItem? GetWebmailItem(MailUser user, string kind, string id) => Db.GetWebmailItem(user.Address, kind, id);

    public long WebmailBytes(MailUser user) => Db.WebmailBytes(user.Address);

    /// <inheritdoc cref="Partition.PutWebmailItemAsync"/>
    public Task<WebmailResult> PutWebmailItemAsync(MailUser user, string kind, string id, string parent, string name, byte[] data, long quotaBytes, bool mustBeNew = false) =>
        WritableDb().PutWebmailItemAsync(user.Address, kind, id, parent, name, data, quotaBytes, mustBeNew);

    /// <inheritdoc cref="Partition.DeleteWebmailItemAsync"/>
    public Task<WebmailResult> DeleteWebmailItemAsync(MailUser user, string kind, string id, bool withChildren) =>
        WritableDb().DeleteWebmailItemAsync(user.Address, kind, id, withChildren);

    /// <inheritdoc cref="Partition.MoveWebmailItemsAsync"/>
    public Task<WebmailResult> MoveWebmailItemsAsync(MailUser user, string id, string newId, string newParent, string newName) =>
        WritableDb().MoveWebmailItemsAsync(user.Address, id, newId, newParent, newName);

    /// <summary>Deletes every webmail item of the user.</summary>
    public Task DeleteWebmailAccountAsync(MailUser user) => WritableDb().DeleteWebmailAccountAsync(user.Address);

    private Partition WritableDb()
    {
        var db = Db;
        // The partition refuses too (the unit may move after this check), with a vaguer message.
        if (!db.IsPrimary) throw new UnitUnavailableException("the webmail's data (the db unit) is not active on this node");
        return db;
    }
}
