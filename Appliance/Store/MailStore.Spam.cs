using System.Security.Cryptography;
using Appliance.Directory;
using Appliance.Filtering;
using Dapper;

namespace Appliance.Store;

// Training the user's spam filter (issue 7) is a side effect of filing: a copy or move into the
// Junk folder (special-use \Junk, or an unmarked folder named Junk) teaches spam, one
// out of Junk teaches ham, except into Trash (deleting spam says nothing about ham). Whatever
// moves the mail — IMAP COPY/MOVE, the webmail — goes through MailStore.CopyAsync, so every
// client trains alike. The counts are journalled in the mailbox's partition before the command
// is answered.

public sealed partial class MailStore
{
    private static readonly NLog.Logger SpamLog = NLog.LogManager.GetLogger("spam");

    /// <summary>Messages learned from one copy or move at most (a mass move of an archive is not a lesson).</summary>
    public const int MaxTrainedPerCopy = 500;

    /// <summary>
    /// The user's spam indicator for a message (0 ham … 1 spam), or null while the filter has
    /// learned fewer than <paramref name="minSpam"/> spam messages. Read from whichever copy of
    /// the partition this node holds. <paramref name="tokens"/> is asked only for a trained
    /// filter: most mailboxes never train one, and their mail is not tokenized.
    /// </summary>
    public double? SpamProbability(MailUser user, Func<long[]> tokens, int minSpam)
    {
        if (!Hosts(user.Partition) || SpamTraining(user).Spam < Math.Max(minSpam, 1)) return null;
        var t = tokens();
        return Bayes.Probability(t, For(user).BayesCounts(user.Address, t));
    }

    /// <summary>What the filter of <paramref name="user"/> has learned: spam and ham messages.</summary>
    public (long Spam, long Ham) SpamTraining(MailUser user)
    {
        var counts = For(user).BayesCounts(user.Address, []);
        return (counts.SpamMessages, counts.HamMessages);
    }

    private async Task TrainOnCopyAsync(MailUser user, string source, string target, long[] targetUids, CancellationToken ct)
    {
        try
        {
            var partition = For(user);
            var from = await partition.GetFolderInfoAsync(user.Address, source, ct);
            var to = await partition.GetFolderInfoAsync(user.Address, target, ct);
            if (from is null || to is null) return;
            var fromJunk = IsJunk(from);
            var toJunk = IsJunk(to);
            if (fromJunk == toJunk || (fromJunk && to.SpecialUse == @"\Trash")) return;
            var blobs = await partition.BlobsAsync(user.Address, target, targetUids.Take(MaxTrainedPerCopy).ToList());
            var messages = new List<(string, long[])>(blobs.Count);
            foreach (var blob in blobs)
            {
                var bytes = await File.ReadAllBytesAsync(partition.BlobPath(blob), ct);
                messages.Add((Convert.ToHexStringLower(SHA256.HashData(bytes))[..32], Bayes.Tokenize(bytes)));
            }
            await partition.TrainAsync(user.Address, messages, spam: toJunk);
            SpamLog.Info("spam filter of {0} learned {1} message(s) as {2} ({3} -> {4})", user.Address, messages.Count, toJunk ? "spam" : "ham", source, target);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // The copy itself is done and durable; a lesson lost is not worth failing it.
            SpamLog.Warn(ex, "spam filter of {0}: training failed", user.Address);
        }
    }

    /// <summary>The folder the user files spam in: marked \Junk, or an unmarked folder named Junk.</summary>
    private static bool IsJunk(FolderInfo folder) =>
        folder.SpecialUse == @"\Junk" || (folder.SpecialUse is null && folder.Name.Equals(Junk, StringComparison.OrdinalIgnoreCase));
}
