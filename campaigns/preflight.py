"""Pre-flight checks before a campaign is scheduled or sent, and the rule they answer to.

A check is an error or a warning. Errors block sending; each warning needs the marketer's tick
(its code among the acknowledged). The rule is the same for every list of checks, wherever they
come from: the synchronous ones (delivery.preflight) and those a worker runs (the link checks),
so a kind of check joins by being added to the list, never by a rule of its own.
"""

from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"
LEVELS = (ERROR, WARNING)


@dataclass(frozen=True)
class Check:
    """One finding: `code` names the check (stable, the warnings' tick refers to it), `level` error or
    warning, `message` what is wrong and what to do, in the marketer's words."""

    code: str
    level: str
    message: str

    def __post_init__(self) -> None:
        if self.level not in LEVELS:
            raise ValueError(f"a check's level is one of {LEVELS}, not {self.level!r}")

    @property
    def is_error(self) -> bool:
        return self.level == ERROR


def errors(checks: Iterable[Check]) -> list[Check]:
    return [check for check in checks if check.is_error]


def warnings(checks: Iterable[Check]) -> list[Check]:
    return [check for check in checks if not check.is_error]


def unresolved(*, checks: Sequence[Check], acknowledged: Collection[str]) -> list[Check]:
    """What stands in the way: every error, and every warning whose code was not ticked."""
    return errors(checks) + [check for check in warnings(checks) if check.code not in acknowledged]


def describe_unresolved(found: Sequence[Check]) -> str:
    """For a refusal: the errors to fix, as they read, then how many warnings are left to tick."""
    parts = [check.message if check.message.endswith(".") else check.message + "." for check in errors(found)]
    unticked = warnings(found)
    if unticked:
        parts.append(f"Tick each warning you have read: {len(unticked)} not ticked.")
    return " ".join(parts)
