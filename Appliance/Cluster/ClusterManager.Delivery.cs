using System.Net;
using System.Net.Sockets;
using Appliance.Directory;
using Appliance.Store;

namespace Appliance.Cluster;

/// <summary>
/// Internal delivery: the MX of either node accepts mail for every mailbox; a message for a
/// partition active on the other node is handed to it over the cluster links, and the 250 is
/// given only once that node has stored it (durable on both nodes, as its own deliveries).
/// </summary>
public sealed partial class ClusterManager : IRemoteDelivery
{
    private enum DeliveryStatus : byte { Delivered = 0, OverQuota = 1, Unavailable = 2, NoSuchFolder = 3 }

    public bool Serves(string partition)
    {
        var peer = PeerSnapshot(out var alive);
        return alive && peer?.Unit(MailStore.UnitName(partition)) is { State: UnitState.Active };
    }

    public async Task<long?> DeliverAsync(MailUser user, string folder, ReadOnlyMemory<byte> data, DeliveryState state, CancellationToken ct)
    {
        // Connected: from here a failure is not retried on another link (the peer may have stored it).
        await using var stream = await ConnectToPeerAsync(FrameType.Deliver, $"partition {user.Partition}: internal delivery", ct);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        await ClusterWire.WriteFrameAsync(stream, FrameType.Deliver, ClusterWire.Encode(w =>
        {
            WriteUser(w, user); w.Write(folder);
            w.Write(data.Length); w.Write(data.Span);
            // Added with Sieve (imap4flags, fileinto :create); a peer of the version before reads no further.
            w.Write((int)state.Flags); w.Write(state.Keywords.Length);
            foreach (var k in state.Keywords) w.Write(k);
            w.Write(state.CreateFolder);
        }), timeout.Token);
        var reply = await ClusterWire.ReadFrameAsync(stream, timeout.Token) ?? throw new IOException($"{_options.Peer} closed the connection before confirming the delivery");
        using var r = ClusterWire.Reader(reply.Payload);
        var status = (DeliveryStatus)r.ReadByte();
        var uid = r.ReadInt64();
        var detail = r.ReadString();
        return status switch
        {
            DeliveryStatus.Delivered => uid,
            DeliveryStatus.OverQuota => null,
            DeliveryStatus.NoSuchFolder => throw new FolderNotFoundException(folder),
            _ => throw new UnitUnavailableException($"{_options.Peer} could not store the message: {detail}"),
        };
    }

    public async Task<bool> ClaimVacationAsync(MailUser user, string handle, string sender, DateTimeOffset now, DateTimeOffset until, CancellationToken ct)
    {
        var (exit, lines) = await ForwardAsync(["vacation", user.Address, user.Partition, handle, sender,
            now.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture), until.ToUnixTimeSeconds().ToString(System.Globalization.CultureInfo.InvariantCulture)], ct);
        return exit switch
        {
            0 => true,
            3 => false,
            _ => throw new UnitUnavailableException($"vacation reply of {user.Address}: {string.Join(' ', lines)}"),
        };
    }

    /// <summary>The peer's <see cref="ClaimVacationAsync"/>: exit 0 claimed, 3 already replied, 1 the partition is not active here.</summary>
    private async Task<(int Exit, List<string> Lines)> ServeVacationClaimAsync(string[] args)
    {
        var user = new MailUser(args[1], args[2], 0);
        if (!_store.Hosts(user.Partition) || !_store.IsServedHere(user)) return (1, [$"partition {user.Partition} is not active on {_self}"]);
        var claimed = await _store.ClaimVacationAsync(user, args[3], args[4], DateTimeOffset.FromUnixTimeSeconds(long.Parse(args[5], System.Globalization.CultureInfo.InvariantCulture)),
            DateTimeOffset.FromUnixTimeSeconds(long.Parse(args[6], System.Globalization.CultureInfo.InvariantCulture)), _stop.Token);
        return claimed ? (0, ["claimed"]) : (3, ["already replied"]);
    }

    /// <summary>
    /// Connects to the peer for one request over the first link that answers (each tried within
    /// the replication timeout); <see cref="UnitUnavailableException"/> when none does.
    /// </summary>
    private async Task<NetworkStream> ConnectToPeerAsync(FrameType purpose, string what, CancellationToken ct)
    {
        foreach (var link in _options.Links)
        {
            try
            {
                using var connect = CancellationTokenSource.CreateLinkedTokenSource(ct);
                connect.CancelAfter(_options.ReplicationTimeoutMs);
                return await ClusterWire.ConnectAsync(_options, _self, link, purpose, connect.Token);
            }
            catch (Exception ex) when (ex is IOException or SocketException or InvalidDataException or OperationCanceledException && !ct.IsCancellationRequested)
            {
                Log.Warn("{0}: {1} over {2}: {3}", what, _options.Peer, link.Peer, ex.Message);
            }
        }
        throw new UnitUnavailableException($"{what}: {_options.Peer} cannot be reached");
    }

    private static void WriteUser(BinaryWriter w, MailUser user)
    {
        w.Write(user.Address); w.Write(user.Partition); w.Write(user.QuotaBytes);
    }

    private static MailUser ReadUser(BinaryReader r) => new(r.ReadString(), r.ReadString(), r.ReadInt64());

    private async Task ServeDeliveryAsync(Stream stream)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        var frame = await ClusterWire.ReadFrameAsync(stream, timeout.Token) ?? throw new IOException("closed before the message");
        MailUser user;
        string folder;
        byte[] data;
        var state = DeliveryState.Plain;
        using (var r = ClusterWire.Reader(frame.Payload))
        {
            user = ReadUser(r);
            folder = r.ReadString();
            data = r.ReadBytes(r.ReadInt32());
            if (r.BaseStream.Position < r.BaseStream.Length)
            {
                var flags = (MessageFlags)r.ReadInt32();
                var n = r.ReadInt32();
                if (n is < 0 or > 1000) throw new InvalidDataException("bad keyword count");
                var keywords = new string[n];
                for (var i = 0; i < n; i++) keywords[i] = r.ReadString();
                state = new DeliveryState(flags, keywords, r.ReadBoolean());
            }
        }
        (DeliveryStatus Status, long Uid, string Detail) result;
        try
        {
            if (!_store.IsServedHere(user)) result = (DeliveryStatus.Unavailable, 0, $"partition {user.Partition} is not active on {_self}");
            else
            {
                MessageStructure structure;
                using (var ms = new MemoryStream(data, writable: false)) structure = MessageStructure.Parse(ms);
                if (BeforeDelivery is { } before) await before(user);
                var uid = await _store.DeliverAsync(user, folder, data, structure, state, timeout.Token);
                result = uid is { } u ? (DeliveryStatus.Delivered, u, "") : (DeliveryStatus.OverQuota, 0, "over quota");
            }
        }
        catch (FolderNotFoundException ex)
        {
            result = (DeliveryStatus.NoSuchFolder, 0, ex.Message);
        }
        catch (Exception ex) when (ex is IOException or UnitUnavailableException or KeyNotFoundException or InvalidOperationException)
        {
            result = (DeliveryStatus.Unavailable, 0, ex.Message);
        }
        await ClusterWire.WriteFrameAsync(stream, FrameType.Reply, ClusterWire.Encode(w => { w.Write((byte)result.Status); w.Write(result.Uid); w.Write(result.Detail); }), timeout.Token);
    }
}
