using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Appliance.Directory;
using Appliance.Hosting;
using Appliance.Store;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Primitives;

namespace Appliance.Web.Webmail;

// Implementation notes
// In a pair the browser talks to one node (the webmail's address), but a mailbox's partition
// or the db unit may be active on the other. Such a request is forwarded whole, the way IMAP
// sessions are: over a cluster session connection (ClusterManager.ForwardAsync, authenticated
// with the pair's secret) the front node names the user and hands over its session's id, CSRF
// token and password; the back node keeps a session of its own under the same id (uploads made
// through it wait there for the message that takes them), answers with a one-time token, and
// joins the connection to its own Kestrel on an internal loopback port. The front node then
// speaks HTTP over that connection (HttpClient with the stream as its connection), the request
// carrying the token in X-Appliance-Forwarded, and copies the answer back to the browser as it
// comes (so the event stream works too). The back node trusts the token only on the internal
// port, skips the CSRF check the front node made, and never forwards a forwarded request again.

/// <summary>Forwards webmail requests to the other node of a pair, and serves the ones it forwards here.</summary>
public sealed class WebmailForwarding(ISessionForwarder? forwarder, WebmailSessions sessions, MailDirectory directory) : IForwardedSessionHost
{
    public const string Protocol = "webmail";
    public const string Header = "X-Appliance-Forwarded";
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("webmail");
    private static readonly HashSet<string> HopByHop = new(StringComparer.OrdinalIgnoreCase) { "Connection", "Keep-Alive", "Transfer-Encoding", "Date", "Server" };
    private readonly ConcurrentDictionary<string, string> _tokens = new(StringComparer.Ordinal); // token → session id

    /// <summary>The loopback port forwarded requests are joined to (WebServer's internal listener); 0 until it listens.</summary>
    public int InternalPort { get; set; }

    public bool CanForward => forwarder is not null;

    /// <summary>The session a request forwarded by the peer acts for, or null when the request came from a browser.</summary>
    public string? ForwardedSessionId(HttpContext ctx) =>
        InternalPort > 0 && ctx.Connection.LocalPort == InternalPort && IPAddress.IsLoopback(ctx.Connection.LocalIpAddress ?? IPAddress.None)
        && ctx.Request.Headers[Header].ToString() is { Length: > 0 } token && _tokens.TryGetValue(token, out var id) ? id : null;

    // ---- front: the node the browser reached ----

    /// <summary>Sends the request to the peer as the session's user and copies the peer's answer to the browser.</summary>
    public async Task ForwardAsync(HttpContext ctx, WebmailSession session, MailUser user)
    {
        // Ends with the server too (a forwarded event stream would hold a stopping node).
        using var ends = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted,
            ctx.RequestServices.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping);
        var ct = ends.Token;
        using var request = new HttpRequestMessage(new HttpMethod(ctx.Request.Method), "http://peer" + ctx.Request.Path + ctx.Request.QueryString);
        if (ctx.Request.ContentLength > 0 || ctx.Request.Headers.TransferEncoding.Count > 0)
        {
            request.Content = new StreamContent(ctx.Request.Body);
            if (ctx.Request.ContentType is { } type) request.Content.Headers.TryAddWithoutValidation("Content-Type", type);
            if (ctx.Request.ContentLength is { } length) request.Content.Headers.ContentLength = length;
        }
        using var response = await SendAsync(ctx, session, user, request, ct);
        ctx.Response.StatusCode = (int)response.StatusCode;
        foreach (var (name, values) in response.Headers.Concat(response.Content.Headers))
            if (!HopByHop.Contains(name)) ctx.Response.Headers[name] = new StringValues([.. values]);
        await using var body = await response.Content.ReadAsStreamAsync(ct);
        var buffer = new byte[16 * 1024];
        try
        {
            int n;
            // Chunk by chunk, flushed: the event stream must reach the browser as it comes.
            while ((n = await body.ReadAsync(buffer, ct)) > 0)
            {
                await ctx.Response.Body.WriteAsync(buffer.AsMemory(0, n), ct);
                await ctx.Response.Body.FlushAsync(ct);
            }
        }
        catch (Exception ex) when (ex is IOException or ObjectDisposedException or HttpRequestException or OperationCanceledException)
        {
            // The browser left, or the peer went away mid-answer, or this node is stopping: the
            // browser gets a cut answer (an event stream reconnects).
            if (!ctx.RequestAborted.IsCancellationRequested) ctx.Abort();
        }
    }

    /// <summary>
    /// One request to the peer's webmail as the session's user: the answer, whose headers have
    /// arrived (the caller reads the body and disposes it). A peer that cannot be reached or
    /// refuses is a <see cref="WebmailException"/> 503.
    /// </summary>
    public async Task<HttpResponseMessage> SendAsync(HttpContext ctx, WebmailSession session, MailUser user, HttpRequestMessage request, CancellationToken ct)
    {
        if (forwarder is null) throw new WebmailException(503, "your mailbox is served by the other node, which cannot be reached from here");
        ForwardedSession forwarded;
        try
        {
            forwarded = await forwarder.ForwardAsync(new ForwardedLogin(Protocol, user, ctx.Connection.RemoteIpAddress ?? IPAddress.Loopback, ctx.Request.IsHttps,
                session.Id + "\n" + session.Csrf + "\n" + session.Password), ct);
        }
        catch (UnitUnavailableException) { throw new WebmailException(503, "your mailbox is served by the other node, which cannot be reached at the moment; try again in a few seconds"); }
        if (forwarded.Refusal is { } refusal || forwarded.Stream is not { } stream)
        {
            await forwarded.DisposeAsync();
            throw new WebmailException(503, "the other node would not serve your mailbox: " + (forwarded.Refusal?.Text ?? "no connection"));
        }
        try
        {
            var token = await ReadLineAsync(stream, ct);
            request.Headers.TryAddWithoutValidation(Header, token);
            // The connection is this one request's: HttpClient speaks HTTP/1.1 over it and closes it with the answer.
            var handler = new SocketsHttpHandler
            {
                ConnectCallback = (_, _) => ValueTask.FromResult(stream),
                UseCookies = false, AllowAutoRedirect = false, UseProxy = false, AutomaticDecompression = DecompressionMethods.None,
            };
            var client = new HttpClient(handler, disposeHandler: true) { Timeout = Timeout.InfiniteTimeSpan };
            // A peer declared dead ends the connection, whatever is reading it.
            var dead = forwarded.PeerLost.Register(static s => ((Stream)s!).Dispose(), stream);
            try
            {
                var response = await client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct);
                response.Content = new OwnedContent(response.Content, client, dead);
                return response;
            }
            catch
            {
                await dead.DisposeAsync();
                client.Dispose();
                throw;
            }
        }
        catch (Exception ex) when (ex is IOException or HttpRequestException or ObjectDisposedException or OperationCanceledException && !ct.IsCancellationRequested)
        {
            await forwarded.DisposeAsync();
            throw new WebmailException(503, "the other node stopped answering; try again in a few seconds");
        }
    }

    private static async Task<string> ReadLineAsync(Stream stream, CancellationToken ct)
    {
        var line = new StringBuilder();
        var one = new byte[1];
        while (line.Length < 200)
        {
            if (await stream.ReadAsync(one, ct) == 0) throw new IOException("the peer closed the connection");
            if (one[0] == '\n') return line.ToString();
            line.Append((char)one[0]);
        }
        throw new IOException("the peer's answer is not a token");
    }

    /// <summary>The peer's answer body, which also ends the one-request client (and the connection) when disposed.</summary>
    private sealed class OwnedContent : HttpContent
    {
        private readonly HttpContent inner;
        private readonly HttpClient client;
        private readonly CancellationTokenRegistration dead;

        public OwnedContent(HttpContent inner, HttpClient client, CancellationTokenRegistration dead)
        {
            this.inner = inner;
            this.client = client;
            this.dead = dead;
            foreach (var (name, values) in inner.Headers) Headers.TryAddWithoutValidation(name, values);
        }

        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context) => inner.CopyToAsync(stream, context);
        protected override Task SerializeToStreamAsync(Stream stream, TransportContext? context, CancellationToken ct) => inner.CopyToAsync(stream, context, ct);
        protected override Task<Stream> CreateContentReadStreamAsync() => inner.ReadAsStreamAsync();
        protected override Task<Stream> CreateContentReadStreamAsync(CancellationToken ct) => inner.ReadAsStreamAsync(ct);

        protected override bool TryComputeLength(out long length)
        {
            length = inner.Headers.ContentLength ?? 0;
            return inner.Headers.ContentLength is not null;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                dead.Dispose();
                inner.Dispose();
                client.Dispose();
            }
            base.Dispose(disposing);
        }
    }

    // ---- back: the node holding the unit ----

    public async Task ServeForwardedAsync(ForwardedLogin login, Socket socket, Func<ForwardRefusal?, Task> answer)
    {
        var parts = login.Tag.Split('\n', 3);
        if (InternalPort == 0 || parts.Length != 3 || directory.FindMailbox(login.User.Address) is not { Enabled: true } box)
        {
            await answer(new ForwardRefusal(null, InternalPort == 0 ? "the webmail is not listening yet" : "no such mailbox here"));
            return;
        }
        sessions.Adopt(parts[0], login.User.Address, parts[2], box.PasswordHash, parts[1]);
        var token = BrowserSession.NewSecret();
        _tokens[token] = parts[0];
        try
        {
            await answer(null);
            await using var front = new NetworkStream(socket, ownsSocket: false);
            await front.WriteAsync(Encoding.ASCII.GetBytes(token + "\n"));
            using var kestrel = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
            await kestrel.ConnectAsync(new IPEndPoint(IPAddress.Loopback, InternalPort));
            await using var back = new NetworkStream(kestrel, ownsSocket: false);
            using var done = new CancellationTokenSource();
            var up = front.CopyToAsync(back, done.Token);
            var down = back.CopyToAsync(front, done.Token);
            await Task.WhenAny(up, down);
            await done.CancelAsync();
            kestrel.Close();
            socket.Close();
            try { await Task.WhenAll(up, down); }
            catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException) { }
        }
        catch (Exception ex) when (ex is IOException or SocketException)
        {
            Log.Debug("forwarded webmail request of {0}: {1}", login.User.Address, ex.Message);
        }
        finally { _tokens.TryRemove(token, out _); }
    }
}
