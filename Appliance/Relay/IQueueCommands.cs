using Appliance.Store;

namespace Appliance.Relay;

/// <summary>
/// <c>appliance queue list|show|retry|delete|hold|release</c> as the CLI runs them: on the node
/// itself (<see cref="OutboundQueue"/>, through the control socket; in a pair a change to an entry
/// held by the other node is forwarded there) or against a node's API with a token
/// (<c>--url</c>, <see cref="Cli.ApiCommands"/>). An unknown id is a
/// <see cref="Directory.DirectoryException"/> of kind NotFound.
/// </summary>
public interface IQueueCommands
{
    /// <summary>Every queued message, oldest first.</summary>
    Task<IReadOnlyList<QueueEntry>> ListQueueAsync();
    /// <summary>One entry and its message's header block.</summary>
    Task<(QueueEntry Entry, string Headers)> ShowQueuedAsync(string id);
    /// <summary>Makes an entry (null: every entry not on hold) due now; returns how many.</summary>
    Task<int> RetryQueuedAsync(string? id, string actor);
    /// <summary>Removes an entry without a bounce.</summary>
    Task DeleteQueuedAsync(string id, string actor);
    /// <summary>Puts an entry on hold (not tried until released) or releases it (due now).</summary>
    Task HoldQueuedAsync(string id, bool hold, string actor);
}
