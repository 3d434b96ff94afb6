using System.Security.Cryptography;
using Dapper;

namespace Appliance.Directory;

// Implementation notes
// - A domain's DKIM key (RFC 6376) lives in its row of domains: selector, private key as
//   PKCS#8 PEM, creation time. The key is generated once, by the provisioning service, and
//   travels in the journal request, so every node of a pair signs with the same key.
// - DkimKey is asked for every outgoing message: it reads an immutable snapshot of every
//   domain's key, loaded on first use and dropped after a change commits (a generation number
//   keeps a load that raced a change from installing what it read before the change).

/// <summary>A domain's DKIM signing key: mail from the domain is signed with it as <c>s=Selector</c>.</summary>
public sealed record DkimKey(string Domain, string Selector, string PrivateKeyPem)
{
    public const int KeyBits = 2048;

    /// <summary>
    /// A new RSA key for <paramref name="domain"/>, with the selector "s" + the UTC date
    /// (s20261126); when that is <paramref name="currentSelector"/> already (a second key the
    /// same day), a letter follows it (s20261126a, then b…), so the new record never replaces
    /// the one a message in flight was signed with.
    /// </summary>
    public static DkimKey Generate(string domain, DateTimeOffset now, string? currentSelector)
    {
        using var rsa = RSA.Create(KeyBits);
        return new DkimKey(domain, NextSelector(now, currentSelector), rsa.ExportPkcs8PrivateKeyPem());
    }

    public static string NextSelector(DateTimeOffset now, string? currentSelector)
    {
        var selector = "s" + now.UtcDateTime.ToString("yyyyMMdd", System.Globalization.CultureInfo.InvariantCulture);
        if (currentSelector is null || !currentSelector.StartsWith(selector, StringComparison.Ordinal)) return selector;
        var suffix = currentSelector[selector.Length..];
        return suffix.Length == 0 || suffix[^1] == 'z' || !char.IsAsciiLetterLower(suffix[^1])
            ? currentSelector + "a"
            : currentSelector[..^1] + (char)(suffix[^1] + 1);
    }

    /// <summary>A selector is a DNS label (RFC 6376 §3.1): letters, digits, hyphens.</summary>
    public static bool IsValidSelector(string selector) =>
        selector.Length is > 0 and <= 63 && selector.All(c => char.IsAsciiLetterOrDigit(c) || c == '-') && selector[0] != '-' && selector[^1] != '-';

    /// <summary>The key without its private part, for logs and debuggers.</summary>
    public override string ToString() => $"DkimKey {{ Domain = {Domain}, Selector = {Selector} }}";
}

internal sealed class DkimKeyRow
{
    public string Domain { get; set; } = "";
    public string Selector { get; set; } = "";
    public string PrivateKey { get; set; } = "";
}

public sealed partial class MailDirectory
{
    private readonly Lock _dkimLock = new();
    private IReadOnlyDictionary<string, DkimKey>? _dkimKeys;
    private long _dkimGeneration;

    /// <summary>The DKIM key mail from <paramref name="domain"/> is signed with; null when it has none (or is not ours).</summary>
    public DkimKey? DkimKey(string domain)
    {
        var keys = _dkimKeys ?? LoadDkimKeys();
        return Addresses.NormalizeDomain(domain, out _) is { } d ? keys.GetValueOrDefault(d) : null;
    }

    private IReadOnlyDictionary<string, DkimKey> LoadDkimKeys()
    {
        long generation;
        lock (_dkimLock) generation = _dkimGeneration;
        Dictionary<string, DkimKey> keys;
        using (var c = Open())
            keys = c.Query<DkimKeyRow>("SELECT name AS Domain, dkim_selector AS Selector, dkim_private_key AS PrivateKey FROM domains WHERE dkim_selector IS NOT NULL AND dkim_private_key IS NOT NULL")
                .ToDictionary(r => r.Domain, r => new DkimKey(r.Domain, r.Selector, r.PrivateKey), StringComparer.Ordinal);
        lock (_dkimLock)
            if (_dkimGeneration == generation) _dkimKeys = keys;
        return keys;
    }

    /// <summary>Drops the snapshot of DKIM keys (after a change to them committed).</summary>
    private void ForgetDkimKeys()
    {
        lock (_dkimLock)
        {
            _dkimGeneration++;
            _dkimKeys = null;
        }
    }

    /// <summary>
    /// Gives an existing domain a DKIM key (its first, or a new one replacing the old). The
    /// key arrives made (by the provisioning service, carried in the journal request).
    /// </summary>
    public void SetDkimKey(DirectoryTransaction t, string domainName, string selector, string privateKeyPem)
    {
        var domain = Addresses.NormalizeDomain(domainName, out var reason) ?? throw new DirectoryException(reason);
        if (!Appliance.Directory.DkimKey.IsValidSelector(selector)) throw new DirectoryException($"invalid DKIM selector '{selector}'");
        try
        {
            using var rsa = RSA.Create();
            rsa.ImportFromPem(privateKeyPem);
            if (rsa.KeySize < 1024) throw new DirectoryException($"DKIM key too short ({rsa.KeySize} bits)");
        }
        catch (Exception ex) when (ex is CryptographicException or ArgumentException)
        {
            throw new DirectoryException("the DKIM private key is not an RSA key in PEM");
        }
        var now = Now();
        if (t.Connection.Execute("UPDATE domains SET dkim_selector = @selector, dkim_private_key = @privateKeyPem, dkim_created = @now WHERE name = @domain",
                new { selector, privateKeyPem, now, domain }, t.Transaction) == 0)
            throw new DirectoryException($"no such domain {domain}", DirectoryError.NotFound);
        t.AfterCommit(ForgetDkimKeys);
    }
}
