using Appliance.Filtering.Sieve;
using static Appliance.Tests.Filtering.Sieve.SieveTesting;

namespace Appliance.Tests.Filtering.Sieve;

/// <summary>The envelope test (RFC 5228 §5.4) with the address parts and subaddress (RFC 5233 §5 examples).</summary>
public sealed class SieveEnvelopeTests
{
    private static SieveContext Envelope(string from, string to) => Context(from: from, to: to);

    [Theory]
    [InlineData("envelope :is \"from\" \"coyote@desert.example.org\"", true)]
    [InlineData("envelope :is \"FROM\" \"Coyote@Desert.example.org\"", true)]
    [InlineData("envelope :is \"to\" \"ken+sieve@example.org\"", true)]
    [InlineData("envelope :all :is \"to\" \"ken+sieve@example.org\"", true)]
    [InlineData("envelope :localpart :is \"to\" \"ken+sieve\"", true)]
    [InlineData("envelope :domain :is \"to\" \"example.org\"", true)]
    [InlineData("envelope :domain :is \"from\" \"desert.example.org\"", true)]
    [InlineData("envelope :user :is \"to\" \"ken\"", true)]
    [InlineData("envelope :detail :is \"to\" \"sieve\"", true)]
    [InlineData("envelope :detail :is \"from\" \"\"", false)]
    [InlineData("envelope :user :is \"from\" \"coyote\"", true)]
    [InlineData("envelope :is [\"from\", \"to\"] \"ken+sieve@example.org\"", true)]
    [InlineData("envelope :matches \"to\" \"ken+*@*\"", true)]
    [InlineData("envelope :is \"to\" \"ken@example.org\"", false)]
    [InlineData("envelope :count \"eq\" :comparator \"i;ascii-numeric\" [\"to\", \"from\"] \"2\"", true)]
    public void Parts_of_the_envelope(string test, bool expected) =>
        Assert.Equal(expected, Holds(test, Envelope("coyote@desert.example.org", "ken+sieve@example.org")));

    [Fact]
    public void An_empty_detail_and_the_null_sender()
    {
        Assert.True(Holds("envelope :detail :is \"to\" \"\"", Envelope("a@b.test", "ken+@example.org")));
        Assert.True(Holds("envelope :user :is \"to\" \"ken\"", Envelope("a@b.test", "ken+@example.org")));
        var bounce = Envelope("", "ken@example.org");
        Assert.True(Holds("envelope :is \"from\" \"\"", bounce));
        Assert.False(Holds("envelope :matches \"from\" \"?*\"", bounce));
    }

    [Fact]
    public void The_RFC_5233_example_files_by_detail()
    {
        const string script = """
            require ["envelope", "subaddress", "fileinto"];

            # In this example the same user account receives mail for both
            # "ken@example.com" and "postmaster@example.com"

            # File all messages to postmaster into a single mailbox,
            # ignoring the :detail part.
            if envelope :user "to" "postmaster" {
                fileinto "inbox.postmaster";
                stop;
            }

            # File mailing list messages (subscribed as "ken+mta-filters").
            if envelope :detail "to" "mta-filters" {
                fileinto "inbox.ietf-mta-filters";
            }

            # Redirect all mail sent to "ken+foo".
            if envelope :detail "to" "foo" {
                redirect "ken@example.net";
            }
            """;
        Assert.Equal([FileInto("inbox.postmaster")], Actions(script, Envelope("a@b.test", "postmaster+mta-filters@example.com")));
        Assert.Equal([FileInto("inbox.ietf-mta-filters")], Actions(script, Envelope("a@b.test", "ken+mta-filters@example.com")));
        Assert.Equal([new RedirectAction("ken@example.net")], Actions(script, Envelope("a@b.test", "ken+foo@example.com")));
        Assert.Equal([Keep()], Actions(script, Envelope("a@b.test", "ken@example.com")));
    }
}
