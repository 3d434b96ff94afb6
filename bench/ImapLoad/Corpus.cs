// Deterministic message corpus for the search figure: message i is the same bytes on every
// run and for every server. Bodies are a few dozen words drawn from a made-up dictionary
// of lower-case syllable words that never contain j, k, q, w, x, y or z; the search word
// ("jukebox") goes into every 100th message, so it cannot match anything else by substring.
using System.Globalization;
using System.Text;

namespace ImapLoad;

internal static class Corpus
{
    public const string SearchWord = "jukebox";
    private const string Consonants = "bcdfghlmnprstv";
    private const string Vowels = "aeiou";
    private static readonly string[] Dictionary = BuildDictionary(4000);

    private static string[] BuildDictionary(int count)
    {
        var rng = new Random(20261125);
        var words = new string[count];
        var sb = new StringBuilder();
        for (var i = 0; i < count; i++)
        {
            sb.Clear();
            var syllables = rng.Next(1, 4);
            for (var s = 0; s < syllables; s++)
            {
                sb.Append(Consonants[rng.Next(Consonants.Length)]).Append(Vowels[rng.Next(Vowels.Length)]);
                if (rng.Next(3) == 0)
                {
                    sb.Append(Consonants[rng.Next(Consonants.Length)]);
                }
            }
            words[i] = sb.ToString();
        }
        return words;
    }

    /// <summary>Whether message <paramref name="i"/> (0-based) contains <see cref="SearchWord"/>.</summary>
    public static bool IsHit(int i) => i % 100 == 42;

    public static int Hits(int messages) => Enumerable.Range(0, messages).Count(IsHit);

    /// <summary>Message <paramref name="i"/> as CRLF text, about 0.5-1 kB.</summary>
    public static byte[] Message(int i, string to)
    {
        var rng = new Random(i * 7919 + 17);
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder(1024);
        var sender = Dictionary[rng.Next(Dictionary.Length)];
        sb.Append("From: ").Append(Capital(sender)).Append(" <").Append(sender).Append("@load.test>\r\n");
        sb.Append("To: <").Append(to).Append(">\r\n");
        sb.Append("Subject:");
        for (var w = rng.Next(3, 7); w > 0; w--)
        {
            sb.Append(' ').Append(Dictionary[rng.Next(Dictionary.Length)]);
        }
        sb.Append("\r\n");
        sb.Append("Date: ").Append(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero).AddMinutes(i)
            .ToString("ddd, dd MMM yyyy HH:mm:ss +0000", inv)).Append("\r\n");
        sb.Append("Message-ID: <corpus.").Append(i.ToString(inv)).Append("@load.test>\r\n");
        sb.Append("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n");
        var words = rng.Next(40, 120);
        var hitAt = IsHit(i) ? rng.Next(words) : -1;
        var lineLength = 0;
        for (var w = 0; w < words; w++)
        {
            var word = w == hitAt ? SearchWord : Dictionary[rng.Next(Dictionary.Length)];
            if (lineLength + word.Length + 1 > 72)
            {
                sb.Append("\r\n");
                lineLength = 0;
            }
            else if (lineLength > 0)
            {
                sb.Append(' ');
                lineLength++;
            }
            sb.Append(word);
            lineLength += word.Length;
        }
        sb.Append("\r\n");
        return Encoding.ASCII.GetBytes(sb.ToString());
    }

    private static string Capital(string s) => char.ToUpperInvariant(s[0]) + s[1..];
}
