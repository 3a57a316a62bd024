"""The MIME builder: the one place a campaign message is put together (the body is never stored per row).

A message is multipart/alternative: a text part (body_text, or derived from the
HTML) and the HTML part with its CSS inlined. A text-only campaign
(Campaign.is_text_only) is one text/plain part: no HTML, no pixel, its URLs as written.
Headers: From (the SMTP account's name and address), Reply-To, To, Subject, Date,
Message-ID (in the From address's domain, stored on the Email row before sending,
so a retry reuses it), List-Unsubscribe (HTTPS, and a mailto that is read), List-Unsubscribe-Post
(RFC 8058 one-click), List-Id (RFC 2919), Feedback-ID (Gmail's feedback loop),
then the account's and the campaign's own headers (sending.headers).

Both parts get a footer with the unsubscribe link and the owner's organization
and postal address, unless the body already places {{ unsubscribe_url }} itself.
With tracking on, http(s) links of the HTML become signed click URLs (Link rows,
once per campaign and URL) and a 1x1 pixel carries a signed open token, placed
before the footer.
"""

import binascii
import functools
import re
import secrets
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.policy import EmailPolicy
from email.utils import format_datetime, formataddr, make_msgid
from html import escape, unescape
from typing import Any, Protocol, TypedDict
from urllib.parse import urlsplit

from django.conf import settings
from django.urls import get_script_prefix, get_urlconf, reverse
from django.utils import timezone

from accounts.models import User
from campaigns import html_hygiene, personalize
from campaigns.models import Campaign
from sending import esp, verp
from sending import headers as custom_headers
from sending.addresses import sender_domain, transport_address
from sending.models import SmtpAccount
from tracking import services as tracking_services
from tracking import tokens

TEST_PREFIX = "[TEST] "
_HREF = re.compile(r'(<a\b[^>]*?\shref=")([^"]*)(")', re.IGNORECASE)
_BODY_END = re.compile(r"</body\s*>", re.IGNORECASE)
_LINE_BREAKS = re.compile(r"[\r\n]+")


def new_message_id(account: SmtpAccount | None = None) -> str:
    """A Message-ID in the account's From domain (MESSAGE_ID_DOMAIN without an account)."""
    domain = sender_domain(account.from_email) if account else settings.MESSAGE_ID_DOMAIN or "localhost"
    return make_msgid(domain=domain)


@dataclass
class Rendered:
    """One recipient's message, untracked. `content_html` is the HTML body with its CSS inlined and
    `footer_html` what goes after it: tracking is added to the content alone, so the open pixel
    lands before the footer (within what a client that clips a long message still loads).
    Both are empty for a text-only campaign."""

    subject: str
    text: str
    content_html: str = ""
    footer_html: str = ""

    @property
    def html(self) -> str:
        """The HTML part as a reader sees it ("" for a text-only campaign)."""
        return with_footer(self.content_html, self.footer_html)


def with_footer(content_html: str, footer_html: str) -> str:
    return _before_body_end(content_html, footer_html) if content_html and footer_html else content_html


# --- URLs -------------------------------------------------------------------------------------


def absolute(path: str) -> str:
    site: str = settings.SITE_URL
    return site + path


def tracking_site(account: SmtpAccount | None) -> str:
    """Where the tracking URLs of an account's messages start: SITE_URL, its host replaced by the
    account's tracking domain once a check verified it (sending.tracking_domains), keeping SITE_URL's
    scheme and port (http in development). Reads the account's own columns, which the batch's campaign
    load brought: no query per message."""
    if account is None or not (account.tracking_domain and account.tracking_domain_verified_at):
        return str(settings.SITE_URL)
    return _site_on(settings.SITE_URL, account.tracking_domain)


@functools.lru_cache(maxsize=1024)
def _site_on(site_url: str, domain: str) -> str:
    parts = urlsplit(site_url)
    return f"{parts.scheme}://{domain}" + (f":{parts.port}" if parts.port else "")


_URL_SAFE_TOKEN = re.compile(r"[A-Za-z0-9._-]+")


def tracking_url(name: str, token: str, *, site: str | None = None) -> str:
    """The absolute URL of a tracking view for `token`, as reverse() would write it, on `site` (the
    account's tracking_site; SITE_URL when None).

    Made for every message (and every link of it): reverse() resolves the pattern each time,
    so the URL around a placeholder is worked out once per view, script prefix and site.
    A signed token (base64 and digits) needs no quoting; anything else goes through reverse().
    """
    site = site or settings.SITE_URL
    if not _URL_SAFE_TOKEN.fullmatch(token):
        return site + reverse(name, args=[token])
    before, after = _url_around_token(name, get_script_prefix(), get_urlconf(), site)
    return before + token + after


@functools.lru_cache(maxsize=1024)  # a few views on each account's tracking domain
def _url_around_token(name: str, script_prefix: str, urlconf: str | None, site_url: str) -> tuple[str, str]:
    placeholder = "0TOKEN0"
    url = site_url + reverse(name, args=[placeholder], urlconf=urlconf)
    before, _, after = url.partition(placeholder)
    return before, after


def unsubscribe_url(email_id: int, token: str | None = None, *, site: str | None = None) -> str:
    return tracking_url("tracking:unsubscribe", token or tokens.unsubscribe_token(email_id), site=site)


def preview_unsubscribe_url() -> str:
    """Where the unsubscribe link of a preview or test points: a page that changes nothing."""
    return tracking_url("tracking:unsubscribe", "preview")


def unsubscribe_mailto_address(account: SmtpAccount) -> str:
    """Where the List-Unsubscribe mailto goes: the account's bounce address, whose mailbox the bounce
    reader reads (bounces.parsing knows the subject), else UNSUBSCRIBE_MAILTO, an address the operator
    routes; "" when neither is set, and the header carries the HTTPS one-click URL alone rather than an
    address nobody reads."""
    return account.bounce_address or settings.UNSUBSCRIBE_MAILTO


def unsubscribe_mailto(email_id: int, *, account: SmtpAccount, token: str | None = None) -> str:
    """The mailto: URL of an email's List-Unsubscribe ("" without an address); its subject carries the
    unsubscribe token."""
    address = unsubscribe_mailto_address(account)
    if not address:
        return ""
    token = token or tokens.unsubscribe_token(email_id)
    return f"mailto:{address}?subject=unsubscribe%20{token}"


def list_unsubscribe(email_id: int, *, account: SmtpAccount, token: str, site: str | None = None) -> str:
    """The List-Unsubscribe header's value: the HTTPS one-click URL (RFC 8058), then the mailto if any."""
    mailto = unsubscribe_mailto(email_id, account=account, token=token)
    https = f"<{unsubscribe_url(email_id, token, site=site)}>"
    return f"{https}, <{mailto}>" if mailto else https


def open_pixel_url(email_id: int, *, site: str | None = None) -> str:
    return tracking_url("tracking:open", tokens.open_token(email_id), site=site)


def click_url(email_id: int, link_id: int, *, site: str | None = None) -> str:
    return tracking_url("tracking:click", tokens.click_token(email_id, link_id), site=site)


# --- rendering --------------------------------------------------------------------------------


def variables_for(
    *, name: str, email: str, attributes: dict[str, Any], unsubscribe: str
) -> dict[str, str | int | float]:
    return personalize.recipient_variables(
        name=_one_line(name), email=email, attributes=attributes, unsubscribe_url=unsubscribe
    )


def render(*, campaign: Campaign, variables: dict[str, str | int | float], subject_prefix: str = "") -> Rendered:
    """Subject, HTML (CSS inlined, and its footer) and text of a campaign for one recipient, untracked."""
    subject = personalize.render(
        campaign.subject,
        variables,
        html=False,
        max_chars=settings.RENDERED_SUBJECT_MAX_CHARS,
        label="subject",
    )
    subject = subject_prefix + _one_line(subject).strip()
    url = str(variables[personalize.UNSUBSCRIBE_VARIABLE])  # a string: recipient_variables writes it last
    owner = campaign.owner
    content_html = footer = ""
    if not campaign.is_text_only:
        content_html = html_hygiene.inline_css(
            personalize.render(campaign.body_html, variables, html=True, label="HTML body")
        )
        if not personalize.places_unsubscribe_link(campaign.body_html):
            footer = footer_html(owner=owner, campaign=campaign, url=url)
    if (campaign.body_text or "").strip():
        text = personalize.render(campaign.body_text, variables, html=False, label="text body").strip()
        places_link = personalize.places_unsubscribe_link(campaign.body_text)
    else:
        # The HTML body's text, derived once per body rather than from every message's HTML.
        text = html_hygiene.tidy_text(
            personalize.render(text_template_of(campaign.body_html), variables, html=False, label="text body")
        )
        places_link = personalize.places_unsubscribe_link(campaign.body_html)
    if not places_link:
        text += "\n\n" + footer_text(owner=owner, campaign=campaign, url=url)
    return Rendered(subject=subject, text=text, content_html=content_html, footer_html=footer)


@functools.lru_cache(maxsize=64)
def text_template_of(body_html: str) -> str:
    """The text part's template of an HTML body: its variables and tags kept, to be rendered."""
    return html_hygiene.to_text(body_html)


def footer_html(*, owner: User, campaign: Campaign, url: str) -> str:
    organization = escape(tracking_services.organization_of(campaign))
    address = "<br>".join(escape(line.strip()) for line in owner.footer_postal_address.splitlines() if line.strip())
    return (
        '<div style="margin:32px 0 0;padding:16px 0 0;border-top:1px solid #dddddd;font-family:Arial,Helvetica,'
        'sans-serif;font-size:12px;line-height:18px;color:#777777">'
        f'<p style="margin:0 0 8px">You receive this email from {organization}.'
        + (f"<br>{address}" if address else "")
        + "</p>"
        f'<p style="margin:0"><a href="{escape(url)}" style="color:#777777">Unsubscribe</a></p>'
        "</div>"
    )


def footer_text(*, owner: User, campaign: Campaign, url: str) -> str:
    organization = tracking_services.organization_of(campaign)
    address = ", ".join(line.strip() for line in owner.footer_postal_address.splitlines() if line.strip())
    lines = ["--", f"You receive this email from {organization}."]
    if address:
        lines.append(address)
    lines.append(f"Unsubscribe: {url}")
    return "\n".join(lines)


def _before_body_end(html: str, fragment: str) -> str:
    ends = list(_BODY_END.finditer(html))
    if ends:
        at = ends[-1].start()
        return html[:at] + fragment + html[at:]
    return html + fragment


def _one_line(value: str | None) -> str:
    return _LINE_BREAKS.sub(" ", value or "")


# --- tracking ---------------------------------------------------------------------------------

# {(campaign id, created_at): {url: link id}}: a batch looks its links up once, not per message.
_LINK_CACHE: OrderedDict[tuple[int, datetime], dict[str, int]] = OrderedDict()
_LINK_CACHE_SIZE = 64


def _link_ids(campaign: Campaign, urls: list[str]) -> dict[str, int]:
    key = (campaign.pk, campaign.created_at)
    known = _LINK_CACHE.get(key)
    if known is None:
        known = _LINK_CACHE[key] = {}
        while len(_LINK_CACHE) > _LINK_CACHE_SIZE:
            _LINK_CACHE.popitem(last=False)
    _LINK_CACHE.move_to_end(key)
    missing = set(urls) - known.keys()
    if missing:
        known.update(tracking_services.store_links(campaign_id=campaign.pk, urls=missing))
    return known


def trackable_links(html: str, *, keep: set[str], site: str | None = None) -> list[str]:
    """The http(s) hrefs of `html` that tracking rewrites, in order: not mailto:, tel:, anchors, `keep`
    (the unsubscribe link) nor our own tracking URLs (on SITE_URL or `site`)."""
    urls = (unescape(match.group(2)).strip() for match in _HREF.finditer(html))
    return [url for url in urls if _trackable(url, keep, site)]


# A URL in plain text: up to white space or what usually encloses one; trailing punctuation is the sentence's.
_TEXT_URL = re.compile(r"""https?://[^\s<>"'`]+""", re.IGNORECASE)
_TEXT_URL_TAIL = ".,;:!?)]}"


def links_in_text(text: str, *, keep: set[str]) -> list[str]:
    """The http(s) URLs of a text part, in order, leaving out what trackable_links leaves out."""
    urls = (match.group(0).rstrip(_TEXT_URL_TAIL) for match in _TEXT_URL.finditer(text))
    return [url for url in urls if _trackable(url, keep)]


def track_links(html: str, *, campaign: Campaign, email_id: int, keep: set[str], site: str | None = None) -> str:
    """Every http(s) href becomes a signed click URL on `site`; mailto:, anchors, tracking URLs and
    `keep` (unsubscribe) stay as they are."""
    wanted = trackable_links(html, keep=keep, site=site)
    if not wanted:
        return html
    ids = _link_ids(campaign, wanted)

    def replace(match: re.Match[str]) -> str:
        url = unescape(match.group(2)).strip()
        if not _trackable(url, keep, site) or url not in ids:
            return match.group(0)
        return match.group(1) + escape(click_url(email_id, ids[url], site=site)) + match.group(3)

    return _HREF.sub(replace, html)


def _trackable(url: str, keep: set[str], site: str | None = None) -> bool:
    if not url.lower().startswith(("http://", "https://")) or url in keep:
        return False
    return not url.startswith((settings.SITE_URL + "/t/", (site or settings.SITE_URL) + "/t/"))


def as_if_tracked(html: str, *, campaign: Campaign, keep: set[str]) -> str:
    """The HTML as tracking would make it for a sample email, with no Link row written: its length
    is what a recipient's message has (within a few digits of the ids)."""
    if campaign.track_clicks:
        sample_click = escape(click_url(0, 0))
        html = _HREF.sub(
            lambda m: (
                m.group(1) + sample_click + m.group(3) if _trackable(unescape(m.group(2)).strip(), keep) else m.group(0)
            ),
            html,
        )
    return add_open_pixel(html, email_id=0) if campaign.track_opens else html


def add_open_pixel(html: str, *, email_id: int, site: str | None = None) -> str:
    pixel = (
        f'<img src="{escape(open_pixel_url(email_id, site=site))}" width="1" height="1" alt="" '
        'style="display:block;width:1px;height:1px;border:0;margin:0;padding:0">'
    )
    return _before_body_end(html, pixel)


# --- the campaign's headers -------------------------------------------------------------------


def campaign_header_lines(*, campaign: Campaign, account: SmtpAccount) -> tuple[str, ...]:
    """List-Id, Feedback-ID, then the account's and the campaign's own headers: whole header lines,
    the same for every recipient of the campaign."""
    first = campaign.first_list
    return _campaign_header_lines(
        campaign_id=campaign.pk,
        owner_id=campaign.owner_id,
        account_id=account.pk,
        domain=sender_domain(account.from_email),
        first_list=(first.pk, first.name) if first else None,
        organization=tracking_services.organization_of(campaign),
        account_headers=account.custom_headers,
        campaign_headers=campaign.custom_headers,
    )


@functools.lru_cache(maxsize=256)
def _campaign_header_lines(
    *,
    campaign_id: int,
    owner_id: int,
    account_id: int,
    domain: str,
    first_list: tuple[int, str] | None,
    organization: str,
    account_headers: str,
    campaign_headers: str,
) -> tuple[str, ...]:
    list_pk, list_name = first_list or (None, organization)
    return (
        _phrase_and_id("List-Id", list_name, list_id(owner_id=owner_id, list_pk=list_pk, domain=domain)),
        f"Feedback-ID: {feedback_id(campaign_id=campaign_id, account_id=account_id, owner_id=owner_id)}",
        *(
            _encoded_header(name, value)
            for name, value in custom_headers.merged(account_headers=account_headers, campaign_headers=campaign_headers)
        ),
    )


def list_id(*, owner_id: int, list_pk: int | None, domain: str) -> str:
    """The List-Id (RFC 2919) of a campaign's audience: one per contact list, the same for every
    campaign to it, so providers see one list where the marketer has one; a campaign to segments
    alone gets its owner's. The owner's id keeps marketers sending from one domain apart."""
    label = f"list-{list_pk}" if list_pk is not None else "contacts"
    return f"{label}.{owner_id}.{domain}"


_FEEDBACK_SENDER_ID = re.compile(r"[^A-Za-z0-9._-]+")


def feedback_id(*, campaign_id: int, account_id: int, owner_id: int) -> str:
    """Gmail's Feedback-ID, a:b:c:SenderId: its feedback loop reports spam complaints per value."""
    sender = _FEEDBACK_SENDER_ID.sub("", settings.FEEDBACK_ID_SENDER) or "campaigns"
    return f"{campaign_id}:{account_id}:{owner_id}:{sender}"


def _phrase_and_id(name: str, phrase: str, identifier: str) -> str:
    """`Name: phrase <identifier>`, the phrase quoted or RFC 2047-encoded, folded before the identifier
    when the line would pass 78 columns."""
    phrase = _one_line(phrase).strip()
    if not phrase:
        return f"{name}: <{identifier}>"
    if phrase.isascii():
        return _folded_at_spaces(f"{name}: " + formataddr((phrase, "a@a")).removesuffix("a@a>") + f"{identifier}>")
    head = f"{name}: " + Header(phrase, "utf-8", header_name=name).encode(linesep="\r\n")
    last_line = head.rpartition("\r\n")[2]
    fold = " " if len(last_line) + len(identifier) + 3 <= 78 else "\r\n "
    return f"{head}{fold}<{identifier}>"


def _folded_at_spaces(line: str) -> str:
    """An ASCII header line folded before a space wherever it would pass 78 columns (a quoted
    string may be folded too: unfolding gives back the same value)."""
    lines = [""]
    for word in line.split(" "):
        if lines[-1] and len(lines[-1]) + 1 + len(word) > 78:
            lines.append(" " + word)
        else:
            lines[-1] = f"{lines[-1]} {word}" if lines[-1] else word
    return "\r\n".join(lines)


# --- messages ---------------------------------------------------------------------------------


class Recipient(Protocol):
    """What build reads of one recipient: an Email, or the sender's lighter BatchRow."""

    @property
    def pk(self) -> int: ...
    @property
    def to_email(self) -> str: ...
    @property
    def to_name(self) -> str: ...
    @property
    def message_id(self) -> str: ...
    @property
    def contact_attributes(self) -> dict[str, Any]: ...


def build(*, email: Recipient, campaign: Campaign, account: SmtpAccount) -> tuple[str, bytes]:
    """Return (envelope_from, raw_bytes) of one campaign Email, ready for SMTP; the envelope sender is
    the account's VERP address for this Email when it has a bounce address (sending.verp).

    `email` is an Email or the sender's lighter BatchRow: pk, to_email, to_name, message_id
    and contact_attributes are what is read. Every tracking URL is on the account's verified tracking
    domain when it has one (tracking_site)."""
    site = tracking_site(account)
    token = tokens.unsubscribe_token(email.pk)  # signed once for the link and the mailto
    unsubscribe = unsubscribe_url(email.pk, token, site=site)
    variables = variables_for(
        name=email.to_name,
        email=email.to_email,
        attributes=email.contact_attributes,
        unsubscribe=unsubscribe,
    )
    rendered = render(campaign=campaign, variables=variables)
    html = rendered.content_html
    if html and campaign.track_clicks:
        html = track_links(html, campaign=campaign, email_id=email.pk, keep={unsubscribe}, site=site)
    if html and campaign.track_opens:
        html = add_open_pixel(html, email_id=email.pk, site=site)
    raw = _mime(
        account=account,
        to_name=email.to_name,
        to_email=transport_address(email.to_email),
        subject=rendered.subject,
        text=rendered.text,
        html=with_footer(html, rendered.footer_html),
        message_id=email.message_id or new_message_id(account),
        list_unsubscribe=list_unsubscribe(email.pk, account=account, token=token, site=site),
        campaign_headers=campaign_header_lines(campaign=campaign, account=account),
    )
    if account.esp:
        # The ESP echoes this header's Email id in its webhook events (bounces.esp reads it back).
        raw = esp.metadata_headers(account.esp, email.pk) + raw
    return envelope_sender(account=account, email_id=email.pk), raw


def envelope_sender(*, account: SmtpAccount, email_id: int) -> str:
    """MAIL FROM of a campaign message: its VERP address (sending.verp) when the account has a bounce
    address, else the from address. An account without one runs no VERP code."""
    if account.bounce_address:
        return transport_address(verp.address(bounce_address=account.bounce_address, email_id=email_id))
    return transport_address(account.from_email)


def build_test(
    *, campaign: Campaign, account: SmtpAccount, to_email: str, name: str, email: str, attributes: dict[str, Any]
) -> tuple[str, bytes]:
    """A test to `to_email`, rendered as for the recipient (name, email, attributes) it shows.

    Subject marked [TEST], nothing tracked, an unsubscribe link that changes nothing; the
    campaign's headers (List-Id, Feedback-ID, its own) as its recipients get them.
    """
    unsubscribe = preview_unsubscribe_url()
    variables = variables_for(name=name, email=email, attributes=attributes, unsubscribe=unsubscribe)
    rendered = render(campaign=campaign, variables=variables, subject_prefix=TEST_PREFIX)
    raw = _mime(
        account=account,
        to_name="",
        to_email=transport_address(to_email),
        subject=rendered.subject,
        text=rendered.text,
        html=rendered.html,
        message_id=new_message_id(account),
        list_unsubscribe=f"<{unsubscribe}>",
        campaign_headers=campaign_header_lines(campaign=campaign, account=account),
    )
    return transport_address(account.from_email), raw


def preview(*, campaign: Campaign, name: str, email: str, attributes: dict[str, Any]) -> Rendered:
    """What a recipient would see, untracked; the unsubscribe link points at a page that changes nothing."""
    variables = variables_for(name=name, email=email, attributes=attributes, unsubscribe=preview_unsubscribe_url())
    return render(campaign=campaign, variables=variables)


class _MessagePolicy(EmailPolicy):
    """RFC 5322 output with CRLF; List-Unsubscribe and Message-ID folded only between their entries.

    The standard folder turns an ASCII token longer than a line (a long unsubscribe URL)
    into an RFC 2047 encoded word, which no mail provider would recognise as a URL.
    """

    _VERBATIM = ("list-unsubscribe", "message-id")

    def fold(self, name: str, value: str) -> str:
        if name.lower() in self._VERBATIM:
            return self._verbatim(name, value)
        folded: str = super().fold(name, value)  # (typeshed leaves EmailPolicy.fold's return unannotated)
        return folded

    def fold_binary(self, name: str, value: str) -> bytes:
        if name.lower() in self._VERBATIM:
            return self._verbatim(name, value).encode("ascii")
        return super().fold_binary(name, value)

    def _verbatim(self, name: str, value: str) -> str:
        entries = [entry.strip() for entry in str(value).split(",")]
        return f"{name}: " + ("," + self.linesep + " ").join(entries) + self.linesep


_POLICY = _MessagePolicy(linesep="\r\n")


def _mime(
    *,
    account: SmtpAccount,
    to_name: str,
    to_email: str,
    subject: str,
    text: str,
    html: str,
    message_id: str,
    list_unsubscribe: str,
    campaign_headers: tuple[str, ...],
) -> bytes:
    """The message as bytes: multipart/alternative, text then HTML, both quoted-printable; without
    HTML, one text/plain part. `campaign_headers` are whole header lines (campaign_header_lines).

    Assembled directly: the email package's EmailMessage would cost most of the sender's time
    (measured in BENCHMARKS.md, Costs behind the code). An internationalised address (a non-ASCII
    local part) is written in UTF-8 in From or To (RFC 6532), which only a server offering SMTPUTF8
    accepts; every other header and both parts stay ASCII (RFC 2047 words, quoted-printable).
    """
    from_address = transport_address(account.from_email)
    headers = [
        f"From: {_encoded_address(account.from_name, from_address)}",
        f"To: {_encoded_address(to_name, to_email)}",
    ]
    if account.reply_to:
        headers.append(f"Reply-To: {_one_line(account.reply_to)}")
    headers += [
        _encoded_header("Subject", _one_line(subject)),
        f"Date: {_date_now()}",
        f"Message-ID: {_one_line(message_id)}",
        _POLICY._verbatim("List-Unsubscribe", _one_line(list_unsubscribe)).rstrip("\r\n"),
        "List-Unsubscribe-Post: List-Unsubscribe=One-Click",
        *campaign_headers,
        "MIME-Version: 1.0",
    ]
    if html:
        boundary = f"=_{secrets.token_hex(16)}"
        headers.append(f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"')  # 82 columns unfolded
        body = [_part(boundary, "plain", text), _part(boundary, "html", html), f"--{boundary}--", ""]
    else:
        headers += _content_headers("plain")
        body = [_quoted_printable(text)]
    message = "\r\n".join([*headers, "", *body])
    return message.encode("ascii") if (from_address + to_email).isascii() else message.encode("utf-8")


class _DateHeader(TypedDict):
    second: datetime | None
    header: str


_DATE: _DateHeader = {"second": None, "header": ""}


def _date_now() -> str:
    """The Date header for now: formatted once a second, not once a message."""
    now = timezone.now().replace(microsecond=0)
    if _DATE["second"] != now:
        _DATE.update({"second": now, "header": format_datetime(now)})
    return _DATE["header"]


def _encoded_address(name: str, address: str) -> str:
    name = _one_line(name).strip()
    if not name:
        return address
    if name.isascii():
        # formataddr quotes a name with specials like , or " (and refuses a non-ASCII address,
        # hence the stand-in).
        return formataddr((name, "a@a")).removesuffix("<a@a>") + f"<{address}>"
    return Header(name, "utf-8", header_name="From").encode(linesep="\r\n") + f" <{address}>"


def _encoded_header(name: str, value: str) -> str:
    """An RFC 2047 header (plain when ASCII), folded at 78 columns with CRLF."""
    if value.isascii() and len(name) + 2 + len(value) <= 78:
        return f"{name}: {value}"  # nothing to encode or fold (the usual subject)
    charset = "us-ascii" if value.isascii() else "utf-8"
    return f"{name}: " + Header(value, charset, header_name=name).encode(linesep="\r\n")


def _part(boundary: str, subtype: str, content: str) -> str:
    return "\r\n".join([f"--{boundary}", *_content_headers(subtype), "", _quoted_printable(content)])


def _content_headers(subtype: str) -> list[str]:
    return [f'Content-Type: text/{subtype}; charset="utf-8"', "Content-Transfer-Encoding: quoted-printable"]


def _quoted_printable(content: str) -> str:
    """The content, quoted-printable with CRLF line ends, ending with a line end."""
    lines = content.replace("\r\n", "\n").replace("\r", "\n")
    if not lines.endswith("\n"):
        lines += "\n"
    return binascii.b2a_qp(lines.encode("utf-8")).decode("ascii").replace("\n", "\r\n")
