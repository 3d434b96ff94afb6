using System.Globalization;
using System.Net;
using DnsClient;
using DnsClient.Protocol;

namespace Appliance.Filtering;

/// <summary>
/// One DNS block or allow list as configured: "zone" or "zone=weight". A block list without a
/// weight refuses the client outright; with one, a listing adds the weight to the message's spam
/// score. An allow list's weight (default −5) is taken off the score, and a listed client is
/// not greylisted.
/// </summary>
public sealed record DnsList(string Zone, double? Weight)
{
    public static DnsList Parse(string text)
    {
        var t = text.Trim();
        var eq = t.IndexOf('=');
        if (eq < 0) return new(t.TrimEnd('.').ToLowerInvariant(), null);
        if (!double.TryParse(t[(eq + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out var weight) || !double.IsFinite(weight))
            throw new FormatException($"\"{text}\": the weight after '=' is not a number");
        var zone = t[..eq].Trim().TrimEnd('.').ToLowerInvariant();
        if (zone.Length == 0) throw new FormatException($"\"{text}\": no zone before '='");
        return new(zone, weight);
    }

    /// <summary>The name a listing of <paramref name="ip"/> would have (RFC 5782 §2.1).</summary>
    public string NameOf(IPAddress ip) => $"{Relay.MxResolver.Reversed(ip.IsIPv4MappedToIPv6 ? ip.MapToIPv4() : ip)}.{Zone}";

    /// <summary>
    /// Whether <paramref name="ip"/> is on this list: true listed, false not listed, null the
    /// lookup failed (with why). Only answers in 127.0.0.0/8 count (RFC 5782 §2.1), and not
    /// 127.255.255.0/24, where big lists put their refusals to answer (Spamhaus' 127.255.255.254
    /// for queries through public resolvers).
    /// </summary>
    public async Task<(bool? Listed, string Detail)> LookupAsync(ILookupClient dns, IPAddress ip, CancellationToken ct)
    {
        try
        {
            var answer = await dns.QueryAsync(NameOf(ip), QueryType.A, QueryClass.IN, ct);
            if (answer.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain) return (false, "");
            if (answer.HasError) return (null, answer.ErrorMessage);
            var codes = answer.Answers.ARecords().Select(a => a.Address).ToList();
            var refusal = codes.FirstOrDefault(a => a.GetAddressBytes() is [127, 255, 255, _]);
            if (refusal is not null) return (null, $"the list refused to answer ({refusal})");
            var listed = codes.Where(a => a.GetAddressBytes()[0] == 127).ToList();
            return listed.Count > 0 ? (true, string.Join(',', listed)) : (false, "");
        }
        catch (DnsResponseException ex)
        {
            return (null, ex.Message);
        }
    }
}

/// <summary>What the client's address is on every configured list, looked up once per SMTP session.</summary>
public sealed record DnsListVerdict(IReadOnlyList<(DnsList List, string Codes)> Blocked, IReadOnlyList<(DnsList List, string Codes)> Allowed, IReadOnlyList<string> Failures)
{
    public static readonly DnsListVerdict None = new([], [], []);

    /// <summary>A block list without a weight lists the client: refused.</summary>
    public DnsList? Refusing => Blocked.Select(b => b.List).FirstOrDefault(l => l.Weight is null);

    public static async Task<DnsListVerdict> LookupAsync(ILookupClient dns, IReadOnlyList<DnsList> block, IReadOnlyList<DnsList> allow, IPAddress ip, CancellationToken ct)
    {
        if (block.Count + allow.Count == 0) return None;
        var lookups = block.Select(l => (l, false)).Concat(allow.Select(l => (l, true)))
            .Select(async x => (x.l, x.Item2, await x.l.LookupAsync(dns, ip, ct))).ToList();
        var blocked = new List<(DnsList, string)>();
        var allowed = new List<(DnsList, string)>();
        var failures = new List<string>();
        foreach (var (list, isAllow, (listed, detail)) in await Task.WhenAll(lookups))
        {
            if (listed is null) failures.Add($"{list.Zone}: {detail}");
            else if (listed == true) (isAllow ? allowed : blocked).Add((list, detail));
        }
        return new(blocked, allowed, failures);
    }
}
