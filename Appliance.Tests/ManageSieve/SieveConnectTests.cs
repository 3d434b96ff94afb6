using Appliance.Store;
using Xunit.Abstractions;

namespace Appliance.Tests.ManageSieve;

/// <summary>
/// A real client: Debian's sieve-connect (.ci/run installs it) uploads a script over STARTTLS,
/// activates it and lists it; the store then holds it as the user's active script, and mail
/// arriving at the MX is filed by it.
/// </summary>
public sealed class SieveConnectTests(ITestOutputHelper output)
{
    private const string Tool = "/usr/bin/sieve-connect";

    private static Task<(int Exit, string Output)> RunAsync(TestNode node, params string[] args) =>
        HostCommand.RunWithInputAsync(TestNode.Password + "\n", Tool,
            ["--server", "127.0.0.1", "--port", node.ManageSieve.Port.ToString(), "--user", $"alice@{TestNode.Domain}",
             "--passwordfd", "0", "--notlsverify", "--authmech", "PLAIN", .. args]);

    [Fact]
    public async Task SieveConnect_Uploads_Activates_AndLists_AScript()
    {
        if (!HostTool.Available(Tool, output)) return;
        await using var node = await TestNode.StartAsync(["alice"]);
        const string script = "require [\"fileinto\", \"mailbox\"];\r\nif header :contains \"Subject\" \"[list]\" {\r\n  fileinto :create \"Lists\";\r\n}\r\n";
        var file = Path.Combine(node.DataDirectory, "filters.sieve");
        await File.WriteAllTextAsync(file, script);

        var (exit, text) = await RunAsync(node, "--upload", "--localsieve", file, "--remotesieve", "filters");
        Assert.True(exit == 0, $"upload exited {exit}: {text}");
        (exit, text) = await RunAsync(node, "--activate", "--remotesieve", "filters");
        Assert.True(exit == 0, $"activate exited {exit}: {text}");
        (exit, text) = await RunAsync(node, "--list");
        Assert.True(exit == 0, $"list exited {exit}: {text}");
        output.WriteLine(text);
        Assert.Contains("\"filters\" ACTIVE", text);

        Assert.Equal(new StoredSieveScript("filters", script), node.Store.GetActiveSieveScript(node.User("alice")));

        // From then on the MX files list mail into the folder, and the rest stays in the INBOX.
        await Smtp.Mailkit.SendAsync(node.Smtp, Smtp.Mailkit.Text("robot@lists.example", $"alice@{TestNode.Domain}", "[list] weekly digest", "news"));
        await Smtp.Mailkit.SendAsync(node.Smtp, Smtp.Mailkit.Text("friend@example.org", $"alice@{TestNode.Domain}", "lunch?", "noon"));
        var filed = Assert.Single(await node.Store.ListAsync(node.User("alice"), "Lists", CancellationToken.None));
        await using (var stream = node.Store.OpenMessage(node.User("alice"), filed))
            Assert.Contains("Subject: [list] weekly digest", await new StreamReader(stream).ReadToEndAsync());
        Assert.Single(await node.InboxAsync("alice"));
    }
}
