using Appliance.Directory;
using Appliance.Store;

namespace Appliance.Provisioning;

/// <summary>
/// Administrative changes that touch both the directory and the mailbox store. The admin CLI
/// (and later the API and panel, through the provisioning journal) goes through here.
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
        if (store.IsServedHere(record.ToUser())) await store.DeleteMailboxAsync(record.ToUser());
        return record;
    }

    /// <summary>
    /// Bulk creation from CSV lines "address,password[,quota]" (a password starting with "{" is a
    /// migrated hash). Every line is validated first; if any is bad nothing is created.
    /// </summary>
    public async Task<int> ImportAsync(IReadOnlyList<string> lines, Action<string> progress)
    {
        var rows = new List<(string Address, string Secret, long? Quota)>();
        var errors = new List<string>();
        var seen = new HashSet<string>();
        for (var i = 0; i < lines.Count; i++)
        {
            var line = lines[i].Trim();
            if (line.Length == 0 || line.StartsWith('#') || (i == 0 && line.StartsWith("address", StringComparison.OrdinalIgnoreCase))) continue;
            var parts = line.Split(',');
            var address = Addresses.NormalizeAddress(parts[0], out var reason);
            if (address is null) { errors.Add($"line {i + 1}: {reason}"); continue; }
            if (!seen.Add(address)) { errors.Add($"line {i + 1}: {address} appears twice"); continue; }
            if (parts.Length < 2 || parts[1].Length == 0) { errors.Add($"line {i + 1}: missing password"); continue; }
            if (parts[1].StartsWith('{') && !PasswordHasher.IsKnownScheme(parts[1])) { errors.Add($"line {i + 1}: {MailDirectory.UnsupportedHash}"); continue; }
            long? quota = null;
            if (parts.Length > 2 && parts[2].Trim().Length > 0)
            {
                if (Sizes.Parse(parts[2]) is not { } q) { errors.Add($"line {i + 1}: bad quota '{parts[2]}'"); continue; }
                quota = q;
            }
            if (!directory.DomainExists(Addresses.DomainOf(address))) { errors.Add($"line {i + 1}: unknown domain {Addresses.DomainOf(address)}"); continue; }
            if (directory.FindMailbox(address) is not null) { errors.Add($"line {i + 1}: mailbox {address} already exists"); continue; }
            rows.Add((address, parts[1], quota));
        }
        if (errors.Count > 0) throw new DirectoryException(string.Join("; ", errors.Take(20)) + (errors.Count > 20 ? $"; and {errors.Count - 20} more" : ""));
        for (var i = 0; i < rows.Count; i++)
        {
            var (address, secret, quota) = rows[i];
            var isHash = secret.StartsWith('{');
            await AddMailboxAsync(address, isHash ? null : secret, isHash ? secret : null, quota);
            if ((i + 1) % 100 == 0 || i + 1 == rows.Count) progress($"{i + 1}/{rows.Count} mailboxes created");
        }
        return rows.Count;
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
