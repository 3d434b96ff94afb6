using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;
using DnsClient;
using DnsClient.Protocol;

namespace Appliance.Filtering;

/// <summary>The results of RFC 7208 §2.6, as Authentication-Results and log lines write them.</summary>
public enum SpfResult { None, Neutral, Pass, Fail, SoftFail, TempError, PermError }

/// <summary>
/// SPF (RFC 7208): check_host() of a client address for a domain, with every mechanism (all,
/// include, a, mx, ptr, ip4, ip6, exists), the redirect and exp modifiers, macros (§7), and
/// the limits that keep one message from costing a DNS storm: 10 terms that query DNS, 10 MX
/// or PTR names each, and 2 void lookups (§4.6.4). One evaluator per message: it counts.
/// DNS failures other than "no such name" are a temporary error, never a fail.
/// </summary>
public sealed class Spf(ILookupClient dns, IPAddress ip, string sender, string helo)
{
    private const int MaxDnsTerms = 10;
    private const int MaxVoidLookups = 2;
    private int _dnsTerms;
    private int _voidLookups;
    private readonly IPAddress _ip = ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip;

    /// <summary>An evaluation that cannot go on: the result it ends with and why.</summary>
    private sealed class SpfAbort(SpfResult result, string reason) : Exception(reason)
    {
        public SpfResult Result { get; } = result;
    }

    /// <summary>The verdict, and for a fail the explanation to give the sender (exp=, or a default).</summary>
    public sealed record Verdict(SpfResult Result, string Domain, string Reason)
    {
        public string Name => Result.ToString().ToLowerInvariant();
    }

    /// <summary>check_host(ip, domain, sender) for the MAIL FROM domain (or the HELO name when the sender is null).</summary>
    public async Task<Verdict> CheckAsync(string domain, CancellationToken ct)
    {
        try
        {
            var (result, reason) = await CheckHostAsync(domain.TrimEnd('.'), 0, ct);
            return new Verdict(result, domain, reason);
        }
        catch (SpfAbort abort)
        {
            return new Verdict(abort.Result, domain, abort.Message);
        }
    }

    private async Task<(SpfResult, string)> CheckHostAsync(string domain, int depth, CancellationToken ct)
    {
        if (!ValidDomain(domain)) return (SpfResult.None, $"{domain} is not a valid domain name");
        var record = await RecordAsync(domain, ct);
        if (record is null) return (SpfResult.None, $"{domain} publishes no SPF record");
        var terms = record.Split(' ', StringSplitOptions.RemoveEmptyEntries).Skip(1).ToList();
        // Modifiers first: they may stand anywhere, and exp= explains a fail found before it.
        string? redirect = null, exp = null;
        var directives = new List<string>();
        foreach (var term in terms)
        {
            var eq = term.IndexOf('=');
            var colon = term.IndexOf(':');
            if (eq > 0 && (colon < 0 || eq < colon) && IsName(term[..eq]))
            {
                var name = term[..eq].ToLowerInvariant();
                if (name == "redirect") redirect = redirect is null ? term[(eq + 1)..] : throw new SpfAbort(SpfResult.PermError, $"{domain}: two redirect= modifiers");
                else if (name == "exp") exp = exp is null ? term[(eq + 1)..] : throw new SpfAbort(SpfResult.PermError, $"{domain}: two exp= modifiers");
                continue; // unknown modifiers are ignored (§6)
            }
            directives.Add(term);
        }
        foreach (var term in directives)
        {
            var qualifier = term[0] switch { '+' => SpfResult.Pass, '-' => SpfResult.Fail, '~' => SpfResult.SoftFail, '?' => SpfResult.Neutral, _ => (SpfResult?)null };
            var mechanism = qualifier is null ? term : term[1..];
            if (await MatchesAsync(mechanism, domain, depth, ct))
            {
                var result = qualifier ?? SpfResult.Pass;
                var reason = $"{domain}: {_ip} matched {term}";
                if (result == SpfResult.Fail && exp is not null) reason = await ExplanationAsync(exp, domain, ct) ?? reason;
                return (result, reason);
            }
        }
        if (redirect is not null)
        {
            Count(domain);
            var target = await ExpandAsync(redirect, domain, forExp: false, ct);
            var (result, reason) = await CheckHostAsync(target, depth + 1, ct);
            return result == SpfResult.None ? (SpfResult.PermError, $"{domain}: redirect to {target}, which has no SPF record") : (result, reason);
        }
        return (SpfResult.Neutral, $"{domain}: no mechanism matched {_ip}");
    }

    /// <summary>The domain's one SPF record, or null (§4.5); two are a permanent error.</summary>
    private async Task<string?> RecordAsync(string domain, CancellationToken ct)
    {
        var answer = await QueryAsync(domain, QueryType.TXT, ct, countVoid: false);
        var records = answer.Answers.TxtRecords().Select(t => string.Concat(t.Text))
            .Where(t => t.Equals("v=spf1", StringComparison.OrdinalIgnoreCase) || t.StartsWith("v=spf1 ", StringComparison.OrdinalIgnoreCase)).ToList();
        return records.Count switch
        {
            0 => null,
            1 => records[0],
            _ => throw new SpfAbort(SpfResult.PermError, $"{domain} publishes {records.Count} SPF records"),
        };
    }

    private async Task<bool> MatchesAsync(string mechanism, string domain, int depth, CancellationToken ct)
    {
        var colon = mechanism.IndexOf(':');
        var slash = mechanism.IndexOf('/');
        var end = colon >= 0 ? colon : slash >= 0 ? slash : mechanism.Length;
        var name = mechanism[..end].ToLowerInvariant();
        var rest = mechanism[end..];
        switch (name)
        {
            case "all" when rest.Length == 0:
                return true;
            case "include":
                {
                    Count(domain);
                    var target = await TargetAsync(rest, domain, required: true, ct);
                    var (result, reason) = await CheckHostAsync(target, depth + 1, ct);
                    return result switch
                    {
                        SpfResult.Pass => true,
                        SpfResult.Fail or SpfResult.SoftFail or SpfResult.Neutral => false,
                        SpfResult.TempError => throw new SpfAbort(SpfResult.TempError, reason),
                        _ => throw new SpfAbort(SpfResult.PermError, $"{domain}: include:{target} gives {result}: {reason}"),
                    };
                }
            case "a":
                {
                    Count(domain);
                    var (spec, v4, v6) = SplitCidr(rest);
                    var target = await TargetAsync(spec, domain, required: false, ct);
                    return (await AddressesAsync(target, ct)).Any(a => InNetwork(a, v4, v6));
                }
            case "mx":
                {
                    Count(domain);
                    var (spec, v4, v6) = SplitCidr(rest);
                    var target = await TargetAsync(spec, domain, required: false, ct);
                    var hosts = (await QueryAsync(target, QueryType.MX, ct)).Answers.MxRecords().Select(m => m.Exchange.Value.TrimEnd('.')).ToList();
                    if (hosts.Count > 10) throw new SpfAbort(SpfResult.PermError, $"{domain}: mx:{target} has more than 10 MX hosts");
                    foreach (var host in hosts)
                        if ((await AddressesAsync(host, ct)).Any(a => InNetwork(a, v4, v6))) return true;
                    return false;
                }
            case "ptr":
                {
                    Count(domain);
                    var target = await TargetAsync(rest, domain, required: false, ct);
                    return (await ValidatedNamesAsync(ct)).Any(n => n.Equals(target, StringComparison.OrdinalIgnoreCase)
                        || n.EndsWith("." + target, StringComparison.OrdinalIgnoreCase));
                }
            case "ip4" or "ip6" when colon == end:
                {
                    var text = mechanism[(colon + 1)..];
                    var cut = text.IndexOf('/');
                    if (!IPAddress.TryParse(cut < 0 ? text : text[..cut], out var network)
                        || network.AddressFamily != (name == "ip4" ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6))
                        throw new SpfAbort(SpfResult.PermError, $"{domain}: bad {name} address in {mechanism}");
                    var max = name == "ip4" ? 32 : 128;
                    var prefix = cut < 0 ? max : int.TryParse(text[(cut + 1)..], NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p <= max ? p
                        : throw new SpfAbort(SpfResult.PermError, $"{domain}: bad prefix length in {mechanism}");
                    return _ip.AddressFamily == network.AddressFamily && new IPNetwork(Mask(network, prefix), prefix).Contains(_ip);
                }
            case "exists":
                {
                    Count(domain);
                    var target = await TargetAsync(rest, domain, required: true, ct);
                    // Always an A query, whatever the client's family (§5.7).
                    return (await QueryAsync(target, QueryType.A, ct)).Answers.ARecords().Any();
                }
            default:
                throw new SpfAbort(SpfResult.PermError, $"{domain}: unknown mechanism '{mechanism}'");
        }
    }

    /// <summary>The domain-spec after ":" (macro-expanded), or the current domain when there is none and none is required.</summary>
    private async Task<string> TargetAsync(string rest, string domain, bool required, CancellationToken ct)
    {
        if (rest.StartsWith(':')) return await ExpandAsync(rest[1..], domain, forExp: false, ct);
        if (required || rest.Length > 0) throw new SpfAbort(SpfResult.PermError, $"{domain}: a domain is required after the mechanism in '{rest}'");
        return domain;
    }

    /// <summary>"a:host/24//64" → ("host", 24, 64); a missing length is the whole address.</summary>
    private static (string Spec, int V4, int V6) SplitCidr(string rest)
    {
        int v4 = 32, v6 = 128;
        var dual = rest.IndexOf("//", StringComparison.Ordinal);
        if (dual >= 0)
        {
            v6 = Prefix(rest[(dual + 2)..], 128);
            rest = rest[..dual];
        }
        var slash = rest.LastIndexOf('/');
        if (slash >= 0 && !rest[(slash + 1)..].Contains('.'))
        {
            v4 = Prefix(rest[(slash + 1)..], 32);
            rest = rest[..slash];
        }
        return (rest, v4, v6);
    }

    private static int Prefix(string text, int max) =>
        int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out var p) && p <= max && (text.Length == 1 || text[0] != '0')
            ? p : throw new SpfAbort(SpfResult.PermError, $"bad prefix length '/{text}'");

    private bool InNetwork(IPAddress address, int v4, int v6)
    {
        if (address.AddressFamily != _ip.AddressFamily) return false;
        var prefix = address.AddressFamily == AddressFamily.InterNetwork ? v4 : v6;
        return new IPNetwork(Mask(address, prefix), prefix).Contains(_ip);
    }

    private static IPAddress Mask(IPAddress address, int prefix)
    {
        var bytes = address.GetAddressBytes();
        for (var i = 0; i < bytes.Length; i++)
        {
            var bits = Math.Clamp(prefix - i * 8, 0, 8);
            bytes[i] &= (byte)(0xFF << (8 - bits));
        }
        return new IPAddress(bytes);
    }

    /// <summary>The A or AAAA records of a name, as the client's address family asks.</summary>
    private async Task<IReadOnlyList<IPAddress>> AddressesAsync(string name, CancellationToken ct)
    {
        var v6 = _ip.AddressFamily == AddressFamily.InterNetworkV6;
        var answer = await QueryAsync(name, v6 ? QueryType.AAAA : QueryType.A, ct);
        return v6 ? [.. answer.Answers.AaaaRecords().Select(r => r.Address)] : [.. answer.Answers.ARecords().Select(r => r.Address)];
    }

    /// <summary>The client's names that resolve back to it (§5.5), at most 10 considered.</summary>
    private async Task<IReadOnlyList<string>> ValidatedNamesAsync(CancellationToken ct)
    {
        var answer = await QueryAsync(ReverseName(_ip), QueryType.PTR, ct, countVoid: false);
        var validated = new List<string>();
        foreach (var name in answer.Answers.PtrRecords().Select(p => p.PtrDomainName.Value.TrimEnd('.')).Take(10))
        {
            try
            {
                if ((await AddressesAsync(name, ct)).Any(a => a.Equals(_ip))) validated.Add(name);
            }
            catch (SpfAbort) { } // a failing lookup of one name only leaves it out (§5.5)
        }
        return validated;
    }

    private static string ReverseName(IPAddress ip) =>
        Relay.MxResolver.Reversed(ip) + (ip.AddressFamily == AddressFamily.InterNetworkV6 ? ".ip6.arpa" : ".in-addr.arpa");

    private void Count(string domain)
    {
        if (++_dnsTerms > MaxDnsTerms) throw new SpfAbort(SpfResult.PermError, $"{domain}: more than {MaxDnsTerms} DNS-querying terms");
    }

    private async Task<IDnsQueryResponse> QueryAsync(string name, QueryType type, CancellationToken ct, bool countVoid = true)
    {
        IDnsQueryResponse answer;
        try { answer = await dns.QueryAsync(name, type, QueryClass.IN, ct); }
        catch (DnsResponseException ex) { throw new SpfAbort(SpfResult.TempError, $"DNS {type} {name}: {ex.Message}"); }
        var code = answer.Header.ResponseCode;
        if (code is not (DnsHeaderResponseCode.NoError or DnsHeaderResponseCode.NotExistentDomain))
            throw new SpfAbort(SpfResult.TempError, $"DNS {type} {name}: {code}");
        if (countVoid && (code == DnsHeaderResponseCode.NotExistentDomain || answer.Answers.Count == 0) && ++_voidLookups > MaxVoidLookups)
            throw new SpfAbort(SpfResult.PermError, $"more than {MaxVoidLookups} lookups found nothing ({type} {name})");
        return answer;
    }

    private async Task<string?> ExplanationAsync(string exp, string domain, CancellationToken ct)
    {
        try
        {
            var target = await ExpandAsync(exp, domain, forExp: false, ct);
            var answer = await dns.QueryAsync(target, QueryType.TXT, QueryClass.IN, ct);
            var texts = answer.Answers.TxtRecords().Select(t => string.Concat(t.Text)).ToList();
            return texts.Count == 1 ? await ExpandAsync(texts[0], domain, forExp: true, ct) : null;
        }
        catch (Exception ex) when (ex is SpfAbort or DnsResponseException) { return null; } // §6.2: any trouble, no explanation
    }

    // ---- macros (§7) ----

    /// <summary>Expands a macro-string: %{letter[digits][r][delimiters]}, %%, %_, %-.</summary>
    internal async Task<string> ExpandAsync(string text, string domain, bool forExp, CancellationToken ct)
    {
        var b = new StringBuilder();
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (c != '%') { b.Append(c); continue; }
            if (++i >= text.Length) throw new SpfAbort(SpfResult.PermError, $"'{text}': a % at the end");
            switch (text[i])
            {
                case '%': b.Append('%'); continue;
                case '_': b.Append(' '); continue;
                case '-': b.Append("%20"); continue;
                case '{': break;
                default: throw new SpfAbort(SpfResult.PermError, $"'{text}': %{text[i]} is not a macro");
            }
            var close = text.IndexOf('}', i);
            if (close < 0 || close == i + 1) throw new SpfAbort(SpfResult.PermError, $"'{text}': unterminated macro");
            var body = text[(i + 1)..close];
            i = close;
            var letter = body[0];
            var value = await MacroAsync(char.ToLowerInvariant(letter), domain, forExp, ct)
                ?? throw new SpfAbort(SpfResult.PermError, $"'{text}': unknown macro letter {letter}");
            var j = 1;
            var digits = 0;
            while (j < body.Length && char.IsAsciiDigit(body[j])) digits = digits * 10 + (body[j++] - '0');
            var reverse = j < body.Length && (body[j] == 'r' || body[j] == 'R');
            if (reverse) j++;
            var delimiters = body[j..];
            if (delimiters.Any(d => !".-+,/_=".Contains(d))) throw new SpfAbort(SpfResult.PermError, $"'{text}': bad delimiter in %{{{body}}}");
            var parts = value.Split(delimiters.Length == 0 ? ['.'] : delimiters.ToCharArray()).ToList();
            if (reverse) parts.Reverse();
            if (j > 1 && digits == 0 && body[1..].TakeWhile(char.IsAsciiDigit).Any()) throw new SpfAbort(SpfResult.PermError, $"'{text}': zero labels asked for");
            if (digits > 0 && digits < parts.Count) parts = parts[^digits..];
            var expanded = string.Join('.', parts);
            b.Append(char.IsUpper(letter) ? Uri.EscapeDataString(expanded) : expanded);
        }
        var result = b.ToString();
        // A domain longer than 253 characters loses labels on the left (§7.3).
        while (!forExp && result.Length > 253 && result.IndexOf('.') is var dot and >= 0) result = result[(dot + 1)..];
        return result;
    }

    private async Task<string?> MacroAsync(char letter, string domain, bool forExp, CancellationToken ct)
    {
        var at = sender.LastIndexOf('@');
        return letter switch
        {
            's' => sender,
            'l' => at > 0 ? sender[..at] : "postmaster",
            'o' => at >= 0 ? sender[(at + 1)..] : sender,
            'd' => domain,
            'i' => _ip.AddressFamily == AddressFamily.InterNetworkV6
                ? string.Join('.', Convert.ToHexStringLower(_ip.GetAddressBytes()).ToCharArray())
                : _ip.ToString(),
            'v' => _ip.AddressFamily == AddressFamily.InterNetworkV6 ? "ip6" : "in-addr",
            'h' => helo,
            'p' => await PtrMacroAsync(domain, ct),
            'c' when forExp => _ip.ToString(),
            'r' when forExp => "unknown",
            't' when forExp => DateTimeOffset.UtcNow.ToUnixTimeSeconds().ToString(CultureInfo.InvariantCulture),
            _ => null,
        };
    }

    /// <summary>%{p}: a validated name of the client, preferring the domain itself or one under it (§7.3); "unknown" otherwise.</summary>
    private async Task<string> PtrMacroAsync(string domain, CancellationToken ct)
    {
        Count(domain);
        var names = await ValidatedNamesAsync(ct);
        return names.FirstOrDefault(n => n.Equals(domain, StringComparison.OrdinalIgnoreCase))
            ?? names.FirstOrDefault(n => n.EndsWith("." + domain, StringComparison.OrdinalIgnoreCase))
            ?? names.FirstOrDefault() ?? "unknown";
    }

    private static bool IsName(string name) => name.Length > 0 && char.IsAsciiLetter(name[0]) && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');

    /// <summary>At least two labels, none empty or over 63 characters (§4.3).</summary>
    private static bool ValidDomain(string domain)
    {
        var labels = domain.Split('.');
        return domain.Length is > 0 and <= 253 && labels.Length >= 2 && labels.All(l => l.Length is > 0 and <= 63);
    }
}
