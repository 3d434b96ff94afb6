using System.Text;
using Appliance.Tests.Smtp;

namespace Appliance.Tests.Imap;

/// <summary>Transcript tests at the byte level: what RFC 9051 says the server must answer.</summary>
public sealed class ImapProtocolTests
{
    [Fact]
    public async Task Greeting_and_capabilities_before_and_after_login()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        await using var c = await RawImap.ConnectAsync(node.Imap);
        Assert.Contains("CAPABILITY IMAP4rev1 IMAP4rev2", c.Greeting);
        Assert.Contains("STARTTLS", c.Greeting);
        Assert.Contains("AUTH=PLAIN", c.Greeting); // loopback in dev mode
        var r = await c.CommandAsync($"LOGIN alice@{TestNode.Domain} \"{TestNode.Password}\"");
        Assert.Matches(@"t1 OK \[CAPABILITY [^\]]*UIDPLUS[^\]]*\] Logged in", r);
        r = await c.CommandAsync("CAPABILITY");
        foreach (var cap in new[] { "IDLE", "NAMESPACE", "MOVE", "SPECIAL-USE", "LIST-EXTENDED", "LIST-STATUS", "QUOTA", "CONDSTORE", "QRESYNC",
                     "ESEARCH", "SORT", "THREAD=REFERENCES", "THREAD=ORDEREDSUBJECT", "APPENDLIMIT=", "BINARY", "COMPRESS=DEFLATE", "STATUS=SIZE", "UTF8=ACCEPT", "MULTIAPPEND", "LITERAL+", "SASL-IR", "ID", "UNSELECT", "CHILDREN", "ENABLE" })
            Assert.Contains(cap, r);
        Assert.DoesNotContain("STARTTLS", r);
        r = await c.CommandAsync("NAMESPACE");
        Assert.Contains("* NAMESPACE ((\"\" \"/\")) NIL NIL", r);
        r = await c.CommandAsync("ID (\"name\" \"test\")");
        Assert.Contains("* ID (\"name\" \"Appliance\"", r);
        r = await c.CommandAsync("LOGOUT");
        Assert.StartsWith("* BYE", r);
        Assert.True(await c.IsClosedAsync());
    }

    [Fact]
    public async Task Without_dev_mode_plaintext_login_needs_tls()
    {
        await using var node = await TestNode.StartAsync(["alice"], o => o.Node.DevMode = false);
        await using var c = await RawImap.ConnectAsync(node.Imap);
        Assert.Contains("LOGINDISABLED", c.Greeting);
        Assert.DoesNotContain("AUTH=PLAIN", c.Greeting);
        var r = await c.CommandAsync($"LOGIN alice@{TestNode.Domain} \"{TestNode.Password}\"");
        Assert.Contains("t1 NO [PRIVACYREQUIRED]", r);
        r = await c.CommandAsync("STARTTLS");
        Assert.Contains("t2 OK", r);
        await c.StartTlsAsync();
        var b64 = Convert.ToBase64String(Encoding.UTF8.GetBytes($"\0alice@{TestNode.Domain}\0{TestNode.Password}"));
        r = await c.CommandAsync("AUTHENTICATE PLAIN " + b64);
        Assert.Contains("t3 OK", r);
    }

    [Fact]
    public async Task Commands_pipelined_after_starttls_are_refused()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        await using var c = await RawImap.ConnectAsync(node.Imap);
        await c.WriteAsync("a STARTTLS\r\nb LOGIN alice x\r\n");
        var r = await c.ReadUntilTaggedAsync("a");
        Assert.Contains("a BAD", r);
        Assert.True(await c.IsClosedAsync());
    }

    [Fact]
    public async Task Wrong_password_and_wrong_state_get_clear_errors()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        await using var c = await RawImap.ConnectAsync(node.Imap);
        Assert.Contains("t1 BAD", await c.CommandAsync("SELECT INBOX"));
        Assert.Contains("t2 NO [AUTHENTICATIONFAILED]", await c.CommandAsync($"LOGIN alice@{TestNode.Domain} wrong"));
        Assert.Contains("t3 BAD", await c.CommandAsync("FROBNICATE"));
        Assert.Contains("t4 BAD", await c.CommandAsync("LOGIN onlyone"));
        Assert.Contains("t5 OK", await c.CommandAsync($"LOGIN alice@{TestNode.Domain} \"{TestNode.Password}\""));
        Assert.Contains("t6 BAD", await c.CommandAsync("FETCH 1 FLAGS"));
        Assert.Contains("t7 NO [NONEXISTENT]", await c.CommandAsync("SELECT nosuch"));
    }

    [Fact]
    public async Task Synchronizing_literals_get_continuations_and_oversized_append_gets_TOOBIG()
    {
        await using var node = await TestNode.StartAsync(["alice"], o => o.Imap.MaxAppendBytes = 1000);
        await using var c = await RawImap.ConnectAsync(node.Imap);
        var user = $"alice@{TestNode.Domain}";
        await c.WriteAsync($"a LOGIN {{{user.Length}}}\r\n");
        Assert.StartsWith("+ ", await c.ReadLineAsync());
        await c.WriteAsync($"{user} {{{TestNode.Password.Length}}}\r\n");
        Assert.StartsWith("+ ", await c.ReadLineAsync());
        await c.WriteAsync(TestNode.Password + "\r\n");
        Assert.Contains("a OK", await c.ReadUntilTaggedAsync("a"));

        Assert.Contains("t1 NO [TOOBIG]", await c.CommandAsync("APPEND INBOX {5000}"));
        var msg = "From: a@b.test\r\nSubject: ok\r\n\r\nhi\r\n";
        var r = await c.CommandAsync($"APPEND INBOX (\\Seen) \"25-Dec-2025 10:00:00 +0100\" {{{msg.Length}+}}\r\n{msg} {{{msg.Length}+}}\r\n{msg}");
        Assert.Matches(@"t2 OK \[APPENDUID \d+ 1:2\]", r);
        r = await c.CommandAsync("SELECT INBOX");
        Assert.Contains("* 2 EXISTS", r);
        r = await c.CommandAsync("FETCH 1 (FLAGS INTERNALDATE RFC822.SIZE)");
        Assert.Contains("FLAGS (\\Seen)", r);
        Assert.Contains("INTERNALDATE \"25-Dec-2025 09:00:00 +0000\"", r); // the instant, kept in UTC
        Assert.Contains($"RFC822.SIZE {msg.Length}", r);
    }

    [Fact]
    public async Task Expunge_is_withheld_during_fetch_and_store_and_sent_at_noop()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        for (int i = 0; i < 3; i++) await Mailkit.SendAsync(node.Smtp, Mailkit.Text("s@remote.test", $"alice@{TestNode.Domain}", $"m{i}", "x"));
        await using var a = await RawImap.LoginAsync(node.Imap);
        await using var b = await RawImap.LoginAsync(node.Imap);
        Assert.Contains("* 3 EXISTS", await a.CommandAsync("SELECT INBOX"));
        await b.CommandAsync("SELECT INBOX");
        Assert.Contains("OK", await b.CommandAsync("UID STORE 2 +FLAGS.SILENT (\\Deleted)"));
        Assert.Contains("OK", await b.CommandAsync("UID EXPUNGE 2"));

        // The message's file is gone: its FETCH is left out whole, nothing is cut off mid-literal.
        var body = await a.CommandAsync("FETCH 2 (BODY.PEEK[])");
        Assert.Matches(@"^t\d+ OK", body);
        var r = await a.CommandAsync("FETCH 1:3 (UID)");
        Assert.DoesNotContain("EXPUNGE", r);
        Assert.Contains("* 1 FETCH (UID 1)", r);
        Assert.Contains("* 3 FETCH (UID 3)", r);
        r = await a.CommandAsync("NOOP");
        Assert.Contains("* 2 EXPUNGE", r);
        r = await a.CommandAsync("FETCH 2 (UID)");
        Assert.Contains("* 2 FETCH (UID 3)", r);

        await Mailkit.SendAsync(node.Smtp, Mailkit.Text("s@remote.test", $"alice@{TestNode.Domain}", "m4", "x"));
        r = await a.CommandAsync("NOOP");
        Assert.Contains("* 3 EXISTS", r);
    }

    [Fact]
    public async Task Idle_reports_new_mail_and_ends_with_done()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        await using var c = await RawImap.LoginAsync(node.Imap);
        await c.CommandAsync("SELECT INBOX");
        await c.WriteAsync("i IDLE\r\n");
        Assert.StartsWith("+ ", await c.ReadLineAsync());
        await Mailkit.SendAsync(node.Smtp, Mailkit.Text("s@remote.test", $"alice@{TestNode.Domain}", "ping", "x"));
        Assert.Equal("* 1 EXISTS", await c.ReadLineAsync());
        await c.WriteAsync("DONE\r\n");
        Assert.Contains("i OK", await c.ReadUntilTaggedAsync("i"));
    }

    [Fact]
    public async Task List_extended_with_status_and_special_use()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        await using var c = await RawImap.LoginAsync(node.Imap);
        await c.CommandAsync("CREATE a/b");
        var r = await c.CommandAsync("LIST \"\" \"*\" RETURN (SPECIAL-USE STATUS (MESSAGES UNSEEN SIZE))");
        Assert.Contains("* LIST (\\HasNoChildren \\Sent) \"/\" Sent", r);
        Assert.Contains("* LIST (\\HasChildren) \"/\" a", r);
        Assert.Contains("* LIST (\\HasNoChildren) \"/\" a/b", r);
        Assert.Contains("* STATUS INBOX (MESSAGES 0 UNSEEN 0 SIZE 0)", r);
        r = await c.CommandAsync("LIST (SPECIAL-USE) \"\" \"*\"");
        Assert.DoesNotContain("INBOX", r);
        Assert.Contains("\\Trash", r);
        r = await c.CommandAsync("LIST \"\" \"%\"");
        Assert.DoesNotContain("a/b", r);
        r = await c.CommandAsync("LIST \"\" \"\"");
        Assert.Contains("* LIST (\\Noselect) \"/\" \"\"", r);
        r = await c.CommandAsync("UNSUBSCRIBE Junk");
        r = await c.CommandAsync("LSUB \"\" \"*\"");
        Assert.DoesNotContain("Junk", r);
        Assert.Contains("Trash", r);
        r = await c.CommandAsync("STATUS INBOX (UIDNEXT UIDVALIDITY HIGHESTMODSEQ APPENDLIMIT DELETED)");
        Assert.Matches(@"\* STATUS INBOX \(UIDNEXT 1 UIDVALIDITY \d+ HIGHESTMODSEQ \d+ APPENDLIMIT \d+ DELETED 0\)", r);
    }

    [Fact]
    public async Task Utf8_accept_and_modified_utf7_names()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        await using var c = await RawImap.LoginAsync(node.Imap);
        Assert.Contains("t2 OK", await c.CommandAsync("CREATE Entw&APw-rfe"));
        var r = await c.CommandAsync("LIST \"\" Entw*");
        Assert.Contains("\"/\" Entw&APw-rfe", r);
        Assert.Contains("* ENABLED UTF8=ACCEPT", await c.CommandAsync("ENABLE UTF8=ACCEPT"));
        r = await c.CommandAsync("LIST \"\" Entw*");
        Assert.Contains("\"/\" \"Entwürfe\"", r);
        Assert.Contains("OK", await c.CommandAsync("SELECT \"Entwürfe\""));
    }

    [Fact]
    public async Task Rename_inbox_moves_its_messages_and_keeps_an_empty_inbox()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        await Mailkit.SendAsync(node.Smtp, Mailkit.Text("s@remote.test", $"alice@{TestNode.Domain}", "old", "x"));
        await using var c = await RawImap.LoginAsync(node.Imap);
        Assert.Contains("t2 OK", await c.CommandAsync("RENAME INBOX \"Old mail\""));
        Assert.Contains("* STATUS INBOX (MESSAGES 0)", await c.CommandAsync("STATUS INBOX (MESSAGES)"));
        Assert.Contains("(MESSAGES 1)", await c.CommandAsync("STATUS \"Old mail\" (MESSAGES)"));
        Assert.Contains("t5 NO [CANNOT]", await c.CommandAsync("DELETE INBOX"));
    }

    [Fact]
    public async Task Too_many_sessions_for_one_mailbox_are_refused_at_login()
    {
        await using var node = await TestNode.StartAsync(["alice"], o => o.Imap.MaxConnectionsPerUser = 2);
        await using var a = await RawImap.LoginAsync(node.Imap);
        await using var b = await RawImap.LoginAsync(node.Imap);
        await using var c = await RawImap.ConnectAsync(node.Imap);
        Assert.Contains("t1 NO [LIMIT]", await c.CommandAsync($"LOGIN alice@{TestNode.Domain} \"{TestNode.Password}\""));
        await a.CommandAsync("LOGOUT");
        Assert.True(await a.IsClosedAsync()); // the session has ended, its count with it
        Assert.Contains("t2 OK", await c.CommandAsync($"LOGIN alice@{TestNode.Domain} \"{TestNode.Password}\""));
    }

    [Fact]
    public async Task Autologout_sends_bye()
    {
        await using var node = await TestNode.StartAsync(["alice"], o => o.Imap.PreAuthTimeoutSeconds = 1);
        await using var c = await RawImap.ConnectAsync(node.Imap);
        Assert.StartsWith("* BYE", await c.ReadLineAsync());
        Assert.True(await c.IsClosedAsync());
    }

    [Fact]
    public async Task Store_reports_flags_modseq_and_modified()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        for (int i = 0; i < 2; i++) await Mailkit.SendAsync(node.Smtp, Mailkit.Text("s@remote.test", $"alice@{TestNode.Domain}", $"m{i}", "x"));
        await using var c = await RawImap.LoginAsync(node.Imap);
        await c.CommandAsync("ENABLE CONDSTORE");
        var r = await c.CommandAsync("SELECT INBOX");
        var highest = long.Parse(System.Text.RegularExpressions.Regex.Match(r, @"HIGHESTMODSEQ (\d+)").Groups[1].Value);
        r = await c.CommandAsync("STORE 1 +FLAGS ($Important \\Flagged)");
        Assert.Matches(@"\* 1 FETCH \(FLAGS \(\\Flagged \$Important\) MODSEQ \(\d+\)\)", r);
        r = await c.CommandAsync($"UID STORE 1:2 (UNCHANGEDSINCE {highest}) +FLAGS.SILENT (\\Seen)");
        Assert.Contains("OK [MODIFIED 1]", r);
        Assert.Matches(@"\* 2 FETCH \(UID 2 FLAGS \(\\Seen\) MODSEQ \(\d+\)\)", r);
        r = await c.CommandAsync("UID SEARCH RETURN (MIN MAX COUNT) SEEN");
        Assert.Contains("* ESEARCH (TAG \"t6\") UID MIN 2 MAX 2 COUNT 1", r);
    }

    [Fact]
    public async Task Uids_and_uidvalidity_survive_a_restart_and_a_rebuilt_index()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        for (int i = 0; i < 3; i++) await Mailkit.SendAsync(node.Smtp, Mailkit.Text("s@remote.test", $"alice@{TestNode.Domain}", $"m{i}", "x"));
        string before;
        await using (var c = await RawImap.LoginAsync(node.Imap))
        {
            await c.CommandAsync("SELECT INBOX");
            await c.CommandAsync("UID STORE 2 +FLAGS.SILENT (\\Deleted)");
            await c.CommandAsync("EXPUNGE");
            await c.CommandAsync("CREATE Projects");
            before = await c.CommandAsync("STATUS INBOX (UIDVALIDITY UIDNEXT MESSAGES)") + await c.CommandAsync("STATUS Projects (UIDVALIDITY UIDNEXT)");
        }
        await node.RestartAsync();
        await using (var c = await RawImap.LoginAsync(node.Imap))
        {
            var after = await c.CommandAsync("STATUS INBOX (UIDVALIDITY UIDNEXT MESSAGES)") + await c.CommandAsync("STATUS Projects (UIDVALIDITY UIDNEXT)");
            Assert.Equal(Untagged(before), Untagged(after));
            Assert.Contains("* 1 FETCH (UID 1)", await c.CommandAsync("SELECT INBOX") + await c.CommandAsync("FETCH 1:* (UID)"));
            Assert.Contains("* 2 FETCH (UID 3)", await c.CommandAsync("FETCH 1:* (UID)"));
        }

        // The index is derived from the journal: without it, the same UIDs and UIDVALIDITY come back.
        await node.RestartAsync(() =>
        {
            foreach (var db in System.IO.Directory.GetFiles(Path.Combine(node.DataDirectory, "units"), "index.db*", SearchOption.AllDirectories)) File.Delete(db);
        });
        await using (var c = await RawImap.LoginAsync(node.Imap))
        {
            var rebuilt = await c.CommandAsync("STATUS INBOX (UIDVALIDITY UIDNEXT MESSAGES)") + await c.CommandAsync("STATUS Projects (UIDVALIDITY UIDNEXT)");
            Assert.Equal(Untagged(before), Untagged(rebuilt));
        }

        static string Untagged(string responses) => string.Join("\n", responses.Split("\r\n").Where(l => l.StartsWith('*')));
    }

    [Fact]
    public async Task Hostile_input_gets_bad_and_the_session_keeps_serving()
    {
        await using var node = await TestNode.StartAsync(["alice"]);
        await Mailkit.SendAsync(node.Smtp, Mailkit.Text("s@remote.test", $"alice@{TestNode.Domain}", "m", "x"));
        await using var c = await RawImap.LoginAsync(node.Imap);
        await c.CommandAsync("SELECT INBOX");
        Assert.Contains("t3 BAD", await c.CommandAsync("SEARCH " + new string('(', 200) + "ALL" + new string(')', 200)));
        Assert.Contains("t4 BAD", await c.CommandAsync("FETCH 1:x,,3 (FLAGS)"));
        Assert.Contains("t5 BAD", await c.CommandAsync("FETCH 0 (FLAGS)"));
        Assert.Contains("t6 BAD", await c.CommandAsync("FETCH 7 (FLAGS)"));
        Assert.Contains("t7 BAD", await c.CommandAsync("FETCH 1 (BODY[1.HEADER.FIELDS ()])"));
        Assert.Contains("t8 BAD", await c.CommandAsync("STORE 1 +FLAGS (\\Bogus)"));
        Assert.Contains("t9 BAD", await c.CommandAsync("SEARCH FROM"));
        Assert.Contains("t10 BAD", await c.CommandAsync("LOGIN {99999999}"));
        Assert.Contains("t11 BAD", await c.CommandAsync("NOOP " + new string('x', 70_000)));
        Assert.Contains("t12 OK", await c.CommandAsync("UID SEARCH 1:4294967295"));
        Assert.Contains("* 1 FETCH (FLAGS ())", await c.CommandAsync("FETCH 1 (FLAGS)"));

        // A non-synchronizing literal over the limit cannot be skipped safely: BYE, and the server goes on.
        await c.WriteAsync("t14 LOGIN {99999999+}\r\n");
        Assert.Contains("BYE", await c.ReadLineAsync() + await c.ReadLineAsync());
        Assert.True(await c.IsClosedAsync());
        await using var other = await RawImap.LoginAsync(node.Imap);
        Assert.Contains("t2 OK", await other.CommandAsync("NOOP"));
    }
}
