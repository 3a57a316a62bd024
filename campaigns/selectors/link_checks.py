"""Reads of a campaign's link check (delivery.link_check): its last run for the page, and the checks in
the shape the "Review and send" page's pre-flight checks share (errors block, warnings need a tick)."""

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.http import Http404

from accounts.models import User
from accounts.owned_admin import scope_to_user
from campaigns.models import Campaign, LinkCheckResult, LinkCheckRun

SEVERITY: dict[str, int] = {"error": 0, "warning": 1, "ok": 2}
# A run no worker has taken after this long was lost (a broker restart, no worker on the `checks` queue).
UNTAKEN_PATIENCE = timedelta(minutes=10)


@dataclass(frozen=True)
class Check:
    """One pre-flight finding: `level` is "error" (blocks sending) or "warning" (needs a tick)."""

    code: str
    level: str
    message: str


@dataclass
class LinkCheckState:
    """What the page shows of the campaign's last link check."""

    run: LinkCheckRun | None
    state: str  # none, waiting, running, done, failed, lost
    results: list[LinkCheckResult] = field(default_factory=list)
    stale: bool = False  # the campaign changed after the run was asked for

    @property
    def running(self) -> bool:
        return self.state in ("waiting", "running")

    def count(self, level: str) -> int:
        return sum(1 for result in self.results if result.level == level)

    @property
    def count_ok(self) -> int:
        return self.count(LinkCheckResult.Level.OK)

    @property
    def count_error(self) -> int:
        return self.count(LinkCheckResult.Level.ERROR)

    @property
    def count_warning(self) -> int:
        return self.count(LinkCheckResult.Level.WARNING)


def campaign_for(*, user: User, campaign_id: int | str) -> Campaign:
    """The user's campaign (any, for a superuser); another owner's is a 404."""
    campaign = scope_to_user(Campaign.objects.all(), user).filter(pk=campaign_id).first()
    if campaign is None:
        raise Http404("No such campaign.")
    return campaign


def last_run(*, campaign: Campaign) -> LinkCheckRun | None:
    return LinkCheckRun.objects.filter(campaign=campaign).order_by("-requested_at", "-id").first()


def link_check_state(*, campaign: Campaign, now: datetime) -> LinkCheckState:
    run = last_run(campaign=campaign)
    if run is None:
        return LinkCheckState(run=None, state="none")
    # Errors first, then warnings, then the links that work, each in the message's order.
    results = sorted(run.results.all(), key=lambda r: (SEVERITY.get(r.level, 0), r.position, r.pk))
    stale = run.campaign_updated_at is not None and campaign.updated_at > run.campaign_updated_at
    return LinkCheckState(run=run, state=_state(run, now), results=results, stale=stale)


def _state(run: LinkCheckRun, now: datetime) -> str:
    if run.finished_at is not None:
        return "failed" if run.error and not run.urls_found else "done"
    if run.started_at is None:
        return "lost" if now - run.requested_at > UNTAKEN_PATIENCE else "waiting"
    return "lost" if now - run.started_at > run_patience(urls=run.urls_found) else "running"


def run_patience(*, urls: int) -> timedelta:
    """The longest a run of `urls` links can take: per round of LINK_CHECK_CONCURRENCY links, each hop
    (the link and its redirects) HEAD then GET, each a connect and a read of LINK_CHECK_TIMEOUT_SECONDS;
    and a minute more. Past it, a run without an end is one its worker never finished."""
    rounds = math.ceil(max(urls, 1) / max(1, settings.LINK_CHECK_CONCURRENCY))
    per_link = (settings.LINK_CHECK_MAX_REDIRECTS + 1) * 2 * 2 * settings.LINK_CHECK_TIMEOUT_SECONDS
    return timedelta(seconds=rounds * per_link + 60)


def checks(*, campaign: Campaign, now: datetime) -> list[Check]:
    """The link check's findings as pre-flight checks: one error per link that answers 4xx or 5xx, one
    warning per link that could not be checked, and a warning while no finished, current run exists."""
    state = link_check_state(campaign=campaign, now=now)
    found = [
        Check(code=f"link_{result.level}", level=result.level, message=f"{result.url}: {result.message}")
        for result in state.results
        if result.level != LinkCheckResult.Level.OK
    ]
    if state.state == "none":
        found.append(Check("links_not_checked", "warning", "The links have not been checked."))
    elif state.running:
        checked = len(state.results)
        of = f" ({checked} of {state.run.urls_found} checked)" if state.run and state.run.urls_found else ""
        found.append(Check("links_checking", "warning", f"The links are still being checked{of}."))
    elif state.state in ("failed", "lost"):
        reason = state.run.error if state.run and state.run.error else "the check did not finish"
        found.append(Check("links_not_checked", "warning", f"The links could not be checked: {reason}"))
    elif state.stale:
        found.append(
            Check("links_stale", "warning", "The campaign changed after its links were checked: check them again.")
        )
    return found


def as_json(state: LinkCheckState) -> dict[str, Any]:
    run = state.run
    return {
        "state": state.state,
        "running": state.running,
        "stale": state.stale,
        "requested_at": run.requested_at.isoformat() if run else None,
        "finished_at": run.finished_at.isoformat() if run and run.finished_at else None,
        "urls_found": run.urls_found if run else 0,
        "sample_recipient": run.sample_recipient if run else "",
        "error": run.error if run else "",
        "counts": {level: state.count(level) for level in LinkCheckResult.Level.values},
        "results": [
            {
                "url": result.url,
                "personalized": result.personalized,
                "level": result.level,
                "status_code": result.status_code,
                "final_url": result.final_url,
                "redirects": result.redirects,
                "method": result.method,
                "message": result.message,
                "checked_at": result.checked_at.isoformat(),
            }
            for result in state.results
        ],
    }
