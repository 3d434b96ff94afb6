namespace Appliance.Cluster.Fencing;

/// <summary>No device: a takeover is decided by the witness instead (ClusterOptions.Witness).</summary>
internal sealed class NoFenceDriver : IFenceDriver
{
    public string Name => "none";

    public Task<FenceOutcome> PowerOffAsync(string node, CancellationToken ct)
    {
        ct.ThrowIfCancellationRequested();
        return Task.FromResult(new FenceOutcome(false, "no fencing device configured"));
    }
}
