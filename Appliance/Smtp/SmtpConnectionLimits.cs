using System.Buffers;
using System.IO.Pipelines;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using SmtpServer;
using SmtpServer.IO;
using SmtpServer.Net;
using System.Collections.Concurrent;
using System.Net;
using SmtpServer.Protocol;

namespace Appliance.Smtp;

/// <summary>
/// Limits the SmtpServer engine does not have of its own:
/// - connections per client address: past <c>Smtp:MaxConnectionsPerIp</c> a new connection is
///   answered "421 4.7.0 Too many connections from your address" and closed;
/// - command line length: outside DATA a line longer than <see cref="MaxCommandLine"/> gets
///   "500 5.5.2 Line too long" and the connection is closed, so a client cannot make the
///   server buffer megabytes of a single command (the engine only bounds lines by the
///   message size).
/// Implementation notes: the listener wraps each session's pipe; the wrapper knows whether the
/// session is inside DATA from the engine's command events, follows the engine's new input
/// reader after a TLS upgrade, and releases its address's count when the session disposes it.
/// </summary>
internal sealed class SmtpConnectionLimitsFactory(EndpointListenerFactory inner, int maxConnectionsPerIp) : IEndpointListenerFactory
{
    public const int MaxCommandLine = 4096;
    private static readonly byte[] TooMany = "421 4.7.0 Too many connections from your address\r\n"u8.ToArray();
    private readonly ConcurrentDictionary<IPAddress, int> _perIp = new();

    public IEndpointListener CreateListener(IEndpointDefinition endpointDefinition) =>
        new Listener(inner.CreateListener(endpointDefinition), this);

    private bool TryEnter(IPAddress ip)
    {
        var n = _perIp.AddOrUpdate(ip, 1, (_, c) => c + 1);
        if (n <= maxConnectionsPerIp) return true;
        Leave(ip);
        return false;
    }

    private void Leave(IPAddress ip)
    {
        if (_perIp.AddOrUpdate(ip, 0, (_, c) => c - 1) <= 0) _perIp.TryRemove(new KeyValuePair<IPAddress, int>(ip, 0));
    }

    private sealed class Listener(IEndpointListener inner, SmtpConnectionLimitsFactory limits) : IEndpointListener
    {
        public async Task<ISecurableDuplexPipe> GetPipeAsync(ISessionContext context, CancellationToken cancellationToken)
        {
            var pipe = await inner.GetPipeAsync(context, cancellationToken);
            var ip = SmtpSessionState.Remote(context)?.Address;
            if (ip is null || limits.TryEnter(ip)) return new LimitedPipe(pipe, context, () => { if (ip is not null) limits.Leave(ip); });
            try
            {
                await pipe.Output.WriteAsync(TooMany, cancellationToken);
                await pipe.Output.CompleteAsync();
            }
            catch (IOException) { }
            pipe.Dispose();
            // The engine reports a failed accept as a faulted session and goes on with a fresh
            // session context (a context must not be reused for another connection).
            throw new ConnectionRefusedException($"smtp refused ip={ip}: over {limits.MaxConnectionsPerIp} connections");
        }

        public void Dispose() => inner.Dispose();
    }

    private int MaxConnectionsPerIp => maxConnectionsPerIp;

    private sealed class LimitedPipe : ISecurableDuplexPipe
    {
        private readonly ISecurableDuplexPipe _inner;
        private readonly Action _release;
        private PipeReader? _wrappedFrom;
        private LimitedReader? _reader;
        private int _disposed;

        public LimitedPipe(ISecurableDuplexPipe inner, ISessionContext context, Action release)
        {
            _inner = inner;
            _release = release;
            context.CommandExecuting += (_, e) => { if (e.Command is DataCommand) InData = true; };
            context.CommandExecuted += (_, e) => { if (e.Command is DataCommand) InData = false; };
        }

        public bool InData { get; private set; }

        public PipeReader Input
        {
            get
            {
                var current = _inner.Input;
                if (!ReferenceEquals(current, _wrappedFrom))
                {
                    _wrappedFrom = current;
                    _reader = new LimitedReader(current, this);
                }
                return _reader!;
            }
        }

        public PipeWriter Output => _inner.Output;
        public bool IsSecure => _inner.IsSecure;
        public SslProtocols SslProtocol => _inner.SslProtocol;

        public Task UpgradeAsync(X509Certificate certificate, SslProtocols protocols, CancellationToken cancellationToken = default) =>
            _inner.UpgradeAsync(certificate, protocols, cancellationToken);

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0) _release();
            _inner.Dispose();
        }
    }

    private sealed class LimitedReader(PipeReader inner, LimitedPipe pipe) : PipeReader
    {
        private static readonly byte[] TooLong = "500 5.5.2 Line too long\r\n"u8.ToArray();
        private bool _closed;

        public override async ValueTask<ReadResult> ReadAsync(CancellationToken cancellationToken = default)
        {
            if (_closed) return new ReadResult(ReadOnlySequence<byte>.Empty, false, true);
            var result = await inner.ReadAsync(cancellationToken);
            return await CheckAsync(result, cancellationToken);
        }

        public override bool TryRead(out ReadResult result)
        {
            if (_closed)
            {
                result = new ReadResult(ReadOnlySequence<byte>.Empty, false, true);
                return true;
            }
            if (!inner.TryRead(out result)) return false;
            if (Overlong(result.Buffer))
            {
                // Let the async path write the reply; hand back "nothing yet".
                inner.AdvanceTo(result.Buffer.Start, result.Buffer.Start);
                return false;
            }
            return true;
        }

        private async ValueTask<ReadResult> CheckAsync(ReadResult result, CancellationToken ct)
        {
            if (!Overlong(result.Buffer)) return result;
            inner.AdvanceTo(result.Buffer.End);
            _closed = true;
            await pipe.Output.WriteAsync(TooLong, ct);
            NLog.LogManager.GetLogger("smtp").Info("smtp command line over {0} bytes, connection closed", MaxCommandLine);
            return new ReadResult(ReadOnlySequence<byte>.Empty, false, true);
        }

        private bool Overlong(ReadOnlySequence<byte> buffer)
        {
            if (pipe.InData || buffer.Length <= MaxCommandLine) return false;
            var lf = buffer.Slice(0, MaxCommandLine).PositionOf((byte)'\n');
            return lf is null;
        }

        public override void AdvanceTo(SequencePosition consumed)
        {
            if (!_closed) inner.AdvanceTo(consumed);
        }

        public override void AdvanceTo(SequencePosition consumed, SequencePosition examined)
        {
            if (!_closed) inner.AdvanceTo(consumed, examined);
        }

        public override void CancelPendingRead() => inner.CancelPendingRead();

        public override void Complete(Exception? exception = null) => inner.Complete(exception);
    }
}

/// <summary>A connection turned away by <see cref="SmtpConnectionLimitsFactory"/> (already answered 421).</summary>
internal sealed class ConnectionRefusedException(string message) : Exception(message);
