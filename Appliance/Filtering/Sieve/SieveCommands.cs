using MimeKit;

namespace Appliance.Filtering.Sieve;

internal enum SieveValue { None, String, StringList, Number }

internal enum SieveTestArity { None, One, List }

/// <summary>A tag a command accepts: its value, its group (at most one tag of a group) and the extension it needs.</summary>
internal sealed record SieveTagSpec(string Name, SieveValue Value, string Group, string? Extension = null);

/// <summary>
/// What a command or test takes: tags, then positional arguments (the first Optional of them may be
/// left out), a test or test list, a block. RequiredGroup: one tag of that group must be present.
/// </summary>
internal sealed record SieveSignature(
    string Name, bool IsTest, string? Extension, SieveTagSpec[] Tags, SieveValue[] Positional,
    int Optional = 0, SieveTestArity Tests = SieveTestArity.None, bool Block = false, string? RequiredGroup = null);

/// <summary>
/// The command table (RFC 5228 and the extensions) as data, and the checks a script gets when it is
/// uploaded: known command or test, require of its extension, tags and their values, argument count
/// and kinds, comparator and relational names, header names, addresses, envelope parts, variable names.
/// </summary>
internal static class SieveCommands
{
    /// <summary>Order of the ManageSieve SIEVE capability.</summary>
    public static readonly string[] Extensions =
    [
        "fileinto", "reject", "ereject", "envelope", "encoded-character", "body", "variables", "vacation",
        "vacation-seconds", "imap4flags", "copy", "mailbox", "subaddress", "relational", "comparator-i;ascii-numeric",
    ];

    /// <summary>What require accepts: the list above and the two comparators every script has (RFC 5228 §2.7.3).</summary>
    public static readonly HashSet<string> Supported = new([.. Extensions, "comparator-i;octet", "comparator-i;ascii-casemap"], StringComparer.Ordinal);

    private static readonly SieveTagSpec[] Comparator = [new(":comparator", SieveValue.String, "comparator")];

    private static readonly SieveTagSpec[] MatchType =
    [
        new(":is", SieveValue.None, "match type"), new(":contains", SieveValue.None, "match type"),
        new(":matches", SieveValue.None, "match type"),
        new(":count", SieveValue.String, "match type", "relational"), new(":value", SieveValue.String, "match type", "relational"),
    ];

    private static readonly SieveTagSpec[] AddressPart =
    [
        new(":all", SieveValue.None, "address part"), new(":localpart", SieveValue.None, "address part"),
        new(":domain", SieveValue.None, "address part"),
        new(":user", SieveValue.None, "address part", "subaddress"), new(":detail", SieveValue.None, "address part", "subaddress"),
    ];

    private static readonly SieveTagSpec[] BodyTransform =
    [
        new(":raw", SieveValue.None, "body transform"), new(":text", SieveValue.None, "body transform"),
        new(":content", SieveValue.StringList, "body transform"),
    ];

    private static readonly SieveTagSpec[] Flags = [new(":flags", SieveValue.StringList, "flags", "imap4flags")];
    private static readonly SieveValue[] String = [SieveValue.String];
    private static readonly SieveValue[] List = [SieveValue.StringList];
    private static readonly SieveValue[] TwoLists = [SieveValue.StringList, SieveValue.StringList];

    private static readonly Dictionary<string, SieveSignature> Table = new SieveSignature[]
    {
        // RFC 5228 §3 control commands
        new("require", false, null, [], List),
        new("if", false, null, [], [], Tests: SieveTestArity.One, Block: true),
        new("elsif", false, null, [], [], Tests: SieveTestArity.One, Block: true),
        new("else", false, null, [], [], Block: true),
        new("stop", false, null, [], []),
        // §4 actions and their extensions
        new("keep", false, null, Flags, []),
        new("discard", false, null, [], []),
        new("redirect", false, null, [new(":copy", SieveValue.None, "copy", "copy")], String),
        new("fileinto", false, "fileinto",
            [.. Flags, new(":copy", SieveValue.None, "copy", "copy"), new(":create", SieveValue.None, "create", "mailbox")], String),
        new("reject", false, "reject", [], String),
        new("ereject", false, "ereject", [], String),
        new("vacation", false, "vacation",
        [
            new(":days", SieveValue.Number, "period"), new(":seconds", SieveValue.Number, "period", "vacation-seconds"),
            new(":subject", SieveValue.String, "subject"), new(":from", SieveValue.String, "from"),
            new(":addresses", SieveValue.StringList, "addresses"), new(":mime", SieveValue.None, "mime"),
            new(":handle", SieveValue.String, "handle"),
        ], String),
        new("set", false, "variables",
        [
            new(":lower", SieveValue.None, "case"), new(":upper", SieveValue.None, "case"),
            new(":lowerfirst", SieveValue.None, "first letter"), new(":upperfirst", SieveValue.None, "first letter"),
            new(":quotewildcard", SieveValue.None, "quotewildcard"), new(":length", SieveValue.None, "length"),
        ], [SieveValue.String, SieveValue.String]),
        new("setflag", false, "imap4flags", [], [SieveValue.String, SieveValue.StringList], Optional: 1),
        new("addflag", false, "imap4flags", [], [SieveValue.String, SieveValue.StringList], Optional: 1),
        new("removeflag", false, "imap4flags", [], [SieveValue.String, SieveValue.StringList], Optional: 1),
        // §5 tests and their extensions
        new("address", true, null, [.. Comparator, .. AddressPart, .. MatchType], TwoLists),
        new("envelope", true, "envelope", [.. Comparator, .. AddressPart, .. MatchType], TwoLists),
        new("header", true, null, [.. Comparator, .. MatchType], TwoLists),
        new("exists", true, null, [], List),
        new("size", true, null, [new(":over", SieveValue.Number, "size"), new(":under", SieveValue.Number, "size")], [], RequiredGroup: "size"),
        new("allof", true, null, [], [], Tests: SieveTestArity.List),
        new("anyof", true, null, [], [], Tests: SieveTestArity.List),
        new("not", true, null, [], [], Tests: SieveTestArity.One),
        new("true", true, null, [], []),
        new("false", true, null, [], []),
        new("body", true, "body", [.. Comparator, .. MatchType, .. BodyTransform], List),
        new("string", true, "variables", [.. Comparator, .. MatchType], TwoLists),
        new("hasflag", true, "imap4flags", [.. Comparator, .. MatchType], TwoLists, Optional: 1),
        new("mailboxexists", true, "mailbox", [], List),
    }.ToDictionary(s => s.Name, StringComparer.Ordinal);

    public static readonly string[] Relations = ["gt", "ge", "lt", "le", "eq", "ne"];

    public static void Validate(SieveNode node, bool isTest, HashSet<string> required)
    {
        var kind = isTest ? "test" : "command";
        if (!Table.TryGetValue(node.Name, out var sig))
            throw new SieveException($"unknown {kind} \"{node.Name}\"", node.Line);
        if (sig.IsTest != isTest)
            throw new SieveException(isTest ? $"\"{node.Name}\" is a command, not a test" : $"\"{node.Name}\" is a test, not a command (use it in \"if\")", node.Line);
        if (sig.Extension is not null && !required.Contains(sig.Extension))
            throw new SieveException($"\"{node.Name}\" needs require \"{sig.Extension}\"", node.Line);
        var groups = new Dictionary<string, string>(StringComparer.Ordinal);
        var args = node.Arguments;
        var i = 0;
        for (; i < args.Count && args[i].Kind == SieveArgumentKind.Tag; i++)
        {
            var name = ":" + args[i].Tag;
            var spec = sig.Tags.FirstOrDefault(t => t.Name == name)
                ?? throw new SieveException($"\"{node.Name}\" has no tag \"{name}\"", args[i].Line);
            if (spec.Extension is not null && !required.Contains(spec.Extension))
                throw new SieveException($"\"{name}\" needs require \"{spec.Extension}\"", args[i].Line);
            if (groups.TryGetValue(spec.Group, out var other))
                throw new SieveException(other == name ? $"\"{name}\" is given twice" : $"\"{other}\" and \"{name}\" cannot be used together", args[i].Line);
            groups[spec.Group] = name;
            SieveArgument? value = null;
            if (spec.Value != SieveValue.None)
            {
                if (i + 1 >= args.Count || !Fits(args[i + 1], spec.Value))
                    throw new SieveException($"\"{name}\" must be followed by {Describe(spec.Value)}", args[i].Line);
                value = args[++i];
            }
            node.Tags[name] = value;
        }
        var positional = args.Skip(i).ToList();
        if (positional.FirstOrDefault(a => a.Kind == SieveArgumentKind.Tag) is { } late)
            throw new SieveException($"tag \":{late.Tag}\" must come before the other arguments of \"{node.Name}\"", late.Line);
        var expected = sig.Positional;
        if (positional.Count < expected.Length - sig.Optional || positional.Count > expected.Length)
            throw new SieveException($"\"{node.Name}\" takes {ArgumentCount(sig)}, not {positional.Count}", node.Line);
        var offset = expected.Length - positional.Count;
        for (var k = 0; k < positional.Count; k++)
            if (!Fits(positional[k], expected[k + offset]))
                throw new SieveException($"argument {k + 1} of \"{node.Name}\" must be {Describe(expected[k + offset])}", positional[k].Line);
        node.Positional.AddRange(positional);
        if (sig.RequiredGroup is not null && !groups.ContainsKey(sig.RequiredGroup))
            throw new SieveException($"\"{node.Name}\" needs one of {string.Join(" or ", sig.Tags.Where(t => t.Group == sig.RequiredGroup).Select(t => t.Name))}", node.Line);
        switch (sig.Tests)
        {
            case SieveTestArity.None when node.Tests.Count > 0:
                throw new SieveException($"\"{node.Name}\" takes no test", node.Line);
            case SieveTestArity.One when node.Tests.Count != 1:
                throw new SieveException($"\"{node.Name}\" needs one test", node.Line);
            case SieveTestArity.List when node.Tests.Count == 0:
                throw new SieveException($"\"{node.Name}\" needs a list of tests in parentheses", node.Line);
        }
        if (!isTest && sig.Block != (node.Block is not null))
            throw new SieveException(sig.Block ? $"\"{node.Name}\" needs a block in braces" : $"\"{node.Name}\" takes no block (missing \";\"?)", node.Line);
        Check(node, required);
    }

    private static bool Fits(SieveArgument a, SieveValue v) => v switch
    {
        SieveValue.String => a.Kind == SieveArgumentKind.String,
        SieveValue.StringList => a.Kind is SieveArgumentKind.String or SieveArgumentKind.StringList,
        SieveValue.Number => a.Kind == SieveArgumentKind.Number,
        _ => false,
    };

    private static string Describe(SieveValue v) => v switch
    {
        SieveValue.String => "a string",
        SieveValue.StringList => "a string or a list of strings",
        _ => "a number",
    };

    private static string ArgumentCount(SieveSignature sig)
    {
        var n = sig.Positional.Length;
        var count = n == 1 ? "1 argument" : $"{n} arguments";
        return sig.Optional > 0 ? $"{n - sig.Optional} or {count}" : n == 0 ? "no arguments" : count;
    }

    /// <summary>Checks of values that are fixed when the script is written (variables may still change the others).</summary>
    private static void Check(SieveNode node, HashSet<string> required)
    {
        var variables = required.Contains("variables");
        bool Literal(string s) => !variables || !s.Contains("${", StringComparison.Ordinal);

        if (node.Tag(":comparator") is { } comparator)
        {
            var name = comparator.String.ToLowerInvariant();
            if (name is not ("i;octet" or "i;ascii-casemap" or "i;ascii-numeric"))
                throw new SieveException($"comparator \"{comparator.String}\" is not supported (i;octet, i;ascii-casemap, i;ascii-numeric)", comparator.Line);
            if (name == "i;ascii-numeric" && !required.Contains("comparator-i;ascii-numeric"))
                throw new SieveException("comparator \"i;ascii-numeric\" needs require \"comparator-i;ascii-numeric\"", comparator.Line);
            if (name == "i;ascii-numeric" && (node.Has(":contains") || node.Has(":matches")))
                throw new SieveException("comparator \"i;ascii-numeric\" cannot be used with :contains or :matches", comparator.Line);
        }
        foreach (var tag in (string[])[":count", ":value"])
            if (node.Tag(tag) is { } relation && !Relations.Contains(relation.String.ToLowerInvariant()))
                throw new SieveException($"\"{relation.String}\" after {tag} is not one of {string.Join(", ", Relations)}", relation.Line);

        switch (node.Name)
        {
            case "address" or "header" or "exists":
                foreach (var header in node.Positional[0].Strings)
                    if (Literal(header) && !IsFieldName(header))
                        throw new SieveException($"\"{header}\" is not a header field name", node.Positional[0].Line);
                break;
            case "envelope":
                foreach (var part in node.Positional[0].Strings)
                    if (Literal(part) && part.ToLowerInvariant() is not ("from" or "to"))
                        throw new SieveException($"envelope part \"{part}\" is not supported (\"from\" or \"to\")", node.Positional[0].Line);
                break;
            case "redirect":
                if (Literal(node.Positional[0].String) && !IsAddress(node.Positional[0].String))
                    throw new SieveException($"\"{node.Positional[0].String}\" is not an email address to redirect to", node.Positional[0].Line);
                break;
            case "fileinto":
                if (node.Positional[0].String.Length == 0)
                    throw new SieveException("fileinto needs a folder name, not an empty string", node.Positional[0].Line);
                break;
            case "set":
                if (!IsIdentifier(node.Positional[0].String))
                    throw new SieveException($"\"{node.Positional[0].String}\" is not a variable name (letters, digits and \"_\", not starting with a digit)", node.Positional[0].Line);
                break;
            case "setflag" or "addflag" or "removeflag" or "hasflag" when node.Positional.Count == 2:
                if (!variables)
                    throw new SieveException($"the variable name argument of \"{node.Name}\" needs require \"variables\"", node.Line);
                foreach (var name in node.Positional[0].Strings)
                    if (!IsIdentifier(name))
                        throw new SieveException($"\"{name}\" is not a variable name", node.Positional[0].Line);
                break;
            case "vacation":
                if (node.Tag(":from") is { } from && Literal(from.String) && !IsAddress(from.String))
                    throw new SieveException($"\":from\" \"{from.String}\" is not an email address", from.Line);
                if (node.Tag(":addresses") is { } addresses)
                    foreach (var a in addresses.Strings)
                        if (Literal(a) && !IsAddress(a))
                            throw new SieveException($"\":addresses\" \"{a}\" is not an email address", addresses.Line);
                break;
        }
    }

    /// <summary>RFC 5322 §3.6.8 field-name: printable US-ASCII except colon.</summary>
    public static bool IsFieldName(string s) => s.Length > 0 && s.All(c => c is > ' ' and < '\x7f' and not ':');

    public static bool IsIdentifier(string s) =>
        s.Length > 0 && (char.IsAsciiLetter(s[0]) || s[0] == '_') && s.All(c => char.IsAsciiLetterOrDigit(c) || c == '_');

    public static bool IsAddress(string s) =>
        MailboxAddress.TryParse(s, out var mailbox) && mailbox.Address.Contains('@', StringComparison.Ordinal) && !mailbox.Address.EndsWith('@');
}
