using System.Text;
using Appliance.Filtering.Sieve;

namespace Appliance.Tests.Filtering.Sieve;

/// <summary>Running scripts against small messages; every helper fails the test when the run reports an error it did not expect.</summary>
internal static class SieveTesting
{
    public const string Message = """
        Return-Path: <coyote@desert.example.org>
        From: "Wile E. Coyote" <coyote@desert.example.org>
        To: roadrunner@acme.example.com
        Cc: Acme Sales <sales+quotes@acme.example.com>, friends: bugs@carrot.example.net, daffy@pond.example.net;
        Subject: I have a present for you
        Message-ID: <present-1@desert.example.org>
        X-Caffeine: C8H10N4O2

        Look, I'm sorry about the whole anvil thing, and I really
        didn't mean to try and drop it on you from the top of the
        cliff.  I want to try to make it up to you.

        """;

    /// <summary>Every extension, so a test of one kind can be written without its require.</summary>
    public const string RequireAll = """
        require ["fileinto", "reject", "ereject", "envelope", "encoded-character", "body", "variables", "vacation",
                 "vacation-seconds", "imap4flags", "copy", "mailbox", "subaddress", "relational", "comparator-i;ascii-numeric"];

        """;

    public static byte[] Bytes(string message) => Encoding.UTF8.GetBytes(message.ReplaceLineEndings("\r\n"));

    public static SieveContext Context(string message = Message, string from = "coyote@desert.example.org", string to = "roadrunner@acme.example.com") =>
        new(from, to, Bytes(message));

    public static SieveOutcome Run(string script, SieveContext? context = null) =>
        SieveInterpreter.Evaluate(SieveScript.Parse(script), context ?? Context());

    /// <summary>The actions of a run that must succeed.</summary>
    public static IReadOnlyList<SieveAction> Actions(string script, SieveContext? context = null)
    {
        var outcome = Run(script, context);
        Assert.Null(outcome.Error);
        return outcome.Actions;
    }

    /// <summary>Whether a test is true for the message: the script files into "yes" when it is.</summary>
    public static bool Holds(string test, SieveContext? context = null)
    {
        var actions = Actions(RequireAll + $"if {test} {{ fileinto \"yes\"; }} else {{ fileinto \"no\"; }}", context);
        var folder = Assert.IsType<FileIntoAction>(Assert.Single(actions)).Folder;
        return folder == "yes";
    }

    public static SieveException ParseError(string script) => Assert.Throws<SieveException>(() => SieveScript.Parse(script));

    public static KeepAction Keep(params string[] flags) => new(flags);

    public static FileIntoAction FileInto(string folder, params string[] flags) => new(folder, flags, false);
}
