using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Appliance.Hosting;

namespace Appliance.Cli;

/// <summary>
/// The CLI side of the management commands: forwards the arguments (and stdin when the command
/// reads it) to the running node over its control socket, or runs them against a node's API
/// with a token (<c>--url</c>).
/// </summary>
public static class ControlClient
{
    /// <summary>What the command reads locally: a password line, or the CSV file of an import; null when the usage is wrong (said on stderr).</summary>
    private static async Task<(bool Ok, string? Input)> ReadInputAsync(string[] args, TextReader stdin, TextWriter stderr)
    {
        string? input = null;
        if (args.Contains("--password-stdin")) input = await stdin.ReadLineAsync() ?? "";
        if (args.Length > 0 && args[0] == "import")
        {
            if (args.Length < 2) { await stderr.WriteLineAsync("import: missing CSV file"); return (false, null); }
            if (!File.Exists(args[1])) { await stderr.WriteLineAsync($"import: {args[1]}: no such file"); return (false, null); }
            input = await File.ReadAllTextAsync(args[1]);
        }
        return (true, input);
    }

    /// <summary>
    /// Runs the command here against the node's API (<paramref name="url"/>, e.g.
    /// https://node1:8443/) with an API token: the same commands, output and exit codes as over
    /// the control socket; 3 when the node cannot be reached.
    /// </summary>
    public static async Task<int> RunOverApiAsync(Uri url, string token, bool insecure, string[] args, TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var (ok, input) = await ReadInputAsync(args, stdin, stderr);
        if (!ok) return 2;
        using var api = new ApiCommands(url, token, insecure);
        try
        {
            return await new ControlCommands(api, queue: api).ExecuteAsync(args, input, (text, error) => (error ? stderr : stdout).WriteLine(text));
        }
        catch (ApiUnreachableException ex)
        {
            await stderr.WriteLineAsync(ex.Message);
            return 3;
        }
    }

    /// <summary>
    /// <c>appliance check</c>: the node's answer as it is, and a node that is not running is
    /// CRITICAL (exit 2) with one status line, as a Nagios plugin must say it.
    /// </summary>
    public static async Task<int> CheckAsync(string socketPath, string[] args, TextWriter stdout)
    {
        using var socket = await ConnectAsync(socketPath);
        if (socket is null)
        {
            await stdout.WriteLineAsync($"APPLIANCE CRITICAL - the node is not running (no control socket at {socketPath})");
            return 2;
        }
        using var stderr = new StringWriter();
        var exit = await ExchangeAsync(socket, ["check", .. args], null, stdout, stderr);
        if (stderr.ToString().Trim() is { Length: > 0 } error)
        {
            await stdout.WriteLineAsync($"APPLIANCE UNKNOWN - {error.ReplaceLineEndings(" ")}");
            return 3;
        }
        return exit is >= 0 and <= 3 ? exit : 3;
    }

    public static async Task<int> RunAsync(string socketPath, string[] args, TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var (ok, input) = await ReadInputAsync(args, stdin, stderr);
        if (!ok) return 2;
        using var socket = await ConnectAsync(socketPath);
        if (socket is null)
        {
            await stderr.WriteLineAsync($"cannot reach the node: no control socket at {socketPath} (is `appliance run` running with this --data?)");
            return 3;
        }
        return await ExchangeAsync(socket, args, input, stdout, stderr);
    }

    /// <summary>A connection to the node's control socket, or null when no node listens there.</summary>
    private static async Task<Socket?> ConnectAsync(string socketPath)
    {
        var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        try
        {
            await socket.ConnectAsync(new UnixDomainSocketEndPoint(socketPath));
            return socket;
        }
        catch (SocketException)
        {
            socket.Dispose();
            return null;
        }
    }

    /// <summary>Sends one request and relays the node's lines to stdout/stderr; returns its exit code.</summary>
    private static async Task<int> ExchangeAsync(Socket socket, string[] args, string? input, TextWriter stdout, TextWriter stderr)
    {
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
