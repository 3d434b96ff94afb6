using System.IO.Pipelines;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography.X509Certificates;
using System.Text;

namespace Appliance.Hosting;

/// <summary>
/// The byte transport under a POP3 or IMAP session: the socket, then TLS (implicit or after
/// STARTTLS/STLS) and compression (IMAP COMPRESS) layered as streams, with a PipeReader and
/// PipeWriter on top. A layer change completes the old pipes and builds new ones on the new
/// stream, so nothing read in the clear is ever taken as protected input.
/// </summary>
internal sealed class SessionConnection
{
    private readonly Socket _socket;
    private readonly NetworkStream _network;
    private Stream _stream;

    public SessionConnection(Socket socket)
    {
        _socket = socket;
        _network = new NetworkStream(socket, ownsSocket: true);
        _stream = _network;
        (Reader, Writer) = CreatePipes(_network);
    }

    public PipeReader Reader { get; private set; }
    public PipeWriter Writer { get; private set; }
    public bool IsTls { get; private set; }

    /// <summary>
    /// Whether a plaintext password (LOGIN, USER/PASS, SASL PLAIN) may be taken: over TLS, or in
    /// dev mode from a loopback address. The one rule of IMAP, POP3 and ManageSieve.
    /// </summary>
    public static bool PlaintextAllowed(bool tls, bool devMode, System.Net.IPAddress remote) =>
        tls || devMode && System.Net.IPAddress.IsLoopback(remote);

    /// <summary>True when the client has already sent more bytes (a command pipelined after STARTTLS: refuse it).</summary>
    public bool HasBufferedInput()
    {
        if (!Reader.TryRead(out var pending)) return false;
        bool any = pending.Buffer.Length > 0;
        Reader.AdvanceTo(pending.Buffer.Start, pending.Buffer.End);
        return any;
    }

    /// <summary>RFC 8314 / RFC 2595 / RFC 9051 §6.2.1: TLS over the same connection, then fresh pipes.</summary>
    public async Task StartTlsAsync(X509Certificate2 certificate, CancellationToken ct)
    {
        var ssl = (SslStream)await ReplaceStreamAsync(s => new SslStream(s, leaveInnerStreamOpen: false));
        await ssl.AuthenticateAsServerAsync(
            new SslServerAuthenticationOptions { ServerCertificate = certificate, ClientCertificateRequired = false }, ct);
        IsTls = true;
    }

    /// <summary>Puts a stream layer (e.g. compression) over the current one, from the next byte on.</summary>
    public async Task<Stream> ReplaceStreamAsync(Func<Stream, Stream> wrap)
    {
        await Reader.CompleteAsync();
        await Writer.CompleteAsync();
        _stream = wrap(_stream);
        (Reader, Writer) = CreatePipes(_stream);
        return _stream;
    }

    /// <summary>Best effort last line (BYE, -ERR) to a peer that may be gone or not reading.</summary>
    public async Task TrySendFinalAsync(string line)
    {
        try
        {
            using var cts = new CancellationTokenSource(TimeSpan.FromSeconds(2));
            Encoding.UTF8.GetBytes(line + "\r\n", Writer);
            await Writer.FlushAsync(cts.Token);
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException or InvalidOperationException)
        {
            // The peer is gone or not reading; nothing more to tell it.
        }
    }

    public async Task CloseAsync()
    {
        try
        {
            await Reader.CompleteAsync();
            await Writer.CompleteAsync();
        }
        catch (Exception ex) when (ex is IOException or SocketException or OperationCanceledException or ObjectDisposedException)
        {
            // Flushing the last bytes to a vanished peer.
        }

        try
        {
            _socket.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
        }

        try
        {
            await _stream.DisposeAsync();
        }
        catch (Exception ex) when (ex is IOException or SocketException or ObjectDisposedException)
        {
            // A compressed stream writes its trailer on dispose; the peer may be gone.
        }
        await _network.DisposeAsync();
    }

    private static (PipeReader, PipeWriter) CreatePipes(Stream stream) =>
        (PipeReader.Create(stream, new StreamPipeReaderOptions(bufferSize: 4096, minimumReadSize: 1024, leaveOpen: true)),
         PipeWriter.Create(stream, new StreamPipeWriterOptions(minimumBufferSize: 4096, leaveOpen: true)));
}
