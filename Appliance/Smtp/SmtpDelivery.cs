using System.Buffers;
using System.Diagnostics;
using System.Text;
using Appliance.Directory;
using Appliance.Relay;
using Appliance.Store;
using SmtpServer;
using SmtpServer.Protocol;
using SmtpServer.Storage;

namespace Appliance.Smtp;

/// <summary>
/// Final handling of an accepted message (the DATA reply). The 250 is returned only after the
/// message is durable in every hosted recipient's mailbox (file fsynced, journal fsynced, index
/// committed) and, for recipients elsewhere, in the outbound queue. A hosted recipient whose
/// quota no longer fits turns the whole transaction into a temporary 452 4.2.2 (nothing is
/// half-delivered silently; on retry the RCPT check refuses just that recipient), or 552 5.2.2
/// when the message can never fit (RFC 5321 §4.5.3.1.10).
/// On submission (RFC 6409) the From header must name addresses the user may send as (550
/// 5.7.1 otherwise), a missing Date or Message-ID is added (§8.1, §8.3), and the message is
/// DKIM-signed for its From domain before it is stored or queued.
/// </summary>
internal sealed class SmtpDelivery(MailStore store, MailDirectory directory, string hostname, long maxMessageSize, SmtpRole role,
    OutboundQueue? queue, SubmissionLimits? limits, Monitoring.NodeCounters counters) : IMessageStore
{
    private static readonly NLog.Logger Log = NLog.LogManager.GetLogger("smtp");

    /// <summary>Scans a message for viruses before it is accepted; null when there is no scanner.</summary>
    public Filtering.ClamdClient? Antivirus { get; init; }
    public Hosting.AntivirusOptions AntivirusOptions { get; init; } = new();

    /// <summary>SPF, DKIM and DMARC on the MX (needs Dns:Servers); null: not evaluated.</summary>
    public Filtering.SenderAuthentication? Authentication { get; init; }
    /// <summary>Whether a failed DMARC policy is applied (refused or quarantined) or only recorded.</summary>
    public bool EnforceDmarc { get; init; } = true;

    /// <summary>The MX's spam scoring (block/allow lists, Bayes, thresholds); null: none.</summary>
    public Filtering.SpamFilter? Spam { get; init; }

    /// <summary>Signs a message about to leave (DKIM), or returns it as it is.</summary>
    public Func<byte[], byte[]> Sign { get; init; } = m => m;

    public async Task<SmtpResponse> SaveAsync(ISessionContext context, IMessageTransaction transaction, ReadOnlySequence<byte> buffer, CancellationToken cancellationToken)
    {
        var started = Stopwatch.GetTimestamp();
        var state = SmtpSessionState.Of(context);
        var from = transaction.From.AsAddress();
        var rcpts = transaction.To.Select(t => t.AsAddress()).ToList();
        var id = OutboundQueue.NewId();
        SmtpResponse response;
        try
        {
            response = await DeliverAsync(context, transaction, buffer, id, cancellationToken);
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            Log.Error(ex, "smtp delivery failed id={0}", id);
            response = new SmtpResponse((SmtpReplyCode)451, "4.3.0 Temporary local problem, try again later");
        }
        if (response.ReplyCode == SmtpReplyCode.Ok && state.User is { } user) limits?.Sent(user.Address, rcpts.Count);
        counters.SmtpReply(role.Name(), (int)response.ReplyCode, response.Message);
        Log.Info("smtp {0} id={1} from=<{2}> to=<{3}> size={4}{5} result=\"{6} {7}\" ms={8:F1}",
            state.Describe(context), id, from, string.Join(">,<", rcpts), buffer.Length, state.Verdicts.Count == 0 ? "" : " " + string.Join(' ', state.Verdicts),
            (int)response.ReplyCode, response.Message, Stopwatch.GetElapsedTime(started).TotalMilliseconds);
        return response;
    }

    private async Task<SmtpResponse> DeliverAsync(ISessionContext context, IMessageTransaction transaction, ReadOnlySequence<byte> buffer, string id, CancellationToken ct)
    {
        if (buffer.Length > maxMessageSize)
            return new SmtpResponse(SmtpReplyCode.SizeLimitExceeded, $"5.3.4 Message size exceeds fixed maximum message size ({maxMessageSize} bytes)");

        var state = SmtpSessionState.Of(context);
        var boxes = state.Mailboxes; // resolved once, at RCPT
        if (boxes.Count == 0 && state.Outbound.Count == 0) return new SmtpResponse(SmtpReplyCode.MailboxUnavailable, "5.1.1 No valid recipients");

        // SmtpServer hands over the data without the CRLF of "<CRLF>.<CRLF>", but that CRLF ends
        // the message's last line (RFC 5321 §4.1.1.4): put it back so the stored message is
        // byte-identical to what the client sent.
        var crlf = buffer.Length > 0 ? 2 : 0;
        var body = new byte[buffer.Length + crlf];
        buffer.CopyTo(body);
        if (crlf > 0) "\r\n"u8.CopyTo(body.AsSpan(body.Length - 2));

        // A message that went round too many times is a loop (forwarding aliases pointing at each
        // other across servers): refused, as Postfix does past its hop count (RFC 5321 §6.3).
        if (CountReceived(body) >= MaxHops)
            return new SmtpResponse(SmtpReplyCode.TransactionFailed, $"5.4.6 Too many hops ({MaxHops} Received headers): mail loop?");

        // Viruses are refused before anything is stored (ClamAV's clamd, INSTREAM).
        if (await ScanAsync(state, body, ct) is { } refused) return refused;

        var received = Received(context, transaction, id);
        // On the MX, mail from anyone (not a trusted relay) says who checked what, and nobody
        // else may say it in our name.
        var folder = MailStore.Inbox;
        if (!state.Trusted && Authentication is { } authentication)
        {
            body = Filtering.AuthenticationResults.StripOurs(body, hostname);
            var outcome = await authentication.EvaluateAsync(SmtpSessionState.Remote(context)?.Address ?? System.Net.IPAddress.None,
                transaction.From.AsAddress(), state.Helo.Trim('[', ']'), body, ct);
            state.Verdicts.AddRange(outcome.Verdicts);
            if (EnforceDmarc && outcome.Disposition == Filtering.DmarcDisposition.Reject)
                return new SmtpResponse(SmtpReplyCode.MailboxUnavailable, $"5.7.1 Message refused: the DMARC policy of {outcome.FromDomain} says reject ({outcome.Explanation})");
            // Quarantine: the hosted copies go to Junk (RFC 7489 §6.3), where the user still finds them.
            if (EnforceDmarc && outcome.Disposition == Filtering.DmarcDisposition.Quarantine) folder = MailStore.Junk;
            received = [.. Filtering.AuthenticationResults.Header(hostname, outcome.Results), .. received];
        }
        // Spam: what holds for every recipient first (refused at RejectScore), each one's own
        // filter at delivery.
        var spamTests = new List<Filtering.SpamTest>();
        var spam = state.Trusted ? null : Spam;
        if (spam is not null)
        {
            body = Filtering.HeaderFields.Remove(body, Filtering.SpamFilter.OurFields);
            if (spam.IsAllowedSender(transaction.From.AsAddress())) spamTests.Add(Filtering.SpamFilter.AllowedSender);
            spamTests.AddRange(Filtering.SpamFilter.Tests(state.Lists ?? Filtering.DnsListVerdict.None));
            if (spam.Rspamd is { } rspamd && !spamTests.Contains(Filtering.SpamFilter.AllowedSender))
            {
                var verdict = await rspamd.CheckAsync(body, new Filtering.RspamdRequest(SmtpSessionState.Remote(context)?.Address, state.Helo, transaction.From.AsAddress(),
                    [.. transaction.To.Select(t => t.AsAddress())]) { QueueId = id, Hostname = hostname }, ct);
                state.Verdicts.Add(verdict.LogField);
                if (verdict.Action == Filtering.RspamdAction.Reject)
                    return new SmtpResponse(SmtpReplyCode.MailboxUnavailable, "5.7.1 " + (verdict.SmtpMessage ?? "Message refused as spam"));
                if (verdict.Action == Filtering.RspamdAction.SoftReject)
                    return new SmtpResponse((SmtpReplyCode)451, "4.7.1 " + (verdict.SmtpMessage ?? "Try again later"));
                if (verdict.Error is null) spamTests.Add(new("RSPAMD", Math.Round(verdict.Score, 1)));
            }
            var score = spamTests.Sum(t => t.Score);
            if (score >= spam.RejectScore)
            {
                state.Verdicts.Add(FormattableString.Invariant($"spam={score:0.0}(refused)"));
                return new SmtpResponse(SmtpReplyCode.MailboxUnavailable,
                    FormattableString.Invariant($"5.7.1 Message refused as spam (score {score:0.0}, {string.Join(',', spamTests.Select(t => t.Name))})"));
            }
        }
        byte[] message;
        if (role == SmtpRole.Submission)
        {
            var user = state.User!;
            var headers = SubmissionHeaders.Check(body, user.Address, directory, hostname);
            if (headers.Refusal is { } refusal) return new SmtpResponse(SmtpReplyCode.MailboxUnavailable, refusal);
            message = Sign([.. received, .. headers.Added, .. body]);
        }
        else
        {
            message = [.. received, .. body];
            if (state.Outbound.Count > 0) message = Sign(message); // a trusted network's mail for elsewhere
        }

        if (boxes.Count > 0)
        {
            var copies = LocalCopies(transaction, state, boxes.Values, message, body, folder, spam, spamTests);
            var full = copies.Where(d => d.Box.QuotaBytes > 0 && store.UsedBytes(d.Box.ToUser()) + d.Bytes.Length > d.Box.QuotaBytes).ToList();
            if (full.Count > 0)
            {
                return full.Count == boxes.Count && state.Outbound.Count == 0 && full.All(d => d.Bytes.Length > d.Box.QuotaBytes)
                    ? new SmtpResponse(SmtpReplyCode.SizeLimitExceeded, "5.2.2 Message exceeds the recipient's mailbox quota")
                    : new SmtpResponse(SmtpReplyCode.InsufficientStorage, "4.2.2 Mailbox full, try again later");
            }
            // Each copy under its owner's Sieve script (none: into the folder chosen above).
            var returnPath = ReturnPath(transaction).Length;
            var sender = transaction.From.AsAddress();
            var delivered = await Task.WhenAll(copies.Select(async d =>
            {
                var verdicts = new List<string>();
                var outcome = await Sieve.DeliverAsync(d.Box.ToUser(), sender, state.Addressed.GetValueOrDefault(d.Box.Address) ?? [d.Box.Address],
                    d.Bytes, returnPath, d.Structure, d.Folder, verdicts, ct);
                return (Copy: d, Outcome: outcome, Verdicts: verdicts);
            }));
            foreach (var (copy, _, verdicts) in delivered)
                state.Verdicts.AddRange(copies.Count > 1 ? verdicts.Select(v => v.IndexOf('=') is > 0 and var eq ? $"{v[..eq]}[{copy.Box.Address}]{v[eq..]}" : v) : verdicts);
            if (delivered.Any(r => r.Outcome.OverQuota))
                return new SmtpResponse(SmtpReplyCode.InsufficientStorage, "4.2.2 Mailbox full, try again later");
            var rejected = delivered.Where(r => r.Outcome.Rejected is not null).ToList();
            // A rule's reject (RFC 5429 §2.1): refused in the reply when it is the only recipient,
            // else the sender is told in a bounce and the others keep their copies.
            if (rejected.Count == 1 && copies.Count == 1 && state.Outbound.Count == 0)
                return new SmtpResponse(SmtpReplyCode.MailboxUnavailable, $"5.7.1 {OneLine(rejected[0].Outcome.Rejected!)}");
            foreach (var r in rejected) await BounceAsync(state, transaction, r.Copy.Box, r.Outcome.Rejected!, message);
        }
        if (state.Outbound.Count > 0)
        {
            if (queue is null) return new SmtpResponse((SmtpReplyCode)451, "4.3.0 Outbound queue not available, try again later");
            try
            {
                await queue.EnqueueAsync(state.User?.Partition, transaction.From.AsAddress(), state.User?.Address ?? "",
                    [.. state.Outbound.Select(r => new OutboundQueue.Recipient(r))], null, null, message, id);
            }
            catch (UnitUnavailableException ex)
            {
                Log.Warn("smtp id={0}: cannot queue: {1}", id, ex.Message);
                return new SmtpResponse((SmtpReplyCode)451, "4.3.0 Outbound queue not available on this server, try again later");
            }
            return new SmtpResponse(SmtpReplyCode.Ok, $"2.0.0 Ok: queued as {id}");
        }
        return new SmtpResponse(SmtpReplyCode.Ok, $"2.0.0 Ok: delivered as {id}");
    }

    private const int MaxHops = 50;

    /// <summary>One hosted recipient's copy: its bytes (Return-Path, its spam fields, the message), parsed structure and folder.</summary>
    private sealed record LocalCopy(MailboxRecord Box, byte[] Bytes, MessageStructure Structure, string Folder);

    /// <summary>
    /// The copies for the hosted recipients. With spam scoring (<paramref name="spam"/>), each
    /// recipient's own sender lists and Bayes filter add their part to <paramref name="spamTests"/>;
    /// at JunkScore their copy goes to Junk, and each copy carries its X-Spam fields. Copies with
    /// the same bytes share one parse.
    /// </summary>
    private List<LocalCopy> LocalCopies(IMessageTransaction transaction, SmtpSessionState state, IEnumerable<MailboxRecord> boxes, byte[] message, byte[] body,
        string folder, Filtering.SpamFilter? spam, List<Filtering.SpamTest> spamTests)
    {
        var returnPath = ReturnPath(transaction);
        var parsed = new Dictionary<string, (byte[] Bytes, MessageStructure Structure)>();
        long[]? tokens = null;
        var copies = new List<LocalCopy>();
        var many = boxes.Skip(1).Any();
        IReadOnlyList<string>? senders = null;
        foreach (var box in boxes)
        {
            var header = Array.Empty<byte>();
            var boxFolder = folder;
            if (spam is not null)
            {
                var tests = new List<Filtering.SpamTest>(spamTests);
                // The recipient's own sender lists (envelope sender or From), set through the API.
                var (allow, block) = directory.SenderLists(box.Address);
                if (allow.Count + block.Count > 0)
                {
                    senders ??= Filtering.SpamFilter.Senders(transaction.From.AsAddress(), body);
                    if (senders.Any(s => Filtering.SpamFilter.Matches(allow, s))) tests.Add(Filtering.SpamFilter.UserAllowed);
                    else if (senders.Any(s => Filtering.SpamFilter.Matches(block, s))) tests.Add(Filtering.SpamFilter.UserBlocked);
                }
                if (!tests.Contains(Filtering.SpamFilter.AllowedSender) && !tests.Contains(Filtering.SpamFilter.UserAllowed))
                {
                    if (store.SpamProbability(box.ToUser(), () => tokens ??= Filtering.Bayes.Tokenize(body), spam.BayesMinSpam) is { } p)
                        tests.Add(Filtering.SpamFilter.BayesTest(p));
                }
                var score = tests.Sum(t => t.Score);
                var junk = folder == MailStore.Junk || score >= spam.JunkScore;
                if (junk) boxFolder = MailStore.Junk;
                // Nothing judged (no list, no trained filter): nothing to say, the message stays as sent.
                if (tests.Count > 0) header = spam.Header(tests, junk);
                state.Verdicts.Add(FormattableString.Invariant($"spam{(many ? "[" + box.Address + "]" : "")}={score:0.0}{(junk ? "(junk)" : "")}"));
            }
            var key = Convert.ToBase64String(header);
            if (!parsed.TryGetValue(key, out var copy))
            {
                byte[] bytes = [.. returnPath, .. header, .. message];
                using var ms = new MemoryStream(bytes, writable: false);
                copy = parsed[key] = (bytes, MessageStructure.Parse(ms));
            }
            copies.Add(new LocalCopy(box, copy.Bytes, copy.Structure, boxFolder));
        }
        return copies;
    }

    /// <summary>Final delivery of each hosted copy, under its owner's Sieve script.</summary>
    public required Filtering.SieveDelivery Sieve { get; init; }

    private static string OneLine(string text)
    {
        var line = new string([.. text.Select(c => char.IsControl(c) ? ' ' : c)]).Trim();
        return line.Length > 400 ? line[..400] : line.Length == 0 ? "Message refused by the recipient's filter" : line;
    }

    /// <summary>Tells the envelope sender that one recipient's filter refused the message (a DSN from the null sender).</summary>
    private async Task BounceAsync(SmtpSessionState state, IMessageTransaction transaction, MailboxRecord box, string reason, byte[] message)
    {
        var sender = transaction.From.AsAddress();
        if (sender.Length == 0 || queue is null) return; // never to the null sender (RFC 5321 §6.1)
        var report = DeliveryReports.Build(hostname, null, sender, DateTimeOffset.UtcNow,
            [new DsnRecipient(box.Address, null, DsnAction.Failed, "5.7.1", null, $"550 5.7.1 {OneLine(reason)}", DateTimeOffset.UtcNow, null)], message, headersOnly: false);
        await queue.EnqueueAsync(box.Partition, "", "", [new OutboundQueue.Recipient(sender, Notify: "NEVER")], null, null, report);
    }

    /// <summary>The refusal a scan calls for (554 5.7.1 for a virus, 451 4.7.1 when clamd cannot answer and OnError says tempfail), or null to go on.</summary>
    private async Task<SmtpResponse?> ScanAsync(SmtpSessionState state, byte[] body, CancellationToken ct)
    {
        if (Antivirus is not { } clamd) return null;
        var verdict = body.Length > AntivirusOptions.MaxScanBytes
            ? new Filtering.ScanVerdict(Filtering.ScanOutcome.Skipped, $"larger than {AntivirusOptions.MaxScanBytes} bytes")
            : await clamd.ScanAsync(body, ct);
        state.Verdicts.Add(verdict.LogField);
        return verdict.Outcome switch
        {
            Filtering.ScanOutcome.Infected => new SmtpResponse(SmtpReplyCode.TransactionFailed, $"5.7.1 Message refused: it contains a virus ({verdict.Detail})"),
            Filtering.ScanOutcome.Error when AntivirusOptions.OnError != "accept" => new SmtpResponse((SmtpReplyCode)451, "4.7.1 Virus scanner unavailable, try again later"),
            _ => null,
        };
    }

    /// <summary>The Received headers of a message's header block.</summary>
    private static int CountReceived(ReadOnlySpan<byte> message)
    {
        var count = 0;
        var atLineStart = true;
        for (var i = 0; i < message.Length; i++)
        {
            if (atLineStart)
            {
                if (message[i] is (byte)'\r' or (byte)'\n') break; // the empty line ends the header
                if (message.Length - i >= 9 && Ascii.EqualsIgnoreCase(message.Slice(i, 9), "Received:"u8)) count++;
            }
            atLineStart = message[i] == (byte)'\n';
        }
        return count;
    }

    /// <summary>Return-Path (RFC 5321 §4.4): added at final delivery only.</summary>
    private static byte[] ReturnPath(IMessageTransaction transaction) =>
        Encoding.UTF8.GetBytes($"Return-Path: <{transaction.From.AsAddress()}>\r\n");

    /// <summary>Received (RFC 5321 §4.4; "with ESMTPS", "ESMTPSA" and "ESMTPA" per RFC 3848).</summary>
    private byte[] Received(ISessionContext context, IMessageTransaction transaction, string id)
    {
        var state = SmtpSessionState.Of(context);
        var remote = SmtpSessionState.Remote(context);
        var with = (context.Pipe is { IsSecure: true } ? "ESMTPS" : "ESMTP") + (state.User is not null ? "A" : "");
        var helo = Sanitize(state.Helo.Length > 0 ? state.Helo : "unknown");
        var forClause = transaction.To.Count == 1 ? $"\r\n\tfor <{transaction.To[0].AsAddress()}>" : "";
        var sb = new StringBuilder();
        sb.Append("Received: from ").Append(helo).Append(" ([").Append(remote?.Address.ToString() ?? "unknown").Append("])\r\n\tby ")
          .Append(hostname).Append(" (Appliance) with ").Append(with).Append(" id ").Append(id).Append(forClause).Append(";\r\n\t")
          .Append(MimeKit.Utils.DateUtils.FormatDate(DateTimeOffset.Now)).Append("\r\n");
        return Encoding.UTF8.GetBytes(sb.ToString());
    }

    private static string Sanitize(string s)
    {
        var clean = new string(s.Where(c => c > ' ' && c < 127 && c != '(' && c != ')').Take(255).ToArray());
        return clean.Length == 0 ? "unknown" : clean;
    }
}

internal static class MailboxExtensions
{
    /// <summary>
    /// The address as local@host, "" for the null reverse path. The engine hands over a quoted
    /// local part without its quotes: it is quoted again (RFC 5321 §4.1.2) so that
    /// <c>"john doe"@host</c> stays one address, and is never taken for another.
    /// </summary>
    public static string AsAddress(this SmtpServer.Mail.IMailbox mailbox) =>
        mailbox is null || string.IsNullOrEmpty(mailbox.User) ? "" : $"{LocalPart(mailbox.User)}@{mailbox.Host}";

    private static string LocalPart(string user) =>
        IsDotAtom(user) ? user : "\"" + user.Replace("\\", "\\\\").Replace("\"", "\\\"") + "\"";

    private static bool IsDotAtom(string s)
    {
        if (s.Length == 0 || s[0] == '.' || s[^1] == '.' || s.Contains("..", StringComparison.Ordinal)) return false;
        foreach (var c in s)
            if (!(char.IsAsciiLetterOrDigit(c) || c == '.' || c > 127 || "!#$%&'*+-/=?^_`{|}~".Contains(c))) return false;
        return true;
    }
}
