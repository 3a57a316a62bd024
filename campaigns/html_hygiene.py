"""HTML hygiene for email bodies: sanitising what is saved, inlining CSS and deriving the text part."""

import re
from functools import cache
from html import unescape
from html.parser import HTMLParser

import css_inline
import nh3

# What email layouts use: tables, presentational attributes, inline styles, <style> blocks (for CSS inlining).
# Not <figure>: the editor wraps tables in one, whose default margins mail clients keep; it is unwrapped.
ALLOWED_TAGS = {
    "a", "abbr", "address", "b", "big", "blockquote", "br", "caption", "center", "cite", "code", "col",
    "colgroup", "dd", "del", "div", "dl", "dt", "em", "font", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "mark", "ol", "p", "pre", "q", "s", "small", "span",
    "strike", "strong", "style", "sub", "sup", "table", "tbody", "td", "tfoot", "th", "thead", "tr", "tt", "u",
    "ul",
}
GENERIC_ATTRIBUTES = {
    "align", "bgcolor", "border", "class", "dir", "height", "id", "lang", "role", "style", "title", "valign",
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


def inline_css(html):
    """The HTML as a whole document with <style> rules moved into style attributes."""
    if not html.strip():
        return html
    return _inliner().inline(html)


# --- text part ------------------------------------------------------------------------------

_BLOCKS = {
    "p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "table", "tr", "ul", "ol", "blockquote", "pre", "hr",
    "address", "center", "dl", "dt", "dd", "figure", "figcaption", "section", "article", "header", "footer",
}
_SKIP = {"style", "script", "head", "title"}


_PARAGRAPHS = {"p", "h1", "h2", "h3", "table", "blockquote"}  # blocks set off by a blank line


class _Text:
    """The text part's rules, fed tag by tag (by the scanner below, or by HTMLParser)."""

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
            if href.lower().startswith(("http://", "https://", "mailto:")):
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
        # (One pass over the whole text: the spaces pattern never spans a line end.)
        lines = [line.strip() for line in _LINE_SPACES.sub(" ", "".join(self.out)).split("\n")]
        return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


_SPACES = re.compile(r"\s+")
_LINE_SPACES = re.compile(r"[ \t\u00a0]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def to_text(html):
    """Plain text of an HTML body: no markup, links kept as 'label (url)', paragraphs kept.

    Made for every message whose campaign has no text body of its own, so the HTML is read by
    a scanner (~20 us) rather than HTMLParser (~45 us). The scanner reads what css_inline's
    serializer writes, which is always in front of this; markup it is not sure of (a "<" it
    cannot read as a tag, quotes where no attribute value is) goes to HTMLParser, with the same
    rules, so the text is the same either way.
    """
    html = html or ""
    try:
        return _scan(html)
    except _Unusual:
        return _parse(html)


class _Unusual(Exception):
    pass


_MARKUP = re.compile(
    r"<(?:!--.*?-->|![^>]*>|\?[^>]*>|(/?)([a-zA-Z][^\s/>]*)((?:[^>\"']++|\"[^\"]*\"|'[^']*')*+)>)", re.S
)
_MARKUP_START = re.compile(r"<[a-zA-Z/!?]")
# Inside a start tag as a serializer writes it: unquoted names, values quoted or bare.
_WELL_FORMED_ATTRIBUTES = re.compile(r"""(?:\s+[^\s"'>/=]+(?:\s*=\s*(?:"[^"]*"|'[^']*'|[^\s"'=<>`]+))?)*\s*/?""")
_ATTRIBUTE = re.compile(r"""([^\s/>][^\s/=>]*)(?:\s*=\s*("[^"]*"|'[^']*'|[^\s>]*))?""")


def _scan(html):
    text = _Text()
    position = 0
    while (match := _MARKUP.search(html, position)) is not None:
        if match.start() > position:
            _scan_data(text, html[position:match.start()])
        position = match.end()
        name = match.group(2)
        if name is None:
            continue  # a comment, declaration or processing instruction
        tag = name.lower()
        if match.group(1):
            text.end(tag)
            continue
        attributes = match.group(3)
        if not _WELL_FORMED_ATTRIBUTES.fullmatch(attributes):
            raise _Unusual
        text.start(tag, lambda wanted: _attribute(attributes, wanted))
        if tag in ("script", "style"):
            # Raw text up to the closing tag, as HTMLParser reads it: no markup inside.
            end = re.compile(rf"</{tag}(?=[\s/>])", re.I).search(html, position)
            position = end.start() if end else len(html)
    if position < len(html):
        _scan_data(text, html[position:])
    return text.result()


def _scan_data(text, data):
    if "<" in data and _MARKUP_START.search(data):
        raise _Unusual  # markup the pattern could not read (a serializer escapes every other "<")
    if not text.skip:
        text.data(unescape(data))


def _attribute(attributes, wanted):
    found = None  # the last one wins, as in HTMLParser's dict(attrs)
    for match in _ATTRIBUTE.finditer(attributes):
        if match.group(1).lower() == wanted:
            value = match.group(2)
            if value is not None and value[:1] in ("'", '"'):
                value = value[1:-1]
            found = None if value is None else unescape(value)
    return found


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


def _parse(html):
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    return parser.text.result()
