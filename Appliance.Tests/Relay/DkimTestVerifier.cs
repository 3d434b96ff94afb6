using System.Security.Cryptography;
using System.Text;
using System.Text.RegularExpressions;
using MimeKit;
using MimeKit.Cryptography;

namespace Appliance.Tests.Relay;

/// <summary>
/// Two verifiers of a DKIM-signed message given the TXT record value: MimeKit's DkimVerifier,
/// and a small one over the raw bytes (RFC 6376 §3.4.2 and §3.4.4 relaxed canonicalization,
/// §3.7 hashes) that shares nothing with MimeKit's parser, as a receiving MTA would see them.
/// </summary>
public static partial class DkimTestVerifier
{
    /// <summary>Looks up every key as the one TXT record value given.</summary>
    private sealed class OneRecord(string txt) : DkimPublicKeyLocatorBase
    {
        public override Org.BouncyCastle.Crypto.AsymmetricKeyParameter LocatePublicKey(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
            GetPublicKey(txt);

        public override Task<Org.BouncyCastle.Crypto.AsymmetricKeyParameter> LocatePublicKeyAsync(string methods, string domain, string selector, CancellationToken cancellationToken = default) =>
            Task.FromResult(GetPublicKey(txt));
    }

    /// <summary>MimeKit's verdict on the first DKIM-Signature.</summary>
    public static bool MimeKitVerifies(byte[] signed, string txt)
    {
        using var stream = new MemoryStream(signed);
        var message = MimeMessage.Load(stream);
        var index = message.Headers.IndexOf(HeaderId.DkimSignature);
        Assert.True(index >= 0, "no DKIM-Signature header");
        return new DkimVerifier(new OneRecord(txt)).Verify(message, message.Headers[index]);
    }

    /// <summary>The tags of the first DKIM-Signature header, whitespace removed from their values.</summary>
    public static Dictionary<string, string> Tags(byte[] signed)
    {
        var (fields, _) = Split(signed);
        var dkim = fields.First(f => Name(f).Equals("dkim-signature", StringComparison.OrdinalIgnoreCase));
        return TagsOf(dkim[(dkim.IndexOf(':') + 1)..]);
    }

    /// <summary>Verifies the first DKIM-Signature over the raw bytes (relaxed/relaxed, rsa-sha256 only).</summary>
    public static bool RawVerifies(byte[] signed, string txt)
    {
        var (fields, body) = Split(signed);
        var dkim = fields.First(f => Name(f).Equals("dkim-signature", StringComparison.OrdinalIgnoreCase));
        var tags = TagsOf(dkim[(dkim.IndexOf(':') + 1)..]);
        Assert.Equal("rsa-sha256", tags["a"]);
        Assert.Equal("relaxed/relaxed", tags["c"]);

        var bodyHash = Convert.ToBase64String(SHA256.HashData(Encoding.Latin1.GetBytes(RelaxedBody(body))));
        if (bodyHash != tags["bh"]) return false;

        // §5.4.2: each name in h= takes the next instance from the bottom; a missing one is nothing.
        var input = new StringBuilder();
        var used = new Dictionary<string, int>(StringComparer.OrdinalIgnoreCase);
        foreach (var name in tags["h"].Split(':'))
        {
            var instances = fields.Where(f => Name(f).Equals(name, StringComparison.OrdinalIgnoreCase)).ToList();
            var n = used.GetValueOrDefault(name);
            used[name] = n + 1;
            if (n < instances.Count) input.Append(RelaxedHeader(instances[instances.Count - 1 - n])).Append("\r\n");
        }
        // The signature header itself, its b= value empty, without a final CRLF.
        input.Append(RelaxedHeader(BValue().Replace(dkim, "${1}", 1)));

        using var rsa = RSA.Create();
        rsa.ImportSubjectPublicKeyInfo(Convert.FromBase64String(TagsOf(txt)["p"]), out _);
        return rsa.VerifyData(Encoding.Latin1.GetBytes(input.ToString()), Convert.FromBase64String(tags["b"]), HashAlgorithmName.SHA256, RSASignaturePadding.Pkcs1);
    }

    /// <summary>The header fields (each with its folding, without the final CRLF) and the body, as Latin-1 text.</summary>
    private static (List<string> Fields, string Body) Split(byte[] message)
    {
        var text = Encoding.Latin1.GetString(message);
        var end = text.IndexOf("\r\n\r\n", StringComparison.Ordinal);
        var head = end < 0 ? text : text[..(end + 2)];
        var body = end < 0 ? "" : text[(end + 4)..];
        var fields = new List<string>();
        foreach (var line in head.Split("\r\n"))
        {
            if (line.Length == 0) continue;
            if (line[0] is ' ' or '\t') fields[^1] += "\r\n" + line;
            else fields.Add(line);
        }
        return (fields, body);
    }

    private static string Name(string field) => field[..field.IndexOf(':')].TrimEnd();

    private static Dictionary<string, string> TagsOf(string value)
    {
        var tags = new Dictionary<string, string>();
        foreach (var tag in value.Split(';'))
        {
            var eq = tag.IndexOf('=');
            if (eq > 0) tags[tag[..eq].Trim()] = Whitespace().Replace(tag[(eq + 1)..], "");
        }
        return tags;
    }

    /// <summary>§3.4.2: lower-case name, unfolded, whitespace runs as one space, none at the ends or around the colon.</summary>
    private static string RelaxedHeader(string field)
    {
        var colon = field.IndexOf(':');
        var value = WspRun().Replace(field[(colon + 1)..].Replace("\r\n", ""), " ").Trim(' ');
        return field[..colon].TrimEnd().ToLowerInvariant() + ":" + value;
    }

    /// <summary>§3.4.4: whitespace runs as one space, none at line ends, no empty lines at the end, a final CRLF.</summary>
    private static string RelaxedBody(string body)
    {
        var lines = body.Split("\r\n").Select(l => WspRun().Replace(l, " ").TrimEnd(' ')).ToList();
        while (lines.Count > 0 && lines[^1].Length == 0) lines.RemoveAt(lines.Count - 1);
        return lines.Count == 0 ? "" : string.Join("\r\n", lines) + "\r\n";
    }

    [GeneratedRegex("[ \t]+")]
    private static partial Regex WspRun();

    [GeneratedRegex("[ \t\r\n]+")]
    private static partial Regex Whitespace();

    /// <summary>The value of the b= tag (not bh=), kept up to its tag name.</summary>
    [GeneratedRegex(@"(;[ \t\r\n]*b[ \t\r\n]*=)[^;]*")]
    private static partial Regex BValue();
}
