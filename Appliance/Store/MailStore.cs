using System.Collections.Concurrent;
using Appliance.Directory;

namespace Appliance.Store;

/// <summary>The partitions hosted by this node, routed by each mailbox's partition.</summary>
public sealed partial class MailStore : IMailStore, IAsyncDisposable
{
    public const string Inbox = "INBOX";
    private readonly ConcurrentDictionary<string, Partition> _partitions;
    private readonly string _dataDir;
    private readonly long _journalSegmentBytes;

    private readonly long _journalRetainBytes;

    private MailStore(ConcurrentDictionary<string, Partition> partitions, string dataDir, long journalSegmentBytes, long journalRetainBytes)
    {
        _partitions = partitions;
        _dataDir = dataDir;
        _journalSegmentBytes = journalSegmentBytes;
        _journalRetainBytes = journalRetainBytes;
    }

    public IEnumerable<string> PartitionNames => _partitions.Keys.Order(StringComparer.Ordinal);

    /// <summary>Opens units/store-NAME for each configured partition (replaying unapplied journal records).</summary>
    public static MailStore Open(string dataDir, IEnumerable<string> partitions, long journalSegmentBytes, long journalRetainBytes = long.MaxValue)
    {
        var map = new ConcurrentDictionary<string, Partition>(StringComparer.Ordinal);
        foreach (var name in partitions)
            map[name] = OpenPartition(name, PartitionDir(dataDir, name), journalSegmentBytes, journalRetainBytes);
        return new MailStore(map, dataDir, journalSegmentBytes, journalRetainBytes);
    }

    private static Partition OpenPartition(string name, string dir, long segmentBytes, long retainBytes)
    {
        var p = Store.Partition.Open(name, dir, segmentBytes);
        p.JournalRetainBytes = retainBytes;
        return p;
    }

    /// <summary>
    /// Replaces a replica's copy by a snapshot received from the primary: the index and message
    /// files in <paramref name="stagingDir"/> (already durable) become the copy, and its journal
    /// starts empty after <paramref name="seq"/>, the record the snapshot reflects.
    /// </summary>
    public async Task<Partition> InstallSnapshotAsync(string name, string stagingDir, long seq)
    {
        var old = Partition(name);
        if (old.IsPrimary) throw new InvalidOperationException($"partition {name} is active here: it cannot take a snapshot");
        await old.DisposeAsync();
        var dir = PartitionDir(_dataDir, name);
        RemoveCopy(dir);
        File.Move(Path.Combine(stagingDir, "index.db"), Path.Combine(dir, "index.db"));
        var blobs = Path.Combine(stagingDir, "blobs");
        if (System.IO.Directory.Exists(blobs)) System.IO.Directory.Move(blobs, Path.Combine(dir, "blobs"));
        Journal.Reset(Path.Combine(dir, "journal"), seq);
        FileSystem.FsyncDirectory(dir);
        return Reopen(name, dir);
    }

    /// <summary>
    /// Empties a replica's copy (a rollback past what its journal still holds): it resyncs from
    /// a snapshot. With <paramref name="keepFilesIn"/> its message files are moved there first.
    /// </summary>
    public async Task<Partition> WipeAsync(string name, string? keepFilesIn = null)
    {
        var old = Partition(name);
        if (old.IsPrimary) throw new InvalidOperationException($"partition {name} is active here: it cannot be wiped");
        await old.DisposeAsync();
        var dir = PartitionDir(_dataDir, name);
        if (keepFilesIn is not null && System.IO.Directory.Exists(old.BlobDirectory))
        {
            System.IO.Directory.CreateDirectory(Path.GetDirectoryName(keepFilesIn)!);
            System.IO.Directory.Move(old.BlobDirectory, keepFilesIn);
        }
        RemoveCopy(dir);
        FileSystem.FsyncDirectory(dir);
        return Reopen(name, dir);
    }

    /// <summary>The data of a copy (index, files, journal); the unit's own files beside them stay.</summary>
    private static void RemoveCopy(string dir)
    {
        foreach (var file in System.IO.Directory.EnumerateFiles(dir, "index.db*")) File.Delete(file);
        foreach (var sub in new[] { "blobs", "journal" })
            if (System.IO.Directory.Exists(Path.Combine(dir, sub))) System.IO.Directory.Delete(Path.Combine(dir, sub), recursive: true);
    }

    private Partition Reopen(string name, string dir)
    {
        var fresh = OpenPartition(name, dir, _journalSegmentBytes, _journalRetainBytes);
        fresh.IsPrimary = false;
        _partitions[name] = fresh;
        return fresh;
    }

    private static string PartitionDir(string dataDir, string name) => Path.Combine(dataDir, "units", UnitName(name));

    /// <summary>
    /// The partition of the monitor unit: it holds no mailboxes but the provisioning journal
    /// and the monitoring history, replicated like a mail partition. Every node hosts it.
    /// </summary>
    public const string MonitorPartition = "monitor";

    /// <summary>
    /// The partition of the db unit: it holds no mailboxes but the webmail's data of every user
    /// (contacts, notes, personal files, settings: Partition.Webmail.cs), replicated like a mail
    /// partition. Every node hosts it.
    /// </summary>
    public const string DbPartition = "db";

    /// <summary>
    /// The partitions of the service units (monitor, db), as opposed to mailbox partitions: every
    /// node hosts them, their unit is named like the partition, no mailbox lives in them and
    /// Store:Partitions cannot use their names.
    /// </summary>
    public static IReadOnlyList<string> ServicePartitions { get; } = [MonitorPartition, DbPartition];

    /// <summary>Whether <paramref name="name"/> is a service unit's partition (monitor, db), not a mailbox partition.</summary>
    public static bool IsServicePartition(string name) => name is MonitorPartition or DbPartition;

    /// <summary>The mailbox partitions this node hosts (the service units' left out).</summary>
    public IEnumerable<string> MailboxPartitionNames => PartitionNames.Where(p => !IsServicePartition(p));

    /// <summary>The unit a partition belongs to: store-NAME for mailbox partitions, the partition's own name for a service unit's.</summary>
    public static string UnitName(string partition) => IsServicePartition(partition) ? partition : "store-" + partition;

    /// <summary>The partition of a unit (the reverse of <see cref="UnitName"/>), or null for a unit without one.</summary>
    public static string? PartitionOfUnit(string unit) =>
        IsServicePartition(unit) ? unit
        : unit.StartsWith("store-", StringComparison.Ordinal) && !IsServicePartition(unit["store-".Length..]) ? unit["store-".Length..]
        : null;

    /// <summary>The monitor unit's partition (the provisioning journal).</summary>
    public Partition Monitor => Partition(MonitorPartition);

    /// <summary>The db unit's partition (the webmail's data).</summary>
    public Partition Db => Partition(DbPartition);

    /// <summary>
    /// Cuts a replica's copy back to <paramref name="seq"/> (journal records after it are
    /// dropped) and rebuilds its index and message files from the journal, so it can resync from
    /// a primary whose history split from it there. Only for a copy that is not active here.
    /// </summary>
    public async Task<Partition> RollBackAsync(string name, long seq)
    {
        var old = Partition(name);
        if (old.IsPrimary) throw new InvalidOperationException($"partition {name} is active here: it cannot be rolled back");
        await old.DisposeAsync();
        var dir = PartitionDir(_dataDir, name);
        Journal.TruncateAfter(Path.Combine(dir, "journal"), seq);
        foreach (var file in System.IO.Directory.EnumerateFiles(dir, "index.db*")) File.Delete(file);
        System.IO.Directory.Delete(Path.Combine(dir, "blobs"), recursive: true);
        return Reopen(name, dir);
    }

    public Partition Partition(string name) =>
        _partitions.TryGetValue(name, out var p) ? p : throw new InvalidOperationException($"partition {name} is not hosted on this node");

    public Partition For(MailUser user) => Partition(user.Partition);

    /// <summary>Whether this node has a copy of the partition (active or not).</summary>
    public bool Hosts(string partition) => _partitions.ContainsKey(partition);

    /// <summary>Whether the user's partition takes writes on this node (always, on a single node).</summary>
    public bool IsServedHere(MailUser user) => For(user).IsPrimary;

    /// <summary>Cancelled when the user's partition stops being active here (see <see cref="Store.Partition.Tenure"/>).</summary>
    public CancellationToken Tenure(MailUser user) => For(user).Tenure;

    /// <summary>In a pair: delivers to partitions active on the other node.</summary>
    public IRemoteDelivery? Remote { get; set; }

    /// <summary>Whether mail for the user can be stored now, here or on the other node.</summary>
    public bool CanDeliver(MailUser user) => IsServedHere(user) || Remote?.Serves(user.Partition) == true;

    public async Task<FolderStatus> GetFolderAsync(MailUser user, string folder, CancellationToken ct)
    {
        var p = For(user);
        if (await p.GetFolderAsync(user.Address, folder, ct) is { } status) return status;
        if (folder != Inbox) throw new KeyNotFoundException($"no folder {folder}");
        await p.CreateFolderAsync(user.Address, Inbox);
        return (await p.GetFolderAsync(user.Address, folder, ct))!;
    }

    public Task<IReadOnlyList<StoredMessage>> ListAsync(MailUser user, string folder, CancellationToken ct) =>
        For(user).ListAsync(user.Address, folder, ct);

    /// <summary>One message by UID, or null when the folder has none such.</summary>
    public Task<StoredMessage?> GetMessageAsync(MailUser user, string folder, long uid, CancellationToken ct) =>
        For(user).GetMessageAsync(user.Address, FolderName(folder), uid, ct);

    public Stream OpenMessage(MailUser user, StoredMessage message) =>
        new FileStream(For(user).BlobPath(message.BlobId), FileMode.Open, FileAccess.Read, FileShare.ReadWrite | FileShare.Delete, 1 << 16, FileOptions.Asynchronous);

    public async Task ExpungeAsync(MailUser user, string folder, IReadOnlyCollection<long> uids, CancellationToken ct)
    {
        folder = FolderName(folder);
        await For(user).ExpungeAsync(user.Address, folder, uids);
        Changes.Publish(user.Address, folder);
    }

    public long UsedBytes(MailUser user) => For(user).UsedBytes(user.Address);

    /// <summary>Delivers into a folder; null when over quota.</summary>
    public Task<long?> DeliverAsync(MailUser user, string folder, ReadOnlyMemory<byte> data, MessageStructure structure, CancellationToken ct) =>
        DeliverAsync(user, folder, data, structure, DeliveryState.Plain, ct);

    /// <summary>
    /// Delivers into a folder with initial flags and keywords (a Sieve script's imap4flags), the
    /// folder created first when <see cref="DeliveryState.CreateFolder"/> says so (fileinto
    /// :create); null when over quota. Throws <see cref="FolderNotFoundException"/> for another
    /// missing folder than INBOX.
    /// </summary>
    public async Task<long?> DeliverAsync(MailUser user, string folder, ReadOnlyMemory<byte> data, MessageStructure structure, DeliveryState state, CancellationToken ct)
    {
        folder = FolderName(folder);
        if (!IsServedHere(user) && Remote is { } remote && remote.Serves(user.Partition))
            return await remote.DeliverAsync(user, folder, data, state, ct);
        var p = For(user);
        if (state.CreateFolder && folder != Inbox && await p.GetFolderAsync(user.Address, folder, ct) is null)
        {
            try { await CreateFolderAsync(user, folder, null, ct); }
            catch (FolderExistsException) { } // created meanwhile
        }
        var result = await p.AppendAsync(user.Address, folder, [new NewMessage(data, structure, DateTimeOffset.UtcNow, state.Flags, state.Keywords)], user.QuotaBytes, ct);
        if (result is null) return null;
        Changes.Publish(user.Address, folder);
        return result.Uids[0];
    }

    /// <summary>
    /// Claims the right to send a vacation reply of <paramref name="user"/> to
    /// <paramref name="sender"/> (once per handle and period), where the mailbox's partition is
    /// active: here, or on the other node of a pair.
    /// </summary>
    public Task<bool> ClaimVacationAsync(MailUser user, string handle, string sender, DateTimeOffset now, DateTimeOffset until, CancellationToken ct) =>
        !IsServedHere(user) && Remote is { } remote && remote.Serves(user.Partition)
            ? remote.ClaimVacationAsync(user, handle, sender, now, until, ct)
            : For(user).ClaimVacationAsync(user.Address, handle, sender, now, until);

    /// <summary>A new mailbox: INBOX and the special-use <see cref="DefaultFolders"/>, all subscribed.</summary>
    public Task CreateMailboxAsync(MailUser user) =>
        For(user).CreateFoldersAsync(user.Address, [(Inbox, null), .. DefaultFolders.Select(f => (f.Name, (string?)f.SpecialUse))]);

    /// <summary>
    /// Deletes a mailbox's data (a purge), each part only where it is active on this node: its mail
    /// where its partition is, its webmail items where the db unit is. In a pair the provisioning
    /// agent of every node applies the purge and calls this, so each part is deleted by the node
    /// holding it and reaches the other copy by replication; a part active on the other node is
    /// that node's agent's to delete (it applies the same request from its copy of the journal),
    /// and a replica is never written. Calling it again deletes nothing more.
    /// </summary>
    public async Task DeleteMailboxAsync(MailUser user)
    {
        if (Hosts(user.Partition) && IsServedHere(user)) await For(user).DeleteAccountAsync(user.Address);
        if (Hosts(DbPartition) && Db.IsPrimary) await Db.DeleteWebmailAccountAsync(user.Address);
    }

    public async ValueTask DisposeAsync()
    {
        foreach (var p in _partitions.Values) await p.DisposeAsync();
    }
}
