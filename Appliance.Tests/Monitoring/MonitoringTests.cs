using System.Collections.Concurrent;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using Appliance.Tests.Hosting;
using Appliance.Tests.Smtp;
using MailKit.Net.Imap;
using MailKit.Net.Smtp;
using MimeKit;
using Xunit.Abstractions;
using static Appliance.Tests.Relay.OutboundDeliveryTests;

namespace Appliance.Tests.Monitoring;

/// <summary>
/// One node's monitoring as its users meet it: /metrics read by Prometheus' own promtool, the
/// Debian Nagios plugins and `appliance check` against running and stopped services, the
/// history and checks through the API, and alert e-mails (and webhooks) that escalate when
/// nobody acknowledges them, are held back once acknowledged, and end with a recovery notice.
/// The node samples every second here instead of every 10.
/// </summary>
public sealed class MonitoringTests(ITestOutputHelper output)
{
    private const string Plugins = "/usr/lib/nagios/plugins";
    private const string Promtool = "/usr/bin/promtool";
    private static readonly string Ops = "ops@" + TestNode.Domain;
    private static readonly string Boss = "boss@" + TestNode.Domain;

    private static Task<TestNode> StartAsync(Action<Appliance.Hosting.ApplianceOptions>? configure = null) =>
        TestNode.StartAsync(["alice", "ops", "boss"], o =>
        {
            o.Listen.Http = 0;
            o.Listen.Submission = 0;
            o.Monitoring.IntervalSeconds = 1;
            o.Monitoring.Contacts = [Ops];
            o.Monitoring.EscalationContacts = [Boss];
            configure?.Invoke(o);
        });

    private static HttpClient Api(TestNode node, string scope = "provision")
    {
        var http = new HttpClient { BaseAddress = new Uri($"http://{node.Host.Endpoints["http"]}/") };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", node.Directory.CreateToken("monitoring-test", scope));
        return http;
    }

    [Fact]
    public async Task Metrics_count_the_mail_and_promtool_accepts_them()
    {
        await using var node = await StartAsync();
        // One message accepted, one recipient refused (unknown: 5.1.1), one wrong IMAP password.
        await Mailkit.SendAsync(node.Smtp, Mailkit.Text("x@remote.test", "alice@" + TestNode.Domain, "hello", "body"));
        var refused = await Assert.ThrowsAsync<SmtpCommandException>(() =>
            Mailkit.SendAsync(node.Smtp, Mailkit.Text("x@remote.test", "nobody@" + TestNode.Domain, "hello", "body")));
        Assert.Equal(550, (int)refused.StatusCode);
        using (var imap = new ImapClient())
        {
            await imap.ConnectAsync(node.Imap.Address.ToString(), node.Imap.Port, MailKit.Security.SecureSocketOptions.None);
            // One attempt: MailKit would otherwise try LOGIN after a refused AUTHENTICATE PLAIN.
            imap.AuthenticationMechanisms.Clear();
            await Assert.ThrowsAsync<MailKit.Security.AuthenticationException>(() => imap.AuthenticateAsync("alice@" + TestNode.Domain, "wrong"));
        }

        using var http = new HttpClient { BaseAddress = new Uri($"http://{node.Host.Endpoints["http"]}/") };
        string text = "";
        try
        {
            await WaitUntilAsync(async () =>
            {
                text = await http.GetStringAsync("metrics");
                return text.Contains("appliance_login_failures_total 1\n") && text.Contains("appliance_smtp_rejected_total{role=\"mx\",reason=\"5.1.1\"} 1\n");
            }, "a sample taken after the mail");
        }
        finally
        {
            output.WriteLine(text);
        }
        Assert.Contains("appliance_smtp_accepted_total{role=\"mx\"} 1\n", text);
        Assert.Contains("# TYPE appliance_smtp_accepted_total counter\n", text);
        Assert.Contains("# TYPE appliance_cpu_percent gauge\n", text);
        Assert.Matches(@"appliance_disk_used_percent\{fs=""[^""]+""\} [0-9.]+\n", text);
        Assert.Contains("appliance_check_status{check=\"smtp\"} 0\n", text);
        Assert.Contains("appliance_check_status{check=\"pop3\"} 0\n", text);

        if (HostTool.Available(Promtool, output))
        {
            var (exit, lint) = await HostCommand.RunWithInputAsync(text, Promtool, "check", "metrics");
            Assert.True(exit == 0, $"promtool check metrics exited {exit}: {lint}");
            // It does complain about what it should: the same text with a counter missing its TYPE line's suffix.
            var (badExit, badLint) = await HostCommand.RunWithInputAsync("# HELP x_bytes a\n# TYPE x_bytes counter\nx_bytes 1\n", Promtool, "check", "metrics");
            Assert.True(badExit != 0, badLint);
        }

        // The history: the per-minute rate of accepted mail is a series of this node, and CPU has points.
        using var api = Api(node, "read");
        using var nodes = JsonDocument.Parse(await api.GetStringAsync("api/v1/monitoring/nodes"));
        var self = nodes.RootElement.GetProperty("nodes").EnumerateArray().Single();
        Assert.Equal("test", self.GetProperty("name").GetString());
        var metrics = self.GetProperty("metrics").EnumerateArray().Select(m => m.GetString()).ToList();
        Assert.Contains("cpu_percent", metrics);
        Assert.Contains("smtp_accepted_per_minute{role=\"mx\"}", metrics);
        Assert.Contains("queue_messages", metrics);
        using var series = JsonDocument.Parse(await api.GetStringAsync("api/v1/monitoring/series?node=test&metric=memory_used_percent&range=1h"));
        Assert.Equal(10, series.RootElement.GetProperty("step").GetInt64());
        var point = series.RootElement.GetProperty("points").EnumerateArray().First();
        Assert.InRange(point.GetProperty("avg").GetDouble(), 0.001, 100);
        Assert.True(point.GetProperty("min").GetDouble() <= point.GetProperty("max").GetDouble());
        Assert.Equal(HttpStatusCode.BadRequest, (await api.GetAsync("api/v1/monitoring/series?node=test&metric=cpu_percent&range=2w")).StatusCode);
    }

    [Fact]
    public async Task Metrics_from_elsewhere_need_a_token()
    {
        await using var node = await StartAsync(o => o.Monitoring.MetricsNetworks = []);
        using var anonymous = new HttpClient { BaseAddress = new Uri($"http://{node.Host.Endpoints["http"]}/") };
        Assert.Equal(HttpStatusCode.Unauthorized, (await anonymous.GetAsync("metrics")).StatusCode);
        using var reader = Api(node, "read");
        var response = await reader.GetAsync("metrics");
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.StartsWith("text/plain", response.Content.Headers.ContentType?.ToString());
        Assert.Contains("appliance_up 1\n", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task Nagios_plugins_and_appliance_check_see_a_service_stop()
    {
        if (!HostTool.Available(Plugins + "/check_smtp", output)) return;
        await using var node = await StartAsync();
        var smtp = node.Smtp;
        var pop3 = node.Host.Endpoints["pop3"];
        var http = node.Host.Endpoints["http"];
        async Task<(int Exit, string Output)> Plugin(string name, params string[] args)
        {
            var result = await HostCommand.RunAsync($"{Plugins}/{name}", args);
            output.WriteLine($"{name}: {result.Exit} {result.Output.Trim()}");
            return result;
        }
        Assert.Equal(0, (await Plugin("check_smtp", "-H", "127.0.0.1", "-p", smtp.Port.ToString(), "-e", "ESMTP Appliance")).Exit);
        Assert.Equal(0, (await Plugin("check_imap", "-H", "127.0.0.1", "-p", node.Imap.Port.ToString(), "-e", "IMAP ready")).Exit);
        Assert.Equal(0, (await Plugin("check_pop", "-H", "127.0.0.1", "-p", pop3.Port.ToString(), "-e", "POP3 ready")).Exit);
        Assert.Equal(0, (await Plugin("check_http", "-H", "127.0.0.1", "-p", http.Port.ToString(), "-u", "/metrics", "-s", "appliance_up 1")).Exit);
        var all = await ApplianceProcess.CommandAsync(["check", "--data", node.DataDirectory]);
        output.WriteLine(all.Stdout);
        Assert.Equal(0, all.Exit);
        Assert.StartsWith("APPLIANCE OK - ", all.Stdout);
        Assert.Contains(" | ", all.Stdout);
        var one = await ApplianceProcess.CommandAsync(["check", "--service", "pop3", "--data", node.DataDirectory]);
        Assert.Equal(0, one.Exit);
        Assert.Matches(@"^POP3 OK - .* \| time=[0-9.]+s;;;0\n$", one.Stdout);

        await node.Host.StopServiceAsync("pop3");
        Assert.Equal(2, (await Plugin("check_pop", "-H", "127.0.0.1", "-p", pop3.Port.ToString())).Exit);
        Assert.Equal(0, (await Plugin("check_smtp", "-H", "127.0.0.1", "-p", smtp.Port.ToString())).Exit);
        one = await ApplianceProcess.CommandAsync(["check", "--service", "pop3", "--data", node.DataDirectory]);
        output.WriteLine(one.Stdout);
        Assert.Equal(2, one.Exit);
        Assert.StartsWith("POP3 CRITICAL - ", one.Stdout);
        all = await ApplianceProcess.CommandAsync(["check", "--data", node.DataDirectory]);
        Assert.Equal(2, all.Exit);
        Assert.StartsWith("APPLIANCE CRITICAL - POP3 CRITICAL", all.Stdout);
        var unknown = await ApplianceProcess.CommandAsync(["check", "--service", "gopher", "--data", node.DataDirectory]);
        Assert.Equal(3, unknown.Exit);
        Assert.StartsWith("APPLIANCE UNKNOWN - no check named gopher", unknown.Stdout);

        await node.StopAsync();
        Assert.Equal(2, (await Plugin("check_smtp", "-H", "127.0.0.1", "-p", smtp.Port.ToString())).Exit);
        Assert.Equal(2, (await Plugin("check_http", "-H", "127.0.0.1", "-p", http.Port.ToString())).Exit);
        var down = await ApplianceProcess.CommandAsync(["check", "--data", node.DataDirectory]);
        Assert.Equal(2, down.Exit);
        Assert.StartsWith("APPLIANCE CRITICAL - the node is not running", down.Stdout);
    }

    [Fact]
    public async Task A_stopped_service_is_mailed_and_escalated_when_nobody_acknowledges()
    {
        await using var hook = WebhookSink.Start();
        await using var node = await StartAsync(o =>
        {
            o.Monitoring.EscalateAfterMinutes = 0.05;
            o.Monitoring.Webhooks = [hook.Url];
        });
        await WaitUntilAsync(() => Task.FromResult(node.Store.Monitor.ListChecks().Any(c => c.Node == "test" && c.Result.Name == "pop3")), "a first sample");
        await node.Host.StopServiceAsync("pop3");

        var problem = await MailAsync(node, "ops", "[PROBLEM] pop3 on test is CRITICAL");
        Assert.Equal("auto-generated", problem.Headers["Auto-Submitted"]);
        Assert.Contains("POP3 CRITICAL", problem.TextBody);
        var escalation = await MailAsync(node, "boss", "[ESCALATION] pop3 on test is CRITICAL");
        Assert.Contains("nobody acknowledged it in time", escalation.TextBody);
        await WaitUntilAsync(() => Task.FromResult(hook.Kinds("pop3").SequenceEqual(["PROBLEM", "ESCALATION"])), "both notices at the webhook");

        using var api = Api(node);
        var alert = await OpenAlertAsync(api, "pop3");
        Assert.Equal("CRITICAL", alert.GetProperty("status").GetString());
        Assert.True(alert.GetProperty("escalated").GetBoolean());
        Assert.False(alert.TryGetProperty("ackedBy", out _));
        var id = alert.GetProperty("id").GetString();
        Assert.Equal(HttpStatusCode.NoContent, (await api.PostAsync($"api/v1/monitoring/alerts/{id}/ack", null)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await api.PostAsync("api/v1/monitoring/alerts/nosuch/ack", null)).StatusCode);
        alert = await OpenAlertAsync(api, "pop3");
        Assert.False(string.IsNullOrEmpty(alert.GetProperty("ackedBy").GetString()));
        using var reader = Api(node, "read");
        Assert.Equal(HttpStatusCode.Forbidden, (await reader.PostAsync($"api/v1/monitoring/alerts/{id}/ack", null)).StatusCode);
        using var checks = JsonDocument.Parse(await reader.GetStringAsync("api/v1/monitoring/checks"));
        var first = checks.RootElement.GetProperty("checks")[0];
        Assert.Equal("pop3", first.GetProperty("name").GetString()); // worst first
        Assert.Equal("CRITICAL", first.GetProperty("status").GetString());
    }

    [Fact]
    public async Task An_acknowledged_alert_is_not_escalated_and_its_recovery_is_told()
    {
        await using var node = await StartAsync(o => o.Monitoring.EscalateAfterMinutes = 0.1);
        var options = node.Host.Options.Monitoring;
        var critical = options.DiskCriticalPercent;
        // Every file system is "full" for a while: the threshold, not the disk, changes.
        options.DiskCriticalPercent = 0.0001;
        await MailAsync(node, "ops", "[PROBLEM] disk on test is CRITICAL");
        using var api = Api(node);
        var alert = await OpenAlertAsync(api, "disk");
        var id = alert.GetProperty("id").GetString();
        Assert.Equal(HttpStatusCode.NoContent, (await api.PostAsync($"api/v1/monitoring/alerts/{id}/ack", null)).StatusCode);

        // Two samples after the escalation time have been looked at, and nothing was escalated.
        var deadline = alert.GetProperty("opened").GetDateTime().ToUniversalTime().AddSeconds(options.EscalateAfterMinutes * 60 + 2);
        await WaitUntilAsync(() => Task.FromResult(node.Store.Monitor.ListChecks().Single(c => c.Result.Name == "disk").Time
            > new DateTimeOffset(deadline).ToUnixTimeSeconds()), "samples past the escalation time");
        Assert.False(node.Store.Monitor.FindAlert(id!)!.Escalated);

        options.DiskCriticalPercent = critical;
        var recovery = await MailAsync(node, "ops", "[RECOVERY] disk on test is OK");
        Assert.Contains("Acknowledged: by ", recovery.TextBody);
        Assert.DoesNotContain(await SubjectsAsync(node, "boss"), s => s.Contains("disk"));
        Assert.False(node.Store.Monitor.FindAlert(id!)!.IsOpen);
    }

    [Fact]
    public async Task Login_probes_sign_in_as_the_probe_account_and_a_wrong_password_is_critical()
    {
        await using var node = await StartAsync(o =>
        {
            o.Monitoring.IntervalSeconds = 0;
            o.Listen.Smtps = 0;
            o.Monitoring.ProbeAccount = "alice@" + TestNode.Domain;
            o.Monitoring.ProbePassword = TestNode.Password;
        });
        var checks = await node.Host.Monitoring.CheckNowAsync(CancellationToken.None);
        foreach (var name in new[] { "imap", "imaps", "pop3", "pop3s", "submission", "smtps" })
        {
            var check = checks.Single(c => c.Name == name);
            output.WriteLine(check.Output);
            Assert.Equal(Appliance.Monitoring.CheckStatus.Ok, check.Status);
            Assert.Contains($", login as alice@{TestNode.Domain} in ", check.Output);
        }
        Assert.DoesNotContain("login", checks.Single(c => c.Name == "smtp").Output); // the MX has no AUTH

        // A wrong password: one refused attempt, then no probe signs in again for the throttle's
        // window, so the probes never lock their own address out; every login check says why.
        node.Host.Options.Monitoring.ProbePassword = "not the password";
        var failures = node.Host.Throttle.FailuresTotal;
        for (var round = 0; round < 3; round++)
        {
            checks = await node.Host.Monitoring.CheckNowAsync(CancellationToken.None);
            foreach (var name in new[] { "imap", "imaps", "pop3", "pop3s", "submission", "smtps" })
            {
                var check = checks.Single(c => c.Name == name);
                Assert.Equal(Appliance.Monitoring.CheckStatus.Critical, check.Status);
                Assert.Contains($"login as alice@{TestNode.Domain} refused", check.Output);
            }
        }
        Assert.Equal(failures + 1, node.Host.Throttle.FailuresTotal);
        Assert.Contains("login probes paused until", checks.Single(c => c.Name == "pop3").Output);
        Assert.Equal(Appliance.Monitoring.CheckStatus.Ok, checks.Single(c => c.Name == "smtp").Status);
    }

    [Fact]
    public async Task Our_address_on_a_block_list_is_critical()
    {
        await using var dns = Appliance.Tests.Relay.TestDns.Start();
        // RFC 5782: 192.0.2.99 is listed on bl.test (its reversed name has an A record), 192.0.2.1 is not.
        dns.Add("99.2.0.192.bl.test", "A", "127.0.0.2");
        await using var node = await StartAsync(o =>
        {
            o.Monitoring.IntervalSeconds = 0;
            o.Dns.Servers = [dns.Server];
            o.Monitoring.Dnsbl = ["bl.test"];
            o.Monitoring.PublicAddresses = ["192.0.2.1"];
        });
        var clean = (await node.Host.Monitoring.CheckNowAsync(CancellationToken.None)).Single(c => c.Name == "dnsbl");
        Assert.Equal(Appliance.Monitoring.CheckStatus.Ok, clean.Status);
        Assert.Equal("DNSBL OK - 1 address(es) on none of 1 list(s)", clean.Output);
        Assert.Equal(1, dns.QueryCount("1.2.0.192.bl.test", "A"));

        node.Host.Options.Monitoring.PublicAddresses = ["192.0.2.1", "192.0.2.99"];
        var listed = (await node.Host.Monitoring.CheckNowAsync(CancellationToken.None)).Single(c => c.Name == "dnsbl");
        Assert.Equal(Appliance.Monitoring.CheckStatus.Critical, listed.Status);
        Assert.Equal("DNSBL CRITICAL - listed: 192.0.2.99 on bl.test", listed.Output);
    }

    private static async Task<JsonElement> OpenAlertAsync(HttpClient api, string check)
    {
        using var alerts = JsonDocument.Parse(await api.GetStringAsync("api/v1/monitoring/alerts"));
        return alerts.RootElement.GetProperty("alerts").EnumerateArray().Single(a => a.GetProperty("check").GetString() == check).Clone();
    }

    private static async Task<List<string>> SubjectsAsync(TestNode node, string local) =>
        [.. (await node.InboxBytesAsync(local)).Select(b => MimeMessage.Load(new MemoryStream(b)).Subject ?? "")];

    private static async Task<MimeMessage> MailAsync(TestNode node, string local, string subject)
    {
        MimeMessage? found = null;
        await WaitUntilAsync(async () =>
        {
            found = (await node.InboxBytesAsync(local)).Select(b => MimeMessage.Load(new MemoryStream(b))).FirstOrDefault(m => m.Subject == subject);
            return found is not null;
        }, $"\"{subject}\" in {local}'s INBOX", seconds: 90);
        return found!;
    }

    /// <summary>An HTTP endpoint that keeps what alert webhooks POST to it.</summary>
    private sealed class WebhookSink : IAsyncDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly ConcurrentQueue<JsonDocument> _received = new();
        private readonly Task _loop;
        public string Url { get; }

        private WebhookSink(int port)
        {
            Url = $"http://127.0.0.1:{port}/hook/";
            _listener.Prefixes.Add(Url);
            _listener.Start();
            _loop = LoopAsync();
        }

        public static WebhookSink Start() => new(ApplianceProcess.FreePort());

        public IEnumerable<string> Kinds(string check) =>
            _received.Where(d => d.RootElement.GetProperty("check").GetString() == check).Select(d => d.RootElement.GetProperty("kind").GetString()!);

        private async Task LoopAsync()
        {
            while (_listener.IsListening)
            {
                HttpListenerContext ctx;
                try { ctx = await _listener.GetContextAsync(); }
                catch (Exception ex) when (ex is HttpListenerException or ObjectDisposedException) { return; }
                using (var reader = new StreamReader(ctx.Request.InputStream, Encoding.UTF8))
                    _received.Enqueue(JsonDocument.Parse(await reader.ReadToEndAsync()));
                ctx.Response.StatusCode = 204;
                ctx.Response.Close();
            }
        }

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            await _loop;
            _listener.Close();
        }
    }
}
