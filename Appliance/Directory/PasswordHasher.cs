using System.Security.Cryptography;
using System.Text;
using Konscious.Security.Cryptography;

namespace Appliance.Directory;

// Implementation notes
// - New hashes are Argon2id in the PHC string format that Dovecot's {ARGON2ID} scheme and libargon2
//   also write: $argon2id$v=19$m=<KiB>,t=<passes>,p=<lanes>$<salt>$<hash>, salt and hash in standard
//   base64 without padding.
// - Verify also takes what a Dovecot/Postfix migration brings along: {SHA512-CRYPT} ($6$, implemented
//   here after Drepper's "Unix crypt using SHA-256 and SHA-512"), {BLF-CRYPT} ($2a$/$2b$/$2y$, through
//   BCrypt.Net-Next), {ARGON2ID}, and {CRYPT} followed by any of those. A scheme prefix must agree with
//   the string after it. Legacy schemes always ask for a rehash.
// - Verify never throws: a record it cannot parse, or parameters outside the sanity bounds below
//   (which guard against a corrupt record allocating gigabytes or spinning for hours), is a failed login.
// - Passwords are taken as UTF-8 bytes. Passwords over MaxPasswordBytes are refused because SHA-crypt's
//   cost grows with the square of the password length. Empty passwords are refused by both methods:
//   Konscious' Argon2 cannot hash one, and a mailbox must not open without a password even when a
//   migrated legacy hash of the empty string would match.

/// <summary>Hashes new mailbox passwords with Argon2id and verifies stored hashes of several schemes.</summary>
public static class PasswordHasher
{
    /// <summary>Argon2id memory cost in KiB for new hashes (OWASP's 19 MiB, t=2, p=1 configuration).</summary>
    public const int MemoryKib = 19456;
    public const int Iterations = 2;
    public const int Parallelism = 1;
    public const int SaltBytes = 16;
    public const int HashBytes = 32;

    /// <summary>Longest password, in UTF-8 bytes, that <see cref="Hash"/> accepts and <see cref="Verify"/> checks.</summary>
    public const int MaxPasswordBytes = 4096;

    // Sanity bounds for parameters read from stored Argon2 strings.
    private const int MaxArgonMemoryKib = 1024 * 1024;
    private const int MaxArgonIterations = 64;
    private const int MaxArgonParallelism = 64;

    /// <summary>Returns an Argon2id PHC string for <paramref name="password"/> with a fresh random salt.</summary>
    /// <exception cref="ArgumentException">The password is empty or longer than <see cref="MaxPasswordBytes"/>.</exception>
    public static string Hash(string password)
    {
        ArgumentException.ThrowIfNullOrEmpty(password);
        byte[] passwordBytes = Encoding.UTF8.GetBytes(password);
        try
        {
            if (passwordBytes.Length > MaxPasswordBytes)
            {
                throw new ArgumentException($"Password is longer than {MaxPasswordBytes} bytes.", nameof(password));
            }

            byte[] salt = RandomNumberGenerator.GetBytes(SaltBytes);
            byte[] hash = Argon2idHash(passwordBytes, salt, MemoryKib, Iterations, Parallelism, HashBytes);
            return $"$argon2id$v=19$m={MemoryKib},t={Iterations},p={Parallelism}${ToPhcBase64(salt)}${ToPhcBase64(hash)}";
        }
        finally
        {
            CryptographicOperations.ZeroMemory(passwordBytes);
        }
    }

    /// <summary>
    /// Checks <paramref name="password"/> against a stored hash. <paramref name="needsRehash"/> is true
    /// after a successful check when the stored hash should be replaced by <see cref="Hash"/>'s output:
    /// a legacy scheme, or Argon2 parameters weaker than the current ones. An empty password never verifies.
    /// </summary>
    public static bool Verify(string password, string stored, out bool needsRehash)
    {
        needsRehash = false;
        if (string.IsNullOrEmpty(password) || stored is null)
        {
            return false;
        }

        byte[] passwordBytes;
        try
        {
            passwordBytes = Encoding.UTF8.GetBytes(password);
        }
        catch (EncoderFallbackException)
        {
            return false;
        }

        try
        {
            if (passwordBytes.Length > MaxPasswordBytes)
            {
                return false;
            }

            bool ok = VerifyBytes(passwordBytes, password, stored, out bool rehash);
            needsRehash = ok && rehash;
            return ok;
        }
        catch (Exception)
        {
            // A record the libraries reject (or that cannot be allocated) is a failed login, not a crash.
            return false;
        }
        finally
        {
            CryptographicOperations.ZeroMemory(passwordBytes);
        }
    }

    /// <summary>Whether a stored hash is in a scheme <see cref="Verify"/> understands (for imports).</summary>
    public static bool IsKnownScheme(string stored)
    {
        var s = stored.AsSpan();
        if (s.StartsWith('{'))
        {
            var close = s.IndexOf('}');
            if (close < 0) return false;
            s = s[(close + 1)..];
        }
        return s.StartsWith("$argon2id$") || s.StartsWith("$6$") || s.StartsWith("$2a$") || s.StartsWith("$2b$") || s.StartsWith("$2y$");
    }

    private enum Scheme { Any, Argon2id, Sha512Crypt, BlfCrypt }

    private static bool VerifyBytes(byte[] passwordBytes, string password, string stored, out bool needsRehash)
    {
        needsRehash = true;
        ReadOnlySpan<char> s = stored.AsSpan();
        Scheme scheme = Scheme.Any;
        if (s.StartsWith('{'))
        {
            int close = s.IndexOf('}');
            if (close < 0)
            {
                return false;
            }

            ReadOnlySpan<char> name = s[1..close];
            s = s[(close + 1)..];
            if (name.Equals("ARGON2ID", StringComparison.OrdinalIgnoreCase))
            {
                scheme = Scheme.Argon2id;
            }
            else if (name.Equals("SHA512-CRYPT", StringComparison.OrdinalIgnoreCase))
            {
                scheme = Scheme.Sha512Crypt;
            }
            else if (name.Equals("BLF-CRYPT", StringComparison.OrdinalIgnoreCase))
            {
                scheme = Scheme.BlfCrypt;
            }
            else if (!name.Equals("CRYPT", StringComparison.OrdinalIgnoreCase))
            {
                return false;
            }
        }

        if (s.StartsWith("$argon2id$", StringComparison.Ordinal) && scheme is Scheme.Any or Scheme.Argon2id)
        {
            return VerifyArgon2id(passwordBytes, s, out needsRehash);
        }

        if (s.StartsWith("$6$", StringComparison.Ordinal) && scheme is Scheme.Any or Scheme.Sha512Crypt)
        {
            return Sha512Crypt.Verify(passwordBytes, s);
        }

        if ((s.StartsWith("$2a$", StringComparison.Ordinal) || s.StartsWith("$2b$", StringComparison.Ordinal)
            || s.StartsWith("$2y$", StringComparison.Ordinal)) && scheme is Scheme.Any or Scheme.BlfCrypt)
        {
            return VerifyBcrypt(password, s);
        }

        return false;
    }

    // $argon2id$v=19$m=<int>,t=<int>,p=<int>$<b64 salt>$<b64 hash>
    private static bool VerifyArgon2id(byte[] passwordBytes, ReadOnlySpan<char> s, out bool needsRehash)
    {
        needsRehash = false;
        s = s["$argon2id$".Length..];
        if (!TakeField(ref s, out ReadOnlySpan<char> version) || !version.SequenceEqual("v=19")
            || !TakeField(ref s, out ReadOnlySpan<char> parameters)
            || !TakeField(ref s, out ReadOnlySpan<char> saltText)
            || s.IndexOf('$') >= 0)
        {
            return false;
        }

        int m = -1, t = -1, p = -1;
        foreach (Range r in parameters.Split(','))
        {
            ReadOnlySpan<char> kv = parameters[r];
            if (kv.Length < 3 || kv[1] != '=' || !TryParseDecimal(kv[2..], out int value))
            {
                return false;
            }

            switch (kv[0])
            {
                case 'm' when m < 0: m = value; break;
                case 't' when t < 0: t = value; break;
                case 'p' when p < 0: p = value; break;
                default: return false;
            }
        }

        if (p < 1 || p > MaxArgonParallelism || t < 1 || t > MaxArgonIterations
            || m < 8 * p || m > MaxArgonMemoryKib)
        {
            return false;
        }

        byte[]? salt = FromPhcBase64(saltText);
        byte[]? expected = FromPhcBase64(s);
        if (salt is null || expected is null || salt.Length < 8 || salt.Length > 64
            || expected.Length < 4 || expected.Length > 1024)
        {
            return false;
        }

        byte[] actual = Argon2idHash(passwordBytes, salt, m, t, p, expected.Length);
        if (!CryptographicOperations.FixedTimeEquals(actual, expected))
        {
            return false;
        }

        // Parallelism changes how the work is split, not how much there is, so it is not compared.
        needsRehash = m < MemoryKib || t < Iterations || salt.Length < SaltBytes || expected.Length < HashBytes;
        return true;
    }

    private static byte[] Argon2idHash(byte[] password, byte[] salt, int memoryKib, int iterations, int parallelism, int length)
    {
        using var argon = new Argon2id(password)
        {
            Salt = salt,
            MemorySize = memoryKib,
            Iterations = iterations,
            DegreeOfParallelism = parallelism,
        };
        return argon.GetBytes(length);
    }

    // $2a$/$2b$/$2y$ NN $ 22 chars salt + 31 chars hash. BCrypt.Net-Next recomputes the full string from
    // the 29-character prefix; the comparison is ours so that it is constant-time.
    private static bool VerifyBcrypt(string password, ReadOnlySpan<char> s)
    {
        const string alphabet = "./ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        if (s.Length != 60 || s[6] != '$' || !TryParseDecimal(s[4..6], out int cost) || cost < 4 || cost > 31
            || s[7..].ContainsAnyExcept(alphabet))
        {
            return false;
        }

        string expected = s.ToString();
        string actual = BCrypt.Net.BCrypt.HashPassword(password, expected[..29]);
        return CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(actual), Encoding.ASCII.GetBytes(expected));
    }

    private static bool TakeField(ref ReadOnlySpan<char> s, out ReadOnlySpan<char> field)
    {
        int end = s.IndexOf('$');
        if (end < 0)
        {
            field = default;
            return false;
        }

        field = s[..end];
        s = s[(end + 1)..];
        return true;
    }

    /// <summary>Digits only (no sign, no spaces), at most nine of them so the value fits an int.</summary>
    internal static bool TryParseDecimal(ReadOnlySpan<char> digits, out int value)
    {
        value = 0;
        if (digits.IsEmpty || digits.Length > 9 || digits.ContainsAnyExceptInRange('0', '9'))
        {
            return false;
        }

        foreach (char c in digits)
        {
            value = (value * 10) + (c - '0');
        }

        return true;
    }

    private static string ToPhcBase64(byte[] data) => Convert.ToBase64String(data).TrimEnd('=');

    private static byte[]? FromPhcBase64(ReadOnlySpan<char> text)
    {
        const string alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        if (text.IsEmpty || text.Length % 4 == 1 || text.ContainsAnyExcept(alphabet))
        {
            return null;
        }

        string padded = text.ToString() + new string('=', (4 - (text.Length % 4)) % 4);
        byte[] result = new byte[padded.Length / 4 * 3];
        return Convert.TryFromBase64String(padded, result, out int written) ? result[..written] : null;
    }
}
