using System.Text;

namespace Appliance.Monitoring;

/// <summary>
/// One measured value. <see cref="Name"/> is the series name in Prometheus' notation, family
/// and labels together (<c>disk_used_percent{fs="/var"}</c>): the same string keys the history,
/// names the graph line, and is written to /metrics after the appliance_ prefix.
/// </summary>
public readonly record struct MetricValue(string Name, double Value)
{
    /// <summary>A series name: the family, then the labels in the order given, values escaped as the exposition format says.</summary>
    public static string Series(string family, params ReadOnlySpan<(string Label, string Value)> labels)
    {
        if (labels.Length == 0) return family;
        var b = new StringBuilder(family).Append('{');
        for (var i = 0; i < labels.Length; i++)
        {
            if (i > 0) b.Append(',');
            b.Append(labels[i].Label).Append("=\"");
            foreach (var c in labels[i].Value)
                b.Append(c switch { '\\' => "\\\\", '"' => "\\\"", '\n' => "\\n", _ => c.ToString() });
            b.Append('"');
        }
        return b.Append('}').ToString();
    }

    /// <summary>The family of a series name (what comes before its labels).</summary>
    public static string FamilyOf(string series) => series.IndexOf('{') is var i and >= 0 ? series[..i] : series;
}
