using System.Diagnostics;

namespace Appliance.Tests;

/// <summary>Runs a host tool (ip, bash) for tests that build their own network namespaces.</summary>
public static class HostCommand
{
    public static Task<(int Exit, string Output)> RunAsync(string file, params string[] args) =>
        RunWithInputAsync(null, file, args);

    /// <summary>Runs <paramref name="file"/> with <paramref name="stdin"/> as its whole standard input.</summary>
    public static async Task<(int Exit, string Output)> RunWithInputAsync(string? stdin, string file, params string[] args)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (var a in args) psi.ArgumentList.Add(a);
        psi.Environment["LC_ALL"] = "C";
        using var p = Process.Start(psi)!;
        if (stdin is not null) await p.StandardInput.WriteAsync(stdin);
        p.StandardInput.Close();
        var stdout = p.StandardOutput.ReadToEndAsync();
        var stderr = p.StandardError.ReadToEndAsync();
        await p.WaitForExitAsync().WaitAsync(TimeSpan.FromSeconds(120));
        return (p.ExitCode, await stdout + await stderr);
    }

    /// <summary>Runs and fails the test when the command fails.</summary>
    public static async Task<string> MustAsync(string file, params string[] args)
    {
        var (exit, output) = await RunAsync(file, args);
        Assert.True(exit == 0, $"{file} {string.Join(' ', args)} exited {exit}: {output}");
        return output;
    }
}
