using Xunit.Abstractions;

namespace Appliance.Tests;

/// <summary>
/// Gate for tests that run a Debian tool as the real peer (Nagios plugins, promtool), like
/// <see cref="RootOnly"/>: without the tool the test returns early, except in CI (CI=true, where
/// .ci/run installs it), where the test fails.
/// </summary>
public static class HostTool
{
    public static bool Available(string path, ITestOutputHelper output)
    {
        if (File.Exists(path)) return true;
        if (Environment.GetEnvironmentVariable("CI") == "true")
            Assert.Fail($"{path} is missing, and CI=true: .ci/run must install it");
        output.WriteLine($"skipped: {path} is not installed (.ci/run installs it)");
        return false;
    }
}
