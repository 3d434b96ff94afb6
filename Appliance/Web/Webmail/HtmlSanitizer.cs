using System.Text;
using MimeKit.Text;

namespace Appliance.Web.Webmail;

// Implementation notes
// - Allowlist only: an element, attribute, URL scheme, CSS property or CSS function that is not
//   named below is removed. Nothing is passed through because it "looks harmless".
// - MimeKit's HtmlTokenizer does the lexing (entities decoded in text and attribute values,
//   raw-text states for script/style/textarea/noscript/…). We never copy input markup: every
//   kept tag is re-serialised from its name and checked attributes, every text run is
//   re-escaped, attribute values are always double-quoted and escaped. Broken markup in the
//   input therefore cannot re-form tags in the output.
// - Elements in DropWithContent lose their whole subtree: we skip tokens until the matching
//   end tag (counting nested tags of the same name). When in doubt this drops too much, never
//   too little.
// - <style> blocks are dropped, not sanitised; only style="" attributes are kept (filtered).
// - The output is well-formed: kept elements live on a stack, stray end tags are dropped,
//   everything still open at the end is closed. Past MaxDepth, start tags are flattened.
// - Work is bounded: input beyond MaxInputChars is cut before parsing.

/// <summary>What the caller allows when sanitising one message body.</summary>
public sealed class SanitizeOptions
{
    /// <summary>Keep http(s) images as src; otherwise they move to data-remote-src.</summary>
    public bool AllowRemoteImages { get; init; }

    /// <summary>Maps a Content-ID (the part after "cid:", percent-decoded) to the URL the webmail
    /// serves that attachment from, or null when the message has no such part.</summary>
    public Func<string, string?>? ResolveCid { get; init; }
}

/// <summary>The sanitised HTML; <paramref name="HadRemoteImages"/> tells the UI to offer
/// "show remote images"; <paramref name="Removed"/> counts what was taken out.</summary>
public sealed record SanitizedHtml(string Html, bool HadRemoteImages, int Removed);

public static class HtmlSanitizer
{
    public const int MaxInputChars = 2 * 1024 * 1024;
    public const int MaxDepth = 200;

    private static readonly HashSet<string> AllowedElements = new(StringComparer.Ordinal)
    {
        "a", "abbr", "b", "blockquote", "br", "caption", "center", "code", "col", "colgroup",
        "dd", "del", "div", "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr",
        "i", "img", "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "small", "span", "strike",
        "strong", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul",
    };

    private static readonly HashSet<string> VoidElements = new(StringComparer.Ordinal)
    {
        "area", "base", "br", "col", "embed", "hr", "img", "input", "keygen", "link", "meta",
        "param", "source", "track", "wbr", "frame", "basefont", "bgsound", "image", "isindex",
    };

    // Removed together with everything inside them.
    private static readonly HashSet<string> DropWithContent = new(StringComparer.Ordinal)
    {
        "script", "style", "title", "iframe", "frame", "frameset", "object", "applet", "svg",
        "math", "template", "noscript", "noembed", "noframes", "xmp", "plaintext", "textarea",
        "select", "button", "form", "audio", "video", "canvas", "dialog",
    };

    // Structure of a whole document: the tag goes, its content stays, and it is not counted.
    private static readonly HashSet<string> DocumentElements = new(StringComparer.Ordinal)
    {
        "html", "head", "body",
    };

    private static readonly HashSet<string> GlobalAttributes = new(StringComparer.Ordinal)
    {
        "dir", "lang", "title", "align", "style",
    };

    private static readonly Dictionary<string, HashSet<string>> ElementAttributes = BuildElementAttributes();

    private static Dictionary<string, HashSet<string>> BuildElementAttributes()
    {
        string[] cell = ["colspan", "rowspan", "valign", "width", "height", "bgcolor", "nowrap"];
        string[] section = ["valign", "bgcolor", "height"];
        string[] column = ["span", "width", "valign"];
        return new Dictionary<string, HashSet<string>>(StringComparer.Ordinal)
        {
            ["a"] = ["href"],
            ["img"] = ["src", "alt", "width", "height", "border"],
            ["table"] = ["width", "height", "bgcolor", "border", "cellpadding", "cellspacing", "valign"],
            ["td"] = [.. cell],
            ["th"] = [.. cell],
            ["tr"] = [.. section],
            ["tbody"] = [.. section],
            ["thead"] = [.. section],
            ["tfoot"] = [.. section],
            ["col"] = [.. column],
            ["colgroup"] = [.. column],
            ["font"] = ["color", "face", "size"],
            ["hr"] = ["width", "size", "noshade", "color"],
            ["ol"] = ["start", "type"],
            ["ul"] = ["type"],
        };
    }

    public static SanitizedHtml Sanitize(string html, SanitizeOptions options)
    {
        ArgumentNullException.ThrowIfNull(html);
        ArgumentNullException.ThrowIfNull(options);

        int removed = 0;
        if (html.Length > MaxInputChars)
        {
            int cut = MaxInputChars;
            if (char.IsHighSurrogate(html[cut - 1]))
            {
                cut--;
            }
            html = html[..cut];
            removed++;
        }
        // Browsers turn NUL into U+FFFD too; doing it first means no check below ever sees a NUL.
        html = html.Replace('\0', '\uFFFD');

        var run = new Run(options);
        var tokenizer = new HtmlTokenizer(new StringReader(html));
        while (tokenizer.ReadNextToken(out var token))
        {
            run.Accept(token);
        }
        run.CloseAll();
        return new SanitizedHtml(run.Output.ToString(), run.HadRemoteImages, removed + run.Removed);
    }

    private sealed class Run(SanitizeOptions options)
    {
        public readonly StringBuilder Output = new();
        public bool HadRemoteImages;
        public int Removed;

        private readonly List<string> _open = [];
        private readonly Dictionary<string, int> _flattened = new(StringComparer.Ordinal);
        private string? _skipName;
        private int _skipNesting;

        public void Accept(HtmlToken token)
        {
            if (_skipName is not null)
            {
                if (token is HtmlTagToken skipped && Name(skipped) == _skipName)
                {
                    _skipNesting += skipped.IsEndTag ? -1 : 1;
                    if (_skipNesting == 0)
                    {
                        _skipName = null;
                    }
                }
                return;
            }

            switch (token)
            {
                case HtmlTagToken tag:
                    if (tag.IsEndTag)
                    {
                        End(Name(tag));
                    }
                    else
                    {
                        Start(tag);
                    }
                    break;
                case HtmlDataToken data when token.Kind == HtmlTokenKind.Data:
                    AppendText(Output, data.Data);
                    break;
                case HtmlDocTypeToken:
                    break;
                default:
                    // Comments (conditional ones included), CDATA, stray script data.
                    Removed++;
                    break;
            }
        }

        private static string Name(HtmlTagToken tag) => tag.Name.ToLowerInvariant();

        private void Start(HtmlTagToken tag)
        {
            string name = Name(tag);
            if (DropWithContent.Contains(name))
            {
                // A self-closing slash does not end these in a browser either.
                _skipName = name;
                _skipNesting = 1;
                Removed++;
                return;
            }
            if (DocumentElements.Contains(name))
            {
                return;
            }
            if (!AllowedElements.Contains(name))
            {
                Removed++;
                return;
            }

            bool isVoid = VoidElements.Contains(name);
            if (!isVoid && _open.Count >= MaxDepth)
            {
                _flattened[name] = _flattened.GetValueOrDefault(name) + 1;
                Removed++;
                return;
            }

            ImplicitlyClose(name);

            var attributes = new List<KeyValuePair<string, string>>();
            CheckAttributes(name, tag, attributes);
            if (name == "img" && !attributes.Exists(a => a.Key is "src" or "data-remote-src"))
            {
                // An image without a usable source shows nothing but a broken frame.
                Removed++;
                return;
            }
            if (name == "a" && attributes.Exists(a => a.Key == "href"))
            {
                attributes.Add(new("target", "_blank"));
                attributes.Add(new("rel", "noopener noreferrer nofollow"));
            }

            Output.Append('<').Append(name);
            foreach (var (key, value) in attributes)
            {
                Output.Append(' ').Append(key).Append("=\"");
                AppendText(Output, value, attribute: true);
                Output.Append('"');
            }
            Output.Append('>');

            if (!isVoid)
            {
                _open.Add(name);
            }
        }

        // The few end-tag omissions mail relies on (HTML §13.1.2.4): a new <li> ends the previous
        // one, and so on. Without this, "<li>a<li>b" would nest.
        private void ImplicitlyClose(string name)
        {
            if (_open.Count == 0)
            {
                return;
            }
            string top = _open[^1];
            bool close = name switch
            {
                "li" => top == "li",
                "p" => top == "p",
                "dt" or "dd" => top is "dt" or "dd",
                "td" or "th" => top is "td" or "th",
                "tr" => top is "tr" or "td" or "th",
                _ => false,
            };
            if (!close)
            {
                return;
            }
            if (name == "tr" && top is "td" or "th")
            {
                CloseTop();
                if (_open.Count == 0 || _open[^1] != "tr")
                {
                    return;
                }
            }
            CloseTop();
        }

        private void End(string name)
        {
            if (_flattened.TryGetValue(name, out int flat) && flat > 0)
            {
                _flattened[name] = flat - 1;
                return;
            }
            int at = _open.LastIndexOf(name);
            if (at < 0)
            {
                // Stray end tag, or the end of an element we dropped.
                return;
            }
            while (_open.Count > at)
            {
                CloseTop();
            }
        }

        private void CloseTop()
        {
            Output.Append("</").Append(_open[^1]).Append('>');
            _open.RemoveAt(_open.Count - 1);
        }

        public void CloseAll()
        {
            while (_open.Count > 0)
            {
                CloseTop();
            }
        }

        private void CheckAttributes(string element, HtmlTagToken tag, List<KeyValuePair<string, string>> kept)
        {
            ElementAttributes.TryGetValue(element, out var specific);
            var seen = new HashSet<string>(StringComparer.Ordinal);
            foreach (var attribute in tag.Attributes)
            {
                string name = attribute.Name.ToLowerInvariant();
                // A browser keeps the first of duplicated attributes.
                if (!seen.Add(name))
                {
                    Removed++;
                    continue;
                }
                if (!GlobalAttributes.Contains(name) && (specific is null || !specific.Contains(name)))
                {
                    Removed++;
                    continue;
                }
                string value = attribute.Value ?? "";
                string? clean = (element, name) switch
                {
                    ("a", "href") => CleanLink(value),
                    ("img", "src") => CleanImage(value, kept),
                    (_, "style") => Css.Clean(value, ref Removed),
                    _ => value,
                };
                if (clean is null)
                {
                    Removed++;
                    continue;
                }
                if (clean.Length > 0 || name is "nowrap" or "noshade" || (element, name) is ("img", "alt"))
                {
                    kept.Add(new(name, clean));
                }
            }
        }

        private static string? CleanLink(string value)
        {
            string url = NormalizeUrl(value);
            return Scheme(url) is "http" or "https" or "mailto" ? url : null;
        }

        private string? CleanImage(string value, List<KeyValuePair<string, string>> kept)
        {
            string url = NormalizeUrl(value);
            switch (Scheme(url))
            {
                case "cid":
                    string contentId = Uri.UnescapeDataString(url[4..]);
                    return contentId.Length == 0 ? null : options.ResolveCid?.Invoke(contentId);
                case "http":
                case "https":
                    if (options.AllowRemoteImages)
                    {
                        return url;
                    }
                    HadRemoteImages = true;
                    kept.Add(new("data-remote-src", url));
                    // Not counted as removed: the UI can bring it back.
                    return "";
                case "data":
                    return IsAllowedDataImage(url) ? url : null;
                default:
                    return null;
            }
        }
    }

    // What a browser does to an attribute URL before parsing it (URL Standard §4.4): strip
    // leading and trailing C0 controls and spaces, remove every tab and newline.
    internal static string NormalizeUrl(string value)
    {
        var sb = new StringBuilder(value.Length);
        foreach (char c in value.AsSpan().Trim("\u0000\u0001\u0002\u0003\u0004\u0005\u0006\u0007\b\t\n\u000b\f\r\u000e\u000f\u0010\u0011\u0012\u0013\u0014\u0015\u0016\u0017\u0018\u0019\u001a\u001b\u001c\u001d\u001e\u001f "))
        {
            if (c is not ('\t' or '\n' or '\r'))
            {
                sb.Append(c);
            }
        }
        return sb.ToString();
    }

    // The lowercased scheme, or null for anything that is not "ALPHA *(ALPHA / DIGIT / + - .) :"
    // at the very start (relative URLs included: they would point into the webmail itself).
    internal static string? Scheme(string url)
    {
        int colon = url.IndexOf(':', StringComparison.Ordinal);
        if (colon <= 0 || !char.IsAsciiLetter(url[0]))
        {
            return null;
        }
        for (int i = 1; i < colon; i++)
        {
            char c = url[i];
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('+' or '-' or '.'))
            {
                return null;
            }
        }
        return url[..colon].ToLowerInvariant();
    }

    private static bool IsAllowedDataImage(string url)
    {
        ReadOnlySpan<string> prefixes =
        [
            "data:image/png;base64,", "data:image/gif;base64,",
            "data:image/jpeg;base64,", "data:image/webp;base64,",
        ];
        foreach (string prefix in prefixes)
        {
            if (url.StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
            {
                foreach (char c in url.AsSpan(prefix.Length))
                {
                    if (!char.IsAsciiLetterOrDigit(c) && c is not ('+' or '/' or '=' or ' '))
                    {
                        return false;
                    }
                }
                return true;
            }
        }
        return false;
    }

    internal static void AppendText(StringBuilder sb, string text, bool attribute = false)
    {
        foreach (char c in text)
        {
            switch (c)
            {
                case '&': sb.Append("&amp;"); break;
                case '<': sb.Append("&lt;"); break;
                case '>': sb.Append("&gt;"); break;
                case '"' when attribute: sb.Append("&quot;"); break;
                default: sb.Append(c); break;
            }
        }
    }

    // style="" attributes: declarations are split on ';', each kept only when its property is
    // allowed and its value passes. Values with a backslash are refused rather than unescaped,
    // and the only functions allowed are colour and length arithmetic, so url(), image-set(),
    // expression() and whatever CSS adds next cannot fetch or run anything.
    private static class Css
    {
        private static readonly HashSet<string> Properties = new(StringComparer.Ordinal)
        {
            "color", "background", "background-color", "line-height", "letter-spacing",
            "word-spacing", "width", "height", "max-width", "min-width", "max-height", "min-height",
            "vertical-align", "display", "white-space", "list-style-type", "direction",
            "table-layout", "word-break", "word-wrap", "overflow-wrap", "float", "clear",
        };

        private static readonly string[] PropertyPrefixes = ["font-", "text-", "margin", "padding", "border"];

        private static readonly HashSet<string> Functions = new(StringComparer.Ordinal)
        {
            "rgb", "rgba", "hsl", "hsla", "calc",
        };

        private static readonly HashSet<string> DisplayValues = new(StringComparer.Ordinal)
        {
            "block", "inline", "inline-block", "table", "table-row", "table-cell", "list-item", "none",
        };

        private static readonly string[] Forbidden =
        [
            "url(", "expression", "javascript:", "vbscript:", "@import", "\\", "behavior", "-moz-binding",
            "position", "/*", "*/", "<", ">", "{", "}", "@",
        ];

        /// <summary>The allowed declarations, or null if none is left; counts each dropped one.</summary>
        public static string? Clean(string style, ref int removed)
        {
            var sb = new StringBuilder();
            foreach (string declaration in style.Split(';'))
            {
                int colon = declaration.IndexOf(':', StringComparison.Ordinal);
                if (colon <= 0)
                {
                    removed += declaration.Trim().Length > 0 ? 1 : 0;
                    continue;
                }
                string property = declaration[..colon].Trim().ToLowerInvariant();
                string value = declaration[(colon + 1)..].Trim();
                if (value.Length == 0 || !IsAllowedProperty(property) || !IsAllowedValue(property, value))
                {
                    removed++;
                    continue;
                }
                if (sb.Length > 0)
                {
                    sb.Append("; ");
                }
                sb.Append(property).Append(": ").Append(value);
            }
            // Belt and braces: nothing forbidden may appear across declarations either.
            string result = sb.ToString();
            if (HasForbidden(result))
            {
                return null;
            }
            return result.Length == 0 ? null : result;
        }

        private static bool IsAllowedProperty(string property)
        {
            if (Properties.Contains(property))
            {
                return true;
            }
            if (property.StartsWith("border-image", StringComparison.Ordinal))
            {
                return false;
            }
            foreach (string prefix in PropertyPrefixes)
            {
                if (property.StartsWith(prefix, StringComparison.Ordinal))
                {
                    return true;
                }
            }
            return false;
        }

        private static bool IsAllowedValue(string property, string value)
        {
            if (HasForbidden(value))
            {
                return false;
            }
            foreach (char c in value)
            {
                if (char.IsControl(c))
                {
                    return false;
                }
            }
            if (property == "display")
            {
                string display = value.Replace("!important", "", StringComparison.OrdinalIgnoreCase).Trim().ToLowerInvariant();
                return DisplayValues.Contains(display);
            }
            // Every "name(" must be an allowed function.
            for (int open = value.IndexOf('(', StringComparison.Ordinal); open >= 0; open = value.IndexOf('(', open + 1))
            {
                int start = open;
                while (start > 0 && (char.IsAsciiLetterOrDigit(value[start - 1]) || value[start - 1] == '-'))
                {
                    start--;
                }
                if (!Functions.Contains(value[start..open].ToLowerInvariant()))
                {
                    return false;
                }
            }
            return true;
        }

        private static bool HasForbidden(string value)
        {
            // Whitespace removed so "ex pression" or "url (" are caught too.
            var compact = new StringBuilder(value.Length);
            foreach (char c in value)
            {
                if (!char.IsWhiteSpace(c))
                {
                    compact.Append(char.ToLowerInvariant(c));
                }
            }
            string text = compact.ToString();
            foreach (string bad in Forbidden)
            {
                if (text.Contains(bad, StringComparison.Ordinal))
                {
                    return true;
                }
            }
            return false;
        }
    }
}
