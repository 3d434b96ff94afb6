// Memory of a process tree from /proc: VmRSS (status) and Pss (smaps_rollup), summed over
// the given processes and all their descendants. RSS counts shared pages (libraries, the
// shared part of Dovecot's per-connection processes) once per process, so for a
// multi-process server it overstates; Pss splits each shared page among its sharers.
using System.Globalization;

namespace ImapLoad;

internal readonly record struct MemorySum(int Processes, long RssKb, long PssKb);

internal static class ProcessMemory
{
    public static MemorySum Sum(IReadOnlyList<int> roots)
    {
        var children = new Dictionary<int, List<int>>();
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), NumberStyles.None, CultureInfo.InvariantCulture, out var pid))
            {
                continue;
            }
            var ppid = ParentOf(pid);
            if (ppid > 0)
            {
                if (!children.TryGetValue(ppid, out var list))
                {
                    children[ppid] = list = [];
                }
                list.Add(pid);
            }
        }
        var seen = new HashSet<int>();
        var stack = new Stack<int>(roots);
        long rss = 0, pss = 0;
        while (stack.Count > 0)
        {
            var pid = stack.Pop();
            if (!seen.Add(pid))
            {
                continue;
            }
            rss += Field($"/proc/{pid}/status", "VmRSS:");
            pss += Field($"/proc/{pid}/smaps_rollup", "Pss:");
            if (children.TryGetValue(pid, out var list))
            {
                foreach (var child in list)
                {
                    stack.Push(child);
                }
            }
        }
        return new MemorySum(seen.Count, rss, pss);
    }

    private static int ParentOf(int pid)
    {
        try
        {
            // /proc/PID/stat: "pid (comm) state ppid ..."; comm may contain spaces and parentheses.
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            var rest = stat.AsSpan(stat.LastIndexOf(')') + 2);
            var fields = rest.ToString().Split(' ');
            return int.Parse(fields[1], NumberStyles.None, CultureInfo.InvariantCulture);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException or IndexOutOfRangeException)
        {
            return -1;
        }
    }

    /// <summary>The kB value of the first line starting with <paramref name="key"/>, 0 if none.</summary>
    private static long Field(string path, string key)
    {
        try
        {
            foreach (var line in File.ReadLines(path))
            {
                if (line.StartsWith(key, StringComparison.Ordinal))
                {
                    var parts = line.Split(' ', StringSplitOptions.RemoveEmptyEntries);
                    return long.Parse(parts[1], NumberStyles.None, CultureInfo.InvariantCulture);
                }
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
        }
        return 0;
    }
}
