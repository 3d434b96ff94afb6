using static Appliance.Tests.Filtering.Sieve.SieveTesting;

namespace Appliance.Tests.Filtering.Sieve;

/// <summary>The body test (RFC 5173): :raw, :text, :content by type, decoded transfer encodings and charsets, nested messages.</summary>
public sealed class SieveBodyTests
{
    private const string Multipart = """
        From: a@example.test
        To: b@example.test
        Subject: parts
        MIME-Version: 1.0
        Content-Type: multipart/mixed; boundary="outer"

        This is the prologue.
        --outer
        Content-Type: text/plain; charset=iso-8859-1
        Content-Transfer-Encoding: quoted-printable

        Gr=FC=DFe aus K=F6ln, with a secret word: swordfish
        --outer
        Content-Type: text/html; charset=utf-8
        Content-Transfer-Encoding: base64

        PHA+SHRtbCB3aXRoIGEgPGI+YmFuYW5hPC9iPjwvcD4=
        --outer
        Content-Type: application/octet-stream
        Content-Transfer-Encoding: base64

        YmluYXJ5IGtpd2k=
        --outer
        Content-Type: message/rfc822

        From: inner@example.test
        Subject: forwarded mango
        Content-Type: text/plain

        The inner text has a papaya.
        --outer--
        The epilogue has a cherry.
        """;

    [Theory]
    [InlineData("body :contains \"Grüße aus Köln\"", true)]              // quoted-printable, ISO-8859-1, decoded
    [InlineData("body :text :contains \"swordfish\"", true)]
    [InlineData("body :contains \"=FC\"", false)]
    [InlineData("body :raw :contains \"Gr=FC=DFe\"", true)]               // :raw is undecoded
    [InlineData("body :raw :contains \"Grüße\"", false)]
    [InlineData("body :contains \"banana\"", true)]                     // text/html is text
    [InlineData("body :content \"text/plain\" :contains \"banana\"", false)]
    [InlineData("body :content \"text/html\" :contains \"<b>banana</b>\"", true)]
    [InlineData("body :content \"text\" :contains \"banana\"", true)]
    [InlineData("body :contains \"kiwi\"", false)]                      // not text
    [InlineData("body :content \"application/octet-stream\" :contains \"binary kiwi\"", true)]
    [InlineData("body :content \"\" :contains \"kiwi\"", true)]
    [InlineData("body :content \"multipart\" :contains \"prologue\"", true)]
    [InlineData("body :content \"multipart\" :contains \"cherry\"", true)]
    [InlineData("body :content \"multipart\" :contains \"swordfish\"", false)]
    [InlineData("body :contains \"prologue\"", false)]
    [InlineData("body :contains \"papaya\"", true)]                     // text inside the forwarded message
    [InlineData("body :content \"message/rfc822\" :contains \"forwarded mango\"", true)]
    [InlineData("body :contains \"forwarded mango\"", false)]
    [InlineData("body :raw :contains \"YmluYXJ5IGtpd2k=\"", true)]
    [InlineData("body :content [\"image\", \"audio\"] :contains \"\"", false)]
    [InlineData("body :matches \"*sword?ish*\"", true)]
    public void Body_of_a_multipart_message(string test, bool expected) => Assert.Equal(expected, Holds(test, Context(Multipart)));

    [Fact]
    public void Body_of_a_single_part_message()
    {
        Assert.True(Holds("body :contains \"anvil thing\""));
        Assert.True(Holds("body :raw :matches \"Look, I'm sorry*cliff.*\""));
        Assert.False(Holds("body :contains \"X-Caffeine\"")); // the header is not the body
        Assert.True(Holds("body :is \"\"", Context("Subject: empty\r\n\r\n")));
    }

    [Fact]
    public void Body_needs_its_require() =>
        Assert.Equal("line 1: \"body\" needs require \"body\"", ParseError("if body :contains \"x\" { keep; }").Message);
}
