using NLog;
using NLog.Config;
using NLog.Targets;

namespace Appliance.Tests.Pop3;

/// <summary>One Info line per session, with what an administrator looks for.</summary>
public sealed class Pop3LoggingTests
{
    [Fact]
    public async Task SessionEnd_LogsOneInfoLine()
    {
        using var factory = new LogFactory();
        var memory = new MemoryTarget("memory") { Layout = "${level}|${message}" };
        var config = new LoggingConfiguration(factory);
        config.AddRuleForAllLevels(memory);
        factory.Configuration = config;

        await using var host = await Pop3TestHost.StartAsync(logger: factory.GetLogger("pop3"));
        host.Store.Add(Pop3TestHost.User, "Subject: a\r\n\r\nbody\r\n");
        host.Store.Add(Pop3TestHost.User, "Subject: b\r\n\r\nbody\r\n");
        await using (var client = await host.ConnectAsync())
        {
            Assert.StartsWith("+OK", await client.CommandAsync("USER " + Pop3TestHost.User));
            Assert.StartsWith("+OK", await client.CommandAsync("PASS " + Pop3TestHost.Password));
            Assert.StartsWith("+OK", await client.CommandAsync("RETR 1"));
            await client.ReadMultiLineAsync();
            Assert.StartsWith("+OK", await client.CommandAsync("DELE 1"));
            Assert.StartsWith("+OK", await client.CommandAsync("DELE 2"));
            Assert.StartsWith("+OK", await client.CommandAsync("QUIT"));
            Assert.Null(await client.ReadLineOrEofAsync());
        }

        await host.Server.StopAsync();
        var sessionLines = memory.Logs.Where(l => l.Contains("pop3 session", StringComparison.Ordinal)).ToList();
        var line = Assert.Single(sessionLines);
        Assert.Equal(
            $"Info|pop3 session remote=127.0.0.1 user={Pop3TestHost.User} tls=False retrieved=1 deleted=2 bytes=20 result=quit",
            line);
    }
}
