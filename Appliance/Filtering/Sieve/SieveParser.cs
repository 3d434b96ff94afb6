using System.Globalization;
using System.Text;

namespace Appliance.Filtering.Sieve;

internal enum SieveArgumentKind { Tag, Number, String, StringList }

/// <summary>One argument as written: a tag, a number, a single string or a bracketed list.</summary>
internal sealed record SieveArgument(SieveArgumentKind Kind, string Tag, long Number, IReadOnlyList<string> Strings, int Line)
{
    public string String => Strings[0];
}

/// <summary>
/// A command or a test: its name, arguments, tests (the condition of if, the operand of not, the
/// list of allof/anyof) and block. Validation (SieveCommands) fills Tags and Positional; an if
/// holds its elsif/else chain in Else.
/// </summary>
internal sealed class SieveNode(string name, int line)
{
    public string Name { get; } = name;
    public int Line { get; } = line;
    public List<SieveArgument> Arguments { get; } = [];
    public List<SieveNode> Tests { get; } = [];
    public List<SieveNode>? Block { get; set; }
    public SieveNode? Else { get; set; }
    public Dictionary<string, SieveArgument?> Tags { get; } = new(StringComparer.Ordinal);
    public List<SieveArgument> Positional { get; } = [];

    public bool Has(string tag) => Tags.ContainsKey(tag);
    public SieveArgument? Tag(string tag) => Tags.TryGetValue(tag, out var value) ? value : null;
}

/// <summary>
/// RFC 5228 §8.2 grammar over the tokens, validating each command as it is read, so that require
/// is known before the strings and commands that depend on it. Nesting of blocks and tests is
/// bounded.
/// </summary>
internal sealed class SieveParser(List<SieveToken> tokens)
{
    public const int MaxNesting = 32;
    private int _pos;
    private bool _requiresDone;
    public HashSet<string> Required { get; } = new(StringComparer.Ordinal);

    private SieveToken Peek => tokens[_pos];
    private SieveToken Next() => tokens[_pos++];
    private bool IsPunctuation(string p) => Peek.Kind == SieveTokenKind.Punctuation && Peek.Text == p;

    public List<SieveNode> ParseScript()
    {
        var commands = ParseCommands(0);
        if (Peek.Kind != SieveTokenKind.End)
            throw new SieveException($"expected a command, found {Peek.Describe()}", Peek.Line);
        return commands;
    }

    private List<SieveNode> ParseCommands(int depth)
    {
        var commands = new List<SieveNode>();
        SieveNode? chain = null; // the last if/elsif an elsif or else may follow
        while (Peek.Kind == SieveTokenKind.Identifier)
        {
            var node = ParseCommand(depth);
            if (node.Name is "elsif" or "else")
            {
                if (chain is null) throw new SieveException($"\"{node.Name}\" without an \"if\" before it", node.Line);
                chain.Else = node;
                chain = node.Name == "elsif" ? node : null;
                continue;
            }
            chain = node.Name == "if" ? node : null;
            commands.Add(node);
        }
        if (Peek.Kind is not (SieveTokenKind.End or SieveTokenKind.Punctuation) || (Peek.Kind == SieveTokenKind.Punctuation && Peek.Text != "}"))
            throw new SieveException($"expected a command, found {Peek.Describe()}", Peek.Line);
        return commands;
    }

    private SieveNode ParseCommand(int depth)
    {
        var name = Next();
        var node = new SieveNode(name.Text, name.Line);
        if (node.Name == "require")
        {
            if (_requiresDone || depth > 0) throw new SieveException("\"require\" must come before any other command", node.Line);
        }
        else _requiresDone = true;
        ParseArguments(node, depth);
        if (IsPunctuation("{"))
        {
            var open = Next();
            if (depth + 1 > MaxNesting) throw new SieveException($"blocks nested deeper than {MaxNesting} levels", open.Line);
            node.Block = ParseCommands(depth + 1);
            if (!IsPunctuation("}")) throw new SieveException($"block opened on line {open.Line} is never closed with \"}}\"", Peek.Line);
            Next();
        }
        else if (IsPunctuation(";")) Next();
        else
        {
            var last = tokens[_pos - 1];
            throw new SieveException(Peek.Kind == SieveTokenKind.End
                ? $"missing \";\" at the end of \"{node.Name}\""
                : $"missing \";\" after \"{node.Name}\" (found {Peek.Describe()})", last.Line);
        }
        SieveCommands.Validate(node, isTest: false, Required);
        if (node.Name == "require")
            foreach (var extension in node.Positional[0].Strings) Require(extension, node.Line);
        return node;
    }

    private void Require(string extension, int line)
    {
        if (!SieveCommands.Supported.Contains(extension))
            throw new SieveException($"extension \"{extension}\" is not supported", line);
        Required.Add(extension);
        if (extension == "vacation-seconds") Required.Add("vacation");
    }

    private SieveNode ParseTest(int depth)
    {
        if (depth > MaxNesting) throw new SieveException($"tests nested deeper than {MaxNesting} levels", Peek.Line);
        if (Peek.Kind != SieveTokenKind.Identifier) throw new SieveException($"expected a test, found {Peek.Describe()}", Peek.Line);
        var name = Next();
        var node = new SieveNode(name.Text, name.Line);
        ParseArguments(node, depth);
        SieveCommands.Validate(node, isTest: true, Required);
        return node;
    }

    /// <summary>arguments = *argument [ test / test-list ]</summary>
    private void ParseArguments(SieveNode node, int depth)
    {
        while (true)
        {
            var t = Peek;
            if (t.Kind == SieveTokenKind.Tag) { Next(); node.Arguments.Add(new(SieveArgumentKind.Tag, t.Text, 0, [], t.Line)); }
            else if (t.Kind == SieveTokenKind.Number) { Next(); node.Arguments.Add(new(SieveArgumentKind.Number, "", t.Number, [], t.Line)); }
            else if (t.Kind == SieveTokenKind.String) { Next(); node.Arguments.Add(new(SieveArgumentKind.String, "", 0, [Decode(t)], t.Line)); }
            else if (IsPunctuation("[")) node.Arguments.Add(ParseStringList());
            else break;
        }
        if (Peek.Kind == SieveTokenKind.Identifier) node.Tests.Add(ParseTest(depth + 1));
        else if (IsPunctuation("("))
        {
            var open = Next();
            while (true)
            {
                node.Tests.Add(ParseTest(depth + 1));
                if (IsPunctuation(",")) { Next(); continue; }
                if (IsPunctuation(")")) { Next(); break; }
                throw new SieveException($"expected \",\" or \")\" in the test list opened on line {open.Line}, found {Peek.Describe()}", Peek.Line);
            }
        }
    }

    private SieveArgument ParseStringList()
    {
        var open = Next();
        var strings = new List<string>();
        while (true)
        {
            if (Peek.Kind != SieveTokenKind.String) throw new SieveException($"expected a string in the list opened on line {open.Line}, found {Peek.Describe()}", Peek.Line);
            strings.Add(Decode(Next()));
            if (IsPunctuation(",")) { Next(); continue; }
            if (IsPunctuation("]")) { Next(); break; }
            throw new SieveException($"expected \",\" or \"]\" in the list opened on line {open.Line}, found {Peek.Describe()}", Peek.Line);
        }
        return new(SieveArgumentKind.StringList, "", 0, strings, open.Line);
    }

    private string Decode(SieveToken t) => Required.Contains("encoded-character") ? DecodeEncodedCharacters(t.Text, t.Line) : t.Text;

    /// <summary>RFC 5228 §2.4.2.4: ${hex:41 42} and ${unicode:1F600}; a malformed one stays as written.</summary>
    internal static string DecodeEncodedCharacters(string s, int line)
    {
        if (!s.Contains("${", StringComparison.Ordinal)) return s;
        var sb = new StringBuilder();
        var i = 0;
        while (i < s.Length)
        {
            if (s[i] == '$' && i + 1 < s.Length && s[i + 1] == '{')
            {
                var close = s.IndexOf('}', i + 2);
                var colon = s.IndexOf(':', i + 2);
                if (close > 0 && colon > 0 && colon < close)
                {
                    var kind = s[(i + 2)..colon].ToLowerInvariant();
                    var items = s[(colon + 1)..close].Split([' ', '\t', '\r', '\n'], StringSplitOptions.RemoveEmptyEntries);
                    if (kind == "hex" && items.Length > 0 && items.All(IsHexPair))
                    {
                        sb.Append(Encoding.UTF8.GetString([.. items.Select(h => byte.Parse(h, NumberStyles.HexNumber, CultureInfo.InvariantCulture))]));
                        i = close + 1;
                        continue;
                    }
                    if (kind == "unicode" && items.Length > 0 && items.All(h => h.Length <= 8 && h.All(char.IsAsciiHexDigit)))
                    {
                        foreach (var h in items)
                        {
                            var cp = int.Parse(h, NumberStyles.HexNumber, CultureInfo.InvariantCulture);
                            if (!Rune.IsValid(cp)) throw new SieveException($"\"{h}\" in ${{unicode:...}} is not a Unicode character", line);
                            sb.Append(char.ConvertFromUtf32(cp));
                        }
                        i = close + 1;
                        continue;
                    }
                }
            }
            sb.Append(s[i++]);
        }
        return sb.ToString();
    }

    private static bool IsHexPair(string h) => h.Length is 1 or 2 && h.All(char.IsAsciiHexDigit);
}
