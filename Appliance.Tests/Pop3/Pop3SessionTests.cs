using System.Net;
using System.Text;
using Appliance.Hosting;

namespace Appliance.Tests.Pop3;

/// <summary>Byte-exact transcripts against the real server over a socket.</summary>
public sealed class Pop3SessionTests
{
    private const string Message = "From: a@example.com\r\nSubject: hi\r\n\r\nline one\r\n.hidden dot\r\n..two dots\r\nlast\r\n";

    private static async Task LoginAsync(RawPop3Client client, string user = Pop3TestHost.User, string password = Pop3TestHost.Password)
    {
        Assert.StartsWith("+OK", await client.CommandAsync("USER " + user));
        Assert.StartsWith("+OK", await client.CommandAsync("PASS " + password));
    }

    [Fact]
    public async Task Capa_OffersPlaintextOnLoopbackInDevMode()
    {
        await using var host = await Pop3TestHost.StartAsync();
        await using var client = await host.ConnectAsync();
        Assert.Equal("+OK Capability list follows", await client.CommandAsync("CAPA"));
        var caps = await client.ReadLinesAsync();
        Assert.Equal(["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER", "SASL PLAIN", "STLS", "IMPLEMENTATION Appliance"], caps);
    }

    [Fact]
    public async Task WithoutDevMode_PlaintextRefusedUntilStls()
    {
        await using var host = await Pop3TestHost.StartAsync(devMode: false);
        await using var client = await host.ConnectAsync();
        Assert.Equal("+OK Capability list follows", await client.CommandAsync("CAPA"));
        var caps = await client.ReadLinesAsync();
        Assert.DoesNotContain("USER", caps);
        Assert.DoesNotContain("SASL PLAIN", caps);
        Assert.Contains("STLS", caps);
        Assert.StartsWith("-ERR [AUTH] ", await client.CommandAsync("USER " + Pop3TestHost.User));
        Assert.StartsWith("-ERR [AUTH] ", await client.CommandAsync("AUTH PLAIN " + Plain(Pop3TestHost.User, Pop3TestHost.Password)));
        Assert.Equal(0, host.Authenticator.Calls);

        Assert.Equal("+OK Begin TLS negotiation", await client.CommandAsync("STLS"));
        await client.StartTlsAsync();
        Assert.Equal("+OK Capability list follows", await client.CommandAsync("CAPA"));
        caps = await client.ReadLinesAsync();
        Assert.Contains("USER", caps);
        Assert.DoesNotContain("STLS", caps);
        Assert.StartsWith("-ERR", await client.CommandAsync("STLS"));
        await LoginAsync(client);
        Assert.Equal("+OK 0 0", await client.CommandAsync("STAT"));
    }

    [Fact]
    public async Task ImplicitTls_AllowsLoginWithoutDevMode()
    {
        await using var host = await Pop3TestHost.StartAsync(devMode: false);
        host.Store.Add(Pop3TestHost.User, Message);
        await using var client = await host.ConnectAsync(implicitTls: true);
        Assert.True(client.IsTls);
        await LoginAsync(client);
        Assert.Equal($"+OK 1 {Message.Length}", await client.CommandAsync("STAT"));
    }

    [Fact]
    public async Task ImplicitTlsPort_PlaintextClient_IsDropped_ServerKeepsWorking()
    {
        await using var host = await Pop3TestHost.StartAsync();
        await using (var plain = await RawPop3Client.ConnectAsync(host.TlsPort, implicitTls: false))
        {
            await plain.SendAsync("USER x\r\nPASS y\r\n");
            await Assert.ThrowsAnyAsync<IOException>(() => plain.ReadLineAsync());
        }

        await using var client = await host.ConnectAsync(implicitTls: true);
        Assert.StartsWith("+OK", await client.CommandAsync("USER " + Pop3TestHost.User));
    }

    [Fact]
    public async Task Stls_WithPipelinedDataAfterIt_ClosesConnection()
    {
        await using var host = await Pop3TestHost.StartAsync(devMode: false);
        await using var client = await host.ConnectAsync();
        await client.SendAsync("STLS\r\nUSER injected\r\n");
        Assert.StartsWith("-ERR", await client.ReadLineAsync());
        Assert.Null(await client.ReadLineOrEofAsync());
    }

    [Fact]
    public async Task WrongPassword_IsAuthError_AndSessionStaysUsable()
    {
        await using var host = await Pop3TestHost.StartAsync();
        await using var client = await host.ConnectAsync();
        Assert.StartsWith("+OK", await client.CommandAsync("USER " + Pop3TestHost.User));
        Assert.Equal("-ERR [AUTH] Authentication failed", await client.CommandAsync("PASS wrong"));
        Assert.StartsWith("-ERR", await client.CommandAsync("PASS " + Pop3TestHost.Password));
        Assert.StartsWith("-ERR", await client.CommandAsync("STAT"));
        await LoginAsync(client);
        Assert.Equal("+OK 0 0", await client.CommandAsync("STAT"));
    }

    [Fact]
    public async Task ThrottledLogin_IsAuthError()
    {
        await using var host = await Pop3TestHost.StartAsync();
        await using var client = await host.ConnectAsync();
        Assert.StartsWith("+OK", await client.CommandAsync("USER " + FakeAuthenticator.ThrottledUser));
        Assert.StartsWith("-ERR [AUTH] ", await client.CommandAsync("PASS whatever"));
    }

    [Fact]
    public async Task AuthPlain_InitialResponse_Continuation_AndCancel()
    {
        await using var host = await Pop3TestHost.StartAsync();
        await using (var client = await host.ConnectAsync())
        {
            Assert.Equal("+ ", await client.CommandAsync("AUTH PLAIN"));
            Assert.Equal("-ERR Authentication cancelled", await client.CommandAsync("*"));
            Assert.Equal("+ ", await client.CommandAsync("AUTH PLAIN"));
            Assert.Equal("-ERR [AUTH] Authentication failed", await client.CommandAsync(Plain(Pop3TestHost.User, "nope")));
            Assert.Equal("+ ", await client.CommandAsync("auth plain"));
            Assert.StartsWith("+OK Maildrop has 0 messages", await client.CommandAsync(Plain(Pop3TestHost.User, Pop3TestHost.Password)));
            Assert.StartsWith("+OK", await client.CommandAsync("QUIT"));
        }

        await using (var client = await host.ConnectAsync())
        {
            Assert.StartsWith("-ERR", await client.CommandAsync("AUTH PLAIN !!!notbase64"));
            Assert.StartsWith("-ERR", await client.CommandAsync("AUTH CRAM-MD5"));
            Assert.StartsWith("+OK Maildrop", await client.CommandAsync("AUTH PLAIN " + Plain(Pop3TestHost.User, Pop3TestHost.Password, authzid: Pop3TestHost.User)));
        }
    }

    [Fact]
    public async Task Retr_DotStuffsAndKeepsBytes()
    {
        await using var host = await Pop3TestHost.StartAsync();
        host.Store.Add(Pop3TestHost.User, Message);
        host.Store.Add(Pop3TestHost.User, "Subject: no final newline\r\n\r\nbody\r\n.");
        await using var client = await host.ConnectAsync();
        await LoginAsync(client);

        Assert.Equal($"+OK {Message.Length} octets", await client.CommandAsync("RETR 1"));
        var body = Encoding.UTF8.GetString(await client.ReadMultiLineAsync());
        Assert.Equal("From: a@example.com\r\nSubject: hi\r\n\r\nline one\r\n..hidden dot\r\n...two dots\r\nlast\r\n.\r\n", body);

        Assert.StartsWith("+OK", await client.CommandAsync("RETR 2"));
        body = Encoding.UTF8.GetString(await client.ReadMultiLineAsync());
        Assert.Equal("Subject: no final newline\r\n\r\nbody\r\n..\r\n.\r\n", body);
    }

    [Fact]
    public async Task Retr_LargeMessage_StreamsExactly()
    {
        await using var host = await Pop3TestHost.StartAsync();
        var text = new StringBuilder("Subject: big\r\n\r\n");
        for (int i = 0; i < 40_000; i++)
        {
            text.Append(i % 7 == 0 ? "." : "").Append("line ").Append(i).Append(' ', i % 60).Append("\r\n");
        }

        string stored = text.ToString();
        host.Store.Add(Pop3TestHost.User, stored);
        await using var client = await host.ConnectAsync();
        await LoginAsync(client);
        Assert.Equal($"+OK {stored.Length} octets", await client.CommandAsync("RETR 1"));
        var body = Encoding.UTF8.GetString(await client.ReadMultiLineAsync());
        Assert.Equal(stored.Replace("\r\n.", "\r\n..", StringComparison.Ordinal) + ".\r\n", body);
        Assert.Equal("+OK", await client.CommandAsync("NOOP"));
    }

    [Fact]
    public async Task Top_SendsHeaderBlankLineAndNBodyLines()
    {
        await using var host = await Pop3TestHost.StartAsync();
        host.Store.Add(Pop3TestHost.User, Message);
        await using var client = await host.ConnectAsync();
        await LoginAsync(client);

        Assert.StartsWith("+OK", await client.CommandAsync("TOP 1 0"));
        Assert.Equal("From: a@example.com\r\nSubject: hi\r\n\r\n.\r\n", Encoding.UTF8.GetString(await client.ReadMultiLineAsync()));
        Assert.StartsWith("+OK", await client.CommandAsync("TOP 1 2"));
        Assert.Equal("From: a@example.com\r\nSubject: hi\r\n\r\nline one\r\n..hidden dot\r\n.\r\n", Encoding.UTF8.GetString(await client.ReadMultiLineAsync()));
        Assert.StartsWith("-ERR", await client.CommandAsync("TOP 1"));
        Assert.StartsWith("-ERR", await client.CommandAsync("TOP 9 1"));
    }

    [Fact]
    public async Task ListUidlStat_UseFixedNumbersAndHideDeleted()
    {
        await using var host = await Pop3TestHost.StartAsync();
        var first = host.Store.Add(Pop3TestHost.User, "a\r\n");
        var second = host.Store.Add(Pop3TestHost.User, "bb\r\n");
        await using var client = await host.ConnectAsync();
        await LoginAsync(client);

        Assert.Equal("+OK 2 7", await client.CommandAsync("STAT"));
        Assert.StartsWith("+OK", await client.CommandAsync("LIST"));
        Assert.Equal(["1 3", "2 4"], await client.ReadLinesAsync());
        Assert.Equal("+OK 2 4", await client.CommandAsync("LIST 2"));
        Assert.StartsWith("+OK", await client.CommandAsync("UIDL"));
        Assert.Equal([$"1 {FakeMailStore.UidValidity}.{first.Uid}", $"2 {FakeMailStore.UidValidity}.{second.Uid}"], await client.ReadLinesAsync());

        // A message arriving during the session does not change the maildrop.
        host.Store.Add(Pop3TestHost.User, "ccc\r\n");
        Assert.Equal("+OK Message 1 deleted", await client.CommandAsync("DELE 1"));
        Assert.Equal("+OK 1 4", await client.CommandAsync("STAT"));
        Assert.StartsWith("-ERR", await client.CommandAsync("LIST 1"));
        Assert.StartsWith("-ERR", await client.CommandAsync("RETR 1"));
        Assert.StartsWith("-ERR", await client.CommandAsync("DELE 1"));
        Assert.StartsWith("-ERR", await client.CommandAsync("LIST 3"));
        Assert.Equal($"+OK 2 {FakeMailStore.UidValidity}.{second.Uid}", await client.CommandAsync("UIDL 2"));
        Assert.StartsWith("+OK", await client.CommandAsync("LIST"));
        Assert.Equal(["2 4"], await client.ReadLinesAsync());
        Assert.StartsWith("+OK Maildrop has 2 messages", await client.CommandAsync("RSET"));
        Assert.Equal("+OK 2 7", await client.CommandAsync("STAT"));
        Assert.Equal("+OK", await client.CommandAsync("NOOP"));
    }

    [Fact]
    public async Task Dele_IsAppliedOnlyAtQuit()
    {
        await using var host = await Pop3TestHost.StartAsync();
        host.Store.Add(Pop3TestHost.User, "one\r\n");
        var second = host.Store.Add(Pop3TestHost.User, "two\r\n");
        await using var client = await host.ConnectAsync();
        await LoginAsync(client);
        Assert.StartsWith("+OK", await client.CommandAsync("DELE 2"));
        Assert.Equal(2, host.Store.Count(Pop3TestHost.User));
        Assert.Equal("+OK pop.test POP3 server signing off (1 messages left)", await client.CommandAsync("QUIT"));
        Assert.Null(await client.ReadLineOrEofAsync());
        Assert.Equal(1, host.Store.Count(Pop3TestHost.User));
        Assert.Equal([second.Uid], host.Store.ExpungedUids);
    }

    [Fact]
    public async Task DroppedConnection_LosesNoMessage_AndReleasesLock()
    {
        await using var host = await Pop3TestHost.StartAsync();
        host.Store.Add(Pop3TestHost.User, "one\r\n");
        await using (var client = await host.ConnectAsync())
        {
            await LoginAsync(client);
            Assert.StartsWith("+OK", await client.CommandAsync("DELE 1"));
        }

        // The server notices the drop, then the mailbox can be opened again, untouched.
        await using var again = await host.ConnectAsync();
        string reply = "";
        for (int i = 0; i < 50; i++)
        {
            Assert.StartsWith("+OK", await again.CommandAsync("USER " + Pop3TestHost.User));
            reply = await again.CommandAsync("PASS " + Pop3TestHost.Password);
            if (!reply.Contains("[IN-USE]", StringComparison.Ordinal))
            {
                break;
            }

            await Task.Delay(50);
        }

        Assert.Equal("+OK Maildrop has 1 messages (5 octets)", reply);
        Assert.Equal(0, host.Store.ExpungeCalls);
        Assert.Equal(1, host.Store.Count(Pop3TestHost.User));
    }

    [Fact]
    public async Task SecondSession_GetsInUse()
    {
        await using var host = await Pop3TestHost.StartAsync();
        await using var first = await host.ConnectAsync();
        await LoginAsync(first);
        await using var second = await host.ConnectAsync();
        Assert.StartsWith("+OK", await second.CommandAsync("USER " + Pop3TestHost.User.ToUpperInvariant()));
        Assert.StartsWith("-ERR [IN-USE] ", await second.CommandAsync("PASS " + Pop3TestHost.Password));
        // Another mailbox is not affected.
        await LoginAsync(second, "bob@example.com", "bobpw");
        Assert.StartsWith("+OK", await first.CommandAsync("QUIT"));
    }

    [Fact]
    public async Task PipelinedCommands_AreAnsweredInOrder()
    {
        await using var host = await Pop3TestHost.StartAsync();
        host.Store.Add(Pop3TestHost.User, "Subject: x\r\n\r\n.\r\n");
        await using var client = await host.ConnectAsync();
        await client.SendAsync($"USER {Pop3TestHost.User}\r\nPASS {Pop3TestHost.Password}\r\nSTAT\r\nRETR 1\r\nBOGUS\r\nNOOP\r\nQUIT\r\n");
        var all = Encoding.UTF8.GetString(await client.ReadUntilAsync("signing off (1 messages left)\r\n"u8.ToArray()));
        Assert.Equal(
            "+OK Send your password\r\n" +
            "+OK Maildrop has 1 messages (17 octets)\r\n" +
            "+OK 1 17\r\n" +
            "+OK 17 octets\r\nSubject: x\r\n\r\n..\r\n.\r\n" +
            "-ERR unknown command\r\n" +
            "+OK\r\n" +
            "+OK pop.test POP3 server signing off (1 messages left)\r\n",
            all);
    }

    [Fact]
    public async Task LongLine_IsRefused_AndConnectionStaysUsable()
    {
        await using var host = await Pop3TestHost.StartAsync();
        await using var client = await host.ConnectAsync();
        await client.SendAsync("USER " + new string('x', 100_000) + "\r\n");
        Assert.Equal("-ERR line too long", await client.ReadLineAsync());
        // Exactly at the limit (512 with CRLF) is fine; one more is too long.
        Assert.StartsWith("+OK", await client.CommandAsync("USER " + new string('y', 512 - 7)));
        Assert.Equal("-ERR line too long", await client.CommandAsync("USER " + new string('y', 512 - 6)));
        await LoginAsync(client);
    }

    [Fact]
    public async Task GarbageBytes_GetErrors_ThenDisconnect()
    {
        await using var host = await Pop3TestHost.StartAsync();
        await using var client = await host.ConnectAsync();
        var garbage = new byte[] { 0x00, 0xff, 0xfe, (byte)'\r', (byte)'\n', 0x1b, (byte)'[', (byte)'A', (byte)'\n', (byte)'\n' };
        await client.SendBytesAsync(garbage);
        for (int i = 0; i < 3; i++)
        {
            Assert.StartsWith("-ERR", await client.ReadLineAsync());
        }

        Assert.StartsWith("+OK", await client.CommandAsync("CAPA"));
        await client.ReadLinesAsync();
        var lines = new List<string?>();
        for (int i = 0; i < 20; i++)
        {
            await client.SendBytesAsync([0xc3, 0x28, (byte)'\r', (byte)'\n']);
        }

        for (int i = 0; i < 10; i++)
        {
            lines.Add(await client.ReadLineOrEofAsync());
        }

        Assert.Equal(Enumerable.Repeat("-ERR unknown command", 7), lines.Take(7));
        Assert.Equal("-ERR Too many errors, closing connection", lines[7]);
        Assert.Null(lines[8]);
    }

    [Fact]
    public async Task TransactionCommandsBeforeLogin_AreRefused()
    {
        await using var host = await Pop3TestHost.StartAsync();
        await using var client = await host.ConnectAsync();
        Assert.Equal("-ERR STAT not allowed in this state", await client.CommandAsync("STAT"));
        Assert.Equal("-ERR RETR not allowed in this state", await client.CommandAsync("retr 1"));
        Assert.Equal("-ERR USER first", await client.CommandAsync("PASS x"));
        Assert.Equal("+OK pop.test POP3 server signing off", await client.CommandAsync("QUIT"));
    }

    [Fact]
    public async Task IdleTimeout_ClosesConnection()
    {
        await using var host = await Pop3TestHost.StartAsync(options: new Pop3Options { IdleTimeoutSeconds = 1 });
        await using var client = await host.ConnectAsync();
        Assert.Equal("-ERR Idle timeout, closing connection", await client.ReadLineAsync());
        Assert.Null(await client.ReadLineOrEofAsync());
    }

    [Fact]
    public async Task MaxConnectionsPerIp_RefusesExtraConnection()
    {
        await using var host = await Pop3TestHost.StartAsync(options: new Pop3Options { MaxConnectionsPerIp = 2 });
        await using var a = await host.ConnectAsync();
        await using var b = await host.ConnectAsync();
        await using var c = await RawPop3Client.ConnectAsync(host.Port, implicitTls: false);
        Assert.Equal("-ERR [SYS/TEMP] Too many connections from your address", await c.ReadLineAsync());
        Assert.Null(await c.ReadLineOrEofAsync());
        Assert.StartsWith("+OK", await a.CommandAsync("QUIT"));
        Assert.Null(await a.ReadLineOrEofAsync());
        await Task.Delay(200);
        await using var d = await host.ConnectAsync();
    }

    [Fact]
    public async Task StopAsync_EndsSessionsWithoutUpdate()
    {
        var host = await Pop3TestHost.StartAsync();
        host.Store.Add(Pop3TestHost.User, "one\r\n");
        await using var client = await host.ConnectAsync();
        await LoginAsync(client);
        Assert.StartsWith("+OK", await client.CommandAsync("DELE 1"));
        await host.Server.StopAsync().WaitAsync(TimeSpan.FromSeconds(10));
        Assert.Equal("-ERR [SYS/TEMP] Server shutting down", await client.ReadLineOrEofAsync());
        Assert.Equal(1, host.Store.Count(Pop3TestHost.User));
        await Assert.ThrowsAnyAsync<Exception>(() => RawPop3Client.ConnectAsync(host.Port, implicitTls: false));
    }

    internal static string Plain(string user, string password, string authzid = "") =>
        Convert.ToBase64String(Encoding.UTF8.GetBytes($"{authzid}\0{user}\0{password}"));
}
