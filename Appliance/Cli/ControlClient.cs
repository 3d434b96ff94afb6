using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Appliance.Hosting;

namespace Appliance.Cli;

/// <summary>The CLI side of the control socket: forwards the arguments (and stdin when the command reads it) to the running node.</summary>
public static class ControlClient
{
    public static async Task<int> RunAsync(string socketPath, string[] args, TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        string? input = null;
        if (args.Contains("--password-stdin")) input = await stdin.ReadLineAsync() ?? "";
        if (args.Length > 0 && args[0] == "import")
        {
            if (args.Length < 2) { await stderr.WriteLineAsync("import: missing CSV file"); return 2; }
            if (!File.Exists(args[1])) { await stderr.WriteLineAsync($"import: {args[1]}: no such file"); return 2; }
            input = await File.ReadAllTextAsync(args[1]);
        }
        using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try { await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath)); }
        catch (SocketException)
        {
            await stderr.WriteLineAsync($"cannot reach the node: no control socket at {socketPath} (is `appliance run` running with this --data?)");
            return 3;
        }
        await using var stream = new NetworkStream(socket, ownsSocket: false);
        var request = JsonSerializer.Serialize(new ControlRequest(args, input), ControlJson.Default.ControlRequest) + "\n";
        await stream.WriteAsync(Encoding.UTF8.GetBytes(request));
        using var reader = new StreamReader(stream, Encoding.UTF8);
        while (await reader.ReadLineAsync() is { } line)
        {
            var reply = JsonSerializer.Deserialize(line, ControlJson.Default.ControlReply);
            if (reply is null) continue;
            if (reply.Text is not null) await (reply.Error ? stderr : stdout).WriteLineAsync(reply.Text);
            if (reply.Exit is { } code) return code;
        }
        await stderr.WriteLineAsync("the node closed the connection without an answer");
        return 1;
    }
}
