using System.Diagnostics;
using System.Text.RegularExpressions;
using Appliance.Directory;

namespace Appliance.Tests.Directory;

public sealed partial class PasswordHasherTests
{
    [GeneratedRegex(@"^\$argon2id\$v=19\$m=19456,t=2,p=1\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$")]
    private static partial Regex OurArgon2idFormat();

    // ---- Argon2id: our own hashes ----

    [Fact]
    public void Hash_WritesPhcArgon2idWith16ByteSaltAnd32ByteHash()
    {
        string stored = PasswordHasher.Hash("correct horse battery staple");

        // 22 unpadded base64 characters hold 16 bytes, 43 hold 32.
        Assert.Matches(OurArgon2idFormat(), stored);
    }

    [Theory]
    [InlineData("correct horse battery staple")]
    [InlineData("pässwörd ✓ 密码")]
    public void Hash_ThenVerify_RoundTrips(string password)
    {
        string stored = PasswordHasher.Hash(password);

        Assert.True(PasswordHasher.Verify(password, stored, out bool needsRehash));
        Assert.False(needsRehash);
    }

    [Fact]
    public void Verify_WrongPassword_Fails()
    {
        string stored = PasswordHasher.Hash("correct horse battery staple");

        Assert.False(PasswordHasher.Verify("correct horse battery stapl", stored, out bool needsRehash));
        Assert.False(needsRehash);
        Assert.False(PasswordHasher.Verify("Correct horse battery staple", stored, out _));
    }

    [Fact]
    public void Hash_UsesAFreshSaltEachTime()
    {
        Assert.NotEqual(PasswordHasher.Hash("same"), PasswordHasher.Hash("same"));
    }

    [Fact]
    public void Hash_RefusesOverlongPassword_AndVerifyRejectsIt()
    {
        string tooLong = new('x', PasswordHasher.MaxPasswordBytes + 1);
        Assert.Throws<ArgumentException>(() => PasswordHasher.Hash(tooLong));

        string longest = new('x', PasswordHasher.MaxPasswordBytes);
        string stored = PasswordHasher.Hash(longest);
        Assert.True(PasswordHasher.Verify(longest, stored, out _));
        Assert.False(PasswordHasher.Verify(tooLong, stored, out _));
    }

    [Fact]
    public void EmptyPassword_IsRefused_EvenWhereALegacyHashOfItMatches()
    {
        Assert.Throws<ArgumentException>(() => PasswordHasher.Hash(""));

        // crypt("", "$6$emptypw") from glibc/libxcrypt, and crypt_blowfish's published vector for "".
        const string sha = "$6$emptypw$TWmzQ8/uLn1BFSZ5Lkfum8lAba5vixF9Nl3Aiof.Praatq9nh0kkPuTdoVrIL6du0L6LAoadbPq.q.D7keveg/";
        const string blf = "$2a$05$CCCCCCCCCCCCCCCCCCCCC.7uG0VCzI2bS7j6ymqJi9CdcdxiRTWNy";
        Assert.Equal(sha[(sha.LastIndexOf('$') + 1)..], Sha512Crypt.Compute([], "emptypw"u8, Sha512Crypt.DefaultRounds));

        Assert.False(PasswordHasher.Verify("", sha, out bool needsRehash));
        Assert.False(needsRehash);
        Assert.False(PasswordHasher.Verify("", blf, out _));
        Assert.False(PasswordHasher.Verify("", PasswordHasher.Hash("x"), out _));
    }

    // ---- Argon2id: strings written by the reference implementation (libargon2's `argon2` CLI) ----

    [Theory]
    // echo -n "correct horse battery staple" | argon2 saltsaltsaltsalt -id -t 2 -k 19456 -p 1 -l 32 -e
    [InlineData("correct horse battery staple", "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM", false)]
    // Dovecot writes libsodium/libargon2 strings behind an {ARGON2ID} prefix.
    [InlineData("correct horse battery staple", "{ARGON2ID}$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM", false)]
    [InlineData("correct horse battery staple", "{argon2id}$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM", false)]
    // Stronger than ours (m=64 MiB, t=3, p=4): fine as it is.
    [InlineData("hunter2", "$argon2id$v=19$m=65536,t=3,p=4$c3Ryb25nc3Ryb25nc3Rybw$3OrEg68B29CeE7J2K1BW+V53WFH4Hge92EQJAwvAxFQ", false)]
    // Weaker: fewer passes, less memory (and a 24-byte tag), an 8-byte salt.
    [InlineData("hunter2", "$argon2id$v=19$m=19456,t=1,p=1$d2Vha3dlYWt3ZWFrd2Vhaw$Rd1cKf3gy9ZgPfowyfXWi+tPmqWclkClRnVA8GnGb0g", true)]
    [InlineData("password", "$argon2id$v=19$m=4096,t=1,p=2$c29tZXNhbHRzb21lc2FsdA$ywK1MB44veqSV+xngm+HivpmkA91UMn8", true)]
    [InlineData("hunter2", "$argon2id$v=19$m=19456,t=2,p=1$c2hvcnRzYWw$wymKFQ/37mFHIOU/itvgNbby54FyTfudZbVE8pLEh4Y", true)]
    public void Verify_ReferenceArgon2id(string password, string stored, bool expectRehash)
    {
        Assert.True(PasswordHasher.Verify(password, stored, out bool needsRehash));
        Assert.Equal(expectRehash, needsRehash);

        Assert.False(PasswordHasher.Verify(password + "!", stored, out needsRehash));
        Assert.False(needsRehash);
    }

    // ---- SHA512-CRYPT ----

    // The test vectors of Drepper's specification (https://www.akkadia.org/drepper/SHA-crypt.txt),
    // written as crypt() returns them: salt cut to 16 characters, rounds clamped to 1000..999999999.
    [Theory]
    [InlineData("Hello world!", "$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1")]
    [InlineData("Hello world!", "$6$rounds=10000$saltstringsaltst$OW1/O6BYHV6BcXZu8QVeXbDWra3Oeqh0sbHbbMCVNSnCM/UrjmM0Dp8vOuZeHBy/YTBmSK6H9qs/y3RnOaw5v.")]
    [InlineData("This is just a test", "$6$rounds=5000$toolongsaltstrin$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0")]
    [InlineData("a very much longer text to encrypt.  This one even stretches over morethan one line.", "$6$rounds=1400$anotherlongsalts$POfYwTEok97VWcjxIiSOjiykti.o/pQs.wPvMxQ6Fm7I6IoYN3CmLs66x9t0oSwbtEW7o7UmJEiDwGqd8p4ur1")]
    [InlineData("we have a short salt string but not a short password", "$6$rounds=77777$short$WuQyW2YR.hBNpjjRhpYD/ifIw05xdfeEyQoMxIXbkvr0gge1a1x3yRULJ5CCaUeOxFmtlcGZelFl5CxtgfiAc0")]
    [InlineData("a short string", "$6$rounds=123456$asaltof16chars..$BtCwjqMJGx5hrJhZywWvt0RLE8uZ4oPwcelCjmw2kSYu.Ec6ycULevoBK25fs2xXgMNrCzIMVcgEJAstJeonj1")]
    [InlineData("the minimum number is still observed", "$6$rounds=1000$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.")]
    // The same vectors as the spec's inputs: a salt over 16 characters is cut, rounds=10 counts as 1000.
    [InlineData("This is just a test", "$6$rounds=5000$toolongsaltstring$lQ8jolhgVRVhY4b5pZKaysCLi0QBxGoNeKQzQ3glMhwllF7oGDZxUhx1yxdYcz/e1JSbq3y6JMxxl8audkUEm0")]
    [InlineData("the minimum number is still observed", "$6$rounds=10$roundstoolow$kUMsbe306n21p9R.FRkW3IGn.S9NPN0x50YhH1xhLsPuWGsUSklZt58jaTfF4ZEQpyUNGc0dqbpBYYBaHHrsX.")]
    // Dovecot's scheme prefixes.
    [InlineData("Hello world!", "{SHA512-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1")]
    [InlineData("Hello world!", "{CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1")]
    public void Verify_Sha512CryptSpecVectors(string password, string stored)
    {
        Assert.True(PasswordHasher.Verify(password, stored, out bool needsRehash));
        Assert.True(needsRehash);

        Assert.False(PasswordHasher.Verify(password[..^1], stored, out needsRehash));
        Assert.False(needsRehash);
    }

    [Theory]
    [InlineData("secret", "Zm9vYmFy")]
    [InlineData("pässwörd ✓ 密码", "a")]
    [InlineData("exactly-sixty-four-bytes-long-password-0123456789abcdefghijklmno", "0123456789abcdef")]
    [InlineData("a password that is longer than sixty-four bytes, so step 11 of the spec adds B more than once", "./saltWith.Slash")]
    public void Verify_Sha512CryptFromOpenssl(string password, string salt)
    {
        string stored = OpensslPasswd6(salt, password);
        Assert.StartsWith("$6$" + salt + "$", stored);

        Assert.True(PasswordHasher.Verify(password, stored, out bool needsRehash));
        Assert.True(needsRehash);
        Assert.True(PasswordHasher.Verify(password, "{SHA512-CRYPT}" + stored, out _));

        Assert.False(PasswordHasher.Verify(password + "x", stored, out needsRehash));
        Assert.False(needsRehash);
    }

    private static string OpensslPasswd6(string salt, string password)
    {
        var start = new ProcessStartInfo("openssl") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string arg in new[] { "passwd", "-6", "-salt", salt, password })
        {
            start.ArgumentList.Add(arg);
        }

        using Process process = Process.Start(start)!;
        string output = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"openssl passwd failed: {process.StandardError.ReadToEnd()}");
        return output.Trim();
    }

    // ---- BLF-CRYPT ----

    // Published bcrypt vectors (Solar Designer's crypt_blowfish test suite, also used by OpenBSD and
    // jBCrypt). $2a$, $2b$ and $2y$ give the same hash for these passwords; only the prefix differs.
    [Theory]
    [InlineData("U*U", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")]
    [InlineData("U*U*", "$2a$05$CCCCCCCCCCCCCCCCCCCCC.VGOzA784oUp/Z0DY336zx7pLYAy0lwK")]
    [InlineData("U*U*U", "$2a$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a")]
    [InlineData("abc", "$2a$06$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i")]
    [InlineData("U*U", "$2y$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")]
    [InlineData("U*U*U", "$2b$05$XXXXXXXXXXXXXXXXXXXXXOAcXxm9kjPGEMsLznoKqmqw7tc8WCx4a")]
    [InlineData("abc", "{BLF-CRYPT}$2y$06$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i")]
    [InlineData("abc", "{CRYPT}$2b$06$If6bvum7DFjUnE9p2uDeDu0YHzrHM6tf.iqN8.yx.jNN1ILEf7h0i")]
    public void Verify_BlfCryptVectors(string password, string stored)
    {
        Assert.True(PasswordHasher.Verify(password, stored, out bool needsRehash));
        Assert.True(needsRehash);

        Assert.False(PasswordHasher.Verify(password + "U", stored, out needsRehash));
        Assert.False(needsRehash);
    }

    [Fact]
    public void Verify_BlfCrypt_IgnoresPasswordBytesAfter72()
    {
        const string stored = "$2a$05$abcdefghijklmnopqrstuu5s2v8.iXieOjg/.AySBTTZIIVFJeBui";
        const string first72 = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

        Assert.True(PasswordHasher.Verify(first72 + "chars after 72 are ignored", stored, out _));
        Assert.True(PasswordHasher.Verify(first72, stored, out _));
        Assert.False(PasswordHasher.Verify(first72[..^1], stored, out _));
    }

    // ---- Malformed and unknown ----

    [Theory]
    [InlineData("")]
    [InlineData("secret")]
    [InlineData("{PLAIN}secret")]
    [InlineData("{SHA512-CRYPT}")]
    [InlineData("{SHA512-CRYPT")]
    [InlineData("{UNKNOWN}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1")]
    // Scheme prefix that disagrees with the string.
    [InlineData("{BLF-CRYPT}$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1")]
    [InlineData("{SHA512-CRYPT}$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")]
    // MD5-crypt and SHA256-crypt are not accepted.
    [InlineData("$1$saltsalt$9xy1btjgzLYfb7hivXtC//")]
    [InlineData("$5$saltstring$5B8vYYiY.CVt1RlTTf8KbXBH3hsxY/GNooZaBBGWEc5")]
    // SHA512-CRYPT: no hash, short hash, hash with a bad character, bad rounds.
    [InlineData("$6$saltstring")]
    [InlineData("$6$saltstring$")]
    [InlineData("$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz")]
    [InlineData("$6$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz!")]
    [InlineData("$6$rounds=$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1")]
    [InlineData("$6$rounds=-5$saltstring$svn8UoSVapNtMuq1ukKS4tPQd8iKwSMHWjl/O817G3uBnIFNjnQJuesI68u4OTLiBFdcbYEdFCoEOfaS35inz1")]
    [InlineData("$6$rounds=5000")]
    // BLF-CRYPT: $2x$ (the buggy-8-bit variant), bad cost, wrong length, bad character.
    [InlineData("$2x$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")]
    [InlineData("$2a$03$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")]
    [InlineData("$2a$32$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")]
    [InlineData("$2a$5$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")]
    [InlineData("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOe")]
    [InlineData("$2a$05$CCCCCCCCCCCCCCCCCCCCC.E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW=")]
    [InlineData("$2a$05$CCCCCCCCCCCCCCCCCCCCC+E5YPO9kmyuRGyh0XouQYb4YMJKvyOeW")]
    // Argon2: other variants and versions, missing or repeated or unknown parameters, bad base64,
    // parameters outside the sanity bounds.
    [InlineData("$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM")]
    [InlineData("$argon2id$v=16$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM")]
    [InlineData("$argon2id$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM")]
    [InlineData("$argon2id$v=19$m=19456,t=2$c2FsdHNhbHRzYWx0c2FsdA$QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM")]
    [InlineData("$argon2id$v=19$m=19456,t=2,p=1,p=1$c2FsdHNhbHRzYWx0c2FsdA$QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM")]
    [InlineData("$argon2id$v=19$m=19456,t=2,p=1,x=1$c2FsdHNhbHRzYWx0c2FsdA$QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM")]
    [InlineData("$argon2id$v=19$m=19456,t=+2,p=1$c2FsdHNhbHRzYWx0c2FsdA$QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM")]
    [InlineData("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$")]
    [InlineData("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA")]
    [InlineData("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM$")]
    [InlineData("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$QKHrg5tayLGcN-Y0HVPNaBqykOVLUxlMkZycXE1uWRM")]
    [InlineData("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRMA")]
    [InlineData("$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM")]
    [InlineData("$argon2id$v=19$m=999999999,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM")]
    [InlineData("$argon2id$v=19$m=19456,t=0,p=1$c2FsdHNhbHRzYWx0c2FsdA$QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM")]
    [InlineData("$argon2id$v=19$m=7,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM")]
    [InlineData("$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$QKHrg5tayLGcN+Y0HVPNaBqykOVLUxlMkZycXE1uWRM ")]
    public void Verify_MalformedOrUnknown_ReturnsFalse(string stored)
    {
        foreach (string password in new[] { "correct horse battery staple", "U*U", "Hello world!", "secret" })
        {
            Assert.False(PasswordHasher.Verify(password, stored, out bool needsRehash));
            Assert.False(needsRehash);
        }
    }
}
