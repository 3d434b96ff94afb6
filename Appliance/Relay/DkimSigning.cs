using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text;
using Appliance.Directory;
using MimeKit;
using MimeKit.Cryptography;

namespace Appliance.Relay;

// Implementation notes
// - RFC 6376 DKIM, rsa-sha256, relaxed/relaxed. The message is parsed with MimeKit only to
//   compute the signature; what goes out is the DKIM-Signature header followed by the original
//   bytes, unchanged (MimeKit keeps every header's raw bytes and each part's content as parsed,
//   and relaxed canonicalization absorbs what remains: trailing blank lines, a missing final
//   CRLF, folding).
// - h= lists each signed header field as many times as the message has it (§5.4.2: the last
//   instances first), and From once more: a From added on the way (the only header DMARC
//   reads) then breaks the signature instead of being shown beside a valid one.
// - The DKIM-Signature header MimeKit adds is folded with the platform's line ending; it is
//   written out with CRLF (relaxed canonicalization makes the folding itself irrelevant).
// - The RSA signature is made by .NET (OpenSSL) through MimeKit's signing-context hook; the
//   BouncyCastle key object MimeKit insists on is made once per key (see Markers).

/// <summary>The DNS record that publishes a DKIM key: <c>Name</c> IN TXT <c>Value</c>.</summary>
public sealed record DkimRecord(string Domain, string Selector, string Name, string Value);

/// <summary>DKIM signing of outgoing mail with the sender domain's key, and the record to publish for it.</summary>
public static class DkimSigning
{
    /// <summary>The header fields signed when present (RFC 6376 §5.4.1's recommendation, less the trace fields).</summary>
    public static readonly IReadOnlyList<string> SignedHeaders =
    [
        "From", "Sender", "Reply-To", "To", "Cc", "Subject", "Date", "Message-ID", "In-Reply-To", "References",
        "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
    ];

    private static readonly FormatOptions Format = CreateFormat();

    private static FormatOptions CreateFormat()
    {
        var options = FormatOptions.Default.Clone();
        options.NewLineFormat = NewLineFormat.Dos;
        return options;
    }

    /// <summary>
    /// Signs <paramref name="message"/> (RFC 5322 bytes, CRLF lines) for <paramref name="key"/>'s
    /// domain: returns <c>DKIM-Signature: …\r\n</c> followed by the original bytes unchanged.
    /// </summary>
    public static byte[] Sign(ReadOnlyMemory<byte> message, DkimKey key)
    {
        using var stream = AsStream(message);
        var parsed = MimeMessage.Load(stream, persistent: true);
        return Sign(message, parsed, key);
    }

    /// <summary>
    /// Signs the message with the DKIM key of the domain of its (first) From address when the
    /// directory has one; else returns the same array. Only the header block is read to find the
    /// domain: a message from a domain without a key (every message on the MX path from a trusted
    /// network, say) is not parsed whole nor copied.
    /// </summary>
    public static byte[] SignIfKeyed(byte[] message, MailDirectory directory)
    {
        HeaderList headers;
        using (var stream = new MemoryStream(message, writable: false))
        {
            try { headers = HeaderList.Load(stream); }
            catch (FormatException) { return message; }
        }
        var from = headers[HeaderId.From] is { } value && InternetAddressList.TryParse(value, out var list)
            ? list.Mailboxes.FirstOrDefault()?.Domain
            : null;
        return from is { Length: > 0 } && directory.DkimKey(from) is { } key ? Sign(message, key) : message;
    }

    private static byte[] Sign(ReadOnlyMemory<byte> original, MimeMessage parsed, DkimKey key)
    {
        var fields = new List<string>();
        foreach (var name in SignedHeaders)
        {
            // MimeKit looks the Content-* fields up among the body's headers.
            var headers = name.StartsWith("Content-", StringComparison.OrdinalIgnoreCase) ? parsed.Body?.Headers : parsed.Headers;
            var count = headers?.Count(h => h.Field.Equals(name, StringComparison.OrdinalIgnoreCase)) ?? 0;
            if (name == "From") count++; // over-signed: no From can be added
            for (var i = 0; i < count; i++) fields.Add(name);
        }
        using var rsa = RSA.Create();
        rsa.ImportFromPem(key.PrivateKeyPem);
        var signer = new NativeRsaDkimSigner(rsa, Markers.GetValue(key, KeyMarker), key.Domain, key.Selector)
        {
            HeaderCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
            BodyCanonicalizationAlgorithm = DkimCanonicalizationAlgorithm.Relaxed,
        };
        signer.Sign(Format, parsed, fields);
        var header = parsed.Headers[0];
        if (header.Id != HeaderId.DkimSignature) throw new InvalidOperationException("MimeKit did not add the DKIM-Signature header first");
        // The value as MimeKit folded it, with CRLF line endings.
        var value = Encoding.ASCII.GetString(header.RawValue).Replace("\r\n", "\n").TrimEnd('\n').Replace("\n", "\r\n");
        var line = Encoding.ASCII.GetBytes("DKIM-Signature:" + value + "\r\n");
        var signed = new byte[line.Length + original.Length];
        line.CopyTo(signed, 0);
        original.Span.CopyTo(signed.AsSpan(line.Length));
        return signed;
    }

    private static MemoryStream AsStream(ReadOnlyMemory<byte> message) =>
        MemoryMarshal.TryGetArray(message, out var segment)
            ? new MemoryStream(segment.Array!, segment.Offset, segment.Count, writable: false)
            : new MemoryStream(message.ToArray(), writable: false);

    /// <summary>The DNS name of the key's record: <c>SELECTOR._domainkey.DOMAIN</c> (RFC 6376 §3.6.2.1).</summary>
    public static string RecordName(DkimKey key) => $"{key.Selector}._domainkey.{key.Domain}";

    /// <summary>The TXT record value (RFC 6376 §3.6.1): <c>v=DKIM1; k=rsa; p=</c> the public key (SubjectPublicKeyInfo, base64).</summary>
    public static string TxtRecord(DkimKey key)
    {
        using var rsa = RSA.Create();
        rsa.ImportFromPem(key.PrivateKeyPem);
        return "v=DKIM1; k=rsa; p=" + Convert.ToBase64String(rsa.ExportSubjectPublicKeyInfo());
    }

    public static DkimRecord Record(DkimKey key) => new(key.Domain, key.Selector, RecordName(key), TxtRecord(key));

    /// <summary>
    /// The record as a zone-file line: <c>NAME. 3600 IN TXT ( "…" "…" )</c>, the value cut into
    /// character-strings of at most 255 characters (RFC 1035 §3.3.14; a TXT record's strings
    /// are concatenated by DKIM verifiers, RFC 6376 §3.6.2.2).
    /// </summary>
    public static string ZoneLine(DkimRecord record)
    {
        var parts = new List<string>();
        for (var i = 0; i < record.Value.Length; i += 255)
            parts.Add("\"" + record.Value.Substring(i, Math.Min(255, record.Value.Length - i)) + "\"");
        return $"{record.Name}. 3600 IN TXT ( {string.Join(" ", parts)} )";
    }

    /// <summary>
    /// DkimSigner's constructor wants a BouncyCastle private key, which it checks and keeps; the
    /// signature itself is made by <see cref="NativeRsaDkimSigner"/>. BouncyCastle validates an
    /// RSA modulus when the key object is made (tens of milliseconds), so it is made once per key.
    /// </summary>
    private static readonly ConditionalWeakTable<DkimKey, Org.BouncyCastle.Crypto.Parameters.RsaKeyParameters> Markers = new();

    /// <summary>The key's modulus and public exponent, flagged private: all DkimSigner checks of it.</summary>
    private static Org.BouncyCastle.Crypto.Parameters.RsaKeyParameters KeyMarker(DkimKey key)
    {
        using var rsa = RSA.Create();
        rsa.ImportFromPem(key.PrivateKeyPem);
        var p = rsa.ExportParameters(includePrivateParameters: false);
        return new(isPrivate: true, new Org.BouncyCastle.Math.BigInteger(1, p.Modulus), new Org.BouncyCastle.Math.BigInteger(1, p.Exponent));
    }

    /// <summary>MimeKit's DKIM signer with the RSA operation done by .NET (OpenSSL) rather than BouncyCastle's managed code.</summary>
    private sealed class NativeRsaDkimSigner(RSA rsa, Org.BouncyCastle.Crypto.AsymmetricKeyParameter marker, string domain, string selector)
        : DkimSigner(marker, domain, selector, DkimSignatureAlgorithm.RsaSha256)
    {
        protected override Org.BouncyCastle.Crypto.ISigner CreateSigningContext() => new RsaSha256Signer(rsa);
    }

    /// <summary>RSASSA-PKCS1-v1_5 with SHA-256 (RFC 6376 §3.3.1) over what MimeKit streams into it.</summary>
    private sealed class RsaSha256Signer(RSA rsa) : Org.BouncyCastle.Crypto.ISigner
    {
        private readonly IncrementalHash _hash = IncrementalHash.CreateHash(HashAlgorithmName.SHA256);

        public string AlgorithmName => "SHA-256withRSA";
        public void Init(bool forSigning, Org.BouncyCastle.Crypto.ICipherParameters parameters) { }
        public void Update(byte input) => _hash.AppendData([input]);
        public void BlockUpdate(byte[] input, int inOff, int inLen) => _hash.AppendData(input, inOff, inLen);
        public void BlockUpdate(ReadOnlySpan<byte> input) => _hash.AppendData(input);
        public int GetMaxSignatureSize() => rsa.KeySize / 8;
        public byte[] GenerateSignature() => rsa.SignHash(_hash.GetHashAndReset(), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        public bool VerifySignature(byte[] signature) => rsa.VerifyHash(_hash.GetHashAndReset(), signature, HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
        public void Reset() => _hash.GetHashAndReset();
    }
}
