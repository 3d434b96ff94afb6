using Appliance.Directory;
using Appliance.Provisioning;
using Microsoft.AspNetCore.Http;

namespace Appliance.Web;

/// <summary>RFC 9457 problem documents: the one way the API says no.</summary>
public static class Problems
{
    private const string Base = "https://appliance.invalid/problems/";

    public static Problem BadRequest(string detail, IReadOnlyList<JobError>? errors = null) => new(Base + "bad-request", "Bad request", 400, detail, errors);
    public static Problem Unauthorized(string detail) => new(Base + "unauthorized", "Not authenticated", 401, detail);
    public static Problem TotpRequired() => new(Base + "totp-required", "A TOTP code is required", 401, "enter the code from your authenticator app");
    public static Problem Forbidden(string detail) => new(Base + "forbidden", "Forbidden", 403, detail);
    public static Problem NotFound(string detail) => new(Base + "not-found", "Not found", 404, detail);
    public static Problem Conflict(string detail) => new(Base + "conflict", "Conflict", 409, detail);
    public static Problem TooMany(string detail) => new(Base + "throttled", "Too many attempts", 429, detail);

    public static Problem From(DirectoryException ex) => ex.Kind switch
    {
        DirectoryError.NotFound => NotFound(ex.Message),
        DirectoryError.Conflict => Conflict(ex.Message),
        DirectoryError.Unavailable => new(Base + "unavailable", "Unavailable", 503, ex.Message),
        _ => BadRequest(ex.Message),
    };

    public static IResult Result(Problem p) =>
        Results.Json(p, WebJson.Default.Problem, contentType: "application/problem+json", statusCode: p.Status);
}
