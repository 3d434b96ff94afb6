using System.Net;
using System.Net.Sockets;
using System.Text;
using Appliance.Filtering;
using Xunit.Abstractions;

namespace Appliance.Tests.Filtering;

/// <summary>
/// <see cref="RspamdClient"/> against Debian's real rspamd (<see cref="Rspamd"/>): clean mail gets no
/// action, the test tokens get reject and add header with their symbols, the envelope reaches
/// rspamd as sent, and rspamd down, slow, at a wrong URL or answering garbage is an Error verdict,
/// never an exception.
/// </summary>
public sealed class RspamdTests(ITestOutputHelper output)
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private static byte[] Mail(string subject, string body) => Encoding.ASCII.GetBytes(
        $"From: sender@remote.test\r\nTo: alice@mx.test\r\nSubject: {subject}\r\nDate: Thu, 26 Nov 2026 10:00:00 +0000\r\n" +
        $"Message-ID: <{Guid.NewGuid():N}@remote.test>\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n{body}\r\n");

    private static RspamdRequest Envelope(params string[] rcpts) =>
        new(IPAddress.Parse("192.0.2.10"), "client.remote.test", "sender@remote.test", rcpts.Length == 0 ? ["alice@mx.test"] : rcpts);

    [Fact]
    public async Task Real_rspamd_scores_clean_mail_spam_and_suspect_mail()
    {
        if (!HostTool.Available(Rspamd.Path, output)) return;
        await using var rspamd = await Rspamd.StartAsync();
        using var client = new RspamdClient(rspamd.Url, Timeout);
        Assert.True(await client.PingAsync(CancellationToken.None));

        var clean = await client.CheckAsync(Mail("lunch", "Shall we meet at noon?"), Envelope(), CancellationToken.None);
        output.WriteLine(clean.LogField + " " + clean.SymbolSummary);
        Assert.Null(clean.Error);
        Assert.Equal(RspamdAction.NoAction, clean.Action);
        Assert.Equal("no action", clean.ActionName);
        Assert.True(clean.Score < 4, $"clean mail scored {clean.Score}");
        Assert.Equal(15, clean.RequiredScore);
        Assert.DoesNotContain(Rspamd.SpamSymbol, clean.Symbols.Keys);
        Assert.Equal($"rspamd={clean.Score:0.00}/15(no action)", clean.LogField);

        var spam = await client.CheckAsync(Mail("offer", "Buy now! " + Rspamd.SpamToken), Envelope(), CancellationToken.None);
        output.WriteLine(spam.LogField + " " + spam.SymbolSummary);
        Assert.Null(spam.Error);
        Assert.Equal(RspamdAction.Reject, spam.Action);
        Assert.True(spam.Score >= 15, $"spam scored {spam.Score}");
        Assert.Equal(20, spam.Symbols[Rspamd.SpamSymbol]);
        Assert.Equal([Rspamd.SpamToken], spam.SymbolOptions[Rspamd.SpamSymbol]);
        Assert.StartsWith($"{Rspamd.SpamSymbol}(20.00)", spam.SymbolSummary);
        Assert.DoesNotContain(Rspamd.EnvelopeSymbol, spam.SymbolSummary); // worth nothing: not in the header
        Assert.Matches(@"^rspamd=2\d\.\d\d/15\(reject\)$", spam.LogField);

        var suspect = await client.CheckAsync(Mail("hmm " + Rspamd.SuspectToken, "maybe"), Envelope(), CancellationToken.None);
        Assert.Equal(RspamdAction.AddHeader, suspect.Action);
        Assert.Equal("rspamd=7.00/15(add header)", suspect.LogField);
        Assert.Equal($"{Rspamd.SuspectSymbol}(7.00)", suspect.SymbolSummary);
    }

    [Fact]
    public async Task The_envelope_reaches_rspamd_as_sent()
    {
        if (!HostTool.Available(Rspamd.Path, output)) return;
        await using var rspamd = await Rspamd.StartAsync();
        using var client = new RspamdClient(rspamd.Url, Timeout, password: "secret");

        var request = new RspamdRequest(IPAddress.Parse("::ffff:192.0.2.10"), "client.remote.test", "sender@remote.test", ["alice@mx.test", "bob@mx.test"])
        {
            Hostname = "client.remote.test",
            User = "alice@mx.test",
            QueueId = "Q123",
        };
        var verdict = await client.CheckAsync(Mail("hi", "hello"), request, CancellationToken.None);
        Assert.Null(verdict.Error);
        Assert.Equal(["ip=192.0.2.10", "helo=client.remote.test", "from=sender@remote.test", "rcpt=alice@mx.test", "rcpt=bob@mx.test",
            "hostname=client.remote.test", "user=alice@mx.test", "qid=Q123"], verdict.SymbolOptions[Rspamd.EnvelopeSymbol]);

        // A bounce: the null sender is sent as "<>", which rspamd reads as an empty address; no user on the MX.
        var bounce = await client.CheckAsync(Mail("undeliverable", "sorry"), new RspamdRequest(IPAddress.Loopback, "mx.remote.test", "", ["alice@mx.test"]), CancellationToken.None);
        Assert.Equal(["ip=127.0.0.1", "helo=mx.remote.test", "from=", "rcpt=alice@mx.test"], bounce.SymbolOptions[Rspamd.EnvelopeSymbol]);
    }

    [Fact]
    public async Task Rspamd_down_or_at_a_wrong_url_is_an_error_verdict()
    {
        if (!HostTool.Available(Rspamd.Path, output)) return;
        await using var rspamd = await Rspamd.StartAsync();
        using var client = new RspamdClient(rspamd.Url, Timeout);
        Assert.Null((await client.CheckAsync(Mail("hi", "hello"), Envelope(), CancellationToken.None)).Error);

        // A path rspamd does not serve: its HTTP 500 "invalid command".
        using (var wrong = new RspamdClient(new Uri(rspamd.Url, "nothing/"), Timeout))
        {
            var verdict = await wrong.CheckAsync(Mail("hi", "hello"), Envelope(), CancellationToken.None);
            output.WriteLine(verdict.LogField);
            Assert.Equal(RspamdAction.Error, verdict.Action);
            Assert.StartsWith($"rspamd=error(rspamd at {rspamd.Url}nothing/ answered HTTP 500", verdict.LogField);
            Assert.False(await wrong.PingAsync(CancellationToken.None));
        }

        await rspamd.StopAsync();
        var down = await client.CheckAsync(Mail("hi", "hello"), Envelope(), CancellationToken.None);
        output.WriteLine(down.LogField);
        Assert.Equal(RspamdAction.Error, down.Action);
        Assert.StartsWith($"rspamd at {rspamd.Url}: ", down.Error);
        Assert.Empty(down.Symbols);
        Assert.Equal("", down.SymbolSummary);
        Assert.False(await client.PingAsync(CancellationToken.None));

        // Nothing listens on port 1 of the loopback: refused at once.
        using var nowhere = new RspamdClient(new Uri("http://127.0.0.1:1/"), Timeout);
        Assert.Contains("refused", (await nowhere.CheckAsync(Mail("hi", "hello"), Envelope(), CancellationToken.None)).Error, StringComparison.OrdinalIgnoreCase);
    }

    [Fact]
    public async Task A_silent_or_garbled_server_is_an_error_verdict_and_the_callers_cancellation_is_thrown()
    {
        // A server that accepts and never answers, then one that answers HTTP 200 with something else than rspamd's JSON.
        using var silent = new TcpListener(IPAddress.Loopback, 0);
        silent.Start();
        var held = new System.Collections.Concurrent.ConcurrentBag<TcpClient>();
        _ = Task.Run(async () => { while (true) held.Add(await silent.AcceptTcpClientAsync()); });
        var url = new Uri($"http://127.0.0.1:{((IPEndPoint)silent.LocalEndpoint).Port}/");
        using (var client = new RspamdClient(url, TimeSpan.FromMilliseconds(500)))
        {
            var verdict = await client.CheckAsync(Mail("hi", "hello"), Envelope(), CancellationToken.None);
            Assert.Equal($"rspamd=error(rspamd at {url} did not answer within 0.5 s)", verdict.LogField);
            Assert.False(await client.PingAsync(CancellationToken.None));
        }
        using (var client = new RspamdClient(url, TimeSpan.FromSeconds(30)))
        {
            using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(300));
            await Assert.ThrowsAnyAsync<OperationCanceledException>(() => client.CheckAsync(Mail("hi", "hello"), Envelope(), cancel.Token));
        }
        silent.Stop();
        foreach (var c in held) c.Dispose();

        Assert.Equal("rspamd's reply has no action", RspamdClient.Parse("{\"score\":1}"u8).Error);
        Assert.StartsWith("rspamd's reply is not JSON", RspamdClient.Parse("<html>pong</html>"u8).Error);
        Assert.Equal("rspamd: Message has no body", RspamdClient.Parse("{\"error\":\"Message has no body\"}"u8).Error);
        var odd = RspamdClient.Parse("""{"score":4.5,"required_score":15,"action":"rewrite subject","subject":"[SPAM] hi","symbols":{"A":{"name":"A","score":4.5}},"messages":{"smtp_message":"go away"},"message-id":"m@x"}"""u8);
        Assert.Equal(RspamdAction.RewriteSubject, odd.Action);
        Assert.Equal(("[SPAM] hi", "go away", "m@x"), (odd.Subject, odd.SmtpMessage, odd.MessageId));
        Assert.Equal("rspamd=4.50/15(rewrite subject)", odd.LogField);
        Assert.Equal(RspamdAction.Other, RspamdClient.Parse("""{"score":0,"required_score":15,"action":"discard"}"""u8).Action);
    }
}
