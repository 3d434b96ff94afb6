using System.Net;
using System.Net.Sockets;
using DnsClient;
using DnsClient.Protocol;

namespace Appliance.Relay;

/// <summary>Where mail for a domain goes: its MX hosts in the order to try, each with its addresses.</summary>
public sealed record MxHost(string Name, IReadOnlyList<IPAddress> Addresses);

/// <summary>Why a domain has no route: permanent (bounce now) or temporary (try again later).</summary>
public sealed class RouteException(string status, string message, bool permanent) : Exception(message)
{
    /// <summary>The enhanced status code (RFC 3463) to report.</summary>
    public string Status { get; } = status;
    public bool Permanent { get; } = permanent;
}

/// <summary>
/// MX resolution (RFC 5321 §5.1) through DnsClient: MX records by preference (equal preferences
/// in random order), A and AAAA of each; no MX at all means the domain itself is the MX (the
/// implicit MX); a single MX of "." is a null MX (RFC 7505): the domain takes no mail. The
/// resolvers are <c>Dns:Servers</c>, else the system's; answers are cached with their TTLs.
/// A domain that does not exist is a permanent failure; a resolver that fails or does not
/// answer is a temporary one.
/// </summary>
public sealed class MxResolver
{
    private readonly LookupClient _dns;

    public MxResolver(IReadOnlyList<string> servers) => _dns = Client(servers);

    /// <summary>
    /// The resolver every DNS user of a node shares its settings with: Dns:Servers (else the
    /// system's), answers cached with their TTLs, 5 s per try and one retry, TCP after a truncated
    /// answer, failures as answers (not exceptions) so callers tell NXDOMAIN from SERVFAIL.
    /// </summary>
    public static LookupClient Client(IReadOnlyList<string> servers)
    {
        var options = servers.Count == 0 ? new LookupClientOptions() : new LookupClientOptions([.. servers.Select(ParseServer)]);
        options.UseCache = true;
        options.Timeout = TimeSpan.FromSeconds(5);
        options.Retries = 1;
        options.ThrowDnsErrors = false;
        options.ContinueOnDnsError = false;
        options.UseTcpFallback = true;
        return new LookupClient(options);
    }

    /// <summary>
    /// An address as DNS reverses it: octets (IPv4) or nibbles (IPv6) last first, "2.0.0.192";
    /// under in-addr.arpa/ip6.arpa for PTR, under a list's zone for a DNSBL (RFC 5782).
    /// </summary>
    public static string Reversed(IPAddress ip) => ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6
        ? string.Join('.', Convert.ToHexStringLower(ip.GetAddressBytes()).Reverse())
        : string.Join('.', ip.GetAddressBytes().Reverse());

    /// <summary>"ip" or "ip:port" ("[v6]:port" for IPv6).</summary>
    public static NameServer ParseServer(string text) =>
        IPEndPoint.TryParse(text, out var ep)
            ? new NameServer(ep.Port == 0 ? new IPEndPoint(ep.Address, 53) : ep)
            : throw new FormatException($"Dns:Servers: '{text}' is not ip[:port]");

    public async Task<IReadOnlyList<MxHost>> ResolveAsync(string domain, CancellationToken ct)
    {
        var mx = await QueryAsync(domain, QueryType.MX, ct);
        if (mx.Header.ResponseCode == DnsHeaderResponseCode.NotExistentDomain)
            throw new RouteException("5.1.2", $"domain {domain} does not exist (DNS NXDOMAIN)", permanent: true);
        var records = mx.Answers.MxRecords().ToList();
        if (records.Count == 1 && records[0].Exchange.Value is "." or "")
            throw new RouteException("5.1.10", $"domain {domain} does not accept mail (null MX, RFC 7505)", permanent: true);
        var names = records.Count == 0
            ? [domain] // implicit MX (RFC 5321 §5.1)
            : records.Where(r => r.Exchange.Value is not ("." or ""))
                .GroupBy(r => r.Preference).OrderBy(g => g.Key)
                .SelectMany(g => g.OrderBy(_ => Random.Shared.Next()))
                .Select(r => r.Exchange.Value.TrimEnd('.')).Distinct(StringComparer.OrdinalIgnoreCase).ToList();
        var hosts = new List<MxHost>();
        string? lastProblem = null;
        var lookupFailed = false;
        foreach (var name in names)
        {
            try
            {
                var addresses = await AddressesAsync(name, ct);
                if (addresses.Count > 0) hosts.Add(new MxHost(name, addresses));
                else lastProblem = $"MX host {name} has no address";
            }
            catch (RouteException ex)
            {
                lastProblem = ex.Message;
                lookupFailed = true;
            }
        }
        if (hosts.Count > 0) return hosts;
        // No MX record and the domain has no address either (a sure answer, not a failed
        // lookup): nothing will ever take its mail.
        if (records.Count == 0 && !lookupFailed) throw new RouteException("5.1.2", $"domain {domain} has neither an MX nor an address record", permanent: true);
        throw new RouteException("4.4.4", lastProblem ?? $"no usable MX host for {domain}", permanent: false);
    }

    /// <summary>A and AAAA of a host (IPv4 first: more often routed).</summary>
    public async Task<IReadOnlyList<IPAddress>> AddressesAsync(string host, CancellationToken ct)
    {
        if (IPAddress.TryParse(host, out var literal)) return [literal];
        var a = await QueryAsync(host, QueryType.A, ct);
        var aaaa = await QueryAsync(host, QueryType.AAAA, ct);
        return [.. a.Answers.ARecords().Select(r => r.Address), .. aaaa.Answers.AaaaRecords().Select(r => r.Address)];
    }

    private async Task<IDnsQueryResponse> QueryAsync(string name, QueryType type, CancellationToken ct)
    {
        IDnsQueryResponse response;
        try
        {
            response = await _dns.QueryAsync(name, type, QueryClass.IN, ct);
        }
        catch (DnsResponseException ex)
        {
            throw new RouteException("4.4.3", $"DNS {type} lookup of {name} failed: {ex.Message}", permanent: false);
        }
        catch (SocketException ex)
        {
            throw new RouteException("4.4.3", $"DNS {type} lookup of {name} failed: {ex.Message}", permanent: false);
        }
        if (response.HasError && response.Header.ResponseCode != DnsHeaderResponseCode.NotExistentDomain)
            throw new RouteException("4.4.3", $"DNS {type} lookup of {name} failed: {response.ErrorMessage}", permanent: false);
        return response;
    }
}
