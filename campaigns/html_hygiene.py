"""HTML hygiene for email bodies: sanitising what is saved, inlining CSS and deriving the text part."""

import re
from functools import cache
from html.parser import HTMLParser

import css_inline
import nh3

# What email layouts use: tables, presentational attributes, inline styles, <style> blocks (for CSS inlining).
# Not <figure>: the editor wraps tables in one, whose default margins mail clients keep; it is unwrapped.
ALLOWED_TAGS = {
    "a",
    "abbr",
    "address",
    "b",
    "big",
    "blockquote",
    "br",
    "caption",
    "center",
    "cite",
    "code",
    "col",
    "colgroup",
    "dd",
    "del",
    "div",
    "dl",
    "dt",
    "em",
    "font",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "i",
    "img",
    "ins",
    "kbd",
    "li",
    "mark",
    "ol",
    "p",
    "pre",
    "q",
    "s",
    "small",
    "span",
    "strike",
    "strong",
    "style",
    "sub",
    "sup",
    "table",
    "tbody",
    "td",
    "tfoot",
    "th",
    "thead",
    "tr",
    "tt",
    "u",
    "ul",
}
GENERIC_ATTRIBUTES = {
    "align",
    "bgcolor",
    "border",
    "class",
    "dir",
    "height",
    "id",
    "lang",
    "role",
    "style",
    "title",
    "valign",
    "width",
}
TAG_ATTRIBUTES = {
    "a": {"href", "name", "target"},
    "img": {"src", "alt", "hspace", "vspace"},
    "table": {"cellpadding", "cellspacing", "background", "summary"},
    "td": {"colspan", "rowspan", "background", "nowrap"},
    "th": {"colspan", "rowspan", "scope", "nowrap"},
    "col": {"span"},
    "colgroup": {"span"},
    "font": {"color", "face", "size"},
    "ol": {"start", "type"},
    "ul": {"type"},
    "blockquote": {"cite"},
}
URL_SCHEMES = {"http", "https", "mailto", "tel"}


def sanitize(source):
    """Scripts, event handlers and javascript: URLs removed; layout tags and inline styles kept."""
    if not source:
        return ""
    attributes = {tag: set(names) | GENERIC_ATTRIBUTES for tag, names in TAG_ATTRIBUTES.items()}
    attributes["*"] = GENERIC_ATTRIBUTES
    return nh3.clean(
        source,
        tags=ALLOWED_TAGS,
        clean_content_tags={"script", "noscript", "iframe", "object", "embed", "template", "title"},
        attributes=attributes,
        url_schemes=URL_SCHEMES,
        link_rel=None,
        strip_comments=True,
    )


@cache
def _inliner():
    # Never fetch remote stylesheets: a body must not make the worker request arbitrary URLs.
    return css_inline.CSSInliner(load_remote_stylesheets=False, keep_at_rules=True, keep_link_tags=False)


def inline_css(html: str) -> str:
    """The HTML as a whole document with <style> rules moved into style attributes."""
    if not html.strip():
        return html
    return _inliner().inline(html)


# --- text part ------------------------------------------------------------------------------

_BLOCKS = {
    "p",
    "div",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "table",
    "tr",
    "ul",
    "ol",
    "blockquote",
    "pre",
    "hr",
    "address",
    "center",
    "dl",
    "dt",
    "dd",
    "figure",
    "figcaption",
    "section",
    "article",
    "header",
    "footer",
}
_SKIP = {"style", "script", "head", "title"}


_PARAGRAPHS = {"p", "h1", "h2", "h3", "table", "blockquote"}  # blocks set off by a blank line


class _Text:
    """The text part's rules, fed tag by tag by HTMLParser."""

    def __init__(self):
        self.out = []
        self.links = []  # stack of (href, start index in out)
        self.skip = 0

    def start(self, tag, attribute):
        """`attribute(name)` gives an attribute's value (unescaped) or None."""
        if tag in _SKIP:
            self.skip += 1
        elif tag == "br":
            self.out.append("\n")
        elif tag == "li":
            self.out.append("\n- ")
        elif tag in ("td", "th"):
            self.out.append(" ")
        elif tag in _BLOCKS:
            self.out.append("\n\n" if tag in _PARAGRAPHS else "\n")
        if tag == "a":
            self.links.append((attribute("href") or "", len(self.out)))
        elif tag == "img" and not self.skip:
            alt = attribute("alt") or ""
            if alt:
                self.out.append(alt)

    def end(self, tag):
        if tag in _SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag == "a" and self.links:
            href, start = self.links.pop()
            label = "".join(self.out[start:]).strip()
            if href.lower().startswith(("http://", "https://", "mailto:")) or href.startswith("{{"):
                shown = href[7:] if href.lower().startswith("mailto:") else href
                if not label or label == href or label == shown:
                    self.out[start:] = [shown]
                else:
                    self.out.append(f" ({shown})")
        elif tag in _BLOCKS:
            self.out.append("\n\n" if tag in _PARAGRAPHS else "\n")

    def data(self, data):
        """Text with character references already converted."""
        if not self.skip:
            self.out.append(_SPACES.sub(" ", data))

    def result(self):
        return tidy_text("".join(self.out))


_SPACES = re.compile(r"\s+")
_LINE_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def to_text(html: str) -> str:
    """Plain text of an HTML body: no markup, links kept as 'label (url)', paragraphs kept.

    The sender derives it once per campaign body and batch, from the body as written (a template:
    `{{ variable }}`s and tags pass through as text, `href="{{ unsubscribe_url }}"` is shown like a
    URL), then renders that text for each recipient; see message.render.
    """
    parser = _TextParser()
    parser.feed(html or "")
    parser.close()
    return parser.text.result()


def tidy_text(text: str) -> str:
    """Spaces, blank lines and line ends as the text part has them (after a template is rendered)."""
    lines = [line.strip() for line in _LINE_SPACES.sub(" ", text).split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


class _TextParser(HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.text = _Text()

    def handle_starttag(self, tag, attrs):
        self.text.start(tag, dict(attrs).get)

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)

    def handle_endtag(self, tag):
        self.text.end(tag)

    def handle_data(self, data):
        self.text.data(data)
