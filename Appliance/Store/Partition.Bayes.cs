using Dapper;

namespace Appliance.Store;

// Each mailbox's spam filter (Filtering/Bayes.cs) keeps its counts in the mailbox's partition, so
// they move, replicate and fail over with the mail they were learned from: per account the
// messages trained (bayes_totals), each token's spam and ham messages (bayes_tokens), and which
// message was learned as what (bayes_seen, so a message moved back and forth is relearned, not
// counted twice).

internal sealed class BayesTokenRow
{
    public long Token { get; set; }
    public long Spam { get; set; }
    public long Ham { get; set; }
}

internal sealed class BayesTotalsRow
{
    public long Spam { get; set; }
    public long Ham { get; set; }
}

public sealed partial class Partition
{
    /// <summary>Tokens an account's filter keeps before it drops those seen once (about 10 MB of index).</summary>
    public const long MaxBayesTokens = 200_000;

    /// <summary>Learns messages (key, tokens) as spam or ham; returns once durable here and, in a pair, on the replica.</summary>
    public Task TrainAsync(string account, IReadOnlyList<(string Key, long[] Tokens)> messages, bool spam) =>
        SubmitAsync(ctx =>
        {
            foreach (var (key, tokens) in messages)
                if (ctx.LearnedAs(account, key) != spam) ctx.Emit(new BayesOp(account, key, spam, tokens));
            return 0;
        });

    /// <summary>The account's trained totals and the counts of the given tokens (those it knows).</summary>
    public Filtering.BayesCounts BayesCounts(string account, IReadOnlyCollection<long> tokens)
    {
        using var c = OpenReader();
        var totals = c.QueryFirstOrDefault<BayesTotalsRow>("SELECT spam AS Spam, ham AS Ham FROM bayes_totals WHERE account = @account", new { account });
        if (totals is null) return new(0, 0, new Dictionary<long, (long, long)>());
        var known = c.Query<BayesTokenRow>(
            "SELECT t.token AS Token, t.spam AS Spam, t.ham AS Ham FROM json_each(@tokens) AS j CROSS JOIN bayes_tokens AS t WHERE t.account = @account AND t.token = j.value",
            new { account, tokens = WriteContext.UidJson(tokens) });
        return new(totals.Spam, totals.Ham, known.ToDictionary(r => r.Token, r => (r.Spam, r.Ham)));
    }

    /// <summary>The message files of the given UIDs of a folder (those that exist).</summary>
    public async Task<IReadOnlyList<string>> BlobsAsync(string account, string folder, IReadOnlyCollection<long> uids)
    {
        await using var c = OpenReader();
        return (await c.QueryAsync<string>(
            "SELECT m.blob FROM folders f CROSS JOIN json_each(@uids) AS j CROSS JOIN messages AS m WHERE f.account = @account AND f.name = @folder AND m.folder_id = f.id AND m.uid = j.value ORDER BY m.uid",
            new { account, folder, uids = WriteContext.UidJson(uids) })).AsList();
    }

    internal sealed partial class WriteContext
    {
        /// <summary>How a message was learned: true spam, false ham, null not at all.</summary>
        public bool? LearnedAs(string account, string message) =>
            c.QueryFirstOrDefault<long?>("SELECT spam FROM bayes_seen WHERE account = @account AND message = @message", new { account, message }, tx) is { } v ? v != 0 : null;

        private void ApplyBayes(BayesOp op)
        {
            var before = LearnedAs(op.Account, op.Message);
            if (before == op.Spam) return;
            var account = op.Account;
            var tokens = UidJson(op.Tokens);
            // Relearning takes the message off the other class first (never below zero: a token
            // list from another version of the tokenizer must not drive counts negative).
            long spam = op.Spam ? 1 : before is null ? 0 : -1;
            long ham = op.Spam ? before is null ? 0 : -1 : 1;
            c.Execute(
                """
                INSERT INTO bayes_tokens(account, token, spam, ham) SELECT @account, value, max(@spam, 0), max(@ham, 0) FROM json_each(@tokens) WHERE true
                ON CONFLICT(account, token) DO UPDATE SET spam = max(spam + @spam, 0), ham = max(ham + @ham, 0)
                """, new { account, tokens, spam, ham }, tx);
            if (before is not null)
                c.Execute("DELETE FROM bayes_tokens WHERE account = @account AND spam = 0 AND ham = 0 AND token IN (SELECT value FROM json_each(@tokens))", new { account, tokens }, tx);
            c.Execute(
                """
                INSERT INTO bayes_totals(account, spam, ham) VALUES (@account, max(@spam, 0), max(@ham, 0))
                ON CONFLICT(account) DO UPDATE SET spam = max(spam + @spam, 0), ham = max(ham + @ham, 0)
                """, new { account, spam, ham }, tx);
            var message = op.Message;
            var isSpam = op.Spam ? 1 : 0;
            c.Execute("INSERT OR REPLACE INTO bayes_seen(account, message, spam) VALUES (@account, @message, @isSpam)", new { account, message, isSpam }, tx);
            // Bounded, as SpamAssassin expires its tokens: past MaxBayesTokens an account drops the
            // tokens seen in one message only (they decide little). Decided from the counts
            // alone, so every copy drops the same ones.
            // (spam + ham is the account's learned messages: every 100th checks the token count.)
            if (c.ExecuteScalar<long>("SELECT spam + ham FROM bayes_totals WHERE account = @account", new { account }, tx) % 100 == 0
                && c.ExecuteScalar<long>("SELECT count(*) FROM bayes_tokens WHERE account = @account", new { account }, tx) > MaxBayesTokens)
                c.Execute("DELETE FROM bayes_tokens WHERE account = @account AND spam + ham <= 1", new { account }, tx);
        }
    }
}
