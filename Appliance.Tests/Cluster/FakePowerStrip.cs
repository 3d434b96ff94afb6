using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace Appliance.Tests.Cluster;

/// <summary>
/// A power strip on 127.0.0.1:0 speaking raw HTTP/1.1 like the ePower-style units:
/// <c>/outlet/N/off</c> switches outlet N off, <c>/outlet/N/status</c> answers "outlet N: ON|OFF".
/// </summary>
internal sealed class FakePowerStrip : IAsyncDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _accepting;

    public FakePowerStrip()
    {
        _listener.Start();
        _accepting = AcceptAsync();
    }

    public string BaseUrl => $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}";

    /// <summary>Outlet → "ON"/"OFF"; outlets not listed are on.</summary>
    public ConcurrentDictionary<string, string> Outlets { get; } = new();

    /// <summary>Request lines ("GET /outlet/2/off HTTP/1.1") and their Authorization header, in order.</summary>
    public ConcurrentQueue<(string RequestLine, string? Authorization)> Requests { get; } = new();

    /// <summary>Status code for the off request (a broken relay answers 500).</summary>
    public int OffStatus { get; set; } = 200;

    /// <summary>When false the off request is answered but the relay does not switch.</summary>
    public bool Switches { get; set; } = true;

    /// <summary>"Basic …" the strip demands, or null for no authentication.</summary>
    public string? RequiredAuthorization { get; set; }

    private async Task AcceptAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            TcpClient client;
            try
            {
                client = await _listener.AcceptTcpClientAsync(_stop.Token);
            }
            catch (OperationCanceledException)
            {
                return;
            }
            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(TcpClient client)
    {
        using var _ = client;
        var stream = client.GetStream();
        var reader = new StreamReader(stream, Encoding.ASCII);
        var requestLine = await reader.ReadLineAsync() ?? "";
        string? authorization = null;
        string? line;
        while (!string.IsNullOrEmpty(line = await reader.ReadLineAsync()))
        {
            if (line.StartsWith("Authorization:", StringComparison.OrdinalIgnoreCase))
                authorization = line["Authorization:".Length..].Trim();
        }
        Requests.Enqueue((requestLine, authorization));

        var (status, body) = Answer(requestLine.Split(' ')[1], authorization);
        var bytes = Encoding.ASCII.GetBytes(body);
        var head = $"HTTP/1.1 {status} X\r\nContent-Type: text/plain\r\nContent-Length: {bytes.Length}\r\nConnection: close\r\n\r\n";
        await stream.WriteAsync(Encoding.ASCII.GetBytes(head).Concat(bytes).ToArray());
    }

    private (int Status, string Body) Answer(string target, string? authorization)
    {
        if (RequiredAuthorization is not null && authorization != RequiredAuthorization)
            return (401, "unauthorized");
        var parts = target.Split('?')[0].Split('/', StringSplitOptions.RemoveEmptyEntries);
        if (parts is not ["outlet", var outlet, var verb])
            return (404, "no such page");
        outlet = Uri.UnescapeDataString(outlet);
        switch (verb)
        {
            case "off":
                if (OffStatus == 200 && Switches)
                    Outlets[outlet] = "OFF";
                return (OffStatus, OffStatus == 200 ? "done" : "relay error");
            case "status":
                return (200, $"outlet {outlet}: {Outlets.GetValueOrDefault(outlet, "ON")}");
            default:
                return (404, "no such page");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await _stop.CancelAsync();
        _listener.Stop();
        await _accepting;
        _stop.Dispose();
    }
}
