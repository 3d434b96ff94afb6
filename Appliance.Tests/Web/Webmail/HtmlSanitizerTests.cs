using System.Text;
using System.Text.RegularExpressions;
using Appliance.Web.Webmail;

namespace Appliance.Tests.Web.Webmail;

public sealed partial class HtmlSanitizerTests
{
    private static readonly SanitizeOptions Blocked = new();

    private static string Clean(string html) => HtmlSanitizer.Sanitize(html, Blocked).Html;

    // Simple cases: the whole output is pinned down.
    [Theory]
    [InlineData("<p>Hello <b>world</b></p>", "<p>Hello <b>world</b></p>")]
    [InlineData("<script>alert(1)</script><p>ok</p>", "<p>ok</p>")]
    [InlineData("<SCRIPT>alert(1)</SCRIPT>ok", "ok")]
    [InlineData("<ScRiPt src=\"//evil.example/x.js\"></sCrIpT>ok", "ok")]
    [InlineData("<script/>alert(1)</script>ok", "ok")]
    [InlineData("<script>document.write('</scr'+'ipt>')</script>ok", "ok")]
    [InlineData("<img src=x onerror=alert(1)>ok", "ok")]
    [InlineData("<img src=\"x\" onerror=\"alert(1)\">ok", "ok")]
    [InlineData("<IMG SRC=JaVaScRiPt:alert('XSS')>ok", "ok")]
    [InlineData("<body onload=\"alert(1)\">hi</body>", "hi")]
    [InlineData("<div onmouseover=\"alert(1)\" title=\"t\">x</div>", "<div title=\"t\">x</div>")]
    [InlineData("<a href=\"javascript:alert(1)\">x</a>", "<a>x</a>")]
    [InlineData("<a href=\"jav&#x09;ascript:alert(1)\">x</a>", "<a>x</a>")]
    [InlineData("<a href=\"JaVaScRiPt:alert(1)\">x</a>", "<a>x</a>")]
    [InlineData("<a href=\"&#106;avascript:alert(1)\">x</a>", "<a>x</a>")]
    [InlineData("<a href=\"&#x6A;&#x61;&#x76;&#x61;script&colon;alert(1)\">x</a>", "<a>x</a>")]
    [InlineData("<a href=\" javascript:alert(1)\">x</a>", "<a>x</a>")]
    [InlineData("<a href=\"\u0001javascript:alert(1)\">x</a>", "<a>x</a>")]
    [InlineData("<a href=\"java\nscript:alert(1)\">x</a>", "<a>x</a>")]
    [InlineData("<a href=\"java&#10;script:alert(1)\">x</a>", "<a>x</a>")]
    [InlineData("<a href=\"java\0script:alert(1)\">x</a>", "<a>x</a>")]
    [InlineData("<a href=\"vbscript:msgbox(1)\">x</a>", "<a>x</a>")]
    [InlineData("<a href=\"data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg==\">x</a>", "<a>x</a>")]
    [InlineData("<a href=\"/api/admin/delete\">x</a>", "<a>x</a>")]
    [InlineData("<a href=\"https://example.com/?a=1&amp;b=2\">x</a>",
        "<a href=\"https://example.com/?a=1&amp;b=2\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">x</a>")]
    [InlineData("<a href=\"mailto:bob@example.com\" onclick=\"alert(1)\" target=\"_self\">Bob</a>",
        "<a href=\"mailto:bob@example.com\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">Bob</a>")]
    [InlineData("<svg onload=\"alert(1)\"><circle r=\"1\"/></svg>ok", "ok")]
    [InlineData("<svg><script>alert(1)</script></svg>ok", "ok")]
    [InlineData("<math><mtext><script>alert(1)</script></mtext></math>ok", "ok")]
    [InlineData("<iframe srcdoc=\"<script>alert(1)</script>\"></iframe>ok", "ok")]
    [InlineData("<object data=\"javascript:alert(1)\"><param name=x></object>ok", "ok")]
    [InlineData("<embed src=\"javascript:alert(1)\">ok", "ok")]
    [InlineData("<form action=\"https://evil.example/\"><input name=pw><button formaction=\"javascript:alert(1)\">go</button></form>ok", "ok")]
    [InlineData("<button formaction=\"javascript:alert(1)\">Click</button>ok", "ok")]
    [InlineData("<meta http-equiv=\"refresh\" content=\"0;url=javascript:alert(1)\">ok", "ok")]
    [InlineData("<base href=\"https://evil.example/\">ok", "ok")]
    [InlineData("<link rel=\"stylesheet\" href=\"https://evil.example/x.css\">ok", "ok")]
    [InlineData("<div style=\"width: expression(alert(1))\">x</div>", "<div>x</div>")]
    [InlineData("<div style=\"background: url(javascript:alert(1))\">x</div>", "<div>x</div>")]
    [InlineData("<div style=\"behavior: url(x.htc); color: red\">x</div>", "<div style=\"color: red\">x</div>")]
    [InlineData("<div style=\"-moz-binding: url(https://evil.example/x.xml#xss)\">x</div>", "<div>x</div>")]
    [InlineData("<div style=\"position: fixed; top: 0; left: 0; width: 100%; color: red\">x</div>",
        "<div style=\"width: 100%; color: red\">x</div>")]
    [InlineData("<div style=\"color: re\\d; width: ex\\pression(1)\">x</div>", "<div>x</div>")]
    [InlineData("<div style=\"background: image-set('https://t.example/x.png' 1x)\">x</div>", "<div>x</div>")]
    [InlineData("<div style=\"color: red; /* */ background-color: blue\">x</div>", "<div style=\"color: red\">x</div>")]
    [InlineData("<p style=\"color: red; background-image: url(https://t.example/x.png)\">x</p>", "<p style=\"color: red\">x</p>")]
    [InlineData("<style>@import url(https://evil.example/x.css);</style>ok", "ok")]
    [InlineData("<style><img src=x onerror=alert(1)></style>ok", "ok")]
    [InlineData("<!--<script>alert(1)</script>-->ok", "ok")]
    [InlineData("<!--[if IE]><script>alert(1)</script><![endif]-->ok", "ok")]
    [InlineData("<![CDATA[<script>alert(1)</script>]]>ok", "ok")]
    [InlineData("<!DOCTYPE html><html><head><title>T</title></head><body>ok</body></html>", "ok")]
    [InlineData("<div><p>unclosed", "<div><p>unclosed</p></div>")]
    // End of input inside a tag: the tokenizer hands it back as text, which is escaped.
    [InlineData("<img src=x onerror=alert(1)//", "&lt;img src=x onerror=alert(1)//")]
    [InlineData("<<script>alert(1)//<</script>ok", "&lt;&lt;script&gt;alert(1)//&lt;&lt;/script&gt;ok")]
    [InlineData("<div title=unquoted class=x id=y name=z>t</div>", "<div title=\"unquoted\">t</div>")]
    [InlineData("&lt;script&gt;alert(1)&lt;/script&gt;", "&lt;script&gt;alert(1)&lt;/script&gt;")]
    [InlineData("<noscript><p title=\"</noscript><img src=x onerror=alert(1)>\">", "\"&gt;")]
    [InlineData("<textarea><script>alert(1)</script></textarea>ok", "ok")]
    [InlineData("<xmp><script>alert(1)</script></xmp>ok", "ok")]
    [InlineData("<plaintext><script>alert(1)</script>", "")]
    [InlineData("<template><script>alert(1)</script></template>ok", "ok")]
    [InlineData("<frameset onload=alert(1)><frame src=\"javascript:alert(1)\"></frameset>ok", "ok")]
    [InlineData("<video><source onerror=\"alert(1)\"></video><audio src=x onerror=alert(1)></audio>ok", "ok")]
    [InlineData("<details open ontoggle=alert(1)>ok</details>", "ok")]
    [InlineData("<marquee onstart=alert(1)>ok</marquee>", "ok")]
    [InlineData("<ul><li>a<li>b</ul>", "<ul><li>a</li><li>b</li></ul>")]
    [InlineData("</div></b>text", "text")]
    [InlineData("<b><i>x</b></i>", "<b><i>x</i></b>")]
    [InlineData("<table><tr><td>a<td>b<tr><td>c</table>", "<table><tr><td>a</td><td>b</td></tr><tr><td>c</td></tr></table>")]
    [InlineData("x < y && y > z", "x &lt; y &amp;&amp; y &gt; z")]
    [InlineData("<p title='a\"b'>t</p>", "<p title=\"a&quot;b\">t</p>")]
    [InlineData("<img src=\"data:image/png;base64,iVBORw0KGgo=\" alt=\"pixel\">", "<img src=\"data:image/png;base64,iVBORw0KGgo=\" alt=\"pixel\">")]
    [InlineData("<img src=\"data:image/svg+xml;base64,PHN2Zz4=\">ok", "ok")]
    [InlineData("<img src=\"data:image/png;base64,AAA\" onerror=alert(1)>", "<img src=\"data:image/png;base64,AAA\">")]
    [InlineData("<td background=\"https://t.example/x.png\" bgcolor=\"#fff\">c</td>", "<td bgcolor=\"#fff\">c</td>")]
    [InlineData("<font color=\"red\" face=\"Arial\" size=\"2\">f</font>", "<font color=\"red\" face=\"Arial\" size=\"2\">f</font>")]
    public void SanitizesToExactly(string input, string expected)
    {
        var result = HtmlSanitizer.Sanitize(input, Blocked);
        Assert.Equal(expected, result.Html);
        AssertOnlyAllowedMarkup(result.Html, remoteAllowed: false);
    }

    [Theory]
    [InlineData("<scr<script>ipt>alert(1)</script>", "ipt&gt;")]
    [InlineData("<scr\0ipt>alert(1)</scr\0ipt>ok", "ok")]
    [InlineData("<a href=\"https://ok.example/\"><img src=\"x\" onerror=\"alert(1)\">ok</a>", "ok</a>")]
    [InlineData("<div style=\"color:red\" style=\"background:url(javascript:alert(1))\">ok</div>", "ok")]
    [InlineData("<svg><foreignObject><iframe src=javascript:alert(1)></iframe></foreignObject></svg>ok", "ok")]
    [InlineData("<math><mi xlink:href=\"javascript:alert(1)\">x</mi></math>ok", "ok")]
    [InlineData("<isindex action=javascript:alert(1) type=image>ok", "ok")]
    [InlineData("<a href=\"https://ok.example/\" style=\"position:absolute;top:0;left:0;width:9999px;height:9999px\">ok</a>", "ok")]
    [InlineData("<p>a<!-- --><script>x</script>b</p>ok", "ok")]
    [InlineData("<img src=\"https://t.example/p.gif\" srcset=\"https://t.example/big.gif 2x\">ok", "ok")]
    public void HostileInputLeavesOnlySafeMarkup(string input, string survivor)
    {
        var result = HtmlSanitizer.Sanitize(input, Blocked);
        AssertOnlyAllowedMarkup(result.Html, remoteAllowed: false);
        Assert.Contains(survivor, result.Html, StringComparison.Ordinal);
        Assert.True(result.Removed > 0, result.Html);
    }

    [Fact]
    public void RemoteImagesAreParkedInDataRemoteSrcUnlessAllowed()
    {
        const string input = "<img src=\"https://tracker.example/p.gif\" width=\"1\">";

        var blocked = HtmlSanitizer.Sanitize(input, Blocked);
        Assert.Equal("<img data-remote-src=\"https://tracker.example/p.gif\" width=\"1\">", blocked.Html);
        Assert.True(blocked.HadRemoteImages);
        Assert.Equal(0, blocked.Removed);

        var allowed = HtmlSanitizer.Sanitize(input, new SanitizeOptions { AllowRemoteImages = true });
        Assert.Equal("<img src=\"https://tracker.example/p.gif\" width=\"1\">", allowed.Html);
        Assert.False(allowed.HadRemoteImages);
    }

    [Fact]
    public void CidImagesGoThroughTheResolverAndUnknownOnesAreDropped()
    {
        var options = new SanitizeOptions
        {
            ResolveCid = cid => cid == "logo@example.com" ? "/webmail/part/42/2" : null,
        };

        var result = HtmlSanitizer.Sanitize(
            "<img src=\"cid:logo%40example.com\" alt=\"Logo\"><img src=\"cid:missing@example.com\">", options);

        Assert.Equal("<img src=\"/webmail/part/42/2\" alt=\"Logo\">", result.Html);
        Assert.False(result.HadRemoteImages);
        Assert.Equal(2, result.Removed); // the unresolved src, then the image left without one
        Assert.Equal("", Clean("<img src=\"cid:logo@example.com\">"));
    }

    [Fact]
    public void NewsletterTableLayoutKeepsItsStructureAndColours()
    {
        const string input = """
            <!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN">
            <html><head><meta charset="utf-8"><style>.x{color:red}</style></head>
            <body style="margin:0" bgcolor="#eeeeee">
            <table width="600" cellpadding="0" cellspacing="0" border="0" align="center" bgcolor="#ffffff" class="wrapper">
            <tr><td style="font-family: Arial, sans-serif; font-size: 14px; color: #333333; padding: 10px 20px" valign="top">
            <h1 style="color:#0066cc;">Spring sale</h1>
            <p>Everything <strong>20% off</strong> until Friday.</p>
            <a href="https://shop.example/sale?utm=1" style="background-color:#0066cc;color:#fff;text-decoration:none;padding:8px 12px;border-radius:4px;display:inline-block">Shop now</a>
            </td></tr>
            </table>
            </body></html>
            """;

        string html = Clean(input);

        Assert.Contains("<table width=\"600\" cellpadding=\"0\" cellspacing=\"0\" border=\"0\" align=\"center\" bgcolor=\"#ffffff\">", html, StringComparison.Ordinal);
        Assert.Contains("<tr><td style=\"font-family: Arial, sans-serif; font-size: 14px; color: #333333; padding: 10px 20px\" valign=\"top\">", html, StringComparison.Ordinal);
        Assert.Contains("<h1 style=\"color: #0066cc\">Spring sale</h1>", html, StringComparison.Ordinal);
        Assert.Contains("<p>Everything <strong>20% off</strong> until Friday.</p>", html, StringComparison.Ordinal);
        Assert.Contains(
            "<a href=\"https://shop.example/sale?utm=1\" style=\"background-color: #0066cc; color: #fff; text-decoration: none; padding: 8px 12px; border-radius: 4px; display: inline-block\" target=\"_blank\" rel=\"noopener noreferrer nofollow\">Shop now</a>",
            html, StringComparison.Ordinal);
        Assert.EndsWith("</td></tr>\n</table>\n", html, StringComparison.Ordinal);
        Assert.DoesNotContain("color:red", html, StringComparison.Ordinal);
        AssertOnlyAllowedMarkup(html, remoteAllowed: false);
    }

    [Fact]
    public void OverlongInputIsCutAndReported()
    {
        var sb = new StringBuilder();
        while (sb.Length < 3 * 1024 * 1024)
        {
            sb.Append("<p>line of text</p>");
        }
        sb.Append("<p>THE END</p>");

        var result = HtmlSanitizer.Sanitize(sb.ToString(), Blocked);

        Assert.True(result.Removed > 0);
        Assert.DoesNotContain("THE END", result.Html, StringComparison.Ordinal);
        Assert.True(result.Html.Length <= HtmlSanitizer.MaxInputChars + 16);
        AssertOnlyAllowedMarkup(result.Html, remoteAllowed: false);
    }

    [Fact]
    public void DeepNestingIsFlattenedAndStillClosed()
    {
        string input = string.Concat(Enumerable.Repeat("<div>", 10_000)) + "deep" + string.Concat(Enumerable.Repeat("</div>", 10_000)) + "after";

        var result = HtmlSanitizer.Sanitize(input, Blocked);

        int opens = Regex.Count(result.Html, "<div>");
        Assert.Equal(HtmlSanitizer.MaxDepth, opens);
        Assert.Equal(opens, Regex.Count(result.Html, "</div>"));
        Assert.EndsWith("deep" + string.Concat(Enumerable.Repeat("</div>", HtmlSanitizer.MaxDepth)) + "after", result.Html, StringComparison.Ordinal);
        Assert.True(result.Removed > 0);
    }

    [Fact]
    public void UnclosedScriptSwallowsTheRestInsteadOfLeakingIt()
    {
        Assert.Equal("<p>before</p>", Clean("<p>before</p><script>alert(1)<p>after</p>"));
    }

    [Fact]
    public void NulBytesNeverReachTheOutput()
    {
        string html = Clean("<p>a\0b</p><img\0src=x onerror=alert(1)>");
        Assert.DoesNotContain('\0', html);
        Assert.StartsWith("<p>a\uFFFDb</p>", html, StringComparison.Ordinal);
        AssertOnlyAllowedMarkup(html, remoteAllowed: false);
    }

    // Every tag in the output is one we emit ourselves: an allowed element with allowed,
    // double-quoted attributes; links and images only with the schemes we allow.
    private static void AssertOnlyAllowedMarkup(string html, bool remoteAllowed)
    {
        Assert.DoesNotContain("<!", html, StringComparison.Ordinal);
        foreach (Match tag in TagPattern().Matches(html))
        {
            var wellFormed = WellFormedTagPattern().Match(tag.Value);
            Assert.True(wellFormed.Success, tag.Value);
            string name = wellFormed.Groups["name"].Value;
            Assert.Contains(name, AllowedElements);
            foreach (Match attribute in AttributePattern().Matches(tag.Value))
            {
                string key = attribute.Groups["key"].Value;
                string value = attribute.Groups["value"].Value;
                Assert.Contains(key, AllowedAttributes);
                Assert.False(key.StartsWith("on", StringComparison.Ordinal), tag.Value);
                if (key == "href")
                {
                    Assert.Matches("^(https?|mailto):", value);
                }
                if (key == "src")
                {
                    Assert.Matches(remoteAllowed ? "^(https?:|data:image/|/webmail/)" : "^(data:image/|/webmail/)", value);
                }
                if (key == "style")
                {
                    foreach (string bad in new[] { "url(", "expression", "javascript", "behavior", "binding", "position", "/*", "\\", "@import" })
                    {
                        Assert.DoesNotContain(bad, value, StringComparison.OrdinalIgnoreCase);
                    }
                }
            }
        }
    }

    private static readonly HashSet<string> AllowedElements =
    [
        "a", "abbr", "b", "blockquote", "br", "caption", "center", "code", "col", "colgroup", "dd", "del",
        "div", "dl", "dt", "em", "font", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "ins", "kbd",
        "li", "ol", "p", "pre", "q", "s", "small", "span", "strike", "strong", "sub", "sup", "table",
        "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u", "ul",
    ];

    private static readonly HashSet<string> AllowedAttributes =
    [
        "dir", "lang", "title", "align", "style", "href", "target", "rel", "src", "data-remote-src", "alt",
        "width", "height", "border", "bgcolor", "cellpadding", "cellspacing", "valign", "colspan", "rowspan",
        "nowrap", "span", "color", "face", "size", "noshade", "start", "type",
    ];

    [GeneratedRegex("<[^>]*>")]
    private static partial Regex TagPattern();

    [GeneratedRegex("^</?(?<name>[a-z0-9]+)( [a-z-]+=\"[^\"<>]*\")*>$")]
    private static partial Regex WellFormedTagPattern();

    [GeneratedRegex(" (?<key>[a-z-]+)=\"(?<value>[^\"]*)\"")]
    private static partial Regex AttributePattern();
}
