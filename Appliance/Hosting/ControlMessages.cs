using System.Text.Json.Serialization;

namespace Appliance.Hosting;

/// <summary>One management command sent by the CLI over the control socket: its arguments and what it read from stdin.</summary>
public sealed record ControlRequest(string[] Args, string? Input);

/// <summary>A line of output (Exit null), or the final status (Exit set).</summary>
public sealed record ControlReply(string? Text, bool Error = false, int? Exit = null);

public sealed record NodeIdentity(string Name, string Id, long Created);

[JsonSerializable(typeof(ControlRequest))]
[JsonSerializable(typeof(ControlReply))]
[JsonSerializable(typeof(NodeIdentity))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, WriteIndented = false, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
public sealed partial class ControlJson : JsonSerializerContext;
