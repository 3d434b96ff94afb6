using System.Net;
using System.Security.Cryptography;
using System.Security.Cryptography.X509Certificates;
using Appliance.Hosting;

namespace Appliance.Tls;

/// <summary>
/// The node's TLS certificate: the configured PEM pair, or a self-signed certificate created
/// once under data/tls/ (ECDSA P-256, 5 years) so a fresh node speaks TLS from its first start.
/// </summary>
public static class CertificateProvider
{
    public static X509Certificate2 Load(TlsOptions options, string dataDir, string hostname)
    {
        if (!string.IsNullOrEmpty(options.CertificateFile))
        {
            using var pem = X509Certificate2.CreateFromPemFile(options.CertificateFile, string.IsNullOrEmpty(options.KeyFile) ? null : options.KeyFile);
            return X509CertificateLoader.LoadPkcs12(pem.Export(X509ContentType.Pkcs12), null);
        }
        var dir = Path.Combine(dataDir, "tls");
        var path = Path.Combine(dir, "selfsigned.pfx");
        if (File.Exists(path)) return X509CertificateLoader.LoadPkcs12FromFile(path, null);
        System.IO.Directory.CreateDirectory(dir);
        var cert = CreateSelfSigned(hostname);
        var bytes = cert.Export(X509ContentType.Pkcs12);
        File.WriteAllBytes(path, bytes);
        if (!OperatingSystem.IsWindows()) File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite);
        return X509CertificateLoader.LoadPkcs12(bytes, null);
    }

    private static X509Certificate2 CreateSelfSigned(string hostname)
    {
        using var key = ECDsa.Create(ECCurve.NamedCurves.nistP256);
        var request = new CertificateRequest($"CN={hostname}", key, HashAlgorithmName.SHA256);
        var san = new SubjectAlternativeNameBuilder();
        san.AddDnsName(hostname);
        san.AddDnsName("localhost");
        san.AddIpAddress(IPAddress.Loopback);
        san.AddIpAddress(IPAddress.IPv6Loopback);
        request.CertificateExtensions.Add(san.Build());
        request.CertificateExtensions.Add(new X509BasicConstraintsExtension(false, false, 0, true));
        request.CertificateExtensions.Add(new X509KeyUsageExtension(X509KeyUsageFlags.DigitalSignature, true));
        request.CertificateExtensions.Add(new X509EnhancedKeyUsageExtension([new Oid("1.3.6.1.5.5.7.3.1")], false));
        return request.CreateSelfSigned(DateTimeOffset.UtcNow.AddDays(-1), DateTimeOffset.UtcNow.AddYears(5));
    }
}
