using DnsClient;
using MimeKit;
using MimeKit.Cryptography;
using Org.BouncyCastle.Crypto;

namespace Appliance.Filtering;

/// <summary>A DKIM key that cannot be had: temporary (DNS failure) or for good (no record, revoked, malformed).</summary>
internal sealed class KeyUnavailableException(string message, bool temporary) : Exception(message)
{
    public bool Temporary { get; } = temporary;
}

/// <summary>
/// The public key of a selector from its TXT record at SELECTOR._domainkey.DOMAIN (RFC 6376 §3.6.2),
/// for DKIM signatures (<see cref="SenderAuthentication"/>) and ARC sets (<see cref="ArcVerification"/>,
/// RFC 8617 §4.1.2: the same key records). One per verification: <see cref="LastFailure"/> keeps why
/// the last key could not be had, since MimeKit's ARC verifier only says "fail".
/// </summary>
internal sealed class DnsKeyLocator(ILookupClient dns) : DkimPublicKeyLocatorBase
{
    /// <summary>Why the last key asked for could not be had, and whether that may pass (a DNS failure).</summary>
    public (string Why, bool Temporary)? LastFailure { get; private set; }

    public override AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
        LocatePublicKeyAsync(methods, domain, selector, cancellationToken).GetAwaiter().GetResult();

    public override async Task<AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken cancellationToken = default)
    {
        try { return await LocateAsync(domain, selector, cancellationToken); }
        catch (KeyUnavailableException ex)
        {
            LastFailure = (ex.Message, ex.Temporary);
            throw;
        }
        catch (DnsResponseException ex)
        {
            LastFailure = ($"DNS TXT {selector}._domainkey.{domain}: {ex.Message}", true);
            throw;
        }
    }

    private async Task<AsymmetricKeyParameter> LocateAsync(string domain, string selector, CancellationToken cancellationToken)
    {
        var name = $"{selector}._domainkey.{domain}";
        var answer = await dns.QueryAsync(name, QueryType.TXT, QueryClass.IN, cancellationToken);
        if (answer.Header.ResponseCode is not (DnsHeaderResponseCode.NoError or DnsHeaderResponseCode.NotExistentDomain))
            throw new KeyUnavailableException($"DNS TXT {name}: {answer.Header.ResponseCode}", temporary: true);
        var record = answer.Answers.TxtRecords().Select(t => string.Concat(t.Text)).FirstOrDefault()
            ?? throw new KeyUnavailableException($"no key at {name}", temporary: false);
        if (SenderAuthentication.Tags(record).TryGetValue("p", out var p) && p.Length == 0) throw new KeyUnavailableException($"the key at {name} is revoked", temporary: false);
        try { return GetPublicKey(record); }
        catch (Exception ex) when (ex is FormatException or ParseException or ArgumentException or InvalidOperationException)
        {
            throw new KeyUnavailableException($"the key at {name} cannot be read: {ex.Message}", temporary: false);
        }
    }
}
