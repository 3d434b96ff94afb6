using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Appliance.Directory;
using Appliance.Provisioning;
using Appliance.Web;

namespace Appliance.Cli;

/// <summary>
/// The CLI's commands against a node's provisioning API (<c>appliance --url URL --token T …</c>,
/// DESIGN.md §5), for managing a node from another machine. Problem documents become
/// <see cref="DirectoryException"/>s with the server's reason, as on the node.
/// </summary>
public sealed class ApiCommands : IProvisioningCommands, Relay.IQueueCommands, IDisposable
{
    private readonly HttpClient _http;

    /// <param name="insecure">Accept any server certificate (a node's self-signed one), like curl -k.</param>
    public ApiCommands(Uri baseUrl, string token, bool insecure)
    {
        var handler = new HttpClientHandler();
        if (insecure) handler.ServerCertificateCustomValidationCallback = (_, _, _, _) => true;
        _http = new HttpClient(handler) { BaseAddress = baseUrl, Timeout = TimeSpan.FromMinutes(10) };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", token);
    }

    public void Dispose() => _http.Dispose();

    private static string E(string segment) => Uri.EscapeDataString(segment);

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, string path, HttpContent? content = null)
    {
        HttpResponseMessage response;
        try { response = await _http.SendAsync(new HttpRequestMessage(method, "api/v1/" + path) { Content = content }); }
        catch (HttpRequestException ex) { throw new ApiUnreachableException($"cannot reach {_http.BaseAddress}: {ex.Message}"); }
        if (response.IsSuccessStatusCode) return response;
        var text = await response.Content.ReadAsStringAsync();
        Problem? problem = null;
        try { problem = JsonSerializer.Deserialize(text, WebJson.Default.Problem); }
        catch (JsonException) { /* not a problem document: say the status */ }
        var kind = response.StatusCode switch
        {
            HttpStatusCode.NotFound => DirectoryError.NotFound,
            HttpStatusCode.Conflict => DirectoryError.Conflict,
            HttpStatusCode.ServiceUnavailable => DirectoryError.Unavailable,
            _ => DirectoryError.Invalid,
        };
        throw new DirectoryException(problem?.Detail ?? $"{(int)response.StatusCode} {response.ReasonPhrase}", kind);
    }

    private async Task<T> GetAsync<T>(string path, JsonTypeInfo<T> type)
    {
        using var response = await SendAsync(HttpMethod.Get, path);
        return await response.Content.ReadFromJsonAsync(type) ?? throw new DirectoryException("empty answer from the node");
    }

    private async Task<TResult> SendJsonAsync<TBody, TResult>(HttpMethod method, string path, TBody body, JsonTypeInfo<TBody> bodyType, JsonTypeInfo<TResult> resultType)
    {
        using var response = await SendAsync(method, path, JsonContent.Create(body, bodyType));
        return await response.Content.ReadFromJsonAsync(resultType) ?? throw new DirectoryException("empty answer from the node");
    }

    private async Task SendJsonAsync<TBody>(HttpMethod method, string path, TBody body, JsonTypeInfo<TBody> bodyType)
    {
        using var _ = await SendAsync(method, path, JsonContent.Create(body, bodyType));
    }

    private async Task<Job> StartJobAsync(HttpResponseMessage accepted)
    {
        using (accepted)
        {
            var reference = await accepted.Content.ReadFromJsonAsync(WebJson.Default.JobRef) ?? throw new DirectoryException("no job in the answer");
            return await GetJobAsync(reference.Job) ?? throw new DirectoryException($"job {reference.Job} vanished");
        }
    }

    private static MailboxRecord Record(MailboxView m) =>
        new() { Address = m.Address, Domain = m.Domain, QuotaBytes = m.QuotaBytes, Partition = m.Partition, Enabled = m.Enabled };

    public async Task<string> AddDomainAsync(string name, string actor) =>
        (await SendJsonAsync(HttpMethod.Post, "domains", new DomainCreate { Name = name }, WebJson.Default.DomainCreate, WebJson.Default.DomainName)).Name;

    public async Task<IReadOnlyList<string>> ListDomainsAsync() =>
        (await GetAsync("domains", WebJson.Default.ListDomainSummary)).Select(d => d.Name).ToList();

    public async Task RemoveDomainAsync(string name, string actor)
    {
        using var _ = await SendAsync(HttpMethod.Delete, "domains/" + E(name));
    }

    public async Task<Job> StartDomainQuotaAsync(string domain, long quotaBytes, string actor) =>
        await StartJobAsync(await SendAsync(HttpMethod.Put, $"domains/{E(domain)}/quota", JsonContent.Create(new QuotaChange { QuotaBytes = quotaBytes }, WebJson.Default.QuotaChange)));

    public async Task<Relay.DkimRecord?> GetDkimRecordAsync(string domain)
    {
        // 404 is both "no such domain" and "no key yet"; NewDkimKeyAsync tells them apart.
        try { return await GetAsync($"domains/{E(domain)}/dkim", WebJson.Default.DkimRecord); }
        catch (DirectoryException ex) when (ex.Kind == DirectoryError.NotFound) { return null; }
    }

    public async Task<Relay.DkimRecord> NewDkimKeyAsync(string domain, string actor)
    {
        using var response = await SendAsync(HttpMethod.Post, $"domains/{E(domain)}/dkim");
        return await response.Content.ReadFromJsonAsync(WebJson.Default.DkimRecord) ?? throw new DirectoryException("empty answer from the node");
    }

    public async Task<MailboxRecord> AddMailboxAsync(string address, string? password, string? passwordHash, long? quotaBytes, string actor)
    {
        if (passwordHash is not null)
        {
            // A migrated hash goes in as a bulk of one (the single-mailbox call takes a password).
            var job = await StartJobAsync(await SendAsync(HttpMethod.Post, "mailboxes/bulk", JsonContent.Create(
                new BulkRequest { Mailboxes = [new BulkItem { Address = address, PasswordHash = passwordHash, QuotaBytes = quotaBytes }] }, WebJson.Default.BulkRequest)));
            while (job.State == "running") job = await GetJobAsync(job.Id) ?? job;
            if (job.State != "done") throw new DirectoryException(string.Join("; ", job.Errors.Select(e => e.Reason)));
            return Record(await GetAsync("mailboxes/" + E(address.Trim().ToLowerInvariant()), WebJson.Default.MailboxView));
        }
        return Record(await SendJsonAsync(HttpMethod.Post, "mailboxes", new MailboxCreate { Address = address, Password = password, QuotaBytes = quotaBytes },
            WebJson.Default.MailboxCreate, WebJson.Default.MailboxView));
    }

    public async Task<IReadOnlyList<MailboxRecord>> ListMailboxesAsync(string? domain)
    {
        var all = new List<MailboxRecord>();
        for (var offset = 0; ; offset += ApiEndpoints.MaxPageSize)
        {
            var page = await GetAsync($"mailboxes?limit={ApiEndpoints.MaxPageSize}&offset={offset}" + (domain is null ? "" : "&domain=" + E(domain)), WebJson.Default.MailboxPage);
            all.AddRange(page.Items.Select(Record));
            if (page.Items.Count == 0 || all.Count >= page.Total) return all;
        }
    }

    public async Task<MailboxRecord> UpdateMailboxAsync(string address, string? password, long? quotaBytes, bool? enabled, string actor) =>
        Record(await SendJsonAsync(HttpMethod.Patch, "mailboxes/" + E(address), new MailboxPatch { Password = password, QuotaBytes = quotaBytes, Enabled = enabled },
            WebJson.Default.MailboxPatch, WebJson.Default.MailboxView));

    public async Task<string> RemoveMailboxAsync(string address, bool purge, string actor)
    {
        using var _ = await SendAsync(HttpMethod.Delete, "mailboxes/" + E(address) + (purge ? "?purge=true" : ""));
        return purge ? $"mailbox {address} removed, mail deleted" : $"mailbox {address} removed, mail kept for the retention period";
    }

    public async Task<string> AddAliasAsync(string source, IReadOnlyList<string> targets, string actor) =>
        (await SendJsonAsync(HttpMethod.Post, "aliases", new AliasCreate { Source = source, Targets = [.. targets] }, WebJson.Default.AliasCreate, WebJson.Default.AliasView)).Source;

    public async Task<IReadOnlyList<AliasRecord>> ListAliasesAsync(string? domain) =>
        (await GetAsync("aliases" + (domain is null ? "" : "?domain=" + E(domain)), WebJson.Default.ListAliasView))
            .SelectMany(a => a.Targets.Select(t => new AliasRecord { Source = a.Source, Target = t })).ToList();

    public async Task RemoveAliasAsync(string source, string? target, string actor)
    {
        using var _ = await SendAsync(HttpMethod.Delete, "aliases/" + E(source) + (target is null ? "" : "?target=" + E(target)));
    }

    public async Task<string> CreateTokenAsync(string name, string scopes, string actor) =>
        (await SendJsonAsync(HttpMethod.Post, "tokens", new TokenCreate { Name = name, Scopes = scopes }, WebJson.Default.TokenCreate, WebJson.Default.TokenCreated)).Token;

    public Task SetAdminPasswordAsync(string name, string password, string actor) =>
        SendJsonAsync(HttpMethod.Put, $"admins/{E(name)}/password", new PasswordChange { Password = password }, WebJson.Default.PasswordChange);

    public async Task<Job> StartImportAsync(string csv, string actor) =>
        await StartJobAsync(await SendAsync(HttpMethod.Post, "mailboxes/import", new StringContent(csv, Encoding.UTF8, "text/csv")));

    public async Task<Job?> GetJobAsync(string id)
    {
        try { return await GetAsync("jobs/" + E(id), WebJson.Default.Job); }
        catch (DirectoryException ex) when (ex.Kind == DirectoryError.NotFound) { return null; }
    }

    // ---- the outbound queue (/api/v1/queue) ----

    public async Task<IReadOnlyList<Store.QueueEntry>> ListQueueAsync()
    {
        var all = new List<Store.QueueEntry>();
        for (var offset = 0; ; offset += ApiEndpoints.MaxPageSize)
        {
            var page = await GetAsync($"queue?limit={ApiEndpoints.MaxPageSize}&offset={offset}", WebJson.Default.QueuePage);
            all.AddRange(page.Items.Select(QueueEndpoints.Entry));
            if (page.Items.Count == 0 || all.Count >= page.Total) return all;
        }
    }

    public async Task<(Store.QueueEntry Entry, string Headers)> ShowQueuedAsync(string id)
    {
        var view = await GetAsync("queue/" + E(id), WebJson.Default.QueueEntryView);
        return (QueueEndpoints.Entry(view), view.Headers ?? "");
    }

    public async Task<int> RetryQueuedAsync(string? id, string actor)
    {
        using var response = await SendAsync(HttpMethod.Post, id is null ? "queue/retry" : $"queue/{E(id)}/retry");
        return (await response.Content.ReadFromJsonAsync(WebJson.Default.QueueCount) ?? throw new DirectoryException("empty answer from the node")).Count;
    }

    public async Task DeleteQueuedAsync(string id, string actor)
    {
        using var _ = await SendAsync(HttpMethod.Delete, "queue/" + E(id));
    }

    public async Task HoldQueuedAsync(string id, bool hold, string actor)
    {
        using var _ = await SendAsync(HttpMethod.Post, $"queue/{E(id)}/{(hold ? "hold" : "release")}");
    }
}

/// <summary>The node's API cannot be reached at all (the CLI exits 3, as without a control socket).</summary>
public sealed class ApiUnreachableException(string message) : Exception(message);
