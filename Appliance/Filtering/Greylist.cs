using System.Net;
using Dapper;
using Microsoft.Data.Sqlite;

namespace Appliance.Filtering;

// Implementation notes: greylisting as postgrey does it. The first attempt of a triplet (client
// network, envelope sender, recipient) is deferred with 450 4.7.1; a retry after DelaySeconds
// and within RetryWindowHours passes, and the triplet then passes at once for AllowDays after
// its last use. A client network (IPv4 /24, IPv6 /64: a sender's pool of outgoing servers) that
// has passed once is allowed for every triplet ("automatic allow after a successful retry"), so
// a real server is delayed once, not once per correspondent. Spam engines rarely retry.
// The state is node-local (data/greylist.db): it protects nothing a peer must take over, and a
// sender that retries on the other MX of a pair is delayed once more there, then allowed.

public sealed record GreylistDecision(bool Pass, int RetryAfterSeconds, string Verdict);

internal sealed class GreylistTriplet
{
    public long First { get; set; }
    public long Passed { get; set; }
    public long Last { get; set; }
}

public sealed class Greylist
{
    private readonly string _connectionString;
    private readonly Hosting.GreylistOptions _options;
    private readonly TimeProvider _clock;
    private long _prunedAt;

    public Greylist(string path, Hosting.GreylistOptions options, TimeProvider? clock = null)
    {
        _options = options;
        _clock = clock ?? TimeProvider.System;
        _connectionString = new SqliteConnectionStringBuilder { DataSource = path, Pooling = true }.ToString();
        using var c = Open();
        c.Execute(
            """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS triplets(network TEXT NOT NULL, sender TEXT NOT NULL, recipient TEXT NOT NULL,
                first INTEGER NOT NULL, passed INTEGER NOT NULL, last INTEGER NOT NULL, PRIMARY KEY(network, sender, recipient)) WITHOUT ROWID;
            CREATE TABLE IF NOT EXISTS clients(network TEXT PRIMARY KEY, last INTEGER NOT NULL);
            """);
    }

    private SqliteConnection Open()
    {
        var c = new SqliteConnection(_connectionString);
        c.Open();
        c.Execute("PRAGMA synchronous=NORMAL; PRAGMA busy_timeout=5000;");
        return c;
    }

    /// <summary>The network a client's address stands for: its /24 (IPv4) or /64 (IPv6).</summary>
    public static string Network(IPAddress ip)
    {
        if (ip.IsIPv4MappedToIPv6) ip = ip.MapToIPv4();
        var bytes = ip.GetAddressBytes();
        return ip.AddressFamily == System.Net.Sockets.AddressFamily.InterNetwork
            ? $"{bytes[0]}.{bytes[1]}.{bytes[2]}.0/24"
            : new IPAddress([.. bytes[..8], .. new byte[8]]) + "/64";
    }

    public GreylistDecision Check(IPAddress ip, string sender, string recipient)
    {
        var network = Network(ip);
        sender = sender.ToLowerInvariant();
        recipient = recipient.ToLowerInvariant();
        var now = _clock.GetUtcNow().ToUnixTimeSeconds();
        var allowFrom = now - (long)(_options.AllowDays * 86_400);
        using var c = Open();
        using var tx = c.BeginTransaction();
        Prune(c, tx, now);
        if (c.ExecuteScalar<long?>("SELECT last FROM clients WHERE network = @network", new { network }, tx) is { } clientLast && clientLast >= allowFrom)
        {
            c.Execute("UPDATE clients SET last = @now WHERE network = @network", new { network, now }, tx);
            tx.Commit();
            return new(true, 0, "greylist=pass(client)");
        }
        var triplet = c.QueryFirstOrDefault<GreylistTriplet>(
            "SELECT first AS First, passed AS Passed, last AS Last FROM triplets WHERE network = @network AND sender = @sender AND recipient = @recipient",
            new { network, sender, recipient }, tx);
        GreylistDecision decision;
        if (triplet is not null && triplet.Passed > 0 && triplet.Last >= allowFrom)
        {
            c.Execute("UPDATE triplets SET last = @now WHERE network = @network AND sender = @sender AND recipient = @recipient", new { network, sender, recipient, now }, tx);
            decision = new(true, 0, "greylist=pass(known)");
        }
        else if (triplet is null || triplet.Passed > 0 || now - triplet.First > _options.RetryWindowHours * 3600)
        {
            // New, or its retry came too late, or it passed long ago: the clock starts again.
            c.Execute("INSERT OR REPLACE INTO triplets(network, sender, recipient, first, passed, last) VALUES (@network, @sender, @recipient, @now, 0, @now)",
                new { network, sender, recipient, now }, tx);
            decision = new(false, _options.DelaySeconds, "greylist=defer(new)");
        }
        else if (now - triplet.First < _options.DelaySeconds)
        {
            c.Execute("UPDATE triplets SET last = @now WHERE network = @network AND sender = @sender AND recipient = @recipient", new { network, sender, recipient, now }, tx);
            decision = new(false, (int)(_options.DelaySeconds - (now - triplet.First)), "greylist=defer(early)");
        }
        else
        {
            c.Execute("UPDATE triplets SET passed = @now, last = @now WHERE network = @network AND sender = @sender AND recipient = @recipient", new { network, sender, recipient, now }, tx);
            c.Execute("INSERT OR REPLACE INTO clients(network, last) VALUES (@network, @now)", new { network, now }, tx);
            decision = new(true, 0, $"greylist=pass(retried after {now - triplet.First} s)");
        }
        tx.Commit();
        return decision;
    }

    /// <summary>Forgets, once an hour, what no longer counts: unanswered first attempts past the retry window, allowances past AllowDays.</summary>
    private void Prune(SqliteConnection c, SqliteTransaction tx, long now)
    {
        if (now - Interlocked.Read(ref _prunedAt) < 3600) return;
        Interlocked.Exchange(ref _prunedAt, now);
        var staleFirst = now - _options.RetryWindowHours * 3600L;
        var staleAllow = now - (long)(_options.AllowDays * 86_400);
        c.Execute("DELETE FROM triplets WHERE (passed = 0 AND first < @staleFirst) OR (passed > 0 AND last < @staleAllow)", new { staleFirst, staleAllow }, tx);
        c.Execute("DELETE FROM clients WHERE last < @staleAllow", new { staleAllow }, tx);
    }
}
