using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Appliance.Tests.Relay;

// Implementation notes
// - A scriptable DNS server for tests: it answers every name from one table, as if it were both
//   the resolver in Dns:Servers and the authority for every zone. UDP and TCP share one port on
//   127.0.0.1 so the server can stand in "127.0.0.1:PORT" for DnsClient's LookupClient.
// - Invariant: the tables (_records, _faults, _queries) are only touched under _gate; an answer is
//   built from immutable record data copied out under the lock and sent outside it, so tests can
//   Add/Remove/Fail while queries are in flight.
// - Wire format is RFC 1035 §4.1. The question is echoed byte for byte; owner names that equal the
//   question name are a compression pointer to offset 12 (§4.1.4), so the asker's case is kept
//   (0x20 randomisation); every other name is written in full.
// - Negative answers (NXDOMAIN, and NODATA: the name exists with other types) carry an SOA in the
//   authority section whose TTL and MINIMUM are NegativeTtl, as RFC 2308 §3 asks, so resolvers can
//   cache them. CNAMEs are followed inside the table (RFC 1034 §4.3.2 step 3a); the rcode belongs
//   to the last name of the chain (RFC 6604 §2.1).
// - UDP answers over 512 bytes, or over the requestor's EDNS payload size (RFC 6891 §6.2.5), are
//   replaced by header + question (+ OPT) with TC set (RFC 1035 §4.2.1); TCP answers are whole,
//   each message prefixed by its two-byte length (RFC 1035 §4.2.2, RFC 7766 §8).
// - Only opcode QUERY with one question is answered (others: NOTIMP / FORMERR). No DNSSEC, no
//   zone transfers, no escapes in names ("a\.b"): names are dot-separated UTF-8 labels.

/// <summary>How <see cref="TestDns"/> misbehaves for a name: SERVFAIL, REFUSED, or no answer at all.</summary>
public enum DnsFault { ServFail, Refused, Timeout }

/// <summary>An authoritative test DNS server on 127.0.0.1 (UDP and TCP on one ephemeral port).</summary>
public sealed class TestDns : IAsyncDisposable
{
    private const ushort TypeCname = 5, TypeSoa = 6, TypeOpt = 41, TypeAny = 255;
    private const int ClassIn = 1, ClassAny = 255;
    private const int RcodeFormErr = 1, RcodeServFail = 2, RcodeNxDomain = 3, RcodeNotImp = 4, RcodeRefused = 5;
    private const int MaxCnameHops = 8;
    private const ushort OurUdpPayloadSize = 4096;

    private static readonly Dictionary<string, ushort> TypeCodes = new(StringComparer.OrdinalIgnoreCase)
    {
        ["A"] = 1,
        ["NS"] = 2,
        ["CNAME"] = 5,
        ["SOA"] = 6,
        ["PTR"] = 12,
        ["MX"] = 15,
        ["TXT"] = 16,
        ["AAAA"] = 28,
        ["SRV"] = 33,
        ["TLSA"] = 52,
        ["ANY"] = 255,
        ["CAA"] = 257,
    };

    private sealed record Record(ushort Type, int Ttl, byte[] Data, string? Target);

    private readonly object _gate = new();
    private readonly Dictionary<string, List<Record>> _records = new(StringComparer.Ordinal);
    private readonly Dictionary<string, DnsFault> _faults = new(StringComparer.Ordinal);
    private readonly Dictionary<(string Name, ushort Type), int> _queries = [];
    private readonly List<(Socket Socket, Task Task)> _tcpSessions = [];
    private readonly Socket _udp;
    private readonly TcpListener _tcp;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _udpLoop;
    private readonly Task _tcpLoop;
    private int _tcpQueries;

    private TestDns(Socket udp, TcpListener tcp)
    {
        _udp = udp;
        _tcp = tcp;
        Port = ((IPEndPoint)udp.LocalEndPoint!).Port;
        _udpLoop = Task.Run(ServeUdpAsync);
        _tcpLoop = Task.Run(AcceptTcpAsync);
    }

    /// <summary>Binds UDP 127.0.0.1:0, then TCP on the same port (another port if that one is taken over TCP).</summary>
    public static TestDns Start()
    {
        for (var attempt = 0; ; attempt++)
        {
            var udp = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
            udp.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            var tcp = new TcpListener(IPAddress.Loopback, ((IPEndPoint)udp.LocalEndPoint!).Port);
            try
            {
                tcp.Start();
                return new TestDns(udp, tcp);
            }
            catch (SocketException e) when (e.SocketErrorCode == SocketError.AddressAlreadyInUse && attempt < 50)
            {
                udp.Dispose();
            }
        }
    }

    /// <summary>"127.0.0.1:PORT", the form Dns:Servers takes.</summary>
    public string Server => $"127.0.0.1:{Port}";

    public int Port { get; }

    /// <summary>TTL and SOA MINIMUM of negative answers (RFC 2308), in seconds.</summary>
    public int NegativeTtl { get; set; } = 60;

    /// <summary>Queries that arrived over TCP (to see that a truncated UDP answer made the client retry).</summary>
    public int TcpQueryCount => Volatile.Read(ref _tcpQueries);

    /// <summary>Mail for <paramref name="domain"/> goes to mx.DOMAIN at <paramref name="address"/> (one MX record and its A record).</summary>
    public void Route(string domain, string address)
    {
        Add(domain, "MX", "10 mx." + domain);
        Add("mx." + domain, "A", address);
    }

    /// <summary>
    /// Adds one record. <paramref name="type"/>: A, AAAA, MX ("10 mx1.example.net"; null MX "0 ."),
    /// TXT (any length; split into 255-byte character-strings), CNAME, PTR, NS.
    /// </summary>
    public void Add(string name, string type, string value, int ttl = 300)
    {
        var key = Normalize(name);
        var record = Encode(TypeCode(type), value, ttl);
        lock (_gate)
        {
            if (!_records.TryGetValue(key, out var list)) _records[key] = list = [];
            list.Add(record);
        }
    }

    /// <summary>Removes the name's records of one type, or all of them and its fault when <paramref name="type"/> is null.</summary>
    public void Remove(string name, string? type = null)
    {
        var key = Normalize(name);
        lock (_gate)
        {
            if (type is null)
            {
                _records.Remove(key);
                _faults.Remove(key);
                return;
            }
            var code = TypeCode(type);
            if (_records.TryGetValue(key, out var list))
            {
                list.RemoveAll(r => r.Type == code);
                if (list.Count == 0) _records.Remove(key);
            }
        }
    }

    /// <summary>Every query for <paramref name="name"/> (any type) now fails this way, until <see cref="Heal"/>.</summary>
    public void Fail(string name, DnsFault fault)
    {
        var key = Normalize(name);
        lock (_gate) _faults[key] = fault;
    }

    /// <summary>Ends a <see cref="Fail"/>; the name's records are answered again.</summary>
    public void Heal(string name)
    {
        var key = Normalize(name);
        lock (_gate) _faults.Remove(key);
    }

    /// <summary>How often (name, type) was asked, over UDP and TCP together (a TCP retry after TC counts twice).</summary>
    public int QueryCount(string name, string type)
    {
        var key = (Normalize(name), TypeCode(type));
        lock (_gate) return _queries.GetValueOrDefault(key);
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _udp.Dispose();
        _tcp.Stop();
        List<(Socket Socket, Task Task)> sessions;
        lock (_gate) sessions = [.. _tcpSessions];
        foreach (var (socket, _) in sessions) socket.Dispose();
        await Task.WhenAll([_udpLoop, _tcpLoop, .. sessions.Select(s => s.Task)]);
        _stop.Dispose();
    }

    // ---- transport ----

    private async Task ServeUdpAsync()
    {
        var buffer = new byte[65535];
        while (!_stop.IsCancellationRequested)
        {
            SocketReceiveFromResult received;
            try
            {
                received = await _udp.ReceiveFromAsync(buffer, SocketFlags.None, new IPEndPoint(IPAddress.Any, 0), _stop.Token);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
            {
                if (_stop.IsCancellationRequested) return;
                continue;
            }
            var answer = Answer(buffer.AsSpan(0, received.ReceivedBytes), tcp: false);
            if (answer is null) continue;
            try
            {
                await _udp.SendToAsync(answer, SocketFlags.None, received.RemoteEndPoint, _stop.Token);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
            {
            }
        }
    }

    private Task AcceptTcpAsync() =>
        TestListener.AcceptAsync(_tcp, _stop, _gate, socket => _tcpSessions.Add((socket, Task.Run(() => ServeTcpAsync(socket)))));

    private async Task ServeTcpAsync(Socket socket)
    {
        try
        {
            var length = new byte[2];
            while (await ReadExactlyAsync(socket, length))
            {
                var query = new byte[BinaryPrimitives.ReadUInt16BigEndian(length)];
                if (!await ReadExactlyAsync(socket, query)) return;
                Interlocked.Increment(ref _tcpQueries);
                var answer = Answer(query, tcp: true);
                if (answer is null) continue; // DnsFault.Timeout: keep the connection, never answer
                var framed = new byte[answer.Length + 2];
                BinaryPrimitives.WriteUInt16BigEndian(framed, (ushort)answer.Length);
                answer.CopyTo(framed, 2);
                await socket.SendAsync(framed, SocketFlags.None, _stop.Token);
            }
        }
        catch (Exception e) when (e is SocketException or ObjectDisposedException or OperationCanceledException)
        {
        }
        finally
        {
            socket.Dispose();
        }
    }

    private async Task<bool> ReadExactlyAsync(Socket socket, byte[] buffer)
    {
        for (var read = 0; read < buffer.Length;)
        {
            var n = await socket.ReceiveAsync(buffer.AsMemory(read), SocketFlags.None, _stop.Token);
            if (n == 0) return false;
            read += n;
        }
        return true;
    }

    // ---- answering (RFC 1035 §4.1) ----

    /// <summary>The response to one query message, or null to stay silent.</summary>
    private byte[]? Answer(ReadOnlySpan<byte> query, bool tcp)
    {
        if (query.Length < 12) return null;
        var id = BinaryPrimitives.ReadUInt16BigEndian(query);
        var flags = BinaryPrimitives.ReadUInt16BigEndian(query[2..]);
        if ((flags & 0x8000) != 0) return null; // a response, not a query
        var opcode = (flags >> 11) & 0xF;
        var counts = new int[4];
        for (var i = 0; i < 4; i++) counts[i] = BinaryPrimitives.ReadUInt16BigEndian(query[(4 + 2 * i)..]);

        var pos = 12;
        if (counts[0] != 1 || !TryReadQuestionName(query, ref pos, out var qname) || pos + 4 > query.Length)
            return Response(id, flags, RcodeFormErr, [], [], [], null);
        var qtype = BinaryPrimitives.ReadUInt16BigEndian(query[pos..]);
        var qclass = BinaryPrimitives.ReadUInt16BigEndian(query[(pos + 2)..]);
        pos += 4;
        var question = query[12..pos].ToArray();
        var edns = FindEdnsPayloadSize(query, pos, counts[1] + counts[2], counts[3]);

        if (opcode != 0) return Response(id, flags, RcodeNotImp, question, [], [], edns);

        List<(string? Owner, Record Record)> answers = [];
        List<(string? Owner, Record Record)> authority = [];
        int rcode;
        lock (_gate)
        {
            _queries[(qname, qtype)] = _queries.GetValueOrDefault((qname, qtype)) + 1;
            if (_faults.TryGetValue(qname, out var fault))
            {
                if (fault == DnsFault.Timeout) return null;
                rcode = fault == DnsFault.ServFail ? RcodeServFail : RcodeRefused;
            }
            else if (qclass != ClassIn && qclass != ClassAny)
            {
                rcode = RcodeRefused;
            }
            else
            {
                rcode = Resolve(qname, qtype, answers, out var last);
                if (rcode == RcodeNxDomain || !answers.Any(a => a.Record.Type == qtype || qtype == TypeAny))
                    authority.Add((ZoneOf(last), Soa()));
            }
        }

        var full = Response(id, flags, rcode, question, answers, authority, edns);
        var limit = Math.Max(512, (int)(edns ?? 512));
        if (tcp || full.Length <= limit) return full.Length <= ushort.MaxValue ? full : Response(id, flags, RcodeServFail, question, [], [], edns);
        return Response(id, flags, rcode, question, [], [], edns, truncated: true); // TC: ask again over TCP
    }

    /// <summary>Fills answers for (name, type), following CNAMEs in the table; returns the rcode and the last name looked at.</summary>
    private int Resolve(string qname, ushort qtype, List<(string? Owner, Record Record)> answers, out string last)
    {
        var current = qname;
        for (var hop = 0; ; hop++)
        {
            last = current;
            if (!_records.TryGetValue(current, out var records)) return RcodeNxDomain;
            var owner = hop == 0 ? null : current; // null: the question name, written as a pointer
            var matching = records.Where(r => r.Type == qtype || qtype == TypeAny).ToList();
            if (matching.Count > 0)
            {
                answers.AddRange(matching.Select(r => (owner, r)));
                return 0;
            }
            var cname = records.FirstOrDefault(r => r.Type == TypeCname);
            if (cname is null || hop == MaxCnameHops) return 0; // NODATA
            answers.Add((owner, cname));
            current = cname.Target!;
        }
    }

    private Record Soa()
    {
        var data = new List<byte>();
        data.AddRange(EncodeName("ns.test"));
        data.AddRange(EncodeName("hostmaster.test"));
        foreach (var v in new[] { 1, 3600, 600, 86400, NegativeTtl })
        {
            var b = new byte[4];
            BinaryPrimitives.WriteInt32BigEndian(b, v);
            data.AddRange(b);
        }
        return new Record(TypeSoa, NegativeTtl, [.. data], null);
    }

    /// <summary>The zone an SOA is owned by: the name's last two labels (no public-suffix list here).</summary>
    private static string ZoneOf(string name)
    {
        var labels = name.Split('.');
        return labels.Length <= 2 ? name : string.Join('.', labels[^2..]);
    }

    private static byte[] Response(ushort id, ushort queryFlags, int rcode, byte[] question,
        List<(string? Owner, Record Record)> answers, List<(string? Owner, Record Record)> authority, ushort? edns,
        bool truncated = false)
    {
        // QR, the query's opcode, AA, TC, the query's RD, RA when recursion was desired (we know every name), RCODE
        var rd = queryFlags & 0x0100;
        var flags = 0x8000 | (queryFlags & 0x7800) | 0x0400 | (truncated ? 0x0200 : 0) | rd | (rd != 0 ? 0x0080 : 0) | (rcode & 0xF);
        var m = new List<byte>(512);
        WriteU16(m, id);
        WriteU16(m, flags);
        WriteU16(m, question.Length > 0 ? 1 : 0);
        WriteU16(m, answers.Count);
        WriteU16(m, authority.Count);
        WriteU16(m, edns is null ? 0 : 1);
        m.AddRange(question);
        foreach (var (owner, record) in answers.Concat(authority))
        {
            if (owner is null) WriteU16(m, 0xC00C);
            else m.AddRange(EncodeName(owner));
            WriteU16(m, record.Type);
            WriteU16(m, ClassIn);
            WriteU16(m, record.Ttl >> 16);
            WriteU16(m, record.Ttl & 0xFFFF);
            WriteU16(m, record.Data.Length);
            m.AddRange(record.Data);
        }
        if (edns is not null)
        {
            // RFC 6891 §6.1.2: root owner, TYPE 41, CLASS = our UDP payload size, TTL = 0 (rcode ext, version 0, no DO)
            m.Add(0);
            WriteU16(m, TypeOpt);
            WriteU16(m, OurUdpPayloadSize);
            WriteU16(m, 0);
            WriteU16(m, 0);
            WriteU16(m, 0);
        }
        return [.. m];
    }

    private static void WriteU16(List<byte> m, int value)
    {
        m.Add((byte)(value >> 8));
        m.Add((byte)value);
    }

    /// <summary>Reads the question name (uncompressed labels) as a table key: lower case, no trailing dot.</summary>
    private static bool TryReadQuestionName(ReadOnlySpan<byte> message, ref int pos, out string name)
    {
        name = "";
        var labels = new List<string>();
        var total = 0;
        while (true)
        {
            if (pos >= message.Length) return false;
            int length = message[pos++];
            if (length == 0) break;
            if (length > 63 || pos + length > message.Length) return false; // pointers (0xC0) have no place here
            total += length + 1;
            if (total > 255) return false;
            labels.Add(Encoding.UTF8.GetString(message.Slice(pos, length)).ToLowerInvariant());
            pos += length;
        }
        name = string.Join('.', labels);
        return true;
    }

    /// <summary>The requestor's UDP payload size from an OPT record in the additional section, if any.</summary>
    private static ushort? FindEdnsPayloadSize(ReadOnlySpan<byte> message, int pos, int skip, int additional)
    {
        for (var i = 0; i < skip + additional; i++)
        {
            if (!TrySkipName(message, ref pos) || pos + 10 > message.Length) return null;
            var type = BinaryPrimitives.ReadUInt16BigEndian(message[pos..]);
            var cls = BinaryPrimitives.ReadUInt16BigEndian(message[(pos + 2)..]);
            var rdlength = BinaryPrimitives.ReadUInt16BigEndian(message[(pos + 8)..]);
            if (i >= skip && type == TypeOpt) return cls;
            pos += 10 + rdlength;
        }
        return null;
    }

    private static bool TrySkipName(ReadOnlySpan<byte> message, ref int pos)
    {
        while (pos < message.Length)
        {
            int length = message[pos];
            if (length == 0) { pos++; return true; }
            if ((length & 0xC0) == 0xC0) { pos += 2; return pos <= message.Length; }
            pos += 1 + length;
        }
        return false;
    }

    // ---- records ----

    private static ushort TypeCode(string type) =>
        TypeCodes.TryGetValue(type, out var code) ? code : throw new ArgumentException($"unknown record type {type}", nameof(type));

    private static string Normalize(string name)
    {
        var n = name.Trim().TrimEnd('.').ToLowerInvariant();
        if (n.Length > 0 && n.Split('.').Any(l => l.Length == 0 || Encoding.UTF8.GetByteCount(l) > 63))
            throw new ArgumentException($"bad domain name '{name}'", nameof(name));
        return n;
    }

    private static byte[] EncodeName(string name)
    {
        var n = Normalize(name);
        var bytes = new List<byte>();
        if (n.Length > 0)
        {
            foreach (var label in n.Split('.'))
            {
                var b = Encoding.UTF8.GetBytes(label);
                bytes.Add((byte)b.Length);
                bytes.AddRange(b);
            }
        }
        bytes.Add(0);
        if (bytes.Count > 255) throw new ArgumentException($"domain name too long '{name}'", nameof(name));
        return [.. bytes];
    }

    private static Record Encode(ushort type, string value, int ttl)
    {
        switch (type)
        {
            case 1 or 28: // A, AAAA (RFC 1035 §3.4.1, RFC 3596 §2.2)
                var ip = IPAddress.Parse(value);
                var family = type == 1 ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6;
                if (ip.AddressFamily != family) throw new ArgumentException($"'{value}' is not an {(type == 1 ? "IPv4" : "IPv6")} address", nameof(value));
                return new Record(type, ttl, ip.GetAddressBytes(), null);
            case 15: // MX (RFC 1035 §3.3.9; null MX "0 ." RFC 7505)
                var parts = value.Split(' ', 2, StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries);
                if (parts.Length != 2 || !ushort.TryParse(parts[0], out var preference))
                    throw new ArgumentException($"MX value must be 'PREFERENCE HOST', not '{value}'", nameof(value));
                var exchange = EncodeName(parts[1]);
                var mx = new byte[2 + exchange.Length];
                BinaryPrimitives.WriteUInt16BigEndian(mx, preference);
                exchange.CopyTo(mx, 2);
                return new Record(type, ttl, mx, null);
            case 16: // TXT (RFC 1035 §3.3.14): one or more <character-string>s of at most 255 bytes
                var text = Encoding.UTF8.GetBytes(value);
                var txt = new List<byte>();
                var offset = 0;
                do
                {
                    var chunk = Math.Min(255, text.Length - offset);
                    txt.Add((byte)chunk);
                    txt.AddRange(text.AsSpan(offset, chunk));
                    offset += chunk;
                } while (offset < text.Length);
                return new Record(type, ttl, [.. txt], null);
            case TypeCname or 12 or 2: // CNAME, PTR, NS: one domain name
                return new Record(type, ttl, EncodeName(value), Normalize(value));
            default:
                throw new ArgumentException($"records of type {type} cannot be added", nameof(value));
        }
    }
}
