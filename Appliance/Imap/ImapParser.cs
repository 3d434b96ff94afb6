using System.Buffers;
using System.Text;

namespace Appliance.Imap;

/// <summary>What <see cref="ImapParser.TryParse"/> found in the buffered input.</summary>
public enum ImapParseStatus
{
    /// <summary>A whole command (consumed).</summary>
    Complete,
    /// <summary>Not all of it is here yet: read more and parse again from the start.</summary>
    NeedMore,
    /// <summary>A synchronizing literal was announced: send "+" and read more.</summary>
    NeedContinuation,
    /// <summary>A malformed command; its line has been consumed (or is being discarded).</summary>
    Error,
}

/// <summary>Bounds the parser applies (RFC 9051 §4.3, RFC 7888 LITERAL+, RFC 7889 APPENDLIMIT).</summary>
public sealed record ImapParserLimits(int MaxLineBytes, long MaxLiteralBytes, long MaxAppendLiteralBytes, int MaxDepth = 32, int MaxArguments = 100_000);

/// <summary>
/// Parses one command from buffered bytes (RFC 9051 §9 grammar, generically: tag, name, then
/// atoms, quoted strings, literals and lists). Synchronous and restartable: nothing is kept
/// between calls except how many synchronizing literals have already been answered with "+",
/// so an incomplete command is simply parsed again when more bytes arrive. Literal bytes are
/// skipped, not scanned, on a re-parse.
/// An error consumes the rest of the line (through LF) so the next command parses cleanly; a
/// literal that is too big is refused before its bytes are sent (synchronizing) or makes the
/// session close (non-synchronizing, RFC 7888 §4: its bytes would otherwise be taken as commands).
/// </summary>
public static class ImapParser
{
    public readonly record struct Failure(string? Tag, ImapStatus Status, string Text, string? Code, bool Disconnect, bool DiscardLine);

    public static ImapParseStatus TryParse(ReadOnlySequence<byte> buffer, ImapParserLimits limits, int literalsAcknowledged,
        out ImapCommand? command, out SequencePosition consumed, out Failure failure)
    {
        var state = new State(new SequenceReader<byte>(buffer), limits, literalsAcknowledged);
        var status = state.ParseCommand(out command, out failure);
        consumed = status == ImapParseStatus.Complete || status == ImapParseStatus.Error ? state.Reader.Position : buffer.Start;
        return status;
    }

    private ref struct State(SequenceReader<byte> reader, ImapParserLimits limits, int acknowledged)
    {
        public SequenceReader<byte> Reader = reader;
        private int _literals;
        private long _lineBytes;
        private int _argumentCount;
        private string? _tag;
        private bool _append;

        public ImapParseStatus ParseCommand(out ImapCommand? command, out Failure failure)
        {
            command = null;
            failure = default;
            var start = Reader.Consumed;
            // Tag: astring chars except "+" (RFC 9051 §9 tag).
            if (!TryReadWord(out var tagBytes, out var end)) return NeedMoreOrTooLong(start, ref failure);
            if (tagBytes.Length == 0) return Fail(ref failure, ImapStatus.Bad, "Empty command line", end);
            _tag = Encoding.UTF8.GetString(tagBytes);
            if (tagBytes.Length > 64 || !tagBytes.All(b => ImapWriter.IsAStringChar(b) && b != '+'))
            {
                _tag = null;
                return Fail(ref failure, ImapStatus.Bad, "Invalid tag", end);
            }
            if (end != ' ') return Fail(ref failure, ImapStatus.Bad, "Missing command", end);
            if (!TryReadWord(out var nameBytes, out end)) return NeedMoreOrTooLong(start, ref failure);
            var name = Encoding.ASCII.GetString(nameBytes).ToUpperInvariant();
            bool uid = false;
            if (name == "UID")
            {
                if (end != ' ') return Fail(ref failure, ImapStatus.Bad, "UID needs a command", end);
                if (!TryReadWord(out nameBytes, out end)) return NeedMoreOrTooLong(start, ref failure);
                name = Encoding.ASCII.GetString(nameBytes).ToUpperInvariant();
                uid = true;
            }
            if (name.Length == 0 || name.Length > 32 || !name.All(c => c is >= 'A' and <= 'Z' or >= '0' and <= '9' or '=' or '-' or '_'))
                return Fail(ref failure, ImapStatus.Bad, "Invalid command name", end);
            _append = name == "APPEND";
            var args = new List<ImapValue>();
            while (end == ' ')
            {
                var status = ReadValue(args, 0, ref failure, out end);
                if (status != ImapParseStatus.Complete) return status == ImapParseStatus.NeedMore ? NeedMoreOrTooLong(start, ref failure) : status;
                if (end == ')') return Fail(ref failure, ImapStatus.Bad, "Unexpected )", ' ');
            }
            if (end != '\n') return Fail(ref failure, ImapStatus.Bad, "Syntax error", end);
            command = new ImapCommand(_tag, name, uid, args);
            return ImapParseStatus.Complete;
        }

        /// <summary>
        /// Reads one value; <paramref name="end"/> is the byte after it: ' ', ')' or '\n'
        /// (CRLF and bare LF both end a line). Atoms and quoted strings, not literals, count
        /// towards the line limit.
        /// </summary>
        private ImapParseStatus ReadValue(List<ImapValue> into, int depth, ref Failure failure, out int end)
        {
            end = -1;
            if (++_argumentCount > limits.MaxArguments) return Fail(ref failure, ImapStatus.Bad, "Too many arguments", -1);
            if (!Reader.TryPeek(out byte first)) return ImapParseStatus.NeedMore;
            switch (first)
            {
                case (byte)'(':
                    if (depth >= limits.MaxDepth) return Fail(ref failure, ImapStatus.Bad, "Too deeply nested", -1);
                    Reader.Advance(1);
                    var items = new List<ImapValue>();
                    if (!Reader.TryPeek(out byte next)) return ImapParseStatus.NeedMore;
                    if (next == ')')
                    {
                        Reader.Advance(1);
                    }
                    else
                    {
                        int inner;
                        do
                        {
                            var s = ReadValue(items, depth + 1, ref failure, out inner);
                            if (s != ImapParseStatus.Complete) return s;
                        }
                        while (inner == ' ');
                        if (inner != ')') return Fail(ref failure, ImapStatus.Bad, "Unbalanced parentheses", inner);
                    }
                    into.Add(ImapValue.List(items));
                    return ReadSeparator(ref failure, out end);
                case (byte)'"':
                    Reader.Advance(1);
                    var quoted = new List<byte>();
                    while (true)
                    {
                        if (!Reader.TryRead(out byte b)) return ImapParseStatus.NeedMore;
                        if (++_lineBytes > limits.MaxLineBytes) return TooLong(ref failure);
                        if (b == '"') break;
                        if (b == '\\')
                        {
                            if (!Reader.TryRead(out b)) return ImapParseStatus.NeedMore;
                            if (b is not ((byte)'"' or (byte)'\\')) return Fail(ref failure, ImapStatus.Bad, "Invalid escape in quoted string", b);
                        }
                        else if (b is (byte)'\r' or (byte)'\n' or 0)
                        {
                            return Fail(ref failure, ImapStatus.Bad, "Unterminated quoted string", b);
                        }
                        quoted.Add(b);
                    }
                    into.Add(ImapValue.Quoted([.. quoted]));
                    return ReadSeparator(ref failure, out end);
                case (byte)'{':
                case (byte)'~':
                    return ReadLiteral(into, ref failure, out end);
                default:
                    return ReadAtom(into, ref failure, out end);
            }
        }

        // RFC 9051 §4.3 literal: "{" number64 ["+"] "}" CRLF *OCTET; literal8 "~{" ... (RFC 3516).
        private ImapParseStatus ReadLiteral(List<ImapValue> into, ref Failure failure, out int end)
        {
            end = -1;
            bool binary = false;
            Reader.TryPeek(out byte b);
            if (b == '~')
            {
                if (!Reader.TryPeek(1, out byte brace)) return ImapParseStatus.NeedMore;
                if (brace != '{') return ReadAtom(into, ref failure, out end);
                binary = true;
                Reader.Advance(1);
            }
            Reader.Advance(1);
            long size = 0;
            int digits = 0;
            bool nonSync = false;
            while (true)
            {
                if (!Reader.TryRead(out b)) return ImapParseStatus.NeedMore;
                if (b is >= (byte)'0' and <= (byte)'9' && digits < 19) { size = size * 10 + (b - '0'); digits++; continue; }
                if (b == '+' && !nonSync && digits > 0) { nonSync = true; continue; }
                if (b == '}' && digits > 0) break;
                return Fail(ref failure, ImapStatus.Bad, "Invalid literal", b);
            }
            if (!Reader.TryRead(out b)) return ImapParseStatus.NeedMore;
            if (b == '\r' && !Reader.TryRead(out b)) return ImapParseStatus.NeedMore;
            if (b != '\n') return Fail(ref failure, ImapStatus.Bad, "Literal must end the line", b);
            long max = _append ? limits.MaxAppendLiteralBytes : limits.MaxLiteralBytes;
            int index = _literals++;
            if (size > max)
            {
                // The line ended with the literal header: nothing of it is left to discard.
                failure = new Failure(_tag, _append ? ImapStatus.No : ImapStatus.Bad,
                    _append ? "Message too large" : "Literal too large", _append ? "TOOBIG" : null, nonSync, DiscardLine: false);
                return ImapParseStatus.Error;
            }
            if (Reader.Remaining < size)
            {
                return !nonSync && index >= acknowledged ? ImapParseStatus.NeedContinuation : ImapParseStatus.NeedMore;
            }
            var bytes = Reader.UnreadSequence.Slice(0, size).ToArray();
            Reader.Advance(size);
            into.Add(ImapValue.Literal(bytes, binary));
            return ReadSeparator(ref failure, out end);
        }

        private ImapParseStatus ReadAtom(List<ImapValue> into, ref Failure failure, out int end)
        {
            end = -1;
            var atom = new List<byte>();
            int bracket = 0;
            while (true)
            {
                if (!Reader.TryPeek(out byte b)) return ImapParseStatus.NeedMore;
                if (++_lineBytes > limits.MaxLineBytes) return TooLong(ref failure);
                if (bracket > 0)
                {
                    if (b is (byte)'\r' or (byte)'\n') return Fail(ref failure, ImapStatus.Bad, "Unterminated [", -1);
                    if (b == '[') bracket++;
                    else if (b == ']') bracket--;
                    atom.Add(b);
                    Reader.Advance(1);
                    continue;
                }
                if (b is (byte)' ' or (byte)'(' or (byte)')' or (byte)'\r' or (byte)'\n') break;
                if (b < 0x20 || b is (byte)'"' or (byte)'{' or 0x7F) return Fail(ref failure, ImapStatus.Bad, "Invalid character in atom", -1);
                if (b == '[') bracket++;
                atom.Add(b);
                Reader.Advance(1);
            }
            if (atom.Count == 0) return Fail(ref failure, ImapStatus.Bad, "Syntax error", -1);
            into.Add(ImapValue.Atom([.. atom]));
            return ReadSeparator(ref failure, out end);
        }

        /// <summary>After a value: SP, ")" (left for the list reader to see), or the line end.</summary>
        private ImapParseStatus ReadSeparator(ref Failure failure, out int end)
        {
            end = -1;
            if (!Reader.TryRead(out byte b)) return ImapParseStatus.NeedMore;
            if (b == '\r')
            {
                if (!Reader.TryRead(out b)) return ImapParseStatus.NeedMore;
                if (b != '\n') return Fail(ref failure, ImapStatus.Bad, "CR without LF", b);
            }
            if (b is (byte)' ' or (byte)')' or (byte)'\n')
            {
                end = b;
                return ImapParseStatus.Complete;
            }
            return Fail(ref failure, ImapStatus.Bad, "Syntax error", b);
        }

        /// <summary>Reads the tag or command name up to SP or the line end.</summary>
        private bool TryReadWord(out byte[] word, out int end)
        {
            var bytes = new List<byte>();
            end = -1;
            while (Reader.TryRead(out byte b))
            {
                if (b == '\r')
                {
                    if (!Reader.TryRead(out b)) { word = []; return false; }
                    if (b != '\n') { end = b; word = [.. bytes]; return true; }
                }
                if (b is (byte)' ' or (byte)'\n')
                {
                    end = b;
                    word = [.. bytes];
                    return true;
                }
                bytes.Add(b);
                if (++_lineBytes > limits.MaxLineBytes) { end = -2; word = [.. bytes]; return true; }
            }
            word = [];
            return false;
        }

        private ImapParseStatus NeedMoreOrTooLong(long start, ref Failure failure)
        {
            if (_lineBytes > limits.MaxLineBytes) return TooLong(ref failure);
            return ImapParseStatus.NeedMore;
        }

        private ImapParseStatus TooLong(ref Failure failure)
        {
            failure = new Failure(_tag, ImapStatus.Bad, "Command line too long", "TOOBIG", false, DiscardLine: true);
            return SkipLine(ref failure);
        }

        /// <summary>Fails the command; <paramref name="last"/> is the byte just read ('\n' when the line already ended).</summary>
        private ImapParseStatus Fail(ref Failure failure, ImapStatus status, string text, int last)
        {
            failure = new Failure(_tag, status, text, null, false, DiscardLine: last != '\n');
            return last == '\n' ? ImapParseStatus.Error : SkipLine(ref failure);
        }

        /// <summary>Consumes through the next LF; when the buffer ends first, the session keeps discarding.</summary>
        private ImapParseStatus SkipLine(ref Failure failure)
        {
            if (Reader.TryAdvanceTo((byte)'\n', advancePastDelimiter: true))
            {
                failure = failure with { DiscardLine = false };
            }
            else
            {
                Reader.AdvanceToEnd();
            }
            return ImapParseStatus.Error;
        }
    }
}
