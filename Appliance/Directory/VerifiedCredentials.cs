using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;

namespace Appliance.Directory;

/// <summary>
/// Remembers recently verified logins so that clients polling every few minutes do not pay
/// for an Argon2id computation each time (Dovecot's auth_cache does the same). Only an HMAC of
/// the password under a per-process random key is kept, tied to the stored hash it was checked
/// against: a password change, a disabled mailbox or the TTL ends the entry.
/// </summary>
internal sealed class VerifiedCredentials(TimeSpan ttl)
{
    private const int MaxEntries = 100_000;
    private readonly byte[] _key = RandomNumberGenerator.GetBytes(32);
    private readonly ConcurrentDictionary<string, (string StoredHash, byte[] Mac, DateTime Expires)> _entries = new(StringComparer.Ordinal);

    public bool Matches(string address, string storedHash, string password)
    {
        if (!_entries.TryGetValue(address, out var e)) return false;
        if (e.Expires < DateTime.UtcNow || e.StoredHash != storedHash)
        {
            _entries.TryRemove(address, out _);
            return false;
        }
        return CryptographicOperations.FixedTimeEquals(e.Mac, Mac(address, password));
    }

    public void Remember(string address, string storedHash, string password)
    {
        if (_entries.Count >= MaxEntries) _entries.Clear();
        _entries[address] = (storedHash, Mac(address, password), DateTime.UtcNow + ttl);
    }

    private byte[] Mac(string address, string password) =>
        HMACSHA256.HashData(_key, Encoding.UTF8.GetBytes(address + "\0" + password));
}
