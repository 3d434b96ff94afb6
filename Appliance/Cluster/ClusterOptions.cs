namespace Appliance.Cluster;

/// <summary>
/// The pair configuration (section "Cluster" of appliance.json). An empty <see cref="Peer"/>
/// means single-node mode: every unit is active here and nothing is replicated.
/// </summary>
public sealed class ClusterOptions
{
    /// <summary>Name of the other node (its Node:Name); empty = single node.</summary>
    public string Peer { get; set; } = "";
    /// <summary>Links between the nodes, in order of preference for replication (the bonded
    /// replication link first, the public link last). Heartbeats go over every link.</summary>
    public LinkOptions[] Links { get; set; } = [];
    public int HeartbeatPort { get; set; } = 7790;
    /// <summary>Replication, internal delivery and session forwarding between the nodes.</summary>
    public int ReplicationPort { get; set; } = 7791;
    public int HeartbeatIntervalMs { get; set; } = 250;
    /// <summary>The peer is dead when silent on every link for this long.</summary>
    public int DeadTimeMs { get; set; } = 3000;
    /// <summary>A replication connection that has not answered for this long is given up.</summary>
    public int ReplicationTimeoutMs { get; set; } = 1500;
    /// <summary>Shared secret authenticating heartbeats and cluster connections (HMAC-SHA256). Required in a pair.</summary>
    public string Secret { get; set; } = "";
    /// <summary>Two-node start rule: at the first start a node waits for its peer before taking
    /// any unit, unless this is set (the administrator's override for a cold start with one node).</summary>
    public bool StartWithoutPeer { get; set; }
    /// <summary>Units and where they prefer to run; empty = the defaults of DESIGN.md §2.</summary>
    public UnitOptions[] Units { get; set; } = [];
    /// <summary>"delayed" (move a unit back to its preferred node this long after that node has resynced) or "manual".</summary>
    public string Failback { get; set; } = "delayed";
    public int FailbackDelaySeconds { get; set; } = 60;
    public FencingOptions Fencing { get; set; } = new();
    /// <summary>"host:port" of an <c>appliance witness</c> arbiter (used with the "none" fencing driver).</summary>
    public string Witness { get; set; } = "";

    public bool Enabled => Peer.Length > 0;
}

public sealed class LinkOptions
{
    /// <summary>This node's address on the link.</summary>
    public string Local { get; set; } = "";
    /// <summary>The peer's address on the link.</summary>
    public string Peer { get; set; } = "";
}

public sealed class UnitOptions
{
    /// <summary>store-a, store-b, webmail, db, monitor.</summary>
    public string Name { get; set; } = "";
    /// <summary>Node name the unit runs on when both nodes are up.</summary>
    public string Preferred { get; set; } = "";
    /// <summary>Floating addresses, "ADDRESS/PREFIX dev INTERFACE" (e.g. "192.0.2.10/24 dev eth0").</summary>
    public string[] Addresses { get; set; } = [];
}

/// <summary>How a node powers its peer off before taking its units over.</summary>
public sealed class FencingOptions
{
    /// <summary>"none" (a witness decides), "http" (IP power strip) or "agent" (a fence-agents executable).</summary>
    public string Driver { get; set; } = "none";
    /// <summary>Node name → outlet/plug/port on the fence device.</summary>
    public Dictionary<string, string> Plugs { get; set; } = new();
    /// <summary>http: URL that powers the outlet off; {node} and {plug} are replaced.</summary>
    public string OffUrl { get; set; } = "";
    /// <summary>http: method for <see cref="OffUrl"/>.</summary>
    public string OffMethod { get; set; } = "GET";
    /// <summary>http: URL that reports the outlet state (optional); the fence is confirmed when its body matches <see cref="OffPattern"/>.</summary>
    public string StatusUrl { get; set; } = "";
    /// <summary>http: regular expression a status body must match for "off".</summary>
    public string OffPattern { get; set; } = "(?i)\\boff\\b";
    /// <summary>http: basic-auth user and password, if the strip needs them.</summary>
    public string User { get; set; } = "";
    public string Password { get; set; } = "";
    /// <summary>agent: the fence-agents executable (fence_ipmilan, fence_apc_snmp, fence_dummy, …).</summary>
    public string Agent { get; set; } = "";
    /// <summary>agent: key=value arguments written on its stdin (ip, username, password, …); "plug" comes from <see cref="Plugs"/>.</summary>
    public Dictionary<string, string> AgentArgs { get; set; } = new();
    /// <summary>A node holding fewer units waits this long before fencing, so two nodes never fence each other at once.</summary>
    public double DelaySeconds { get; set; } = 5;
    /// <summary>Time allowed for one fencing attempt.</summary>
    public int TimeoutSeconds { get; set; } = 30;
    /// <summary>Pause between failed attempts (each failure raises an alert).</summary>
    public int RetrySeconds { get; set; } = 10;
}
