using Appliance.Filtering.Sieve;
using static Appliance.Tests.Filtering.Sieve.SieveTesting;

namespace Appliance.Tests.Filtering.Sieve;

/// <summary>Variables (RFC 5229): set and its modifiers, references, match variables, the string test — the RFC's examples.</summary>
public sealed class SieveVariablesTests
{
    /// <summary>The reason of a reject whose text is the given string after expansion.</summary>
    private static string Expanded(string setup, string text, SieveContext? context = null)
    {
        var actions = Actions("require [\"variables\", \"reject\", \"fileinto\", \"envelope\"];\n" + setup + $"\nreject \"{text}\";", context);
        return Assert.IsType<RejectAction>(Assert.Single(actions)).Reason;
    }

    [Fact]
    public void References_expand_once_and_bad_ones_stay_as_written()
    {
        // RFC 5229 §3
        const string setup = "set \"company\" \"ACME\";";
        Assert.Equal("ACME", Expanded(setup, "${company}"));
        Assert.Equal("ACME", Expanded(setup, "${Company}"));
        Assert.Equal("${BADACME", Expanded(setup, "${BAD${Company}"));
        Assert.Equal("${President, ACME Inc.}", Expanded(setup, "${President, ${Company} Inc.}"));
        Assert.Equal("&%${}!", Expanded(setup, "&%${}!"));
        Assert.Equal("${doh!}", Expanded(setup, "${doh!}"));
        Assert.Equal("[]", Expanded(setup, "[${unknown}]"));
        Assert.Equal("${ACME}", Expanded("set \"a\" \"${company}\"; set \"company\" \"ACME\";", "${${company}}"));
    }

    [Fact]
    public void A_multiline_value_with_references()
    {
        const string setup = """
            set "honorific"  "Mr";
            set "first_name" "Wile";
            set "last_name"  "Coyote";
            set "vacation" text:
            Dear ${HONORIFIC} ${last_name},
            I'm out, please leave a message after the meep.
            .
            ;
            """;
        Assert.Equal("Dear Mr Coyote,\r\nI'm out, please leave a message after the meep.\r\n", Expanded(setup, "${vacation}"));
    }

    [Theory]
    [InlineData("", "juMBlEd lETteRS")]
    [InlineData(":length", "15")]
    [InlineData(":lower", "jumbled letters")]
    [InlineData(":upper", "JUMBLED LETTERS")]
    [InlineData(":upperfirst", "JuMBlEd lETteRS")]
    [InlineData(":lowerfirst", "juMBlEd lETteRS")]
    [InlineData(":upperfirst :lower", "Jumbled letters")]
    [InlineData(":lower :upperfirst", "Jumbled letters")] // the order written does not matter (§4.1)
    [InlineData(":length :upper", "15")]
    public void Set_modifiers(string modifiers, string expected) =>
        Assert.Equal(expected, Expanded($"set \"a\" \"juMBlEd lETteRS\"; set {modifiers} \"b\" \"${{a}}\";", "${b}"));

    [Fact]
    public void Quotewildcard_makes_a_value_safe_in_matches()
    {
        Assert.Equal("Rock\\*", Expanded("set :quotewildcard \"b\" \"Rock*\";", "${b}"));
        const string script = """
            require ["variables", "fileinto"];
            set :quotewildcard "s" "50% off * today?";
            if header :matches "subject" "${s}" { fileinto "exact"; }
            if header :matches "subject" "50% off * today?" { fileinto "wild"; }
            """;
        Assert.Equal([FileInto("exact"), FileInto("wild")], Actions(script, Context("Subject: 50% off * today?\r\n\r\nx\r\n")));
        Assert.Equal([FileInto("wild")], Actions(script, Context("Subject: 50% off shoes today!\r\n\r\nx\r\n")));
        Assert.Equal("3", Expanded("set :length \"n\" \"a😀b\";", "${n}")); // characters, not octets or UTF-16 units
    }

    [Fact]
    public void Match_variables_of_the_RFC_examples()
    {
        const string script = """
            require ["fileinto", "variables"];

            if header :matches "List-ID" "*<*@*" {
                fileinto "INBOX.lists.${2}"; stop;
            }

            # Imagine the header
            # Subject: [acme-users] [fwd] version 1.0 is out
            if header :matches "Subject" "[*] *" {
                # ${1} will hold "acme-users",
                # ${2} will hold "[fwd] version 1.0 is out"
                fileinto "INBOX.lists.${1}"; stop;
            }

            # Imagine the header
            # To: coyote@ACME.Example.COM
            if address :matches ["To", "Cc"] ["coyote@**.com",
                    "wile@**.com"] {
                # ${0} is the matching address
                # ${1} is always the empty string
                # ${2} is part of the domain name ("ACME.Example")
                fileinto "INBOX.business.${2}"; stop;
            } else {
                # Control wouldn't reach this block if any match was
                # successful, so no match variables are set at this
                # point.
            }

            if anyof (true, address :domain :matches "To" "*.com") {
                # The second test is never evaluated, so there are
                # still no match variables set.
                fileinto "INBOX.other.${0}[${1}]";
                stop;
            }
            """;
        Assert.Equal([FileInto("INBOX.lists.sieve")], Actions(script, Context("List-ID: Sieve discussion <sieve@ietf.org>\r\n\r\nx\r\n")));
        Assert.Equal([FileInto("INBOX.lists.acme-users")], Actions(script, Context("Subject: [acme-users] [fwd] version 1.0 is out\r\n\r\nx\r\n")));
        Assert.Equal([FileInto("INBOX.business.ACME.Example")], Actions(script, Context("To: coyote@ACME.Example.COM\r\n\r\nx\r\n")));
        Assert.Equal([FileInto("INBOX.other.[]")], Actions(script, Context("To: someone@example.org\r\n\r\nx\r\n")));
    }

    [Fact]
    public void All_match_variables_and_their_scope()
    {
        const string setup = "if header :matches \"Subject\" \"[*] *\" { set \"s1\" \"${1}\"; set \"s2\" \"${2}\"; }";
        var context = Context("Subject: [acme-users] [fwd] version 1.0 is out\r\n\r\nx\r\n");
        Assert.Equal("acme-users|[fwd] version 1.0 is out", Expanded(setup, "${s1}|${s2}", context));
        Assert.Equal("ab|a|b|||", Expanded("if string :matches \"ab\" \"??*\" { set \"x\" \"\"; }", "${0}|${1}|${2}|${3}|${4}|${10}"));
        // a failed :matches leaves the variables of the last successful one
        Assert.Equal("ab|a", Expanded("if string :matches \"ab\" \"?*\" {} if string :matches \"zz\" \"a*\" {}", "${0}|${1}"));
        // envelope captures too
        Assert.Equal("ken|sieve", Expanded("if envelope :matches \"to\" \"*+*@*\" {}", "${1}|${2}", Context(to: "ken+sieve@example.org")));
    }

    [Theory]
    [InlineData("string :is \"${a}\" \"hello\"", true)]
    [InlineData("string :is \"${A}\" \"HELLO\"", true)]
    [InlineData("string :comparator \"i;octet\" :is \"${a}\" \"HELLO\"", false)]
    [InlineData("string :contains [\"x\", \"${a}\"] \"ell\"", true)]
    [InlineData("string :is \"${empty}\" \"\"", true)]
    [InlineData("string :count \"eq\" :comparator \"i;ascii-numeric\" [\"${a}\", \"${empty}\", \"b\"] \"2\"", true)] // empty strings are not counted
    [InlineData("string :value \"gt\" :comparator \"i;ascii-numeric\" \"${n}\" \"9\"", true)]
    public void The_string_test(string test, bool expected)
    {
        var actions = Actions(RequireAll + $"set \"a\" \"hello\"; set \"empty\" \"\"; set \"n\" \"10\"; if {test} {{ fileinto \"yes\"; }}");
        Assert.Equal(expected, actions.Contains(FileInto("yes")));
    }

    [Fact]
    public void Without_require_variables_a_reference_is_text()
    {
        Assert.Equal([FileInto("${a}")], Actions("require \"fileinto\"; fileinto \"${a}\";"));
        Assert.Equal("line 1: \"set\" needs require \"variables\"", ParseError("set \"a\" \"b\";").Message);
    }

    [Fact]
    public void Variables_reach_actions_and_an_empty_folder_is_a_run_time_error()
    {
        var actions = Actions("require [\"variables\", \"fileinto\"]; if address :matches \"from\" \"*@*\" { fileinto \"Senders/${2}\"; }");
        Assert.Equal([FileInto("Senders/desert.example.org")], actions);
        var outcome = Run("require [\"variables\", \"fileinto\"];\nset \"f\" \"\";\nfileinto \"${f}\";");
        Assert.Equal("line 3: fileinto with an empty folder name", outcome.Error);
        Assert.Equal([Keep()], outcome.Actions);
    }

    [Fact]
    public void A_value_is_bounded()
    {
        var doubling = "require [\"variables\", \"reject\"]; set \"a\" \"0123456789abcdef\";" + string.Concat(Enumerable.Repeat("set \"a\" \"${a}${a}\";", 14)) + "reject \"${a}\";";
        var reject = Assert.IsType<RejectAction>(Assert.Single(Actions(doubling)));
        Assert.Equal(32 * 1024, reject.Reason.Length);
    }
}
