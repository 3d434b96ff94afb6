using System.Globalization;
using System.Net;
using System.Text;
using DnsClient;

namespace Appliance.Filtering;

// Implementation notes: the MX's spam defences, in the order a message meets them.
// - MAIL: a sender on Spam:BlockSenders is refused (550 5.7.1).
// - First RCPT of a session: the client's address is looked up once on every DNS list (only with
//   Dns:Servers, answers cached with their TTLs by the shared resolver); a block list without a
//   weight refuses (554 5.7.1), as Postfix's reject_rbl_client does.
// - RCPT of a hosted recipient: greylisting (skipped for allowed senders and DNSWL-listed clients).
// - DATA: the score is the sum of weighted tests (DNS lists, rspamd's score when configured,
//   the sender allow list at −100). rspamd's own "reject" and "soft reject" actions are obeyed
//   (550 / 451), as its milter would have Postfix do; when it cannot answer, mail goes on
//   without its opinion (logged rspamd=error). At RejectScore the message is refused for everyone; then each
//   recipient's own Bayes filter adds its part, and at JunkScore that recipient's copy goes to
//   Junk. Each copy says its score in X-Spam-Score / X-Spam-Status (SpamAssassin's fields, which
//   clients and Sieve scripts know), and X-Spam-Flag: YES when it went to Junk. Fields of these
//   names a sender wrote are removed first, so none can vouch for itself.

/// <summary>One scored finding, as X-Spam-Status lists it: BAYES_99=5.0.</summary>
public sealed record SpamTest(string Name, double Score);

public sealed class SpamFilter
{
    private readonly Hosting.SpamOptions _options;
    private readonly ILookupClient? _dns;

    public SpamFilter(Hosting.SpamOptions options, IReadOnlyList<string> dnsServers, string dataDirectory)
    {
        _options = options;
        if (options.JunkScore >= options.RejectScore)
            throw new InvalidOperationException($"Spam:JunkScore ({options.JunkScore}) must be lower than Spam:RejectScore ({options.RejectScore})");
        try
        {
            Block = [.. options.Dnsbl.Where(s => s.Trim().Length > 0).Select(DnsList.Parse)];
            Allow = [.. options.Dnswl.Where(s => s.Trim().Length > 0).Select(DnsList.Parse).Select(l => l with { Weight = l.Weight ?? -5 })];
        }
        catch (FormatException ex)
        {
            throw new InvalidOperationException("Spam:Dnsbl/Dnswl: " + ex.Message, ex);
        }
        // Like every DNS user here, only a resolver the administrator named (DESIGN.md §7).
        if (dnsServers.Count > 0 && Block.Count + Allow.Count > 0) _dns = Relay.MxResolver.Client(dnsServers);
        if (options.Greylist.Enabled) Greylist = new Greylist(Path.Combine(dataDirectory, "greylist.db"), options.Greylist);
        if (options.Rspamd.Trim() is { Length: > 0 } url)
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
                throw new InvalidOperationException($"Spam:Rspamd: '{url}' is not an http(s) URL");
            Rspamd = new RspamdClient(uri, TimeSpan.FromSeconds(Math.Max(1, options.RspamdTimeoutSeconds)),
                options.RspamdPassword.Length > 0 ? options.RspamdPassword : null);
        }
    }

    /// <summary>rspamd, asked about every message when Spam:Rspamd is set.</summary>
    public RspamdClient? Rspamd { get; }

    public IReadOnlyList<DnsList> Block { get; }
    public IReadOnlyList<DnsList> Allow { get; }
    public Greylist? Greylist { get; }
    public double JunkScore => _options.JunkScore;
    public double RejectScore => _options.RejectScore;
    public int BayesMinSpam => _options.BayesMinSpam;

    /// <summary>The client's listings (none without a resolver or lists).</summary>
    public Task<DnsListVerdict> ListsAsync(IPAddress ip, CancellationToken ct) =>
        _dns is null ? Task.FromResult(DnsListVerdict.None) : DnsListVerdict.LookupAsync(_dns, Block, Allow, ip, ct);

    public bool IsAllowedSender(string sender) => Matches(_options.AllowSenders, sender);
    public bool IsBlockedSender(string sender) => Matches(_options.BlockSenders, sender);

    /// <summary>"user@domain" matches that address, "@domain" every address of the domain, "domain" the domain and its subdomains.</summary>
    internal static bool Matches(IEnumerable<string> patterns, string sender)
    {
        if (sender.Length == 0) return false;
        var at = sender.LastIndexOf('@');
        var domain = at < 0 ? "" : sender[(at + 1)..];
        foreach (var raw in patterns)
        {
            var p = raw.Trim();
            if (p.Length == 0) continue;
            if (p.StartsWith('@') ? domain.Equals(p[1..], StringComparison.OrdinalIgnoreCase)
                : p.Contains('@') ? sender.Equals(p, StringComparison.OrdinalIgnoreCase)
                : domain.Equals(p, StringComparison.OrdinalIgnoreCase) || domain.EndsWith("." + p, StringComparison.OrdinalIgnoreCase))
                return true;
        }
        return false;
    }

    /// <summary>The tests a client's listings add to the score.</summary>
    public static IEnumerable<SpamTest> Tests(DnsListVerdict lists) =>
        lists.Blocked.Where(b => b.List.Weight is not null).Select(b => new SpamTest("DNSBL_" + b.List.Zone, b.List.Weight!.Value))
            .Concat(lists.Allowed.Select(a => new SpamTest("DNSWL_" + a.List.Zone, a.List.Weight ?? -5)));

    /// <summary>The Bayes filter's indicator as a scored test (SpamAssassin's BAYES_nn bands).</summary>
    public static SpamTest BayesTest(double probability) => probability switch
    {
        >= 0.99 => new("BAYES_99", 5.0),
        >= 0.95 => new("BAYES_95", 4.0),
        >= 0.80 => new("BAYES_80", 2.0),
        >= 0.60 => new("BAYES_60", 1.0),
        <= 0.05 => new("BAYES_05", -1.0),
        <= 0.20 => new("BAYES_20", -0.5),
        _ => new("BAYES_50", 0),
    };

    /// <summary>X-Spam-Score, X-Spam-Status and, for Junk, X-Spam-Flag.</summary>
    public byte[] Header(IReadOnlyList<SpamTest> tests, bool junk)
    {
        var score = tests.Sum(t => t.Score);
        var sb = new StringBuilder();
        sb.Append("X-Spam-Score: ").Append(Format(score)).Append("\r\n");
        sb.Append("X-Spam-Status: ").Append(junk ? "Yes" : "No").Append(", score=").Append(Format(score))
          .Append(" required=").Append(Format(JunkScore));
        if (tests.Count > 0) sb.Append("\r\n\ttests=").AppendJoin(',', tests.Select(t => $"{t.Name}={Format(t.Score)}"));
        sb.Append("\r\n");
        if (junk) sb.Append("X-Spam-Flag: YES\r\n");
        return Encoding.ASCII.GetBytes(sb.ToString());
    }

    private static string Format(double v) => v.ToString("0.0", CultureInfo.InvariantCulture);

    /// <summary>A sender on Spam:AllowSenders: never spam, and no Bayes verdict is asked.</summary>
    public static readonly SpamTest AllowedSender = new("ALLOWED_SENDER", -100);

    /// <summary>A sender on the recipient's own allow list (its mailbox's sender lists): not spam for them.</summary>
    public static readonly SpamTest UserAllowed = new("USER_ALLOWED", -100);
    /// <summary>A sender on the recipient's own block list: spam for them, to Junk.</summary>
    public static readonly SpamTest UserBlocked = new("USER_BLOCKED", 100);

    /// <summary>The addresses a message is from, for the sender lists: the envelope sender and the From field's.</summary>
    public static IReadOnlyList<string> Senders(string envelopeFrom, byte[] message)
    {
        var senders = new List<string>();
        if (envelopeFrom.Length > 0) senders.Add(envelopeFrom);
        try
        {
            using var stream = new MemoryStream(message, writable: false);
            var headers = MimeKit.HeaderList.Load(stream);
            if (headers[MimeKit.HeaderId.From] is { } from && MimeKit.InternetAddressList.TryParse(from, out var list))
                senders.AddRange(list.Mailboxes.Select(m => m.Address));
        }
        catch (FormatException) { }
        return senders;
    }

    /// <summary>The header fields this filter writes, removed from what a sender sent.</summary>
    public static readonly string[] OurFields = ["X-Spam-Score", "X-Spam-Status", "X-Spam-Flag"];
}
