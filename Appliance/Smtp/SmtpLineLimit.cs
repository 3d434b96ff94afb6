using System.Buffers;
using System.IO.Pipelines;
using System.Security.Authentication;
using System.Security.Cryptography.X509Certificates;
using SmtpServer;
using SmtpServer.IO;
using SmtpServer.Net;
using SmtpServer.Protocol;

namespace Appliance.Smtp;

/// <summary>
/// Bounds SMTP command lines, which the SmtpServer engine reads without a limit of its own
/// (only the message size bounds them). Outside DATA a line longer than
/// <see cref="MaxCommandLine"/> gets "500 5.5.2 Line too long" and the connection is closed,
/// so a client cannot make the server buffer megabytes of a single command.
/// Implementation notes: the listener wraps each session's pipe; the wrapper knows whether the
/// session is inside DATA from the engine's command events, and after a TLS upgrade it
/// follows the engine's new input reader.
/// </summary>
internal sealed class SmtpLineLimitListenerFactory(EndpointListenerFactory inner) : IEndpointListenerFactory
{
    public const int MaxCommandLine = 4096;

    public IEndpointListener CreateListener(IEndpointDefinition endpointDefinition) =>
        new Listener(inner.CreateListener(endpointDefinition));

    private sealed class Listener(IEndpointListener inner) : IEndpointListener
    {
        public async Task<ISecurableDuplexPipe> GetPipeAsync(ISessionContext context, CancellationToken cancellationToken) =>
            new LimitedPipe(await inner.GetPipeAsync(context, cancellationToken), context);

        public void Dispose() => inner.Dispose();
    }

    private sealed class LimitedPipe : ISecurableDuplexPipe
    {
        private readonly ISecurableDuplexPipe _inner;
        private PipeReader? _wrappedFrom;
        private LimitedReader? _reader;

        public LimitedPipe(ISecurableDuplexPipe inner, ISessionContext context)
        {
            _inner = inner;
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

        public void Dispose() => _inner.Dispose();
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
