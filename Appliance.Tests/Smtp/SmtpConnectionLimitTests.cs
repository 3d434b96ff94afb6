using System.Net.Sockets;
using System.Text;

namespace Appliance.Tests.Smtp;

/// <summary>Smtp:MaxConnectionsPerIp: one address cannot hold more sessions than allowed, and its slots come back.</summary>
public sealed class SmtpConnectionLimitTests
{
    [Fact]
    public async Task ConnectionsOverTheLimit_Get421_AndSlotsAreReleasedOnClose()
    {
        await using var node = await TestNode.StartAsync(["alice"], o => o.Smtp.MaxConnectionsPerIp = 2);
        await using var first = await RawSmtp.ConnectAsync(node.Smtp);
        await using (var second = await RawSmtp.ConnectAsync(node.Smtp))
        {
            using var third = new TcpClient();
            await third.ConnectAsync(node.Smtp);
            var buffer = new byte[512];
            var n = await third.GetStream().ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(30));
            Assert.StartsWith("421 4.7.0", Encoding.ASCII.GetString(buffer, 0, n));
            Assert.Equal(0, await third.GetStream().ReadAsync(buffer).AsTask().WaitAsync(TimeSpan.FromSeconds(30)));
            Assert.StartsWith("221", await second.SendAsync("QUIT"));
        }

        // The closed session's slot is free again, and the first session was never disturbed.
        await using var again = await ConnectWithRetryAsync(node);
        Assert.StartsWith("250", await first.SendAsync("NOOP"));
        Assert.StartsWith("250", await again.SendAsync("NOOP"));
    }

    /// <summary>The server frees a slot when it notices the close; give it a moment by retrying.</summary>
    private static async Task<RawSmtp> ConnectWithRetryAsync(TestNode node)
    {
        for (var attempt = 0; ; attempt++)
        {
            try { return await RawSmtp.ConnectAsync(node.Smtp); }
            catch (Exception) when (attempt < 50) { await Task.Delay(100); }
        }
    }
}
