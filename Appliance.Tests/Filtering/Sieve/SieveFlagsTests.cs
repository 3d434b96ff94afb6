using Appliance.Filtering.Sieve;
using static Appliance.Tests.Filtering.Sieve.SieveTesting;

namespace Appliance.Tests.Filtering.Sieve;

/// <summary>imap4flags (RFC 5232): the internal variable, named variables, hasflag, :flags on keep and fileinto.</summary>
public sealed class SieveFlagsTests
{
    [Fact]
    public void The_internal_variable_goes_on_keep_fileinto_and_the_implicit_keep()
    {
        const string script = """
            require ["imap4flags", "fileinto"];
            setflag "\\Seen";
            addflag ["$Work", "\\Flagged \\Seen"];
            fileinto "Archive";
            removeflag "\\flagged";
            fileinto :copy "Later";
            """;
        Assert.Equal("line 6: \":copy\" needs require \"copy\"", ParseError(script).Message);
        var actions = Actions(script.Replace("\"fileinto\"]", "\"fileinto\", \"copy\"]"));
        Assert.Equal([FileInto("Archive", "\\Seen", "$Work", "\\Flagged"), FileInto("Later", "\\Seen", "$Work")], actions);

        Assert.Equal([Keep("\\Answered", "Important")], Actions("require \"imap4flags\"; addflag \"\\\\Answered\"; addflag \"Important \\\\answered\";"));
        Assert.Equal([Keep("\\Deleted")], Actions("require \"imap4flags\"; setflag \"\\\\Seen\"; keep :flags \"\\\\Deleted\"; setflag \"x\";"));
        Assert.Equal([Keep()], Actions("require \"imap4flags\"; setflag \"a b\"; removeflag [\"A\", \"b\"];"));
    }

    [Fact]
    public void The_RFC_5232_example_with_a_variable()
    {
        const string script = """
            require ["imap4flags", "fileinto", "variables"];
            if size :over 1M {
                addflag "MyFlags" "Big";
                if header :is "From" "boss@company.example.com" {
                    # The message will be marked as "\Flagged" when filed into mailbox "Big messages"
                    addflag "MyFlags" "\\Flagged";
                }
                fileinto :flags "${MyFlags}" "Big messages";
            }
            if header :is "From" "grandma@example.net" {
                addflag "MyFlags" ["\\Answered", "$MDNSent"];
                fileinto :flags "${MyFlags}" "GrandMa";
            }
            if header :contains "Subject" "Company" {
                addflag "MyFlags" "\\Flagged";
                fileinto :flags "${MyFlags}" "Company";
            }
            if hasflag :contains "MyFlags" "Big" { keep; }
            if hasflag :count "ge" :comparator "i;ascii-numeric" "MyFlags" "2" { fileinto "two or more"; }
            """;
        var big = Context("From: boss@company.example.com\r\nSubject: Company memo\r\n\r\n" + new string('x', 1_100_000));
        Assert.Equal("line 19: \":count\" needs require \"relational\"", ParseError(script).Message);
        var actions = Actions(script.Replace("\"variables\"]", "\"variables\", \"relational\", \"comparator-i;ascii-numeric\"]"), big);
        Assert.Equal(
            [FileInto("Big messages", "Big", "\\Flagged"), FileInto("Company", "Big", "\\Flagged"), Keep(), FileInto("two or more")],
            actions);
        actions = Actions(script.Replace("\"variables\"]", "\"variables\", \"relational\", \"comparator-i;ascii-numeric\"]"), Context("From: grandma@example.net\r\n\r\nhi\r\n"));
        Assert.Equal([FileInto("GrandMa", "\\Answered", "$MDNSent"), FileInto("two or more")], actions);
    }

    [Theory]
    [InlineData("hasflag \"\\\\Seen\"", true)]
    [InlineData("hasflag \"\\\\seen\"", true)]
    [InlineData("hasflag :comparator \"i;octet\" \"\\\\seen\"", false)]
    [InlineData("hasflag [\"x\", \"$Work\"]", true)]
    [InlineData("hasflag \"Work\"", false)]
    [InlineData("hasflag :contains \"Work\"", true)]
    [InlineData("hasflag :matches \"\\\\\\\\S*\"", true)]
    [InlineData("hasflag :count \"eq\" :comparator \"i;ascii-numeric\" \"2\"", true)]
    [InlineData("hasflag \"v\" \"Red\"", true)]
    [InlineData("hasflag [\"v\", \"none\"] \"Green\"", true)]
    [InlineData("hasflag \"v\" \"\\\\Seen\"", false)]
    [InlineData("hasflag :count \"eq\" :comparator \"i;ascii-numeric\" [\"v\", \"w\"] \"3\"", true)]
    public void Hasflag(string test, bool expected)
    {
        var script = RequireAll + "setflag \"\\\\Seen $Work\"; setflag \"v\" \"Red Green\"; addflag \"w\" \"red Blue\";\n"
            + $"if {test} {{ fileinto \"yes\"; }} else {{ fileinto \"no\"; }}";
        var filed = Assert.Single(Actions(script).OfType<FileIntoAction>()).Folder;
        Assert.Equal(expected ? "yes" : "no", filed);
    }

    [Fact]
    public void Named_variables_hold_flags_as_text()
    {
        var actions = Actions("require [\"imap4flags\", \"variables\", \"reject\"]; setflag \"f\" \"a\"; addflag \"f\" [\"b a\", \"c\"]; removeflag \"f\" \"B\"; reject \"${f}\";");
        Assert.Equal([new RejectAction("a c", false)], actions);
    }
}
