using Appliance.Filtering.Sieve;
using static Appliance.Tests.Filtering.Sieve.SieveTesting;

namespace Appliance.Tests.Filtering.Sieve;

/// <summary>
/// Action semantics (RFC 5228 §2.10, §4): the implicit keep and what cancels it, :copy (RFC 3894),
/// duplicates, stop, the redirect limit, reject and ereject conflicts (RFC 5429), mailbox (RFC 5490),
/// and a run-time error keeping the message.
/// </summary>
public sealed class SieveActionTests
{
    [Theory]
    [InlineData("", "keep")]
    [InlineData("keep;", "keep")]
    [InlineData("fileinto \"A\";", "fileinto A")]
    [InlineData("fileinto :copy \"A\";", "fileinto A, keep")]
    [InlineData("redirect \"x@example.net\";", "redirect x@example.net")]
    [InlineData("redirect :copy \"x@example.net\";", "redirect x@example.net, keep")]
    [InlineData("discard;", "discard")]
    [InlineData("discard; keep;", "discard, keep")]
    [InlineData("reject \"no\";", "reject no")]
    [InlineData("ereject \"no\";", "ereject no")]
    [InlineData("reject \"no\"; discard;", "reject no, discard")]
    [InlineData("vacation \"away\";", "vacation, keep")]
    [InlineData("fileinto \"A\"; fileinto \"A\"; keep; keep;", "fileinto A, keep")]
    [InlineData("fileinto \"A\"; fileinto \"a\";", "fileinto A, fileinto a")] // folder names are case-sensitive
    [InlineData("fileinto \"INBOX\"; keep;", "fileinto INBOX")]              // the same delivery
    [InlineData("keep; fileinto \"inbox\";", "keep")]
    [InlineData("redirect \"x@example.net\"; redirect \"X@Example.net\";", "redirect x@example.net")]
    [InlineData("stop; fileinto \"A\";", "keep")]
    [InlineData("if true { fileinto \"A\"; stop; } fileinto \"B\";", "fileinto A")]
    [InlineData("fileinto :create \"New/Folder\";", "fileinto+create New/Folder")]
    [InlineData("fileinto \"F\"; fileinto :create \"F\";", "fileinto+create F")]
    public void Final_actions(string commands, string expected)
    {
        var actions = Actions(RequireAll + commands);
        Assert.Equal(expected, string.Join(", ", actions.Select(Describe)));
    }

    private static string Describe(SieveAction action) => action switch
    {
        KeepAction k => "keep" + string.Concat(k.Flags.Select(f => " " + f)),
        FileIntoAction f => (f.Create ? "fileinto+create " : "fileinto ") + f.Folder + string.Concat(f.Flags.Select(x => " " + x)),
        RedirectAction r => "redirect " + r.Address,
        RejectAction r => (r.Extended ? "ereject " : "reject ") + r.Reason,
        DiscardAction => "discard",
        VacationAction => "vacation",
        _ => action.GetType().Name,
    };

    [Theory]
    [InlineData("reject \"no\"; fileinto \"A\";", "line 4: reject cannot be combined with fileinto \"A\"")]
    [InlineData("fileinto \"A\";\nereject \"no\";", "line 5: reject cannot be combined with fileinto \"A\"")]
    [InlineData("keep; reject \"no\";", "line 4: reject cannot be combined with keep")]
    [InlineData("redirect :copy \"x@example.net\"; reject \"no\";", "line 4: reject cannot be combined with redirect to x@example.net")]
    [InlineData("vacation \"away\"; reject \"no\";", "line 4: reject cannot be combined with vacation")]
    [InlineData("reject \"a\";\nreject \"b\";", "line 5: the message is rejected twice")]
    [InlineData("vacation \"a\";\nvacation \"b\";", "line 5: a second vacation action")]
    [InlineData("set \"to\" \"nobody\";\nredirect \"${to}\";", "line 5: redirect to \"nobody\", which is not an email address")]
    public void Run_time_errors_keep_the_message_without_flags(string commands, string error)
    {
        var outcome = Run(RequireAll + "setflag \"\\\\Seen\";\n" + commands);
        Assert.Equal(error, outcome.Error);
        Assert.Equal([Keep()], outcome.Actions);
    }

    [Fact]
    public void At_most_five_redirects()
    {
        var five = string.Concat(Enumerable.Range(1, 5).Select(i => $"redirect \"r{i}@example.net\";\n"));
        Assert.Equal(5, Actions(five + "redirect \"r1@example.net\";").OfType<RedirectAction>().Count()); // a repeated address is not another redirect
        var outcome = Run(five + "redirect \"r6@example.net\";");
        Assert.Equal("line 6: more than 5 redirects", outcome.Error);
        Assert.Equal([Keep()], outcome.Actions);
    }

    [Fact]
    public void Mailboxexists_uses_the_existing_folders()
    {
        var context = Context() with { ExistingFolders = new HashSet<string> { "Lists/Sieve", "Archive" } };
        Assert.True(Holds("mailboxexists \"Archive\"", context));
        Assert.True(Holds("mailboxexists [\"Archive\", \"Lists/Sieve\", \"inbox\"]", context));
        Assert.False(Holds("mailboxexists [\"Archive\", \"Lists\"]", context));
        Assert.False(Holds("mailboxexists \"archive\"", context));
        Assert.False(Holds("mailboxexists \"Archive\"")); // no folders known
        const string script = "require [\"mailbox\", \"fileinto\"]; if mailboxexists \"Lists/Sieve\" { fileinto \"Lists/Sieve\"; } else { fileinto :create \"Lists/New\"; }";
        Assert.Equal([FileInto("Lists/Sieve")], Actions(script, context));
        Assert.Equal([new FileIntoAction("Lists/New", [], true)], Actions(script));
    }

    [Fact]
    public void Folder_names_are_taken_as_written()
    {
        Assert.Equal([FileInto("Réunions/2024 Q1")], Actions("require \"fileinto\"; fileinto \"Réunions/2024 Q1\";"));
    }

    [Fact]
    public void One_script_runs_for_many_messages_at_once()
    {
        var script = SieveScript.Parse(RequireAll + "if header :matches \"subject\" \"*\" { set \"s\" \"${1}\"; addflag \"${s}\"; } keep;");
        var results = Enumerable.Range(0, 50).AsParallel().Select(i =>
            SieveInterpreter.Evaluate(script, Context($"Subject: s{i}\r\n\r\nx\r\n"))).ToList();
        for (var i = 0; i < 50; i++) Assert.Equal([Keep($"s{i}")], results[i].Actions);
    }
}
