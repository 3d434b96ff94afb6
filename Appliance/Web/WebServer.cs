using System.Net;
using System.Security.Cryptography.X509Certificates;
using Appliance.Provisioning;
using Appliance.Store;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace Appliance.Web;

/// <summary>What the webmail needs from the host: where to send mail through, and its limits.</summary>
/// <param name="Submission">The node's submission listener (STARTTLS), or null without one.</param>
/// <param name="MaxMessageSize">Largest message a user may send (Submission:MaxMessageSize).</param>
/// <param name="CheckSieve">The Sieve parser's check: the error with its line, or null.</param>
public sealed record WebmailSetup(IPEndPoint? Submission, long MaxMessageSize, Hosting.WebmailOptions Options, Func<string, string?> CheckSieve);

/// <summary>
/// Kestrel on Listen:Http (and Listen:Https with the node's certificate): the provisioning API
/// the admin panel, and the webmail (at /, Web/Webmail). Outside dev mode the API and the panel
/// answer only over HTTPS, or over HTTP from loopback; so does the webmail's sign-in.
/// </summary>
public sealed class WebServer : IAsyncDisposable
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("web");
    private readonly WebApplication _app;

    private WebServer(WebApplication app) => _app = app;

    public IReadOnlyDictionary<string, IPEndPoint> Endpoints { get; private set; } = new Dictionary<string, IPEndPoint>();

    /// <summary>Every route served (method, path template): the OpenAPI document must describe those under /api.</summary>
    public IReadOnlyList<(string Method, string Path)> Routes =>
        [.. _app.Services.GetRequiredService<Microsoft.AspNetCore.Routing.EndpointDataSource>().Endpoints
            .OfType<Microsoft.AspNetCore.Routing.RouteEndpoint>()
            .SelectMany(e => (e.Metadata.GetMetadata<Microsoft.AspNetCore.Routing.IHttpMethodMetadata>()?.HttpMethods ?? ["GET"])
                .Select(m => (m, "/" + (e.RoutePattern.RawText ?? "").TrimStart('/'))))];

    public static async Task<WebServer> StartAsync(IPAddress address, int httpPort, int httpsPort, int adminPort, X509Certificate2 certificate, bool devMode,
        ProvisioningService provisioning, MailStore store, string nodeName, Relay.IQueueCommands queue, Monitoring.MonitoringService monitoring,
        Hosting.MonitoringOptions monitoringOptions, Cluster.ClusterManager? cluster, WebmailSetup webmail, CancellationToken ct)
    {
        Microsoft.AspNetCore.Server.Kestrel.Core.ListenOptions? adminListener = null, internalListener = null;
        var boundAdminPort = -1; // known once listening (the configured port may be 0 in tests)
        var internalPort = -1;
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { Args = [], ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.Logging.AddProvider(new NLogBridge());
        builder.WebHost.UseKestrel(k =>
        {
            k.AddServerHeader = false;
            k.Limits.MaxRequestBodySize = 64 * 1024 * 1024; // a bulk of 10,000 mailboxes is ~1 MB
            if (httpPort >= 0) k.Listen(address, httpPort);
            if (httpsPort >= 0) k.Listen(address, httpsPort, l => l.UseHttps(certificate));
            if (adminPort >= 0) k.Listen(address, adminPort, l => { adminListener = l; l.UseHttps(certificate); });
            // In a pair: where webmail requests the other node forwards are joined (WebmailForwarding).
            if (cluster is not null) k.Listen(IPAddress.Loopback, 0, l => internalListener = l);
        });
        builder.Services.ConfigureHttpJsonOptions(o => o.SerializerOptions.TypeInfoResolverChain.Insert(0, WebJson.Default));
        var app = builder.Build();

        var sessions = new AdminSessions(TimeProvider.System);
        var api = new ApiEndpoints(provisioning, store, sessions, nodeName);
        app.Use(async (ctx, next) =>
        {
            var h = ctx.Response.Headers;
            h.XContentTypeOptions = "nosniff";
            h.XFrameOptions = "DENY";
            h["Referrer-Policy"] = "no-referrer";
            var path = ctx.Request.Path;
            var privileged = path.StartsWithSegments("/api") || path.StartsWithSegments("/admin") || path.StartsWithSegments("/metrics");
            // The internal listener takes forwarded webmail calls only.
            if (internalPort >= 0 && ctx.Connection.LocalPort == internalPort && !path.StartsWithSegments("/webmail/api"))
            {
                ctx.Response.StatusCode = StatusCodes.Status404NotFound;
                return;
            }
            if (privileged) h.CacheControl = "no-store";
            // With an admin listener, the panel and the API answer there only (not on the public web ports).
            if (boundAdminPort >= 0 && privileged != (ctx.Connection.LocalPort == boundAdminPort))
            {
                ctx.Response.StatusCode = StatusCodes.Status404NotFound;
                return;
            }
            if (privileged && !devMode && !ctx.Request.IsHttps && ctx.Connection.RemoteIpAddress is { } remote && !IPAddress.IsLoopback(remote))
            {
                await Problems.Result(Problems.Forbidden("the admin panel and the API are served over HTTPS only")).ExecuteAsync(ctx);
                return;
            }
            await next(ctx);
        });
        var webmailEndpoints = new Webmail.WebmailEndpoints(store, provisioning, new Webmail.WebmailComposer(store, webmail.Submission, certificate, webmail.MaxMessageSize),
            webmail.Options, webmail.CheckSieve, devMode, TimeProvider.System, cluster);
        webmailEndpoints.Map(app);
        api.Map(app);
        new AdminEndpoints(provisioning, sessions, api).Map(app);
        new QueueEndpoints(queue, api).Map(app);
        new MonitoringEndpoints(monitoring, monitoringOptions, store, cluster, api).Map(app);

        await app.StartAsync(ct);
        if (adminListener is not null) boundAdminPort = adminListener.IPEndPoint!.Port;
        internalPort = internalListener?.IPEndPoint!.Port ?? -1;
        if (internalPort > 0)
        {
            webmailEndpoints.Forwarding.InternalPort = internalPort;
            cluster!.HostSessions(Webmail.WebmailForwarding.Protocol, webmailEndpoints.Forwarding);
        }
        var server = new WebServer(app);
        var endpoints = new Dictionary<string, IPEndPoint>();
        foreach (var url in app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [])
        {
            var uri = new Uri(url);
            var ep = new IPEndPoint(IPAddress.Parse(uri.Host.Trim('[', ']')), uri.Port);
            if (uri.Port == internalPort) continue;
            var name = uri.Port == boundAdminPort ? "admin" : uri.Scheme;
            endpoints.TryAdd(name, ep);
        }
        server.Endpoints = endpoints;
        return server;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    /// <summary>ASP.NET Core's log messages into NLog (warnings and above).</summary>
    private sealed class NLogBridge : ILoggerProvider
    {
        public ILogger CreateLogger(string categoryName) => new Bridge(categoryName);
        public void Dispose() { }

        private sealed class Bridge(string category) : ILogger
        {
            public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;
            public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;
            public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
            {
                if (!IsEnabled(logLevel)) return;
                var level = logLevel >= LogLevel.Error ? NLog.LogLevel.Error : NLog.LogLevel.Warn;
                WebServer.Log.Log(level, exception, "{0}: {1}", category, formatter(state, exception));
            }
        }
    }
}
