using System.Net;
using Appliance.Cluster;

namespace Appliance.Tests.Cluster;

/// <summary>
/// A pair without a fencing device and its witness: the witness grants the pair to one node at
/// a time; the node granted it takes the silent peer's units over, and a node that cannot
/// reach the witness stops its own units instead.
/// </summary>
[Collection(Timing.Collection)]
public sealed class WitnessTests
{
    private const string Secret = "test-secret-0123456789";

    [Fact]
    public async Task Witness_GrantsThePairToOneNodeAtATime()
    {
        await using var witness = new WitnessServer(new IPEndPoint(IPAddress.Parse("127.0.0.3"), 0), Secret, TimeSpan.FromSeconds(10));
        var node1 = new WitnessClient(witness.Endpoint.ToString(), Secret, "node1", "node2");
        var node2 = new WitnessClient(witness.Endpoint.ToString(), Secret, "node2", "node1");
        var stranger = new WitnessClient(witness.Endpoint.ToString(), "another-secret-0123456789", "node2", "node1");

        Assert.True((await node1.ClaimAsync(TimeSpan.FromSeconds(2), CancellationToken.None)).Granted);
        var refused = await node2.ClaimAsync(TimeSpan.FromSeconds(2), CancellationToken.None);
        Assert.False(refused.Granted);
        Assert.Contains("node1 holds the pair", refused.Detail);
        Assert.True((await node1.ClaimAsync(TimeSpan.FromSeconds(2), CancellationToken.None)).Granted); // renewal
        // A request without the secret gets no answer at all.
        Assert.Contains("did not answer", (await stranger.ClaimAsync(TimeSpan.FromMilliseconds(500), CancellationToken.None)).Detail);

        await node1.ReleaseAsync(CancellationToken.None);
        Assert.True((await node2.ClaimAsync(TimeSpan.FromSeconds(2), CancellationToken.None)).Granted);
    }

    [Fact]
    public async Task WithTheWitnessGrant_TheSurvivorTakesTheSilentPeersUnitOver()
    {
        await using var witness = new WitnessServer(new IPEndPoint(IPAddress.Parse("127.0.0.3"), 0), Secret, TimeSpan.FromSeconds(10));
        await using var pair = await TestPair.StartAsync((c, _) =>
        {
            c.Fencing.Driver = "none";
            c.Witness = witness.Endpoint.ToString();
        });
        await pair.WaitActiveAsync(pair.Node1, "store-a");
        await pair.WaitActiveAsync(pair.Node2, "store-b");
        await TestPair.SendAsync(pair.Node1, "alice", "before");

        await pair.Node1.CrashAsync();
        await pair.WaitActiveAsync(pair.Node2, "store-a");
        Assert.True(TestPair.Active(pair.Node2, "store-b"));
        await TestPair.SendAsync(pair.Node2, "alice", "after the takeover");
        Assert.Equal(2, (await pair.Node2.InboxAsync("alice")).Count);
    }

    [Fact]
    public async Task WithoutAnAnswerFromTheWitness_ANodeStopsItsOwnUnits_AndTakesNothing()
    {
        // The witness address answers nothing (nobody listens there).
        await using var pair = await TestPair.StartAsync((c, _) =>
        {
            c.Fencing.Driver = "none";
            c.Witness = "127.0.0.3:9";
        });
        await pair.WaitActiveAsync(pair.Node1, "store-a");
        await pair.WaitActiveAsync(pair.Node2, "store-b");

        await pair.Node1.CrashAsync();
        await pair.WaitForAsync(() => !TestPair.Active(pair.Node2, "store-b"), "node2 stopping its own unit");
        await Task.Delay(3000);
        Assert.False(TestPair.Active(pair.Node2, "store-a"), "store-a taken over without the witness\n" + pair.StatusText());
        Assert.False(TestPair.Active(pair.Node2, "store-b"));
    }
}
