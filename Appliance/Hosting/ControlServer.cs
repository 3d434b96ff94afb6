using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace Appliance.Hosting;

/// <summary>
/// The local control socket (data/control.sock, mode 0600): the CLI sends one JSON request line
/// and reads JSON reply lines (output, then the exit status). Only the owner of the data
/// directory can connect.
/// </summary>
public sealed class ControlServer(string socketPath, ControlCommands commands) : IAsyncDisposable
{
    private const int MaxRequestBytes = 64 * 1024 * 1024;
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("control");
    private readonly CancellationTokenSource _stop = new();
    private Socket? _listener;
    private Task? _accepting;

    public void Start()
    {
        if (File.Exists(socketPath)) File.Delete(socketPath);
        _listener = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        _listener.Bind(new UnixDomainSocketEndPoint(socketPath));
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(socketPath, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        _listener.Listen(16);
        _accepting = AcceptLoopAsync();
    }

    private async Task AcceptLoopAsync()
    {
        while (!_stop.IsCancellationRequested)
        {
            Socket client;
            try { client = await _listener!.AcceptAsync(_stop.Token); }
            catch (Exception) when (_stop.IsCancellationRequested) { return; }
            catch (SocketException ex) { Log.Warn(ex, "control accept failed"); continue; }
            _ = Task.Run(() => ServeAsync(client));
        }
    }

    private async Task ServeAsync(Socket client)
    {
        await using var stream = new NetworkStream(client, ownsSocket: true);
        var writer = new StreamWriter(stream, new UTF8Encoding(false)) { AutoFlush = true, NewLine = "\n" };
        try
        {
            var line = await ReadLineAsync(stream);
            var request = line is null ? null : JsonSerializer.Deserialize(line, ControlJson.Default.ControlRequest);
            if (request is null)
            {
                await Send(writer, new ControlReply("bad request", true, 2));
                return;
            }
            var replies = System.Threading.Channels.Channel.CreateUnbounded<ControlReply>();
            var run = Task.Run(async () =>
            {
                try
                {
                    var code = await commands.ExecuteAsync(request.Args, request.Input, (text, error) => replies.Writer.TryWrite(new ControlReply(text, error)));
                    replies.Writer.TryWrite(new ControlReply(null, false, code));
                }
                catch (Exception ex)
                {
                    Log.Error(ex, "control command failed: {0}", string.Join(' ', request.Args));
                    replies.Writer.TryWrite(new ControlReply("internal error: " + ex.Message, true, 1));
                }
                finally { replies.Writer.TryComplete(); }
            });
            await foreach (var reply in replies.Reader.ReadAllAsync()) await Send(writer, reply);
            await run;
        }
        catch (Exception ex) when (ex is IOException or SocketException or JsonException)
        {
            Log.Debug(ex, "control connection dropped");
        }
    }

    private static Task Send(StreamWriter writer, ControlReply reply) =>
        writer.WriteLineAsync(JsonSerializer.Serialize(reply, ControlJson.Default.ControlReply));

    private static async Task<string?> ReadLineAsync(Stream stream)
    {
        var buffer = new MemoryStream();
        var one = new byte[8192];
        while (buffer.Length < MaxRequestBytes)
        {
            var n = await stream.ReadAsync(one);
            if (n == 0) break;
            var nl = Array.IndexOf(one, (byte)'\n', 0, n);
            if (nl >= 0) { buffer.Write(one, 0, nl); return Encoding.UTF8.GetString(buffer.GetBuffer(), 0, (int)buffer.Length); }
            buffer.Write(one, 0, n);
        }
        return null;
    }

    public async ValueTask DisposeAsync()
    {
        _stop.Cancel();
        _listener?.Dispose();
        if (_accepting is not null) await _accepting;
        try { File.Delete(socketPath); } catch (IOException) { }
    }
}
