using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace Appliance.Tests.Filtering;

/// <summary>
/// Debian's rspamd, started for a test in the foreground with a config of its own in a temp
/// directory: one normal worker on 127.0.0.1 (no controller, proxy or fuzzy worker), no plugins
/// (so no redis and no RBL/DNS lookups), a resolver pointed at a closed local port, and three Lua
/// rules of ours: <see cref="SpamToken"/> (20 points, over reject), <see cref="SuspectToken"/>
/// (7 points, over add header) and APPLIANCE_ENVELOPE, worth nothing, whose options say what
/// rspamd read of the envelope. Gate with <c>HostTool.Available(Rspamd.Path, output)</c>.
/// </summary>
public sealed class Rspamd : IAsyncDisposable
{
    public const string Path = "/usr/bin/rspamd";
    public const string SpamToken = "APPLIANCE-TEST-SPAM";
    public const string SpamSymbol = "APPLIANCE_TEST_SPAM";
    public const string SuspectToken = "APPLIANCE-TEST-SUSPECT";
    public const string SuspectSymbol = "APPLIANCE_TEST_SUSPECT";
    public const string EnvelopeSymbol = "APPLIANCE_ENVELOPE";

    private const string Rules = """
        -- The spam token anywhere in the message: 20 points, over reject (15).
        rspamd_config.APPLIANCE_TEST_SPAM = {
          callback = function(task)
            if tostring(task:get_content()):find('APPLIANCE-TEST-SPAM', 1, true) then
              return true, 'APPLIANCE-TEST-SPAM'
            end
            return false
          end,
          score = 20.0,
          description = 'The Appliance tests spam token',
          group = 'appliance',
        }
        -- The suspect token: 7 points, over add header (6), under reject.
        rspamd_config.APPLIANCE_TEST_SUSPECT = {
          callback = function(task)
            return tostring(task:get_content()):find('APPLIANCE-TEST-SUSPECT', 1, true) ~= nil
          end,
          score = 7.0,
          description = 'The Appliance tests suspect token',
          group = 'appliance',
        }
        -- What rspamd read of the envelope, as the options of a symbol worth nothing.
        rspamd_config.APPLIANCE_ENVELOPE = {
          callback = function(task)
            local opts = {}
            local function add(k, v) if v ~= nil then table.insert(opts, k .. '=' .. tostring(v)) end end
            add('ip', task:get_from_ip())
            add('helo', task:get_helo())
            local from = task:get_from('smtp')
            if from and from[1] then add('from', from[1].addr) end
            for _, r in ipairs(task:get_recipients('smtp') or {}) do add('rcpt', r.addr) end
            add('hostname', task:get_hostname())
            add('user', task:get_user())
            add('qid', task:get_queue_id())
            return true, 1.0, opts
          end,
          score = 0.0,
          description = 'The envelope as rspamd read it',
          group = 'appliance',
        }
        """;

    private readonly string _dir;
    private readonly int _port;
    private Process? _process;

    private Rspamd(string dir, int port)
    {
        _dir = dir;
        _port = port;
    }

    /// <summary>The normal worker's URL, for <c>new RspamdClient(rspamd.Url, …)</c>.</summary>
    public Uri Url => new($"http://127.0.0.1:{_port}/");

    public static async Task<Rspamd> StartAsync()
    {
        var dir = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "rspamd-test-" + Guid.NewGuid().ToString("N")[..8]);
        System.IO.Directory.CreateDirectory(dir);
        var rspamd = new Rspamd(dir, FreeTcpPort());
        string In(string name) => System.IO.Path.Combine(dir, name);
        await File.WriteAllTextAsync(In("rules.lua"), Rules);
        // The URL extractor's public-suffix list: two lines instead of Debian's ~10,000, which
        // take rspamd ten seconds to compile at every start.
        await File.WriteAllTextAsync(In("tld.dat"), "com\ntest\n");
        // Nothing listens on the nameserver's port: any lookup fails at once, none leaves the host.
        await File.WriteAllTextAsync(In("rspamd.conf"), $$"""
            options {
              filters = "";
              dns {
                nameserver = ["127.0.0.1:{{FreeUdpPort()}}"];
                timeout = 0.1s;
                retransmits = 1;
              }
              url_tld = "{{In("tld.dat")}}";
              tempdir = "{{dir}}";
              hs_cache_dir = "{{dir}}";
              cache_file = "{{In("symbols.cache")}}";
              local_addrs = [];
              allow_raw_input = true;
              task_timeout = 8s;
            }
            logging {
              type = "file";
              filename = "{{In("rspamd.log")}}";
              level = "info";
            }
            worker "normal" {
              bind_socket = "127.0.0.1:{{rspamd._port}}";
              count = 1;
              mime = true;
            }
            actions {
              reject = 15;
              add_header = 6;
              greylist = 4;
            }
            lua = "{{In("rules.lua")}}";
            """);
        await rspamd.StartProcessAsync();
        return rspamd;
    }

    private async Task StartProcessAsync()
    {
        var psi = new ProcessStartInfo(Path) { UseShellExecute = false, RedirectStandardOutput = true, RedirectStandardError = true };
        // -f: stay in the foreground (our child); -i: workers may run as root (CI runs the tests as
        // root, and the test directory is not _rspamd's); DBDIR/RUNDIR: nothing under /var.
        foreach (var arg in new[] { "-f", "-i", "-c", System.IO.Path.Combine(_dir, "rspamd.conf"), "--var", "DBDIR=" + _dir, "--var", "RUNDIR=" + _dir })
            psi.ArgumentList.Add(arg);
        _process = Process.Start(psi)!;
        _process.OutputDataReceived += (_, _) => { };
        _process.ErrorDataReceived += (_, _) => { };
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        using var http = new HttpClient(new SocketsHttpHandler { UseProxy = false }) { Timeout = TimeSpan.FromSeconds(2) };
        for (var i = 0; i < 300; i++)
        {
            if (_process.HasExited) throw new InvalidOperationException($"rspamd exited {_process.ExitCode}: {await LogAsync()}");
            try
            {
                if (await http.GetStringAsync(new Uri(Url, "ping")) is var pong && pong.Trim() == "pong") return;
            }
            catch (Exception ex) when (ex is HttpRequestException or TaskCanceledException) { }
            await Task.Delay(100);
        }
        throw new TimeoutException($"rspamd did not answer /ping within 30 s: {await LogAsync()}");
    }

    private async Task<string> LogAsync()
    {
        var log = System.IO.Path.Combine(_dir, "rspamd.log");
        return File.Exists(log) ? await File.ReadAllTextAsync(log) : "(no log)";
    }

    /// <summary>Kills rspamd and its workers (as a crash would): the port stops answering.</summary>
    public async Task StopAsync()
    {
        if (_process is not { HasExited: false } p) return;
        p.Kill(entireProcessTree: true);
        await p.WaitForExitAsync();
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _process?.Dispose();
        try { System.IO.Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    private static int FreeTcpPort()
    {
        var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        var port = ((IPEndPoint)listener.LocalEndpoint).Port;
        listener.Stop();
        return port;
    }

    private static int FreeUdpPort()
    {
        using var socket = new Socket(AddressFamily.InterNetwork, SocketType.Dgram, ProtocolType.Udp);
        socket.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        return ((IPEndPoint)socket.LocalEndPoint!).Port;
    }
}
