using System.Net;
using System.Net.Security;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using System.Text;
using Appliance.Hosting;
using Appliance.Pop3;

namespace Appliance.Tests.Pop3;

/// <summary>A real Pop3Server on 127.0.0.1:0 (plain+STLS and implicit TLS) over the fakes.</summary>
internal sealed class Pop3TestHost : IAsyncDisposable
{
    public const string User = "alice@example.com";
    public const string Password = "secret pass";

    private static readonly Lazy<X509Certificate2> SharedCertificate = new(CreateCertificate);

    private Pop3TestHost(Pop3Server server, FakeMailStore store, FakeAuthenticator auth, int port, int tlsPort)
    {
        Server = server;
        Store = store;
        Authenticator = auth;
        Port = port;
        TlsPort = tlsPort;
    }

    public Pop3Server Server { get; }

    public FakeMailStore Store { get; }

    public FakeAuthenticator Authenticator { get; }

    public int Port { get; }

    public int TlsPort { get; }

    public static X509Certificate2 Certificate => SharedCertificate.Value;

    public static async Task<Pop3TestHost> StartAsync(bool devMode = true, Pop3Options? options = null, NLog.ILogger? logger = null)
    {
        var store = new FakeMailStore();
        var auth = new FakeAuthenticator().Add(User, Password).Add("bob@example.com", "bobpw");
        var server = new Pop3Server(store, auth, Certificate, options ?? new Pop3Options(), devMode, "pop.test", logger);
        var plain = await server.StartAsync(new IPEndPoint(IPAddress.Loopback, 0), implicitTls: false, CancellationToken.None);
        var tls = await server.StartAsync(new IPEndPoint(IPAddress.Loopback, 0), implicitTls: true, CancellationToken.None);
        return new Pop3TestHost(server, store, auth, plain.Port, tls.Port);
    }

    public async Task<RawPop3Client> ConnectAsync(bool implicitTls = false)
    {
        var client = await RawPop3Client.ConnectAsync(implicitTls ? TlsPort : Port, implicitTls);
        Assert.Equal("+OK pop.test POP3 ready", await client.ReadLineAsync());
        return client;
    }

    public ValueTask DisposeAsync() => Server.DisposeAsync();

    private static X509Certificate2 CreateCertificate()
    {
        using var key = RSA.Create(2048);
        var request = new CertificateRequest("CN=pop.test", key, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName("pop.test");
        san.AddIpAddress(IPAddress.Loopback);
        request.CertificateExtensions.Add(san.Build());
        using var cert = request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddDays(30));
        return X509CertificateLoader.LoadPkcs12(cert.Export(X509ContentType.Pfx), null);
    }
}

/// <summary>A byte-level POP3 client for transcript tests.</summary>
internal sealed class RawPop3Client : IAsyncDisposable
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(10);

    private readonly TcpClient _tcp;
    private Stream _stream;
    private readonly List<byte> _buffer = [];

    private RawPop3Client(TcpClient tcp, Stream stream)
    {
        _tcp = tcp;
        _stream = stream;
    }

    public static async Task<RawPop3Client> ConnectAsync(int port, bool implicitTls)
    {
        var tcp = new TcpClient();
        await tcp.ConnectAsync(IPAddress.Loopback, port);
        var client = new RawPop3Client(tcp, tcp.GetStream());
        if (implicitTls)
        {
            await client.StartTlsAsync();
        }

        return client;
    }

    public async Task StartTlsAsync()
    {
        var ssl = new SslStream(_stream, leaveInnerStreamOpen: false, (_, _, _, _) => true);
        using var cts = new CancellationTokenSource(Timeout);
        await ssl.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = "pop.test" }, cts.Token);
        _stream = ssl;
    }

    public bool IsTls => _stream is SslStream;

    public Task SendAsync(string text) => SendBytesAsync(Encoding.UTF8.GetBytes(text));

    public async Task SendBytesAsync(byte[] bytes)
    {
        using var cts = new CancellationTokenSource(Timeout);
        await _stream.WriteAsync(bytes, cts.Token);
        await _stream.FlushAsync(cts.Token);
    }

    /// <summary>Sends one command line and returns the first reply line.</summary>
    public async Task<string> CommandAsync(string line)
    {
        await SendAsync(line + "\r\n");
        return await ReadLineAsync();
    }

    /// <summary>One line without its CRLF; asserts the server used CRLF.</summary>
    public async Task<string> ReadLineAsync()
    {
        var bytes = await ReadUntilAsync("\r\n"u8.ToArray());
        return Encoding.UTF8.GetString(bytes, 0, bytes.Length - 2);
    }

    /// <summary>Raw bytes of a multi-line body up to and including the terminating ".CRLF".</summary>
    public Task<byte[]> ReadMultiLineAsync() => ReadUntilAsync("\r\n.\r\n"u8.ToArray(), alreadyAtLineStart: true);

    /// <summary>Lines of a multi-line body without the terminator.</summary>
    public async Task<string[]> ReadLinesAsync()
    {
        var body = Encoding.UTF8.GetString(await ReadMultiLineAsync());
        return body[..^3].Split("\r\n")[..^1];
    }

    /// <summary>Null when the server closed the connection; otherwise the next line.</summary>
    public async Task<string?> ReadLineOrEofAsync()
    {
        try
        {
            return await ReadLineAsync();
        }
        catch (EndOfStreamException)
        {
            return null;
        }
        catch (IOException)
        {
            return null;
        }
    }

    public async Task<byte[]> ReadUntilAsync(byte[] terminator, bool alreadyAtLineStart = false)
    {
        using var cts = new CancellationTokenSource(Timeout);
        var chunk = new byte[8192];
        while (true)
        {
            int index = IndexOf(terminator, alreadyAtLineStart);
            if (index >= 0)
            {
                var result = _buffer.GetRange(0, index).ToArray();
                _buffer.RemoveRange(0, index);
                return result;
            }

            int read;
            try
            {
                read = await _stream.ReadAsync(chunk, cts.Token);
            }
            catch (OperationCanceledException)
            {
                throw new TimeoutException("timed out; received so far: " + Encoding.UTF8.GetString(_buffer.ToArray()));
            }

            if (read == 0)
            {
                throw new EndOfStreamException();
            }

            _buffer.AddRange(chunk.AsSpan(0, read));
        }
    }

    private int IndexOf(byte[] terminator, bool atLineStart)
    {
        var data = _buffer.ToArray();
        if (atLineStart && data.AsSpan().StartsWith(".\r\n"u8))
        {
            return 3;
        }

        int i = data.AsSpan().IndexOf(terminator);
        return i < 0 ? -1 : i + terminator.Length;
    }

    public async ValueTask DisposeAsync()
    {
        await _stream.DisposeAsync();
        _tcp.Dispose();
    }
}
