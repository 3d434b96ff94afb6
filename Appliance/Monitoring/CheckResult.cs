namespace Appliance.Monitoring;

/// <summary>A check's verdict, numbered as Nagios plugins exit (0–3).</summary>
public enum CheckStatus : byte { Ok = 0, Warning = 1, Critical = 2, Unknown = 3 }

/// <summary>
/// One check of one node: its verdict, the one-line text a person reads, and the performance
/// data a Nagios plugin prints after "|" ("time=0.003s;;;0"), possibly empty.
/// </summary>
public sealed record CheckResult(string Name, CheckStatus Status, string Output, string Perfdata = "")
{
    public static string StatusName(CheckStatus status) => status switch
    {
        CheckStatus.Ok => "OK",
        CheckStatus.Warning => "WARNING",
        CheckStatus.Critical => "CRITICAL",
        _ => "UNKNOWN",
    };

    /// <summary>The worse of two verdicts (UNKNOWN ranks between WARNING and CRITICAL, as Nagios orders them for a host).</summary>
    public static CheckStatus Worst(CheckStatus a, CheckStatus b) => Rank(a) >= Rank(b) ? a : b;

    public static int Rank(CheckStatus s) => s switch { CheckStatus.Ok => 0, CheckStatus.Warning => 1, CheckStatus.Unknown => 2, _ => 3 };
}

/// <summary>
/// An alert: one check of one node that went bad, until it is OK again. Its whole state is
/// journaled in the monitor unit at every change, so a failover keeps who acknowledged it and
/// whether it was escalated. Times are unix seconds; <see cref="Closed"/> 0 while open.
/// </summary>
public sealed record AlertRecord(
    string Id, string Node, string Check, CheckStatus Status, string Output, long Opened, long Changed, long Closed,
    string AckedBy, long AckedAt, bool Escalated, bool Flapping)
{
    public bool IsOpen => Closed == 0;
}
