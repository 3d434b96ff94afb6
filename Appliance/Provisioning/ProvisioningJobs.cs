using System.Text.Json.Serialization;

namespace Appliance.Provisioning;

/// <summary>A bulk request's progress, as GET /api/v1/jobs/ID shows it.</summary>
public sealed class Job
{
    public string Id { get; set; } = "";
    public string Kind { get; set; } = "";
    public string Actor { get; set; } = "";
    public long Created { get; set; }
    /// <summary>running, done or failed.</summary>
    public string State { get; set; } = "running";
    /// <summary>validating, hashing, applying, done.</summary>
    public string Phase { get; set; } = "validating";
    public long Done { get; set; }
    public long Total { get; set; }
    public List<JobError> Errors { get; set; } = [];
    /// <summary>The journal entry once the request is journaled.</summary>
    public long? Seq { get; set; }
}

/// <summary>Why one line (CSV import) or entry (bulk call) was refused.</summary>
public sealed class JobError
{
    public int? Line { get; set; }
    public int? Index { get; set; }
    public string Reason { get; set; } = "";
}

[JsonSerializable(typeof(Job))]
[JsonSerializable(typeof(List<JobError>))]
[JsonSourceGenerationOptions(PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase, DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull)]
internal sealed partial class ProvisioningApiJson : JsonSerializerContext;
