using Dapper;

namespace Appliance.Store;

// Which senders got a user's vacation reply, and until when another is held back (RFC 5230
// §4.1): in the mailbox's partition, so a failover does not make the other node reply again.

public sealed partial class Partition
{
    /// <summary>
    /// Claims the right to send the vacation reply <paramref name="handle"/> of
    /// <paramref name="account"/> to <paramref name="sender"/>: true (and recorded until
    /// <paramref name="until"/>, durable) when none went to them in the current period, false
    /// when one did. Check and record are one step on the writer, so two deliveries at once
    /// cannot both reply.
    /// </summary>
    public Task<bool> ClaimVacationAsync(string account, string handle, string sender, DateTimeOffset now, DateTimeOffset until) =>
        SubmitAsync(ctx =>
        {
            var time = now.ToUnixTimeSeconds();
            if (ctx.VacationUntil(account, handle, sender) is { } held && held > time) return false;
            ctx.Emit(new VacationOp(account, handle, sender, time, until.ToUnixTimeSeconds()));
            return true;
        });

    internal sealed partial class WriteContext
    {
        public long? VacationUntil(string account, string handle, string sender) =>
            c.QueryFirstOrDefault<long?>("SELECT until FROM vacation_sent WHERE account = @account AND handle = @handle AND sender = @sender", new { account, handle, sender }, tx);
    }
}
