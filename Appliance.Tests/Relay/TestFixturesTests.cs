using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Text;
using Appliance.Tests.Smtp;
using DnsClient;
using DnsClient.Protocol;
using MailKit;
using MailKit.Net.Smtp;
using MailKit.Security;
using MimeKit;

namespace Appliance.Tests.Relay;

/// <summary>The test DNS server and the test MX, driven by the clients the appliance uses (DnsClient, MailKit).</summary>
public sealed class TestFixturesTests : IAsyncLifetime
{
    private TestDns _dns = null!;

    public Task InitializeAsync()
    {
        _dns = TestDns.Start();
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _dns.DisposeAsync();

    private LookupClient Client(int? ednsBufferSize = null)
    {
        var options = new LookupClientOptions(new NameServer(IPAddress.Loopback, _dns.Port))
        {
            UseCache = false,
            Timeout = TimeSpan.FromSeconds(2),
            Retries = 0,
        };
        if (ednsBufferSize is { } size) options.ExtendedDnsBufferSize = size;
        return new LookupClient(options);
    }

    // ---- TestDns ----

    [Fact]
    public async Task Dns_Mx_ComesBackWithPreferences_Authoritatively()
    {
        _dns.Add("example.test", "MX", "20 mx2.example.test");
        _dns.Add("Example.TEST.", "MX", "10 mx1.example.test.");

        var response = await Client().QueryAsync("example.test", QueryType.MX);

        Assert.Equal(DnsHeaderResponseCode.NoError, response.Header.ResponseCode);
        Assert.True(response.Header.HasAuthorityAnswer);
        var mx = response.Answers.MxRecords().OrderBy(r => r.Preference).ToList();
        Assert.Equal(["mx1.example.test.", "mx2.example.test."], mx.Select(r => r.Exchange.Value));
        Assert.Equal([(ushort)10, (ushort)20], mx.Select(r => r.Preference));
        Assert.Equal(300, mx[0].InitialTimeToLive);
        Assert.All(mx, r => Assert.Equal("example.test.", r.DomainName.Value));
        Assert.Equal("127.0.0.1:" + _dns.Port, _dns.Server);
    }

    [Fact]
    public async Task Dns_NullMx_IsPreferenceZeroToRoot()
    {
        _dns.Add("nomail.test", "MX", "0 .");

        var response = await Client().QueryAsync("nomail.test", QueryType.MX);

        var mx = Assert.Single(response.Answers.MxRecords());
        Assert.Equal(0, mx.Preference);
        Assert.Equal(".", mx.Exchange.Value);
    }

    [Fact]
    public async Task Dns_AddressRecords_NamesAreCaseInsensitive()
    {
        _dns.Add("mx1.example.test", "A", "127.0.0.2", ttl: 60);
        _dns.Add("mx1.example.test", "A", "127.0.0.3");
        _dns.Add("mx1.example.test", "AAAA", "::1");

        var client = Client();
        var a = await client.QueryAsync("MX1.Example.Test", QueryType.A);
        var aaaa = await client.QueryAsync("mx1.example.test.", QueryType.AAAA);

        Assert.Equal(["127.0.0.2", "127.0.0.3"], a.Answers.ARecords().Select(r => r.Address.ToString()));
        Assert.Equal(60, a.Answers.ARecords().First().InitialTimeToLive);
        Assert.Equal(IPAddress.IPv6Loopback, Assert.Single(aaaa.Answers.AaaaRecords()).Address);
    }

    [Fact]
    public async Task Dns_LongTxt_IsSplitIntoCharacterStrings_AndJoinsBackIntact()
    {
        var key = "v=DKIM1; k=rsa; p=" + string.Concat(Enumerable.Range(0, 600).Select(i => "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"[i % 64]));
        _dns.Add("sel._domainkey.example.test", "TXT", key);
        _dns.Add("example.test", "TXT", "v=spf1 ip4:127.0.0.1 -all");

        var client = Client();
        var dkim = Assert.Single((await client.QueryAsync("sel._domainkey.example.test", QueryType.TXT)).Answers.TxtRecords());
        var spf = Assert.Single((await client.QueryAsync("example.test", QueryType.TXT)).Answers.TxtRecords());

        Assert.Equal([255, 255, key.Length - 510], dkim.Text.Select(t => t.Length));
        Assert.Equal(key, string.Concat(dkim.Text));
        Assert.Equal("v=spf1 ip4:127.0.0.1 -all", Assert.Single(spf.Text));
    }

    [Fact]
    public async Task Dns_UnknownName_IsNxDomainWithSoa()
    {
        _dns.NegativeTtl = 42;

        var response = await Client().QueryAsync("nosuch.example.test", QueryType.MX);

        Assert.Equal(DnsHeaderResponseCode.NotExistentDomain, response.Header.ResponseCode);
        Assert.Empty(response.Answers);
        var soa = Assert.Single(response.Authorities.SoaRecords());
        Assert.Equal(42u, soa.Minimum);
        Assert.Equal("example.test.", soa.DomainName.Value);
    }

    [Fact]
    public async Task Dns_NameWithOtherTypesOnly_IsNoDataWithSoa()
    {
        _dns.Add("host.example.test", "A", "127.0.0.2");

        var response = await Client().QueryAsync("host.example.test", QueryType.MX);

        Assert.Equal(DnsHeaderResponseCode.NoError, response.Header.ResponseCode);
        Assert.Empty(response.Answers);
        Assert.Single(response.Authorities.SoaRecords());
    }

    [Fact]
    public async Task Dns_Cname_IsFollowedInTheTable()
    {
        _dns.Add("alias.example.test", "CNAME", "host.example.test");
        _dns.Add("host.example.test", "A", "127.0.0.5");
        _dns.Add("dangling.example.test", "CNAME", "gone.example.test");

        var client = Client();
        var followed = await client.QueryAsync("alias.example.test", QueryType.A);
        var dangling = await client.QueryAsync("dangling.example.test", QueryType.A);

        Assert.Equal("host.example.test.", Assert.Single(followed.Answers.CnameRecords()).CanonicalName.Value);
        var a = Assert.Single(followed.Answers.ARecords());
        Assert.Equal("127.0.0.5", a.Address.ToString());
        Assert.Equal("host.example.test.", a.DomainName.Value);
        Assert.Equal("alias.example.test.", followed.Answers.CnameRecords().Single().DomainName.Value);
        Assert.Equal(DnsHeaderResponseCode.NotExistentDomain, dangling.Header.ResponseCode);
        Assert.Single(dangling.Answers.CnameRecords());
    }

    [Fact]
    public async Task Dns_Remove_TakesRecordsAway()
    {
        _dns.Add("host.example.test", "A", "127.0.0.2");
        _dns.Add("host.example.test", "TXT", "x");
        var client = Client();

        _dns.Remove("host.example.test", "A");
        var noData = await client.QueryAsync("host.example.test", QueryType.A);
        _dns.Remove("HOST.example.test");
        var gone = await client.QueryAsync("host.example.test", QueryType.TXT);

        Assert.Equal(DnsHeaderResponseCode.NoError, noData.Header.ResponseCode);
        Assert.Empty(noData.Answers);
        Assert.Equal(DnsHeaderResponseCode.NotExistentDomain, gone.Header.ResponseCode);
    }

    [Theory]
    [InlineData(DnsFault.ServFail, DnsHeaderResponseCode.ServerFailure)]
    [InlineData(DnsFault.Refused, DnsHeaderResponseCode.Refused)]
    public async Task Dns_Fault_IsTheRcode_UntilHealed(DnsFault fault, DnsHeaderResponseCode expected)
    {
        _dns.Add("example.test", "MX", "10 mx1.example.test");
        _dns.Fail("example.test", fault);
        var client = Client();

        var failed = await client.QueryAsync("example.test", QueryType.MX);
        _dns.Heal("example.test");
        var healed = await client.QueryAsync("example.test", QueryType.MX);

        Assert.Equal(expected, failed.Header.ResponseCode);
        Assert.True(failed.HasError);
        Assert.Empty(failed.Answers);
        Assert.Single(healed.Answers.MxRecords());
    }

    [Fact]
    public async Task Dns_TimeoutFault_NeverAnswers()
    {
        _dns.Add("example.test", "MX", "10 mx1.example.test");
        _dns.Fail("example.test", DnsFault.Timeout);

        var e = await Assert.ThrowsAsync<DnsResponseException>(() => Client().QueryAsync("example.test", QueryType.MX));

        Assert.Equal(DnsResponseCode.ConnectionTimeout, e.Code);
        Assert.Equal(1, _dns.QueryCount("example.test", "MX"));
    }

    [Theory]
    [InlineData(40, 512)] // over plain DNS's 512 bytes
    [InlineData(300, null)] // over DnsClient's default EDNS size of 4096 bytes (as the appliance will query)
    public async Task Dns_BigAnswer_IsTruncatedOverUdp_AndWholeOverTcp(int count, int? ednsBufferSize)
    {
        for (var i = 0; i < count; i++) _dns.Add("many.example.test", "A", $"10.0.{i / 256}.{i % 256}");

        var response = await Client(ednsBufferSize).QueryAsync("many.example.test", QueryType.A);

        Assert.Equal(count, response.Answers.ARecords().Count());
        Assert.Equal(1, _dns.TcpQueryCount);
        Assert.Equal(2, _dns.QueryCount("many.example.test", "A")); // once over UDP, once over TCP
    }

    [Theory]
    [InlineData(40, null)] // no EDNS: 512 bytes, and no OPT in the answer
    [InlineData(40, (ushort)512)]
    [InlineData(300, (ushort)4096)]
    public async Task Dns_RawUdp_TruncatesToTheRequestorsSize_AndEchoesOpt(int count, ushort? ednsSize)
    {
        for (var i = 0; i < count; i++) _dns.Add("many.example.test", "A", $"10.0.{i / 256}.{i % 256}");
        _dns.Add("one.example.test", "A", "10.0.0.1");

        var big = await RawUdpQueryAsync("many.example.test", type: 1, ednsSize);
        var small = await RawUdpQueryAsync("ONE.example.test", type: 1, ednsSize);

        var opt = ednsSize is null ? 0 : 1;
        Assert.Equal(0x1234, BinaryPrimitives.ReadUInt16BigEndian(big));
        var flags = BinaryPrimitives.ReadUInt16BigEndian(big.AsSpan(2));
        Assert.True((flags & 0x8000) != 0, "QR");
        Assert.True((flags & 0x0400) != 0, "AA");
        Assert.True((flags & 0x0200) != 0, "TC");
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(big.AsSpan(6))); // no answers
        Assert.Equal(opt, BinaryPrimitives.ReadUInt16BigEndian(big.AsSpan(10)));
        Assert.True(big.Length <= (ednsSize ?? 512));

        var smallFlags = BinaryPrimitives.ReadUInt16BigEndian(small.AsSpan(2));
        Assert.Equal(0, smallFlags & 0x0200);
        Assert.Equal(1, BinaryPrimitives.ReadUInt16BigEndian(small.AsSpan(6)));
        Assert.Equal(opt, BinaryPrimitives.ReadUInt16BigEndian(small.AsSpan(10)));
        Assert.Equal("ONE", Encoding.ASCII.GetString(small, 13, 3)); // the question keeps the asker's case
    }

    [Fact]
    public async Task Dns_QueryCount_CountsEachQuestion()
    {
        _dns.Add("example.test", "MX", "10 mx1.example.test");
        var client = Client();

        await client.QueryAsync("example.test", QueryType.MX);
        await client.QueryAsync("EXAMPLE.test", QueryType.MX);
        await client.QueryAsync("example.test", QueryType.A);

        Assert.Equal(2, _dns.QueryCount("example.test.", "mx"));
        Assert.Equal(1, _dns.QueryCount("example.test", "A"));
        Assert.Equal(0, _dns.QueryCount("example.test", "TXT"));
    }

    private async Task<byte[]> RawUdpQueryAsync(string name, ushort type, ushort? ednsSize)
    {
        var q = new List<byte> { 0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, (byte)(ednsSize is null ? 0 : 1) };
        foreach (var label in name.Split('.'))
        {
            q.Add((byte)label.Length);
            q.AddRange(Encoding.ASCII.GetBytes(label));
        }
        q.AddRange([0, (byte)(type >> 8), (byte)type, 0, 1]);
        if (ednsSize is { } size) q.AddRange([0, 0, 41, (byte)(size >> 8), (byte)size, 0, 0, 0, 0, 0, 0]);
        using var udp = new UdpClient(new IPEndPoint(IPAddress.Loopback, 0));
        await udp.SendAsync(q.ToArray(), new IPEndPoint(IPAddress.Loopback, _dns.Port));
        var result = await udp.ReceiveAsync().WaitAsync(TimeSpan.FromSeconds(10));
        return result.Buffer;
    }

    // ---- TestMx ----

    private static readonly Lazy<System.Security.Cryptography.X509Certificates.X509Certificate2> Certificate = new(() => TestMx.TestCertificate("mx.test"));

    private static SmtpClient Connectable(SmtpClient client)
    {
        client.ServerCertificateValidationCallback = (_, _, _, _) => true;
        client.Timeout = 30_000;
        return client;
    }

    private static async Task SendAsync(TestMx mx, MimeMessage message, SecureSocketOptions tls = SecureSocketOptions.None,
        SmtpClient? client = null, (string User, string Password)? auth = null)
    {
        using var smtp = Connectable(client ?? new SmtpClient());
        await smtp.ConnectAsync(mx.Endpoint.Address.ToString(), mx.Endpoint.Port, tls);
        if (auth is { } a) await smtp.AuthenticateAsync(a.User, a.Password);
        await smtp.SendAsync(message);
        await smtp.DisconnectAsync(quit: true);
    }

    [Fact]
    public async Task Mx_Plain_RecordsEnvelopeAndExactBytes()
    {
        await using var mx = await TestMx.StartAsync(IPAddress.Parse("127.0.0.2"));
        var message = Mailkit.Text("alice@example.test", "bob@remote.test", "plain", "Hello.\r\n.a line starting with a dot\r\n..two dots\r\nBye.");

        await SendAsync(mx, message);

        var mail = await mx.WaitAsync();
        Assert.Equal("alice@example.test", mail.From);
        Assert.Equal(["bob@remote.test"], mail.To);
        Assert.Equal(Mailkit.WireBytes(message), mail.Data);
        Assert.Contains("\r\n.a line starting with a dot\r\n..two dots\r\n", Encoding.ASCII.GetString(mail.Data));
        Assert.False(mail.Secure);
        Assert.Null(mail.AuthenticatedUser);
        Assert.NotEmpty(mail.Helo);
        Assert.Equal(1, mx.Connections);
        Assert.Equal(IPAddress.Parse("127.0.0.2"), mx.Endpoint.Address);
    }

    [Fact]
    public async Task Mx_StartTls_MarksTheMailSecure()
    {
        await using var mx = await TestMx.StartAsync(IPAddress.Loopback, certificate: Certificate.Value);

        await SendAsync(mx, Mailkit.Text("alice@example.test", "bob@remote.test", "tls", "over TLS"), SecureSocketOptions.StartTlsWhenAvailable);

        Assert.True((await mx.WaitAsync()).Secure);
        Assert.Contains("STARTTLS", mx.Commands);
        Assert.Equal(2, mx.Commands.Count(c => c.StartsWith("EHLO", StringComparison.Ordinal))); // again after TLS
    }

    [Fact]
    public async Task Mx_SmartHost_RequiresAuth_AfterTls()
    {
        await using var mx = await TestMx.StartAsync(IPAddress.Loopback, certificate: Certificate.Value, requireUser: "relay", requirePassword: "s3cret");
        var message = Mailkit.Text("alice@example.test", "bob@remote.test", "relayed", "via smart host");

        await SendAsync(mx, message, SecureSocketOptions.StartTls, auth: ("relay", "s3cret"));
        await Assert.ThrowsAsync<AuthenticationException>(() => SendAsync(mx, message, SecureSocketOptions.StartTls, auth: ("relay", "wrong")));
        var unauthenticated = await Assert.ThrowsAsync<ServiceNotAuthenticatedException>(() => SendAsync(mx, message, SecureSocketOptions.StartTls));

        var mail = Assert.Single(mx.Received);
        Assert.Equal("relay", mail.AuthenticatedUser);
        Assert.True(mail.Secure);
        Assert.Contains("5.7.0 Authentication required", unauthenticated.Message); // MailKit's name for 530
    }

    [Fact]
    public async Task Mx_Auth_PlainWithContinuation_AndLogin()
    {
        await using var mx = await TestMx.StartAsync(IPAddress.Loopback, requireUser: "relay", requirePassword: "pw");
        static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));

        await using var plain = await RawSmtp.ConnectAsync(mx.Endpoint);
        Assert.Contains("AUTH PLAIN LOGIN", await plain.SendAsync("EHLO client.test"));
        Assert.StartsWith("530 5.7.0", await plain.SendAsync("MAIL FROM:<a@example.test>"));
        Assert.StartsWith("334", await plain.SendAsync("AUTH PLAIN"));
        Assert.StartsWith("235", await plain.SendAsync(B64("\0relay\0pw")));

        await using var login = await RawSmtp.ConnectAsync(mx.Endpoint);
        await login.SendAsync("EHLO client.test");
        Assert.Equal("334 VXNlcm5hbWU6", await login.SendAsync("AUTH LOGIN"));
        Assert.Equal("334 UGFzc3dvcmQ6", await login.SendAsync(B64("relay")));
        Assert.StartsWith("535", await login.SendAsync(B64("nope")));
        Assert.StartsWith("235", await login.SendAsync("AUTH PLAIN " + B64("\0relay\0pw")));
        Assert.StartsWith("250", await login.SendAsync("MAIL FROM:<a@example.test>"));
    }

    private sealed class TolerantSmtpClient : SmtpClient
    {
        protected override void OnRecipientNotAccepted(MimeMessage message, MailboxAddress mailbox, SmtpResponse response)
        {
        }
    }

    [Fact]
    public async Task Mx_RejectedRecipient_IsLeftOutOfTheMail()
    {
        await using var mx = await TestMx.StartAsync(IPAddress.Loopback);
        mx.OnRcpt = rcpt => rcpt.StartsWith("nobody@", StringComparison.Ordinal) ? "550 5.1.1 no such user" : null;
        var message = Mailkit.Text("alice@example.test", "bob@remote.test", "two", "to two");
        message.To.Add(MailboxAddress.Parse("nobody@remote.test"));

        await SendAsync(mx, message, client: new TolerantSmtpClient());

        var mail = await mx.WaitAsync();
        Assert.Equal(["bob@remote.test"], mail.To);
        Assert.Equal(["bob@remote.test"], mail.RcptParameters.Keys);
    }

    [Fact]
    public async Task Mx_GreetingReply421_FailsTheClient()
    {
        await using var mx = await TestMx.StartAsync(IPAddress.Loopback);
        mx.GreetingReply = "421 4.3.2 go away";

        var e = await Assert.ThrowsAnyAsync<Exception>(() => SendAsync(mx, Mailkit.Text("a@example.test", "b@remote.test", "s", "b")));

        Assert.Contains("go away", e.Message);
        Assert.Empty(mx.Received);
        Assert.Equal(1, mx.Connections);
    }

    [Fact]
    public async Task Mx_StallGreeting_TimesTheClientOut()
    {
        await using var mx = await TestMx.StartAsync(IPAddress.Loopback);
        mx.StallGreeting = true;
        using var client = Connectable(new SmtpClient());
        client.Timeout = 500;

        await Assert.ThrowsAnyAsync<Exception>(() => client.ConnectAsync("127.0.0.1", mx.Endpoint.Port, SecureSocketOptions.None));

        Assert.Equal(1, mx.Connections);
    }

    [Fact]
    public async Task Mx_MailFromRejected_IsSenderNotAccepted()
    {
        await using var mx = await TestMx.StartAsync(IPAddress.Loopback);
        mx.OnMailFrom = from => from == "spammer@example.test" ? "550 5.7.1 not you" : null;

        var e = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(mx, Mailkit.Text("spammer@example.test", "b@remote.test", "s", "b")));

        Assert.Equal(SmtpErrorCode.SenderNotAccepted, e.ErrorCode);
        Assert.Empty(mx.Received);
    }

    [Fact]
    public async Task Mx_DataReply451_IsTemporaryAndNothingIsRecorded()
    {
        await using var mx = await TestMx.StartAsync(IPAddress.Loopback);
        mx.DataReply = "451 4.3.0 try later";

        var e = await Assert.ThrowsAsync<SmtpCommandException>(() => SendAsync(mx, Mailkit.Text("a@example.test", "b@remote.test", "s", "b")));

        Assert.Equal(SmtpErrorCode.MessageNotAccepted, e.ErrorCode);
        Assert.Equal(451, (int)e.StatusCode);
        Assert.Empty(mx.Received);
        await Assert.ThrowsAsync<TimeoutException>(() => mx.WaitAsync(timeout: TimeSpan.FromMilliseconds(200)));
    }

    [Fact]
    public async Task Mx_DropAfterData_ClosesWithoutReply()
    {
        await using var mx = await TestMx.StartAsync(IPAddress.Loopback);
        mx.DropAfterData = true;

        await using var c = await RawSmtp.ConnectAsync(mx.Endpoint);
        await c.SendAsync("EHLO client.test");
        await c.SendAsync("MAIL FROM:<a@example.test>");
        await c.SendAsync("RCPT TO:<b@remote.test>");
        var reply = await c.DataAsync("Subject: x\r\n\r\nbody\r\n"u8.ToArray());

        Assert.Equal("", reply);
        Assert.Empty(mx.Received);
    }

    private sealed class DsnSmtpClient : SmtpClient
    {
        protected override DeliveryStatusNotification? GetDeliveryStatusNotifications(MimeMessage message, MailboxAddress mailbox) =>
            DeliveryStatusNotification.Failure | DeliveryStatusNotification.Delay;

        protected override string GetEnvelopeId(MimeMessage message) => "env-42";
    }

    [Fact]
    public async Task Mx_DsnParameters_AreRecorded()
    {
        await using var mx = await TestMx.StartAsync(IPAddress.Loopback);
        var client = new DsnSmtpClient { DeliveryStatusNotificationType = DeliveryStatusNotificationType.HeadersOnly };

        await SendAsync(mx, Mailkit.Text("a@example.test", "b@remote.test", "dsn", "b"), client: client);

        var mail = await mx.WaitAsync();
        Assert.Equal("HDRS", mail.MailParameters["RET"]);
        Assert.Equal("env-42", mail.MailParameters["envid"]);
        var rcpt = mail.RcptParameters["B@remote.test"];
        Assert.Equal("FAILURE,DELAY", rcpt["NOTIFY"]);
        Assert.Equal("rfc822;b@remote.test", rcpt["ORCPT"]);
    }

    [Fact]
    public async Task Mx_Pipelined_RawTranscript_KeepsBytesExact()
    {
        await using var mx = await TestMx.StartAsync(IPAddress.Loopback);
        await using var c = await RawSmtp.ConnectAsync(mx.Endpoint);
        Assert.Contains("PIPELINING", await c.SendAsync("EHLO client.test"));

        await c.WriteAsync("MAIL FROM:<> SIZE=40 BODY=8BITMIME\r\nRCPT TO:<x@remote.test>\r\nRCPT TO:<y@remote.test> NOTIFY=NEVER\r\nDATA\r\n"u8.ToArray());
        Assert.StartsWith("250", await c.ReadReplyAsync());
        Assert.StartsWith("250", await c.ReadReplyAsync());
        Assert.StartsWith("250", await c.ReadReplyAsync());
        Assert.StartsWith("354", await c.ReadReplyAsync());
        await c.WriteAsync("..x\r\n\r\n...\r\nend.\r\n.\r\nNOOP\r\n"u8.ToArray());
        Assert.StartsWith("250 2.0.0", await c.ReadReplyAsync());
        Assert.StartsWith("250", await c.ReadReplyAsync());
        Assert.StartsWith("555", await c.SendAsync("MAIL FROM:<a@example.test> XFOO=1"));

        var mail = Assert.Single(mx.Received);
        Assert.Equal("", mail.From);
        Assert.Equal(["x@remote.test", "y@remote.test"], mail.To);
        Assert.Equal(".x\r\n\r\n..\r\nend.\r\n", Encoding.ASCII.GetString(mail.Data));
        Assert.Equal("8BITMIME", mail.MailParameters["BODY"]);
        Assert.Empty(mail.RcptParameters["x@remote.test"]);
        Assert.Equal("NEVER", mail.RcptParameters["y@remote.test"]["NOTIFY"]);
    }

    [Fact]
    public async Task Mx_SeveralOnOnePort_EachGetsItsOwnMail()
    {
        var mxs = await TestMx.StartSamePortAsync([IPAddress.Parse("127.0.0.2"), IPAddress.Parse("127.0.0.3")]);
        try
        {
            mxs[1].Name = "mx2.test";
            Assert.Equal(mxs[0].Endpoint.Port, mxs[1].Endpoint.Port);

            await SendAsync(mxs[1], Mailkit.Text("a@example.test", "b@remote.test", "second", "b"));

            Assert.Empty(mxs[0].Received);
            Assert.Equal(0, mxs[0].Connections);
            Assert.Single(mxs[1].Received);
        }
        finally
        {
            foreach (var mx in mxs) await mx.DisposeAsync();
        }
    }

    [Fact]
    public async Task Mx_Dispose_ClosesOpenConnections()
    {
        var mx = await TestMx.StartAsync(IPAddress.Loopback);
        await using var c = await RawSmtp.ConnectAsync(mx.Endpoint);
        await c.SendAsync("EHLO client.test");

        await mx.DisposeAsync();

        Assert.Equal("", await c.ReadReplyAsync());
    }
}
