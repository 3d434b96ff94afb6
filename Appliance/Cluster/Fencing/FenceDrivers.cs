using System.Text.RegularExpressions;

namespace Appliance.Cluster.Fencing;

/// <summary>Checks the Cluster:Fencing section and builds its driver, so a bad configuration stops
/// the start instead of surfacing only when the peer has died.</summary>
public static class FenceDrivers
{
    // A fence-agents package installs into /usr/sbin, which a service's PATH often lacks.
    private static readonly string[] ExtraAgentDirectories = ["/usr/sbin", "/sbin", "/usr/local/sbin"];

    /// <exception cref="InvalidOperationException">The options name an unknown driver or miss what it needs.</exception>
    public static IFenceDriver Create(FencingOptions options) => Create(options, NLog.LogManager.GetLogger("fence"));

    internal static IFenceDriver Create(FencingOptions options, NLog.Logger log)
    {
        ArgumentNullException.ThrowIfNull(options);
        var driver = (options.Driver ?? "").Trim().ToLowerInvariant();
        if (driver is "http" or "agent" && options.TimeoutSeconds <= 0)
            throw Invalid($"Cluster:Fencing:TimeoutSeconds must be positive (is {options.TimeoutSeconds})");
        return driver switch
        {
            "" or "none" => new NoFenceDriver(),
            "http" => CreateHttp(options, log),
            "agent" => new AgentFenceDriver(options, ResolveAgent(options), log),
            _ => throw Invalid($"Cluster:Fencing:Driver \"{options.Driver}\" is unknown (use none, http or agent)"),
        };
    }

    private static HttpFenceDriver CreateHttp(FencingOptions options, NLog.Logger log)
    {
        if (string.IsNullOrWhiteSpace(options.OffUrl))
            throw Invalid("Cluster:Fencing:OffUrl is required with the http driver");
        CheckUrl("OffUrl", options.OffUrl, options);
        if (options.StatusUrl.Length > 0)
            CheckUrl("StatusUrl", options.StatusUrl, options);
        try
        {
            HttpMethod.Parse(options.OffMethod);
        }
        catch (FormatException)
        {
            throw Invalid($"Cluster:Fencing:OffMethod \"{options.OffMethod}\" is not an HTTP method");
        }
        Regex pattern;
        try
        {
            pattern = new Regex(options.OffPattern, RegexOptions.CultureInvariant, TimeSpan.FromSeconds(1));
        }
        catch (ArgumentException ex)
        {
            throw Invalid($"Cluster:Fencing:OffPattern is not a valid regular expression: {ex.Message}");
        }
        if (options.Password.Length > 0 && options.User.Length == 0)
            throw Invalid("Cluster:Fencing:Password is set without User");
        return new HttpFenceDriver(options, pattern, log);
    }

    private static void CheckUrl(string name, string template, FencingOptions options)
    {
        // Placeholders are filled with harmless text so the rest of the template can be checked now.
        var sample = template.Replace("{node}", "node", StringComparison.Ordinal).Replace("{plug}", "1", StringComparison.Ordinal);
        if (!Uri.TryCreate(sample, UriKind.Absolute, out var uri) || uri.Scheme is not ("http" or "https"))
            throw Invalid($"Cluster:Fencing:{name} must be an absolute http:// or https:// URL");
        if (template.Contains("{plug}", StringComparison.Ordinal) && options.Plugs.Count == 0)
            throw Invalid($"Cluster:Fencing:{name} uses {{plug}} but Cluster:Fencing:Plugs is empty");
    }

    private static string ResolveAgent(FencingOptions options)
    {
        var agent = options.Agent.Trim();
        if (agent.Length == 0)
            throw Invalid("Cluster:Fencing:Agent is required with the agent driver (e.g. fence_ipmilan)");
        foreach (var (key, value) in options.AgentArgs)
        {
            // One key=value per stdin line: a newline would smuggle in a second argument.
            if (key.Length == 0 || key.Contains('=') || key.AsSpan().IndexOfAny('\r', '\n') >= 0 || value.AsSpan().IndexOfAny('\r', '\n') >= 0)
                throw Invalid($"Cluster:Fencing:AgentArgs \"{key}\" is not a single key=value line");
            if (key is "action" or "plug" or "port")
                throw Invalid($"Cluster:Fencing:AgentArgs must not set \"{key}\" (the driver sets the action; plugs come from Cluster:Fencing:Plugs)");
        }
        var candidates = agent.Contains('/')
            ? [agent]
            : (Environment.GetEnvironmentVariable("PATH") ?? "").Split(':', StringSplitOptions.RemoveEmptyEntries)
                .Concat(ExtraAgentDirectories).Select(dir => Path.Combine(dir, agent));
        foreach (var path in candidates)
        {
            if (File.Exists(path) && IsExecutable(path))
                return Path.GetFullPath(path);
        }
        throw Invalid($"Cluster:Fencing:Agent \"{agent}\" was not found or is not executable (install fence-agents or give a full path)");
    }

    private static bool IsExecutable(string path) => OperatingSystem.IsWindows()
        || (File.GetUnixFileMode(path) & (UnixFileMode.UserExecute | UnixFileMode.GroupExecute | UnixFileMode.OtherExecute)) != 0;

    private static InvalidOperationException Invalid(string message) => new(message);
}
