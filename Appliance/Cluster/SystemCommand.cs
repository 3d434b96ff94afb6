using System.ComponentModel;
using System.Diagnostics;

namespace Appliance.Cluster;

/// <summary>Runs a system tool (ip, arping) to completion without blocking a thread.</summary>
internal static class SystemCommand
{
    public readonly record struct Result(int ExitCode, string Stdout, string Stderr)
    {
        /// <summary>The tool's own error line, for messages ("RTNETLINK answers: …").</summary>
        public string ErrorLine => (Stderr.Trim().Split('\n').LastOrDefault(l => l.Length > 0) ?? $"exit code {ExitCode}").Trim();
    }

    /// <summary>Runs <paramref name="file"/>; cancelling kills it. A missing tool is reported as exit code 127
    /// (as a shell would) so that callers treat it like any other failure of the tool.</summary>
    public static async Task<Result> RunAsync(string file, IEnumerable<string> args, CancellationToken ct)
    {
        var psi = new ProcessStartInfo(file)
        {
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
            var stdout = process.StandardOutput.ReadToEndAsync(CancellationToken.None);
            var stderr = process.StandardError.ReadToEndAsync(CancellationToken.None);
            try
            {
                await process.WaitForExitAsync(ct);
            }
            catch (OperationCanceledException)
            {
                try { process.Kill(entireProcessTree: true); } catch (InvalidOperationException) { }
                throw;
            }
            return new Result(process.ExitCode, await stdout, await stderr);
        }
    }
}
