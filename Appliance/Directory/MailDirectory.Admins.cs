using System.Net;
using System.Security.Cryptography;
using System.Text;
using Dapper;

namespace Appliance.Directory;

/// <summary>An API token as its bearer is allowed: name and scopes (admin, read, provision).</summary>
public sealed record TokenIdentity(string Id, string Name, IReadOnlyList<string> Scopes);

public enum AdminLoginOutcome { Success, BadCredentials, Throttled, TotpRequired }

public sealed partial class MailDirectory
{
    /// <summary>
    /// Checks an admin's password (and TOTP code when the admin has one), with the same per-address
    /// throttling and constant-cost failure as mailbox logins.
    /// </summary>
    public async Task<AdminLoginOutcome> AuthenticateAdminAsync(string name, string password, string? totp, IPAddress remote, CancellationToken ct)
    {
        if (await ThrottledAsync("admin login", name, remote, ct)) return AdminLoginOutcome.Throttled;
        AdminRow? admin;
        using (var c = Open())
            admin = c.QuerySingleOrDefault<AdminRow>("SELECT name AS Name, password_hash AS PasswordHash, totp_secret AS TotpSecret FROM admins WHERE name = @name", new { name });
        var (ok, _) = await VerifyAsync(password, admin?.PasswordHash, ct);
        if (ok && admin!.TotpSecret is { Length: > 0 } secret)
        {
            if (string.IsNullOrWhiteSpace(totp)) return AdminLoginOutcome.TotpRequired; // password right: not a failure yet
            ok = Totp.Verify(secret, totp, DateTimeOffset.UtcNow);
        }
        if (!ok)
        {
            await FailedAsync("admin login", name, remote, ct);
            return AdminLoginOutcome.BadCredentials;
        }
        _throttle.Succeeded(remote);
        Log.Info("admin login user={0} ip={1}", name, remote);
        return AdminLoginOutcome.Success;
    }

    public bool AdminHasTotp(string name)
    {
        using var c = Open();
        return c.ExecuteScalar<string?>("SELECT totp_secret FROM admins WHERE name = @name", new { name }) is { Length: > 0 };
    }

    /// <summary>Turns TOTP on (a secret) or off (null) for an admin.</summary>
    public void SetAdminTotp(DirectoryTransaction t, string name, string? secret)
    {
        if (t.Connection.Execute("UPDATE admins SET totp_secret = @secret WHERE name = @name", new { secret, name }, t.Transaction) == 0)
            throw new DirectoryException($"no such admin {name}", DirectoryError.NotFound);
    }

    /// <summary>Sets an admin's password (already hashed); creates the admin when there is none of that name.</summary>
    public void SetAdminPassword(DirectoryTransaction t, string name, string passwordHash)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > 64) throw new DirectoryException("an admin needs a name (64 characters at most)");
        if (!PasswordHasher.IsKnownScheme(passwordHash)) throw new DirectoryException(UnsupportedHash);
        t.Connection.Execute("INSERT INTO admins(name, password_hash, created) VALUES (@name, @passwordHash, @now) ON CONFLICT(name) DO UPDATE SET password_hash = excluded.password_hash",
            new { name, passwordHash, now = DateTimeOffset.UtcNow.ToUnixTimeSeconds() }, t.Transaction);
    }

    public bool VerifyAdminTotp(string name, string code)
    {
        using var c = Open();
        return c.ExecuteScalar<string?>("SELECT totp_secret FROM admins WHERE name = @name", new { name }) is { Length: > 0 } secret
            && Totp.Verify(secret, code, DateTimeOffset.UtcNow);
    }

    /// <summary>The token's identity when <paramref name="token"/> ("apl_ID_SECRET") is valid, else null.</summary>
    public TokenIdentity? AuthenticateToken(string token)
    {
        var parts = token.Split('_', 3); // the secret is base64url: it may contain '_' itself
        if (parts is not ["apl", var id, var secret] || id.Length != 16) return null;
        TokenRow? row;
        using (var c = Open())
            row = c.QuerySingleOrDefault<TokenRow>("SELECT id AS Id, name AS Name, secret_hash AS SecretHash, scopes AS Scopes FROM tokens WHERE id = @id", new { id });
        if (row is null) return null;
        var given = SHA256.HashData(Encoding.UTF8.GetBytes(secret));
        if (!CryptographicOperations.FixedTimeEquals(given, Convert.FromHexString(row.SecretHash))) return null;
        return new TokenIdentity(row.Id, row.Name, row.Scopes.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
    }

    internal sealed class AdminRow
    {
        public string Name { get; set; } = "";
        public string PasswordHash { get; set; } = "";
        public string? TotpSecret { get; set; }
    }

    internal sealed class TokenRow
    {
        public string Id { get; set; } = "";
        public string Name { get; set; } = "";
        public string SecretHash { get; set; } = "";
        public string Scopes { get; set; } = "";
    }
}

/// <summary>RFC 6238 time-based one-time passwords (HMAC-SHA1, 6 digits, 30 s steps), as authenticator apps expect.</summary>
public static class Totp
{
    private const string Base32Alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

    public static string NewSecret() => Base32(RandomNumberGenerator.GetBytes(20));

    public static string Uri(string secret, string account, string issuer) =>
        $"otpauth://totp/{System.Uri.EscapeDataString(issuer)}:{System.Uri.EscapeDataString(account)}?secret={secret}&issuer={System.Uri.EscapeDataString(issuer)}&algorithm=SHA1&digits=6&period=30";

    /// <summary>The code for the 30-second step containing <paramref name="time"/>.</summary>
    public static string Code(string secret, DateTimeOffset time)
    {
        var key = FromBase32(secret);
        Span<byte> counter = stackalloc byte[8];
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(counter, time.ToUnixTimeSeconds() / 30);
        Span<byte> mac = stackalloc byte[20];
        HMACSHA1.HashData(key, counter, mac);
        // RFC 4226 §5.3 dynamic truncation.
        var offset = mac[19] & 0x0f;
        var value = ((mac[offset] & 0x7f) << 24) | (mac[offset + 1] << 16) | (mac[offset + 2] << 8) | mac[offset + 3];
        return (value % 1_000_000).ToString("D6", System.Globalization.CultureInfo.InvariantCulture);
    }

    /// <summary>Accepts the current code and the ones of the steps just before and after (clock drift).</summary>
    public static bool Verify(string secret, string code, DateTimeOffset now)
    {
        code = code.Trim().Replace(" ", "", StringComparison.Ordinal);
        if (code.Length != 6) return false;
        var ok = false;
        for (var step = -1; step <= 1; step++)
            ok |= CryptographicOperations.FixedTimeEquals(Encoding.ASCII.GetBytes(Code(secret, now.AddSeconds(30 * step))), Encoding.ASCII.GetBytes(code));
        return ok;
    }

    private static string Base32(byte[] data)
    {
        var sb = new StringBuilder();
        int buffer = 0, bits = 0;
        foreach (var b in data)
        {
            buffer = (buffer << 8) | b;
            bits += 8;
            while (bits >= 5) { sb.Append(Base32Alphabet[(buffer >> (bits - 5)) & 31]); bits -= 5; }
        }
        if (bits > 0) sb.Append(Base32Alphabet[(buffer << (5 - bits)) & 31]);
        return sb.ToString();
    }

    private static byte[] FromBase32(string text)
    {
        var bytes = new List<byte>();
        int buffer = 0, bits = 0;
        foreach (var ch in text.ToUpperInvariant().TrimEnd('='))
        {
            var v = Base32Alphabet.IndexOf(ch);
            if (v < 0) throw new FormatException("bad base32");
            buffer = (buffer << 5) | v;
            bits += 5;
            if (bits >= 8) { bytes.Add((byte)(buffer >> (bits - 8))); bits -= 8; }
        }
        return [.. bytes];
    }
}
