using System.Security.Cryptography;
using System.Text;

namespace Appliance.Filtering.Sieve;

/// <summary>
/// Runs a parsed script against one message (RFC 5228 §2.10) and returns the final actions: the
/// implicit keep (with the imap4flags flags of the end of the run) unless fileinto, redirect
/// without :copy, discard or reject cancelled it; an explicit keep stands for it. Deliveries to
/// the same folder collapse to one (§2.10.3), keep and fileinto "INBOX" count as the same folder,
/// and their flags are merged. A run-time error (§2.10.6) — a sixth redirect, reject with another
/// action (RFC 5429 §2.1), a second vacation, an empty folder name from a variable — throws the
/// actions away and keeps the message, without flags, with the error said in Outcome.Error.
/// </summary>
public static class SieveInterpreter
{
    /// <summary>Distinct redirect addresses one run may produce.</summary>
    public const int MaxRedirects = 5;

    public static SieveOutcome Evaluate(SieveScript script, SieveContext context)
    {
        var run = new SieveRun(script, context);
        try
        {
            run.Run(script.Commands);
            return new SieveOutcome(run.Finish(), null);
        }
        catch (SieveRuntimeException e)
        {
            return new SieveOutcome([new KeepAction([])], e.Message);
        }
    }
}

internal sealed class SieveRuntimeException(string message, int line) : Exception($"line {line}: {message}");

/// <summary>The state of one evaluation: variables, match variables, flags, the actions so far.</summary>
internal sealed class SieveRun(SieveScript script, SieveContext context)
{
    private readonly SieveMessage _message = new(context.Message);
    private readonly bool _variables = script.Required.Contains("variables");
    private readonly Dictionary<string, string> _vars = new(StringComparer.OrdinalIgnoreCase);
    private List<string> _matchVars = [];
    private List<string> _flags = [];
    private readonly List<SieveAction> _actions = [];
    private readonly HashSet<string> _redirects = new(StringComparer.OrdinalIgnoreCase);
    private bool _implicitKeep = true;

    /// <summary>Runs commands; false when stop was reached.</summary>
    public bool Run(IReadOnlyList<SieveNode> commands)
    {
        foreach (var node in commands)
        {
            switch (node.Name)
            {
                case "require":
                    break;
                case "stop":
                    return false;
                case "if":
                    for (var branch = node; branch is not null; branch = branch.Else)
                    {
                        if (branch.Name != "else" && !Test(branch.Tests[0])) continue;
                        if (!Run(branch.Block!)) return false;
                        break;
                    }
                    break;
                default:
                    Act(node);
                    break;
            }
        }
        return true;
    }

    private string Str(SieveArgument a) => Expand(a.String);
    private List<string> Strs(SieveArgument a) => [.. a.Strings.Select(Expand)];

    // ---- tests (RFC 5228 §5 and extensions) ----

    private bool Test(SieveNode test)
    {
        switch (test.Name)
        {
            case "true": return true;
            case "false": return false;
            case "not": return !Test(test.Tests[0]);
            case "allof": return test.Tests.All(Test);
            case "anyof": return test.Tests.Any(Test);
            case "size":
                return test.Tag(":over") is { } over ? _message.Size > over.Number : _message.Size < test.Tag(":under")!.Number;
            case "exists":
                return Strs(test.Positional[0]).All(h => SieveCommands.IsFieldName(h) && _message.Exists(h));
            case "mailboxexists":
                return Strs(test.Positional[0]).All(m => m.Equals("INBOX", StringComparison.OrdinalIgnoreCase) || context.ExistingFolders.Contains(m));
            case "header":
            {
                var values = Strs(test.Positional[0]).Where(SieveCommands.IsFieldName).SelectMany(_message.Headers).ToList();
                return Match(test, values, Strs(test.Positional[1]));
            }
            case "address":
            {
                var addresses = Strs(test.Positional[0]).Where(SieveCommands.IsFieldName).SelectMany(_message.Addresses);
                return Match(test, Parts(test, addresses), Strs(test.Positional[1]));
            }
            case "envelope":
            {
                var addresses = Strs(test.Positional[0]).Select(p => p.ToLowerInvariant() switch
                {
                    "from" => SieveMessage.Split(context.EnvelopeFrom),
                    "to" => SieveMessage.Split(context.EnvelopeTo),
                    _ => ((string, string)?)null,
                }).OfType<(string, string)>();
                return Match(test, Parts(test, addresses), Strs(test.Positional[1]));
            }
            case "body":
            {
                var values = test.Has(":raw") ? [_message.RawBody()]
                    : _message.BodyParts(test.Tag(":content") is { } content ? Strs(content) : ["text"]);
                return Match(test, values, Strs(test.Positional[0]));
            }
            case "string":
                return Match(test, Strs(test.Positional[0]), Strs(test.Positional[1]), countEmpty: false);
            case "hasflag":
            {
                var flags = test.Positional.Count == 2
                    ? ParseFlags(test.Positional[0].Strings.Select(v => _vars.GetValueOrDefault(v, "")))
                    : _flags;
                return Match(test, flags, Strs(test.Positional[^1]));
            }
            default:
                throw new SieveRuntimeException($"unknown test \"{test.Name}\"", test.Line);
        }
    }

    private bool Match(SieveNode test, IReadOnlyList<string> values, IReadOnlyList<string> keys, bool countEmpty = true)
    {
        var match = SieveMatch.From(test);
        return match.Test(values, keys, captures => { if (_variables) _matchVars = captures; }, countEmpty);
    }

    /// <summary>The address part a test asks for (RFC 5228 §2.7.4, RFC 5233 subaddress with "+").</summary>
    private static List<string> Parts(SieveNode test, IEnumerable<(string Local, string Domain)> addresses)
    {
        var result = new List<string>();
        foreach (var (local, domain) in addresses)
        {
            var plus = local.IndexOf('+');
            string? part = test.Has(":localpart") ? local
                : test.Has(":domain") ? domain
                : test.Has(":user") ? (plus < 0 ? local : local[..plus])
                : test.Has(":detail") ? (plus < 0 ? null : local[(plus + 1)..])
                : domain.Length == 0 ? local : $"{local}@{domain}";
            if (part is not null) result.Add(part);
        }
        return result;
    }

    // ---- variables (RFC 5229) ----

    /// <summary>${name} and ${0}..${9} replaced, once, left to right; anything else stays as written (§3).</summary>
    private string Expand(string s)
    {
        if (!_variables || !s.Contains("${", StringComparison.Ordinal)) return s;
        var sb = new StringBuilder();
        var i = 0;
        while (i < s.Length)
        {
            if (s[i] == '$' && i + 1 < s.Length && s[i + 1] == '{')
            {
                var close = s.IndexOf('}', i + 2);
                if (close > 0)
                {
                    var name = s[(i + 2)..close];
                    if (name.Length > 0 && name.All(char.IsAsciiDigit))
                    {
                        var n = name.Length <= 2 ? int.Parse(name, System.Globalization.CultureInfo.InvariantCulture) : int.MaxValue;
                        sb.Append(n < _matchVars.Count ? _matchVars[n] : "");
                        i = close + 1;
                        continue;
                    }
                    if (name.Split('.').All(SieveCommands.IsIdentifier))
                    {
                        sb.Append(_vars.GetValueOrDefault(name, "")); // a namespace we do not have is empty too
                        i = close + 1;
                        continue;
                    }
                }
            }
            sb.Append(s[i++]);
        }
        return Truncate(sb.ToString());
    }

    private static string Truncate(string s)
    {
        if (s.Length <= SieveLexer.MaxStringLength) return s;
        var n = SieveLexer.MaxStringLength;
        if (char.IsHighSurrogate(s[n - 1])) n--;
        return s[..n];
    }

    /// <summary>RFC 5229 §4: the modifiers apply from the highest precedence (:lower/:upper) to the lowest (:length).</summary>
    private void Set(SieveNode node)
    {
        var value = Str(node.Positional[1]);
        if (node.Has(":lower")) value = value.ToLowerInvariant();
        if (node.Has(":upper")) value = value.ToUpperInvariant();
        if (node.Has(":lowerfirst") && value.Length > 0) value = char.ToLowerInvariant(value[0]) + value[1..];
        if (node.Has(":upperfirst") && value.Length > 0) value = char.ToUpperInvariant(value[0]) + value[1..];
        if (node.Has(":quotewildcard"))
        {
            var sb = new StringBuilder();
            foreach (var c in value) (c is '*' or '?' or '\\' ? sb.Append('\\') : sb).Append(c);
            value = sb.ToString();
        }
        if (node.Has(":length")) value = value.EnumerateRunes().Count().ToString(System.Globalization.CultureInfo.InvariantCulture);
        _vars[node.Positional[0].String] = Truncate(value);
    }

    // ---- imap4flags (RFC 5232) ----

    /// <summary>Space-separated flag lists made one list: no empties, no duplicates (flags compare without case).</summary>
    private static List<string> ParseFlags(IEnumerable<string> lists)
    {
        var result = new List<string>();
        foreach (var list in lists)
            foreach (var flag in list.Split([' ', '\t', '\r', '\n'], StringSplitOptions.RemoveEmptyEntries))
                if (!result.Contains(flag, StringComparer.OrdinalIgnoreCase)) result.Add(flag);
        return result;
    }

    private void Flags(SieveNode node)
    {
        var named = node.Positional.Count == 2 ? node.Positional[0].String : null;
        var current = named is null ? _flags : ParseFlags([_vars.GetValueOrDefault(named, "")]);
        var given = ParseFlags(Strs(node.Positional[^1]));
        var updated = node.Name switch
        {
            "setflag" => given,
            "addflag" => ParseFlags([.. current, .. given]),
            _ => [.. current.Where(f => !given.Contains(f, StringComparer.OrdinalIgnoreCase))],
        };
        if (named is null) _flags = updated;
        else _vars[named] = string.Join(' ', updated);
    }

    private List<string> FlagsFor(SieveNode node) => node.Tag(":flags") is { } flags ? ParseFlags(Strs(flags)) : [.. _flags];

    // ---- actions (RFC 5228 §4 and extensions) ----

    private void Act(SieveNode node)
    {
        switch (node.Name)
        {
            case "keep":
                _implicitKeep = false; // the explicit keep stands for it
                Deliver("INBOX", FlagsFor(node), create: false, keep: true);
                break;
            case "fileinto":
            {
                var folder = Str(node.Positional[0]);
                if (folder.Length == 0) throw new SieveRuntimeException("fileinto with an empty folder name", node.Line);
                if (!node.Has(":copy")) _implicitKeep = false;
                Deliver(folder, FlagsFor(node), node.Has(":create"), keep: false);
                break;
            }
            case "redirect":
            {
                var address = Str(node.Positional[0]).Trim();
                if (!SieveCommands.IsAddress(address))
                    throw new SieveRuntimeException($"redirect to \"{address}\", which is not an email address", node.Line);
                if (!node.Has(":copy")) _implicitKeep = false;
                if (_redirects.Add(address))
                {
                    if (_redirects.Count > SieveInterpreter.MaxRedirects)
                        throw new SieveRuntimeException($"more than {SieveInterpreter.MaxRedirects} redirects", node.Line);
                    _actions.Add(new RedirectAction(address));
                }
                break;
            }
            case "reject" or "ereject":
                if (_actions.OfType<RejectAction>().Any())
                    throw new SieveRuntimeException("the message is rejected twice", node.Line);
                _implicitKeep = false;
                _actions.Add(new RejectAction(Str(node.Positional[0]), node.Name == "ereject"));
                _rejectLine = node.Line;
                break;
            case "discard":
                _implicitKeep = false;
                if (!_actions.OfType<DiscardAction>().Any()) _actions.Add(new DiscardAction());
                break;
            case "vacation":
                if (_actions.OfType<VacationAction>().Any())
                    throw new SieveRuntimeException("a second vacation action", node.Line);
                _actions.Add(Vacation(node));
                break;
            case "set":
                Set(node);
                break;
            case "setflag" or "addflag" or "removeflag":
                Flags(node);
                break;
            default:
                throw new SieveRuntimeException($"unknown command \"{node.Name}\"", node.Line);
        }
    }

    private int _rejectLine;

    /// <summary>Keep and fileinto to the same folder are one delivery with the flags of both (§2.10.3).</summary>
    private void Deliver(string folder, List<string> flags, bool create, bool keep)
    {
        var inbox = keep || folder.Equals("INBOX", StringComparison.OrdinalIgnoreCase);
        for (var i = 0; i < _actions.Count; i++)
        {
            switch (_actions[i])
            {
                case KeepAction k when inbox:
                    _actions[i] = new KeepAction(ParseFlags([.. k.Flags, .. flags]));
                    return;
                case FileIntoAction f when inbox ? f.Folder.Equals("INBOX", StringComparison.OrdinalIgnoreCase) : f.Folder == folder:
                    _actions[i] = f with { Flags = ParseFlags([.. f.Flags, .. flags]), Create = f.Create || create };
                    return;
            }
        }
        _actions.Add(keep ? new KeepAction(flags) : new FileIntoAction(folder, flags, create));
    }

    /// <summary>RFC 5230 §4: :days (default 7, at least 1) or RFC 6131 :seconds; the handle from the text when not given (§4.2).</summary>
    private VacationAction Vacation(SieveNode node)
    {
        var reason = Str(node.Positional[0]);
        var subject = node.Tag(":subject") is { } s ? Str(s) : null;
        var from = node.Tag(":from") is { } f ? Str(f) : null;
        if (from is not null && !SieveCommands.IsAddress(from)) from = null;
        var addresses = node.Tag(":addresses") is { } a ? Strs(a) : [];
        var mime = node.Has(":mime");
        var period = node.Tag(":seconds") is { } seconds ? TimeSpan.FromSeconds(Math.Max(0, seconds.Number))
            : TimeSpan.FromDays(Math.Max(1, node.Tag(":days")?.Number ?? 7));
        var handle = node.Tag(":handle") is { } h ? Str(h) : DefaultHandle(reason, subject, from, mime);
        return new VacationAction(reason, mime, subject, from, addresses, handle, period);
    }

    internal static string DefaultHandle(string reason, string? subject, string? from, bool mime) =>
        Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{reason}\0{subject}\0{from}\0{(mime ? "mime" : "")}")));

    /// <summary>The final list: conflicts checked (RFC 5429 §2.1), the implicit keep added when still due.</summary>
    public List<SieveAction> Finish()
    {
        if (_actions.OfType<RejectAction>().Any())
        {
            var other = _actions.FirstOrDefault(a => a is KeepAction or FileIntoAction or RedirectAction or VacationAction);
            if (other is not null)
                throw new SieveRuntimeException($"reject cannot be combined with {Describe(other)}", _rejectLine);
        }
        if (_implicitKeep) Deliver("INBOX", [.. _flags], create: false, keep: true);
        return _actions;
    }

    private static string Describe(SieveAction action) => action switch
    {
        KeepAction => "keep",
        FileIntoAction f => $"fileinto \"{f.Folder}\"",
        RedirectAction r => $"redirect to {r.Address}",
        _ => "vacation",
    };
}
