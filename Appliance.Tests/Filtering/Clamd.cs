using System.Diagnostics;
using System.Net.Sockets;
using System.Text;

namespace Appliance.Tests.Filtering;

/// <summary>
/// Debian's clamd, started for a test in a temp directory with a one-signature database the
/// test writes (a body signature of the EICAR test file, which ClamAV reports as
/// <see cref="Signature"/>): no freshclam, no Internet. Gate with
/// <c>HostTool.Available(Clamd.Path, output)</c>.
/// </summary>
public sealed class Clamd : IAsyncDisposable
{
    public const string Path = "/usr/sbin/clamd";
    /// <summary>The EICAR anti-virus test file: harmless, and detected by every scanner that knows it.</summary>
    public const string Eicar = @"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";
    public const string Signature = "Appliance.Test.EICAR.UNOFFICIAL";

    private readonly string _dir;
    private Process? _process;

    private Clamd(string dir) => _dir = dir;

    public string Socket => System.IO.Path.Combine(_dir, "clamd.sock");
    /// <summary>Antivirus:Clamd for a node.</summary>
    public string Address => "unix:" + Socket;

    public static async Task<Clamd> StartAsync()
    {
        var dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "clamd-test-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(System.IO.Path.Combine(dir, "db"));
        // A ClamAV body signature (.ndb): name, any file type, any offset, the bytes in hex.
        await File.WriteAllTextAsync(System.IO.Path.Combine(dir, "db", "appliance-test.ndb"),
            $"Appliance.Test.EICAR:0:*:{Convert.ToHexStringLower(Encoding.ASCII.GetBytes(Eicar))}\n");
        var clamd = new Clamd(dir);
        await File.WriteAllTextAsync(System.IO.Path.Combine(dir, "clamd.conf"), $"""
            LocalSocket {clamd.Socket}
            DatabaseDirectory {System.IO.Path.Combine(dir, "db")}
            TemporaryDirectory {dir}
            LogFile {System.IO.Path.Combine(dir, "clamd.log")}
            Foreground yes
            """);
        await clamd.StartProcessAsync();
        return clamd;
    }

    private async Task StartProcessAsync()
    {
        var psi = new ProcessStartInfo(Path) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        psi.ArgumentList.Add("--config-file=" + System.IO.Path.Combine(_dir, "clamd.conf"));
        _process = Process.Start(psi)!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        for (var i = 0; i < 300; i++)
        {
            if (_process.HasExited) throw new InvalidOperationException($"clamd exited {_process.ExitCode}: {await LogAsync()}");
            if (await PingsAsync()) return;
            await Task.Delay(100);
        }
        throw new TimeoutException($"clamd did not answer PING within 30 s: {await LogAsync()}");
    }

    private async Task<bool> PingsAsync()
    {
        if (!File.Exists(Socket)) return false;
        try
        {
            using var s = new System.Net.Sockets.Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
            await s.ConnectAsync(new UnixDomainSocketEndPoint(Socket));
            await s.SendAsync("zPING\0"u8.ToArray());
            var buffer = new byte[16];
            var n = await s.ReceiveAsync(buffer);
            return Encoding.ASCII.GetString(buffer, 0, n).StartsWith("PONG", StringComparison.Ordinal);
        }
        catch (SocketException) { return false; }
    }

    private async Task<string> LogAsync()
    {
        var log = System.IO.Path.Combine(_dir, "clamd.log");
        return File.Exists(log) ? await File.ReadAllTextAsync(log) : "(no log)";
    }

    /// <summary>Kills clamd (as a crash would): its socket stops answering.</summary>
    public async Task StopAsync()
    {
        if (_process is not { HasExited: false } p) return;
        p.Kill();
        await p.WaitForExitAsync();
        File.Delete(Socket);
    }

    public Task StartAgainAsync() => StartProcessAsync();

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _process?.Dispose();
        try { System.IO.Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }
}
