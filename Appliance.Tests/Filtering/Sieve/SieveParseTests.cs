using Appliance.Filtering.Sieve;
using static Appliance.Tests.Filtering.Sieve.SieveTesting;

namespace Appliance.Tests.Filtering.Sieve;

/// <summary>
/// Parsing and validation (RFC 5228 §2, §8): scripts that are accepted, and for each kind of
/// mistake the line and a message a user can act on.
/// </summary>
public sealed class SieveParseTests
{
    // RFC 5228 §9, the example script, word for word apart from the message it is run on
    private const string Rfc5228Example = """
        #
        # Example Sieve Filter
        # Declare any optional features or extension used by the script
        #
        require ["fileinto"];

        #
        # Handle messages from known mailing lists
        # Move messages from IETF filter discussion list to filter mailbox
        #
        if header :is "Sender" "owner-ietf-mta-filters@imc.org"
                {
                fileinto "filter";  # move to "filter" mailbox
                }
        #
        # Keep all messages to or from people in my company
        #
        elsif address :DOMAIN :is ["From", "To"] "example.com"
                {
                keep;               # keep in "In" mailbox
                }

        #
        # Try and catch unsolicited email.  If a message is not to me,
        # or it contains a subject known to be spam, file it away.
        #
        elsif anyof (NOT address :all :contains
                       ["To", "Cc", "Bcc"] "me@example.com",
                     header :matches "subject"
                       ["*make*money*fast*", "*university*dipl*mas*"])
                {
                fileinto "spam";   # move to "spam" mailbox
                }
        else
                {
                # Move all other (non-company) mail to "personal"
                # mailbox.
                fileinto "personal";
                }
        """;

    [Theory]
    [InlineData("Sender: owner-ietf-mta-filters@imc.org\r\nTo: me@example.com\r\n\r\nx\r\n", "filter")]
    [InlineData("From: boss@example.com\r\nTo: me@example.com\r\n\r\nx\r\n", "INBOX")]
    [InlineData("From: a@other.test\r\nTo: someone@else.test\r\n\r\nx\r\n", "spam")]
    [InlineData("From: a@other.test\r\nTo: friends@other.test\r\nCc: me@example.com\r\nSubject: Make lots of MONEY fast\r\n\r\nx\r\n", "spam")]
    [InlineData("From: a@other.test\r\nTo: friends@other.test\r\nCc: me@example.com\r\nSubject: lunch\r\n\r\nx\r\n", "personal")]
    [InlineData("From: a@other.test\r\nTo: me@example.com\r\nSubject: Make lots of MONEY fast\r\n\r\nx\r\n", "INBOX")]
    public void The_RFC_5228_example_script_files_each_message(string message, string folder)
    {
        var actions = Actions(Rfc5228Example, Context(message));
        var action = Assert.Single(actions);
        if (folder == "INBOX") Assert.Equal(Keep(), action);
        else Assert.Equal(FileInto(folder), action);
    }

    [Fact]
    public void Strings_escapes_multiline_text_and_comments()
    {
        var script = "require \"reject\"; /* a bracket\ncomment */ reject text: # comment after text:\r\nline one \"quoted\" \\n\r\n..dot-stuffed\r\n.not stuffed\r\n.\r\n;";
        var reject = Assert.IsType<RejectAction>(Assert.Single(Actions(script)));
        Assert.Equal("line one \"quoted\" \\n\r\n.dot-stuffed\r\nnot stuffed\r\n", reject.Reason);

        reject = Assert.IsType<RejectAction>(Assert.Single(Actions("require \"reject\"; reject \"a \\\"b\\\" c\\\\d \\e\";")));
        Assert.Equal("a \"b\" c\\d e", reject.Reason); // an undefined escape is the character alone (§2.4.2)
    }

    [Fact]
    public void Identifiers_and_tags_are_case_insensitive_and_numbers_take_quantifiers()
    {
        Assert.Equal([FileInto("big")], Actions("REQUIRE \"fileinto\"; IF SIZE :OVER 1K { FILEINTO \"big\"; } ELSE { FileInto \"small\"; }", Context(Message + new string('x', 1100))));
        Assert.True(Holds("size :under 1M"));
        Assert.False(Holds("size :over 1G"));
        Assert.True(Holds("not size :under 100"));
    }

    [Fact]
    public void Encoded_characters_decode_only_when_required()
    {
        Assert.Equal([FileInto("Ab€😀")], Actions("require [\"fileinto\", \"encoded-character\"]; fileinto \"${hex: 41 62 e2 82 ac}${unicode:1F600}\";"));
        Assert.Equal([FileInto("${hex:41}")], Actions("require \"fileinto\"; fileinto \"${hex:41}\";"));
        Assert.Equal([FileInto("${hex:4G}")], Actions("require [\"fileinto\", \"encoded-character\"]; fileinto \"${hex:4G}\";"));
        Assert.Equal("line 1: \"D800\" in ${unicode:...} is not a Unicode character", ParseError("require [\"fileinto\", \"encoded-character\"]; fileinto \"${unicode:D800}\";").Message);
    }

    [Theory]
    [InlineData("keep;\nfilein \"x\";", 2, "unknown command \"filein\"")]
    [InlineData("require \"foo\";", 1, "extension \"foo\" is not supported")]
    [InlineData("require [\"fileinto\", \"regex\"];", 1, "extension \"regex\" is not supported")]
    [InlineData("\n\nfileinto \"x\";", 3, "\"fileinto\" needs require \"fileinto\"")]
    [InlineData("keep;\nrequire \"fileinto\";", 2, "\"require\" must come before any other command")]
    [InlineData("keep\ndiscard;", 1, "missing \";\" after \"keep\" (found \"discard\")")]
    [InlineData("keep", 1, "missing \";\" at the end of \"keep\"")]
    [InlineData("if true {\n keep;\n", 3, "block opened on line 1 is never closed with \"}\"")]
    [InlineData("keep;\n}", 2, "expected a command, found \"}\"")]
    [InlineData("if header :is \"a\" \"b\"\n  keep;", 2, "\"if\" needs a block in braces, found \"keep\"")]
    [InlineData("if frobnicate { keep; }", 1, "unknown test \"frobnicate\"")]
    [InlineData("if keep { keep; }", 1, "\"keep\" is a command, not a test")]
    [InlineData("\nexists \"x\";", 2, "\"exists\" is a test, not a command (use it in \"if\")")]
    [InlineData("elsif true { keep; }", 1, "\"elsif\" without an \"if\" before it")]
    [InlineData("if true { keep; } else { keep; } else { keep; }", 1, "\"else\" without an \"if\" before it")]
    [InlineData("if header :is :contains \"a\" \"b\" { keep; }", 1, "\":is\" and \":contains\" cannot be used together")]
    [InlineData("if header :is :is \"a\" \"b\" { keep; }", 1, "\":is\" is given twice")]
    [InlineData("if header :over \"a\" \"b\" { keep; }", 1, "\"header\" has no tag \":over\"")]
    [InlineData("if header \"a\" { keep; }", 1, "\"header\" takes 2 arguments, not 1")]
    [InlineData("if size 100 { keep; }", 1, "\"size\" takes no arguments, not 1")]
    [InlineData("if size :over \"1\" { keep; }", 1, "\":over\" must be followed by a number")]
    [InlineData("if size { keep; }", 1, "\"size\" needs one of :over or :under")]
    [InlineData("if header \"a\" :is \"b\" { keep; }", 1, "tag \":is\" must come before the other arguments of \"header\"")]
    [InlineData("if header :comparator \"i;klingon\" \"a\" \"b\" { keep; }", 1, "comparator \"i;klingon\" is not supported (i;octet, i;ascii-casemap, i;ascii-numeric)")]
    [InlineData("if header :comparator \"i;ascii-numeric\" \"a\" \"b\" { keep; }", 1, "comparator \"i;ascii-numeric\" needs require \"comparator-i;ascii-numeric\"")]
    [InlineData("if header :count \"gt\" \"a\" \"1\" { keep; }", 1, "\":count\" needs require \"relational\"")]
    [InlineData("require \"relational\"; if header :value \"greater\" \"a\" \"1\" { keep; }", 1, "\"greater\" after :value is not one of gt, ge, lt, le, eq, ne")]
    [InlineData("if header :is \"a b\" \"x\" { keep; }", 1, "\"a b\" is not a header field name")]
    [InlineData("redirect \"not an address\";", 1, "\"not an address\" is not an email address to redirect to")]
    [InlineData("require \"fileinto\";\nfileinto \"\";", 2, "fileinto needs a folder name, not an empty string")]
    [InlineData("require \"fileinto\"; fileinto [\"a\", \"b\"];", 1, "argument 1 of \"fileinto\" must be a string")]
    [InlineData("require \"envelope\"; if envelope \"auth\" \"x\" { keep; }", 1, "envelope part \"auth\" is not supported (\"from\" or \"to\")")]
    [InlineData("require \"variables\"; set \"1a\" \"x\";", 1, "\"1a\" is not a variable name (letters, digits and \"_\", not starting with a digit)")]
    [InlineData("require \"variables\"; set :lower :upper \"a\" \"x\";", 1, "\":lower\" and \":upper\" cannot be used together")]
    [InlineData("require \"imap4flags\"; setflag \"v\" \"\\\\Seen\";", 1, "the variable name argument of \"setflag\" needs require \"variables\"")]
    [InlineData("require \"vacation\"; vacation :seconds 10 \"away\";", 1, "\":seconds\" needs require \"vacation-seconds\"")]
    [InlineData("require \"vacation-seconds\"; vacation :days 1 :seconds 10 \"away\";", 1, "\":days\" and \":seconds\" cannot be used together")]
    [InlineData("require \"fileinto\"; fileinto :copy \"x\";", 1, "\":copy\" needs require \"copy\"")]
    [InlineData("keep;\n\"x\";", 2, "expected a command, found a string")]
    [InlineData("if anyof (true false) { keep; }", 1, "expected \",\" or \")\" in the test list opened on line 1, found \"false\"")]
    [InlineData("if header [\"a\" \"b\"] \"c\" { keep; }", 1, "expected \",\" or \"]\" in the list opened on line 1, found a string")]
    [InlineData("keep; /* never closed", 1, "comment \"/*\" is never closed with \"*/\"")]
    [InlineData("keep;\nreject \"unterminated;", 2, "string is never closed with '\"'")]
    [InlineData("require \"reject\";\nreject text:\nno end\n", 2, "\"text:\" string is never closed with a line holding only \".\"")]
    [InlineData("require \"reject\"; reject text: x\n.\n;", 1, "\"text:\" must be followed by the end of the line")]
    [InlineData("if size :over 10X { keep; }", 1, "\"10X\" is not a number (digits, then K, M or G)")]
    [InlineData("if size :over 99999999999 { keep; }", 1, "the number 99999999999 is too large")]
    [InlineData("keep; @", 1, "unexpected character \"@\"")]
    [InlineData("keep :flags \"x\";", 1, "\":flags\" needs require \"imap4flags\"")]
    [InlineData("stop { keep; }", 1, "\"stop\" takes no block (missing \";\"?)")]
    [InlineData("if not { keep; }", 1, "\"not\" needs one test")]
    public void An_error_names_its_line_and_what_is_wrong(string script, int line, string message)
    {
        var error = ParseError(script);
        Assert.Equal(line, error.Line);
        Assert.Equal($"line {line}: {message}", error.Message);
    }

    [Fact]
    public void Limits_on_size_nesting_and_string_length()
    {
        var big = "keep;" + new string(' ', 70_000);
        Assert.Equal("line 1: the script is 70005 bytes, more than the limit of 65536", ParseError(big).Message);
        SieveScript.Parse(big, maxBytes: 100_000);

        var deep = string.Concat(Enumerable.Repeat("if true {\n", 33)) + "keep;" + new string('}', 33);
        Assert.Equal("line 33: blocks nested deeper than 32 levels", ParseError(deep).Message);
        SieveScript.Parse(string.Concat(Enumerable.Repeat("if true {\n", 32)) + "keep;" + new string('}', 32));

        var nested = "if " + string.Concat(Enumerable.Repeat("not ", 40)) + "true { keep; }";
        Assert.Equal("line 1: tests nested deeper than 32 levels", ParseError(nested).Message);

        var longString = "require \"reject\";\nreject \"" + new string('a', 40_000) + "\";";
        Assert.Equal("line 2: string longer than 32768 characters", ParseError(longString).Message);
    }

    [Fact]
    public void The_extension_list_is_what_require_accepts()
    {
        Assert.Equal(
            "fileinto reject ereject envelope encoded-character body variables vacation vacation-seconds imap4flags copy mailbox subaddress relational comparator-i;ascii-numeric",
            string.Join(' ', SieveScript.Extensions));
        foreach (var extension in SieveScript.Extensions) SieveScript.Parse($"require \"{extension}\";");
        SieveScript.Parse("require [\"comparator-i;octet\", \"comparator-i;ascii-casemap\"];");
        Assert.Equal(["envelope", "fileinto"], SieveScript.Parse("require [\"fileinto\", \"envelope\"];").RequiredExtensions.Order());
    }

    [Fact]
    public void An_empty_script_keeps()
    {
        Assert.Equal([Keep()], Actions(""));
        Assert.Equal([Keep()], Actions("# nothing but a comment\n"));
    }
}
