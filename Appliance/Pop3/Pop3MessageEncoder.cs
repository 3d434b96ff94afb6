using System.Buffers;

namespace Appliance.Pop3;

/// <summary>
/// Turns stored message bytes into a POP3 multi-line response body (RFC 1939 §3): every line
/// that begins with "." gets one more ".", line endings pass through exactly as stored, a last
/// line without a line end gets CRLF, and the terminating ".CRLF" follows. For TOP (RFC 1939 §7)
/// it stops after the header, the blank line and the requested number of body lines.
/// Implementation notes: input arrives in arbitrary chunks, so the only state kept between chunks
/// is where we are in the current line; a "line start" is the byte after any LF.
/// </summary>
internal sealed class Pop3MessageEncoder
{
    private readonly int _bodyLines;
    private bool _atLineStart = true;
    private bool _inHeader = true;
    private int _bodyLinesSent;
    private long _lineLength;
    private byte _lastByte;
    private bool _wroteAny;

    /// <param name="bodyLines">Body lines to send after the header (TOP), or -1 for the whole message (RETR).</param>
    public Pop3MessageEncoder(int bodyLines = -1)
    {
        _bodyLines = bodyLines;
    }

    /// <summary>True once TOP has sent everything it needs; further input is ignored.</summary>
    public bool Done { get; private set; }

    public void Encode(ReadOnlySpan<byte> input, IBufferWriter<byte> output)
    {
        while (!input.IsEmpty && !Done)
        {
            if (_atLineStart && input[0] == (byte)'.')
            {
                output.Write("."u8);
            }

            int lf = input.IndexOf((byte)'\n');
            var segment = lf < 0 ? input : input[..(lf + 1)];
            output.Write(segment);
            _wroteAny = true;

            if (lf < 0)
            {
                _lineLength += segment.Length;
                _lastByte = segment[^1];
                _atLineStart = false;
            }
            else
            {
                long contentLength = _lineLength + lf;
                byte beforeLf = lf > 0 ? segment[lf - 1] : _lastByte;
                bool empty = contentLength == 0 || contentLength == 1 && beforeLf == (byte)'\r';
                EndOfLine(empty);
                _lineLength = 0;
                _lastByte = (byte)'\n';
                _atLineStart = true;
            }

            input = input[segment.Length..];
        }
    }

    /// <summary>Writes the line end a last unterminated line needs, then the terminating ".CRLF".</summary>
    public void Complete(IBufferWriter<byte> output)
    {
        if (_wroteAny && _lastByte != (byte)'\n')
        {
            output.Write(_lastByte == (byte)'\r' ? "\n"u8 : "\r\n"u8);
        }

        output.Write(".\r\n"u8);
    }

    private void EndOfLine(bool empty)
    {
        if (_bodyLines < 0)
        {
            return;
        }

        if (_inHeader)
        {
            if (empty)
            {
                _inHeader = false;
                Done = _bodyLines == 0;
            }

            return;
        }

        _bodyLinesSent++;
        Done = _bodyLinesSent >= _bodyLines;
    }
}
