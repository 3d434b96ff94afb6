using System.Net;
using Appliance.Tests.Hosting;
using Appliance.Tests.Web;
using Appliance.Web;

namespace Appliance.Tests.Cli;

/// <summary><c>appliance queue …</c> run as a separate process against a node's API (--url, --token).</summary>
public sealed class QueueCliTests
{
    [Fact]
    public async Task TheCli_ListsShowsHoldsReleasesRetriesAndDeletes_OverTheApi()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        var queue = new FakeQueue();
        await using var web = await WebServer.StartAsync(IPAddress.Loopback, 0, -1, -1, node.Host.Certificate, true, node.Host.Provisioning, node.Store, "test", queue, CancellationToken.None);
        var url = $"http://{web.Endpoints["http"]}/";
        var token = node.Directory.CreateToken("ops", "provision");
        Task<(int Exit, string Stdout, string Stderr)> Cli(params string[] args) =>
            ApplianceProcess.CommandAsync(["queue", .. args, "--url", url, "--token", token]);

        var list = await Cli("list");
        Assert.Equal(0, list.Exit);
        Assert.Equal([
            "q1  2025-06-01 08:30:00 UTC  1234  alice@example.test",
            "  -> carol@remote.test  queued  451 try later",
            "q2  2025-06-01 08:30:01 UTC  99  <>",
            "  -> bob@remote.test  queued",
            "2 messages in the queue",
        ], Lines(list.Stdout));

        var show = await Cli("show", "q1");
        Assert.Equal(0, show.Exit);
        var lines = Lines(show.Stdout);
        Assert.Contains("sender: alice@example.test", lines);
        Assert.Contains("attempts: 2", lines);
        Assert.Contains("last error: 451 try later", lines);
        Assert.Contains("  dave@remote.test  sent  2025-06-01 08:30:00 UTC  250 ok", lines);
        Assert.Equal(["", "Subject: one", "From: alice@example.test"], lines[^3..]);

        Assert.Equal((0, "q1 on hold"), Result(await Cli("hold", "q1")));
        Assert.True(queue.Find("q1").Held);
        Assert.Contains("q1  2025-06-01 08:30:00 UTC  1234  alice@example.test  (held)", Lines((await Cli("list")).Stdout));
        Assert.Equal((0, "q1 released"), Result(await Cli("release", "q1")));
        Assert.False(queue.Find("q1").Held);
        Assert.Equal((0, "q1 queued for immediate retry"), Result(await Cli("retry", "q1")));
        Assert.Equal((0, "2 messages queued for immediate retry"), Result(await Cli("retry", "--all")));
        Assert.Equal((0, "q1 deleted"), Result(await Cli("delete", "q1")));
        Assert.Equal(["q2"], (await queue.ListQueueAsync()).Select(e => e.Id));
        Assert.All(queue.Actors, a => Assert.Equal("token:ops", a));

        var unknown = await Cli("delete", "q1");
        Assert.Equal(1, unknown.Exit);
        Assert.Single(Lines(unknown.Stderr));
        Assert.Equal(2, (await Cli("retry")).Exit);
        Assert.Equal(2, (await Cli("retry", "q2", "--all")).Exit);
        Assert.Equal(2, (await Cli("show")).Exit);
        Assert.Equal(2, (await Cli("flush")).Exit);
    }

    private static List<string> Lines(string text) => [.. text.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n')];

    private static (int, string) Result((int Exit, string Stdout, string Stderr) r) => (r.Exit, r.Stdout.Trim());
}
