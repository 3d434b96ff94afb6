using Appliance.Directory;
using Appliance.Relay;
using Appliance.Store;

namespace Appliance.Tests.Web;

/// <summary>Interim: an in-memory queue until OutboundQueue is on main.</summary>
public sealed class FakeQueue : IQueueCommands
{
    private static readonly long T0 = DateTimeOffset.Parse("2025-06-01T08:30:00.123Z").ToUnixTimeMilliseconds();
    private readonly List<QueueEntry> _entries =
    [
        new("q1", T0, "alice@example.test", "alice@example.test", 1234, false, 2, T0 + 60_000, false, "451 try later", null, null,
            [new("carol@remote.test", RecipientState.Queued, "451 try later", T0), new("dave@remote.test", RecipientState.Sent, "250 ok", T0)]) { Partition = "a" },
        new("q2", T0 + 1000, "", "", 99, false, 0, T0 + 1000, false, "", null, null,
            [new("bob@remote.test", RecipientState.Queued, "", T0)]) { Partition = "b" },
    ];

    public List<string> Actors { get; } = [];

    public QueueEntry Find(string id) => _entries.Find(e => e.Id == id) ?? throw new DirectoryException($"no queued message {id}", DirectoryError.NotFound);

    public Task<IReadOnlyList<QueueEntry>> ListQueueAsync() => Task.FromResult<IReadOnlyList<QueueEntry>>([.. _entries]);

    public Task<(QueueEntry Entry, string Headers)> ShowQueuedAsync(string id) => Task.FromResult((Find(id), "Subject: one\r\nFrom: alice@example.test\r\n"));

    public Task<int> RetryQueuedAsync(string? id, string actor)
    {
        Actors.Add(actor);
        if (id is not null) Find(id);
        return Task.FromResult(id is null ? _entries.Count(e => !e.Held) : 1);
    }

    public Task DeleteQueuedAsync(string id, string actor)
    {
        Actors.Add(actor);
        _entries.Remove(Find(id));
        return Task.CompletedTask;
    }

    public Task HoldQueuedAsync(string id, bool hold, string actor)
    {
        Actors.Add(actor);
        var e = Find(id);
        _entries[_entries.IndexOf(e)] = e with { Held = hold };
        return Task.CompletedTask;
    }
}
