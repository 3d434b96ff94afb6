namespace Appliance.Cluster.Fencing;

/// <summary>Result of one fencing attempt.</summary>
/// <param name="Confirmed">True only when the device confirmed that the node is powered off.</param>
/// <param name="Detail">One line for the log, the alert and <c>cluster status</c>; never holds a secret.</param>
public readonly record struct FenceOutcome(bool Confirmed, string Detail);

/// <summary>Powers a node off through a fencing device (DESIGN.md §2, cluster manager).</summary>
public interface IFenceDriver
{
    /// <summary>"none", "http" or "agent".</summary>
    string Name { get; }

    /// <summary>
    /// Powers the node off; returns Confirmed=true only when the device confirmed it. Never throws for
    /// device errors (returns Confirmed=false with a one-line Detail); one attempt lasts at most
    /// <see cref="FencingOptions.TimeoutSeconds"/>. Cancelling <paramref name="ct"/> stops the attempt
    /// (an agent process is killed) and throws <see cref="OperationCanceledException"/>.
    /// </summary>
    Task<FenceOutcome> PowerOffAsync(string node, CancellationToken ct);
}
