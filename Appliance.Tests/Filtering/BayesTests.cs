using System.Text;
using Appliance.Filtering;

namespace Appliance.Tests.Filtering;

/// <summary>The classifier's arithmetic and tokens (Filtering/Bayes.cs), with exact figures.</summary>
public sealed class BayesTests
{
    [Fact]
    public void Chi_square_tail_matches_known_values()
    {
        // Q(x, 2) = e^(-x/2); Q(x, 4) = e^(-x/2)(1 + x/2).
        Assert.Equal(Math.Exp(-1), Bayes.ChiSquareQ(2, 2), 12);
        Assert.Equal(Math.Exp(-3) * 4, Bayes.ChiSquareQ(6, 4), 12);
        Assert.Equal(1.0, Bayes.ChiSquareQ(0, 10));
    }

    [Fact]
    public void Tokens_are_distinct_words_of_subject_and_text_with_link_hosts()
    {
        var message = Encoding.UTF8.GetBytes(
            "From: Shop <a@Shop.Example>\r\nSubject: Big SALE sale\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n" +
            "<p>Visit <a href=\"https://deals.example/x\">our shop</a> &amp; save at &eacute;t&eacute;</p>\r\n");
        var tokens = Bayes.Tokenize(message).ToHashSet();
        string[] expected = ["s:big", "s:sale", "from:shop.example", "url:deals.example", "visit", "our", "shop", "save", "été"];
        Assert.Equal(expected.Select(Bayes.Hash).ToHashSet(), tokens);
    }

    [Fact]
    public void A_message_sharing_only_common_words_with_trained_spam_stays_unsure()
    {
        long[] spamWords = [.. Enumerable.Range(0, 40).Select(i => Bayes.Hash("spam" + i))];
        long[] common = [Bayes.Hash("the"), Bayes.Hash("please")];
        var counts = new BayesCounts(20, 0, spamWords.Concat(common).ToDictionary(t => t, _ => (20L, 0L)));
        // A new spam: most of its words were seen in all 20 spam messages.
        Assert.True(Bayes.Probability([.. spamWords.Take(30), .. Enumerable.Range(0, 10).Select(i => Bayes.Hash("new" + i))], counts) > 0.99);
        // A ham with 2 of 50 words in common with the spam: near 0.5, not spam.
        var ham = Bayes.Probability([.. common, .. Enumerable.Range(0, 48).Select(i => Bayes.Hash("ham" + i))], counts);
        Assert.InRange(ham, 0.4, 0.6);
        // With ham trained, the ham's own words speak for it.
        var trained = new BayesCounts(20, 20, spamWords.Concat(common).ToDictionary(t => t, _ => (20L, 0L))
            .Concat(Enumerable.Range(0, 48).Select(i => KeyValuePair.Create(Bayes.Hash("ham" + i), (0L, 20L)))).ToDictionary());
        Assert.True(Bayes.Probability([.. common, .. Enumerable.Range(0, 48).Select(i => Bayes.Hash("ham" + i))], trained) < 0.01);
        Assert.Equal(0.5, Bayes.Probability([], counts));
    }
}
