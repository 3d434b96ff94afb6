using System.Collections.Concurrent;
using Appliance.Hosting;

namespace Appliance.Smtp;

/// <summary>
/// Per-user sending limits on submission (Submission:MaxMessagesPerHour and
/// MaxRecipientsPerHour, 0 = none) over a sliding hour, so one stolen password cannot turn the
/// appliance into a spam cannon. Over a limit the user hears a temporary 450 4.7.1 and may go
/// on once older messages leave the window. Counted per node (in a pair each node counts what
/// it accepted; a user is held to at most twice the limit).
/// </summary>
internal sealed class SubmissionLimits(SubmissionOptions options, TimeProvider? time = null)
{
    private static readonly TimeSpan Window = TimeSpan.FromHours(1);
    private readonly TimeProvider _time = time ?? TimeProvider.System;
    private readonly ConcurrentDictionary<string, Queue<(DateTimeOffset At, int Recipients)>> _sent = new(StringComparer.OrdinalIgnoreCase);

    /// <summary>Why the user may not start another message now, or null.</summary>
    public string? MessageRefusal(string user)
    {
        if (options.MaxMessagesPerHour <= 0) return null;
        var (messages, _) = Usage(user);
        return messages >= options.MaxMessagesPerHour
            ? $"4.7.1 Sending limit reached: {options.MaxMessagesPerHour} messages per hour, try again later"
            : null;
    }

    /// <summary>Why the user may not add the <paramref name="inTransaction"/>-th recipient of this message, or null.</summary>
    public string? RecipientRefusal(string user, int inTransaction)
    {
        if (options.MaxRecipientsPerHour <= 0) return null;
        var (_, recipients) = Usage(user);
        return recipients + inTransaction > options.MaxRecipientsPerHour
            ? $"4.7.1 Sending limit reached: {options.MaxRecipientsPerHour} recipients per hour, try again later"
            : null;
    }

    /// <summary>Counts an accepted message.</summary>
    public void Sent(string user, int recipients)
    {
        var q = _sent.GetOrAdd(user, _ => new Queue<(DateTimeOffset, int)>());
        lock (q) q.Enqueue((_time.GetUtcNow(), recipients));
    }

    private (int Messages, int Recipients) Usage(string user)
    {
        if (!_sent.TryGetValue(user, out var q)) return (0, 0);
        lock (q)
        {
            var since = _time.GetUtcNow() - Window;
            while (q.Count > 0 && q.Peek().At < since) q.Dequeue();
            return (q.Count, q.Sum(e => e.Recipients));
        }
    }
}
