using static Appliance.Tests.Filtering.Sieve.SieveTesting;

namespace Appliance.Tests.Filtering.Sieve;

/// <summary>
/// The tests of RFC 5228 §5 (address, header, exists, size, allof, anyof, not, true, false), the
/// match types and comparators of §2.7, relational (RFC 5231) and subaddress (RFC 5233), against
/// one message with a group, a display name, a detail and an encoded-word.
/// </summary>
public sealed class SieveTestsTests
{
    [Theory]
    [InlineData("address :is \"from\" \"coyote@desert.example.org\"", true)]
    [InlineData("address :is \"from\" \"COYOTE@Desert.Example.ORG\"", true)] // i;ascii-casemap is the default
    [InlineData("address :comparator \"i;octet\" :is \"from\" \"COYOTE@desert.example.org\"", false)]
    [InlineData("address :is \"from\" \"Wile E. Coyote\"", false)] // the display name is not part of the address
    [InlineData("address :localpart :is \"from\" \"coyote\"", true)]
    [InlineData("address :domain :is \"from\" \"desert.example.org\"", true)]
    [InlineData("address :all :is \"to\" \"roadrunner@acme.example.com\"", true)]
    [InlineData("address :is \"cc\" \"bugs@carrot.example.net\"", true)] // member of the group "friends"
    [InlineData("address :is \"cc\" \"friends\"", false)]
    [InlineData("address :domain :is [\"to\", \"cc\"] \"pond.example.net\"", true)]
    [InlineData("address :is \"cc\" \"sales+quotes@acme.example.com\"", true)]
    [InlineData("address :user :is \"cc\" \"sales\"", true)]
    [InlineData("address :detail :is \"cc\" \"quotes\"", true)]
    [InlineData("address :detail :matches \"to\" \"*\"", false)] // no "+": no detail at all (RFC 5233 §4)
    [InlineData("address :user :is \"to\" \"roadrunner\"", true)]
    [InlineData("address :contains \"from\" \"desert\"", true)]
    [InlineData("address :matches \"from\" \"*@*.example.org\"", true)]
    [InlineData("address :is \"x-caffeine\" \"x\"", false)]
    [InlineData("address :is \"reply-to\" \"coyote@desert.example.org\"", false)]
    public void Address(string test, bool expected) => Assert.Equal(expected, Holds(test));

    [Theory]
    [InlineData("header :is \"Subject\" \"I have a present for you\"", true)]
    [InlineData("header :is \"subject\" \"i have a PRESENT for you\"", true)]
    [InlineData("header :contains \"Subject\" \"present\"", true)]
    [InlineData("header :contains \"Subject\" \"\"", true)]
    [InlineData("header :contains \"X-Missing\" \"\"", false)]
    [InlineData("header :contains [\"X-Missing\", \"X-Caffeine\"] [\"nope\", \"N4\"]", true)]
    [InlineData("header :matches \"Subject\" \"I have a ?resent*\"", true)]
    [InlineData("header :matches \"Subject\" \"*present\"", false)]
    [InlineData("header :matches \"Subject\" \"*\"", true)]
    [InlineData("header :matches \"Subject\" \"I have a present for you?\"", false)]
    [InlineData("header :is \"from\" \"\\\"Wile E. Coyote\\\" <coyote@desert.example.org>\"", true)]
    [InlineData("exists \"X-Caffeine\"", true)]
    [InlineData("exists [\"From\", \"x-caffeine\"]", true)]
    [InlineData("exists [\"From\", \"X-Missing\"]", false)]
    [InlineData("true", true)]
    [InlineData("false", false)]
    [InlineData("not false", true)]
    [InlineData("allof (true, exists \"From\")", true)]
    [InlineData("allof (true, false)", false)]
    [InlineData("anyof (false, exists \"From\")", true)]
    [InlineData("anyof (false, not true)", false)]
    [InlineData("not anyof (false, allof (true, not exists \"x-missing\"))", false)]
    public void Header_exists_and_the_logical_tests(string test, bool expected) => Assert.Equal(expected, Holds(test));

    [Fact]
    public void Header_values_are_decoded_and_unfolded()
    {
        var message = "From: a@b.test\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?= aus\r\n =?ISO-8859-1?Q?K=F6ln?=\r\nX-Folded: one\r\n\ttwo\r\n\r\nbody\r\n";
        Assert.True(Holds("header :is \"subject\" \"Grüße aus Köln\"", Context(message)));
        Assert.True(Holds("header :is \"x-folded\" \"one\ttwo\"", Context(message)));
        var encodedName = "From: =?UTF-8?B?V2lsZSDDiS4=?= <wile@acme.test>\r\n\r\nx\r\n";
        Assert.True(Holds("address :is \"from\" \"wile@acme.test\"", Context(encodedName)));
        Assert.True(Holds("header :contains \"from\" \"Wile É.\"", Context(encodedName)));
    }

    [Fact]
    public void Matches_escapes_and_wildcards()
    {
        var message = "Subject: 50% off * today? yes\\no\r\n\r\nx\r\n";
        Assert.True(Holds("header :matches \"subject\" \"50% off \\\\* today\\\\? yes\\\\\\\\no\"", Context(message)));
        Assert.False(Holds("header :matches \"subject\" \"50% off \\\\* today\\\\?? yes\\\\\\\\no\"", Context(message)));
        Assert.True(Holds("header :matches \"subject\" \"*\\\\**\\\\?*\"", Context(message)));
        Assert.False(Holds("header :matches \"subject\" \"*\\\\**\\\\*\"", Context(message)));
        Assert.True(Holds("header :matches \"subject\" \"?0%*\"", Context(message)));
        // ? is one character, not one byte
        Assert.True(Holds("header :matches \"subject\" \"gr??e\"", Context("Subject: grüße\r\n\r\nx\r\n")));
        Assert.True(Holds("header :matches \"subject\" \"?\"", Context("Subject: 😀\r\n\r\nx\r\n")));
    }

    [Fact]
    public void Size_is_the_whole_message_in_octets()
    {
        var context = Context("Subject: x\r\n\r\n" + new string('a', 986)); // 1000 octets
        Assert.Equal(1000, context.Message.Length);
        Assert.True(Holds("size :over 999", context));
        Assert.False(Holds("size :over 1000", context));
        Assert.False(Holds("size :under 1000", context));
        Assert.True(Holds("size :under 1001", context));
        Assert.True(Holds("size :over 0K", context));
        Assert.True(Holds("size :under 1k", context));
    }

    // RFC 5231 §6 examples
    private const string Rfc5231Message = """
        Received: ...
        Received: ...
        Subject: example
        To: foo@example.com.invalid, baz@example.com.invalid
        CC: qux@example.com.invalid

        x
        """;

    [Theory]
    [InlineData("address :count \"ge\" :comparator \"i;ascii-numeric\" [\"to\", \"cc\"] [\"3\"]", true)]
    [InlineData("anyof ( header :count \"ge\" :comparator \"i;ascii-numeric\" [\"received\"] [\"3\"], header :count \"ge\" :comparator \"i;ascii-numeric\" [\"to\"] [\"3\"] )", false)]
    [InlineData("header :count \"ge\" :comparator \"i;ascii-numeric\" [\"received\", \"subject\"] [\"3\"]", true)]
    [InlineData("header :count \"ge\" :comparator \"i;ascii-numeric\" [\"to\", \"cc\"] [\"3\"]", false)]
    [InlineData("address :count \"eq\" :comparator \"i;ascii-numeric\" \"to\" \"2\"", true)]
    [InlineData("address :count \"ne\" :comparator \"i;ascii-numeric\" \"to\" \"2\"", false)]
    [InlineData("header :count \"eq\" :comparator \"i;ascii-numeric\" \"x-none\" \"0\"", true)]
    [InlineData("header :value \"lt\" \"subject\" \"f\"", true)]
    [InlineData("header :value \"gt\" \"subject\" \"EXAMPLE\"", false)] // casemap: equal
    [InlineData("header :value \"gt\" :comparator \"i;octet\" \"subject\" \"EXAMPLE\"", true)]
    [InlineData("address :domain :value \"le\" \"cc\" \"example.com.invalid\"", true)]
    public void Relational(string test, bool expected) => Assert.Equal(expected, Holds(test, Context(Rfc5231Message)));

    [Theory]
    [InlineData("4", "gt", "3", true)]
    [InlineData("10", "gt", "9", true)]     // numbers, not strings
    [InlineData("0010", "eq", "10", true)]  // leading zeros do not count
    [InlineData("3 (low)", "eq", "3", true)] // only the leading digits
    [InlineData("high", "gt", "99999999999999999999", true)] // no digits: positive infinity
    [InlineData("high", "eq", "low", true)]
    [InlineData("2", "lt", "high", true)]
    [InlineData("5", "le", "4", false)]
    public void The_ascii_numeric_comparator(string priority, string relation, string key, bool expected) =>
        Assert.Equal(expected, Holds($"header :value \"{relation}\" :comparator \"i;ascii-numeric\" \"x-priority\" \"{key}\"", Context($"X-Priority: {priority}\r\n\r\nx\r\n")));

    [Fact]
    public void The_default_casemap_orders_strings_and_is_compares_numbers_as_numbers()
    {
        var context = Context("X-Priority: 10\r\n\r\nx\r\n");
        Assert.True(Holds("header :value \"lt\" \"x-priority\" \"9\"", context)); // "10" < "9" as strings
        Assert.True(Holds("header :is :comparator \"i;ascii-numeric\" \"x-priority\" \"010\"", context));
        Assert.False(Holds("header :is \"x-priority\" \"010\"", context));
    }
}
