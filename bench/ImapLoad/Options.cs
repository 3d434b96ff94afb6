using System.Globalization;

namespace ImapLoad;

internal sealed class Options
{
    public const string Usage =
        "usage: ImapLoad mixed --port N [--sessions 10] [--commands 20000] [--users 10]\n" +
        "       ImapLoad idle --port N --pid PID[,PID...] [--connections 500] [--users 10] [--settle 3]\n" +
        "       ImapLoad fill-maildir --dir MAILDIR [--messages 50000] [--user big@bench.test]\n" +
        "       ImapLoad append --port N [--user big@bench.test] [--messages 50000] [--sessions 10] [--sync-literals no]\n" +
        "       ImapLoad search --port N [--user big@bench.test] [--messages 50000] [--runs 5]\n" +
        "       common: [--host 127.0.0.1] [--domain bench.test] [--user-prefix u] [--password bench-password] [--timeout 600]";

    public string Mode { get; private set; } = "";
    public string Host { get; private set; } = "127.0.0.1";
    public int Port { get; private set; }
    public int Sessions { get; private set; } = 10;
    public int Commands { get; private set; } = 20000;
    public int Users { get; private set; } = 10;
    public int Connections { get; private set; } = 500;
    public int SettleSeconds { get; private set; } = 3;
    public List<int> Pids { get; } = [];
    public string? Dir { get; private set; }
    public int Messages { get; private set; } = 50000;
    public int Runs { get; private set; } = 5;
    public string Domain { get; private set; } = "bench.test";
    public string UserPrefix { get; private set; } = "u";
    public string? UserOption { get; private set; }
    public string User => UserOption ?? "big@" + Domain;
    public string Password { get; private set; } = "bench-password";
    public int TimeoutSeconds { get; private set; } = 600;
    /// <summary>append: send synchronizing literals even when the server offers LITERAL+.</summary>
    public bool SyncLiterals { get; private set; }

    public static Options Parse(string[] args)
    {
        var o = new Options();
        if (args.Length == 0 || args[0] is not ("mixed" or "idle" or "fill-maildir" or "append" or "search"))
        {
            throw new ArgumentException("first argument must be mixed, idle, fill-maildir, append or search");
        }
        o.Mode = args[0];
        for (var i = 1; i < args.Length; i++)
        {
            var key = args[i];
            if (i + 1 >= args.Length)
            {
                throw new ArgumentException($"missing value for {key}");
            }
            var v = args[++i];
            switch (key)
            {
                case "--host": o.Host = v; break;
                case "--port": o.Port = Int(key, v, 1); break;
                case "--sessions": o.Sessions = Int(key, v, 1); break;
                case "--commands": o.Commands = Int(key, v, 1); break;
                case "--users": o.Users = Int(key, v, 1); break;
                case "--connections": o.Connections = Int(key, v, 1); break;
                case "--settle": o.SettleSeconds = Int(key, v, 0); break;
                case "--pid": o.Pids.AddRange(v.Split(',').Select(p => Int(key, p, 1))); break;
                case "--dir": o.Dir = v; break;
                case "--messages": o.Messages = Int(key, v, 1); break;
                case "--runs": o.Runs = Int(key, v, 1); break;
                case "--domain": o.Domain = v; break;
                case "--user-prefix": o.UserPrefix = v; break;
                case "--user": o.UserOption = v; break;
                case "--password": o.Password = v; break;
                case "--timeout": o.TimeoutSeconds = Int(key, v, 1); break;
                case "--sync-literals": o.SyncLiterals = v == "yes" ? true : v == "no" ? false : throw new ArgumentException("--sync-literals needs yes or no"); break;
                default: throw new ArgumentException($"unknown option {key}");
            }
        }
        if (o.Port == 0 && o.Mode != "fill-maildir")
        {
            throw new ArgumentException("--port is required");
        }
        if (o.Sessions > o.Commands)
        {
            throw new ArgumentException("--commands must be at least --sessions");
        }
        return o;
    }

    private static int Int(string key, string v, int min) =>
        int.TryParse(v, NumberStyles.None, CultureInfo.InvariantCulture, out var n) && n >= min
            ? n
            : throw new ArgumentException($"{key} needs an integer >= {min}, got '{v}'");
}
