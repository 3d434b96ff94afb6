using System.ComponentModel;
using System.Diagnostics;
using System.Text;

namespace Appliance.Cluster;

/// <summary>
/// Runs a system tool (ip, arping, a fence agent) to completion without blocking a thread.
/// Output is bounded (a chatty tool is drained, not stored); cancelling kills the whole process
/// tree, since tools such as fence agents spawn others (ipmitool, snmpget).
/// </summary>
internal static class SystemCommand
{
    private const int MaxOutputChars = 64 * 1024;

    public readonly record struct Result(int ExitCode, string Stdout, string Stderr)
    {
        /// <summary>The tool's own error line, for messages ("RTNETLINK answers: …").</summary>
        public string ErrorLine => (Stderr.Trim().Split('\n').LastOrDefault(l => l.Length > 0) ?? $"exit code {ExitCode}").Trim();
    }

    /// <summary>Runs <paramref name="file"/> with <paramref name="stdin"/> as its whole input (none: closed at
    /// once); cancelling kills it. A missing tool is reported as exit code 127 (as a shell would) so that
    /// callers treat it like any other failure of the tool.</summary>
    public static async Task<Result> RunAsync(string file, IEnumerable<string> args, CancellationToken ct, string? stdin = null)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        // Tools print their errors in English, so messages and logs read the same everywhere.
        psi.Environment["LC_ALL"] = "C";
        Process process;
        try
        {
            process = Process.Start(psi)!;
        }
        catch (Win32Exception ex)
        {
            return new Result(127, "", $"{file}: {ex.Message}");
        }
        using (process)
        {
            var stdout = ReadBoundedAsync(process.StandardOutput);
            var stderr = ReadBoundedAsync(process.StandardError);
            try
            {
                await WriteInputAsync(process.StandardInput, stdin, ct);
                await process.WaitForExitAsync(ct);
            }
            catch (OperationCanceledException)
            {
                // Nothing may keep running (switching outlets, say) after the caller gave up.
                try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                throw;
            }
            return new Result(process.ExitCode, await stdout, await stderr);
        }
    }

    private static async Task WriteInputAsync(StreamWriter input, string? text, CancellationToken ct)
    {
        try
        {
            if (text is not null)
            {
                await input.WriteAsync(text.AsMemory(), ct);
                await input.FlushAsync(ct);
            }
        }
        catch (IOException)
        {
            // The tool exited without reading its input; its exit code and output tell why.
        }
        finally
        {
            input.Close();
        }
    }

    private static async Task<string> ReadBoundedAsync(StreamReader reader)
    {
        var text = new StringBuilder();
        var buffer = new char[4096];
        int read;
        while ((read = await reader.ReadAsync(buffer)) > 0)
        {
            if (text.Length < MaxOutputChars)
                text.Append(buffer, 0, Math.Min(read, MaxOutputChars - text.Length));
        }
        return text.ToString();
    }
}
