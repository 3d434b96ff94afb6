namespace Appliance.Hosting;

/// <summary>
/// The whole configuration of a node, bound from appliance.json and APPLIANCE__Section__Key
/// environment variables. Key names under Listen, Relay and Dns are a contract (DESIGN.md §5).
/// A port of 0 binds an ephemeral port (tests); a negative port disables the listener.
/// </summary>
public sealed class ApplianceOptions
{
    public NodeOptions Node { get; set; } = new();
    public ListenOptions Listen { get; set; } = new();
    public SmtpOptions Smtp { get; set; } = new();
    public Pop3Options Pop3 { get; set; } = new();
    public ImapOptions Imap { get; set; } = new();
    public ManageSieveOptions ManageSieve { get; set; } = new();
    public WebmailOptions Webmail { get; set; } = new();
    public StoreOptions Store { get; set; } = new();
    public TlsOptions Tls { get; set; } = new();
    public RelayOptions Relay { get; set; } = new();
    public SubmissionOptions Submission { get; set; } = new();
    public DnsOptions Dns { get; set; } = new();
    public SecurityOptions Security { get; set; } = new();
    public ProvisioningOptions Provisioning { get; set; } = new();
    public MonitoringOptions Monitoring { get; set; } = new();
    public AntivirusOptions Antivirus { get; set; } = new();
    public DmarcOptions Dmarc { get; set; } = new();
    public SpamOptions Spam { get; set; } = new();
    public Appliance.Cluster.ClusterOptions Cluster { get; set; } = new();
}

public sealed class NodeOptions
{
    /// <summary>Node name; defaults to the host name.</summary>
    public string Name { get; set; } = "";
    /// <summary>Name announced in SMTP banners and Received headers; defaults to the host name.</summary>
    public string Hostname { get; set; } = "";
    /// <summary>Data directory (see DESIGN.md §3). The --data argument wins.</summary>
    public string DataDirectory { get; set; } = "data";
    /// <summary>Dev mode allows plaintext authentication from loopback addresses.</summary>
    public bool DevMode { get; set; } = true;
}

public sealed class ListenOptions
{
    public string Address { get; set; } = "127.0.0.1";
    public int Smtp { get; set; } = 2525;
    public int Submission { get; set; } = 2587;
    public int Smtps { get; set; } = 2465;
    public int Imap { get; set; } = 2143;
    public int Imaps { get; set; } = 2993;
    public int Pop3 { get; set; } = 2110;
    public int Pop3s { get; set; } = 2995;
    /// <summary>ManageSieve (RFC 5804, STARTTLS; production 4190).</summary>
    public int ManageSieve { get; set; } = 24190;
    public int Http { get; set; } = 8080;
    public int Https { get; set; } = -1;
    /// <summary>
    /// HTTPS port of the admin panel and the API alone (production: 8443, reachable through the
    /// admin VPN, see firmware/nftables); -1 serves them on Http/Https with everything else.
    /// </summary>
    public int Admin { get; set; } = -1;
}

public sealed class SmtpOptions
{
    public long MaxMessageSize { get; set; } = 50 * 1024 * 1024;
    public int MaxRecipients { get; set; } = 100;
    public int CommandTimeoutSeconds { get; set; } = 300;
    /// <summary>Simultaneous SMTP connections from one client address.</summary>
    public int MaxConnectionsPerIp { get; set; } = 20;
}

public sealed class Pop3Options
{
    public int IdleTimeoutSeconds { get; set; } = 600;
    public int MaxConnectionsPerIp { get; set; } = 20;
}

public sealed class ManageSieveOptions
{
    /// <summary>Largest Sieve script a user may store, in bytes (and the largest literal a command may carry).</summary>
    public int MaxScriptBytes { get; set; } = 64 * 1024;
    /// <summary>Scripts per user.</summary>
    public int MaxScripts { get; set; } = 20;
    public int IdleTimeoutSeconds { get; set; } = 600;
    public int MaxConnectionsPerIp { get; set; } = 20;
}

public sealed class WebmailOptions
{
    /// <summary>Room each user has in the webmail's database (files, notes, contacts, settings), in bytes; 0 = no limit.</summary>
    public long QuotaBytes { get; set; } = 100L * 1024 * 1024;
    /// <summary>Largest personal file one upload may store.</summary>
    public long MaxFileBytes { get; set; } = 25L * 1024 * 1024;
    /// <summary>A session ends this long after sign-in.</summary>
    public int SessionHours { get; set; } = 12;
    /// <summary>… or after this long without a request.</summary>
    public int IdleMinutes { get; set; } = 60;
}

public sealed class ImapOptions
{
    /// <summary>Autologout of an authenticated session (RFC 9051 §5.4: at least 30 minutes); IDLE included.</summary>
    public int IdleTimeoutSeconds { get; set; } = 1800;
    /// <summary>Autologout before authentication.</summary>
    public int PreAuthTimeoutSeconds { get; set; } = 120;
    public int MaxConnectionsPerIp { get; set; } = 50;
    /// <summary>Simultaneous sessions logged in as one mailbox (Dovecot's mail_max_userip_connections is 10).</summary>
    public int MaxConnectionsPerUser { get; set; } = 20;
    /// <summary>Longest command line, literals excluded.</summary>
    public int MaxLineBytes { get; set; } = 64 * 1024;
    /// <summary>Largest literal outside APPEND (search strings, passwords).</summary>
    public long MaxLiteralBytes { get; set; } = 1024 * 1024;
    /// <summary>Largest message APPEND accepts (APPENDLIMIT); 0 = the SMTP message size limit.</summary>
    public long MaxAppendBytes { get; set; }
}

public sealed class StoreOptions
{
    /// <summary>Mailbox partitions hosted by this node (units/store-NAME).</summary>
    public string[] Partitions { get; set; } = ["a", "b"];
    /// <summary>Default quota for new mailboxes in bytes; 0 = unlimited.</summary>
    public long DefaultQuotaBytes { get; set; } = 1024L * 1024 * 1024;
    /// <summary>Journal segment size before rotating to a new segment file.</summary>
    public long JournalSegmentBytes { get; set; } = 64L * 1024 * 1024;
    /// <summary>
    /// Journal kept beyond what a partition needs itself (whole segments, oldest go first once
    /// applied): in a pair, a replica away for less than this resyncs from the journal, one away
    /// longer gets a snapshot. 0 keeps only what the partition needs; -1 keeps everything.
    /// </summary>
    public long JournalRetainBytes { get; set; } = 1024L * 1024 * 1024;
}

public sealed class TlsOptions
{
    /// <summary>PEM certificate (chain) file; empty = self-signed certificate under data/tls.</summary>
    public string CertificateFile { get; set; } = "";
    public string KeyFile { get; set; } = "";
}

public sealed class RelayOptions
{
    /// <summary>"host:port" (587 when no port; 465 means implicit TLS) to hand all outgoing mail to; empty = direct MX delivery.</summary>
    public string SmartHost { get; set; } = "";
    public string SmartHostUser { get; set; } = "";
    public string SmartHostPassword { get; set; } = "";
    /// <summary>Check the smart host's certificate (it gets our credentials). MX hosts are never checked (opportunistic TLS).</summary>
    public bool SmartHostVerifyCertificate { get; set; } = true;
    /// <summary>Networks (CIDR) whose clients may relay through the MX port without authentication. Empty by default, loopback included.</summary>
    public string[] TrustedNetworks { get; set; } = [];
    /// <summary>Port of the MX hosts we deliver to (25; other values only for labs and tests).</summary>
    public int Port { get; set; } = 25;
    public int ConnectTimeoutSeconds { get; set; } = 30;
    /// <summary>Each command of an outgoing session (RFC 5321 §4.5.3.2 suggests minutes).</summary>
    public int TimeoutSeconds { get; set; } = 300;
    /// <summary>First retry after a temporary failure; each next one waits twice as long, up to RetryMaxSeconds.</summary>
    public double RetryMinSeconds { get; set; } = 300;
    public double RetryMaxSeconds { get; set; } = 3600;
    /// <summary>How long a message is retried before it bounces (RFC 5321 §4.5.4.1: 4–5 days).</summary>
    public double QueueLifetimeHours { get; set; } = 120;
    /// <summary>When the sender is told that a message is still waiting (once).</summary>
    public double DelayWarningHours { get; set; } = 4;
    public int MaxParallelDeliveries { get; set; } = 20;
}

public sealed class SubmissionOptions
{
    /// <summary>Largest message an authenticated user may send.</summary>
    public long MaxMessageSize { get; set; } = 50 * 1024 * 1024;
    public int MaxRecipients { get; set; } = 100;
    /// <summary>Messages one user may send per hour (0 = no limit).</summary>
    public int MaxMessagesPerHour { get; set; } = 300;
    /// <summary>Recipients one user may address per hour, all messages together (0 = no limit).</summary>
    public int MaxRecipientsPerHour { get; set; } = 1000;
}

public sealed class DnsOptions
{
    public string[] Servers { get; set; } = [];
}

public sealed class SecurityOptions
{
    /// <summary>Failed logins from one address before it is slowed down.</summary>
    public int LoginFailuresBeforeThrottle { get; set; } = 5;
    /// <summary>Window over which failed logins are counted.</summary>
    public int LoginFailureWindowSeconds { get; set; } = 300;
}

public sealed class ProvisioningOptions
{
    /// <summary>Days the mail of a removed mailbox is kept before it is purged (0 = at once).</summary>
    public int DeletedRetentionDays { get; set; } = 30;
}

/// <summary>The collector, its checks' thresholds and the alerts (issue 9, docs/operations.md "Monitoring").</summary>
public sealed class MonitoringOptions
{
    /// <summary>Seconds between two samples (and check runs) on each node; 0 turns the collector off.</summary>
    public int IntervalSeconds { get; set; } = 10;
    /// <summary>A mailbox the login probes sign in as (IMAP, POP3, submission); empty = banner probes only.</summary>
    public string ProbeAccount { get; set; } = "";
    public string ProbePassword { get; set; } = "";
    /// <summary>Seconds a probe may take before its service counts as down.</summary>
    public int ProbeTimeoutSeconds { get; set; } = 5;
    public double DiskWarningPercent { get; set; } = 80;
    public double DiskCriticalPercent { get; set; } = 90;
    public int QueueWarningMessages { get; set; } = 500;
    public int QueueCriticalMessages { get; set; } = 5000;
    /// <summary>Age of the oldest queued message (minutes) that is worth a warning / critical.</summary>
    public double QueueWarningAgeMinutes { get; set; } = 240;
    public double QueueCriticalAgeMinutes { get; set; } = 1440;
    public int CertificateWarningDays { get; set; } = 21;
    public int CertificateCriticalDays { get; set; } = 7;
    /// <summary>DNS block lists our own addresses are looked up on (only with Dns:Servers set); empty = no such check.</summary>
    public string[] Dnsbl { get; set; } = [];
    /// <summary>The public addresses mail leaves from, for the DNSBL check.</summary>
    public string[] PublicAddresses { get; set; } = [];
    /// <summary>Who gets alert e-mails, and who gets them when nobody acknowledged within EscalateAfterMinutes.</summary>
    public string[] Contacts { get; set; } = [];
    public string[] EscalationContacts { get; set; } = [];
    public double EscalateAfterMinutes { get; set; } = 30;
    /// <summary>URLs that get every alert change as a JSON POST.</summary>
    public string[] Webhooks { get; set; } = [];
    /// <summary>Sender of alert e-mails; empty = monitoring@ the node's host name.</summary>
    public string From { get; set; } = "";
    /// <summary>Consecutive equal results before a check's state counts (Nagios' max_check_attempts).</summary>
    public int ConfirmSamples { get; set; } = 2;
    /// <summary>
    /// Flap damping over the last 20 results of a check: above FlapHighPercent of them changing
    /// state, it is flapping and notifications stop; below FlapLowPercent it is calm again.
    /// </summary>
    public double FlapHighPercent { get; set; } = 50;
    public double FlapLowPercent { get; set; } = 25;
    /// <summary>Networks that may read /metrics without a token (Prometheus on the node); others need a read token.</summary>
    public string[] MetricsNetworks { get; set; } = ["127.0.0.0/8", "::1/128"];
}

/// <summary>Virus scanning of every message before its 250 (issue 7), by ClamAV's clamd.</summary>
public sealed class AntivirusOptions
{
    /// <summary>"unix:/run/clamav/clamd.ctl" or "host:port" (clamd's TCPSocket); empty = no scanning.</summary>
    public string Clamd { get; set; } = "";
    /// <summary>When clamd cannot answer: "tempfail" (451, the sender retries later) or "accept" (delivered unscanned, logged).</summary>
    public string OnError { get; set; } = "tempfail";
    public int TimeoutSeconds { get; set; } = 60;
    /// <summary>Larger messages are not scanned (logged av=skipped); keep it at or under clamd's StreamMaxLength (25 MB by default).</summary>
    public long MaxScanBytes { get; set; } = 25L * 1024 * 1024;
}

/// <summary>What the MX does with mail that fails DMARC (issue 7); checked only with Dns:Servers set.</summary>
public sealed class DmarcOptions
{
    /// <summary>Apply the author domain's policy: p=reject is refused (550 5.7.1), p=quarantine goes to Junk. False: only recorded.</summary>
    public bool Enforce { get; set; } = true;
    /// <summary>ARC sealers (mailing lists, forwarders) whose valid chain saying dmarc=pass at the first hop excuses a DMARC failure here.</summary>
    public string[] TrustedArcSealers { get; set; } = [];
}

/// <summary>The MX's spam defences (issue 7, docs/operations.md "Inbound protection: spam"); none applies to trusted networks.</summary>
public sealed class SpamOptions
{
    /// <summary>Score at or above which a message goes to the recipient's Junk folder.</summary>
    public double JunkScore { get; set; } = 5;
    /// <summary>Score at or above which a message is refused (550 5.7.1); its per-user part (the Bayes filter) is left out, since one reply serves every recipient.</summary>
    public double RejectScore { get; set; } = 15;
    /// <summary>DNS block lists for the client's address (with Dns:Servers): "zone" refuses a listed client, "zone=weight" adds the weight to the score.</summary>
    public string[] Dnsbl { get; set; } = [];
    /// <summary>DNS allow lists: "zone" (weight −5) or "zone=weight"; a listed client is not greylisted.</summary>
    public string[] Dnswl { get; set; } = [];
    /// <summary>Senders never treated as spam: "user@domain", "@domain" or "domain" (and its subdomains).</summary>
    public string[] AllowSenders { get; set; } = [];
    /// <summary>Senders refused (550 5.7.1), in the same forms.</summary>
    public string[] BlockSenders { get; set; } = [];
    /// <summary>Spam messages a user must have filed in Junk before their filter judges new mail.</summary>
    public int BayesMinSpam { get; set; } = 10;
    /// <summary>rspamd's normal worker ("http://127.0.0.1:11333"), asked about every message; empty = not used. Its score is one of the tests.</summary>
    public string Rspamd { get; set; } = "";
    public string RspamdPassword { get; set; } = "";
    public int RspamdTimeoutSeconds { get; set; } = 20;
    public GreylistOptions Greylist { get; set; } = new();
}

/// <summary>Greylisting of first-time (client network, sender, recipient) triplets on the MX.</summary>
public sealed class GreylistOptions
{
    public bool Enabled { get; set; }
    /// <summary>A retry is accepted this long after the first attempt.</summary>
    public int DelaySeconds { get; set; } = 300;
    /// <summary>A retry later than this starts again.</summary>
    public int RetryWindowHours { get; set; } = 24;
    /// <summary>Passed triplets and client networks are let through this long after their last message.</summary>
    public double AllowDays { get; set; } = 36;
}
