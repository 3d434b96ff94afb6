using System.Globalization;
using System.Text;
using Appliance.Directory;
using Appliance.Store;

namespace Appliance.ManageSieve;

/// <summary>The script commands of the authenticated state (RFC 5804 §2.5–§2.12), on the user's partition.</summary>
internal sealed partial class ManageSieveSession
{
    private MailUser User => _user ?? throw new InvalidOperationException("not authenticated");

    // RFC 5804 §2.5
    internal async ValueTask HaveSpaceAsync(ManageSieveCommand c)
    {
        RequireArgs(c, 2);
        var name = StringArg(c, 0, "script name");
        if (c.Args[1].IsString) throw new ManageSieveException("Syntax: HAVESPACE name size (a number)");
        Require(_server.Store.CheckSieveSpace(User, name, c.Args[1].Number));
        WriteLine("OK \"Putscript would succeed\"");
        await FlushAsync();
    }

    // RFC 5804 §2.6: a script with an error is refused with the parser's message.
    internal async ValueTask PutScriptAsync(ManageSieveCommand c)
    {
        RequireArgs(c, 2);
        var name = StringArg(c, 0, "script name");
        var content = StringArg(c, 1, "script");
        if (!Partition.IsValidSieveName(name)) Require(SieveResult.InvalidName);
        if (Encoding.UTF8.GetByteCount(content) > _server.Store.SieveLimits.MaxScriptBytes) Require(SieveResult.TooLarge);
        Check(content);
        Require(await _server.Store.PutSieveScriptAsync(User, name, content));
        WriteLine("OK \"Putscript completed\"");
        await FlushAsync();
    }

    // RFC 5804 §2.7
    internal async ValueTask ListScriptsAsync(ManageSieveCommand c)
    {
        RequireArgs(c, 0);
        foreach (var script in _server.Store.ListSieveScripts(User))
            WriteLine(ManageSieveParser.Quote(script.Name) + (script.Active ? " ACTIVE" : ""));
        WriteLine("OK \"Listscripts completed\"");
        await FlushAsync();
    }

    // RFC 5804 §2.8: "" deactivates the active script.
    internal async ValueTask SetActiveAsync(ManageSieveCommand c)
    {
        RequireArgs(c, 1);
        Require(await _server.Store.SetActiveSieveScriptAsync(User, StringArg(c, 0, "script name")));
        WriteLine("OK \"Setactive completed\"");
        await FlushAsync();
    }

    // RFC 5804 §2.9: the script as a literal, byte for byte as it was put.
    internal async ValueTask GetScriptAsync(ManageSieveCommand c)
    {
        RequireArgs(c, 1);
        var content = _server.Store.GetSieveScript(User, StringArg(c, 0, "script name"));
        if (content is null) Require(SieveResult.NonExistent);
        WriteLine("{" + Encoding.UTF8.GetByteCount(content!).ToString(CultureInfo.InvariantCulture) + "}");
        WriteLine(content!);
        WriteLine("OK \"Getscript completed\"");
        await FlushAsync();
    }

    // RFC 5804 §2.10: the active script cannot be deleted.
    internal async ValueTask DeleteScriptAsync(ManageSieveCommand c)
    {
        RequireArgs(c, 1);
        Require(await _server.Store.DeleteSieveScriptAsync(User, StringArg(c, 0, "script name")));
        WriteLine("OK \"Deletescript completed\"");
        await FlushAsync();
    }

    // RFC 5804 §2.11.1
    internal async ValueTask RenameScriptAsync(ManageSieveCommand c)
    {
        RequireArgs(c, 2);
        Require(await _server.Store.RenameSieveScriptAsync(User, StringArg(c, 0, "old name"), StringArg(c, 1, "new name")));
        WriteLine("OK \"Renamescript completed\"");
        await FlushAsync();
    }

    // RFC 5804 §2.12: PUTSCRIPT's checks without storing.
    internal async ValueTask CheckScriptAsync(ManageSieveCommand c)
    {
        RequireArgs(c, 1);
        var content = StringArg(c, 0, "script");
        if (Encoding.UTF8.GetByteCount(content) > _server.Store.SieveLimits.MaxScriptBytes) Require(SieveResult.TooLarge);
        Check(content);
        WriteLine("OK \"Script is valid\"");
        await FlushAsync();
    }

    private void Check(string content)
    {
        if (_server.Checker.Check(content) is { } error) throw new ManageSieveException(error);
    }

    /// <summary>A store outcome as its RFC 5804 §1.3 response code.</summary>
    private void Require(SieveResult result)
    {
        var limits = _server.Store.SieveLimits;
        switch (result)
        {
            case SieveResult.Ok: return;
            case SieveResult.NonExistent: throw new ManageSieveException("There is no script of that name", "NONEXISTENT");
            case SieveResult.AlreadyExists: throw new ManageSieveException("A script of that name already exists", "ALREADYEXISTS");
            case SieveResult.Active: throw new ManageSieveException("The active script cannot be deleted; deactivate it first", "ACTIVE");
            case SieveResult.TooLarge: throw new ManageSieveException($"Scripts are limited to {limits.MaxScriptBytes} bytes", "QUOTA/MAXSIZE");
            case SieveResult.TooManyScripts: throw new ManageSieveException($"Only {limits.MaxScripts} scripts are allowed; delete one first", "QUOTA/MAXSCRIPTS");
            case SieveResult.InvalidName: throw new ManageSieveException("Invalid script name: it must be non-empty text without control characters");
            default: throw new ManageSieveException($"Refused: {result}");
        }
    }
}
