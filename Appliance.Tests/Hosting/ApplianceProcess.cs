using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text.RegularExpressions;

namespace Appliance.Tests.Hosting;

/// <summary>The real program (appliance.dll from the test output) run as a child process.</summary>
public sealed class ApplianceProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly List<string> _stdout = [];
    private readonly List<string> _stderr = [];
    private readonly SemaphoreSlim _newLine = new(0);

    private ApplianceProcess(Process process) => _process = process;

    public static string Dll => Path.Combine(AppContext.BaseDirectory, "appliance.dll");

    /// <summary>Environment for every child: no inherited APPLIANCE__ settings, every listener off but SMTP on an ephemeral port.</summary>
    public static Dictionary<string, string> DefaultEnvironment() => new()
    {
        ["APPLIANCE__Listen__Smtp"] = "0",
        ["APPLIANCE__Listen__Submission"] = "-1",
        ["APPLIANCE__Listen__Smtps"] = "-1",
        ["APPLIANCE__Listen__Imap"] = "-1",
        ["APPLIANCE__Listen__Imaps"] = "-1",
        ["APPLIANCE__Listen__Pop3"] = "-1",
        ["APPLIANCE__Listen__Pop3s"] = "-1",
        ["APPLIANCE__Listen__ManageSieve"] = "-1",
        ["APPLIANCE__Listen__Http"] = "-1",
        ["APPLIANCE__Listen__Https"] = "-1",
    };

    private static ProcessStartInfo StartInfo(IEnumerable<string> args, IDictionary<string, string>? env)
    {
        var psi = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        psi.ArgumentList.Add(Dll);
        foreach (var a in args) psi.ArgumentList.Add(a);
        foreach (var key in psi.Environment.Keys.Where(k => k.StartsWith("APPLIANCE__", StringComparison.OrdinalIgnoreCase)).ToList())
            psi.Environment.Remove(key);
        foreach (var (k, v) in env ?? DefaultEnvironment()) psi.Environment[k] = v;
        return psi;
    }

    /// <summary>Starts `appliance run …` and waits until it reports ready.</summary>
    public static async Task<ApplianceProcess> RunAsync(IEnumerable<string> args, IDictionary<string, string>? env = null)
    {
        var p = new ApplianceProcess(Process.Start(StartInfo(["run", .. args], env))!);
        p.Pump(p._process.StandardOutput, p._stdout);
        p.Pump(p._process.StandardError, p._stderr);
        await p.WaitForLineAsync(new Regex(@"node \S+ \(\S+\) ready"));
        return p;
    }

    /// <summary>Runs a management command to completion.</summary>
    public static async Task<(int Exit, string Stdout, string Stderr)> CommandAsync(IEnumerable<string> args, string? stdin = null)
    {
        using var p = Process.Start(StartInfo(args, null))!;
        if (stdin is not null) await p.StandardInput.WriteAsync(stdin);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(60));
        return (p.ExitCode, await stdout, await stderr);
    }

    private readonly List<Task> _pumps = [];

    private void Pump(StreamReader reader, List<string> into) => _pumps.Add(Task.Run(async () =>
    {
        while (await reader.ReadLineAsync() is { } line)
        {
            lock (into) into.Add(line);
            _newLine.Release();
        }
        _newLine.Release();
    }));

    public string Stdout { get { lock (_stdout) return string.Join("\n", _stdout); } }
    public string Stderr { get { lock (_stderr) return string.Join("\n", _stderr); } }

    public async Task<Match> WaitForLineAsync(Regex pattern)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (true)
        {
            lock (_stdout)
                foreach (var line in _stdout)
                    if (pattern.Match(line) is { Success: true } m) return m;
            if (_process.HasExited && _process.WaitForExit(1000) && !_newLine.Wait(0))
                Assert.Fail($"appliance exited ({_process.ExitCode}) before printing /{pattern}/:\n{Stdout}\n{Stderr}");
            if (DateTime.UtcNow > deadline) Assert.Fail($"no line /{pattern}/ within a minute:\n{Stdout}\n{Stderr}");
            await _newLine.WaitAsync(TimeSpan.FromSeconds(1));
        }
    }

    /// <summary>The SMTP port from the "smtp listening on ADDRESS:PORT" log line.</summary>
    public async Task<int> SmtpPortAsync() =>
        int.Parse((await WaitForLineAsync(new Regex(@"smtp listening on 127\.0\.0\.1:(\d+)"))).Groups[1].Value);

    /// <summary>Sends a signal with kill(1) and returns the exit code.</summary>
    public async Task<int> SignalAndWaitAsync(string signal)
    {
        using (var kill = Process.Start("kill", [$"-{signal}", _process.Id.ToString()]))
            await kill.WaitForExitAsync();
        await _process.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(30));
        // The output pumps may still hold the last lines the process wrote before it exited.
        await Task.WhenAll(_pumps).WaitAsync(TimeSpan.FromSeconds(30));
        return _process.ExitCode;
    }

    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}
