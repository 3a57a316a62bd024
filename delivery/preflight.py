"""The synchronous pre-flight checks of a campaign (campaigns.preflight.Check), and its honest ETA.

What a marketer should know before a campaign goes out, read from the message as it would be sent
(footer, tracked links and open pixel included) and from the SMTP account's engine state. The link
checks run in a worker and join these on the review page; campaigns.preflight holds the rule
(errors block, warnings need a tick) for all of them.
"""

import html
import re
from dataclasses import dataclass
from datetime import datetime

from django.utils import timezone

from campaigns import personalize
from campaigns.models import Campaign
from campaigns.preflight import ERROR, WARNING, Check
from campaigns.selectors import personalization
from campaigns.services import lifecycle
from delivery import message, previews
from sending import rates
from sending.models import SmtpAccount

# Gmail shows "[Message clipped]" and hides the rest (the footer with its unsubscribe link and
# postal address, and a pixel placed after it) once a message's HTML passes about 102 KB.
GMAIL_CLIP_BYTES = 102 * 1000
_IMG_TAG = re.compile(r"<img\b[^>]*>", re.IGNORECASE)
_ALT = re.compile(r"\balt\s*=", re.IGNORECASE)


def synchronous_checks(*, campaign: Campaign, recipients: int) -> list[Check]:
    """Every check that reads only the database and the message: errors first, then warnings."""
    checks = _setup_checks(campaign)
    try:
        rendered = previews.preview(campaign=campaign)
    except personalize.PersonalizationError as exc:
        checks.append(Check("render", ERROR, f"The message cannot be rendered: {'; '.join(exc.messages)}."))
        rendered = None
    if rendered is not None:
        checks += _footer_checks(campaign, rendered)
        checks += _html_checks(campaign, rendered)
    checks += _variable_checks(campaign)
    checks += _account_checks(campaign.smtp_account)
    if recipients == 0:
        checks.append(
            Check(
                "no-recipients",
                WARNING,
                "Nobody would receive it now: its lists and segments hold no subscribed contact.",
            )
        )
    return sorted(checks, key=lambda check: not check.is_error)


def _setup_checks(campaign: Campaign) -> list[Check]:
    return [
        Check(
            "postal-address" if problem == lifecycle.MISSING_POSTAL_ADDRESS else "setup",
            ERROR,
            problem[0].upper() + problem[1:] + ".",
        )
        for problem in lifecycle.problems_before_scheduling(campaign=campaign)
    ]


def _footer_checks(campaign: Campaign, rendered: message.Rendered) -> list[Check]:
    """The unsubscribe link and the postal address in every part a recipient may read."""
    parts = [("text part", rendered.text)] + ([("HTML part", rendered.html)] if rendered.html else [])
    unsubscribe = message.preview_unsubscribe_url()
    checks = []
    lacking = [name for name, content in parts if unsubscribe not in content]
    if lacking:
        checks.append(
            Check(
                "unsubscribe",
                ERROR,
                f"The {' and the '.join(lacking)} carry no unsubscribe link: your body places "
                "{{ unsubscribe_url }} itself, so no footer is added, but not in every part. Place it in both.",
            )
        )
    lines = [line.strip() for line in campaign.owner.footer_postal_address.splitlines() if line.strip()]
    without_address = [
        name for name, content in parts if lines and not all(line in _unescaped(content) for line in lines)
    ]
    if without_address:
        checks.append(
            Check(
                "postal-address-footer",
                ERROR,
                f"The {' and the '.join(without_address)} do not show your postal address: your body places "
                "{{ unsubscribe_url }} itself, so no footer is added. Write your postal address into the body.",
            )
        )
    return checks


def _unescaped(content: str) -> str:
    return html.unescape(content)


def _html_checks(campaign: Campaign, rendered: message.Rendered) -> list[Check]:
    if campaign.is_text_only:
        if campaign.track_opens or campaign.track_clicks:
            return [
                Check(
                    "text-only-tracking",
                    WARNING,
                    "Sent as plain text: no open pixel and no tracked links can be placed, so opens and clicks "
                    "will not be counted. Add an HTML body if you need them.",
                )
            ]
        return []
    checks = []
    size = html_bytes_as_sent(campaign=campaign, rendered=rendered)
    if size > GMAIL_CLIP_BYTES:
        checks.append(
            Check(
                "size",
                WARNING,
                f"The HTML part is {size / 1000:,.0f} KB as sent: Gmail clips a message past about "
                f"{GMAIL_CLIP_BYTES // 1000} KB, hiding the rest behind “View entire message”, your footer and "
                "its unsubscribe link included. Shorten it or link to a web version.",
            )
        )
    without_alt = sum(1 for tag in _IMG_TAG.findall(rendered.content_html) if not _ALT.search(tag))
    if without_alt:
        checks.append(
            Check(
                "image-alt",
                WARNING,
                f"{without_alt} image(s) have no alt text: readers who block images (most clients do by default) "
                "see nothing in their place, and spam filters notice. Describe each image in the editor.",
            )
        )
    short = previews.short_html_with_image(campaign=campaign)
    if short is not None:
        checks.append(Check("short-html", WARNING, previews.short_html_warning(campaign, short)))
    return checks


def html_bytes_as_sent(*, campaign: Campaign, rendered: message.Rendered) -> int:
    """The HTML part's size in UTF-8 as a recipient's message carries it: CSS inlined, links tracked,
    the open pixel and the footer in."""
    tracked = message.as_if_tracked(rendered.content_html, campaign=campaign, keep={message.preview_unsubscribe_url()})
    return len(message.with_footer(tracked, rendered.footer_html).encode())


def _variable_checks(campaign: Campaign) -> list[Check]:
    coverage = personalization.variable_coverage(campaign=campaign)
    checks = []
    if coverage.unknown:
        names = ", ".join("{{ %s }}" % name for name in coverage.unknown)
        checks.append(
            Check(
                "unknown-variables",
                WARNING,
                f"No recipient has {names}: it renders empty (or its fallback) for everyone. Check the spelling "
                "against your contact columns.",
            )
        )
    for gap in coverage.gaps:
        checks.append(
            Check(
                f"variable-{gap.name}",
                WARNING,
                f"{{{{ {gap.name} }}}} is empty for {gap.lacking:,} of {gap.recipients:,} recipients and has no "
                f'fallback: they get nothing in its place. Give it one, like {{{{ {gap.name}|default:"there" }}}}.',
            )
        )
    return checks


def _account_checks(account: SmtpAccount | None) -> list[Check]:
    if account is None:
        return []
    state = account.state
    checks = []
    if state.last_tested_at is None:
        checks.append(
            Check(
                "account-untested",
                WARNING,
                f"The SMTP account {account} was never tested: use “Test connection” on its page first.",
            )
        )
    elif state.last_test_result.startswith("Failed"):
        checks.append(
            Check("account-test-failed", WARNING, f"The last connection test failed: {state.last_test_result[8:]}")
        )
    if state.is_paused:
        checks.append(
            Check(
                "account-paused",
                WARNING,
                f"The SMTP account is paused until {_local(state.paused_until)}: "
                f"{state.pause_reason or 'no reason given'}. "
                "Its emails wait until then.",
            )
        )
    if state.is_unreachable:
        next_try = f"; next try at {_local(state.backoff_until)}" if state.backoff_until else ""
        checks.append(
            Check(
                "account-unreachable",
                WARNING,
                f"The SMTP account cannot reach its server since {_local(state.unreachable_since)}"
                f"{next_try}: {state.last_connection_error or 'no answer'}. Its emails wait until it answers.",
            )
        )
    return checks


def _local(moment: datetime | None) -> str:
    """In the zone the middleware activated for the user looking."""
    return f"{timezone.localtime(moment):%Y-%m-%d %H:%M}" if moment else "—"


@dataclass(frozen=True)
class Eta:
    """How long the campaign takes to send, and why: `seconds` None when nothing can move now."""

    seconds: float | None
    per_minute: float
    explanation: str


def eta(*, campaign: Campaign, recipients: int, now: datetime) -> Eta | None:
    """From the account's rate (learned, else configured) and its hourly and daily limits; none while
    the account is paused or cannot reach its server, since nothing moves then."""
    account = campaign.smtp_account
    if account is None:
        return None
    state = account.state
    per_minute = rates.effective_per_minute(account)
    learned = state.learned_per_minute is not None and per_minute < account.max_per_minute
    rate = f"{per_minute:,.0f}/min" + (" (learned from its server's throttling)" if learned else "")
    if state.is_paused:
        return Eta(None, per_minute, f"No estimate: the account is paused until {_local(state.paused_until)}.")
    if state.is_unreachable:
        return Eta(None, per_minute, "No estimate: the account cannot reach its server.")
    seconds = sending_seconds(
        count=recipients, per_minute=per_minute, per_hour=account.max_per_hour, per_day=account.max_per_day
    )
    limits = f"at {rate}, at most {account.max_per_hour:,}/hour and {account.max_per_day:,}/day"
    return Eta(seconds, per_minute, f"About {describe_duration(seconds)} for {recipients:,} recipient(s), {limits}.")


def sending_seconds(*, count: int, per_minute: float, per_hour: int, per_day: int) -> float:
    """How long `count` messages take at `per_minute`, within the hourly and daily limits (each
    window counted from the first message)."""
    if count <= 0:
        return 0.0
    if count > per_day:
        full_days, rest = divmod(count - 1, per_day)
        return full_days * 86400 + sending_seconds(
            count=rest + 1, per_minute=per_minute, per_hour=per_hour, per_day=per_day
        )
    if count > per_hour and per_hour < per_minute * 60:
        full_hours, rest = divmod(count - 1, per_hour)
        return full_hours * 3600 + (rest + 1) / per_minute * 60
    return count / per_minute * 60


def describe_duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    if seconds < 60:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes} min" if minutes else f"{hours} h"
    days, hours = divmod(hours, 24)
    return f"{days} day(s) {hours} h" if hours else f"{days} day(s)"
