using System.Text;
using Appliance.Directory;
using Appliance.Relay;
using Microsoft.Data.Sqlite;

namespace Appliance.Tests.Relay;

/// <summary>DKIM signing of outgoing mail: the signature verifies against the published record, the message is untouched.</summary>
public sealed class DkimSigningTests : IDisposable
{
    // One key for the class: generating RSA 2048 takes a noticeable moment.
    private static readonly Lazy<DkimKey> SharedKey = new(() => DkimKey.Generate("example.test", DateTimeOffset.UtcNow, null));
    private static DkimKey Key => SharedKey.Value;

    private readonly string _dir = Path.Combine(Path.GetTempPath(), "appliance-dkim-" + Guid.NewGuid().ToString("N")[..12]);

    public void Dispose()
    {
        SqliteConnection.ClearAllPools();
        try { System.IO.Directory.Delete(_dir, recursive: true); }
        catch (IOException) { }
    }

    /// <summary>Folded headers, an 8-bit UTF-8 body with trailing spaces, no CRLF after the last line.</summary>
    private static byte[] Message(string from = "Alice <alice@example.test>") => Encoding.UTF8.GetBytes(
        $"From: {from}\r\n" +
        "To: bob@remote.test,\r\n\tcarol@remote.test\r\n" +
        "Subject: a subject long enough that the client\r\n folded it onto a second line\r\n" +
        "Date: Thu, 26 Nov 2026 10:00:00 +0000\r\n" +
        "Message-ID: <1@example.test>\r\n" +
        "Received: from client by mx.test; Thu, 26 Nov 2026 10:00:00 +0000\r\n" +
        "MIME-Version: 1.0\r\n" +
        "Content-Type: text/plain; charset=utf-8\r\n" +
        "Content-Transfer-Encoding: 8bit\r\n" +
        "\r\n" +
        "Grüße aus Zürich — ça va?  \r\n" +
        "\r\n" +
        "A line   with\tinner whitespace.\r\n" +
        "no final newline");

    private static byte[] Replace(byte[] message, string from, string to) =>
        Encoding.UTF8.GetBytes(Encoding.UTF8.GetString(message).Replace(from, to, StringComparison.Ordinal));

    private static string Txt => DkimSigning.TxtRecord(Key);

    [Fact]
    public void ASignedMessage_VerifiesAgainstThePublishedKey_AndIsTheOriginalBytesAfterTheSignature()
    {
        var original = Message();

        var signed = DkimSigning.Sign(original, Key);

        Assert.True(DkimTestVerifier.MimeKitVerifies(signed, Txt), "MimeKit's DkimVerifier refused the signature");
        Assert.True(DkimTestVerifier.RawVerifies(signed, Txt), "the signature does not verify over the raw bytes");
        var headerLength = signed.Length - original.Length;
        Assert.True(headerLength > 0);
        Assert.Equal(original, signed[headerLength..]);
        var header = Encoding.ASCII.GetString(signed, 0, headerLength);
        Assert.StartsWith("DKIM-Signature:", header);
        Assert.EndsWith("\r\n", header);
        // One header field: every further line is a continuation, every line ends in CRLF.
        Assert.All(header.TrimEnd('\r', '\n').Split("\r\n").Skip(1), line => Assert.True(line[0] is ' ' or '\t', $"not folded: {line}"));
        Assert.DoesNotContain('\n', header.Replace("\r\n", ""));

        var tags = DkimTestVerifier.Tags(signed);
        Assert.Equal(("1", "rsa-sha256", "relaxed/relaxed", "example.test", Key.Selector), (tags["v"], tags["a"], tags["c"], tags["d"], tags["s"]));
        Assert.True(long.Parse(tags["t"]) >= DateTimeOffset.UtcNow.AddMinutes(-5).ToUnixTimeSeconds());
        // Signed: what is present, From once more than present; never the trace fields.
        Assert.Equal(["from", "from", "to", "subject", "date", "message-id", "mime-version", "content-type", "content-transfer-encoding"],
            tags["h"].ToLowerInvariant().Split(':'));
    }

    [Fact]
    public void ChangingTheBodyOrASignedHeader_BreaksTheSignature_WhitespaceDoesNot()
    {
        var signed = DkimSigning.Sign(Message(), Key);

        var body = Replace(signed, "Zürich", "Zurich");
        var subject = Replace(signed, "Subject: a subject", "Subject: A subject");
        var addedFrom = Replace(signed, "To: bob", "From: mallory@evil.test\r\nTo: bob");
        var rewrapped = Replace(Replace(signed, "inner whitespace.", "inner   whitespace.   "), "no final newline", "no final newline\r\n\r\n");
        var unsignedHeader = Replace(signed, "Received: from client", "Received: from another client");

        foreach (var (why, bytes) in new[] { ("body", body), ("subject", subject), ("added From", addedFrom) })
        {
            Assert.False(DkimTestVerifier.MimeKitVerifies(bytes, Txt), $"{why} changed, MimeKit still verifies");
            Assert.False(DkimTestVerifier.RawVerifies(bytes, Txt), $"{why} changed, still verifies");
        }
        // relaxed/relaxed: whitespace and trailing blank lines do not count; unsigned fields are free.
        foreach (var (why, bytes) in new[] { ("whitespace", rewrapped), ("Received", unsignedHeader) })
        {
            Assert.True(DkimTestVerifier.MimeKitVerifies(bytes, Txt), $"{why} changed, MimeKit refuses");
            Assert.True(DkimTestVerifier.RawVerifies(bytes, Txt), $"{why} changed, refused");
        }
        // Another domain's key does not verify it.
        var other = DkimKey.Generate("example.test", DateTimeOffset.UtcNow, Key.Selector);
        Assert.False(DkimTestVerifier.RawVerifies(signed, DkimSigning.TxtRecord(other)));
    }

    [Fact]
    public void AMultipartMessageWithAnAttachment_Verifies()
    {
        var original = Encoding.UTF8.GetBytes(
            "From: alice@example.test\r\nTo: bob@remote.test\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n" +
            "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\n" +
            "preamble\r\n--b1\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n" +
            "Gr=C3=BC=C3=9Fe\r\n--b1\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename=x.bin\r\n" +
            "Content-Transfer-Encoding: base64\r\n\r\n" + Convert.ToBase64String(new byte[300], Base64FormattingOptions.InsertLineBreaks) +
            "\r\n--b1--\r\nepilogue\r\n");

        var signed = DkimSigning.Sign(original, Key);

        Assert.Equal(original, signed[(signed.Length - original.Length)..]);
        Assert.True(DkimTestVerifier.MimeKitVerifies(signed, Txt));
        Assert.True(DkimTestVerifier.RawVerifies(signed, Txt));
    }

    [Fact]
    public void SignIfKeyed_SignsForTheFromDomainsKey_AndLeavesOtherMailAlone()
    {
        System.IO.Directory.CreateDirectory(_dir);
        var directory = new MailDirectory(Path.Combine(_dir, "directory.db"), ["a"], new LoginThrottle(100, TimeSpan.FromMinutes(5)));
        directory.AddDomain("example.test");
        directory.AddDomain("nokey.test");
        var message = Message();
        Assert.Equal(message, DkimSigning.SignIfKeyed(message, directory)); // no key yet (and that is now remembered)

        using (var t = directory.BeginTransaction())
        {
            directory.SetDkimKey(t, "example.test", Key.Selector, Key.PrivateKeyPem);
            t.Commit();
        }

        // The From domain decides, in any case; the first address of several.
        var signed = DkimSigning.SignIfKeyed(Message("\"Alice\" <Alice@Example.TEST>, bob@nokey.test"), directory);
        Assert.True(DkimTestVerifier.RawVerifies(signed, Txt));
        Assert.Equal("example.test", DkimTestVerifier.Tags(signed)["d"]);
        foreach (var from in new[] { "bob@nokey.test", "x@elsewhere.test", "not an address" })
        {
            var other = Message(from);
            Assert.Equal(other, DkimSigning.SignIfKeyed(other, directory));
        }
        var noFrom = Encoding.ASCII.GetBytes("To: bob@remote.test\r\nSubject: no from\r\n\r\nbody\r\n");
        Assert.Equal(noFrom, DkimSigning.SignIfKeyed(noFrom, directory));

        // A change rolled back leaves the key; a new key replaces it at once; a removed domain has none.
        var next = DkimKey.Generate("example.test", DateTimeOffset.UtcNow, Key.Selector);
        using (var t = directory.BeginTransaction())
            directory.SetDkimKey(t, "example.test", next.Selector, next.PrivateKeyPem);
        Assert.Equal(Key.Selector, directory.DkimKey("example.test")?.Selector);
        using (var t = directory.BeginTransaction())
        {
            directory.SetDkimKey(t, "example.test", next.Selector, next.PrivateKeyPem);
            t.Commit();
        }
        Assert.Equal(next, directory.DkimKey("example.test"));
        Assert.Equal(next.Selector, DkimTestVerifier.Tags(DkimSigning.SignIfKeyed(message, directory))["s"]);
        directory.RemoveDomain("example.test");
        Assert.Null(directory.DkimKey("example.test"));
        Assert.Equal(message, DkimSigning.SignIfKeyed(message, directory));

        // Kept across a restart (it is in directory.db, not only in memory).
        directory.AddDomain("example.test");
        using (var t = directory.BeginTransaction())
        {
            directory.SetDkimKey(t, "example.test", next.Selector, next.PrivateKeyPem);
            t.Commit();
        }
        var reopened = new MailDirectory(Path.Combine(_dir, "directory.db"), ["a"], new LoginThrottle(100, TimeSpan.FromMinutes(5)));
        Assert.Equal(next, reopened.DkimKey("example.test"));
    }

    [Fact]
    public void SetDkimKey_RefusesWhatIsNotAKeyOrNotADomain()
    {
        System.IO.Directory.CreateDirectory(_dir);
        var directory = new MailDirectory(Path.Combine(_dir, "directory.db"), ["a"], new LoginThrottle(100, TimeSpan.FromMinutes(5)));
        directory.AddDomain("example.test");
        using var t = directory.BeginTransaction();
        Assert.Equal(DirectoryError.NotFound, Assert.Throws<DirectoryException>(() => directory.SetDkimKey(t, "unknown.test", "s1", Key.PrivateKeyPem)).Kind);
        Assert.Contains("not an RSA key", Assert.Throws<DirectoryException>(() => directory.SetDkimKey(t, "example.test", "s1", "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")).Message);
        Assert.Contains("selector", Assert.Throws<DirectoryException>(() => directory.SetDkimKey(t, "example.test", "bad selector", Key.PrivateKeyPem)).Message);
    }

    [Fact]
    public void TheRecord_IsNamedBySelectorAndDomain_AndItsZoneLineSplitsTheValue()
    {
        var record = DkimSigning.Record(Key);
        Assert.Equal($"{Key.Selector}._domainkey.example.test", record.Name);
        Assert.StartsWith("v=DKIM1; k=rsa; p=MII", record.Value);

        var line = DkimSigning.ZoneLine(record);

        Assert.StartsWith($"{Key.Selector}._domainkey.example.test. 3600 IN TXT ( \"", line);
        var strings = System.Text.RegularExpressions.Regex.Matches(line, "\"([^\"]*)\"").Select(m => m.Groups[1].Value).ToList();
        Assert.True(strings.Count >= 2, "a 2048-bit key does not fit one 255-character string");
        Assert.All(strings, s => Assert.True(s.Length <= 255));
        Assert.Equal(record.Value, string.Concat(strings));
    }

    [Fact]
    public void Selectors_AreTheUtcDate_WithALetterForASecondKeyThatDay()
    {
        var day = new DateTimeOffset(2026, 11, 26, 23, 30, 0, TimeSpan.FromHours(-5)); // already the 27th in UTC
        Assert.Equal("s20261127", DkimKey.NextSelector(day, null));
        Assert.Equal("s20261127", DkimKey.NextSelector(day, "s20261126b"));
        Assert.Equal("s20261127a", DkimKey.NextSelector(day, "s20261127"));
        Assert.Equal("s20261127b", DkimKey.NextSelector(day, "s20261127a"));
        Assert.Equal("s20261127za", DkimKey.NextSelector(day, "s20261127z"));
        Assert.DoesNotContain("BEGIN", Key.ToString()); // the private key stays out of logs
    }
}
