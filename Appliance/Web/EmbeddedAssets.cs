using Microsoft.AspNetCore.Http;

namespace Appliance.Web;

/// <summary>The admin panel's and the webmail's pages and scripts, embedded in the binary (they work offline).</summary>
internal static class EmbeddedAssets
{
    /// <summary>
    /// The resource <paramref name="prefix"/>/<paramref name="file"/> with its type, served under
    /// <paramref name="policy"/> and revalidated on every load (a new binary brings new assets); 404 when there is none.
    /// </summary>
    public static IResult Result(HttpContext ctx, string prefix, string file, string policy)
    {
        var stream = typeof(EmbeddedAssets).Assembly.GetManifestResourceStream(prefix + "/" + file);
        if (stream is null) return Results.NotFound();
        var type = Path.GetExtension(file) switch
        {
            ".html" => "text/html; charset=utf-8",
            ".js" => "text/javascript; charset=utf-8",
            ".css" => "text/css; charset=utf-8",
            ".svg" => "image/svg+xml",
            ".png" => "image/png",
            _ => "application/octet-stream",
        };
        ctx.Response.Headers.ContentSecurityPolicy = policy;
        ctx.Response.Headers.CacheControl = "no-cache";
        return Results.Stream(stream, type);
    }
}
