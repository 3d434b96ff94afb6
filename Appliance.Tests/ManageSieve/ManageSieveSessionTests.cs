using System.Net;
using System.Text;
using Appliance.Hosting;
using Appliance.ManageSieve;
using Appliance.Store;

namespace Appliance.Tests.ManageSieve;

/// <summary>RFC 5804 over real sockets against a running node, transcript style.</summary>
public sealed class ManageSieveSessionTests
{
    private const string Alice = "alice@" + TestNode.Domain;

    private static string Literal(string text) => $"{{{Encoding.UTF8.GetByteCount(text)}+}}\r\n{text}";

    [Fact]
    public async Task Greeting_IsTheCapabilityList_WithPlainOnLoopbackInDevMode_AndStartTls()
    {
        await using var node = await TestNode.StartAsync();
        await using var c = await RawSieveClient.ConnectAsync(node.ManageSieve);
        var lines = c.Greeting.Split("\r\n");
        Assert.Equal("\"IMPLEMENTATION\" \"Appliance\"", lines[0]);
        Assert.Contains("\"SASL\" \"PLAIN\"", lines);
        Assert.Contains("\"STARTTLS\"", lines);
        Assert.Contains("\"VERSION\" \"1.0\"", lines);
        Assert.Contains("\"MAXREDIRECTS\" \"5\"", lines);
        Assert.Contains(lines, l => l.StartsWith("\"SIEVE\" \"", StringComparison.Ordinal) && l.Contains("fileinto"));
        Assert.StartsWith("OK", lines[^1]);
        Assert.Equal(c.Greeting, (await c.SendAsync("CAPABILITY")).Replace("OK \"Capability completed\"", lines[^1]));
    }

    [Fact]
    public async Task AuthenticatePlain_WithInitialResponse_AsLiteral_WithContinuation_AndAbort()
    {
        await using var node = await TestNode.StartAsync();
        var plain = RawSieveClient.Plain(Alice, TestNode.Password);

        await using (var c = await RawSieveClient.ConnectAsync(node.ManageSieve))
        {
            Assert.Equal("NO \"Authentication failed\"", await c.SendAsync($"AUTHENTICATE \"PLAIN\" \"{RawSieveClient.Plain(Alice, "wrong")}\""));
            Assert.Equal("NO \"LISTSCRIPTS needs authentication first\"", await c.SendAsync("LISTSCRIPTS"));
            Assert.Equal("OK \"Logged in\"", await c.SendAsync($"authenticate \"plain\" \"{plain}\""));
            Assert.Equal("OK \"Listscripts completed\"", await c.SendAsync("LISTSCRIPTS"));
            Assert.Equal("NO \"AUTHENTICATE is not allowed once authenticated\"", await c.SendAsync($"AUTHENTICATE \"PLAIN\" \"{plain}\""));
        }
        await using (var c = await RawSieveClient.ConnectAsync(node.ManageSieve))
            Assert.Equal("OK \"Logged in\"", await c.SendAsync($"AUTHENTICATE \"PLAIN\" {Literal(plain)}"));
        await using (var c = await RawSieveClient.ConnectAsync(node.ManageSieve))
        {
            // RFC 5804 §2.1: an empty challenge, then the response as a string (here a literal).
            await c.WriteAsync("AUTHENTICATE \"PLAIN\"\r\n");
            Assert.Equal("\"\"", await c.ReadLineAsync());
            Assert.Equal("OK \"Logged in\"", await c.SendAsync(Literal(plain)));
        }
        await using (var c = await RawSieveClient.ConnectAsync(node.ManageSieve))
        {
            await c.WriteAsync("AUTHENTICATE \"PLAIN\"\r\n");
            Assert.Equal("\"\"", await c.ReadLineAsync());
            Assert.Equal("OK \"Logged in\"", await c.SendAsync($"\"{plain}\""));
        }
        await using (var c = await RawSieveClient.ConnectAsync(node.ManageSieve))
        {
            await c.WriteAsync("AUTHENTICATE \"PLAIN\"\r\n");
            Assert.Equal("\"\"", await c.ReadLineAsync());
            Assert.Equal("NO \"Authentication aborted\"", await c.SendAsync("\"*\""));
            Assert.Equal("NO \"Unsupported authentication mechanism\"", await c.SendAsync("AUTHENTICATE \"DIGEST-MD5\""));
            Assert.StartsWith("OK", await c.SendAsync("NOOP"));
        }
    }

    [Fact]
    public async Task Scripts_Put_List_Activate_Get_Rename_Delete_WithTheRfcResponseCodes()
    {
        await using var node = await TestNode.StartAsync();
        await using var c = await RawSieveClient.LoginAsync(node.ManageSieve, Alice);
        const string script = "require \"fileinto\";\r\n# Grüße\r\nif header :contains \"subject\" \"spam\" { fileinto \"Junk\"; }\r\n";

        Assert.Equal("OK \"Putscript completed\"", await c.SendAsync($"PUTSCRIPT \"filters\" {Literal(script)}"));
        Assert.Equal("OK \"Putscript completed\"", await c.SendAsync("PUTSCRIPT \"other\" {5}\r\nkeep;"));
        Assert.Equal("\"filters\"\r\n\"other\"\r\nOK \"Listscripts completed\"", await c.SendAsync("LISTSCRIPTS"));
        Assert.Equal("OK \"Setactive completed\"", await c.SendAsync("SETACTIVE \"filters\""));
        Assert.Equal("\"filters\" ACTIVE\r\n\"other\"\r\nOK \"Listscripts completed\"", await c.SendAsync("LISTSCRIPTS"));

        // GETSCRIPT: a literal with exactly the bytes put.
        await c.WriteAsync("GETSCRIPT \"filters\"\r\n");
        Assert.Equal($"{{{Encoding.UTF8.GetByteCount(script)}}}", await c.ReadLineAsync());
        Assert.Equal(Encoding.UTF8.GetBytes(script), await c.ReadBytesAsync(Encoding.UTF8.GetByteCount(script)));
        Assert.Equal("", await c.ReadLineAsync());
        Assert.Equal("OK \"Getscript completed\"", await c.ReadLineAsync());
        Assert.Equal(new StoredSieveScript("filters", script), node.Store.GetActiveSieveScript(node.User("alice")));

        Assert.Equal("NO (NONEXISTENT) \"There is no script of that name\"", await c.SendAsync("GETSCRIPT \"missing\""));
        Assert.Equal("NO (NONEXISTENT) \"There is no script of that name\"", await c.SendAsync("SETACTIVE \"missing\""));
        Assert.Equal("NO (ACTIVE) \"The active script cannot be deleted; deactivate it first\"", await c.SendAsync("DELETESCRIPT \"filters\""));
        Assert.Equal("NO (ALREADYEXISTS) \"A script of that name already exists\"", await c.SendAsync("RENAMESCRIPT \"other\" \"filters\""));
        Assert.Equal("NO (NONEXISTENT) \"There is no script of that name\"", await c.SendAsync("RENAMESCRIPT \"missing\" \"x\""));
        Assert.Equal("OK \"Renamescript completed\"", await c.SendAsync("RENAMESCRIPT \"filters\" \"main\""));
        Assert.Equal("\"main\" ACTIVE\r\n\"other\"\r\nOK \"Listscripts completed\"", await c.SendAsync("LISTSCRIPTS"));
        Assert.Equal("OK \"Deletescript completed\"", await c.SendAsync("DELETESCRIPT \"other\""));
        Assert.Equal("OK \"Setactive completed\"", await c.SendAsync("SETACTIVE \"\""));
        Assert.Equal("\"main\"\r\nOK \"Listscripts completed\"", await c.SendAsync("LISTSCRIPTS"));
        Assert.Equal("OK \"Deletescript completed\"", await c.SendAsync("DELETESCRIPT \"main\""));
        Assert.Equal("OK \"Listscripts completed\"", await c.SendAsync("LISTSCRIPTS"));
        Assert.Equal("NO \"Invalid script name: it must be non-empty text without control characters\"", await c.SendAsync("PUTSCRIPT \"\" \"keep;\""));
        await c.WriteAsync([.. "PUTSCRIPT \"x\" {2+}\r\n"u8, 0xff, 0xfe, .. "\r\n"u8]);
        Assert.Equal("NO \"The script is not UTF-8\"", await c.ReadResponseAsync());
    }

    /// <summary>The node checks scripts with the Sieve parser: an error comes back with its line.</summary>
    [Fact]
    public async Task AScriptWithASyntaxError_IsRefused_WithTheParsersLine()
    {
        await using var node = await TestNode.StartAsync();
        await using var c = await RawSieveClient.LoginAsync(node.ManageSieve, Alice);
        const string bad = "keep;\r\nfilein \"Junk\";\r\n";
        Assert.StartsWith("NO \"line 2: ", await c.SendAsync($"PUTSCRIPT \"bad\" {Literal(bad)}"));
        Assert.StartsWith("NO \"line 2: ", await c.SendAsync($"CHECKSCRIPT {Literal(bad)}"));
        Assert.Equal("OK \"Script is valid\"", await c.SendAsync($"CHECKSCRIPT {Literal("require \"fileinto\";\r\nfileinto \"Junk\";\r\n")}"));
        Assert.Equal("OK \"Listscripts completed\"", await c.SendAsync("LISTSCRIPTS"));
        Assert.Contains("vacation", c.Greeting);
    }

    [Fact]
    public async Task HaveSpace_AndTheLimits_AnswerQuotaCodes()
    {
        await using var node = await TestNode.StartAsync(configure: o => { o.ManageSieve.MaxScriptBytes = 100; o.ManageSieve.MaxScripts = 2; });
        await using var c = await RawSieveClient.LoginAsync(node.ManageSieve, Alice);
        Assert.Equal("OK \"Putscript would succeed\"", await c.SendAsync("HAVESPACE \"a\" 100"));
        Assert.Equal("NO (QUOTA/MAXSIZE) \"Scripts are limited to 100 bytes\"", await c.SendAsync("HAVESPACE \"a\" 101"));
        Assert.Equal("NO \"Syntax: HAVESPACE name size (a number)\"", await c.SendAsync("HAVESPACE \"a\" \"10\""));
        Assert.StartsWith("OK", await c.SendAsync("PUTSCRIPT \"a\" \"keep;\""));
        Assert.StartsWith("OK", await c.SendAsync("PUTSCRIPT \"b\" \"keep;\""));
        Assert.Equal("NO (QUOTA/MAXSCRIPTS) \"Only 2 scripts are allowed; delete one first\"", await c.SendAsync("HAVESPACE \"c\" 10"));
        Assert.Equal("NO (QUOTA/MAXSCRIPTS) \"Only 2 scripts are allowed; delete one first\"", await c.SendAsync("PUTSCRIPT \"c\" \"keep;\""));
        Assert.Equal("OK \"Putscript would succeed\"", await c.SendAsync("HAVESPACE \"b\" 10"));
        Assert.Equal("NO (QUOTA/MAXSIZE) \"Scripts are limited to 100 bytes\"", await c.SendAsync($"PUTSCRIPT \"b\" \"{new string('#', 101)}\""));
    }

    [Fact]
    public async Task AnOversizedLiteral_IsRefused_ItsBytesSkipped_AndTheSessionGoesOn()
    {
        await using var node = await TestNode.StartAsync(configure: o => o.ManageSieve.MaxScriptBytes = 1000);
        await using var c = await RawSieveClient.LoginAsync(node.ManageSieve, Alice);
        // The literal's bytes look like commands: none of them may run.
        var body = string.Concat(Enumerable.Repeat("DELETESCRIPT \"x\"\r\n", 200));
        Assert.Equal($"NO (QUOTA/MAXSIZE) \"A literal of {body.Length} bytes is larger than the 1000-byte script size limit\"",
            await c.SendAsync($"PUTSCRIPT \"big\" {{{body.Length}+}}\r\n{body}"));
        Assert.Equal("OK (TAG \"after\") \"Done\"", await c.SendAsync("NOOP \"after\""));
        Assert.Equal("OK \"Listscripts completed\"", await c.SendAsync("LISTSCRIPTS"));

        // Far beyond anything worth reading: BYE and the connection closes.
        Assert.StartsWith("BYE (QUOTA/MAXSIZE)", await c.SendAsync("PUTSCRIPT \"huge\" {1000000000+}"));
        Assert.True(await c.IsClosedAsync());
    }

    [Fact]
    public async Task Garbage_GetsNo_AndTheSessionGoesOn_UntilTooManyErrors()
    {
        await using var node = await TestNode.StartAsync();
        await using var c = await RawSieveClient.ConnectAsync(node.ManageSieve);
        Assert.Equal("NO \"Unknown command FROB\"", await c.SendAsync("FROB \"x\""));
        Assert.Equal("NO \"Syntax error: expected a command name\"", await c.SendAsync("\u0001\u00ff garbage {3+}"));
        // The literal announced at the end of a refused line is skipped with it.
        await c.WriteAsync("abc\r\n");
        Assert.Equal("NO \"Syntax error: expected a string or a number\"", await c.SendAsync("NOOP bare-atom"));
        Assert.Equal("NO \"Syntax error: a quoted string cannot hold a line break; send a literal\"", await c.SendAsync("NOOP \"unterminated"));
        Assert.Equal("NO \"Line too long\"", await c.SendAsync("NOOP " + new string(' ', 9000) + "\"x\""));
        Assert.Equal("NO \"Empty command\"", await c.SendAsync(""));
        Assert.Equal("OK \"Done\"", await c.SendAsync("NOOP"));
        for (var i = 0; i < 3; i++) Assert.StartsWith("NO", await c.SendAsync("FROB"));
        var last = await c.SendAsync("FROB");
        Assert.Equal("NO \"Unknown command FROB\"", last);
        Assert.Equal("BYE \"Too many errors, closing connection\"", await c.ReadResponseAsync());
        Assert.True(await c.IsClosedAsync());
    }

    [Fact]
    public async Task StartTls_ResendsTheCapabilities_ThenLoginWorks()
    {
        await using var node = await TestNode.StartAsync(configure: o => o.Node.DevMode = false);
        await using var c = await RawSieveClient.ConnectAsync(node.ManageSieve);
        // Without TLS (dev mode off) no plaintext password is taken, not even from loopback.
        Assert.Contains("\"SASL\" \"\"", c.Greeting);
        Assert.Equal("NO (ENCRYPT-NEEDED) \"Plaintext authentication requires TLS; use STARTTLS first\"",
            await c.SendAsync($"AUTHENTICATE \"PLAIN\" \"{RawSieveClient.Plain(Alice, TestNode.Password)}\""));

        Assert.Equal("OK \"Begin TLS negotiation now\"", await c.SendAsync("STARTTLS"));
        await c.StartTlsAsync();
        var capabilities = await c.ReadResponseAsync();
        Assert.Contains("\"SASL\" \"PLAIN\"", capabilities);
        Assert.DoesNotContain("STARTTLS", capabilities);
        Assert.EndsWith("OK \"TLS negotiation successful\"", capabilities);
        Assert.Equal("NO \"TLS is already active\"", await c.SendAsync("STARTTLS"));
        Assert.Equal("OK \"Logged in\"", await c.SendAsync($"AUTHENTICATE \"PLAIN\" \"{RawSieveClient.Plain(Alice, TestNode.Password)}\""));
        Assert.Contains($"\"OWNER\" \"{Alice}\"", await c.SendAsync("CAPABILITY"));
    }

    [Fact]
    public async Task AnIdleSession_IsClosed_WithBye()
    {
        await using var node = await TestNode.StartAsync(configure: o => o.ManageSieve.IdleTimeoutSeconds = 1);
        await using var c = await RawSieveClient.LoginAsync(node.ManageSieve, Alice);
        Assert.Equal("BYE \"Idle timeout, closing connection\"", await c.ReadResponseAsync());
        Assert.True(await c.IsClosedAsync());
    }

    [Fact]
    public async Task DataPipelinedAfterStartTls_ClosesTheConnection()
    {
        await using var node = await TestNode.StartAsync();
        await using var c = await RawSieveClient.ConnectAsync(node.ManageSieve);
        Assert.Equal("BYE \"Data after STARTTLS\"", await c.SendAsync("STARTTLS\r\nLISTSCRIPTS"));
        Assert.True(await c.IsClosedAsync());
    }

    [Fact]
    public async Task Unauthenticate_Logout_AndNoopTags()
    {
        await using var node = await TestNode.StartAsync();
        await using var c = await RawSieveClient.LoginAsync(node.ManageSieve, Alice);
        Assert.Equal("OK (TAG \"STARTTLS-SYNC-42\") \"Done\"", await c.SendAsync("NOOP \"STARTTLS-SYNC-42\""));
        Assert.Equal("OK \"Unauthenticated\"", await c.SendAsync("UNAUTHENTICATE"));
        Assert.Equal("NO \"LISTSCRIPTS needs authentication first\"", await c.SendAsync("LISTSCRIPTS"));
        Assert.Equal("OK \"Logout completed\"", await c.SendAsync("LOGOUT"));
        Assert.True(await c.IsClosedAsync());
    }

    /// <summary>PUTSCRIPT and CHECKSCRIPT refuse what the checker refuses, with its message; the SIEVE capability is its list.</summary>
    [Fact]
    public async Task TheChecker_RefusesBadScripts_WithItsMessage()
    {
        await using var node = await TestNode.StartAsync();
        var checker = new SieveChecker(s => s.Contains("bogus", StringComparison.Ordinal) ? "line 2: unknown command \"bogus\"" : null, ["fileinto", "vacation"]);
        await using var server = new ManageSieveServer(node.Store, node.Directory, node.Host.Certificate, new ManageSieveOptions(), checker, devMode: true);
        var ep = server.Start(new IPEndPoint(IPAddress.Loopback, 0), CancellationToken.None);
        await using var c = await RawSieveClient.LoginAsync(ep, Alice);
        Assert.Contains("\"SIEVE\" \"fileinto vacation\"", c.Greeting);
        Assert.Equal("NO \"line 2: unknown command \\\"bogus\\\"\"", await c.SendAsync($"PUTSCRIPT \"s\" {Literal("keep;\r\nbogus;\r\n")}"));
        Assert.Equal("NO \"line 2: unknown command \\\"bogus\\\"\"", await c.SendAsync($"CHECKSCRIPT {Literal("keep;\r\nbogus;\r\n")}"));
        Assert.Equal("OK \"Script is valid\"", await c.SendAsync($"CHECKSCRIPT {Literal("keep;\r\n")}"));
        Assert.Equal("OK \"Listscripts completed\"", await c.SendAsync("LISTSCRIPTS"));
    }
}
