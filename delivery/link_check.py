"""The pre-flight link check of a campaign: every link of its HTML and text asked from a worker.

Asked for on the campaign's "Review and send" page (`request_link_check`), run by the
`campaigns.check_links` task (`run_link_check`), read back by campaigns.selectors.link_checks.

The links are those tracking would rewrite (`message.trackable_links`), and the URLs of the text part
(`message.links_in_text`): mailto:, tel:, anchors, the unsubscribe link and our own tracking URLs are
left out. The message is rendered for one sample recipient (the campaign's first subscribed contact,
else the preview's sample): a URL made by a variable is checked as that recipient's, and says so.

What a result means for the marketer (`verdict`):

- **ok**: a 2xx answer, after redirects or not. A reader who clicks gets the page.
- **error** (blocks sending): the site itself answered 4xx or 5xx, after HEAD was retried as GET where
  the server refuses HEAD. A server that answers has said the page is not there (404, 410) or broken
  (500): readers would get the same. Two answers are no verdict on the page and are warnings: 429
  (the site limits automated requests) and a status outside the standard classes.
- **warning** (needs a tick): no answer at all. A timeout, a host that does not resolve, a refused
  connection, a failed TLS handshake, more redirects than LINK_CHECK_MAX_REDIRECTS, or the destination
  guard refusing the address. Sites block or slow down bots, and a worker's network or resolver is not
  a reader's: the check cannot tell a dead link from a site that will not talk to it, so the marketer
  looks and decides. The guard's refusal is the operator's choice, not the link's fault.

One run at a time per campaign: asking again supersedes the open run, whose worker stops before its
next link; a new run may start LINK_CHECK_COOLDOWN_SECONDS after the last one at the earliest, so a
marketer cannot make the workers hammer a site.
"""

import logging
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from http import HTTPStatus

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.models import User
from campaigns import personalize
from campaigns.models import Campaign, LinkCheckResult, LinkCheckRun
from campaigns.selectors import personalization
from delivery import link_probe, message, previews
from delivery.link_probe import Failure, Probe

log = logging.getLogger(__name__)
Level = LinkCheckResult.Level


class LinkCheckRefused(Exception):
    """The check cannot be started now; the text says why, for the marketer."""


@dataclass(frozen=True)
class CampaignLink:
    url: str
    personalized: bool  # made by a variable: checked as the sample recipient's
    position: int = 0  # its place among the message's distinct links


@dataclass(frozen=True)
class CampaignLinks:
    links: list[CampaignLink]
    sample_recipient: str  # whose variables filled the URLs
    left_out: int = 0  # distinct links past LINK_CHECK_MAX_URLS


# --- which links -----------------------------------------------------------------------------


def links_of(*, campaign: Campaign) -> CampaignLinks:
    """The distinct links of the campaign's HTML and text, as its first recipient gets them; raises
    personalize.PersonalizationError when the campaign does not render."""
    contact = personalization.subscribed_contacts(campaign=campaign).first()
    rendered = previews.preview(campaign=campaign, contact=contact)
    keep = {message.preview_unsubscribe_url()}
    found = message.links_in_text(rendered.text, keep=keep)
    if not campaign.is_text_only:
        found = message.trackable_links(rendered.html, keep=keep) + found
    as_written = set(_written_links(campaign))
    distinct = list(dict.fromkeys(found))
    limit = settings.LINK_CHECK_MAX_URLS
    return CampaignLinks(
        links=[
            CampaignLink(url=url, personalized=url not in as_written, position=position)
            for position, url in enumerate(distinct[:limit])
        ],
        sample_recipient=contact.email if contact is not None else previews.SAMPLE_EMAIL,
        left_out=max(0, len(distinct) - limit),
    )


def _written_links(campaign: Campaign) -> Iterator[str]:
    """The links as the marketer wrote them: a rendered link not among them was made by a variable."""
    yield from message.trackable_links(campaign.body_html or "", keep=set())
    yield from message.links_in_text(campaign.body_html or "", keep=set())
    yield from message.links_in_text(campaign.body_text or "", keep=set())


# --- what an answer means --------------------------------------------------------------------


def verdict(probe: Probe) -> tuple[str, str]:
    """(level, message) of a probe, for the marketer; the module's docstring gives the reasons."""
    if probe.failure is not None:
        return Level.WARNING, _no_answer_message(probe, probe.failure)
    code = probe.status_code or 0
    where = _where(probe)
    if 200 <= code < 300:
        return Level.OK, f"Reaches the page{where}."
    if code == HTTPStatus.TOO_MANY_REQUESTS:
        return Level.WARNING, (
            f"The site answers {_status(code)}{where}: it limits automated requests. Open the link yourself."
        )
    if 400 <= code < 600:
        return Level.ERROR, f"The link answers {_status(code)}{where}."
    if 300 <= code < 400:
        return Level.ERROR, f"The link answers {_status(code)}{where} without saying where to go."
    return Level.WARNING, f"The site answers an unusual status, {code}{where}. Open the link yourself."


def _no_answer_message(probe: Probe, failure: Failure) -> str:
    after = f" (after {_redirects(probe.redirects)}, at {probe.final_url})" if probe.redirects else ""
    if failure is Failure.GUARD:
        return f"Not checked{after}: {probe.detail} Ask your administrator if the link is right."
    if failure is Failure.REDIRECTS:
        return f"Not checked to the end: {probe.detail}, last at {probe.final_url}. Open the link yourself."
    what = {
        Failure.TIMEOUT: f"{probe.detail.capitalize()}{after}: the site may be slow or block automated checks",
        Failure.DNS: f"No answer{after}: {probe.detail}. Check its spelling",
        Failure.TLS: f"No answer{after}: {probe.detail}; readers' browsers may warn too",
        Failure.CONNECTION: f"No answer{after}: {probe.detail}; the site may be down or block automated checks",
        Failure.INVALID: f"Not checked{after}: the link {probe.detail}",
    }[failure]
    return f"{what}. Open the link yourself."


def _status(code: int) -> str:
    try:
        return f"{code} {HTTPStatus(code).phrase}"
    except ValueError:
        return str(code)


def _where(probe: Probe) -> str:
    if not probe.redirects:
        return ""
    return f" after {_redirects(probe.redirects)}, at {probe.final_url}"


def _redirects(count: int) -> str:
    return "1 redirect" if count == 1 else f"{count} redirects"


# --- asking for a run ------------------------------------------------------------------------


def request_link_check(*, campaign: Campaign, user: User | None, enqueue: Callable[[int], object]) -> LinkCheckRun:
    """Record a new run of the campaign's link check, superseding the open one, and hand it to
    `enqueue(run_id)`; LinkCheckRefused within LINK_CHECK_COOLDOWN_SECONDS of the last request.

    The campaign's row is locked for the decision, so two requests at once make one run."""
    with transaction.atomic():
        locked = Campaign.objects.select_for_update().only("pk", "updated_at").get(pk=campaign.pk)
        now = timezone.now()
        last = LinkCheckRun.objects.filter(campaign=locked).order_by("-requested_at").first()
        if last is not None:
            waited = (now - last.requested_at).total_seconds()
            if waited < settings.LINK_CHECK_COOLDOWN_SECONDS:
                wait_more = settings.LINK_CHECK_COOLDOWN_SECONDS - waited
                raise LinkCheckRefused(
                    f"The links of this campaign were checked {waited:.0f} s ago: try again in {wait_more:.0f} s."
                )
        LinkCheckRun.objects.filter(campaign=locked, finished_at__isnull=True, superseded_at__isnull=True).update(
            superseded_at=now
        )
        run = LinkCheckRun.objects.create(
            campaign=locked, requested_by=user, requested_at=now, campaign_updated_at=locked.updated_at
        )
        enqueue(run.pk)
    return run


def record_not_queued(*, run_id: int, error: Exception) -> None:
    """The run could not be handed to a worker: say so instead of "checking" for ever."""
    now = timezone.now()
    LinkCheckRun.objects.filter(pk=run_id, started_at__isnull=True).update(
        started_at=now, finished_at=now, error=f"The link check could not be queued: {error}"
    )


# --- the worker's part -----------------------------------------------------------------------


def run_link_check(*, run_id: int) -> LinkCheckRun | None:
    """Check every link of the run's campaign, LINK_CHECK_CONCURRENCY at a time, each result recorded
    as it comes. None when the run is gone, superseded or taken already (a redelivered task)."""
    taken = LinkCheckRun.objects.filter(pk=run_id, started_at__isnull=True, superseded_at__isnull=True).update(
        started_at=timezone.now()
    )
    if not taken:
        return None
    run = LinkCheckRun.objects.select_related("campaign__owner").get(pk=run_id)
    try:
        found = links_of(campaign=run.campaign)
    except personalize.PersonalizationError as exc:
        _finish(run_id, error="The message does not render: " + "; ".join(exc.messages))
        return LinkCheckRun.objects.get(pk=run_id)
    sample = found.sample_recipient if any(link.personalized for link in found.links) else ""
    LinkCheckRun.objects.filter(pk=run_id).update(urls_found=len(found.links), sample_recipient=sample)
    superseded = _check_all(run_id, found.links)
    if not superseded:
        note = f"{found.left_out} more links were not checked (at most {settings.LINK_CHECK_MAX_URLS})."
        _finish(run_id, error=note if found.left_out else "")
    return LinkCheckRun.objects.get(pk=run_id)


def _check_all(run_id: int, links: list[CampaignLink]) -> bool:
    """Ask every link, recording each answer; True when the run was superseded meanwhile (then the
    links not yet asked are left, and those under way finish in the background, unrecorded)."""
    waiting = list(reversed(links))
    running: dict[Future[Probe], CampaignLink] = {}
    pool = ThreadPoolExecutor(max_workers=max(1, settings.LINK_CHECK_CONCURRENCY), thread_name_prefix="linkcheck")
    try:
        while waiting or running:
            while waiting and len(running) < settings.LINK_CHECK_CONCURRENCY:
                link = waiting.pop()
                running[pool.submit(link_probe.probe, link.url)] = link
            done, _pending = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                link = running.pop(future)
                _record(run_id, link, _outcome(future, link))
            if LinkCheckRun.objects.filter(pk=run_id, superseded_at__isnull=False).exists():
                return True
        return False
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def _outcome(future: "Future[Probe]", link: CampaignLink) -> Probe:
    """The probe's result; a bug in it is this link's warning, not the end of the run."""
    try:
        return future.result()
    except Exception as exc:  # noqa: BLE001 - logged; the other links are still checked
        log.exception("link check of %s failed", link.url)
        return Probe(url=link.url, failure=Failure.CONNECTION, detail=f"an error while checking ({type(exc).__name__})")


def _record(run_id: int, link: CampaignLink, probe: Probe) -> None:
    level, text = verdict(probe)
    LinkCheckResult.objects.get_or_create(
        run_id=run_id,
        url=link.url,
        defaults={
            "personalized": link.personalized,
            "position": link.position,
            "level": level,
            "status_code": probe.status_code,
            "final_url": probe.final_url if probe.status_code is not None else "",
            "redirects": probe.redirects,
            "method": probe.method,
            "message": text,
            "checked_at": timezone.now(),
        },
    )


def _finish(run_id: int, *, error: str = "") -> None:
    LinkCheckRun.objects.filter(pk=run_id, finished_at__isnull=True).update(finished_at=timezone.now(), error=error)
