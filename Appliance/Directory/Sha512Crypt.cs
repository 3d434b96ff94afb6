using System.Security.Cryptography;
using System.Text;

namespace Appliance.Directory;

// Implementation notes
// SHA-512-crypt ("$6$") after Ulrich Drepper, "Unix crypt using SHA-256 and SHA-512"
// (https://www.akkadia.org/drepper/SHA-crypt.txt); step numbers below are the spec's.
// Stored form: $6$[rounds=N$]salt$hash, where N defaults to 5000 and is clamped to 1000..999999999,
// the salt is cut to 16 bytes and the hash is 86 characters of the crypt base64 alphabet.
// Only verification is offered: new hashes are Argon2id (see PasswordHasher).

/// <summary>Verifies glibc/Dovecot SHA-512-crypt hashes.</summary>
internal static class Sha512Crypt
{
    public const int DefaultRounds = 5000;
    public const int MinRounds = 1000;
    public const int MaxRounds = 999_999_999;
    public const int MaxSaltBytes = 16;
    private const int HashChars = 86;

    private const string CryptAlphabet = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

    /// <summary>Checks <paramref name="password"/> against a "$6$..." string; false when the string is malformed.</summary>
    public static bool Verify(ReadOnlySpan<byte> password, ReadOnlySpan<char> stored)
    {
        if (!TryParse(stored, out int rounds, out byte[] salt, out ReadOnlySpan<char> expected))
        {
            return false;
        }

        byte[] actual = Encoding.ASCII.GetBytes(Compute(password, salt, rounds));
        return CryptographicOperations.FixedTimeEquals(actual, Encoding.ASCII.GetBytes(expected.ToString()));
    }

    /// <summary>The 86-character hash part of SHA-512-crypt for the given inputs (salt already cut to 16 bytes).</summary>
    public static string Compute(ReadOnlySpan<byte> password, ReadOnlySpan<byte> salt, int rounds)
    {
        Span<byte> a = stackalloc byte[64];
        Span<byte> b = stackalloc byte[64];
        Span<byte> dp = stackalloc byte[64];
        Span<byte> ds = stackalloc byte[64];
        using var h = IncrementalHash.CreateHash(HashAlgorithmName.SHA512);

        // Steps 4-8: digest B = SHA512(password + salt + password).
        h.AppendData(password);
        h.AppendData(salt);
        h.AppendData(password);
        h.GetHashAndReset(b);

        // Steps 1-3, 9-12: digest A.
        h.AppendData(password);
        h.AppendData(salt);
        int n;
        for (n = password.Length; n > 64; n -= 64)
        {
            h.AppendData(b);
        }

        h.AppendData(b[..n]);
        for (n = password.Length; n > 0; n >>= 1)
        {
            h.AppendData((n & 1) != 0 ? b : password);
        }

        h.GetHashAndReset(a);

        // Steps 13-16: P sequence from DP = SHA512(password repeated password.Length times).
        for (int i = 0; i < password.Length; i++)
        {
            h.AppendData(password);
        }

        h.GetHashAndReset(dp);
        byte[] p = new byte[password.Length];
        for (int i = 0; i < p.Length; i++)
        {
            p[i] = dp[i % 64];
        }

        // Steps 17-20: S sequence from DS = SHA512(salt repeated 16 + A[0] times).
        for (int i = 0; i < 16 + a[0]; i++)
        {
            h.AppendData(salt);
        }

        h.GetHashAndReset(ds);
        ReadOnlySpan<byte> s = ds[..salt.Length];

        // Step 21: the rounds.
        byte[] buffer = new byte[64 + s.Length + (2 * p.Length)];
        Span<byte> c = a;
        for (int i = 0; i < rounds; i++)
        {
            int len = 0;
            if ((i & 1) != 0)
            {
                Append(buffer, ref len, p);
            }
            else
            {
                Append(buffer, ref len, c);
            }

            if (i % 3 != 0)
            {
                Append(buffer, ref len, s);
            }

            if (i % 7 != 0)
            {
                Append(buffer, ref len, p);
            }

            if ((i & 1) != 0)
            {
                Append(buffer, ref len, c);
            }
            else
            {
                Append(buffer, ref len, p);
            }

            SHA512.HashData(buffer.AsSpan(0, len), c);
        }

        CryptographicOperations.ZeroMemory(p);
        CryptographicOperations.ZeroMemory(buffer);
        return Encode(c);
    }

    private static void Append(byte[] buffer, ref int len, ReadOnlySpan<byte> data)
    {
        data.CopyTo(buffer.AsSpan(len));
        len += data.Length;
    }

    // Step 22: bytes are taken three at a time in the spec's permuted order (i, i+21, i+42, rotated by
    // i mod 3) and written as four base64 characters, least significant six bits first.
    private static string Encode(ReadOnlySpan<byte> d)
    {
        var sb = new StringBuilder(HashChars);
        for (int i = 0; i < 21; i++)
        {
            (int x, int y, int z) = (i % 3) switch
            {
                0 => (i, i + 21, i + 42),
                1 => (i + 21, i + 42, i),
                _ => (i + 42, i, i + 21),
            };
            AppendBase64(sb, (d[x] << 16) | (d[y] << 8) | d[z], 4);
        }

        AppendBase64(sb, d[63], 2);
        return sb.ToString();
    }

    private static void AppendBase64(StringBuilder sb, int w, int count)
    {
        for (int i = 0; i < count; i++)
        {
            sb.Append(CryptAlphabet[w & 0x3f]);
            w >>= 6;
        }
    }

    private static bool TryParse(ReadOnlySpan<char> stored, out int rounds, out byte[] salt, out ReadOnlySpan<char> hash)
    {
        rounds = DefaultRounds;
        salt = [];
        hash = default;
        if (!stored.StartsWith("$6$", StringComparison.Ordinal))
        {
            return false;
        }

        ReadOnlySpan<char> rest = stored[3..];
        if (rest.StartsWith("rounds=", StringComparison.Ordinal))
        {
            rest = rest["rounds=".Length..];
            int end = rest.IndexOf('$');
            if (end <= 0 || rest[..end].ContainsAnyExceptInRange('0', '9'))
            {
                return false;
            }

            // Larger values than the maximum are clamped, as glibc's strtoul + MIN does.
            ulong value = 0;
            foreach (char ch in rest[..end])
            {
                value = Math.Min((value * 10) + (ulong)(ch - '0'), MaxRounds + 1UL);
            }

            rounds = (int)Math.Clamp(value, MinRounds, MaxRounds);
            rest = rest[(end + 1)..];
        }

        int saltEnd = rest.IndexOf('$');
        if (saltEnd < 0)
        {
            return false;
        }

        hash = rest[(saltEnd + 1)..];
        if (hash.Length != HashChars || hash.ContainsAnyExcept(CryptAlphabet))
        {
            return false;
        }

        byte[] saltBytes = Encoding.UTF8.GetBytes(rest[..saltEnd].ToString());
        salt = saltBytes.Length > MaxSaltBytes ? saltBytes[..MaxSaltBytes] : saltBytes;
        return true;
    }
}
