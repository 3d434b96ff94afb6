using System.Collections.Concurrent;
using System.Net;
using Appliance.Directory;
using Appliance.Store;

namespace Appliance.Tests.Pop3;

/// <summary>In-memory store: one INBOX per user, bytes kept exactly as given.</summary>
internal sealed class FakeMailStore : IMailStore
{
    public const long UidValidity = 1234;

    private readonly ConcurrentDictionary<string, List<(StoredMessage Message, byte[] Bytes)>> _inboxes = new(StringComparer.OrdinalIgnoreCase);
    private long _nextUid = 1;

    public List<long> ExpungedUids { get; } = [];

    public int ExpungeCalls { get; private set; }

    public StoredMessage Add(string address, byte[] bytes)
    {
        var list = _inboxes.GetOrAdd(address, _ => []);
        lock (list)
        {
            var message = new StoredMessage(_nextUid++, bytes.Length, DateTimeOffset.UtcNow, MessageFlags.None, [], 1, Guid.NewGuid().ToString("N"));
            list.Add((message, bytes));
            return message;
        }
    }

    public StoredMessage Add(string address, string text) => Add(address, System.Text.Encoding.UTF8.GetBytes(text));

    public int Count(string address)
    {
        var list = _inboxes.GetOrAdd(address, _ => []);
        lock (list)
        {
            return list.Count;
        }
    }

    public Task<FolderStatus> GetFolderAsync(MailUser user, string folder, CancellationToken ct)
    {
        Assert.Equal("INBOX", folder);
        return Task.FromResult(new FolderStatus(folder, UidValidity, _nextUid, 1, Count(user.Address)));
    }

    public Task<IReadOnlyList<StoredMessage>> ListAsync(MailUser user, string folder, CancellationToken ct)
    {
        var list = _inboxes.GetOrAdd(user.Address, _ => []);
        lock (list)
        {
            return Task.FromResult<IReadOnlyList<StoredMessage>>(list.Select(m => m.Message).ToArray());
        }
    }

    public Stream OpenMessage(MailUser user, StoredMessage message)
    {
        var list = _inboxes.GetOrAdd(user.Address, _ => []);
        lock (list)
        {
            var bytes = list.Single(m => m.Message.Uid == message.Uid).Bytes;
            return new MemoryStream(bytes, writable: false);
        }
    }

    public Task ExpungeAsync(MailUser user, string folder, IReadOnlyCollection<long> uids, CancellationToken ct)
    {
        var list = _inboxes.GetOrAdd(user.Address, _ => []);
        lock (list)
        {
            ExpungeCalls++;
            ExpungedUids.AddRange(uids);
            list.RemoveAll(m => uids.Contains(m.Message.Uid));
        }

        return Task.CompletedTask;
    }

    public long UsedBytes(MailUser user) => 0;
    public bool IsServedHere(MailUser user) => true;

    public CancellationToken Tenure(MailUser user) => CancellationToken.None;
}

/// <summary>Users and passwords from a table; one address is always throttled.</summary>
internal sealed class FakeAuthenticator : IMailAuthenticator
{
    public const string ThrottledUser = "throttled@example.com";

    private readonly Dictionary<string, string> _passwords = new(StringComparer.OrdinalIgnoreCase);

    public int Calls { get; private set; }

    public FakeAuthenticator Add(string address, string password)
    {
        _passwords[address] = password;
        return this;
    }

    public Task<AuthResult> AuthenticateAsync(string user, string password, IPAddress remote, CancellationToken ct)
    {
        Calls++;
        if (string.Equals(user, ThrottledUser, StringComparison.OrdinalIgnoreCase))
        {
            return Task.FromResult(AuthResult.Throttled);
        }

        return Task.FromResult(_passwords.TryGetValue(user, out var expected) && expected == password
            ? new AuthResult(AuthOutcome.Success, new MailUser(user.ToLowerInvariant(), "a", 0))
            : AuthResult.Failed);
    }
}
