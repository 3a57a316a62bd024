"""Scheduling and sending from "Review and send": the pre-flight checks answered first, then the lifecycle.

The checks are passed in (delivery.preflight builds them, the link checks join them), computed when
the marketer confirms, never taken from the page: errors refuse, and each warning must have been
ticked (its code among `acknowledged`). The status itself is written by lifecycle alone.
"""

from collections.abc import Callable, Collection, Sequence
from datetime import datetime

from accounts.models import User
from campaigns import preflight
from campaigns.models import Campaign
from campaigns.services import lifecycle


class NotCleared(lifecycle.LifecycleError):
    """Pre-flight errors remain, or warnings were not ticked."""


def require_cleared(*, checks: Sequence[preflight.Check], acknowledged: Collection[str], what: str) -> None:
    found = preflight.unresolved(checks=checks, acknowledged=acknowledged)
    if found:
        raise NotCleared(f"Cannot {what}. {preflight.describe_unresolved(found)}")


def schedule_reviewed(
    *,
    campaign: Campaign,
    at: datetime,
    checks: Sequence[preflight.Check],
    acknowledged: Collection[str],
    acting_user: User | None,
    now: datetime | None = None,
) -> Campaign:
    """Schedule for `at` (aware), once the checks are cleared; a past time is refused by lifecycle."""
    require_cleared(checks=checks, acknowledged=acknowledged, what="schedule")
    return lifecycle.schedule(campaign=campaign, at=at, now=now, acting_user=acting_user, reason="Review and send")


def send_reviewed(
    *,
    campaign: Campaign,
    checks: Sequence[preflight.Check],
    acknowledged: Collection[str],
    acting_user: User | None,
    dispatch_now: Callable[[], object] | None = None,
) -> Campaign:
    """Send at once, once the checks are cleared."""
    require_cleared(checks=checks, acknowledged=acknowledged, what="send")
    return lifecycle.send_now(
        campaign=campaign, acting_user=acting_user, reason="Review and send", dispatch_now=dispatch_now
    )
