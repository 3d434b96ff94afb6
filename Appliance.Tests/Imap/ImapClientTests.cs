using Appliance.Tests.Smtp;

namespace Appliance.Tests.Imap;

/// <summary>Other real clients: Python's imaplib, curl and mbsync (isync), as installed by .ci/run.</summary>
public sealed class ImapClientTests
{
    [Fact]
    public async Task Python_imaplib_reads_flags_searches_and_expunges_over_imaps()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        for (int i = 0; i < 3; i++) await Mailkit.SendAsync(node.Smtp, Mailkit.Text("s@remote.test", $"alice@{TestNode.Domain}", $"python {i}", $"line {i}"));
        var output = await ImapClients.PythonAsync(node.Imaps, """
            ctx = ssl.create_default_context(); ctx.check_hostname = False; ctx.verify_mode = ssl.CERT_NONE
            m = imaplib.IMAP4_SSL(HOST, PORT, ssl_context=ctx)
            m.login(USER, PASSWORD)
            typ, data = m.select('INBOX')
            print('exists', data[0].decode())
            typ, data = m.search(None, 'SUBJECT', '"python 1"')
            print('search', data[0].decode())
            typ, data = m.fetch('2', '(BODY.PEEK[HEADER.FIELDS (SUBJECT)])')
            print('header', data[0][1].decode().strip())
            m.store('1', '+FLAGS', '\\Deleted')
            typ, data = m.expunge()
            print('expunged', data[0].decode())
            typ, data = m.uid('SEARCH', None, 'ALL')
            print('uids', data[0].decode())
            m.close(); m.logout()
            """);
        Assert.Contains("exists 3", output);
        Assert.Contains("search 2", output);
        Assert.Contains("header Subject: python 1", output);
        Assert.Contains("expunged 1", output);
        Assert.Contains("uids 2 3", output);
    }

    [Fact]
    public async Task Curl_lists_and_fetches_over_starttls()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        await Mailkit.SendAsync(node.Smtp, Mailkit.Text("s@remote.test", $"alice@{TestNode.Domain}", "via curl", "curl body line"));
        var user = $"alice@{TestNode.Domain}:{TestNode.Password}";
        var url = $"imap://{node.Imap.Address}:{node.Imap.Port}";
        var list = await ImapClients.RunAsync("curl", ["-sS", "--ssl-reqd", "-k", "-u", user, url + "/"]);
        Assert.Contains("INBOX", list);
        Assert.Contains("\\Sent", list);
        var message = await ImapClients.RunAsync("curl", ["-sS", "--ssl-reqd", "-k", "-u", user, url + "/INBOX;UID=1"]);
        Assert.Contains("Subject: via curl", message);
        Assert.Contains("curl body line", message);
    }

    [Fact]
    public async Task Mbsync_mirrors_the_mailbox_both_ways()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        for (int i = 0; i < 3; i++) await Mailkit.SendAsync(node.Smtp, Mailkit.Text("s@remote.test", $"alice@{TestNode.Domain}", $"sync {i}", "x"));
        var dir = Path.Combine(node.DataDirectory, "mbsync");
        System.IO.Directory.CreateDirectory(Path.Combine(dir, "mail"));
        var config = Path.Combine(dir, "mbsyncrc");
        await File.WriteAllTextAsync(config, $"""
            IMAPAccount test
            Host {node.Imap.Address}
            Port {node.Imap.Port}
            User alice@{TestNode.Domain}
            Pass "{TestNode.Password}"
            SSLType STARTTLS
            CertificateFile /dev/null
            SystemCertificates no

            IMAPStore remote
            Account test

            MaildirStore local
            Path {dir}/mail/
            Inbox {dir}/mail/INBOX
            SubFolders Verbatim

            Channel all
            Far :remote:
            Near :local:
            Patterns *
            Create Both
            Expunge Both
            SyncState *

            """);
        // mbsync trusts certificates listed in CertificateFile: the node's self-signed one.
        var cert = Path.Combine(dir, "node.pem");
        await File.WriteAllTextAsync(cert, node.Host.Certificate.ExportCertificatePem());
        await File.WriteAllTextAsync(config, (await File.ReadAllTextAsync(config)).Replace("CertificateFile /dev/null", "CertificateFile " + cert));

        await ImapClients.RunAsync("mbsync", ["-c", config, "-a"]);
        var inboxFiles = System.IO.Directory.GetFiles(Path.Combine(dir, "mail", "INBOX", "new")).Concat(System.IO.Directory.GetFiles(Path.Combine(dir, "mail", "INBOX", "cur"))).ToList();
        Assert.Equal(3, inboxFiles.Count);
        Assert.True(System.IO.Directory.Exists(Path.Combine(dir, "mail", "Sent")));

        // A message written locally goes up; one deleted locally is expunged on the server.
        var newFile = Path.Combine(dir, "mail", "Archive", "new", "1700000000.local.test");
        await File.WriteAllTextAsync(newFile, "From: me@local.test\r\nSubject: from maildir\r\n\r\nbody\r\n");
        File.Delete(inboxFiles[0]);
        await ImapClients.RunAsync("mbsync", ["-c", config, "-a"]);

        var record = node.Directory.FindMailbox($"alice@{TestNode.Domain}")!;
        var user = new Appliance.Directory.MailUser(record.Address, record.Partition, 0);
        Assert.Equal(2, (await node.Store.ListAsync(user, "INBOX", default)).Count);
        Assert.Single(await node.Store.ListAsync(user, "Archive", default));
    }

    [Fact]
    public async Task Parallel_imaplib_sessions_mixing_writes_and_reads_on_one_mailbox_all_get_answers()
    {
        // Eight processes on one INBOX: appends, flag changes, expunges, moves and copies race
        // with fetches by sequence number, so every session keeps seeing messages vanish under
        // it. Every command must get its tagged OK within the socket timeout.
        await using var node = await TestNode.StartAsync(["alice"]);
        for (int i = 0; i < 20; i++) await Mailkit.SendAsync(node.Smtp, Mailkit.Text("s@remote.test", $"alice@{TestNode.Domain}", $"seed {i}", "x"));
        var output = await ImapClients.PythonAsync(node.Imap, """
            import random, multiprocessing
            def worker(n):
                random.seed(n)
                m = imaplib.IMAP4(HOST, PORT, timeout=20)
                m.login(USER, PASSWORD)
                if n % 3 == 0: m.enable('QRESYNC')
                if n % 3 == 1: m.enable('CONDSTORE')
                m.select('INBOX')
                failures = []
                for i in range(120):
                    op = random.randrange(9)
                    try:
                        if op == 0: r = m.append('INBOX', '(\\Seen)', None, b'From: a@b.test\r\nSubject: stress\r\n\r\nbody\r\n')
                        elif op == 1: r = m.uid('STORE', '%d:%d' % (random.randint(1, 60), random.randint(1, 60)), '+FLAGS', '(\\Deleted)')
                        elif op == 2: r = m.expunge()
                        elif op == 3: r = m.uid('MOVE', str(random.randint(1, 60)), 'Archive')
                        elif op == 4: r = m.uid('FETCH', '1:*', '(FLAGS ENVELOPE)')
                        elif op == 5: r = m.uid('SEARCH', None, 'TEXT', 'stress')
                        elif op == 6: r = m.noop()
                        elif op == 7: r = m.uid('COPY', str(random.randint(1, 60)), 'Trash')
                        else: r = m.fetch('1', '(BODY.PEEK[] FLAGS)') if int(m.select('INBOX')[1][0]) > 0 else ('OK', None)
                        if r[0] != 'OK': failures.append((i, op, r))
                    except Exception as e:
                        failures.append((i, op, repr(e)))
                        break
                m.logout()
                return failures
            with multiprocessing.Pool(8) as pool:
                failures = [f for r in pool.map(worker, range(8)) for f in r]
            print('failures', len(failures), failures[:5])
            """);
        Assert.Contains("failures 0 []", output);
    }
}
