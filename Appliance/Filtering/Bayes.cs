using System.Globalization;
using System.Text;
using MimeKit;

namespace Appliance.Filtering;

// Implementation notes: a per-user Bayesian spam filter in the manner of SpamBayes and
// SpamAssassin's Bayes (Gary Robinson's token probabilities combined by Fisher's chi-square
// method). Each user trains it by moving mail into Junk (spam) and out of it (ham).
//
// - Tokens are the distinct words of the subject (prefixed "s:") and of the text parts (HTML
//   with its tags removed), the From domain and the host names of links; words are lower-cased
//   runs of letters, digits and ' - $ of 3 to 30 characters. Each is stored as a 64-bit FNV-1a
//   hash, so a user's table holds no readable words.
// - A token's spam probability p = (s/S) / (s/S + h/H) (s, h: spam and ham messages it was in;
//   S, H: spam and ham messages trained) is shrunk towards 0.5 by its evidence,
//   f = (0.5 + n·p) / (1 + n) with n = s + h (Robinson), and kept within [0.01, 0.99].
// - The message's 150 most telling tokens (furthest from 0.5) are combined with Fisher's method
//   into the indicator I = (1 + H − S) / 2 in [0, 1]. Tokens the user never trained count as
//   0.5 when a message has fewer telling ones: a message that shares only a few common words
//   with the spam stays near 0.5 instead of being called spam on their evidence alone. This is
//   what lets a user who trained only spam (H = 0, the usual start) still get a fair verdict.

/// <summary>The token counts a verdict needs: the user's totals and each token's (spam, ham) messages.</summary>
public sealed record BayesCounts(long SpamMessages, long HamMessages, IReadOnlyDictionary<long, (long Spam, long Ham)> Tokens);

public static class Bayes
{
    /// <summary>Tokens kept of one message (its first distinct ones).</summary>
    public const int MaxTokens = 1000;
    private const int Interesting = 150;
    private const int MinWord = 3, MaxWord = 30;

    /// <summary>The distinct token hashes of a message.</summary>
    public static long[] Tokenize(ReadOnlySpan<byte> message)
    {
        MimeMessage parsed;
        try
        {
            using var stream = new MemoryStream(message.ToArray(), writable: false);
            parsed = MimeMessage.Load(stream);
        }
        catch (FormatException)
        {
            return [.. Words(Encoding.UTF8.GetString(message), "").Distinct().Take(MaxTokens).Select(Hash)];
        }
        var tokens = new List<string>();
        tokens.AddRange(Words(parsed.Subject ?? "", "s:"));
        if (parsed.From.Mailboxes.FirstOrDefault() is { } from && from.Domain is { Length: > 0 } domain)
            tokens.Add("from:" + domain.ToLowerInvariant());
        foreach (var part in parsed.BodyParts.OfType<TextPart>().Take(10))
        {
            string text;
            try { text = part.Text ?? ""; }
            catch (Exception ex) when (ex is ArgumentException or NotSupportedException or FormatException) { continue; }
            if (text.Length > 256 * 1024) text = text[..(256 * 1024)];
            if (part.IsHtml)
            {
                tokens.AddRange(LinkHosts(text));
                text = StripTags(text);
            }
            else
            {
                tokens.AddRange(LinkHosts(text));
            }
            tokens.AddRange(Words(text, ""));
        }
        return [.. tokens.Distinct(StringComparer.Ordinal).Take(MaxTokens).Select(Hash)];
    }

    /// <summary>The spam indicator of a message (0 ham … 1 spam), given the user's counts of its tokens.</summary>
    public static double Probability(IReadOnlyCollection<long> tokens, BayesCounts counts)
    {
        var spam = Math.Max(counts.SpamMessages, 1);
        var ham = Math.Max(counts.HamMessages, 1);
        var probabilities = new List<double>(tokens.Count);
        foreach (var token in tokens)
        {
            if (!counts.Tokens.TryGetValue(token, out var c) || c.Spam + c.Ham == 0)
            {
                probabilities.Add(0.5);
                continue;
            }
            var ps = (double)c.Spam / spam;
            var ph = (double)c.Ham / ham;
            var p = ps / (ps + ph);
            var n = c.Spam + c.Ham;
            probabilities.Add(Math.Clamp((0.5 + n * p) / (1 + n), 0.01, 0.99));
        }
        if (probabilities.Count == 0) return 0.5;
        var chosen = probabilities.OrderByDescending(f => Math.Abs(f - 0.5)).Take(Interesting).ToList();
        double lnHam = 0, lnSpam = 0;
        foreach (var f in chosen)
        {
            lnHam += Math.Log(f);
            lnSpam += Math.Log(1 - f);
        }
        var h = ChiSquareQ(-2 * lnHam, 2 * chosen.Count);
        var s = ChiSquareQ(-2 * lnSpam, 2 * chosen.Count);
        return (1 + h - s) / 2;
    }

    /// <summary>P(χ² ≥ x) for an even number of degrees of freedom (the series of SpamBayes' chi2Q).</summary>
    internal static double ChiSquareQ(double x, int degrees)
    {
        var m = x / 2;
        var term = Math.Exp(-m);
        var sum = term;
        for (var i = 1; i < degrees / 2; i++)
        {
            term *= m / i;
            sum += term;
        }
        return Math.Min(sum, 1.0);
    }

    /// <summary>64-bit FNV-1a of the token's UTF-8 bytes.</summary>
    internal static long Hash(string token)
    {
        var hash = 14695981039346656037UL;
        foreach (var b in Encoding.UTF8.GetBytes(token))
        {
            hash ^= b;
            hash *= 1099511628211UL;
        }
        return unchecked((long)hash);
    }

    private static IEnumerable<string> Words(string text, string prefix)
    {
        var word = new StringBuilder();
        foreach (var ch in text.Append(' '))
        {
            if (char.IsLetterOrDigit(ch) || ch is '\'' or '-' or '$')
            {
                if (word.Length <= MaxWord) word.Append(char.ToLower(ch, CultureInfo.InvariantCulture));
                continue;
            }
            if (word.Length > 0)
            {
                var w = word.ToString().Trim('\'', '-');
                if (w.Length is >= MinWord and <= MaxWord) yield return prefix + w;
                word.Clear();
            }
        }
    }

    private static IEnumerable<string> LinkHosts(string text)
    {
        var at = 0;
        while ((at = text.IndexOf("://", at, StringComparison.Ordinal)) >= 0)
        {
            at += 3;
            var end = at;
            while (end < text.Length && (char.IsLetterOrDigit(text[end]) || text[end] is '.' or '-')) end++;
            if (end > at) yield return "url:" + text[at..end].ToLowerInvariant();
        }
    }

    private static string StripTags(string html)
    {
        var sb = new StringBuilder(html.Length);
        var inTag = false;
        foreach (var ch in html)
        {
            if (ch == '<') { inTag = true; sb.Append(' '); }
            else if (ch == '>') inTag = false;
            else if (!inTag) sb.Append(ch);
        }
        return System.Net.WebUtility.HtmlDecode(sb.ToString());
    }
}
