using Appliance.Directory;
using Appliance.Store;

namespace Appliance.Provisioning;

/// <summary>
/// A mailbox change applied straight to this node's directory and store, outside the
/// provisioning journal: for tests and tools that set a node up. Administrators' changes go
/// through <see cref="ProvisioningService"/>.
/// </summary>
public sealed class Provisioner(MailDirectory directory, MailStore store, long defaultQuotaBytes)
{
    public MailDirectory Directory => directory;

    public async Task<MailboxRecord> AddMailboxAsync(string address, string? password, string? passwordHash, long? quotaBytes)
    {
        var quota = quotaBytes ?? defaultQuotaBytes;
        var record = (password, passwordHash) switch
        {
            (not null, _) => directory.AddMailbox(address, password, quota),
            (null, not null) => directory.AddMailboxWithHash(address, passwordHash, quota),
            _ => throw new DirectoryException("a password is needed (--password-stdin)"),
        };
        // In a pair the folders are created where the partition is active (and replicated);
        // the same command on the other node only adds the directory entry.
        if (store.IsServedHere(record.ToUser())) await store.CreateMailboxAsync(record.ToUser());
        return record;
    }

    public async Task<MailboxRecord> RemoveMailboxAsync(string address)
    {
        var record = directory.RemoveMailbox(address);
        await store.DeleteMailboxAsync(record.ToUser()); // the parts active here
        return record;
    }
}

/// <summary>Sizes as admins write them: 1048576, 500K, 100M, 2G, 1T; 0 means unlimited.</summary>
public static class Sizes
{
    public static long? Parse(string text)
    {
        var s = text.Trim().ToUpperInvariant().TrimEnd('B');
        if (s.Length == 0) return null;
        var mult = s[^1] switch { 'K' => 1L << 10, 'M' => 1L << 20, 'G' => 1L << 30, 'T' => 1L << 40, _ => 1L };
        if (mult != 1) s = s[..^1];
        return long.TryParse(s, System.Globalization.NumberStyles.None, null, out var n) && n <= long.MaxValue / mult ? n * mult : null;
    }

    public static string Format(long bytes) => bytes switch
    {
        0 => "unlimited",
        >= 1L << 30 when bytes % (1L << 30) == 0 => $"{bytes >> 30}G",
        >= 1L << 20 when bytes % (1L << 20) == 0 => $"{bytes >> 20}M",
        >= 1L << 10 when bytes % (1L << 10) == 0 => $"{bytes >> 10}K",
        _ => bytes.ToString(System.Globalization.CultureInfo.InvariantCulture),
    };
}
