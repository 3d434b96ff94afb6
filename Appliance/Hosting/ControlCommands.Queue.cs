using System.Globalization;
using Appliance.Store;

namespace Appliance.Hosting;

// appliance queue list | show ID | retry ID|--all | delete ID | hold ID | release ID: the outbound
// queue, on the node (OutboundQueue) or through --url (ApiCommands). An unknown id is the
// queue's NotFound: one line, exit 1.
public sealed partial class ControlCommands
{
    private async Task<int> QueueAsync(Args a, string verb, Output output)
    {
        if (verb is not ("list" or "show" or "retry" or "delete" or "hold" or "release"))
            throw new UsageException($"unknown command 'queue {verb}' (list, show ID, retry ID|--all, delete ID, hold ID, release ID)");
        if (queue is null)
        {
            output("the outbound queue is not available here", true);
            return 1;
        }
        switch (verb)
        {
            case "list":
                {
                    a.EnsureDone();
                    var entries = await queue.ListQueueAsync();
                    foreach (var e in entries)
                    {
                        output($"{e.Id}  {Utc(e.Created)}  {e.Size.ToString(CultureInfo.InvariantCulture)}  {Sender(e.Sender)}{(e.Held ? "  (held)" : "")}", false);
                        foreach (var r in e.Recipients.Where(r => r.State != RecipientState.Sent))
                            output($"  -> {r.Address}  {StateName(r.State)}  {r.Reply}".TrimEnd(), false);
                    }
                    output(entries.Count switch
                    {
                        0 => "queue is empty",
                        1 => "1 message in the queue",
                        var n => $"{n} messages in the queue",
                    }, false);
                    break;
                }
            case "show":
                {
                    var id = a.Next("queue id");
                    a.EnsureDone();
                    var (e, headers) = await queue.ShowQueuedAsync(id);
                    output($"id: {e.Id}", false);
                    output($"partition: {e.Partition}", false);
                    output($"created: {Utc(e.Created)}", false);
                    output($"sender: {Sender(e.Sender)}", false);
                    output($"account: {e.Account}", false);
                    output($"size: {e.Size.ToString(CultureInfo.InvariantCulture)}", false);
                    output($"held: {(e.Held ? "yes" : "no")}", false);
                    output($"attempts: {e.Attempts}", false);
                    output($"next attempt: {Utc(e.NextAttempt)}", false);
                    output($"delay notified: {(e.DelayNotified ? "yes" : "no")}", false);
                    output($"last error: {e.LastError}", false);
                    if (e.EnvId is not null) output($"envid: {e.EnvId}", false);
                    if (e.Ret is not null) output($"ret: {e.Ret}", false);
                    output("recipients:", false);
                    foreach (var r in e.Recipients)
                        output($"  {r.Address}  {StateName(r.State)}  {Utc(r.Updated)}  {r.Reply}".TrimEnd(), false);
                    output("", false);
                    output(headers.TrimEnd('\r', '\n'), false);
                    break;
                }
            case "retry":
                {
                    var all = a.Flag("--all");
                    var id = a.Optional();
                    a.EnsureDone();
                    if (all == (id is not null)) throw new UsageException("queue retry: give an ID or --all");
                    var count = await queue.RetryQueuedAsync(id, Actor);
                    output(id is not null ? $"{id} queued for immediate retry" : $"{count} message{(count == 1 ? "" : "s")} queued for immediate retry", false);
                    break;
                }
            case "delete":
                {
                    var id = a.Next("queue id");
                    a.EnsureDone();
                    await queue.DeleteQueuedAsync(id, Actor);
                    output($"{id} deleted", false);
                    break;
                }
            case "hold" or "release":
                {
                    var id = a.Next("queue id");
                    a.EnsureDone();
                    await queue.HoldQueuedAsync(id, verb == "hold", Actor);
                    output(verb == "hold" ? $"{id} on hold" : $"{id} released", false);
                    break;
                }
        }
        return 0;
    }

    private static string Utc(long unixMs) =>
        DateTimeOffset.FromUnixTimeMilliseconds(unixMs).UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture) + " UTC";

    private static string Sender(string sender) => sender.Length == 0 ? "<>" : sender;

    private static string StateName(RecipientState state) => Web.QueueEndpoints.StateName(state);
}
