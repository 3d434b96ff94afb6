using System.Globalization;
using DnsClient;
using MimeKit;
using MimeKit.Cryptography;
using ArcAuthenticationResults = MimeKit.Cryptography.AuthenticationResults;

namespace Appliance.Filtering;

/// <summary>One ARC set (RFC 8617 §4.1): its instance, the domain that sealed it, and what that sealer saw.</summary>
/// <param name="Dmarc">The dmarc= result its ARC-Authentication-Results claims ("pass", "fail", …), null when it claims none.</param>
public sealed record ArcSet(int Instance, string Domain, string AuthservId, string? Dmarc);

/// <summary>
/// The ARC chain's validation (RFC 8617 §5.2): <c>pass</c>, <c>fail</c> or <c>none</c> (no ARC sets),
/// why, and the sets oldest first (i=1 first). A pass means the sealers' claims can be believed as
/// far as the sealers themselves are; trusting one (to override a DMARC fail, RFC 8617 §7.2) is the caller's choice.
/// </summary>
public sealed record ArcOutcome(string Result, string? Detail)
{
    /// <summary>The ARC sets, oldest first; filled only for a chain that passed.</summary>
    public IReadOnlyList<ArcSet> Sets { get; init; } = [];
    /// <summary>The fail came from a key DNS could not give now (a timeout, SERVFAIL): the same message may pass later.</summary>
    public bool Temporary { get; init; }

    /// <summary>What the first intermediary (i=1) says DMARC gave when the message reached it; only for a pass.</summary>
    public string? OldestDmarc => Sets.Count > 0 ? Sets[0].Dmarc : null;

    /// <summary>The log line's field: arc=pass, arc=fail, arc=none.</summary>
    public string LogField => "arc=" + Result;

    /// <summary>The method=result entry for Authentication-Results: "arc=pass (i=2 sealed by list.example)".</summary>
    public string AuthenticationResult => Detail is { Length: > 0 }
        ? AuthenticationResults.Result("arc", Result, Detail, "").TrimEnd()
        : "arc=" + Result;
}

/// <summary>
/// Validates a message's ARC chain with MimeKit's verifier and keys from DNS (the resolver the
/// node's sender authentication uses). Never throws for the message's sake; only cancellation.
/// </summary>
public sealed class ArcVerification(ILookupClient dns)
{
    public async Task<ArcOutcome> VerifyAsync(MimeMessage message, CancellationToken ct)
    {
        var locator = new DnsKeyLocator(dns);
        ArcValidationResult result;
        try { result = await new ArcVerifier(locator).VerifyAsync(message, ct); }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            return new ArcOutcome("fail", ex.Message);
        }
        // MimeKit turns everything inside a set's check into "fail", the caller's cancellation included.
        ct.ThrowIfCancellationRequested();

        switch (result.Chain)
        {
            case ArcSignatureValidationResult.None:
                return new ArcOutcome("none", null);
            case ArcSignatureValidationResult.Pass:
                var sets = Sets(message);
                return new ArcOutcome("pass", $"i={sets.Count} sealed by {string.Join(", ", sets.Select(s => s.Domain).Distinct())}") { Sets = sets };
        }

        // A sealer that found the chain broken says so (cv=fail, RFC 8617 §5.1.2): nothing older counts.
        var broken = message.Headers.Where(h => h.Id == HeaderId.ArcSeal).Select(h => SenderAuthentication.Tags(h.Value))
            .FirstOrDefault(t => t.GetValueOrDefault("cv") == "fail");
        if (broken is not null) return new ArcOutcome("fail", $"the sealer of i={broken.GetValueOrDefault("i", "?")} found the chain broken (cv=fail)");
        if (locator.LastFailure is { } key) return new ArcOutcome("fail", key.Why) { Temporary = key.Temporary };
        // The sets themselves were refused before any signature was checked (§5.1.1).
        if (result.Seals is null) return new ArcOutcome("fail", $"the ARC sets are incomplete or malformed ({result.ChainErrors})");
        if (result.MessageSignature is { Signature: ArcSignatureValidationResult.Fail } ams)
            return new ArcOutcome("fail", $"the newest ARC-Message-Signature (i={Tag(ams.Header, "i")}, d={Tag(ams.Header, "d")}) does not verify: the message changed after it was sealed");
        var seal = result.Seals.Select((s, i) => (s, i)).LastOrDefault(x => x.s?.Signature == ArcSignatureValidationResult.Fail);
        return new ArcOutcome("fail", seal.s is null ? $"the chain does not verify ({result.ChainErrors})"
            : $"ARC-Seal i={seal.i + 1} (d={Tag(seal.s.Header, "d")}) does not verify");
    }

    private static string Tag(Header header, string name) => SenderAuthentication.Tags(header.Value).GetValueOrDefault(name, "?");

    /// <summary>The sets of a chain that passed (so complete, numbered 1..N, one header of each kind), oldest first.</summary>
    private static List<ArcSet> Sets(MimeMessage message)
    {
        var seals = new Dictionary<int, string>();
        foreach (var header in message.Headers.Where(h => h.Id == HeaderId.ArcSeal))
        {
            var tags = SenderAuthentication.Tags(header.Value);
            if (int.TryParse(tags.GetValueOrDefault("i"), NumberStyles.None, CultureInfo.InvariantCulture, out var i))
                seals[i] = tags.GetValueOrDefault("d", "").ToLowerInvariant();
        }
        var claims = new Dictionary<int, (string AuthservId, string? Dmarc)>();
        foreach (var header in message.Headers.Where(h => h.Id == HeaderId.ArcAuthenticationResults))
        {
            if (!ArcAuthenticationResults.TryParse(header.RawValue, out var aar) || aar.Instance is not { } i) continue;
            var dmarc = aar.Results.FirstOrDefault(r => r.Method.Equals("dmarc", StringComparison.OrdinalIgnoreCase))?.Result?.ToLowerInvariant();
            claims[i] = (aar.AuthenticationServiceIdentifier ?? "", dmarc);
        }
        return [.. seals.OrderBy(s => s.Key).Select(s =>
        {
            var claim = claims.GetValueOrDefault(s.Key);
            return new ArcSet(s.Key, s.Value, claim.AuthservId ?? "", claim.Dmarc);
        })];
    }
}
