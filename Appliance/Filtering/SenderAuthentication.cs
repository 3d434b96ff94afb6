using System.Net;
using DnsClient;
using MimeKit;
using MimeKit.Cryptography;

namespace Appliance.Filtering;

/// <summary>What DMARC asks to be done with a message that fails it (RFC 7489 §6.3), after pct= sampling.</summary>
public enum DmarcDisposition { None, Quarantine, Reject }

/// <summary>
/// The sender-authentication checks of one message on the MX: SPF of the envelope sender
/// (<see cref="Spf"/>), DKIM signatures verified with keys from DNS (MimeKit's verifier), and
/// DMARC (RFC 7489): the From domain's policy (or its organizational domain's), and whether SPF
/// or a DKIM signature passed for a domain aligned with From (relaxed: the same organizational
/// domain, strict: the same name). Every result goes into one Authentication-Results field.
/// </summary>
public sealed class SenderAuthentication(ILookupClient dns, PublicSuffixes suffixes)
{
    private const int MaxSignatures = 5;
    private readonly ArcVerification _arc = new(dns);

    /// <summary>
    /// ARC sealers (d= of an ARC-Seal) trusted to have checked DMARC at the first hop (mailing
    /// lists, forwarders one knows): when their valid chain says dmarc=pass there, a DMARC failure
    /// here (the list changed the message) is not enforced (RFC 8617 §7.2, RFC 7489 §6.7 local policy).
    /// </summary>
    public IReadOnlyCollection<string> TrustedArcSealers { get; init; } = [];

    /// <summary>The results, as the header's method=result entries and the log line's fields, and what DMARC asks for.</summary>
    public sealed record Outcome(IReadOnlyList<string> Results, IReadOnlyList<string> Verdicts, DmarcDisposition Disposition, string FromDomain, string Explanation);

    public async Task<Outcome> EvaluateAsync(IPAddress ip, string mailFrom, string helo, byte[] message, CancellationToken ct)
    {
        var (sender, spfDomain, property) = mailFrom.Length > 0
            ? (mailFrom, Directory.Addresses.DomainOf(mailFrom), $"smtp.mailfrom={mailFrom}")
            : ($"postmaster@{helo}", helo, $"smtp.helo={helo}");
        var spf = await SpfAsync(ip, sender, helo, spfDomain, ct);
        var results = new List<string> { AuthenticationResults.Result("spf", spf.Name, spf.Reason, property) };
        var verdicts = new List<string> { "spf=" + spf.Name };

        MimeMessage parsed;
        using (var stream = new MemoryStream(message, writable: false)) parsed = await MimeMessage.LoadAsync(stream, ct);
        var dkim = await DkimAsync(parsed, ct);
        if (dkim.Count == 0)
        {
            results.Add("dkim=none");
            verdicts.Add("dkim=none");
        }
        foreach (var d in dkim)
        {
            results.Add(AuthenticationResults.Result("dkim", d.Result, d.Reason, $"header.d={d.Domain} header.s={d.Selector}"));
            verdicts.Add($"dkim={d.Result}({d.Domain})");
        }
        var arc = await _arc.VerifyAsync(parsed, ct);
        results.Add(arc.AuthenticationResult);
        verdicts.Add(arc.LogField);

        var fromDomains = parsed.From.Mailboxes.Select(m => m.Domain.TrimEnd('.').ToLowerInvariant()).Distinct().ToList();
        if (fromDomains.Count != 1 || fromDomains[0].Length == 0)
        {
            // RFC 7489 §6.6.1: no single author domain, nothing to apply a policy to.
            results.Add(AuthenticationResults.Result("dmarc", "none", fromDomains.Count == 0 ? "no From address" : "more than one From domain", "header.from=" + string.Join(',', fromDomains)));
            verdicts.Add("dmarc=none");
            return new Outcome(results, verdicts, DmarcDisposition.None, "", "");
        }
        var from = fromDomains[0];
        var (dmarc, disposition, explanation) = await DmarcAsync(from, spf.Result == SpfResult.Pass ? spfDomain : null,
            dkim.Where(d => d.Result == "pass").Select(d => d.Domain).ToList(), ct);
        if (disposition != DmarcDisposition.None && arc is { Result: "pass", OldestDmarc: "pass" }
            && arc.Sets.FirstOrDefault(s => TrustedArcSealers.Contains(s.Domain, StringComparer.OrdinalIgnoreCase)) is { } sealer)
        {
            explanation += $"; not applied: {sealer.Domain}, a trusted ARC sealer, saw dmarc=pass at the first hop";
            verdicts.Add($"dmarc={dmarc}(arc-override:{sealer.Domain})");
            results.Add(AuthenticationResults.Result("dmarc", dmarc, explanation, "header.from=" + from));
            return new Outcome(results, verdicts, DmarcDisposition.None, from, explanation);
        }
        results.Add(AuthenticationResults.Result("dmarc", dmarc, explanation, "header.from=" + from));
        verdicts.Add($"dmarc={dmarc}" + (disposition == DmarcDisposition.None ? "" : $"({disposition.ToString().ToLowerInvariant()})"));
        return new Outcome(results, verdicts, disposition, from, explanation);
    }

    private async Task<Spf.Verdict> SpfAsync(IPAddress ip, string sender, string helo, string domain, CancellationToken ct)
    {
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(ct);
        deadline.CancelAfter(TimeSpan.FromSeconds(20)); // RFC 7208 §4.6.4: at least 20 s for the whole evaluation
        try { return await new Spf(dns, ip, sender, helo).CheckAsync(domain, deadline.Token); }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested) { return new(SpfResult.TempError, domain, "SPF evaluation took more than 20 s"); }
    }

    private sealed record DkimResult(string Result, string Domain, string Selector, string Reason);

    private async Task<List<DkimResult>> DkimAsync(MimeMessage message, CancellationToken ct)
    {
        var verifier = new DkimVerifier(new DnsKeyLocator(dns));
        var results = new List<DkimResult>();
        foreach (var header in message.Headers.Where(h => h.Id == HeaderId.DkimSignature).Take(MaxSignatures))
        {
            var tags = Tags(header.Value);
            var domain = tags.GetValueOrDefault("d", "").ToLowerInvariant();
            var selector = tags.GetValueOrDefault("s", "");
            try
            {
                var valid = await verifier.VerifyAsync(message, header, ct);
                results.Add(new(valid ? "pass" : "fail", domain, selector, valid ? "" : "signature or body hash does not verify"));
            }
            catch (DnsResponseException ex) { results.Add(new("temperror", domain, selector, ex.Message)); }
            catch (KeyUnavailableException ex) { results.Add(new(ex.Temporary ? "temperror" : "permerror", domain, selector, ex.Message)); }
            catch (Exception ex) when (ex is not OperationCanceledException)
            {
                // Whatever a sender put in a signature (bad tags, an odd key, a library's own
                // exception), it is that signature's permanent error, never the message's.
                results.Add(new("permerror", domain, selector, ex.Message));
            }
        }
        return results;
    }

    /// <summary>The DMARC result of an author domain, the disposition its policy asks for, and why.</summary>
    private async Task<(string Result, DmarcDisposition Disposition, string Why)> DmarcAsync(string from, string? spfPassed, IReadOnlyList<string> dkimPassed, CancellationToken ct)
    {
        var org = suffixes.OrganizationalDomain(from);
        DmarcPolicy? policy;
        try
        {
            policy = await PolicyAsync(from, ct);
            var atOrg = false;
            if (policy is null && org != from)
            {
                policy = await PolicyAsync(org, ct);
                atOrg = policy is not null;
            }
            if (policy is null) return ("none", DmarcDisposition.None, $"{from} publishes no DMARC policy");
            if (atOrg && policy.SubdomainPolicy is { } sp) policy = policy with { Policy = sp };
        }
        catch (DnsResponseException ex) { return ("temperror", DmarcDisposition.None, ex.Message); }

        bool Aligned(string domain, bool strict) =>
            strict ? domain.Equals(from, StringComparison.OrdinalIgnoreCase) : suffixes.OrganizationalDomain(domain) == org;
        var spfAligned = spfPassed is not null && Aligned(spfPassed, policy.StrictSpf);
        var dkimAligned = dkimPassed.FirstOrDefault(d => Aligned(d, policy.StrictDkim));
        if (spfAligned || dkimAligned is not null)
            return ("pass", DmarcDisposition.None, spfAligned ? $"SPF of {spfPassed} aligned" : $"DKIM of {dkimAligned} aligned");

        var disposition = policy.Policy;
        // pct= applies the policy to that share of failing mail; the rest gets the next milder one (§6.6.4).
        if (policy.Percent < 100 && Random.Shared.Next(100) >= policy.Percent)
            disposition = disposition == DmarcDisposition.Reject ? DmarcDisposition.Quarantine : DmarcDisposition.None;
        var name = policy.Policy.ToString().ToLowerInvariant();
        return ("fail", disposition, $"p={name} dis={disposition.ToString().ToLowerInvariant()}: neither SPF nor DKIM passed for a domain aligned with {from}");
    }

    private sealed record DmarcPolicy(DmarcDisposition Policy, DmarcDisposition? SubdomainPolicy, bool StrictSpf, bool StrictDkim, int Percent);

    /// <summary>The policy at _dmarc.DOMAIN, or null when there is none (or none valid: a record must start with v=DMARC1).</summary>
    private async Task<DmarcPolicy?> PolicyAsync(string domain, CancellationToken ct)
    {
        var answer = await dns.QueryAsync("_dmarc." + domain, QueryType.TXT, QueryClass.IN, ct);
        if (answer.Header.ResponseCode is not (DnsHeaderResponseCode.NoError or DnsHeaderResponseCode.NotExistentDomain))
            throw new DnsResponseException($"DNS TXT _dmarc.{domain}: {answer.Header.ResponseCode}");
        var records = answer.Answers.TxtRecords().Select(t => string.Concat(t.Text))
            .Where(t => t.TrimStart().StartsWith("v=DMARC1", StringComparison.Ordinal)).ToList();
        if (records.Count != 1) return null; // none, or more than one: no policy (§6.6.3)
        var tags = Tags(records[0]);
        static DmarcDisposition? Disposition(string? value) => value?.ToLowerInvariant() switch
        {
            "none" => DmarcDisposition.None,
            "quarantine" => DmarcDisposition.Quarantine,
            "reject" => DmarcDisposition.Reject,
            _ => null,
        };
        var p = Disposition(tags.GetValueOrDefault("p"));
        // A record without a valid p= is treated as p=none when it asks for reports (§6.6.3); else as no policy.
        if (p is null && !tags.ContainsKey("rua")) return null;
        var pct = int.TryParse(tags.GetValueOrDefault("pct", "100"), out var n) ? Math.Clamp(n, 0, 100) : 100;
        return new DmarcPolicy(p ?? DmarcDisposition.None, Disposition(tags.GetValueOrDefault("sp")),
            tags.GetValueOrDefault("aspf") == "s", tags.GetValueOrDefault("adkim") == "s", pct);
    }

    /// <summary>"v=1; a=rsa-sha256; d=example.com" → tag → value (the first of each), values trimmed and unfolded.</summary>
    internal static Dictionary<string, string> Tags(string value)
    {
        var tags = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var part in value.Split(';'))
        {
            var eq = part.IndexOf('=');
            if (eq <= 0) continue;
            var name = part[..eq].Trim();
            var text = string.Concat(part[(eq + 1)..].Where(c => !char.IsWhiteSpace(c) || c == ' ')).Trim();
            tags.TryAdd(name, text);
        }
        return tags;
    }
}
