"""The text part derived from a campaign's HTML (campaigns.html_hygiene.to_text): derived once per
body, from the body as written, then rendered for each recipient (message.render)."""

from types import SimpleNamespace

from campaigns import html_hygiene, personalize
from delivery import message

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


def test_the_text_of_an_html_body_is_derived_once_and_rendered_for_each_recipient():
    body = (
        '<h1>Hello {{ name|default:"there" }}</h1>{% if City %}<p>News for {{ City }} &amp; around</p>{% endif %}'
        '<p><a href="https://shop.example/?c={{ City }}">Shop</a> or '
        '<a href="{{ unsubscribe_url }}">leave</a></p>'
    )
    campaign = SimpleNamespace(
        subject="S", body_html=body, body_text="", is_text_only=False, owner=SimpleNamespace(footer_postal_address="")
    )
    message.text_template_of.cache_clear()

    def text_for(name, attributes):
        variables = personalize.recipient_variables(
            name=name, email="a@example.org", attributes=attributes, unsubscribe_url="https://t.example/u/TOKEN/"
        )
        return message.render(campaign=campaign, variables=variables).text

    assert text_for("Asha", {"City": "Pune <3"}) == (
        "Hello Asha\n\nNews for Pune <3 & around\n\n"
        "Shop (https://shop.example/?c=Pune <3) or leave (https://t.example/u/TOKEN/)"
    )
    assert text_for("", {}) == "Hello there\n\nShop (https://shop.example/?c=) or leave (https://t.example/u/TOKEN/)"
    assert message.text_template_of.cache_info().misses == 1  # derived once for both recipients
