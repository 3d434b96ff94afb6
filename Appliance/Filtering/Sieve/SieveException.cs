namespace Appliance.Filtering.Sieve;

/// <summary>
/// A script that cannot be accepted: the message says what to change and starts with the line
/// ("line 3: unknown command \"filein\""), so ManageSieve can hand it to the user as it is.
/// </summary>
public sealed class SieveException(string message, int line) : Exception($"line {line}: {message}")
{
    /// <summary>The 1-based line of the script the error is on.</summary>
    public int Line { get; } = line;
}
