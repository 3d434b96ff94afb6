using System.Collections.Concurrent;
using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;

namespace Appliance.Monitoring;

/// <summary>
/// The event counters of one node since it started (DESIGN.md: /metrics, and the mail figures
/// of the collector): SMTP replies by role and outcome with their reasons, failed logins, fence
/// events. Services count as things happen; the collector turns differences into rates and
/// /metrics writes the totals as Prometheus counters. One instance per node, so two nodes in
/// one test process keep their own.
/// </summary>
public sealed partial class NodeCounters
{
    private readonly ConcurrentDictionary<string, StrongBox<long>> _values = new(StringComparer.Ordinal);

    /// <summary>Adds to a counter; <paramref name="series"/> ends in _total (see <see cref="MetricValue.Series"/>).</summary>
    public void Add(string series, long delta = 1) =>
        Interlocked.Add(ref _values.GetOrAdd(series, static _ => new StrongBox<long>()).Value, delta);

    /// <summary>Every counter and its total, by name.</summary>
    public IReadOnlyList<(string Series, long Value)> Snapshot() =>
        [.. _values.Select(kv => (kv.Key, Interlocked.Read(ref kv.Value.Value))).OrderBy(kv => kv.Key, StringComparer.Ordinal)];

    /// <summary>
    /// The final reply to an SMTP transaction or to one of its commands: 2xx counts as accepted,
    /// 4xx as deferred and 5xx as rejected, the last two with their reason (the enhanced status
    /// code when the reply has one, else the reply code).
    /// </summary>
    public void SmtpReply(string role, int code, string text)
    {
        if (code is >= 200 and < 300)
        {
            Add(MetricValue.Series("smtp_accepted_total", ("role", role)));
            return;
        }
        var reason = EnhancedCode().Match(text) is { Success: true } m ? m.Value : code.ToString(System.Globalization.CultureInfo.InvariantCulture);
        Add(MetricValue.Series(code < 500 ? "smtp_deferred_total" : "smtp_rejected_total", ("role", role), ("reason", reason)));
    }

    [GeneratedRegex(@"^[245]\.\d{1,3}\.\d{1,3}(?=\s|$)")]
    private static partial Regex EnhancedCode();
}
