"""The lease fence: until when a worker may begin sending the rows of its batch.

A batch's rows are its worker's until their lease ends (EMAIL_LEASE_SECONDS from the claim or from
the worker's last renewal); then the dispatcher takes them back (ledger.return_due) and another
worker may send them. Two rules keep the old holder and the new one from both sending a row,
whatever the network does between them:

- The worker begins a send only before its deadline: the lease's end, measured on its own
  monotonic clock from the moment it asked for the lease, less `margin()`. Past the deadline it
  sends nothing until a renewal succeeds, and a database it cannot reach is a renewal that did
  not succeed. The deadline is checked right before each message's content goes out, after every
  database statement the worker waits for, so a worker that was blocked (a cut link, a stopped
  process, a paused VM) finds out before it sends, not after.
- The dispatcher takes a row back only `margin()` after its lease's end (`reclaim_before`).

`margin()` is the longest one message's send can take (SMTP_TIMEOUT bounds a transaction as a
whole) plus the skew between the hosts' clocks (EMAIL_LEASE_CLOCK_SKEW_SECONDS): a send begun
before the deadline has ended before the row can change hands.

What is left is the message whose send was under way when its worker was cut off: the server took
it, and the worker never heard the answer or could not record it. There is at most one such
message per open SMTP connection, since each content goes out only after the previous result was
recorded, and it is the first row still queued in the worker's batch (a batch is sent in id order,
each result recorded as it comes). So when a taken batch's rows are taken back, that first row is
flagged possible_duplicate and counted (ledger.return_due). A worker that stopped before sending
it leaves a flag on a row sent once: "possible" is meant. Marking each row before its content would
be exact, at the price of a write per message on the busiest table (measured in BENCHMARKS.md,
Dashboards at a million emails: one row's UPDATE).
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings


class LeaseLost(Exception):
    """The row is not this worker's any more, or may not be by the time its content arrives."""


def margin() -> float:
    return settings.SMTP_TIMEOUT + settings.EMAIL_LEASE_CLOCK_SKEW_SECONDS


def reclaim_before(now: datetime) -> datetime:
    """Rows whose lease ended before this may be taken back from their worker."""
    return now - timedelta(seconds=margin())


def renewal_window() -> float:
    """A renewal is due once less than this is left before the deadline: half of what a renewal grants."""
    return (settings.EMAIL_LEASE_SECONDS - margin()) / 2


@dataclass(frozen=True)
class Lease:
    deadline: float  # on the worker's monotonic clock: no send begins at or after it

    @classmethod
    def ending(cls, *, expires_at: datetime, asked_at: datetime, asked_monotonic: float) -> "Lease":
        """The lease that ends at `expires_at` (as stored), read or written by a statement sent when the
        wall clock said `asked_at` and the monotonic clock `asked_monotonic`."""
        remaining = (expires_at - asked_at).total_seconds()
        return cls(deadline=asked_monotonic + remaining - margin())

    @classmethod
    def renewed(cls, *, asked_monotonic: float) -> "Lease":
        """The lease a renewal sent at `asked_monotonic` granted (EMAIL_LEASE_SECONDS from then)."""
        return cls(deadline=asked_monotonic + settings.EMAIL_LEASE_SECONDS - margin())

    def may_send(self, monotonic_now: float) -> bool:
        return monotonic_now < self.deadline

    def renewal_due(self, monotonic_now: float) -> bool:
        return self.deadline - monotonic_now < renewal_window()
