namespace Appliance.Filtering;

/// <summary>
/// The organizational domain of a name (RFC 7489 §3.2), from the Public Suffix List that
/// Debian's <c>publicsuffix</c> package keeps at /usr/share/publicsuffix (rules, "*." wildcards
/// and "!" exceptions; the default rule "*" when none matches). Without the file, the last two
/// labels are taken, which is wrong only under multi-label suffixes such as co.uk.
/// </summary>
public sealed class PublicSuffixes
{
    public const string DebianPath = "/usr/share/publicsuffix/public_suffix_list.dat";
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("filtering");
    private readonly HashSet<string> _rules = new(StringComparer.OrdinalIgnoreCase);
    private readonly HashSet<string> _exceptions = new(StringComparer.OrdinalIgnoreCase);

    public bool Loaded { get; }

    public PublicSuffixes(string path = DebianPath)
    {
        if (!File.Exists(path))
        {
            Log.Warn("no public suffix list at {0} (apt install publicsuffix): DMARC takes the last two labels as the organizational domain", path);
            return;
        }
        foreach (var raw in File.ReadLines(path))
        {
            var line = raw.Trim();
            if (line.Length == 0 || line.StartsWith("//", StringComparison.Ordinal)) continue;
            var rule = line.Split(' ', '\t')[0];
            if (rule.StartsWith('!')) _exceptions.Add(rule[1..]);
            else _rules.Add(rule);
        }
        Loaded = _rules.Count > 0;
    }

    /// <summary>The public suffix plus one label: example.co.uk for mail.example.co.uk; the name itself when it is a suffix.</summary>
    public string OrganizationalDomain(string domain)
    {
        var labels = domain.TrimEnd('.').ToLowerInvariant().Split('.');
        if (!Loaded) return string.Join('.', labels[Math.Max(0, labels.Length - 2)..]);
        var suffixLabels = 1; // the default rule "*"
        for (var i = 0; i < labels.Length; i++)
        {
            var candidate = string.Join('.', labels[i..]);
            if (_exceptions.Contains(candidate)) { suffixLabels = labels.Length - i - 1; break; }
            var wildcard = i + 1 < labels.Length ? "*." + string.Join('.', labels[(i + 1)..]) : null;
            if (_rules.Contains(candidate) || (wildcard is not null && _rules.Contains(wildcard)))
            {
                suffixLabels = labels.Length - i;
                break;
            }
        }
        var take = Math.Min(labels.Length, suffixLabels + 1);
        return string.Join('.', labels[(labels.Length - take)..]);
    }
}
