namespace Appliance.Tests.Cluster;

/// <summary>
/// Tests whose nodes judge each other by heartbeats and dead-times run on their own, after
/// the parallel tests: a machine busy with hundreds of other tests must not make a live node
/// look dead (which would test the load of the test run, not the cluster).
/// </summary>
[CollectionDefinition(Collection, DisableParallelization = true)]
public sealed class Timing
{
    public const string Collection = "cluster timing";
}
