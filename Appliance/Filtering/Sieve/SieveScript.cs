using System.Text;

namespace Appliance.Filtering.Sieve;

/// <summary>
/// A Sieve script (RFC 5228) checked when it is uploaded: syntax, require of supported extensions,
/// every command's and test's arguments, and the limits (source size, nesting, string length).
/// Immutable once parsed; one instance may be evaluated for many messages at once.
/// </summary>
public sealed class SieveScript
{
    internal IReadOnlyList<SieveNode> Commands { get; }
    internal IReadOnlySet<string> Required { get; }

    private SieveScript(IReadOnlyList<SieveNode> commands, IReadOnlySet<string> required)
    {
        Commands = commands;
        Required = required;
    }

    /// <summary>The extensions this implementation supports, in the order of the ManageSieve SIEVE capability.</summary>
    public static IReadOnlyList<string> Extensions => SieveCommands.Extensions;

    /// <summary>The extensions the script requires.</summary>
    public IReadOnlySet<string> RequiredExtensions => Required;

    /// <summary>Parses and validates a script; a SieveException says which line is wrong and why.</summary>
    public static SieveScript Parse(string source, int maxBytes = 64 * 1024)
    {
        var size = Encoding.UTF8.GetByteCount(source);
        if (size > maxBytes) throw new SieveException($"the script is {size} bytes, more than the limit of {maxBytes}", 1);
        var parser = new SieveParser(SieveLexer.Tokenize(source));
        var commands = parser.ParseScript();
        return new SieveScript(commands, parser.Required);
    }
}
