using Appliance.Directory;
using Appliance.Provisioning;
using Appliance.Store;

namespace Appliance.Cluster;

/// <summary>
/// The provisioning journal lives in the monitor unit: a request made on the node without it is
/// forwarded to the node holding it, which validates, journals (replicated to this node before
/// it answers) and applies it. Each node's agent applies the journal to its own directory; the
/// heartbeat carries how far, for the admin panel's queue per node.
/// </summary>
public sealed partial class ClusterManager : IProvisioningPeer
{
    /// <summary>Set by the host: the last request this node's agent applied (sent in heartbeats).</summary>
    public Func<long>? ProvisionedSeq { get; set; }

    /// <summary>Set by the host: submits a request forwarded by the peer (JSON, actor); returns its sequence or throws <see cref="DirectoryException"/>.</summary>
    public Func<string, string, Task<long>>? ProvisionHandler { get; set; }

    /// <summary>
    /// Set by the host: runs before a message from the peer is stored here. For an address whose
    /// removed mailbox still has mail here, it applies this node's pending provisioning first:
    /// the peer may already have applied the purge and a new mailbox of that address.
    /// </summary>
    public Func<MailUser, Task>? BeforeDelivery { get; set; }

    public string PeerName => _options.Peer;

    public bool PeerHoldsMonitor => Serves(MailStore.MonitorPartition);

    public (long AppliedSeq, bool Alive) PeerProgress
    {
        get
        {
            var peer = PeerSnapshot(out var alive);
            return (peer?.ProvisionedSeq ?? 0, alive);
        }
    }

    public async Task<long> ForwardProvisionAsync(string payload, string actor, CancellationToken ct)
    {
        await using var stream = await ConnectToPeerAsync(FrameType.Provision, "provisioning request", ct);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(TimeSpan.FromMinutes(10)); // a bulk of thousands applies before the answer
        await ClusterWire.WriteFrameAsync(stream, FrameType.Provision, ClusterWire.Encode(w => { w.Write(payload); w.Write(actor); }), timeout.Token);
        var reply = await ClusterWire.ReadFrameAsync(stream, timeout.Token) ?? throw new UnitUnavailableException($"{_options.Peer} closed the provisioning request without an answer");
        using var r = ClusterWire.Reader(reply.Payload);
        var ok = r.ReadBoolean();
        var seq = r.ReadInt64();
        var kind = (DirectoryError)r.ReadByte();
        var message = r.ReadString();
        return ok ? seq : throw new DirectoryException(message, kind);
    }

    private async Task ServeProvisionAsync(Stream stream)
    {
        var frame = await ClusterWire.ReadFrameAsync(stream, _stop.Token) ?? throw new IOException("closed before the request");
        string payload, actor;
        using (var r = ClusterWire.Reader(frame.Payload)) { payload = r.ReadString(); actor = r.ReadString(); }
        (bool Ok, long Seq, DirectoryError Kind, string Message) answer;
        try
        {
            var handler = ProvisionHandler ?? throw new DirectoryException("provisioning is not ready on " + _self, DirectoryError.Unavailable);
            answer = (true, await handler(payload, actor), DirectoryError.Invalid, "");
        }
        catch (DirectoryException ex)
        {
            answer = (false, 0, ex.Kind, ex.Message);
        }
        await ClusterWire.WriteFrameAsync(stream, FrameType.Reply, ClusterWire.Encode(w =>
        {
            w.Write(answer.Ok); w.Write(answer.Seq); w.Write((byte)answer.Kind); w.Write(answer.Message);
        }), _stop.Token);
    }
}
