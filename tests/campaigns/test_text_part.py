"""The text part derived from a campaign's HTML (campaigns.html_hygiene.to_text).

A scanner reads what the CSS inliner serializes; anything it is not sure of goes to HTMLParser
with the same rules. Both must give the same text for every input.
"""

import random

import pytest

from campaigns import html_hygiene

NEWSLETTER = """<html><head><title>Ignored</title><style>p.lead { color: #c00; } @media (max-width: 600px) { td { display: block } }</style></head>
<body><h1>Diwali offers</h1><p class="lead">Hello Asha &amp; family,&nbsp;here is <b>our</b> news.</p>
<p>Read <a href="https://shop.example.com/new?utm=mail&amp;x=1">the news</a>, see https://shop.example.com/ or
<a href="https://shop.example.com/">https://shop.example.com/</a>; write to <a href="mailto:team@example.com">team@example.com</a>
or <a href="mailto:team@example.com">the team</a>, jump <a href="#top">up</a>.</p>
<ul><li>One</li><li>Two &lt;3</li></ul><table><tr><td>Left</td><td><img src="https://img.example/x.png" alt="Logo &quot;X&quot;"></td></tr></table>
<blockquote>Quoted<br>line two</blockquote><!-- a comment --><script>if (a < b) { steal() }</script><p>Bye</p></body></html>"""

EXPECTED = """Diwali offers

Hello Asha & family, here is our news.

Read the news (https://shop.example.com/new?utm=mail&x=1), see https://shop.example.com/ or https://shop.example.com/; write to team@example.com or the team (team@example.com), jump up.

- One
- Two <3

Left Logo "X"

Quoted
line two

Bye"""


def test_the_text_part_keeps_paragraphs_lists_links_and_alt_texts_and_drops_head_style_and_script():
    assert html_hygiene.to_text(html_hygiene.inline_css(NEWSLETTER)) == EXPECTED
    assert html_hygiene._scan(html_hygiene.inline_css(NEWSLETTER)) == EXPECTED  # read by the scanner, not the fallback


PIECES = [
    "<p>", "</p>", '<a href="https://x.example/a?b=1&amp;c=2">', "<a href='mailto:x@y.example'>", "</a>", "<br>", "<br/>",
    "<li>", "<ul>", "</ul>", "<td>", "<th>", "<table>", "</table>", "<style>p{color:red}</style>", "<head>", "</head>",
    "<title>T</title>", '<img alt="A &amp; B" src=x>', "<img alt='q'>", "<!-- c -->", "<!DOCTYPE html>", "&amp;", "&nbsp;",
    "&lt;", " ", "\n", "\t", "text", "Zoë", "<div>", "</div>", "<h1>", "</h1>", "<blockquote>", "<script>if(a<b){}</script>",
    "< not a tag", "<3", '<a href="https://x.example/">https://x.example/</a>', '<A HREF="HTTP://UP.example">',
    '<span class="x > y">', "</span>", "<a>", "<hr/>", "<pre>", "</pre>", "&#169;", "&copy", "<p/>", "<b>", "</b>",
    "<img alt>", "<a href>", "</head >", "<a href=x.html>", "<a href=https://bare.example/x/>", "<STYLE>b{}</STYLE>",
    "<br / >", '<img alt="x > y">', "<img ALT=&quot;>", "&#x41;", '<a href="https://a.example" href="https://b.example">',
    "<img alt=one alt=two>", '<span title=\'a"b\'>', "<div\nclass=\"y\">", '"quoted"', "'single'", "=",
]


@pytest.mark.parametrize("seed", range(4))
def test_the_scanner_and_htmlparser_give_the_same_text_for_any_markup(seed):
    rng = random.Random(seed)
    scanned = 0
    for _ in range(1500):
        raw = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 30)))
        serialized = html_hygiene.inline_css(raw)
        for html in (raw, serialized):
            assert html_hygiene.to_text(html) == html_hygiene._parse(html), html
        try:
            html_hygiene._scan(serialized)
            scanned += 1
        except html_hygiene._Unusual:
            pass
    # What the inliner writes is what the scanner reads: it hardly ever falls back.
    assert scanned >= 1450
