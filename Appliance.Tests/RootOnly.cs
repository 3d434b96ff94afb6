using Xunit.Abstractions;

namespace Appliance.Tests;

/// <summary>
/// Gate for tests that need root (network namespaces, addresses on links). xunit 2 has no
/// dynamic skip, so such a test returns early outside CI; in CI (CI=true, where .ci/run runs
/// as root) a missing privilege fails the test instead of silently passing it.
/// </summary>
public static class RootOnly
{
    /// <summary>True when the test can run; false (after telling why) when it should return early.</summary>
    public static bool Available(ITestOutputHelper output)
    {
        if (Environment.IsPrivilegedProcess) return true;
        if (Environment.GetEnvironmentVariable("CI") == "true")
            Assert.Fail("this test needs root, and CI=true: CI must run the tests as root");
        output.WriteLine("skipped: needs root (runs in CI)");
        return false;
    }
}
