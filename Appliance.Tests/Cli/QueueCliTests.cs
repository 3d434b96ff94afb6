using System.Globalization;
using Appliance.Tests.Hosting;
using Appliance.Tests.Web;

namespace Appliance.Tests.Cli;

/// <summary>
/// <c>appliance queue …</c> run as a separate process, on the node (its control socket) and from
/// another machine (--url, --token), against a queue holding greylisted mail (<see cref="StuckMail"/>).
/// </summary>
public sealed class QueueCliTests
{
    [Fact]
    public async Task TheCli_ListsShowsHoldsReleasesRetriesAndDeletes_LocallyAndOverTheApi()
    {
        await using var mail = await StuckMail.StartAsync(o => { o.Listen.Http = -1; o.Listen.Admin = 0; });
        var node = mail.Node;
        var url = $"https://{node.Host.Endpoints["admin"]}/";
        var token = node.Directory.CreateToken("ops", "provision");
        Func<string[], Task<(int Exit, string Stdout, string Stderr)>> local = args =>
            ApplianceProcess.CommandAsync(["queue", .. args, "--data", node.DataDirectory]);
        Func<string[], Task<(int Exit, string Stdout, string Stderr)>> remote = args =>
            ApplianceProcess.CommandAsync(["queue", .. args, "--url", url, "--token", token, "--insecure"]);
        Task<(int Exit, string Stdout, string Stderr)> Local(params string[] args) => local(args);
        Task<(int Exit, string Stdout, string Stderr)> Remote(params string[] args) => remote(args);

        Assert.Equal((0, "queue is empty"), Result(await Local("list")));
        var sent = await mail.SendAsync("stuck");
        var id = sent.Id;
        var created = DateTimeOffset.FromUnixTimeMilliseconds(sent.Created).UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture);
        string[] listed =
        [
            $"{id}  {created} UTC  {sent.Size}  {StuckMail.Alice}",
            $"  -> {StuckMail.Carol}  queued  {StuckMail.Greylisted}", // dave's copy is sent: not listed
            "1 message in the queue",
        ];
        foreach (var cli in new[] { local, remote })
        {
            var list = await cli(["list"]);
            Assert.Equal(0, list.Exit);
            Assert.Equal(listed, Lines(list.Stdout));

            var show = await cli(["show", id.ToLowerInvariant()]);
            Assert.Equal(0, show.Exit);
            var lines = Lines(show.Stdout);
            Assert.Equal($"id: {id}", lines[0]);
            Assert.Contains($"sender: {StuckMail.Alice}", lines);
            Assert.Contains($"account: {StuckMail.Alice}", lines);
            Assert.Contains("held: no", lines);
            Assert.Contains("attempts: 1", lines);
            Assert.Contains($"last error: {StuckMail.Greylisted}", lines);
            Assert.Contains(lines, l => l.StartsWith($"  {StuckMail.Dave}  sent  ", StringComparison.Ordinal) && l.Contains(" UTC  250", StringComparison.Ordinal));
            var blank = lines.IndexOf("");
            Assert.True(blank > 0, "no blank line before the headers");
            Assert.Contains("Subject: stuck", lines[(blank + 1)..]);
        }

        Assert.Equal((0, $"{id} on hold"), Result(await Remote("hold", id)));
        Assert.EndsWith("  (held)", Lines((await Local("list")).Stdout)[0]);
        Assert.Equal((0, "0 messages queued for immediate retry"), Result(await Local("retry", "--all")));
        Assert.Equal((0, $"{id} released"), Result(await Local("release", id)));
        await mail.WaitAsync(e => e.Id == id && e.Attempts == 2, "the attempt after the release");
        Assert.Equal((0, $"{id} queued for immediate retry"), Result(await Remote("retry", id)));
        await mail.WaitAsync(e => e.Id == id && e.Attempts == 3, "the attempt after the retry");
        Assert.Equal((0, "1 message queued for immediate retry"), Result(await Remote("retry", "--all")));
        await mail.WaitAsync(e => e.Id == id && e.Attempts == 4, "the attempt after retry --all");
        Assert.Equal((0, $"{id} deleted"), Result(await Remote("delete", id)));
        Assert.Empty(await node.Host.Queue.ListQueueAsync());
        Assert.Equal((0, "queue is empty"), Result(await Remote("list")));

        // An unknown id: one line, exit 1, both ways; bad usage exits 2.
        foreach (var cli in new[] { local, remote })
        {
            var unknown = await cli(["delete", id]);
            Assert.Equal(1, unknown.Exit);
            Assert.Single(Lines(unknown.Stderr));
            Assert.Contains(id, unknown.Stderr);
            Assert.Equal(2, (await cli(["retry"])).Exit);
            Assert.Equal(2, (await cli(["retry", id, "--all"])).Exit);
            Assert.Equal(2, (await cli(["show"])).Exit);
            Assert.Equal(2, (await cli(["flush"])).Exit);
        }
        // A read token may list but not change.
        var reader = node.Directory.CreateToken("watch", "read");
        Assert.Equal(0, (await ApplianceProcess.CommandAsync(["queue", "list", "--url", url, "--token", reader, "--insecure"])).Exit);
        var refused = await ApplianceProcess.CommandAsync(["queue", "retry", "--all", "--url", url, "--token", reader, "--insecure"]);
        Assert.Equal(1, refused.Exit);
        Assert.Contains("provision", refused.Stderr);
    }

    private static List<string> Lines(string text) => [.. text.ReplaceLineEndings("\n").TrimEnd('\n').Split('\n')];

    private static (int, string) Result((int Exit, string Stdout, string Stderr) r) => (r.Exit, r.Exit == 0 ? r.Stdout.Trim() : r.Stderr.Trim());
}
