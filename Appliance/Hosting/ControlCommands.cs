using Appliance.Directory;
using Appliance.Provisioning;

namespace Appliance.Hosting;

/// <summary>
/// The management commands of DESIGN.md §5 as the running node executes them (the CLI only
/// forwards its arguments). Changes go through the provisioning journal like the API's. A refused
/// change prints one line and exits 1; bad usage exits 2.
/// </summary>
public sealed partial class ControlCommands(IProvisioningCommands provisioning, Cluster.ClusterManager? cluster = null, Relay.IQueueCommands? queue = null,
    Monitoring.MonitoringService? monitoring = null)
{
    public delegate void Output(string text, bool error);

    private const string Actor = "cli";

    private sealed class UsageException(string message) : Exception(message);

    public async Task<int> ExecuteAsync(string[] args, string? input, Output output)
    {
        try
        {
            if (args is ["cluster", .. var clusterArgs])
            {
                if (cluster is null)
                {
                    output(provisioning is ProvisioningService ? "this node is not part of a pair (no Cluster:Peer configured)" : "cluster commands run on a node, not through --url", true);
                    return 1;
                }
                var (exit, lines) = await cluster.ExecuteAsync(clusterArgs, forwarded: false, CancellationToken.None);
                foreach (var line in lines) output(line, exit != 0);
                return exit;
            }
            if (args is ["check", .. var checkArgs] && monitoring is not null)
                return await CheckAsync(monitoring, checkArgs, output);
            var a = new Args(args);
            var noun = a.Next("command");
            var verb = noun is "import" ? "" : a.Next(noun + " subcommand");
            switch (noun, verb)
            {
                case ("domain", "add"):
                    var newDomain = a.Next("domain");
                    a.EnsureDone();
                    output($"domain {await provisioning.AddDomainAsync(newDomain, Actor)} added", false);
                    break;
                case ("domain", "list"):
                    a.EnsureDone();
                    foreach (var d in await provisioning.ListDomainsAsync()) output(d, false);
                    break;
                case ("domain", "remove"):
                    var domain = a.Next("domain");
                    a.EnsureDone();
                    await provisioning.RemoveDomainAsync(domain, Actor);
                    output($"domain {domain} removed", false);
                    break;
                case ("domain", "dkim"):
                    {
                        var dkimDomain = a.Next("domain");
                        var renew = a.Flag("--new");
                        a.EnsureDone();
                        // The first key is made when asked for (domains added before DKIM signing have none).
                        var record = (renew ? null : await provisioning.GetDkimRecordAsync(dkimDomain))
                            ?? await provisioning.NewDkimKeyAsync(dkimDomain, Actor);
                        output(Relay.DkimSigning.ZoneLine(record), false);
                        output($"; publish this TXT record in the DNS zone of {record.Domain}: mail from {record.Domain} is signed with selector {record.Selector}", false);
                        break;
                    }
                case ("mailbox", "add"):
                    {
                        var address = a.Next("address");
                        var quota = a.Option("--quota") is { } q ? ParseSize(q) : (long?)null;
                        var (password, hash) = Secret(a, input);
                        a.EnsureDone();
                        var box = await provisioning.AddMailboxAsync(address, password, hash, quota, Actor);
                        output($"mailbox {box.Address} added (partition {box.Partition}, quota {Sizes.Format(box.QuotaBytes)})", false);
                        break;
                    }
                case ("mailbox", "list"):
                    var dom = a.Optional();
                    a.EnsureDone();
                    foreach (var m in await provisioning.ListMailboxesAsync(dom))
                        output($"{m.Address}\t{(m.Enabled ? "enabled" : "disabled")}\tquota={Sizes.Format(m.QuotaBytes)}\tpartition={m.Partition}", false);
                    break;
                case ("mailbox", "set"):
                    {
                        var address = a.Next("address");
                        var quota = a.Option("--quota") is { } q ? ParseSize(q) : (long?)null;
                        bool? enabled = a.Flag("--enable") ? true : a.Flag("--disable") ? false : null;
                        var password = a.Flag("--password-stdin") ? ReadSecret(input) : null;
                        a.EnsureDone();
                        if (quota is null && enabled is null && password is null) throw new UsageException("mailbox set: nothing to change (--quota, --enable, --disable, --password-stdin)");
                        var box = await provisioning.UpdateMailboxAsync(address, password, quota, enabled, Actor);
                        output($"mailbox {box.Address} updated ({(box.Enabled ? "enabled" : "disabled")}, quota {Sizes.Format(box.QuotaBytes)})", false);
                        break;
                    }
                case ("mailbox", "remove"):
                    {
                        var removed = a.Next("address");
                        var purge = a.Flag("--purge");
                        a.EnsureDone();
                        output(await provisioning.RemoveMailboxAsync(removed, purge, Actor), false);
                        break;
                    }
                case ("mailbox", "purge"):
                    {
                        var purged = a.Next("address");
                        a.EnsureDone();
                        output(await provisioning.RemoveMailboxAsync(purged, purge: true, Actor), false);
                        break;
                    }
                case ("alias", "add"):
                    {
                        var source = a.Next("alias address");
                        var targets = a.Rest();
                        a.EnsureDone();
                        if (targets.Count == 0) throw new UsageException("alias add: at least one target address is needed");
                        var alias = await provisioning.AddAliasAsync(source, targets, Actor);
                        output($"alias {alias} -> {string.Join(", ", targets)}", false);
                        break;
                    }
                case ("alias", "list"):
                    var ad = a.Optional();
                    a.EnsureDone();
                    foreach (var al in await provisioning.ListAliasesAsync(ad)) output($"{al.Source}\t{al.Target}", false);
                    break;
                case ("alias", "remove"):
                    {
                        var source = a.Next("alias address");
                        var target = a.Optional();
                        a.EnsureDone();
                        await provisioning.RemoveAliasAsync(source, target, Actor);
                        output($"alias {source} removed", false);
                        break;
                    }
                case ("token", "create"):
                    var tokenName = a.Option("--name") ?? "cli";
                    var scope = a.Option("--scope") ?? "admin";
                    a.EnsureDone();
                    output(await provisioning.CreateTokenAsync(tokenName, scope, Actor), false);
                    break;
                case ("admin", "password"):
                    {
                        var admin = a.Next("admin name");
                        if (!a.Flag("--password-stdin")) throw new UsageException("admin password: give --password-stdin");
                        var password = ReadSecret(input);
                        a.EnsureDone();
                        await provisioning.SetAdminPasswordAsync(admin, password, Actor);
                        output($"password of admin {admin} set", false);
                        break;
                    }
                case ("import", _):
                    {
                        a.Next("CSV file");
                        a.EnsureDone();
                        if (input is null) throw new UsageException("import: the CSV content was not sent");
                        var job = await provisioning.StartImportAsync(input, Actor);
                        output($"job {job.Id}: {job.Total} lines", false);
                        return await FollowAsync(job, output);
                    }
                case ("domain", "quota"):
                    {
                        var quotaDomain = a.Next("domain");
                        var size = ParseSize(a.Next("quota"));
                        a.EnsureDone();
                        return await FollowAsync(await provisioning.StartDomainQuotaAsync(quotaDomain, size, Actor), output);
                    }
                case ("queue", _):
                    return await QueueAsync(a, verb, output);
                default:
                    throw new UsageException($"unknown command '{noun} {verb}'".TrimEnd());
            }
            return 0;
        }
        catch (UsageException ex)
        {
            output(ex.Message, true);
            return 2;
        }
        catch (DirectoryException ex)
        {
            output(ex.Message, true);
            return 1;
        }
    }

    /// <summary>Prints a job's progress as it changes, then its outcome; exit 0 when done, 1 when failed.</summary>
    private async Task<int> FollowAsync(Provisioning.Job job, Output output)
    {
        var last = "";
        var final = job;
        while (true)
        {
            final = await provisioning.GetJobAsync(job.Id) ?? final;
            if (final.State != "running") break;
            var line = $"{final.Phase}: {final.Done}/{final.Total}";
            if (line != last) output(line, false);
            last = line;
            await Task.Delay(250);
        }
        foreach (var e in final.Errors)
            output((e.Line is { } l ? $"line {l}: " : e.Index is { } i ? $"entry {i}: " : "") + e.Reason, true);
        if (final.State != "done")
        {
            output($"job {final.Id} failed: nothing was changed", true);
            return 1;
        }
        output(final.Kind == RequestKinds.MailboxBulk ? $"{final.Total} mailboxes imported" : $"done ({final.Total} mailboxes)", false);
        return 0;
    }

    private static (string? Password, string? Hash) Secret(Args a, string? input)
    {
        if (a.Option("--password-hash") is { } hash) return (null, hash);
        if (a.Flag("--password-stdin")) return (ReadSecret(input), null);
        throw new UsageException("mailbox add: give --password-stdin (or --password-hash HASH)");
    }

    private static string ReadSecret(string? input)
    {
        var line = input?.Split('\n')[0].TrimEnd('\r');
        if (string.IsNullOrEmpty(line)) throw new UsageException("no password on standard input");
        return line;
    }

    private static long ParseSize(string s) => Sizes.Parse(s) ?? throw new UsageException($"bad size '{s}' (examples: 0, 500M, 2G)");

    /// <summary>Positional arguments and --options, consumed as the command reads them.</summary>
    private sealed class Args(string[] args)
    {
        private readonly List<string> _rest = [.. args];

        public string Next(string what)
        {
            var i = _rest.FindIndex(x => !x.StartsWith("--", StringComparison.Ordinal));
            if (i < 0) throw new UsageException($"missing {what}");
            var v = _rest[i];
            _rest.RemoveAt(i);
            return v;
        }

        public string? Optional()
        {
            var i = _rest.FindIndex(x => !x.StartsWith("--", StringComparison.Ordinal));
            if (i < 0) return null;
            var v = _rest[i];
            _rest.RemoveAt(i);
            return v;
        }

        public List<string> Rest()
        {
            var values = _rest.Where(x => !x.StartsWith("--", StringComparison.Ordinal)).ToList();
            _rest.RemoveAll(x => !x.StartsWith("--", StringComparison.Ordinal));
            return values;
        }

        public string? Option(string name)
        {
            var i = _rest.IndexOf(name);
            if (i < 0) return null;
            if (i + 1 >= _rest.Count) throw new UsageException($"{name} needs a value");
            var v = _rest[i + 1];
            _rest.RemoveRange(i, 2);
            return v;
        }

        public bool Flag(string name) => _rest.Remove(name);

        public void EnsureDone()
        {
            if (_rest.Count > 0) throw new UsageException($"unexpected argument '{_rest[0]}'");
        }
    }
}
